#!/usr/bin/env bash
# Builds the migration network from network namespaces:
#   <prefix>-br     a bridge (MTU 9000) in its own namespace
#   <prefix>-coord  the coordinator, interface mig0, MAC 02:62:6d:00:00:fe
#   <prefix>-nN     node N (1..count), interface mig0, MAC 02:62:6d:00:00:0N
# each joined to the bridge by a veth pair, MTU 9000.
#
#   up.sh PREFIX [--nodes N] [--rate 1gbit] [--loss PCT]
#
# --rate shapes every node's egress with tbf; --loss asks netem for random
# loss and fails (exit 3) if this kernel has no netem, so that callers can
# fall back to the agents' own loss injection (--loss of the agent binaries).
# Prints the namespaces, one per line. down.sh PREFIX removes everything.
set -euo pipefail
prefix=${1:?usage: up.sh PREFIX [--nodes N] [--rate RATE] [--loss PCT]}
shift
nodes=2 rate="" loss=""
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --loss) loss=$2; shift 2 ;;
    *) echo "up.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ ${#prefix} -le 8 ] || { echo "up.sh: prefix must be at most 8 characters (interface names)" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
trap 'rc=$?; [ $rc -eq 0 ] || "$here/down.sh" "$prefix" >/dev/null 2>&1 || true' EXIT

br="$prefix-br"
ip netns add "$br"
ip -n "$br" link set lo up
ip -n "$br" link add br0 type bridge
ip -n "$br" link set br0 mtu 9000 up

join() { # ns idx mac
  local ns=$1 idx=$2 mac=$3
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "${prefix}v$idx" mtu 9000 type veth peer name "${prefix}p$idx" mtu 9000
  ip link set "${prefix}v$idx" netns "$ns"
  ip link set "${prefix}p$idx" netns "$br"
  ip -n "$ns" link set "${prefix}v$idx" name mig0
  ip -n "$ns" link set mig0 address "$mac" mtu 9000 up
  ip -n "$br" link set "${prefix}p$idx" master br0 mtu 9000 up
  if [ -n "$rate" ]; then
    tc -n "$ns" qdisc replace dev mig0 root tbf rate "$rate" burst 512kb limit 16mb
  fi
  if [ -n "$loss" ]; then
    if ! tc -n "$ns" qdisc replace dev mig0 root netem loss "$loss%" 2>/dev/null; then
      echo "up.sh: this kernel has no netem qdisc (sch_netem): cannot inject loss with tc" >&2
      exit 3
    fi
  fi
  echo "$ns"
}
join "$prefix-coord" 0 02:62:6d:00:00:fe
for i in $(seq 1 "$nodes"); do
  join "$prefix-n$i" "$i" "$(printf '02:62:6d:00:00:%02x' "$i")"
done
