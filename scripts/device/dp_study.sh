#!/usr/bin/env bash
# Issue 4's data-parallel figure, taken apart in ONE device command (16-core host):
#   1. which CPUs share a physical core and what 1, 8 and 16 cores get together
#      (core_probe.c: AVX-512 FMA rate and read bandwidth, copies pinned at once);
#   2. mpillm bench at dp = 1 and dp = 8, one thread per rank, for each per-replica
#      batch in DP_BATCHES and each placement in DP_PLACES: "low" (rank r on CPU r),
#      "spread" (on CPU 2r) or "high" (on CPU 8 + r); dp = 1 runs on the placement's
#      first CPU; bench prints each replica's own rate;
#   3. tp = 1 and 8 at batch 1 (placement "low"), the figures the kernels also touch;
#   4. `mpillm info --kernel-bench` on one core (the linear layer at 1..256 rows).
# STUDY=neighbours runs instead (after the build): dp = 1 on CPU 8 at batches 32 and 4,
# alone and with core_probe copies (fma for 32, read for 4) busy on CPUs 9-15, i.e.
# one replica with the other seven replicas' load but none of mpillm's.
# SPLIT_WAIT=1 runs the tp benches with --split-wait (waiting apart from transfer).
# STUDY=repeat runs instead: PAIRS (5) alternations of dp = 1 and dp = 8 at batch
# REPEAT_BATCH (32) on each placement of REPEAT_PLACE (high; "low high" takes the
# placements in turn within each round), for the ratio's spread; POOL=R adds `bench
# --pool R` to each (R requests per replica that the replicas take as they free up)
# and the pool's ratio to the summary, per placement. results.tar.gz is rewritten
# after every pair, so a call cut short still brings back the pairs it finished.
# HERE first: scripts/device/fetch_deps.sh; THERE (device tool, carry .devwork):
#   scripts/device/dp_study.sh
# Environment: OUT (results folder, set by the device tool), DP_BATCHES ("4 32"),
# DP_PLACES ("core spread"), PROMPT_LEN (8), GEN (8), REPS (2), MPILLM_BIN (skip the
# build), MODEL_H5 (skip making the model), STEP_TIMEOUT (seconds per bench, 150).
# Writes under $OUT: log.txt, probe.txt, kernel_bench.txt, summary.txt and results.tar.gz (every bench's
# JSON and output: bench_<place>_<layout>_b<B>.json/.txt).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/device/study_common.sh
. "$root/scripts/device/study_common.sh"
ncpu=$(getconf _NPROCESSORS_ONLN) # before OMP_NUM_THREADS=1, which nproc obeys
study_start dp_study

# --- 1. the cores --------------------------------------------------------------------
gcc -O2 -o "$work/core_probe" "$root/scripts/device/core_probe.c" || { say "core_probe does not build"; exit 1; }
probe() { # KIND SECONDS CPU...: one copy per CPU at once; prints the rates in CPU order
  local kind=$1 s=$2 c
  shift 2
  for c in "$@"; do taskset -c "$c" "$work/core_probe" "$kind" "$s" >"$work/p.$c" & done
  wait
  for c in "$@"; do cat "$work/p.$c"; done | paste -sd' '
}
[ "${SKIP_PROBE:-0}" = 1 ] || {
  echo "# core_probe on $(hostname): $ncpu CPUs; fma = GFLOP/s per copy, read = GB/s per copy"
  for c in $(seq 0 $((ncpu - 1))); do echo "cpu $c alone: fma $(probe fma 0.5 "$c"), read $(probe read 0.5 "$c")"; done
  for c in $(seq 1 $((ncpu - 1))); do echo "fma cpu 0 with cpu $c: $(probe fma 0.5 0 "$c")"; done
  half=$((ncpu / 2))
  even=$(seq 0 2 $((ncpu - 1)) | paste -sd' ')
  read -r -a evens <<<"$even"
  echo "fma $half at once on 0-$((half - 1)): $(probe fma 2 $(seq 0 $((half - 1))))"
  echo "fma $half at once on $even: $(probe fma 2 "${evens[@]}")"
  echo "fma $ncpu at once: $(probe fma 2 $(seq 0 $((ncpu - 1))))"
  echo "read $half at once on 0-$((half - 1)): $(probe read 2 $(seq 0 $((half - 1))))"
  echo "read $half at once on $even: $(probe read 2 "${evens[@]}")"
  echo "read $ncpu at once: $(probe read 2 $(seq 0 $((ncpu - 1))))"
} | tee "$OUT/probe.txt"

# --- 2. build and model ------------------------------------------------------------------
binary_and_model "$root" "$work" || exit 1

# --- 3. dp = 1 and 8, tp = 1 and 8 ------------------------------------------------------
cpus_of() { # PLACE: the CPU of rank 0, 1, ...
  case $1 in
  low) seq 0 $((ncpu - 1)) ;;
  spread) seq 0 2 $((ncpu - 1)) ;;
  high) seq $((ncpu / 2)) $((ncpu - 1)) ;;
  esac | paste -sd' '
}
bench() { # PLACE LAYOUT N BATCH GEN: N ranks, rank r pinned to the r-th CPU of PLACE
  local place=$1 layout=$2 n=$3 b=$4 gen=$5 name=bench_$1_$2_b$4
  local args=(bench -m "$model" --threads 1 --batch "$b" --prompt-len "${PROMPT_LEN:-8}" --gen "$gen"
              --reps "${REPS:-2}" --warmup 1 --bw-mib 1024 --json "$res/$name.json")
  [ "${POOL:-0}" -gt 0 ] && args+=(--pool "$POOL")
  case $layout in tp*) [ "${SPLIT_WAIT:-0}" = 1 ] && args+=(--split-wait) ;; esac
  case $layout in dp*) args+=(--dp "$n" --tp 1 --pp 1) ;; tp*) args+=(--tp "$n" --dp 1 --pp 1) ;; esac
  say "--- $name"
  # shellcheck disable=SC2016
  MPL_CPUS=$(cpus_of "$place") timeout "${STEP_TIMEOUT:-150}" mpiexec -n "$n" --bind-to none -x MPL_CPUS \
    sh -c 'set -- "$0" "$@"; c=$(echo $MPL_CPUS | cut -d" " -f$((OMPI_COMM_WORLD_RANK + 1))); exec taskset -c $c "$@"' \
    "$MPILLM_BIN" "${args[@]}" >"$res/$name.txt" 2>&1
  echo "exit $?" >>"$res/$name.txt"
  grep -E '^\| [dt]p|^batch|^  slowest|exit' "$res/$name.txt"
}
if [ "${STUDY:-}" = repeat ]; then
  b=${REPEAT_BATCH:-32}
  for i in $(seq 1 "${PAIRS:-5}"); do
    for place in ${REPEAT_PLACE:-high}; do
      for n in 1 "${DP_N:-8}"; do
        bench "$place" "dp$n" "$n" "$b" "${GEN:-8}"
        mv "$res/bench_${place}_dp${n}_b$b.json" "$res/${place}_pair${i}_dp$n.json"
        mv "$res/bench_${place}_dp${n}_b$b.txt" "$res/${place}_pair${i}_dp$n.txt"
      done
      tar -czf "$OUT/results.tar.gz" -C "$res" .
    done
  done
  python3 - "$res" <<'PY' | tee "$OUT/summary.txt"
import glob, json, os, statistics as st, sys
d = sys.argv[1]
m = lambda v: f"{st.mean(v):.2f} +- {st.stdev(v) if len(v) > 1 else 0:.2f}"
places = sorted({os.path.basename(f).split("_pair")[0] for f in glob.glob(os.path.join(d, "*_pair*_dp1.json"))})
for place in places:
    one, batch, summed, pool1, pooln = [], [], [], [], []
    for f in sorted(glob.glob(os.path.join(d, f"{place}_pair*_dp1.json"))):
        g = [x for x in glob.glob(f.replace("_dp1.json", "_dp*.json")) if x != f]
        if not g: continue
        try:
            ja, jb = json.load(open(f)), json.load(open(g[0]))
        except ValueError:
            continue
        a, b = ja["results"][0], jb["results"][0]
        one.append(a["decode_tok_s"]); batch.append(b["decode_tok_s"]); summed.append(sum(b["decode_tok_s_per_replica"]))
        print(f"{os.path.basename(f)[:-9]}: dp1 {one[-1]:.2f}, dpN {batch[-1]:.2f} (x{batch[-1] / one[-1]:.2f}), "
              f"sum of replicas {summed[-1]:.2f} (x{summed[-1] / one[-1]:.2f})")
        pa, pb = ja.get("pool"), jb.get("pool")
        if pa and pb:
            pool1.append(pa["generated_tok_s"]); pooln.append(pb["generated_tok_s"])
            print(f"  pool: dp1 {pool1[-1]:.2f}, dpN {pooln[-1]:.2f} generated tok/s (x{pooln[-1] / pool1[-1]:.2f})")
    if not one: continue
    print(f"{place}, {len(one)} pairs: dp1 {m(one)}, dpN {m(batch)} (x{st.mean(batch) / st.mean(one):.2f}), "
          f"sum of replicas {m(summed)} (x{st.mean(summed) / st.mean(one):.2f})")
    if pool1:
        print(f"{place} pool, {len(pool1)} pairs: dp1 {m(pool1)}, dpN {m(pooln)} generated tok/s "
              f"(x{st.mean(pooln) / st.mean(pool1):.2f}; pairs x{min(b / a for a, b in zip(pool1, pooln)):.2f}"
              f"-x{max(b / a for a, b in zip(pool1, pooln)):.2f})")
PY
  exit 0
fi
if [ "${STUDY:-}" = neighbours ]; then
  for kind_b in "fma 32" "read 4"; do
    read -r kind b <<<"$kind_b"
    bench high dp1 1 "$b" "${GEN:-8}"
    cp "$res/bench_high_dp1_b$b.json" "$res/bench_alone_dp1_b$b.json"
    busy=()
    for c in $(seq $((ncpu / 2 + 1)) $((ncpu - 1))); do
      taskset -c "$c" "$work/core_probe" "$kind" 120 >/dev/null &
      busy+=($!)
    done
    bench high dp1 1 "$b" "${GEN:-8}"
    mv "$res/bench_high_dp1_b$b.json" "$res/bench_busy_${kind}_dp1_b$b.json"
    [ ${#busy[@]} -eq 0 ] || { kill "${busy[@]}" 2>/dev/null; wait "${busy[@]}" 2>/dev/null; }
  done
  python3 - "$res" <<'PY' | tee "$OUT/summary.txt"
import glob, json, os, sys
for f in sorted(glob.glob(os.path.join(sys.argv[1], "bench_*_dp1_b*.json"))):
    r = json.load(open(f))["results"][0]
    print(f"{os.path.basename(f)}: decode {r['decode_tok_s']:.2f} +- {r['decode_tok_s_std']:.2f}, prefill {r['prefill_tok_s']:.1f} tok/s")
PY
  tar -czf "$OUT/results.tar.gz" -C "$res" .
  exit 0
fi
for b in ${DP_BATCHES-4 32}; do  # DP_BATCHES="" (set, empty): no dp runs
  for place in ${DP_PLACES:-low spread high}; do
    bench "$place" dp1 1 "$b" "${GEN:-8}"
    bench "$place" "dp${DP_N:-8}" "${DP_N:-8}" "$b" "${GEN:-8}"
  done
done
for tp in ${TP_LIST:-1 8}; do bench low "tp$tp" "$tp" 1 16; done
say "--- kernel-bench, 1 thread on cpu 0"
taskset -c 0 "$MPILLM_BIN" info --kernel-bench 2>&1 | tail -n 13 | tee "$OUT/kernel_bench.txt"
python3 - "$res" <<'PY' | tee "$OUT/summary.txt"
import glob, json, os, re, sys
rows = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "bench_*.json"))):
    place, kind, n, b = re.match(r"bench_(\w+?)_(dp|tp)(\d+)_b(\d+)\.json", os.path.basename(f)).groups()
    rows[(kind, place, int(b), int(n))] = (json.load(open(f))["results"][0])
print("| placement | batch/replica | dp1 decode | dpN decode | x | slowest / fastest replica | dp1 prefill | dpN prefill | x |")
print("|---|---|---|---|---|---|---|---|---|")
for (kind, place, b, n), r in sorted(rows.items()):
    if kind != "dp" or n == 1 or ("dp", place, b, 1) not in rows: continue
    o, per = rows[("dp", place, b, 1)], r.get("decode_tok_s_per_replica", [0])
    print(f"| {place} | {b} | {o['decode_tok_s']:.1f} +- {o['decode_tok_s_std']:.1f} | {r['decode_tok_s']:.1f} +- {r['decode_tok_s_std']:.1f} "
          f"| {r['decode_tok_s'] / o['decode_tok_s']:.2f} | {min(per):.1f} / {max(per):.1f} "
          f"| {o['prefill_tok_s']:.1f} | {r['prefill_tok_s']:.1f} | {r['prefill_tok_s'] / o['prefill_tok_s']:.2f} |")
for (kind, place, b, n), r in sorted(rows.items()):
    if kind == "tp":
        wait = (f", waiting for the slowest rank {r['wait_pct_mean']:.1f}% mean / {r['wait_pct_max']:.1f}% max"
                if "wait_pct_mean" in r else "")
        print(f"tp{n}: decode {r['decode_tok_s']:.2f} +- {r['decode_tok_s_std']:.2f} tok/s, comm {r['comm_pct_mean']:.1f}% mean / "
              f"{r['comm_pct_max']:.1f}% max{wait}, prefill {r['prefill_tok_s']:.1f} tok/s")
PY
tar -czf "$OUT/results.tar.gz" -C "$res" .
say "done"
