#!/usr/bin/env python3
"""Trains the bundled KJV model: a small LLaMA (grouped-query attention) on one GPU.

  scripts/kjv/train.py --data DIR --tokenizer DIR --out DIR [--max-seconds S] [--steps N]

DATA holds train.txt, valid.txt, heldout.txt, heldout-head.txt (prepare_corpus.py);
TOKENIZER holds tokenizer.json + tokenizer_config.json (train_tokenizer.py). Writes:
  OUT/hf/          the chosen checkpoint as a Hugging Face directory, bf16 safetensors
  OUT/loss.png     training and validation loss curves
  OUT/results.json hyperparameters, times, losses, token counts, held-out perplexities
Every hyperparameter and seed is a constant below. The checkpoint kept is the one with
the lowest validation loss (evaluated every EVAL_EVERY steps).

Held-out perplexity (the definition `mpillm eval` uses): tokenize the whole text without
special tokens, cut it into consecutive non-overlapping windows of ctx tokens (the last
may be shorter), run each window independently from position 0, sum the NLL of tokens
1..len-1 of each window (each predicted from the tokens before it in its window), and
ppl = exp(total NLL / number of predicted tokens). Computed in f32 (no TF32, no
autocast) twice: on the weights rounded to bf16 (what model.h5 holds) and on the f32
master weights.
"""
import argparse
import json
import math
import os
import platform
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

# ---- hyperparameters (all of them) ----
SEED = 1611                 # the year of the King James Version
VOCAB_SIZE = 4096
HIDDEN = 384
INTERMEDIATE = 1024
LAYERS = 8
HEADS = 6                   # head_dim 64
KV_HEADS = 2                # grouped-query attention: 3 query heads per KV head
CTX = 512
ROPE_THETA = 10000.0
NORM_EPS = 1e-5
INIT_STD = 0.02
DROPOUT = 0.2               # on the embedding and on each residual branch (training only)
BATCH = 32                  # sequences of CTX tokens per step (16384 tokens)
STEPS = 3000
WARMUP = 100
LR_MAX = 1e-3
LR_MIN = 1e-4               # cosine decay from LR_MAX to LR_MIN over STEPS
WEIGHT_DECAY = 0.1          # on matrices only (not norms)
BETAS = (0.9, 0.95)
GRAD_CLIP = 1.0
EVAL_EVERY = 100
HEAD_CTXS = (128, CTX)      # perplexity of heldout-head.txt at these contexts (CI test)
SAMPLE_PROMPT = "In the beginning"
SAMPLE_TEMPERATURE = 0.8
SAMPLE_TOP_K = 40
SAMPLE_TOKENS = 64
EOT_ID = 0


def log(msg):
    print(msg, flush=True)


def encode_file(tok, path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return np.array(tok.encode(text, add_special_tokens=False).ids, dtype=np.int64)


def make_model():
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE, hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
        head_dim=HIDDEN // HEADS, max_position_embeddings=CTX, rope_theta=ROPE_THETA,
        rms_norm_eps=NORM_EPS, initializer_range=INIT_STD, tie_word_embeddings=False,
        hidden_act="silu", attention_bias=False, mlp_bias=False,
        bos_token_id=EOT_ID, eos_token_id=EOT_ID, pad_token_id=EOT_ID)
    return LlamaForCausalLM(config)


def add_residual_dropout(model, p):
    """nanoGPT-style dropout on the embedding output and on the output of every
    attention and MLP block, as forward hooks: active only in train(), absent from the
    exported model (HF's Llama has no residual dropout of its own)."""
    def drop_tensor(module, args, out):
        return F.dropout(out, p, module.training)

    def drop_first(module, args, out):
        return (F.dropout(out[0], p, module.training),) + tuple(out[1:])

    hooks = [model.model.embed_tokens.register_forward_hook(drop_tensor)]
    for layer in model.model.layers:
        hooks.append(layer.self_attn.register_forward_hook(drop_first))
        hooks.append(layer.mlp.register_forward_hook(drop_tensor))
    return hooks


def lr_at(step):
    if step < WARMUP:
        return LR_MAX * (step + 1) / WARMUP
    t = (step - WARMUP) / max(1, STEPS - WARMUP)
    return LR_MIN + 0.5 * (LR_MAX - LR_MIN) * (1 + math.cos(math.pi * min(1.0, t)))


@torch.no_grad()
def window_nll(model, ids, ctx, device, autocast=False, batch=64):
    """Sum of NLL and count of predicted tokens over non-overlapping windows of ctx."""
    model.eval()
    windows = [ids[i:i + ctx] for i in range(0, len(ids), ctx)]
    total, count = 0.0, 0
    groups = {}
    for w in windows:
        if len(w) >= 2:
            groups.setdefault(len(w), []).append(w)
    for n, ws in groups.items():
        for b in range(0, len(ws), batch):
            x = torch.tensor(np.stack(ws[b:b + batch]), device=device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                logits = model(input_ids=x).logits
            loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)),
                                   x[:, 1:].reshape(-1), reduction="sum")
            total += loss.item()
            count += x.size(0) * (n - 1)
    return total, count


def perplexity(model, ids, ctx, device):
    total, count = window_nll(model, ids, ctx, device)
    return {"ctx": ctx, "tokens": int(len(ids)), "predicted": count, "nll": total,
            "ppl": math.exp(total / count)}


def plot_losses(path, train_curve, val_curve, best_step):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=80)
    steps = [s for s, _ in train_curve]
    vals = [v for _, v in train_curve]
    k = min(25, len(vals))  # running mean of the (noisy, dropout-on) training loss
    smooth = np.convolve(vals, np.ones(k) / k, mode="valid")
    ax.plot(steps[k - 1:], smooth, lw=1, label=f"train (dropout on, mean of {k} steps)")
    ax.plot([s for s, _ in val_curve], [v for _, v in val_curve], "o-", ms=3, lw=1,
            label="validation")
    ax.axvline(best_step, color="gray", ls=":", lw=1, label=f"chosen step {best_step}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_ylim(top=min(8.5, max(vals[:1] + [6.0])))
    ax.set_title("KJV LLaMA, %.1fM parameters" % (PARAMS / 1e6))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


PARAMS = 0


def main():
    global PARAMS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--data", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-seconds", type=float, default=330.0,
                    help="stop training early past this many seconds (a guard; recorded)")
    ap.add_argument("--steps", type=int, default=STEPS, help="override STEPS (smoke tests)")
    ap.add_argument("--smoke", action="store_true",
                    help="CPU smoke test of the script: 2048 tokens per split, batch 2")
    args = ap.parse_args()
    steps_total = args.steps
    t_start = time.time()

    device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    batch = 2 if args.smoke else BATCH
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)

    tok = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    data = {name: encode_file(tok, os.path.join(args.data, name + ".txt"))
            for name in ("train", "valid", "heldout", "heldout-head")}
    for name, ids in data.items():
        log(f"{name}: {len(ids)} tokens")
        if args.smoke:
            data[name] = ids[:2048 if name != "train" else 20000]

    model = make_model().to(device)
    PARAMS = sum(p.numel() for p in model.parameters())
    log(f"model: {PARAMS} parameters on {device} "
        f"({torch.cuda.get_device_name() if device == 'cuda' else platform.processor()})")
    hooks = add_residual_dropout(model, DROPOUT)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR_MAX, betas=BETAS, fused=(device == "cuda"))

    train_ids = torch.tensor(data["train"], device=device)
    valid_ids = data["valid"]
    n_starts = len(train_ids) - CTX - 1
    offsets = torch.arange(CTX + 1, device=device)

    train_curve, val_curve = [], []
    best = {"loss": float("inf"), "step": -1, "state": None}
    use_bf16 = device == "cuda"
    if device == "cuda":
        torch.cuda.synchronize()
    t_train = time.time()
    stopped_early = False
    step = 0
    for step in range(steps_total + 1):
        if step % EVAL_EVERY == 0 or step == steps_total:
            nll, cnt = window_nll(model, valid_ids, CTX, device, autocast=use_bf16)
            vloss = nll / cnt
            val_curve.append((step, vloss))
            if vloss < best["loss"]:
                best = {"loss": vloss, "step": step,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
            recent = np.mean([l for _, l in train_curve[-EVAL_EVERY:]]) if train_curve else float("nan")
            log(f"step {step:5d}  train {recent:.4f}  valid {vloss:.4f}  lr {lr_at(step):.2e}  "
                f"{time.time() - t_train:6.1f}s")
        if step == steps_total:
            break
        if time.time() - t_train > args.max_seconds:
            stopped_early = True
            log(f"stopping at step {step}: past --max-seconds {args.max_seconds}")
            break
        model.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        starts = torch.from_numpy(rng.integers(0, n_starts, size=batch)).to(device)
        chunk = train_ids[starts[:, None] + offsets]
        x, y = chunk[:, :-1], chunk[:, 1:]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB_SIZE), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        train_curve.append((step, loss.item()))
    if device == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.time() - t_train
    steps_done = len(train_curve)
    log(f"trained {steps_done} steps in {train_seconds:.1f}s; best validation {best['loss']:.4f} "
        f"at step {best['step']}")

    for h in hooks:
        h.remove()
    model.load_state_dict(best["state"])
    model.eval()

    # perplexities: f32 master weights, then the same weights rounded to bf16, in f32
    ppl = {"f32": {}, "bf16": {}}
    for kind in ("f32", "bf16"):
        if kind == "bf16":
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.to(torch.bfloat16).float())
        for name in ("heldout", "heldout-head"):
            for ctx in sorted({128, CTX}):
                r = perplexity(model, data[name], ctx, device)
                ppl[kind][f"{name}@{ctx}"] = r
                log(f"perplexity {kind:4s} {name}@{ctx}: {r['ppl']:.4f} "
                    f"({r['predicted']} predicted tokens)")
        vn, vc = window_nll(model, valid_ids, CTX, device)
        ppl[kind]["valid@%d" % CTX] = {"ctx": CTX, "predicted": vc, "nll": vn,
                                      "ppl": math.exp(vn / vc)}
    # model now holds bf16-rounded weights: what is exported and what model.h5 holds

    os.makedirs(args.out, exist_ok=True)
    hf = os.path.join(args.out, "hf")
    model.generation_config = GenerationConfig(
        bos_token_id=EOT_ID, eos_token_id=EOT_ID, pad_token_id=EOT_ID, do_sample=True,
        temperature=SAMPLE_TEMPERATURE, top_k=SAMPLE_TOP_K, max_length=CTX)
    model.to(torch.bfloat16).save_pretrained(hf, max_shard_size="100MB")
    # classic top-level rope_theta beside transformers 5's rope_parameters, for readers
    # that know only the LLaMA 2 style config
    cfg_path = os.path.join(hf, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["rope_theta"] = ROPE_THETA
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.tokenizer, name), os.path.join(hf, name))

    samples = []
    try:  # a sanity look at the text; a failure here must not lose the trained model
        for i in range(3):
            torch.manual_seed(SEED + i)
            x = torch.tensor([tok.encode(SAMPLE_PROMPT, add_special_tokens=False).ids], device=device)
            out = model.generate(x, do_sample=True, temperature=SAMPLE_TEMPERATURE,
                                 top_k=SAMPLE_TOP_K, max_new_tokens=SAMPLE_TOKENS,
                                 pad_token_id=EOT_ID)
            samples.append(tok.decode(out[0].tolist()))
            log(f"sample {i}: {samples[-1]!r}")
    except Exception as e:  # noqa: BLE001
        log(f"samples failed: {e!r}")

    last = [l for _, l in train_curve[-100:]]
    results = {
        "parameters": PARAMS,
        "architecture": {"type": "llama", "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE,
                         "layers": LAYERS, "heads": HEADS, "kv_heads": KV_HEADS,
                         "head_dim": HIDDEN // HEADS, "ctx": CTX, "vocab_size": VOCAB_SIZE,
                         "rope_theta": ROPE_THETA, "rms_norm_eps": NORM_EPS,
                         "tie_word_embeddings": False},
        "hyperparameters": {"seed": SEED, "batch": batch, "ctx": CTX, "steps": steps_total,
                            "warmup": WARMUP, "lr_max": LR_MAX, "lr_min": LR_MIN,
                            "schedule": "linear warmup, cosine decay",
                            "weight_decay": WEIGHT_DECAY, "betas": list(BETAS),
                            "grad_clip": GRAD_CLIP, "dropout": DROPOUT,
                            "eval_every": EVAL_EVERY, "precision": "bf16 autocast, f32 master"},
        "tokens": {name: int(len(ids)) for name, ids in data.items()},
        "tokens_seen": steps_done * batch * CTX,
        "epochs": steps_done * batch * CTX / len(data["train"]),
        "steps_done": steps_done,
        "stopped_early": stopped_early,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - t_start, 1),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "final_train_loss_mean_last_100_steps": float(np.mean(last)),
        "best_valid_step": best["step"],
        "best_valid_loss_bf16_autocast": best["loss"],
        "valid_curve": [[s, round(v, 5)] for s, v in val_curve],
        "perplexity_definition": "non-overlapping windows of ctx tokens (last may be shorter), "
                                 "each from position 0; NLL of tokens 1..len-1 of each window; "
                                 "exp(total NLL / predicted tokens); f32 compute",
        "perplexity": ppl,
        "pytorch_samples": {"prompt": SAMPLE_PROMPT, "temperature": SAMPLE_TEMPERATURE,
                            "top_k": SAMPLE_TOP_K, "max_new_tokens": SAMPLE_TOKENS,
                            "texts": samples},
    }
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    try:
        plot_losses(os.path.join(args.out, "loss.png"), train_curve, val_curve, best["step"])
    except Exception as e:  # noqa: BLE001
        log(f"plot failed: {e!r}")
    log(f"done in {time.time() - t_start:.1f}s")


if __name__ == "__main__":
    sys.exit(main())
