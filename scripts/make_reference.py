#!/usr/bin/env python3
"""Build the reference fixtures under tests/fixtures/ (issue 3, item 7).

Everything is made locally, nothing is downloaded:
  * each tokenizer is trained on the spot (HF `tokenizers`) on the small corpus below,
    then given the exact pipeline of the family it imitates;
  * each model is a transformers model built from a config and initialised from a
    fixed seed (our own init, see init_weights), saved with save_pretrained;
  * transformers' f32 logits for every prompt position and a 20-token greedy
    continuation (own loop: full forward each step, argmax, no EOS stop) go to
    reference.h5; transformers' AutoTokenizer ids for many texts go to
    tokenizer_cases.json.

Usage: python3 scripts/make_reference.py [--out tests/fixtures] [--only NAME ...]
                                         [--search-seeds]
Needs torch, transformers 5.x, tokenizers, safetensors, h5py (CPU is enough).
CI never runs this; it only reads the committed outputs. See tests/fixtures/README.md.

Config forms: transformers 5 writes the NEWER form ("dtype", "rope_parameters").
The consumers must read both, so qwen2_tied and import/llama_f16 get config.json
rewritten after saving to the OLDER form ("torch_dtype", top-level "rope_theta", no
"rope_parameters"); see to_old_config_form(). Every fixture is reloaded with
from_pretrained after saving and must give the same logits, which proves transformers
reads the rewritten file the same way.

Seeds: SEEDS below. For each model the greedy continuation must have, at every step,
top1 - top2 > MARGIN_REL * max|logit| (else a tiny numerical difference could flip
the argmax); the script fails if not. --search-seeds tries seed, seed+1, ... and
prints the first seed that passes, to be copied into SEEDS.
"""

import argparse
import copy
import json
import os
import random
import shutil
import sys
import tempfile

import h5py
import numpy as np
import tokenizers
import torch
import transformers
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

GREEDY_TOKENS = 20
PROMPT_LENGTHS = (5, 11, 17)  # target token counts; the longest word prefix <= target
MARGIN_REL = 1e-3
N_RANDOM_TEXTS = 100
TEXT_SEED = 20261203

# Seeds found with --search-seeds (first seed >= the start value that passes).
SEEDS = {
    "llama_gqa": 1003,
    "qwen2_tied": 2000,
    "gpt2": 3001,
    "import/llama_bf16_sharded": 4000,
    "import/llama_f16": 5002,
}

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# ---------------------------------------------------------------------------
# Training corpus (written for this script; mostly English so that merges form,
# with a little of everything so a few multibyte characters also get merged).
# ---------------------------------------------------------------------------
CORPUS = """\
In the beginning the engine read the weights, and the weights were many.
The model reads a prompt, splits it into tokens, and predicts the next token.
Each layer has attention and a feed forward network; the attention looks back
over the tokens that came before, and the network mixes what it has seen.
We run the same model on many machines, and every machine holds a part of it.
The first rank reads the file, the second rank waits, and then they all agree.
When the numbers match the reference, the test passes; when they do not, it fails.
It's not the size of the model that matters, it's whether the answer is right.
They've said that we'll see; I'm sure she'd agree, and you're welcome to check.
There are 3 prompts, 20 greedy tokens, 128 positions and 2 layers in each model.
Numbers like 1234, 56789, 3.14159 and 2026-12-03 appear in the text as well.
The quick brown fox jumps over the lazy dog. The lazy dog sleeps in the sun.
Hello, world! Hello again, world. Goodbye, world... (for now) [really] {yes}.
Le café est très bon, naïve façade, Zürich, Ångström, élève, señor, crème brûlée.
你好，世界。我们的模型很小。日本語のテキストです。한국어 문장입니다.
Emoji: 😀 👍 🎉 and more text after them, because the text goes on and on.
Tabs\tand\tnewlines\nare whitespace too; so are  double  spaces   and more.
def main(argc, argv): return argc + 1  # code looks like this, with = and ==.
"""


def corpus_lines():
    lines = CORPUS.splitlines()
    # Repeat with small variations so counts are not all equal (fewer BPE ties).
    out = []
    for i in range(4):
        for j, line in enumerate(lines):
            if (i + j) % 3 != 0 or i == 0:
                out.append(line)
    return out


# ---------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------
def spm_vocab_merges(n_trained, limit_alphabet):
    """Train a SentencePiece-like BPE (words marked with U+2581) and return the
    LLaMA-2 layout: <unk>=0 <s>=1 </s>=2, <0x00>..<0xFF>=3..258, then the trained
    pieces in training order."""
    # The trainer's own limit_alphabet breaks count ties in hash order (not
    # reproducible), so keep the most frequent characters ourselves, ties by code point;
    # the others are dropped from the training text and reach the model as bytes.
    lines = corpus_lines()
    counts = {}
    for line in lines:
        for ch in line.replace(" ", "\u2581"):
            counts[ch] = counts.get(ch, 0) + 1
    keep = set(sorted(counts, key=lambda c: (-counts[c], c))[:limit_alphabet])
    keep.add("\u2581")
    lines = ["".join(ch for ch in line if ch in keep or ch == " ") for line in lines]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always",
                                                 split=True)
    trainer = trainers.BpeTrainer(vocab_size=n_trained, special_tokens=[], show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    trained = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in trained:
        assert piece not in vocab, piece
        vocab[piece] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return vocab, merges


def spm_decoder():
    return decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                              decoders.Fuse(), decoders.Strip(" ", 1, 0)])


def spm_tokenizer(vocab, merges, form):
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>",
                               byte_fallback=True, fuse_unk=True))
    if form == "legacy":  # LLaMA-2 / TinyLlama / Mistral v0.1 tokenizer.json
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                               normalizers.Replace(" ", "\u2581")])
        tok.pre_tokenizer = None
    else:  # "metaspace": transformers' LlamaConverter with legacy=False
        tok.normalizer = None
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581",
                                                     prepend_scheme="first", split=False)
    tok.decoder = spm_decoder()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in ("<unk>", "<s>", "</s>")])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok


def bytelevel_tokenizer(kind, n_trained, specials):
    """Byte-level BPE. kind: 'gpt2' (ByteLevel pre-tokenizer with its builtin regex),
    'qwen2' (NFC + Split(Qwen2 regex) + ByteLevel(use_regex=False)),
    'llama3' (Split(LLaMA-3 regex) + ByteLevel(use_regex=False), BOS template)."""
    tok = Tokenizer(models.BPE(unk_token=None))
    if kind == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    else:
        regex = QWEN2_REGEX if kind == "qwen2" else LLAMA3_REGEX
        if kind == "qwen2":
            tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                     use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=256 + n_trained, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[])
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    if kind == "llama3":
        tok.model.ignore_merges = True  # as in LLaMA-3's tokenizer.json
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    if kind == "qwen2":
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    elif kind == "llama3":
        bos = specials[0]
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=bos + " $A", pair=f"{bos} $A {bos} $B",
                                          special_tokens=[(bos, tok.token_to_id(bos))])])
    return tok


def save_tokenizer(tok, out_dir, **special):
    """Save through transformers so tokenizer_config.json is what it writes."""
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok,
                                                clean_up_tokenization_spaces=False, **special)
    fast.save_pretrained(out_dir)
    return fast


# ---------------------------------------------------------------------------
# Tokenizer cases
# ---------------------------------------------------------------------------
FIXED_TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "!!! ??? ... ,,, ;:-- (a) [b] {c} <d> \"q\" 'x' `y` @#$%^&*_+=|\\/~",
    "it's don't I'm we'll they've she'd you're IT'S DON'T",
    "3.14159 2026-12-03 1,000,000 0x1F 42",
    "1234567890123456789012345678901234567890",
    "a1b22c333d4444e55555",
    "你好，世界。日本語のテキスト。한국어 문장",
    "😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷",
    "café naïve Ångström Zürich façade señor",
    "e\u0301 a\u0308 n\u0303 o\u0302 (combining marks)",
    "Привет мир, Ελληνικά, مرحبا, שלום",
    "a\tb\t\tc\t",
    "line1\nline2\n\nline3\r\nend\n",
    "a  b   c    d     e",
    "   leading spaces",
    "trailing spaces   ",
    " ",
    "  ",
    "\n",
    "\t",
    " \n \t\n  ",
    "nbsp\u00a0and\u3000ideographic space",
    "zero\u200bwidth\u200djoiner",
    "x",
    "",
]


def special_texts(specials):
    a = specials[0]
    b = specials[1] if len(specials) > 1 else specials[0]
    return [a, f"{a}Hello{b}", f"Hello {a} world {b} end", f" {a} ", f"{a}{a}{b}",
            f"text{b}\n{a}more"]


def random_texts(specials, n, seed):
    rng = random.Random(seed)
    pools = [
        ["hello", "world", "the", "model", "token", "Engine", "RANK", "it's", "we'll",
         "don't", "quick", "fox", "éte", "naïve", "Zürich"],
        ["0", "7", "42", "2026", "1234567", "3.14", "99999999999", "1,000"],
        ["你", "好", "世界", "日本語", "テキスト", "한국어"],
        ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🎉"],
        ["!", "?", "...", ",", ";", "(", ")", "--", "'", "\"", "#", "==", "<", ">"],
        ["e\u0301", "a\u0308", "ñ", "Å", "\u00a0"],
    ]
    seps = ["", " ", " ", " ", "  ", "\t", "\n", "\n\n", "   ", " \n"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 8)):
            if specials and rng.random() < 0.06:
                parts.append(rng.choice(specials))
            else:
                parts.append(rng.choice(rng.choice(pools)))
            parts.append(rng.choice(seps))
        if rng.random() < 0.7:
            parts.pop()
        text = "".join(parts)
        if rng.random() < 0.15:
            text = " " + text
        out.append(text)
    return out


def write_tokenizer_cases(hf_dir, specials, path):
    """The truth is transformers' AutoTokenizer loaded from the saved directory; the
    raw tokenizers.Tokenizer from tokenizer.json must agree (it is what we port)."""
    auto = transformers.AutoTokenizer.from_pretrained(hf_dir)
    raw = Tokenizer.from_file(os.path.join(hf_dir, "tokenizer.json"))
    texts = FIXED_TEXTS + special_texts(specials) + random_texts(specials, N_RANDOM_TEXTS,
                                                                 TEXT_SEED)
    cases = []
    for text in texts:
        ids = auto.encode(text, add_special_tokens=False)
        ids_special = auto.encode(text, add_special_tokens=True)
        if raw.encode(text, add_special_tokens=False).ids != ids or \
                raw.encode(text, add_special_tokens=True).ids != ids_special:
            sys.exit(f"{hf_dir}: AutoTokenizer and tokenizers disagree on {text!r}")
        decoded = auto.decode(ids, skip_special_tokens=False,
                              clean_up_tokenization_spaces=False)
        cases.append({"text": text, "ids": ids, "ids_special": ids_special,
                      "decoded": decoded})
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n")
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]\n")
    return len(cases)


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
def init_weights(model, seed, std):
    """Our own init (not transformers'): every matrix N(0, std^2); norm weights
    1 + N(0, 0.2^2) and biases N(0, 0.1^2), so a forward that ignores a norm weight
    or a bias is caught. Iterates named_parameters in order (tied weights once)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if p.dim() >= 2:
                p.copy_(noise * std)
            elif name.endswith("bias"):
                p.copy_(noise * 0.1)
            else:  # norm / layernorm weight
                p.copy_(1.0 + noise * 0.2)


PROMPT_SOURCES = (
    # One source per prompt, all different from the first token on, so a batched
    # forward that mixes up rows of different sequences cannot pass by luck.
    "The model reads the prompt and the engine writes the answer , one token at a time",
    "Every rank waits for the others , and then they all agree on the numbers in the file",
    "Hello world ! It's 2026 and we check it again , 1 2 3 4 5 6 7 8 9 , "
    "while the lazy dog sleeps in the sun",
)


def prompt_ids(tok, target_lengths):
    """For each target length: the first window of words of its source (by start,
    then length) that tokenizes to exactly `target` ids (add_special_tokens=True);
    else the longest prefix below it."""
    out = []
    for target, source in zip(target_lengths, PROMPT_SOURCES):
        words = source.split()
        best = None
        for start in range(len(words)):
            for k in range(1, len(words) - start + 1):
                text = " ".join(words[start:start + k]).replace(" ,", ",").replace(" !", "!")
                ids = tok.encode(text, add_special_tokens=True)
                if len(ids) == target or (start == 0 and len(ids) < target):
                    best = (text, ids)
                if len(ids) >= target:
                    break
            if best is not None and len(best[1]) == target:
                break
        assert best is not None
        out.append(best)
    return out


@torch.no_grad()
def run_reference(model, prompts):
    """Returns per prompt: (logits [T,V] f32, greedy [G], min relative margin)."""
    results = []
    for _, ids in prompts:
        x = torch.tensor([ids], dtype=torch.long)
        logits = model(input_ids=x).logits[0].float().numpy().copy()
        seq = list(ids)
        greedy, margins = [], []
        for _ in range(GREEDY_TOKENS):
            last = model(input_ids=torch.tensor([seq], dtype=torch.long)).logits[0, -1].float()
            top = torch.topk(last, 2).values
            margins.append(float((top[0] - top[1]) / last.abs().max()))
            nxt = int(torch.argmax(last))
            greedy.append(nxt)
            seq.append(nxt)
        results.append((logits, greedy, min(margins)))
    return results


@torch.no_grad()
def bf16_weight_stats(model, prompts, results):
    """What rounding the weights to bf16 (compute still f32) does in transformers, over
    every position of prompt + greedy continuation: top-1 agreement with the f32 model,
    mean and max KL(p_f32 || p_bf16) in nats. Stored as hints for the bf16 test bounds."""
    rounded = copy.deepcopy(model)
    for p in rounded.parameters():
        p.copy_(p.to(torch.bfloat16).float())
    agree, kls = [], []
    for (_, ids), (_, greedy, _) in zip(prompts, results):
        x = torch.tensor([list(ids) + list(greedy)], dtype=torch.long)
        a = torch.log_softmax(model(input_ids=x).logits[0].double(), dim=-1)
        b = torch.log_softmax(rounded(input_ids=x).logits[0].double(), dim=-1)
        agree += (a.argmax(-1) == b.argmax(-1)).tolist()
        kls += (a.exp() * (a - b)).sum(-1).tolist()
    return {"bf16_weights_top1_agreement": float(np.mean(agree)),
            "bf16_weights_kl_mean": float(np.mean(kls)),
            "bf16_weights_kl_max": float(np.max(kls)),
            "bf16_weights_positions": len(agree)}


def write_reference(path, prompts, results, seed, extra=None):
    if os.path.exists(path):
        os.remove(path)
    with h5py.File(path, "w", track_order=False) as f:
        f.attrs["n_prompts"] = np.int32(len(prompts))
        f.attrs["greedy_tokens"] = np.int32(GREEDY_TOKENS)
        f.attrs["transformers_version"] = str(transformers.__version__)
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["seed"] = np.int64(seed)
        for key, value in (extra or {}).items():
            f.attrs[key] = np.int64(value) if isinstance(value, int) else np.float64(value)
        for i, ((text, ids), (logits, greedy, margin)) in enumerate(zip(prompts, results)):
            g = f.create_group(f"prompt_{i}")
            g.attrs["text"] = text
            g.attrs["min_greedy_margin_rel"] = np.float64(margin)
            g.create_dataset("input_ids", data=np.asarray(ids, dtype=np.int32),
                             track_times=False)
            g.create_dataset("logits", data=logits.astype(np.float32), track_times=False)
            g.create_dataset("greedy", data=np.asarray(greedy, dtype=np.int32),
                             track_times=False)


def to_old_config_form(hf_dir, torch_dtype):
    """Rewrite config.json from transformers 5's form (dtype, rope_parameters) to the
    older one (torch_dtype, top-level rope_theta), as checkpoints made before v5 have."""
    path = os.path.join(hf_dir, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg.pop("dtype", None)
    cfg["torch_dtype"] = torch_dtype
    rope = cfg.pop("rope_parameters", None)
    if rope is not None:
        assert rope.get("rope_type", "default") == "default", rope
        cfg["rope_theta"] = rope["rope_theta"]
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def build_model(name, cls, config, seed, std, tok, hf_dir, save_dtype=torch.float32,
                old_form=None, max_shard_size=None, search=False):
    """Make, check, save and reload one model; returns (prompts, results, seed)."""
    config._attn_implementation = "eager"
    prompts = prompt_ids(tok, PROMPT_LENGTHS)
    while True:
        torch.manual_seed(seed)
        model = cls(config).eval()
        init_weights(model, seed, std)
        if save_dtype != torch.float32:  # reference = f32 run on the stored, rounded weights
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.to(save_dtype).float())
        results = run_reference(model, prompts)
        margin = min(r[2] for r in results)
        if margin > MARGIN_REL:
            break
        if not search:
            sys.exit(f"{name}: seed {seed} gives a greedy margin {margin:.2e} <= {MARGIN_REL}; "
                     f"run with --search-seeds and update SEEDS")
        print(f"  {name}: seed {seed} margin {margin:.2e}, trying {seed + 1}")
        seed += 1
    os.makedirs(hf_dir, exist_ok=True)
    to_save = model.to(save_dtype) if save_dtype != torch.float32 else model
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    to_save.save_pretrained(hf_dir, **kwargs)
    if old_form:
        to_old_config_form(hf_dir, old_form)
    # Reload what was written, the way a user would, and check it gives the same logits.
    again = transformers.AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        for (_, ids), (logits, _, _) in zip(prompts, results):
            got = again(input_ids=torch.tensor([ids])).logits[0].float().numpy()
            err = np.abs(got - logits).max()
            if err > 1e-6 * np.abs(logits).max():
                sys.exit(f"{name}: reloaded model differs from the built one by {err}")
    extra = {}
    if save_dtype == torch.float32:
        extra = bf16_weight_stats(model, prompts, results)
    print(f"  {name}: seed {seed}, vocab {config.vocab_size}, prompt lengths "
          f"{[len(p[1]) for p in prompts]}, min greedy margin {margin:.3e}"
          + "".join(f", {k} {v:.4g}" for k, v in extra.items()))
    return prompts, results, seed, extra


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------
def make_spm_family(out, only, search):
    vocab, merges = spm_vocab_merges(n_trained=144, limit_alphabet=60)
    tok = spm_tokenizer(vocab, merges, "legacy")
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    llama_dir = os.path.join(out, "llama_gqa")
    hf = os.path.join(llama_dir, "hf")
    if want(only, "llama_gqa"):
        fresh_dir(llama_dir)
        fast = save_tokenizer(tok, hf, **specials)
        config = transformers.LlamaConfig(
            vocab_size=len(vocab), hidden_size=96, num_attention_heads=6,
            num_key_value_heads=2, head_dim=16, intermediate_size=520,
            num_hidden_layers=2, tie_word_embeddings=False, max_position_embeddings=128,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            rms_norm_eps=1e-5, initializer_range=0.2, bos_token_id=1, eos_token_id=2)
        prompts, results, seed, extra = build_model("llama_gqa", transformers.LlamaForCausalLM,
                                             config, SEEDS["llama_gqa"], 0.2, fast, hf,
                                             search=search)
        write_reference(os.path.join(llama_dir, "reference.h5"), prompts, results, seed, extra)
        n = write_tokenizer_cases(hf, ["<s>", "</s>", "<unk>"],
                                  os.path.join(llama_dir, "tokenizer_cases.json"))
        print(f"  llama_gqa: {n} tokenizer cases")

    for name, dtype, old_form, shard in (
            ("import/llama_bf16_sharded", torch.bfloat16, None, "60KB"),
            ("import/llama_f16", torch.float16, "float16", None)):
        if not want(only, name):
            continue
        d = os.path.join(out, name)
        fresh_dir(d)
        h = os.path.join(d, "hf")
        fast = save_tokenizer(tok, h, **specials)
        config = transformers.LlamaConfig(
            vocab_size=len(vocab), hidden_size=32, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=88, num_hidden_layers=1,
            tie_word_embeddings=False, max_position_embeddings=128,
            rope_parameters={"rope_type": "default", "rope_theta": 50000.0},
            rms_norm_eps=1e-5, initializer_range=0.25, bos_token_id=1, eos_token_id=2)
        prompts, results, seed, extra = build_model(name, transformers.LlamaForCausalLM, config,
                                             SEEDS[name], 0.25, fast, h, save_dtype=dtype,
                                             old_form=old_form, max_shard_size=shard,
                                             search=search)
        write_reference(os.path.join(d, "reference.h5"), prompts, results, seed, extra)

    if want(only, "tokenizers/metaspace"):
        d = os.path.join(out, "tokenizers", "metaspace")
        fresh_dir(d)
        with tempfile.TemporaryDirectory() as tmp:
            save_tokenizer(spm_tokenizer(vocab, merges, "metaspace"), tmp, **specials)
            copy_tokenizer_files(tmp, d)
            n = write_tokenizer_cases(tmp, ["<s>", "</s>", "<unk>"],
                                      os.path.join(d, "tokenizer_cases.json"))
        print(f"  tokenizers/metaspace: vocab {len(vocab)}, {n} tokenizer cases")


def make_qwen2(out, only, search):
    if not want(only, "qwen2_tied"):
        return
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = bytelevel_tokenizer("qwen2", 72, specials)
    d = os.path.join(out, "qwen2_tied")
    fresh_dir(d)
    hf = os.path.join(d, "hf")
    fast = save_tokenizer(tok, hf, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    eot = tok.token_to_id("<|endoftext|>")
    config = transformers.Qwen2Config(
        vocab_size=tok.get_vocab_size(), hidden_size=64, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=136, num_hidden_layers=2,
        tie_word_embeddings=True, max_position_embeddings=128,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        rms_norm_eps=1e-6, initializer_range=0.2, bos_token_id=eot, eos_token_id=eot,
        use_sliding_window=False)
    prompts, results, seed, extra = build_model("qwen2_tied", transformers.Qwen2ForCausalLM, config,
                                         SEEDS["qwen2_tied"], 0.2, fast, hf,
                                         old_form="float32", search=search)
    write_reference(os.path.join(d, "reference.h5"), prompts, results, seed, extra)
    n = write_tokenizer_cases(hf, specials, os.path.join(d, "tokenizer_cases.json"))
    print(f"  qwen2_tied: {n} tokenizer cases")


def make_gpt2(out, only, search):
    if not want(only, "gpt2"):
        return
    tok = bytelevel_tokenizer("gpt2", 60, ["<|endoftext|>"])
    d = os.path.join(out, "gpt2")
    fresh_dir(d)
    hf = os.path.join(d, "hf")
    fast = save_tokenizer(tok, hf, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                          unk_token="<|endoftext|>")
    eot = tok.token_to_id("<|endoftext|>")
    config = transformers.GPT2Config(
        vocab_size=tok.get_vocab_size(), n_embd=64, n_head=4, n_layer=2, n_positions=128,
        initializer_range=0.2, bos_token_id=eot, eos_token_id=eot)
    prompts, results, seed, extra = build_model("gpt2", transformers.GPT2LMHeadModel, config,
                                         SEEDS["gpt2"], 0.2, fast, hf, search=search)
    write_reference(os.path.join(d, "reference.h5"), prompts, results, seed, extra)
    n = write_tokenizer_cases(hf, ["<|endoftext|>"], os.path.join(d, "tokenizer_cases.json"))
    print(f"  gpt2: {n} tokenizer cases")


def make_llama3(out, only):
    if not want(only, "tokenizers/llama3"):
        return
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    tok = bytelevel_tokenizer("llama3", 90, specials)
    d = os.path.join(out, "tokenizers", "llama3")
    fresh_dir(d)
    with tempfile.TemporaryDirectory() as tmp:
        save_tokenizer(tok, tmp, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>")
        copy_tokenizer_files(tmp, d)
        n = write_tokenizer_cases(tmp, specials, os.path.join(d, "tokenizer_cases.json"))
    print(f"  tokenizers/llama3: vocab {tok.get_vocab_size()}, {n} tokenizer cases")


def copy_tokenizer_files(src, dst):
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))


def fresh_dir(d):
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)


def want(only, name):
    return not only or name in only


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    ap.add_argument("--only", nargs="*", help="fixture names, e.g. llama_gqa import/llama_f16")
    ap.add_argument("--search-seeds", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    out = os.path.abspath(args.out)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
          f"tokenizers {tokenizers.__version__} -> {out}")
    make_spm_family(out, args.only, args.search_seeds)
    make_qwen2(out, args.only, args.search_seeds)
    make_gpt2(out, args.only, args.search_seeds)
    make_llama3(out, args.only)


if __name__ == "__main__":
    main()
