#!/usr/bin/env bash
# Runs a command with mpirun across the emulated hosts of scripts/netns/up.sh, over
# TCP through their bridge: mpirun runs in the switch's namespace (it hosts no rank),
# and every host's daemon starts through agent.sh (ip netns exec + taskset to a core of
# its own; a pinned mpirun would hand its own CPU set to all hosts' ranks).
#   scripts/netns/run.sh -H HOSTS [-r RANKS_PER_HOST] [--] COMMAND [ARGS...]
# The environment (MPILLM_NET_DELAY_US, MPILLM_THREADS, ...) reaches every rank;
# MPILLM_NET_HOST_RANKS is set to RANKS_PER_HOST so an emulated delay knows the hosts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=${MPLNET_PREFIX:-mplnet}
n_hosts="" per_host=1
while [ $# -gt 0 ]; do
  case "$1" in
    -H) n_hosts=$2; shift ;;
    -r) per_host=$2; shift ;;
    --) shift; break ;;
    *) break ;;
  esac
  shift
done
[ -n "$n_hosts" ] && [ $# -gt 0 ] || { sed -n '5,7p' "$0" >&2; exit 2; }
ip netns list | grep -q "^$prefix-h$n_hosts\b" ||
  { echo "run.sh: no emulated host h$n_hosts: scripts/netns/up.sh $n_hosts first" >&2; exit 1; }
hostfile=$(mktemp /tmp/mplnet-hosts.XXXXXX)
trap 'rm -f "$hostfile"' EXIT
for i in $(seq 1 "$n_hosts"); do echo "h$i slots=$per_host"; done > "$hostfile"
export MPILLM_NET_HOST_RANKS=$per_host
export MPILLM_THREADS=${MPILLM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
net=198.18.0.0/24
# more ranks than cores: ranks that wait should yield the core, not spin on it
yield=()
[ $((n_hosts * per_host)) -gt "$(nproc)" ] && yield=(--mca mpi_yield_when_idle 1)
# --bind-to none: the agent's taskset pins each host; Open MPI's own binding would put
# every host's first rank on core 0
ip netns exec "$prefix-sw" unshare --uts sh -c 'hostname sw; exec "$@"' _ \
  mpirun -np $((n_hosts * per_host)) --hostfile "$hostfile" --map-by "ppr:$per_host:node" \
  --bind-to none --mca plm_rsh_agent "$here/agent.sh" \
  --mca oob_tcp_if_include "$net" --mca btl_tcp_if_include "$net" --mca btl self,vader,tcp \
  "${yield[@]}" --allow-run-as-root -x MPILLM_NET_HOST_RANKS -x MPILLM_THREADS -x OPENBLAS_NUM_THREADS "$@"
