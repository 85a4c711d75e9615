#!/usr/bin/env bash
# Reproduces the results in experiments/README.md: as root, on a machine with
# iperf, iputils-ping, iproute2 and libpcap-dev (Debian), after `npm install`.
# About 8 minutes on 2 cores; the machine should be otherwise idle.
#
#   experiments/run.sh            # both experiments
#   experiments/run.sh iperf      # only iperf-downtime (4 GiB, 1 Gb/s)
#   experiments/run.sh sweep      # only the sweep
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build >/dev/null
what="${1:-all}"
if [ "$what" = all ] || [ "$what" = iperf ]; then
  node dist/cli/main.js experiment iperf-downtime --ram 4G --link 1gbit --out experiments/results/iperf-downtime-4G
fi
if [ "$what" = all ] || [ "$what" = sweep ]; then
  node dist/cli/main.js experiment sweep --out experiments/results/sweep
fi
