#!/usr/bin/env bash
# The README's main command: installs the Debian packages that are missing and builds
# (scripts/setup.sh), then generates KJV-style text with the bundled model
# (models/kjv/model.h5) under mpirun with 4 ranks, printing the text and its timings.
#   scripts/demo.sh [--no-setup] [-p PROMPT] [-n TOKENS] [extra mpillm generate options]
# Environment: RANKS (default 4), MPILLM_BIN (default build/mpillm), MPIEXEC (default mpirun).
# Layout: tensor parallelism over all ranks unless you pass --dp/--pp/--tp (e.g. --pp 2 --tp 2).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
setup=1 prompt="In the beginning" n=64 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-setup) setup=0 ;;
    -p|--prompt) prompt=$2; shift ;;
    -n|--n-predict) n=$2; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) extra+=("$1") ;;
  esac
  shift
done
[ "$setup" = 1 ] && "$root/scripts/setup.sh"
bin=${MPILLM_BIN:-$root/build/mpillm}
ranks=${RANKS:-4}
model=$root/models/kjv/model.h5
[ -x "$bin" ] || { echo "demo: $bin is not built (run scripts/setup.sh)" >&2; exit 1; }
[ -s "$model" ] || { echo "demo: $model is missing (a clone without it? see models/kjv/README.md)" >&2; exit 1; }

# Open MPI refuses root unless told, and more ranks than cores unless oversubscribed
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ "$(nproc)" -lt "$ranks" ] && export OMPI_MCA_rmaps_base_oversubscribe=1

echo "demo: mpirun -np $ranks mpillm generate -m models/kjv/model.h5 -p \"$prompt\" -n $n --temperature 0.8 --top-k 40 --seed 1611 ${extra[*]}"
# the text streams to stdout after the prompt; the ranks' log lines (launch, warnings,
# errors) are kept aside and shown after it
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s.%N)
echo
printf '%s' "$prompt"
rc=0
"${MPIEXEC:-mpirun}" -np "$ranks" --bind-to none "$bin" generate -m "$model" -p "$prompt" -n "$n" \
  --temperature 0.8 --top-k 40 --seed 1611 "${extra[@]}" 2>"$log" || rc=$?
end=$(date +%s.%N)
sed 's/^/demo: log: /' "$log"
[ "$rc" = 0 ] || { echo "demo: mpillm generate failed (exit $rc)" >&2; exit "$rc"; }
echo "demo: $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') s wall clock, launch and model load included"
