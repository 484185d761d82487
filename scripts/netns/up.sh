#!/usr/bin/env bash
# Builds N emulated hosts on this machine for multi-node experiments: one network
# namespace per host (mplnet-h1 .. mplnet-hN) with a veth pair to a bridge that lives
# in its own namespace (mplnet-sw), so no address or route of the real machine changes.
# Addresses are 198.18.0.I/24 (RFC 2544's benchmarking range, inside these namespaces
# only). Each link is capped with tc tbf in both directions (this kernel has no netem:
# latency is emulated by mpillm itself, MPILLM_NET_DELAY_US).
#   scripts/netns/up.sh N [--rate 1gbit|100mbit|...|none]
#   scripts/netns/run.sh ... (mpirun across them)    scripts/netns/down.sh
set -euo pipefail
prefix=${MPLNET_PREFIX:-mplnet}
n=${1:?usage: up.sh N [--rate RATE]}; shift
rate=1gbit
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=$2; shift ;;
    *) echo "up.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "up.sh: network namespaces need root" >&2; exit 1; }
[[ "$n" =~ ^[1-9][0-9]?$ ]] || { echo "up.sh: N is 1..99 hosts, not '$n'" >&2; exit 2; }
if ip netns list | grep -q "^$prefix-"; then
  echo "up.sh: $prefix namespaces exist already: scripts/netns/down.sh first" >&2
  exit 1
fi

# tbf needs a burst of at least rate / HZ; 1/100 s of traffic (>= 32 KiB) is plenty
tbf() { # dev netns
  [ "$rate" = none ] && return 0
  local bits
  bits=$(echo "$rate" | awk '{v=$1+0; u=tolower($1); sub(/^[0-9.]+/,"",u);
    m = (u=="kbit")?1e3:(u=="mbit")?1e6:(u=="gbit")?1e9:1; print int(v*m)}')
  local burst=$((bits / 8 / 100))
  [ "$burst" -lt 32768 ] && burst=32768
  ip -n "$2" link set "$1" txqueuelen 1000
  tc -n "$2" qdisc add dev "$1" root tbf rate "$rate" burst "$burst" latency 100ms
}

sw=$prefix-sw
ip netns add "$sw"
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
ip -n "$sw" link set lo up
# the switch namespace holds mpirun (scripts/netns/run.sh): every host is then remote,
# started through the agent and pinned by it
ip -n "$sw" addr add 198.18.0.254/24 dev br0
hosts="198.18.0.254 sw"$'\n'
for i in $(seq 1 "$n"); do hosts+="198.18.0.$i h$i"$'\n'; done
mkdir -p "/etc/netns/$sw"
printf '127.0.0.1 localhost\n%s' "$hosts" > "/etc/netns/$sw/hosts"
for i in $(seq 1 "$n"); do
  ns=$prefix-h$i
  ip netns add "$ns"
  # /etc/netns/NS/hosts is bind-mounted over /etc/hosts by `ip netns exec NS`
  mkdir -p "/etc/netns/$ns"
  printf '127.0.0.1 localhost\n%s' "$hosts" > "/etc/netns/$ns/hosts"
  ip -n "$ns" link add eth0 type veth peer name "p$i" netns "$sw"
  ip -n "$ns" addr add "198.18.0.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$sw" link set "p$i" master br0
  ip -n "$sw" link set "p$i" up
  tbf eth0 "$ns"     # host -> switch
  tbf "p$i" "$sw"    # switch -> host
done
# the switch reaches every host before we say so (no ping here: a TCP connect to a
# closed port that is refused at once proves the route; a timeout does not)
for i in $(seq 1 "$n"); do
  out=$(ip netns exec "$sw" timeout 3 bash -c "echo > /dev/tcp/198.18.0.$i/9" 2>&1) || true
  case "$out" in
    *refused*) ;;
    *) echo "up.sh: the switch cannot reach h$i ($out)" >&2; exit 1 ;;
  esac
done
echo "up.sh: $n emulated hosts h1..h$n on 198.18.0.0/24, links capped at $rate"
