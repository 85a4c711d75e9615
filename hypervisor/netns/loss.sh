#!/usr/bin/env bash
# The network loss of `up.sh PREFIX --loss PCT`, as one JSON line:
#   {"mode":"nftables"|"netem"|"none","frames":N,"dropped":D}
# nftables: frames = EtherType 0x88b5 frames the bridge forwarded (counted
# before the drop), dropped = those it dropped. netem: frames = frames offered
# to the bridge ports' netem qdiscs (sent + dropped), dropped = netem's drops.
prefix=${1:?usage: loss.sh PREFIX}
br="$prefix-br"
ip netns list | awk '{print $1}' | grep -qx "$br" || { echo "loss.sh: no namespace $br" >&2; exit 1; }
if command -v nft >/dev/null && ip netns exec "$br" nft list table bridge baremig >/dev/null 2>&1; then
  count() { ip netns exec "$br" nft list counter bridge baremig "$1" | awk '{ for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }'; }
  printf '{"mode":"nftables","frames":%d,"dropped":%d}\n' "$(count frames)" "$(count dropped)"
elif tc -n "$br" qdisc show | grep -q '^qdisc netem'; then
  tc -n "$br" -s qdisc show | awk '
    /^qdisc netem/ { on = 1; next }
    /^qdisc/ { on = 0 }
    on && /Sent/ { for (i = 1; i < NF; i++) { if ($i == "pkt") s += $(i - 1); if ($i == "(dropped") d += $(i + 1) + 0 } }
    END { printf "{\"mode\":\"netem\",\"frames\":%d,\"dropped\":%d}\n", s + d, d }'
else
  echo '{"mode":"none","frames":0,"dropped":0}'
fi
