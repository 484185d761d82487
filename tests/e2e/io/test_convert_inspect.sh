#!/usr/bin/env bash
# convert + inspect from the command line: every fixture converts and inspects
# clean; a corrupt file makes inspect fail; bad checkpoints fail with one message
# naming the file and leave no output behind.
set -u
bin=${MPILLM_BIN:?} src=${MPILLM_SOURCE_DIR:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# every fixture converts in the unit tests; here the command line, on two of them
for m in gpt2 import/llama_f16; do
  out=$work/$(basename "$m").h5
  "$bin" convert "$src/tests/fixtures/$m/hf" -o "$out" --dtype bf16 >/dev/null 2>"$work/err" || fail "convert $m: $(cat "$work/err")"
  "$bin" inspect "$out" >"$work/inspect-$(basename "$m")" 2>&1 || fail "inspect $m: $(cat "$work/inspect-$(basename "$m")")"
  grep -q "0 checksum failures" "$work/inspect-$(basename "$m")" || fail "inspect $m: no summary"
  grep -q "bf16" "$work/inspect-$(basename "$m")" || fail "inspect $m: not bf16"
done
grep -q "^transformer.h.1.attn.c_attn.weight *\[64, 192\]" "$work/inspect-gpt2" ||
  fail "gpt2 Conv1D weight not stored [in, out]"

# one flipped byte in the middle of the tensor data: inspect must say which tensor
cp "$work/gpt2.h5" "$work/flip.h5"
size=$(stat -c %s "$work/flip.h5")
printf '\x5a' | dd of="$work/flip.h5" bs=1 seek=$((size / 2)) conv=notrunc status=none
if "$bin" inspect "$work/flip.h5" >"$work/inspect" 2>"$work/err"; then fail "inspect of a corrupt file succeeded"; fi
grep -q "FAILED" "$work/inspect" || fail "no FAILED row: $(cat "$work/inspect")"
grep -q "failed their checksum" "$work/err" || fail "message: $(cat "$work/err")"

# a truncated safetensors: one message naming the file, exit 1, nothing written
mkdir "$work/trunc"
cp "$src/tests/fixtures/gpt2/hf/"*.json "$work/trunc/"
head -c 100000 "$src/tests/fixtures/gpt2/hf/model.safetensors" >"$work/trunc/model.safetensors"
mkdir "$work/out"
if "$bin" convert "$work/trunc" -o "$work/out/model.h5" >/dev/null 2>"$work/err"; then fail "truncated convert succeeded"; fi
[ "$(wc -l <"$work/err")" = 1 ] || fail "expected one message: $(cat "$work/err")"
grep -q "model.safetensors" "$work/err" || fail "message does not name the file: $(cat "$work/err")"
[ -z "$(ls -A "$work/out")" ] || fail "convert left files: $(ls "$work/out")"

# a non-HDF5 file and a missing one
echo "not a model" >"$work/junk.h5"
"$bin" inspect "$work/junk.h5" >/dev/null 2>"$work/err" && fail "inspect of junk succeeded"
grep -q "junk.h5.*not an HDF5 file" "$work/err" || fail "junk message: $(cat "$work/err")"
"$bin" inspect "$work/absent.h5" >/dev/null 2>"$work/err" && fail "inspect of a missing file succeeded"
grep -q "absent.h5" "$work/err" || fail "missing-file message: $(cat "$work/err")"
echo "ok"
