#!/usr/bin/env bash
# Removes the namespaces of up.sh PREFIX (and with them every veth, the bridge,
# the netem qdiscs and the nftables loss table). Safe to run twice, or after a
# partial up.sh.
prefix=${1:?usage: down.sh PREFIX}
for ns in $(ip netns list | awk '{print $1}' | grep -E "^${prefix}-(br|coord|n[0-9]+)$"); do
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  if [ "$ns" = "$prefix-br" ] && command -v nft >/dev/null; then
    ip netns exec "$ns" nft delete table bridge baremig 2>/dev/null || true
  fi
  ip netns del "$ns" 2>/dev/null || true
done
exit 0
