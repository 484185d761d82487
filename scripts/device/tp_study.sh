#!/usr/bin/env bash
# Issue 4's tensor-parallel figures in ONE device command (16-core host): PAIRS rounds
# of tp = 1 and tp = TP at batch 1, one thread per rank, ranks bound to cores by Open
# MPI; tp = TP twice per round, plain and with --split-wait (waiting for the slowest
# rank timed apart from the transfer, and each rank's own share), so that the variants
# see the same moments of a noisy host. The summary names, per round, the rank that
# waited least: the one the others wait for.
# HERE first: scripts/device/fetch_deps.sh; THERE (device tool, carry .devwork):
#   scripts/device/tp_study.sh
# Environment: OUT (results folder), PAIRS (4), TP (8), PROMPT_LEN (8), GEN (16), REPS (4),
# MPILLM_BIN (skip the build), MODEL_H5 (skip making the model), STEP_TIMEOUT (120).
# Writes under $OUT: log.txt, summary.txt, results.tar.gz (each bench's JSON and output).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/device/study_common.sh
. "$root/scripts/device/study_common.sh"
study_start tp_study
binary_and_model "$root" "$work" || exit 1

bench() { # NAME RANKS [extra bench args]
  local name=$1 n=$2
  shift 2
  timeout "${STEP_TIMEOUT:-120}" mpiexec -n "$n" --bind-to core \
    "$MPILLM_BIN" bench -m "$model" --threads 1 --tp "$n" --dp 1 --pp 1 --batch 1 --prompt-len "${PROMPT_LEN:-8}" \
    --gen "${GEN:-16}" --reps "${REPS:-4}" --warmup 1 --bw-mib 0 --json "$res/$name.json" "$@" >"$res/$name.txt" 2>&1
  echo "exit $?" >>"$res/$name.txt"
  echo "$name: $(grep -E '^\| dp|^batch' "$res/$name.txt" | paste -sd' ')"
}
tp=${TP:-8}
for i in $(seq 1 "${PAIRS:-4}"); do
  bench "round${i}_tp1" 1
  bench "round${i}_tp${tp}" "$tp"
  bench "round${i}_tp${tp}_split" "$tp" --split-wait
done
python3 - "$res" "$tp" <<'PY' | tee "$OUT/summary.txt"
import glob, json, os, statistics as st, sys
d, tp = sys.argv[1], sys.argv[2]
def load(name):
    f = os.path.join(d, name + ".json")
    return json.load(open(f))["results"][0] if os.path.exists(f) else None
m = lambda v: f"{st.mean(v):.2f} +- {st.stdev(v) if len(v) > 1 else 0:.2f}"
rounds = sorted({os.path.basename(f).split("_")[0] for f in glob.glob(os.path.join(d, "round*_tp1.json"))})
one = [load(f"{r}_tp1")["decode_tok_s"] for r in rounds]
print(f"tp1: decode {m(one)} tok/s over {len(one)} rounds: {', '.join(f'{x:.2f}' for x in one)}")
for v in ("", "_split"):
    rows = [(r, load(f"{r}_tp{tp}{v}")) for r in rounds]
    rows = [(r, x) for r, x in rows if x]
    if not rows: continue
    dec = [x["decode_tok_s"] for _, x in rows]
    ratio = [x["decode_tok_s"] / load(f"{r}_tp1")["decode_tok_s"] for r, x in rows]
    cm = [x["comm_pct_mean"] for _, x in rows]
    cx = [x["comm_pct_max"] for _, x in rows]
    line = (f"tp{tp}{v.replace('_', ' ')}: decode {m(dec)} tok/s, x tp1 {m(ratio)} (rounds {', '.join(f'{x:.2f}' for x in ratio)}), "
            f"comm % mean {m(cm)} (rounds {', '.join(f'{x:.1f}' for x in cm)}), max {m(cx)}")
    if "wait_pct_mean" in rows[0][1]:
        line += f", waiting % mean {m([x['wait_pct_mean'] for _, x in rows])}"
    print(line)
    for r, x in rows:
        w = x.get("wait_pct_per_rank") or x.get("comm_pct_per_rank")
        if w:
            least = min(range(len(w)), key=w.__getitem__)
            what = "waiting" if "wait_pct_per_rank" in x else "comm"
            print(f"  {r}: {what} % per rank {' '.join(f'{y:.1f}' for y in w)}; least: rank {least}")
PY
tar -czf "$OUT/results.tar.gz" -C "$res" .
say "done"
