#!/usr/bin/env python3
"""A random-weight bf16 LLaMA as a Hugging Face directory (config.json +
model.safetensors, no tokenizer) in seconds, for benchmarks only: numpy writes
random bf16 bit patterns straight into the safetensors file (magnitudes in
[2^-6, 2^-5), random signs; norms are 1), so no torch and no float conversion.
`mpillm convert DIR -o model.h5` turns it into a model file.

  scripts/device/make_model.py OUT_DIR [--size device|small] [--seed S]

device: hidden 2048, 16 heads / 8 KV heads, intermediate 5632, 12 layers,
vocab 32000, untied: 0.67 G parameters, 1.34 GB of bf16 (>= 1 GB, above any
cache; every split by 1, 2, 4 and 8 is even). small: a few MB for dry runs.
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np

SIZES = {
    "device": dict(hidden_size=2048, num_attention_heads=16, num_key_value_heads=8,
                   intermediate_size=5632, num_hidden_layers=12, vocab_size=32000),
    "small": dict(hidden_size=256, num_attention_heads=8, num_key_value_heads=4,
                  intermediate_size=704, num_hidden_layers=2, vocab_size=1000),
}


def tensors(c):
    h, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = h // c["num_attention_heads"]
    kv = hd * c["num_key_value_heads"]
    yield "model.embed_tokens.weight", (v, h), False
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        yield p + "input_layernorm.weight", (h,), True
        yield p + "self_attn.q_proj.weight", (h, h), False
        yield p + "self_attn.k_proj.weight", (kv, h), False
        yield p + "self_attn.v_proj.weight", (kv, h), False
        yield p + "self_attn.o_proj.weight", (h, h), False
        yield p + "post_attention_layernorm.weight", (h,), True
        yield p + "mlp.gate_proj.weight", (i, h), False
        yield p + "mlp.up_proj.weight", (i, h), False
        yield p + "mlp.down_proj.weight", (h, i), False
    yield "model.norm.weight", (h,), True
    yield "lm_head.weight", (v, h), False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--size", choices=sorted(SIZES), default="device")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    t0 = time.time()
    c = dict(SIZES[a.size])
    config = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu",
                  max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0,
                  tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                  bos_token_id=1, eos_token_id=2, torch_dtype="bfloat16", **c)
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    layout, header, offset = list(tensors(c)), {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in layout:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    rng = np.random.default_rng(a.seed)
    # one pool of random bits, sliced at random offsets: fast, and no two tensors alike
    pool_n = 1 << 24
    pool = rng.integers(0, 1 << 16, size=pool_n + (1 << 22), dtype=np.uint16)
    pool = (pool & np.uint16(0x807F)) | np.uint16(0x3C80)  # sign, exponent 2^-6, mantissa
    one = np.uint16(0x3F80)  # bf16 1.0
    path = os.path.join(a.out_dir, "model.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, shape, is_norm in layout:
            n = int(np.prod(shape))
            if is_norm:
                f.write(np.full(n, one, dtype=np.uint16).tobytes())
                continue
            left = n
            while left > 0:
                k = min(left, 1 << 22)
                s = int(rng.integers(0, pool_n))
                f.write(pool[s:s + k].tobytes())
                left -= k
    params = offset // 2
    print(f"make_model: {a.size} LLaMA, {params / 1e9:.3f} G parameters, "
          f"{offset / 1e9:.2f} GB bf16 in {a.out_dir} ({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
