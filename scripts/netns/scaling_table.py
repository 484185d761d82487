#!/usr/bin/env python3
"""Turns the bench JSON files of scripts/netns/scaling.sh (hN-RATE-latL-LAYOUT.json)
into one Markdown table: throughput per layout, host count, link and latency, and the
speed-up against the same layout on one host."""
import argparse
import json
import pathlib
import re
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dir", help="the folder of bench JSON files")
    ap.add_argument("--command", default="", help="the command that made them (printed)")
    args = ap.parse_args()
    rows = []
    for path in sorted(pathlib.Path(args.dir).glob("h*-*-lat*-*.json")):
        m = re.match(r"h(\d+)-([^-]+)-lat([\d.]+)-(\w+)\.json$", path.name)
        if not m:
            continue
        with open(path) as f:
            bench = json.load(f)
        r = bench["results"][0]
        rows.append(dict(hosts=int(m[1]), rate=m[2], lat=float(m[3]), layout=m[4],
                         batch=r["batch_total"], prefill=r["prefill_tok_s"],
                         decode=r["decode_tok_s"], decode_std=r["decode_tok_s_std"],
                         p50=r["latency_p50_ms"], comm=r["comm_pct_mean"]))
    if not rows:
        sys.exit(f"scaling_table: no bench JSON in {args.dir}")
    base = {r["layout"]: r["decode"] for r in rows if r["hosts"] == 1}
    rate_order = {"none": 0, "100mbit": 1, "1gbit": 2}
    rows.sort(key=lambda r: (r["layout"], r["hosts"], rate_order.get(r["rate"], 9), r["lat"]))
    if args.command:
        print(f"command: `{args.command}`\n")
    print("| layout | hosts | link | +latency | batch | prefill tok/s | decode tok/s | "
          "decode vs 1 host | p50 ms/step | comm % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        speedup = r["decode"] / base[r["layout"]] if base.get(r["layout"]) else float("nan")
        print(f"| {r['layout']} | {r['hosts']} | {r['rate']} | {r['lat']:g} us | {r['batch']:g} | "
              f"{r['prefill']:.1f} | {r['decode']:.2f} ± {r['decode_std']:.2f} | {speedup:.2f}x | "
              f"{r['p50']:.2f} | {r['comm']:.1f} |")


if __name__ == "__main__":
    main()
