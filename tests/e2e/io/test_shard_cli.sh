#!/usr/bin/env bash
# `mpillm shard` from the command line: a set that loads under mpirun with the
# matching layout, and refusals (a layout the model cannot take, bad --pp-layers,
# an existing folder, a wrong layout at load) with one message and nothing left.
set -u
bin=${MPILLM_BIN:?} src=${MPILLM_SOURCE_DIR:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bin" convert "$src/tests/fixtures/llama_gqa/hf" -o "$work/m.h5" >/dev/null || fail "convert"
"$bin" shard "$work/m.h5" --tp 2 --pp 2 --pp-layers 1,1 -o "$work/s" >/dev/null 2>"$work/err" || fail "shard: $(cat "$work/err")"
[ -f "$work/s/manifest.json" ] && [ -f "$work/s/shard-pp1-tp1.h5" ] || fail "missing files: $(ls "$work/s")"
grep -q '"tp":	2' "$work/s/manifest.json" || fail "manifest: $(cat "$work/s/manifest.json")"

"$bin" inspect "$work/s" >"$work/out" 2>"$work/err" || fail "inspect of the shard set: $(cat "$work/err")"
[ "$(grep -c ' ok$' "$work/out")" = 4 ] || fail "inspect rows: $(cat "$work/out")"
cp -r "$work/s" "$work/bad"
printf 'X' | dd of="$work/bad/shard-pp1-tp0.h5" bs=1 seek=20000 conv=notrunc status=none
"$bin" inspect "$work/bad" >/dev/null 2>"$work/err" && fail "inspect of a corrupt shard set succeeded"
grep -q "shard-pp1-tp0.h5.*corrupt" "$work/err" || fail "corrupt-shard message: $(cat "$work/err")"
rm -rf "$work/bad" "$work/out"

"$bin" shard "$work/m.h5" --tp 2 -o "$work/s" >/dev/null 2>"$work/err" && fail "shard over an existing folder succeeded"
grep -q "already exists" "$work/err" || fail "existing-folder message: $(cat "$work/err")"
"$bin" shard "$work/m.h5" --pp 5 -o "$work/deep" >/dev/null 2>"$work/err" && fail "5 stages of 2 layers succeeded"
[ "$(wc -l <"$work/err")" = 1 ] || fail "expected one message: $(cat "$work/err")"
"$bin" shard "$work/m.h5" --pp 2 --pp-layers 1,x -o "$work/bad" >/dev/null 2>"$work/err" && fail "bad --pp-layers succeeded"
grep -q "pp-layers" "$work/err" || fail "--pp-layers message: $(cat "$work/err")"
ls "$work" | grep -qv '^\(m.h5\|s\|err\)$' && fail "left behind: $(ls "$work")"
echo ok
