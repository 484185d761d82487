#!/usr/bin/env bash
# Encode speed of mpillm's tokenizer against Hugging Face `tokenizers` (Python, one
# string, one thread) on the whole KJV Bible (~4.4 MB), for byte-level BPE in the
# GPT-2 and LLaMA-3 forms and SentencePiece-style BPE (LLaMA-2 legacy form), each
# trained here on the same text with 32000 ids. Also checks that the ids agree.
#   scripts/bench_tokenizer.sh [BUILD_DIR]     (needs python3 with tokenizers, bible-kjv)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build}/mpillm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bible -f Gen1:1-Rev22:21 > "$tmp/kjv.txt"
python3 - "$tmp" <<'PY'
import json, sys, time
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, normalizers, Regex
d = sys.argv[1]
text = open(f"{d}/kjv.txt", encoding="utf-8").read()
lines = text.splitlines()
llama3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
def byte_level(pre, ignore_merges=False):
    t = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    t.pre_tokenizer = pre
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=32000, special_tokens=["<|endoftext|>"],
                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return t
toks = {
  "gpt2": byte_level(pre_tokenizers.ByteLevel(add_prefix_space=False)),
  "llama3": byte_level(pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(llama3), "isolated"),
                        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), True),
}
t = Tokenizer(models.BPE(byte_fallback=True, fuse_unk=True, unk_token="<unk>"))
t.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
t.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                               decoders.Strip(" ", 1, 0)])
t.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=32000, special_tokens=["<unk>", "<s>", "</s>"]
                      + [f"<0x{i:02X}>" for i in range(256)], show_progress=False))
toks["llama2"] = t
for name, tok in toks.items():
    tok.save(f"{d}/{name}.json")
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter(); ids = tok.encode(text, add_special_tokens=False).ids
        best = min(best, time.perf_counter() - t0)
    json.dump(ids, open(f"{d}/{name}.py.json", "w"))
    print(f"{name:7s} python tokenizers: {len(text.encode())} bytes -> {len(ids)} ids in {best:.3f} s: "
          f"{len(text.encode()) / best / 1e6:.2f} MB/s (best of 3)")
PY
for name in gpt2 llama3 llama2; do
  for i in 1 2 3; do
    "$bin" tokenize --tokenizer "$tmp/$name.json" --no-special --time -f "$tmp/kjv.txt" \
      > "$tmp/$name.c.json" 2>> "$tmp/$name.time"
  done
  best=$(sort -t' ' -k8 -n "$tmp/$name.time" | head -1)
  same=$(python3 -c "import json,sys; print('identical' if json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])) else 'DIFFERENT')" "$tmp/$name.c.json" "$tmp/$name.py.json")
  printf '%-7s mpillm:            %s (best of 3), ids %s\n' "$name" "$best" "$same"
done
