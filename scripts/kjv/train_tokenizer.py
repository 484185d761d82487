#!/usr/bin/env python3
"""Trains the bundled model's tokenizer: GPT-2 style byte-level BPE, 4096 tokens.

  scripts/kjv/train_tokenizer.py [--corpus DIR] [--out DIR]

Reads CORPUS/train.txt only (never the validation or held-out text) and writes
OUT/tokenizer.json and OUT/tokenizer_config.json. Token 0 is <|endoftext|> (bos, eos
and padding); the 256 byte tokens follow, then the merges. The pre-tokenizer is
ByteLevel with GPT-2's regex and no prefix space, the decoder ByteLevel; no post
processor adds tokens, so encoding a text gives only its own tokens.
Deterministic: the same train.txt gives the same tokenizer.json.
"""
import argparse
import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

VOCAB_SIZE = 4096
EOT = "<|endoftext|>"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--corpus", default="scratch/kjv")
    ap.add_argument("--out", default="scratch/kjv/tokenizer")
    args = ap.parse_args()

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, special_tokens=[EOT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train([os.path.join(args.corpus, "train.txt")], trainer)
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()
    assert tok.token_to_id(EOT) == 0

    os.makedirs(args.out, exist_ok=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": EOT,
        "eos_token": EOT,
        "unk_token": EOT,
        "pad_token": EOT,
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 512,
    }
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")

    for name in ("train", "valid", "heldout", "heldout-head"):
        path = os.path.join(args.corpus, name + ".txt")
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            n = len(tok.encode(text, add_special_tokens=False).ids)
            print(f"{name}: {n} tokens, {len(text) / n:.2f} chars/token")
    sample = "In the beginning God created the heaven and the earth.\n"
    enc = tok.encode(sample)
    assert tok.decode(enc.ids) == sample
    print("sample:", enc.tokens)


if __name__ == "__main__":
    main()
