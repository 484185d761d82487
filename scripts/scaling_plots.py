#!/usr/bin/env python3
"""Strong- and weak-scaling plots from `mpillm bench --json` files (issue 4).

Strong scaling: runs with one replica (dp = 1) at the same batch size, by model
parallel layout (tp sweep, pp sweep): decode and prefill tok/s against ranks, with
the ideal line (one rank's rate x ranks) and the parallel efficiency.
Weak scaling: runs with pp = tp = 1 and the same batch per replica (dp sweep): total
throughput against replicas, ideal = dp x the dp = 1 rate, and efficiency.
Prints the numbers it plots, so the closing note can quote them.

    python3 scripts/scaling_plots.py bench_*.json -o OUT_DIR [--batch 1]
"""
import argparse
import json
import os
import sys


def load(paths):
    runs = []
    docs = []
    for p in paths:  # a bench file, or a list of them (device_scaling.sh's bench_all.json)
        with open(p) as f:
            d = json.load(f)
        docs += [(p, x) for x in (d if isinstance(d, list) else [d])]
    for p, d in docs:
        for r in d["results"]:
            runs.append(dict(file=os.path.basename(p), ranks=d["ranks"], dp=d["dp"], pp=d["pp"], tp=d["tp"],
                             threads=d.get("threads_per_rank", 1), **r))
    return runs


def series(runs, key, batch, fixed, threads):
    """runs varying `key` with the other factors fixed at 1, sorted by ranks"""
    out = [r for r in runs if r["batch_per_replica"] == batch and r["threads"] == threads
           and all(r[k] == 1 for k in fixed)]
    best = {}
    for r in out:  # one point per size: the last file given wins
        best[r[key]] = r
    return [best[k] for k in sorted(best)]


def plot(ax_rate, ax_eff, pts, xkey, ykey, label, lines):
    import numpy as np
    if not pts:
        return
    x = np.array([p[xkey] for p in pts], float)
    y = np.array([p[ykey] for p in pts], float)
    err = np.array([p.get(ykey + "_std", 0.0) for p in pts], float)
    base = [p for p in pts if p[xkey] == 1]
    ax_rate.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
    for ax in (ax_rate, ax_eff):
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [str(int(v)) for v in x])
    if base:
        y1 = base[0][ykey]
        ax_rate.plot(x, y1 * x, "k--", lw=0.8, label=f"ideal ({label})")
        eff = y / (y1 * x)
        ax_eff.plot(x, 100 * eff, marker="o", label=label)
        top = max(110.0, 100 * float(eff.max()) + 10, ax_eff.get_ylim()[1])
        ax_eff.set_ylim(0, top)
        for xi, yi, ei in zip(x, y, eff):
            lines.append(f"  {label:28s} {xkey}={int(xi):2d}  {yi:10.2f} tok/s  speed-up {yi / y1:5.2f}  efficiency {100 * ei:5.1f}%")
    else:
        for xi, yi in zip(x, y):
            lines.append(f"  {label:28s} {xkey}={int(xi):2d}  {yi:10.2f} tok/s  (no {xkey}=1 run for the ideal)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("-o", "--out", default=".")
    ap.add_argument("--batch", type=int, default=1, help="batch per replica of the strong-scaling runs")
    ap.add_argument("--weak-batch", type=int, default=None, help="batch per replica of the weak-scaling runs (default: the largest)")
    ap.add_argument("--threads", type=int, default=1, help="threads per rank of the runs to plot (default 1)")
    a = ap.parse_args()
    runs = load(a.files)
    if not runs:
        sys.exit("scaling_plots: no results in the files")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(a.out, exist_ok=True)
    lines = []

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    lines.append(f"strong scaling (dp = 1, batch {a.batch}, {a.threads} thread(s) per rank):")
    for key, fixed in (("tp", ("dp", "pp")), ("pp", ("dp", "tp"))):
        pts = series(runs, key, a.batch, fixed, a.threads)
        if len(pts) < 2:
            continue
        plot(axes[0][0], axes[1][0], pts, key, "decode_tok_s", f"decode, {key} sweep", lines)
        plot(axes[0][1], axes[1][1], pts, key, "prefill_tok_s", f"prefill, {key} sweep", lines)
        for p in pts:
            lines.append(f"  {key}={p[key]:2d}: comm {p['comm_pct_mean']:.1f}% mean / {p['comm_pct_max']:.1f}% max, "
                         f"latency p50 {p['latency_p50_ms']:.2f} ms p95 {p['latency_p95_ms']:.2f} ms, "
                         f"bandwidth share {100 * p['bandwidth_share']:.0f}%")
    for ax, t in ((axes[0][0], "decode"), (axes[0][1], "prefill")):
        ax.set(title=f"strong scaling: {t}", xlabel="ranks", ylabel="tok/s", yscale="log")
        ax.legend(fontsize=7)
    for ax in axes[1]:
        ax.set(xlabel="ranks", ylabel="efficiency (%)")
        ax.axhline(100, color="k", lw=0.8, ls="--")
        ax.legend(fontsize=7)
    fig.tight_layout()
    strong = os.path.join(a.out, "strong_scaling.png")
    fig.savefig(strong, dpi=120)

    dp_runs = [r for r in runs if r["pp"] == 1 and r["tp"] == 1 and r["threads"] == a.threads]
    wb = a.weak_batch or (max(r["batch_per_replica"] for r in dp_runs) if dp_runs else None)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    if wb is not None:
        lines.append(f"weak scaling (pp = tp = 1, batch {wb} per replica):")
        pts = series(runs, "dp", wb, ("pp", "tp"), a.threads)
        plot(ax1, ax2, pts, "dp", "decode_tok_s", "decode throughput", lines)
        plot(ax1, ax2, pts, "dp", "prefill_tok_s", "prefill throughput", lines)
    ax1.set(title="weak scaling: throughput", xlabel="replicas (dp)", ylabel="tok/s (all replicas)", yscale="log")
    ax2.set(title="weak scaling: efficiency", xlabel="replicas (dp)", ylabel="efficiency (%)")
    ax2.axhline(100, color="k", lw=0.8, ls="--")
    for ax in (ax1, ax2):
        ax.legend(fontsize=7)
    fig.tight_layout()
    weak = os.path.join(a.out, "weak_scaling.png")
    fig.savefig(weak, dpi=120)

    lines.append(f"wrote {strong} and {weak}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
