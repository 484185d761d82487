#!/usr/bin/env bash
# The launch agent Open MPI calls in place of ssh (--mca plm_rsh_agent): "agent.sh
# [ssh options] HOST COMMAND...". Runs COMMAND (an orted) inside HOST's namespace,
# with HOST as its host name, pinned by taskset to a core of its own (host i gets
# core (i-1) mod cores): without the pin every emulated host's rank lands on core 0.
set -euo pipefail
prefix=${MPLNET_PREFIX:-mplnet}
while [ $# -gt 0 ] && [[ "$1" == -* ]]; do shift; done
host=${1:?agent.sh: no host}; shift
i=${host#h}
[[ "$i" =~ ^[0-9]+$ ]] || { echo "agent.sh: host '$host' is not h1..hN" >&2; exit 1; }
core=$(((i - 1) % $(nproc)))
exec ip netns exec "$prefix-$host" unshare --uts sh -c \
  'hostname "$1"; shift; exec taskset -c "$0" sh -c "$*"' "$core" "$host" "$@"
