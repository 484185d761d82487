#!/usr/bin/env python3
"""The compact summary of a measure_all.sh run: reads WORK/json/*.json (mpillm
bench --json) and WORK/blend/compare.md, prints the figures the issues ask for.
Only what was measured is printed; a missing run reads "not measured".

  scripts/device/summarize.py WORK
"""
import glob
import json
import os
import re
import sys


def load(work, label):
    path = os.path.join(work, "json", label + ".json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def first(o):
    r = (o or {}).get("results") or []
    return r[0] if r else None


def num(v, fmt="{:.1f}"):
    return fmt.format(v) if isinstance(v, (int, float)) else "?"


def labels(work, prefix):
    out = []
    for p in glob.glob(os.path.join(work, "json", prefix + "*.json")):
        name = os.path.basename(p)[:-5]
        m = re.search(r"(\d+)$", name)
        out.append((int(m.group(1)) if m else 0, name))
    return [n for _, n in sorted(out)]


def main():
    work = sys.argv[1]
    print("==== SUMMARY ====")

    print("issue 3: single-rank bf16 decode, batch 1 (bw use = weight bytes per token x tok/s / probed bandwidth)")
    rows = labels(work, "a_t")
    if not rows:
        print("  not measured")
    for name in rows:
        o = load(work, name)
        r = first(o)
        if not r:
            print(f"  {name}: no result")
            continue
        bw = o.get("bandwidth_bytes_per_s")
        share = r.get("bandwidth_share")
        print(f"  threads {o.get('threads_per_rank', '?'):>2}: decode {num(r.get('decode_tok_s'), '{:.2f}')}"
              f" +- {num(r.get('decode_tok_s_std'), '{:.2f}')} tok/s, probe {num(bw / 1e9 if bw else None)} GB/s,"
              f" bw use {num(share * 100 if isinstance(share, (int, float)) else None, '{:.0f}')}%,"
              f" weights {num(o.get('weight_bytes_total', 0) / 1e9, '{:.2f}')} GB")

    print("issue 4: tensor parallel, 1 thread per rank, batch 1 (target: tp8 >= 5x tp1, comm < 15% at tp8)")
    rows = labels(work, "b_tp")
    base = None
    if not rows:
        print("  not measured")
    for name in rows:
        o = load(work, name)
        r = first(o)
        if not r:
            print(f"  {name}: no result")
            continue
        d = r.get("decode_tok_s")
        if o.get("tp") == 1 and isinstance(d, (int, float)):
            base = d
        sp = d / base if base and isinstance(d, (int, float)) else None
        print(f"  tp {o.get('tp', '?'):>2}: decode {num(d, '{:.2f}')} +- {num(r.get('decode_tok_s_std'), '{:.2f}')} tok/s,"
              f" x{num(sp, '{:.2f}')} vs tp1, p50 {num(r.get('latency_p50_ms'), '{:.2f}')} ms,"
              f" comm {num(r.get('comm_pct_mean'))}% mean / {num(r.get('comm_pct_max'))}% max,"
              f" prefill {num(r.get('prefill_tok_s'))} tok/s")

    print("issue 4: data parallel, 1 thread per rank, same batch per replica (target: dp8 >= 7x dp1)")
    rows = labels(work, "b_dp")
    base = None
    if not rows:
        print("  not measured")
    for name in rows:
        o = load(work, name)
        r = first(o)
        if not r:
            print(f"  {name}: no result")
            continue
        d = r.get("decode_tok_s")
        if o.get("dp") == 1 and isinstance(d, (int, float)):
            base = d
        sp = d / base if base and isinstance(d, (int, float)) else None
        print(f"  dp {o.get('dp', '?'):>2}: batch {r.get('batch_total', '?')} total, decode {num(d)} tok/s,"
              f" x{num(sp, '{:.2f}')} vs dp1, prefill {num(r.get('prefill_tok_s'))} tok/s,"
              f" comm {num(r.get('comm_pct_mean'))}%")

    print("issue 5: seed network (scripts/blend_bench.sh), rows/s")
    compare = os.path.join(work, "blend", "compare.md")
    if os.path.exists(compare):
        with open(compare) as f:
            print("".join("  " + line for line in f))
    else:
        print("  not measured")


if __name__ == "__main__":
    sys.exit(main())
