#!/usr/bin/env bash
# The seed network of the design (configs/blend_example.ini: L=5, 200 -> 512 -> 512,
# C=1000, random weights from `mpillm blend-init`) benched in one command over rank
# counts and batch sizes: rows/s of model, data and split parallelism (alpha 0.25,
# 0.5, 0.75), one BLAS thread per rank, ranks bound to cores when they fit.
#   scripts/blend_bench.sh [--ranks "1 2 4 8 16"] [--rows 1,16,256,2048] [--reps 5]
#                          [--out DIR]          (default $OUT, else scratch/blend_bench)
# Writes DIR/bench_np<N>.{json,txt} per rank count, DIR/bench_all.json (a list of
# them) and DIR/summary.md (the tables, then rows/s of model vs data vs best split
# per ranks x rows and which wins). Builds build-bench/ (tests off) unless MPILLM_BIN
# names a built binary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ranks="1 2 4 8 16" rows="1,16,256,2048" reps=5 out=${OUT:-$root/scratch/blend_bench}
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks=$2; shift ;;
    --rows) rows=$2; shift ;;
    --reps) reps=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "blend_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
bin=${MPILLM_BIN:-}
if [ -z "$bin" ]; then
  cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release -DMPILLM_TESTS=OFF >/dev/null
  cmake --build "$root/build-bench" -j"$(nproc)" >/dev/null
  bin=$root/build-bench/mpillm
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MPILLM_THREADS=1
cores=$(nproc)
model=$out/blend_example.h5
"$bin" blend-init --config "$root/configs/blend_example.ini" -o "$model" | tee "$out/model.txt"
{
  echo "# seed network bench: $(hostname), $cores cores, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "model: configs/blend_example.ini (random weights, seed 1); one BLAS thread per rank"
  echo
} >"$out/summary.md"
jsons=()
for n in $ranks; do
  bind=(--bind-to core --map-by core)
  [ "$n" -gt "$cores" ] && bind=(--oversubscribe --bind-to none)
  echo "== $n ranks" >&2
  mpiexec -n "$n" "${bind[@]}" "$bin" bench -m "$model" --rows "$rows" \
    --modes model,data,split --alpha 0.25,0.5,0.75 --reps "$reps" --warmup 1 \
    --json "$out/bench_np$n.json" | tee "$out/bench_np$n.txt"
  cat "$out/bench_np$n.txt" >>"$out/summary.md"
  echo >>"$out/summary.md"
  jsons+=("$out/bench_np$n.json")
done
{
  echo "["
  for i in "${!jsons[@]}"; do
    cat "${jsons[$i]}"
    [ "$i" -lt $((${#jsons[@]} - 1)) ] && echo ","
  done
  echo "]"
} >"$out/bench_all.json"
# model vs data vs the best split, per ranks x rows, from the tables
{
  echo "| ranks | rows | model rows/s | data rows/s | best split rows/s (alpha) | fastest |"
  echo "|---|---|---|---|---|---|"
  cat "$out"/bench_np*.txt | awk -F'|' '
    /^\| (model|data|split) / {
      mode=$2; gsub(/ /, "", mode); alpha=$3; gsub(/ /, "", alpha)
      n=$4+0; b=$5+0; split($6, r, " "); rate=r[1]+0; key=n" "b
      keys[key]=1
      if (mode == "model") m[key]=rate
      else if (mode == "data") d[key]=rate
      else if (rate > s[key]) { s[key]=rate; sa[key]=alpha }
    }
    END {
      for (k in keys) {
        split(k, p, " ")
        best="model"; bv=m[k]
        if (d[k] > bv) { best="data"; bv=d[k] }
        if (s[k] > bv) { best="split " sa[k]; bv=s[k] }
        printf "| %d | %d | %.1f | %.1f | %.1f (%s) | %s |\n", p[1], p[2], m[k], d[k], s[k], sa[k], best
      }
    }' | sort -t'|' -k2,2n -k3,3n
} >"$out/compare.md"
cat "$out/compare.md" >>"$out/summary.md"
cat "$out/compare.md"
echo "wrote $out/summary.md, $out/bench_all.json" >&2
