#!/usr/bin/env bash
# generate on 4 ranks (pp 2 x tp 2) from a shard set gives the tokens of the model
# file; a shard set cut for another layout and a corrupt shard stop every rank with
# one message and exit 1.
set -u
bin=${MPILLM_BIN:?} src=${MPILLM_SOURCE_DIR:?}
read -r -a flags <<<"${MPIEXEC_FLAGS:-}"
mpi() { "${MPIEXEC:-mpiexec}" -n 4 "${flags[@]}" "$bin" "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bin" convert "$src/tests/fixtures/qwen2_tied/hf" -o "$work/m.h5" >/dev/null || fail "convert"
"$bin" shard "$work/m.h5" --pp 2 --tp 2 -o "$work/s" >/dev/null || fail "shard"
args=(--pp 2 --tp 2 --prompt-ids 5,17,3,42,9 -n 8 --ignore-eos --json)
mpi generate -m "$work/m.h5" "${args[@]}" >"$work/file.json" 2>"$work/err" || fail "generate from the file: $(cat "$work/err")"
mpi generate -m "$work/s" "${args[@]}" >"$work/shards.json" 2>"$work/err" || fail "generate from shards: $(cat "$work/err")"
ids() { grep -o '"generated_ids": *\[[^]]*\]' "$1"; }
[ -n "$(ids "$work/file.json")" ] || fail "no generated ids: $(cat "$work/file.json")"
[ "$(ids "$work/file.json")" = "$(ids "$work/shards.json")" ] ||
  fail "tokens differ: file $(ids "$work/file.json"), shards $(ids "$work/shards.json")"

mpi generate -m "$work/s" --tp 4 --prompt-ids 5,17 -n 2 >/dev/null 2>"$work/err" && fail "a wrong layout succeeded"
grep -q "pp 2 x tp 2" "$work/err" || fail "layout message: $(cat "$work/err")"

printf 'X' | dd of="$work/s/shard-pp1-tp1.h5" bs=1 seek=30000 conv=notrunc status=none
mpi generate -m "$work/s" "${args[@]}" >/dev/null 2>"$work/err" && fail "a corrupt shard succeeded"
[ "$(grep -c "error" "$work/err")" = 1 ] || fail "expected one message: $(cat "$work/err")"
grep -q "shard-pp1-tp1.h5" "$work/err" || fail "corrupt-shard message: $(cat "$work/err")"
echo ok
