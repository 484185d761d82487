#!/bin/sh
# mpillm tokenize: ids as a JSON array, --decode gives the text back, bad input
# exits non-zero with a message naming the file and field.
set -u
fx="$MPILLM_SOURCE_DIR/tests/fixtures"
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() { # name expected actual
  if [ "$2" != "$3" ]; then echo "FAIL $1: expected [$2] got [$3]"; fail=1; else echo "ok   $1"; fi
}
tok="$fx/llama_gqa/hf/tokenizer.json"
ids=$("$MPILLM_BIN" tokenize --tokenizer "$tok" "Hello, world!")
check "encode with BOS" "[1,317,284,396,304,266,400,260]" "$ids"
ids_plain=$("$MPILLM_BIN" tokenize --tokenizer "$tok" --no-special "Hello," "world!")
check "encode without BOS, TEXT... joined" "[317,284,396,304,266,400,260]" "$ids_plain"
text=$("$MPILLM_BIN" tokenize --tokenizer "$tok" --decode "$ids")
check "decode keeps special tokens" "<s> Hello, world!" "$text"
text=$("$MPILLM_BIN" tokenize --tokenizer "$tok" --decode --no-special "$ids")
check "decode skipping special tokens" "Hello, world!" "$text"
# byte-level: the round trip is exact, emoji included
q="$fx/qwen2_tied/hf/tokenizer.json"
s="Grüße 👋🏽  tabs	and
newlines"
ids=$("$MPILLM_BIN" tokenize --tokenizer "$q" "$s")
text=$("$MPILLM_BIN" tokenize --tokenizer "$q" --decode "$ids")
check "qwen2 round trip" "$s" "$text"
# -m: the tokenizer stored in a converted model file gives the same ids
"$MPILLM_BIN" convert "$fx/llama_gqa/hf" -o "$tmp/llama.h5" > /dev/null 2>&1 || { echo "FAIL convert"; fail=1; }
ids=$("$MPILLM_BIN" tokenize -m "$tmp/llama.h5" "Hello, world!")
check "-m model.h5" "[1,317,284,396,304,266,400,260]" "$ids"
"$MPILLM_BIN" convert "$fx/gpt2/hf" -o "$tmp/gpt2.h5" > /dev/null 2>&1 || { echo "FAIL convert"; fail=1; }
ids=$("$MPILLM_BIN" tokenize -m "$tmp/gpt2.h5" "$s")
text=$("$MPILLM_BIN" tokenize -m "$tmp/gpt2.h5" --decode "$ids")
check "gpt2 -m round trip" "$s" "$text"
# bad input: non-zero exit and a message naming the file / field
printf '{"model": {"type": "WordPiece", "vocab": {"a": 0}}}' > "$tmp/tokenizer.json"
if "$MPILLM_BIN" tokenize --tokenizer "$tmp/tokenizer.json" x 2> "$tmp/err"; then
  echo "FAIL unsupported model accepted"; fail=1
fi
grep -q "$tmp/tokenizer.json: model.type \"WordPiece\" is not supported" "$tmp/err" || { echo "FAIL message: $(cat "$tmp/err")"; fail=1; }
if "$MPILLM_BIN" tokenize --tokenizer "$tmp/missing.json" x 2> "$tmp/err"; then
  echo "FAIL missing file accepted"; fail=1
fi
grep -q "missing.json" "$tmp/err" || { echo "FAIL message: $(cat "$tmp/err")"; fail=1; }
if "$MPILLM_BIN" tokenize --tokenizer "$tok" --decode "[1, 99999]" 2> "$tmp/err"; then
  echo "FAIL id out of range accepted"; fail=1
fi
grep -q "99999" "$tmp/err" || { echo "FAIL message: $(cat "$tmp/err")"; fail=1; }
exit $fail
