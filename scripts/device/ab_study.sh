#!/usr/bin/env bash
# One bench, two builds, in ONE device command (16-core host): this tree's mpillm and
# the older source tree OLD_SRC (its CMakeLists.txt, src, include and scripts/device,
# e.g. from `git archive REV CMakeLists.txt src include scripts/device | tar -x -C
# .devwork/old`), ROUNDS times in turn, `mpiexec -n RANKS --bind-to core BIN bench -m
# MODEL --threads 1 BENCH_ARGS`, so that both see the same moments of a noisy host;
# the summary gives each variant's decode and prefill tok/s, comm % and (with
# --split-wait) waiting %, and the ratio new/old paired by round.
# HERE first: scripts/device/fetch_deps.sh; THERE (device tool, carry .devwork):
#   OLD_SRC=.devwork/old RANKS=8 BENCH_ARGS="--tp 8 --batch 1 --split-wait" scripts/device/ab_study.sh
# Environment: OUT (results folder), OLD_SRC (required), RANKS (8), BENCH_ARGS
# ("--tp 8 --batch 1 --split-wait"), ROUNDS (4), PROMPT_LEN (8), GEN (16), REPS (4, after
# 1 warm-up), MPILLM_BIN (skip this tree's build), MODEL_H5 (skip making the model),
# STEP_TIMEOUT (120).
# Writes under $OUT: log.txt, summary.txt, results.tar.gz (each bench's JSON and output,
# rewritten after each round).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/device/study_common.sh
. "$root/scripts/device/study_common.sh"
study_start ab_study
: "${OLD_SRC:?set OLD_SRC to the older source tree}"
binary_and_model "$root" "$work" || exit 1
new_bin=$MPILLM_BIN
old_src=$(cd "$OLD_SRC" && pwd)
MPLDEPS_DEBS=$root/.devwork/debs MPILLM_BUILD_DIR=$work/old-build \
  timeout 300 bash "$old_src/scripts/device/build.sh" >"$work/old-build.log" 2>&1 ||
  { tail -n 20 "$work/old-build.log"; say "the older tree did not build"; exit 1; }
old_bin=$work/old-build/mpillm
say "new $new_bin, old $old_bin (from $old_src)"
read -r -a args <<<"${BENCH_ARGS:---tp 8 --batch 1 --split-wait}"
for round in $(seq 1 "${ROUNDS:-4}"); do
  for v in old new; do
    bin=$new_bin
    [ "$v" = old ] && bin=$old_bin
    name=r${round}_$v
    timeout "${STEP_TIMEOUT:-120}" mpiexec -n "${RANKS:-8}" --bind-to core "$bin" bench -m "$model" --threads 1 \
      --prompt-len "${PROMPT_LEN:-8}" --gen "${GEN:-16}" --reps "${REPS:-4}" --warmup 1 --bw-mib 0 "${args[@]}" \
      --json "$res/$name.json" >"$res/$name.txt" 2>&1
    echo "exit $?" >>"$res/$name.txt"
    echo "$name: $(grep -E '^\| dp' "$res/$name.txt" | paste -sd' ')"
  done
  tar -czf "$OUT/results.tar.gz" -C "$res" .
done
python3 - "$res" <<'PY' | tee "$OUT/summary.txt"
import glob, json, os, re, statistics as st, sys
d = sys.argv[1]
runs = {}
for f in glob.glob(os.path.join(d, "r*_*.json")):
    rnd, v = re.match(r"r(\d+)_(old|new)", os.path.basename(f)).groups()
    for r in json.load(open(f))["results"]:
        runs.setdefault(r["batch_per_replica"], {}).setdefault(v, {})[int(rnd)] = r
m = lambda v: f"{st.mean(v):.2f}" + (f" +- {st.stdev(v):.2f}" if len(v) > 1 else "") if v else "-"
keys = ["decode_tok_s", "prefill_tok_s", "comm_pct_mean", "wait_pct_mean"]
for b in sorted(runs):
    for v in ("old", "new"):
        got = runs[b].get(v, {})
        print(f"batch {b} {v} ({len(got)} rounds): " +
              ", ".join(f"{k} {m([r[k] for r in got.values() if k in r])}" for k in keys))
    old, new = runs[b].get("old", {}), runs[b].get("new", {})
    both = sorted(set(old) & set(new))
    if both:
        print(f"batch {b} new/old by round: decode " + ", ".join(f"{new[r]['decode_tok_s'] / old[r]['decode_tok_s']:.2f}" for r in both) +
              f" (mean {st.mean(new[r]['decode_tok_s'] / old[r]['decode_tok_s'] for r in both):.2f})")
PY
tar -czf "$OUT/results.tar.gz" -C "$res" .
say "done"
