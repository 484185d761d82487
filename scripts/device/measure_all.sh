#!/usr/bin/env bash
# The one command for the accelerator host's 16 CPU cores (the GPU is not used):
# builds mpillm there (build.sh, from the .debs that fetch_deps.sh put in .devwork/)
# and measures, in order of importance, each section under its own time limit:
#   a. issue 3: single-rank bf16 decode against the measured read bandwidth,
#      threads 16, 15 and 8 (mpillm bench's "bw use" column);
#   b. issue 4: the runtime's scripts/device_scaling.sh on the same model: decode
#      tok/s at tp = 1, 2, 4, 8 with one thread per rank (ranks bound to cores) and
#      the share of time in communication; batch throughput at dp = 1 and dp = 8
#      (same batch per replica); scaling plots (the same sweep without plots here
#      when that script is missing);
#   c. issue 5: scripts/blend_bench.sh (the design's seed network, ranks 1..16,
#      rows 1, 16, 256, 2048);
#   d. machine.txt: lscpu, nproc, memory, compiler, MPI/OpenBLAS/HDF5 versions,
#      `mpillm info --comm-bench` on 2 ranks.
#   OUT=DIR scripts/device/measure_all.sh          (on the device host $OUT is set)
#   MEASURE_SMALL=1 OUT=/tmp/out scripts/device/measure_all.sh   (dry run: tiny model,
#                                                     at most 2 ranks here,
#                                                     8 oversubscribed in b)
# The bench model is a random-weight bf16 LLaMA of 1.39 GB (scripts/device/make_model.py,
# converted with `mpillm convert`). Into $OUT (at most 8 plain files): log.txt (all
# output), summary.txt (also printed last), machine.txt, strong_scaling.png and
# weak_scaling.png (device_scaling.sh's plots, when it ran), results.tar.gz (every
# section's output, bench JSON and table, the build logs; refreshed after each
# section, so a run cut short still returns what it finished).
# Environment: MEASURE_BUDGET_S (whole run, default 530), MEASURE_WORK (scratch,
# default /tmp/mpl_measure), MPILLM_BIN (skip the build, use this binary),
# MPILLM_BUILD_DIR (default <repo>/build-device).
# A section whose command is missing from this checkout prints "skipped: ..." and
# no numbers.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
self=$root/scripts/device/measure_all.sh

# --- settings: the device run, or a dry run here -----------------------------------
if [ "${MEASURE_SMALL:-0}" = 1 ]; then
  model_size=small threads_a="2 1" tp_list="1 2" dp_list="1 2" batch_dp=4 step_timeout=60
  prompt_a=8 gen_a=8 prompt_b=8 gen_b=8 reps_a=2 reps_b=2 warmup=1
  blend_ranks="1 2" blend_rows="1,16" blend_reps=2
else
  # b runs one thread per rank: short prompts keep its single-thread prefills cheap
  model_size=device threads_a="16 15 8" tp_list="1 2 4 8" dp_list="1 8" batch_dp=4 step_timeout=120
  prompt_a=32 gen_a=32 prompt_b=16 gen_b=16 reps_a=5 reps_b=3 warmup=1
  blend_ranks="1 2 4 8 16" blend_rows="1,16,256,2048" blend_reps=3
fi

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PYTHONUNBUFFERED=1
# ranks only read the model file: no need for HDF5's file locks on whatever file system /tmp is
export HDF5_USE_FILE_LOCKING=FALSE
# shared memory between ranks of one host, nothing else (no UCX probing in a VM);
# main() may drop these when 2 ranks cannot talk with them, and sections inherit that
if [ "${1:-}" != --section ]; then
  export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1} OMPI_MCA_btl=${OMPI_MCA_btl:-self,vader}
fi

# Open MPI binding for n ranks: one core each while they fit, else none
bind_flags() {
  local n=$1 cores
  cores=$(lscpu -p=core,socket 2>/dev/null | grep -v '^#' | sort -u | wc -l)
  [ "$cores" -gt 0 ] || cores=$(nproc)
  if [ "$n" -le "$cores" ] && [ "${MEASURE_NO_BIND:-0}" != 1 ]; then echo "--bind-to core --map-by core"
  elif [ "$n" -le "$(nproc)" ]; then echo "--bind-to none"
  else echo "--oversubscribe --bind-to none"; fi
}

have_bench() { "$MPILLM_BIN" bench --help 2>&1 | grep -q -- '--prompt-len'; }

# one bench run of section b: LABEL RANKS [mpillm bench options...]; JSON to $W/json/LABEL.json
bench() {
  local label=$1 n=$2
  shift 2
  echo "--- $label: $n rank(s), bench $*"
  # shellcheck disable=SC2046
  mpiexec -n "$n" $(bind_flags "$n") "$MPILLM_BIN" bench -m "$MODEL" --prompt-len "$prompt_b" \
    --gen "$gen_b" --warmup "$warmup" --json "$W/json/$label.json" "$@" 2>&1 | tee "$W/txt/$label.txt"
  local rc=$?
  [ $rc -eq 0 ] || echo "FAILED: $label (exit $rc)"
  return 0
}

section_a() {
  have_bench || { echo "skipped: mpillm bench not available in this checkout"; return 0; }
  for t in $threads_a; do
    # one rank, not bound: its threads spread over the cores
    echo "--- a_t$t: 1 rank, $t threads"
    OPENBLAS_NUM_THREADS=$t MPILLM_THREADS=$t mpiexec -n 1 --bind-to none "$MPILLM_BIN" bench \
      -m "$MODEL" --threads "$t" --batch 1 --prompt-len "$prompt_a" --gen "$gen_a" \
      --reps "$reps_a" --warmup "$warmup" --json "$W/json/a_t$t.json" 2>&1 | tee "$W/txt/a_t$t.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || echo "FAILED: a_t$t"
  done
}

# issue 4: the runtime's scripts/device_scaling.sh (tp 1..8, dp 1/8, plots) on our
# model when this checkout has it, else the same sweep here
section_b() {
  have_bench || { echo "skipped: mpillm bench not available in this checkout"; return 0; }
  if [ -f "$root/scripts/device_scaling.sh" ]; then
    local place="--bind-to core --map-by core"
    [ "${MEASURE_NO_BIND:-0}" = 1 ] && place="--bind-to none"
    [ "${MEASURE_SMALL:-0}" = 1 ] && place="--oversubscribe --bind-to none"
    OUT=$W/scaling WORK=$W/scaling_work MODEL_H5=$MODEL PROMPT_LEN=$prompt_b GEN=$gen_b \
      REPS=$reps_b WEAK_BATCH=$batch_dp STEP_TIMEOUT=$step_timeout BIND=$place \
      bash "$root/scripts/device_scaling.sh"
    return
  fi
  export OPENBLAS_NUM_THREADS=1 MPILLM_THREADS=1 OMP_NUM_THREADS=1
  for tp in $tp_list; do
    bench "b_tp$tp" "$tp" --tp "$tp" --dp 1 --pp 1 --threads 1 --batch 1 --reps "$reps_b"
  done
  for dp in $dp_list; do
    bench "b_dp$dp" "$dp" --dp "$dp" --tp 1 --pp 1 --threads 1 --batch "$batch_dp" --reps "$reps_b"
  done
}

section_c() {
  [ -f "$root/scripts/blend_bench.sh" ] || { echo "skipped: scripts/blend_bench.sh not in this checkout"; return 0; }
  "$MPILLM_BIN" blend-init --help >/dev/null 2>&1 || { echo "skipped: mpillm blend-init not available"; return 0; }
  MPILLM_BIN=$MPILLM_BIN OUT=$W/blend bash "$root/scripts/blend_bench.sh" --ranks "$blend_ranks" \
    --rows "$blend_rows" --reps "$blend_reps" --out "$W/blend"
}

# the machine: what the numbers were measured on
section_d() {
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(hostname)"
  uname -a
  [ -r /etc/os-release ] && grep PRETTY_NAME /etc/os-release
  echo "nproc: $(nproc)"
  lscpu 2>/dev/null
  echo
  grep -E 'MemTotal|MemAvailable' /proc/meminfo
  [ -r /sys/fs/cgroup/cpu.max ] && echo "cgroup cpu.max: $(cat /sys/fs/cgroup/cpu.max)"
  command -v numactl >/dev/null && numactl -H
  command -v free >/dev/null && free -g
  echo
  ${CC:-cc} --version 2>/dev/null | head -n 1
  cmake --version 2>/dev/null | head -n 1
  mpiexec --version 2>/dev/null | head -n 1
  command -v dpkg-query >/dev/null &&
    dpkg-query -W -f='${Package} ${Version}\n' 'libopenblas*' 'libopenmpi*' 'openmpi-bin' 'libhdf5*dev' 2>/dev/null
  echo
  if [ -n "${MPILLM_BIN:-}" ] && [ -x "$MPILLM_BIN" ]; then
    # shellcheck disable=SC2046
    timeout 60 mpiexec -n 2 --bind-to none "$MPILLM_BIN" info --comm-bench 2>&1
  fi
}

# tar every small result (no model files) into $OUT/results.tar.gz
pack() {
  (cd "$W" && find . -type f ! -name '*.h5' ! -name '*.safetensors' -size -8M -print0 |
    tar --null -czf "$OUT/results.tar.gz.tmp" -T - 2>/dev/null) &&
    mv "$OUT/results.tar.gz.tmp" "$OUT/results.tar.gz"
}

# run_limited SECONDS CMD...: CMD in a session of its own, ended whole (TERM, then
# KILL) when it outlives SECONDS, so nothing it started (an inner `timeout` makes its
# own process group) keeps running into the next section. Exit 124 when it was ended.
run_limited() {
  local limit=$1 pid t=0 p
  shift
  setsid "$@" &
  pid=$!  # a background job of this shell is no group leader: setsid does not fork
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$t" -ge "$limit" ]; then
      for sig in TERM KILL; do
        for p in $(ps -eo pid=,sid= | awk -v s="$pid" '$2 == s { print $1 }'); do
          kill -s "$sig" "$p" 2>/dev/null
        done
        sleep 3
      done
      wait "$pid" 2>/dev/null
      return 124
    fi
    sleep 1
    t=$((t + 1))
  done
  wait "$pid"
}

# run_section NAME SECONDS: under its own limit, capped by what is left; its output
# also goes to $W/txt/section_NAME.txt
run_section() {
  local name=$1 want=$2 left limit s0 rc file=$W/txt/section_$1.txt
  left=$((budget - ($(date +%s) - t0) - 20))
  limit=$((want < left ? want : left))
  echo
  echo "=== section $name (limit ${limit} s, $(($(date +%s) - t0)) s elapsed) ==="
  if [ "$limit" -lt 20 ]; then
    echo "skipped: section $name, out of time" | tee "$file"
    return
  fi
  s0=$(date +%s)
  run_limited "$limit" bash "$self" --section "$name" 2>&1 | tee "$file"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 124 ]; then
    echo "TIMED OUT: section $name after $limit s" | tee -a "$file"
  fi
  echo "=== section $name: exit $rc, $(($(date +%s) - s0)) s ==="
  pack
}

finish() {
  exec 1>&3 2>&4 3>&- 4>&-
  wait "$tee_pid" 2>/dev/null
  exit "$1"
}

main() {
  : "${OUT:?set OUT to the folder for the results}"
  mkdir -p "$OUT"
  t0=$(date +%s)
  budget=${MEASURE_BUDGET_S:-530}
  export W=${MEASURE_WORK:-/tmp/mpl_measure}
  export MPILLM_BUILD_DIR=${MPILLM_BUILD_DIR:-$root/build-device}
  rm -rf "$W"
  mkdir -p "$W/json" "$W/txt" "$W/logs"
  # everything also into log.txt; finish() lets tee drain before the script returns
  exec 3>&1 4>&2
  exec > >(tee -a "$OUT/log.txt") 2>&1
  tee_pid=$!
  echo "measure_all: $(date -u +%H:%M:%SZ), budget $budget s, model $model_size, work $W, commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"

  # build
  if [ -z "${MPILLM_BIN:-}" ]; then
    echo "=== build ==="
    local b0
    b0=$(date +%s)
    if ! timeout 300 bash "$root/scripts/device/build.sh"; then
      echo "BUILD FAILED: nothing to measure"
      cp "$MPILLM_BUILD_DIR"/*.log "$W/logs/" 2>/dev/null
      section_d >"$OUT/machine.txt" 2>&1
      pack
      finish 1
    fi
    cp "$MPILLM_BUILD_DIR"/*.log "$W/logs/" 2>/dev/null
    # shellcheck disable=SC1091
    source "$MPILLM_BUILD_DIR/env.sh"
    echo "=== build: $(($(date +%s) - b0)) s ==="
  fi
  export MPILLM_BIN

  # d first: it is quick, and it tells whether MPI runs at all
  section_d >"$OUT/machine.txt" 2>&1
  if ! grep -q '^comm-bench [0-9]' "$OUT/machine.txt"; then
    echo "mpiexec -n 2 failed with ob1/self,vader; trying without single-copy shared memory"
    export OMPI_MCA_btl_vader_single_copy_mechanism=none
    section_d >"$OUT/machine.txt" 2>&1
  fi
  if ! grep -q '^comm-bench [0-9]' "$OUT/machine.txt"; then
    echo "mpiexec -n 2 failed again; trying Open MPI's own choice of transports"
    unset OMPI_MCA_pml OMPI_MCA_btl OMPI_MCA_btl_vader_single_copy_mechanism
    section_d >"$OUT/machine.txt" 2>&1
    grep -q '^comm-bench [0-9]' "$OUT/machine.txt" || echo "mpiexec -n 2 still fails: see machine.txt"
  fi
  if ! timeout 60 mpiexec -n 2 --bind-to core --map-by core true >/dev/null 2>&1; then
    echo "mpiexec --bind-to core fails here: ranks run unbound"
    export MEASURE_NO_BIND=1
  fi
  grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|NUMA node\(s\)|L3)|MemTotal|^MPI|^OpenBLAS|^HDF5|^launch' "$OUT/machine.txt"
  cp "$OUT/machine.txt" "$W/txt/"

  # the bench model
  export MODEL=$W/model.h5
  echo "=== model ==="
  local m0
  m0=$(date +%s)
  if ! timeout 150 python3 "$root/scripts/device/make_model.py" "$W/hf" --size "$model_size" ||
     ! timeout 150 "$MPILLM_BIN" convert "$W/hf" -o "$MODEL"; then
    echo "MODEL FAILED: sections a and b will fail"
  fi
  rm -rf "$W/hf"
  echo "=== model: $(($(date +%s) - m0)) s, $(du -h "$MODEL" 2>/dev/null | cut -f1) ==="

  run_section a 150
  run_section b 260
  # device_scaling.sh's JSONs and plots, under the names summarize.py reads
  for f in "$W"/scaling_work/bench_tp*.json "$W"/scaling_work/bench_dp*.json; do
    [ -f "$f" ] && cp "$f" "$W/json/b_$(basename "$f" | sed 's/^bench_//')"
  done
  for f in "$W"/scaling/*.png; do [ -f "$f" ] && cp "$f" "$OUT/"; done
  run_section c 150

  echo
  python3 "$root/scripts/device/summarize.py" "$W" | tee "$OUT/summary.txt"
  cp "$OUT/summary.txt" "$W/txt/"
  pack
  echo "measure_all: done in $(($(date +%s) - t0)) s; files in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
  finish 0
}

if [ "${1:-}" = --section ]; then
  "section_$2"
  exit $?
fi
main "$@"
