#!/usr/bin/env python3
"""Writes a random-weight LLaMA checkpoint as a Hugging Face directory for the
scaling benchmarks (issue 4): bf16 weights in model.safetensors, config.json and
generation_config.json. Default shape: hidden 2048, 16 layers, 32 heads / 4 KV
heads, intermediate 5632, vocab 32000, untied head: 0.84 G parameters, 1.7 GB.

Needs numpy only: bf16 is written as the upper 16 bits of float32 (rounded to
nearest even) and the safetensors file is laid out by hand (8-byte header length,
JSON header, raw little-endian data), one tensor at a time so memory stays small.

    python3 scripts/make_bench_model.py OUT_DIR [--layers 16 --hidden 2048 ...]
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def bf16_bits(x):
    """float32 array -> uint16 bf16 bit patterns, round to nearest even."""
    u = x.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def tensors(a):
    """(name, shape, kind) in checkpoint order; kind 'norm' is all ones."""
    h, kv = a.hidden, a.kv_heads * (a.hidden // a.heads)
    yield "model.embed_tokens.weight", (a.vocab, h), "w"
    for i in range(a.layers):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (h,), "norm"
        yield p + "self_attn.q_proj.weight", (h, h), "w"
        yield p + "self_attn.k_proj.weight", (kv, h), "w"
        yield p + "self_attn.v_proj.weight", (kv, h), "w"
        yield p + "self_attn.o_proj.weight", (h, h), "w"
        yield p + "post_attention_layernorm.weight", (h,), "norm"
        yield p + "mlp.gate_proj.weight", (a.intermediate, h), "w"
        yield p + "mlp.up_proj.weight", (a.intermediate, h), "w"
        yield p + "mlp.down_proj.weight", (h, a.intermediate), "w"
    yield "model.norm.weight", (h,), "norm"
    yield "lm_head.weight", (a.vocab, h), "w"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=5632)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)

    header, offset = {"__metadata__": {"format": "pt"}}, 0
    items = list(tensors(a))
    for name, shape, _ in items:
        n = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # data starts 8-byte aligned
    path = os.path.join(a.out, "model.safetensors")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape, kind in items:
            if kind == "norm":
                x = np.ones(shape, np.float32)
            else:  # scaled so activations stay O(1) through the layers
                x = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.5 / np.sqrt(shape[-1]))
            f.write(bf16_bits(x).astype("<u2").tobytes())
    os.replace(tmp, path)

    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": a.hidden, "intermediate_size": a.intermediate,
        "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads, "head_dim": a.hidden // a.heads,
        "vocab_size": a.vocab, "max_position_embeddings": a.ctx,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
        "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
        "torch_dtype": "bfloat16",
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2}, f, indent=2)
    n_params = sum(int(np.prod(s)) for _, s, _ in items)
    print(f"make_bench_model: {a.out}: {n_params / 1e9:.2f} G parameters, "
          f"{os.path.getsize(path) / 1e9:.2f} GB bf16", file=sys.stderr)


if __name__ == "__main__":
    main()
