#!/usr/bin/env bash
# Issue 4's scaling sweep in ONE command on a 16-core host (the device host):
# build, make the random bf16 LLaMA of 1.39 GB and convert it (both through
# scripts/device/study_common.sh, as the device studies do), then bench
#   - tp = 1, 2, 4, 8 at one thread per rank, ranks bound to cores (one rank too, on the
#     core rank 0 of the others gets), batch 1 (strong),
#   - dp = 1, 8 at one thread per rank, batch 4 per replica (weak),
#   - one rank with 16 and with 8 threads (the share-of-bandwidth figure, issue 3),
# and writes under $OUT: bench_all.json (every bench's JSON, a list),
# strong_scaling.png, weak_scaling.png (when matplotlib is there) and summary.txt.
#
# HERE, first:  scripts/device/fetch_deps.sh      (the .debs the device host lacks)
# THERE:        scripts/device_scaling.sh          (device tool: carry .devwork)
# Environment: OUT (default ./scaling-out), PROMPT_LEN (64), GEN (32), REPS (3),
# WEAK_BATCH (4), SINGLE_THREADS (threads of the one-rank runs, default "16 8" on
# 16 cores; "" skips them), MPILLM_BIN (skip the build: use this binary), MODEL_H5 (skip
# making the model: use this file), STEP_TIMEOUT (seconds per bench, 300), BIND
# (mpiexec placement, default "--bind-to core --map-by core").
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$root/scaling-out}
PROMPT_LEN=${PROMPT_LEN:-64}
GEN=${GEN:-32}
REPS=${REPS:-3}
WEAK_BATCH=${WEAK_BATCH:-4}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
read -r -a bind <<<"${BIND:---bind-to core --map-by core}"
work=${WORK:-/tmp/mpillm-scaling}
mkdir -p "$OUT" "$work"
summary=$OUT/summary.txt
: >"$summary"
# shellcheck source=scripts/device/study_common.sh
. "$root/scripts/device/study_common.sh"
# (after the source: binary_and_model's messages go to the summary too)
say() { echo "device_scaling: $*" | tee -a "$summary"; }
t_start=$(date +%s)

say "host $(hostname), $(nproc) CPUs, $(grep MemTotal /proc/meminfo | awk '{print int($2/1048576)}') GiB"
lscpu 2>/dev/null | grep -E 'Model name|Socket|NUMA node\(s\)|L3' | sed 's/^/  /' | tee -a "$summary"

binary_and_model "$root" "$work" || exit 1

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
common=(-m "$model" --prompt-len "$PROMPT_LEN" --gen "$GEN" --reps "$REPS" --bw-mib 2048)
jsons=()
run() { # NAME THREADS NRANKS [bench options...]
  local name=$1 threads=$2 n=$3
  shift 3
  local json=$work/bench_$name.json
  rm -f "$json"
  say "--- $name: $n rank(s) x $threads thread(s): bench $*"
  # one rank of one thread is bound like rank 0 of the larger layouts (to the same core):
  # the baseline of every ratio comes from the CPU the layouts it is set against start on
  if [ "$n" -eq 1 ] && [ "$threads" -gt 1 ]; then
    MPILLM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads timeout "$STEP_TIMEOUT" \
      "$MPILLM_BIN" bench "${common[@]}" "$@" --json "$json" 2>&1 | tee -a "$summary"
  else
    timeout "$STEP_TIMEOUT" mpiexec -n "$n" "${bind[@]}" --report-bindings \
      -x MPILLM_THREADS="$threads" -x OPENBLAS_NUM_THREADS="$threads" \
      "$MPILLM_BIN" bench "${common[@]}" "$@" --json "$json" 2>&1 | grep -v 'MCW rank' | tee -a "$summary"
  fi
  if [ -f "$json" ]; then jsons+=("$json"); else say "$name: no result (failed or timed out)"; fi
}

# the issue-4 sweep first, so that a run cut short still has it
for t in 1 2 4 8; do run "tp$t" 1 "$t" --tp "$t" --batch 1; done
for d in 1 8; do run "dp$d" 1 "$d" --dp "$d" --batch "$WEAK_BATCH"; done
for t in ${SINGLE_THREADS-$(nproc) 8}; do run "single_${t}t" "$t" 1 --batch 1; done

# one file back instead of eight
python3 - "$OUT/bench_all.json" "${jsons[@]}" <<'EOF'
import json, sys
json.dump([json.load(open(p)) for p in sys.argv[2:]], open(sys.argv[1], "w"), indent=1)
EOF
if python3 -c 'import matplotlib' 2>/dev/null; then
  python3 "$root/scripts/scaling_plots.py" "$OUT/bench_all.json" -o "$OUT" --batch 1 \
    --weak-batch "$WEAK_BATCH" 2>&1 | tee -a "$summary"
else
  say "no matplotlib here: run scripts/scaling_plots.py $OUT/bench_all.json -o DIR where it is"
fi
# the figures issue 4 asks for, from the JSON
python3 - "$OUT/bench_all.json" "$WEAK_BATCH" <<'EOF' 2>&1 | tee -a "$summary"
import json, sys
runs = json.load(open(sys.argv[1]))
def pick(batch, **k):
    for d in runs:
        if d["results"][0]["batch_per_replica"] == batch and all(d[a] == b for a, b in k.items()):
            return d
def dec(d):
    return d["results"][0]["decode_tok_s"]
tp1, tp8 = pick(1, tp=1, dp=1, ranks=1, threads_per_rank=1), pick(1, tp=8)
wb = int(sys.argv[2])
dp1, dp8 = pick(wb, dp=1, ranks=1, threads_per_rank=1), pick(wb, dp=8)
print("issue 4 figures:")
if tp1 and tp8:
    r = tp8["results"][0]
    print(f"  decode tp=8 / tp=1: {dec(tp8) / dec(tp1):.2f}x (target >= 5x); comm at tp=8: "
          f"{r['comm_pct_mean']:.1f}% mean, {r['comm_pct_max']:.1f}% max (target < 15%)")
if dp1 and dp8:
    print(f"  decode throughput dp=8 / dp=1: {dec(dp8) / dec(dp1):.2f}x; prefill: "
          f"{dp8['results'][0]['prefill_tok_s'] / dp1['results'][0]['prefill_tok_s']:.2f}x (target >= 7x)")
for d in runs:
    if d["ranks"] == 1 and d["threads_per_rank"] > 1:
        r = d["results"][0]
        print(f"  one rank, {d['threads_per_rank']} threads: decode {r['decode_tok_s']:.2f} tok/s, "
              f"{d['weight_bytes_total'] / 1e9:.2f} GB per token, read bandwidth "
              f"{d['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s -> {100 * r['bandwidth_share']:.0f}% of it (issue 3 target >= 80%)")
EOF
say "done in $(( $(date +%s) - t_start )) s; results in $OUT"
