#!/usr/bin/env python3
"""PyTorch reference perplexity of an exported Hugging Face directory, on the CPU.

  scripts/kjv/eval_hf.py HF_DIR TEXT [--ctx N ...] [--max-tokens N]

The definition of train.py and `mpillm eval`: the whole TEXT tokenized without special
tokens, consecutive non-overlapping windows of ctx tokens (the last may be shorter),
each from position 0, NLL of tokens 1..len-1 of each window, ppl = exp(NLL / count).
Weights are loaded as stored (bf16 for the bundled model) and computed in f32.
"""
import argparse
import json
import math

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("hf")
    ap.add_argument("text")
    ap.add_argument("--ctx", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--max-tokens", type=int, default=0, help="only the first N tokens")
    ap.add_argument("--json-out", help="also write the result to this file")
    args = ap.parse_args()
    torch.set_float32_matmul_precision("highest")
    tok = Tokenizer.from_file(f"{args.hf}/tokenizer.json")
    with open(args.text, encoding="utf-8") as f:
        ids = tok.encode(f.read(), add_special_tokens=False).ids
    if args.max_tokens:
        ids = ids[:args.max_tokens]
    model = LlamaForCausalLM.from_pretrained(args.hf, dtype=torch.float32).eval()
    out = {}
    for ctx in args.ctx:
        nll, count = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(ids), ctx):
                w = torch.tensor([ids[i:i + ctx]])
                if w.size(1) < 2:
                    continue
                logits = model(input_ids=w).logits[0, :-1].float()
                nll += F.cross_entropy(logits, w[0, 1:], reduction="sum").item()
                count += w.size(1) - 1
        out[str(ctx)] = {"tokens": len(ids), "predicted": count, "ppl": math.exp(nll / count)}
    text = json.dumps({"text": args.text.split("/")[-1], "weights": "bf16 as stored, f32 compute",
                       "perplexity": out}, indent=2)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
