#!/usr/bin/env bash
# Removes the emulated hosts of scripts/netns/up.sh: their processes, namespaces
# (which takes the veth pairs, bridge and tc queues with them) and /etc/netns files.
set -uo pipefail
prefix=${MPLNET_PREFIX:-mplnet}
for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix-"); do
  # processes still inside (a rank left over by a failed run)
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
  ip netns del "$ns"
  rm -rf "/etc/netns/$ns"
done
echo "down.sh: $prefix namespaces removed"
