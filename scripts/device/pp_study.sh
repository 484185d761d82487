#!/usr/bin/env bash
# The pipeline's throughput in ONE device command (16-core host): `mpillm bench` of the
# 1.39 GB model at pp = 1 and at each pp of PP, one thread per rank, ranks bound to
# cores by Open MPI, fixed batches BATCHES per replica and a pool of POOL requests (the
# first batch in flight), with this tree's mpillm and, when OLD_SRC names an older
# source tree (its CMakeLists.txt, src, include and scripts/device, e.g. from
# `git archive REV CMakeLists.txt src include scripts/device | tar -x -C .devwork/old`),
# with that one too, the two in turn per layout so that both see the same moments of
# a noisy host.
# HERE first: scripts/device/fetch_deps.sh; THERE (device tool, carry .devwork):
#   OLD_SRC=.devwork/old scripts/device/pp_study.sh
# Environment: OUT (results folder), PP ("2 4 8"), BATCHES (8,32), PROMPT_LEN (16),
# GEN (16), REPS (1, after 1 warm-up), POOL (32; 0: none), ROUNDS (1: each layout once
# per round, old and new in turn), OLD_SRC, MPILLM_BIN (skip the build), MODEL_H5 (skip
# making the model), STEP_TIMEOUT (150).
# Writes under $OUT: log.txt, summary.txt, results.tar.gz (each bench's JSON and
# output; rewritten after each layout, so a run cut short returns what it finished).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/device/study_common.sh
. "$root/scripts/device/study_common.sh"
study_start pp_study
binary_and_model "$root" "$work" || exit 1
new_bin=$MPILLM_BIN
old_bin=
if [ -n "${OLD_SRC:-}" ]; then
  old_src=$(cd "$OLD_SRC" && pwd)
  if MPLDEPS_DEBS=$root/.devwork/debs MPILLM_BUILD_DIR=$work/old-build \
     timeout 300 bash "$old_src/scripts/device/build.sh" >"$work/old-build.log" 2>&1; then
    old_bin=$work/old-build/mpillm
    say "older binary $old_bin from $old_src"
  else
    tail -n 20 "$work/old-build.log"
    say "the older tree did not build: this tree's binary only"
  fi
fi

bench() { # NAME BINARY PP
  local name=$1 bin=$2 pp=$3
  timeout "${STEP_TIMEOUT:-150}" mpiexec -n "$pp" --bind-to core \
    "$bin" bench -m "$model" --threads 1 --pp "$pp" --tp 1 --dp 1 --batch "${BATCHES:-8,32}" \
    --prompt-len "${PROMPT_LEN:-16}" --gen "${GEN:-16}" --reps "${REPS:-1}" --warmup 1 --bw-mib 0 \
    --pool "${POOL:-32}" --json "$res/$name.json" >"$res/$name.txt" 2>&1
  echo "exit $?" >>"$res/$name.txt"
  echo "$name: $(grep -E '^\| dp|^pool' "$res/$name.txt" | paste -sd' ')"
}
bench pp1 "$new_bin" 1
tar -czf "$OUT/results.tar.gz" -C "$res" .
for round in $(seq 1 "${ROUNDS:-1}"); do
  for pp in ${PP:-2 4 8}; do
    [ -n "$old_bin" ] && bench "r${round}_pp${pp}_old" "$old_bin" "$pp"
    bench "r${round}_pp${pp}_new" "$new_bin" "$pp"
    tar -czf "$OUT/results.tar.gz" -C "$res" .
  done
done

python3 - "$res" <<'PY' | tee "$OUT/summary.txt"
import glob, json, os, re, statistics as st, sys
d = sys.argv[1]
def rates(f):
    j = json.load(open(f))
    out = {}
    for r in j["results"]:
        out[f"decode b{r['batch_per_replica']}"] = r["decode_tok_s"]
        out[f"prefill b{r['batch_per_replica']}"] = r["prefill_tok_s"]
    if j.get("pool"):
        out["pool"] = j["pool"]["generated_tok_s"]
    return out
one = os.path.join(d, "pp1.json")
if not os.path.exists(one):
    sys.exit("pp1 did not finish")
base = rates(one)
keys = sorted(base)
m = lambda v: f"{st.mean(v):.2f}" + (f" +- {st.stdev(v):.2f}" if len(v) > 1 else "")
print("tok/s (decode and prefill per batch per replica, pool: generated), mean +- stddev over rounds;")
print("x pp1 in brackets; new/old: the mean of each round's ratio")
print("pp1: " + ", ".join(f"{k} {base[k]:.2f}" for k in keys))
runs = {}
for f in glob.glob(os.path.join(d, "r*_pp*_*.json")):
    rnd, pp, v = re.match(r"r(\d+)_pp(\d+)_(old|new)", os.path.basename(f)).groups()
    runs.setdefault(int(pp), {}).setdefault(v, {})[int(rnd)] = rates(f)
for pp in sorted(runs):
    for v in ("old", "new"):
        got = runs[pp].get(v)
        if not got:
            continue
        line = f"pp{pp} {v} ({len(got)} rounds): " + ", ".join(
            f"{k} {m([r[k] for r in got.values()])} ({st.mean(r[k] for r in got.values()) / base[k]:.2f}x)"
            for k in keys if base[k] > 0)
        old = runs[pp].get("old")
        if v == "new" and old:
            both = [r for r in got if r in old]
            line += "; new/old " + ", ".join(
                f"{k} {m([got[r][k] / old[r][k] for r in both])}" for k in keys if all(old[r][k] for r in both))
        print(line)
PY
tar -czf "$OUT/results.tar.gz" -C "$res" .
say "done"
