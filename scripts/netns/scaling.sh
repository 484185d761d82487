#!/usr/bin/env bash
# The emulated-network scaling table: `mpillm bench` on 1, 2 and 4 emulated hosts (one
# rank each, scripts/netns/up.sh), links capped by tc at 100 Mbit/s and 1 Gbit/s, with
# and without a 50 us emulated latency per crossing message (MPILLM_NET_DELAY_US), for
# the tp, pp and dp layouts. Writes one bench JSON per run and OUT/table.md. One host
# has no link: it runs once per layout and is every row's baseline.
#   scripts/netns/scaling.sh -m MODEL [-o OUT] [--hosts "1 2 4"] [--rates "100mbit 1gbit"]
#       [--latencies "0 50"] [--layouts "tp pp dp"] [--batch B] [--prompt-len L] [--gen G]
#   MPILLM=path/to/mpillm (default: build/mpillm of this tree). Needs root; ~3-5 min on 2 cores.
# On a machine with fewer cores than hosts, hosts share cores (agent.sh pins host i to
# core (i-1) mod cores): the table then mixes compute contention into the scaling.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
model="" out="" hosts="1 2 4" rates="100mbit 1gbit" latencies="0 50" layouts="tp pp dp"
batch=4 prompt_len=32 gen=16 reps=3
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model=$2; shift ;;
    -o) out=$2; shift ;;
    --hosts) hosts=$2; shift ;;
    --rates) rates=$2; shift ;;
    --latencies) latencies=$2; shift ;;
    --layouts) layouts=$2; shift ;;
    --batch) batch=$2; shift ;;
    --prompt-len) prompt_len=$2; shift ;;
    --gen) gen=$2; shift ;;
    --reps) reps=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "scaling.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$model" ] && [ -f "$model" ] || { echo "scaling.sh: -m MODEL (an existing .h5) is required" >&2; exit 2; }
model=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")
bin=${MPILLM:-$root/build/mpillm}
"$bin" bench --help >/dev/null 2>&1 || { echo "scaling.sh: $bin has no bench command" >&2; exit 1; }
out=${out:-$root/scratch/netns-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
max_hosts=$(echo $hosts | tr ' ' '\n' | sort -n | tail -1)
trap '"$here/down.sh" >/dev/null 2>&1 || true' EXIT
"$here/down.sh" >/dev/null 2>&1 || true

bench() { # hosts rate latency layout
  local h=$1 rate=$2 lat=$3 layout=$4 b=$batch
  [ "$layout" = dp ] && b=$(((batch + h - 1) / h)) # per replica: the same work in all
  local json="$out/h$h-$rate-lat$lat-$layout.json"
  echo "== $h hosts, $rate, ${lat} us, --$layout $h, batch $b per replica"
  MPILLM_NET_DELAY_US=$lat timeout 300 "$here/run.sh" -H "$h" "$bin" bench -m "$model" \
    --"$layout" "$h" --prompt-len "$prompt_len" --gen "$gen" --batch "$b" --reps "$reps" \
    --bw-mib 0 --json "$json" > "$out/h$h-$rate-lat$lat-$layout.log" 2>&1 ||
    { echo "   failed: see $out/h$h-$rate-lat$lat-$layout.log"; tail -5 "$out/h$h-$rate-lat$lat-$layout.log"; }
}

first=1
for rate in $rates; do
  "$here/down.sh" >/dev/null
  "$here/up.sh" "$max_hosts" --rate "$rate"
  for h in $hosts; do
    if [ "$h" = 1 ]; then
      [ "$first" = 1 ] || continue
      for layout in $layouts; do bench 1 none 0 "$layout"; done
      continue
    fi
    for lat in $latencies; do
      for layout in $layouts; do bench "$h" "$rate" "$lat" "$layout"; done
    done
  done
  first=0
done
cmd="scripts/netns/scaling.sh -m $model --hosts \"$hosts\" --rates \"$rates\" --latencies \"$latencies\" --layouts \"$layouts\" --batch $batch --prompt-len $prompt_len --gen $gen --reps $reps"
python3 "$here/scaling_table.py" "$out" --command "$cmd" | tee "$out/table.md"
