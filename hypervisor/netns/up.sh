#!/usr/bin/env bash
# Builds the migration network from network namespaces:
#   <prefix>-br     a bridge (MTU 9000) in its own namespace
#   <prefix>-coord  the coordinator, interface mig0, MAC 02:62:6d:00:00:fe
#   <prefix>-nN     node N (1..count), interface mig0, MAC 02:62:6d:00:00:0N
# each joined to the bridge by a veth pair, MTU 9000.
#
#   up.sh PREFIX [--nodes N] [--rate 1gbit] [--loss PCT]
#
# --rate shapes every node's egress with tbf (mig0, in the node's namespace).
# --loss drops PCT % of the frames crossing the bridge at random, both
# directions, in the network (not in the endpoints):
#   netem     where the kernel has sch_netem: `netem loss PCT%` on the egress
#             of every bridge port (a bridged frame leaves by one port);
#   nftables  otherwise (no sch_netem, as on the CI kernel): table `bridge
#             baremig` in <prefix>-br, whose forward chain drops
#             `ether type 0x88b5 numgen random mod 10000 < PCT*100`, with named
#             counters `frames` (0x88b5 frames forwarded) and `dropped`.
# It says on stderr which one is in use; loss.sh PREFIX prints the mode and the
# counters as JSON. Exit 3 if neither netem nor nft is there.
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
if [ -n "$loss" ]; then
  loss=${loss%\%}
  # PCT in [0, 100], decimals allowed; nftables draws per 10000
  per10k=$(awk -v p="$loss" 'BEGIN { if (p !~ /^[0-9]+(\.[0-9]+)?$/ || p + 0 > 100) exit 1; printf "%d", p * 100 + 0.5 }') ||
    { echo "up.sh: --loss wants a percentage between 0 and 100, got '$loss'" >&2; exit 2; }
fi
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
  echo "$ns"
}
join "$prefix-coord" 0 02:62:6d:00:00:fe
for i in $(seq 1 "$nodes"); do
  join "$prefix-n$i" "$i" "$(printf '02:62:6d:00:00:%02x' "$i")"
done

# Loss in the network: netem on the bridge ports where the kernel has it, else nftables.
if [ -n "$loss" ]; then
  if tc -n "$br" qdisc add dev "${prefix}p0" root netem loss "$loss%" 2>/dev/null; then
    for i in $(seq 1 "$nodes"); do
      tc -n "$br" qdisc add dev "${prefix}p$i" root netem loss "$loss%"
    done
    echo "up.sh: $loss % loss by netem on the egress of every bridge port in $br" >&2
  elif command -v nft >/dev/null; then
    ip netns exec "$br" nft -f - <<NFT
table bridge baremig {
  counter frames { }
  counter dropped { }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ether type 0x88b5 counter name "frames"
    ether type 0x88b5 numgen random mod 10000 < $per10k counter name "dropped" drop
  }
}
NFT
    echo "up.sh: $loss % loss by nftables in $br (no sch_netem in this kernel): bridge forward, ether type 0x88b5 numgen random mod 10000 < $per10k drop" >&2
  else
    echo "up.sh: cannot inject loss: this kernel has no netem qdisc (sch_netem) and there is no nft command (install nftables)" >&2
    exit 3
  fi
fi
