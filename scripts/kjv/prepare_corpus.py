#!/usr/bin/env python3
"""Builds the King James Bible corpus of the bundled model from Debian's bible-kjv.

  scripts/kjv/prepare_corpus.py [--out DIR] [--raw FILE]

Runs `bible -f Gen1:1-Rev22:21` (one verse a line, "Ge1:1 In the beginning ..."),
strips the verse references and splits the 1189 chapters deterministically by their
ordinal c (0-based, in canonical order):
  c % 20 == 19  -> heldout.txt  (every 20th chapter: the perplexity text)
  c % 20 == 9   -> valid.txt    (every 20th chapter, offset by 10: checkpoint choice)
  otherwise     -> train.txt    (tokenizer and model training)
Each file holds one verse a line in canonical order, nothing else. heldout-head.txt is
the first held-out chapters up to HEAD_CHARS characters (whole chapters, ~8k tokens),
whose perplexity train.py records; heldout-ci.txt the first CI_CHAPTERS held-out chapters
(~1.4k tokens), the text of the CI eval test. Writes DIR/{train,valid,heldout,
heldout-head,heldout-ci}.txt and prints counts.
"""
import argparse
import hashlib
import os
import re
import subprocess
import sys

HELDOUT_EVERY = 20
HELDOUT_OFFSET = 19
VALID_OFFSET = 9
HEAD_CHARS = 30000  # about 8k tokens with the 4096-token BPE
CI_CHAPTERS = 2     # about 1.4k tokens: seconds per mpillm eval run on one core
EXPECTED_VERSES = 31102
EXPECTED_CHAPTERS = 1189

REF = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")


def read_verses(raw_path):
    if raw_path:
        with open(raw_path, encoding="ascii") as f:
            text = f.read()
    else:
        text = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True,
                              capture_output=True, text=True).stdout
    chapters = []  # [(book, chapter, [verse text, ...])]
    for n, line in enumerate(text.splitlines(), 1):
        m = REF.match(line)
        if not m:
            sys.exit(f"prepare_corpus: line {n} has no verse reference: {line[:60]!r}")
        book, chap, _verse, body = m.groups()
        if not chapters or chapters[-1][0] != book or chapters[-1][1] != chap:
            chapters.append((book, chap, []))
        chapters[-1][2].append(body.strip())
    return chapters


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--out", default="scratch/kjv", help="output folder (default scratch/kjv)")
    ap.add_argument("--raw", help="read this saved `bible -f` output instead of running bible")
    args = ap.parse_args()

    chapters = read_verses(args.raw)
    n_verses = sum(len(c[2]) for c in chapters)
    if len(chapters) != EXPECTED_CHAPTERS or n_verses != EXPECTED_VERSES:
        sys.exit(f"prepare_corpus: got {len(chapters)} chapters and {n_verses} verses, "
                 f"expected {EXPECTED_CHAPTERS} and {EXPECTED_VERSES}")

    splits = {"train": [], "valid": [], "heldout": []}
    for c, (_book, _chap, verses) in enumerate(chapters):
        r = c % HELDOUT_EVERY
        name = "heldout" if r == HELDOUT_OFFSET else "valid" if r == VALID_OFFSET else "train"
        splits[name].append(verses)

    head, n_head_chars = [], 0
    for verses in splits["heldout"]:
        if n_head_chars >= HEAD_CHARS:
            break
        head.append(verses)
        n_head_chars += sum(len(v) + 1 for v in verses)
    splits["heldout-head"] = head
    splits["heldout-ci"] = splits["heldout"][:CI_CHAPTERS]

    os.makedirs(args.out, exist_ok=True)
    for name, chaps in splits.items():
        text = "".join(v + "\n" for verses in chaps for v in verses)
        path = os.path.join(args.out, name + ".txt")
        with open(path, "w", encoding="ascii", newline="\n") as f:
            f.write(text)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        print(f"{path}: {len(chaps)} chapters, {sum(len(v) for v in chaps)} verses, "
              f"{len(text)} chars, sha256 {digest}")


if __name__ == "__main__":
    main()
