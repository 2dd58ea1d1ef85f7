#!/bin/bash
# PBFT open loop at 96 clients beside BFT-SMaRt at 96 clients (issue 15, goal 1), one command:
#   tcp, grpc  blockmesh's closed loop at 96 clients, then its open-loop saturation sweep: the
#              offered rate stepped up ($RATES) from 96 client identities, each step reporting
#              committed req/s, p50/p99 from the scheduled instant and CPU ms per committed
#              request of each replica and of the load generator (0 B, batching on, MAC-only
#              requests); the sweep stops after two steps in a row that were not sustained.
#   bftsmart   BFT-SMaRt's ThroughputLatency benchmark with 96 client threads (closed loop, so
#              its throughput there is its saturation point), through the anchor script.
#   report     the table with ratios to BFT-SMaRt and the CPU ceiling of two cores
#              (bench/pbft_open_report.py).
# Saturation: the highest offered rate whose step committed >= 95 % of it with no failed or
# unfinished request and p99 <= $P99_BOUND ms.
#
# usage: bench/pbft_open_vs_bftsmart.sh [OUTDIR] [STEP...]   (default: a new directory, all steps)
# Each step writes OUTDIR/<step>.json or .txt, so the steps can run as separate calls.
# env: RATES, CLIENTS (96), SIZE (0), STEP_SECONDS (measured seconds per step, 5), COUNT (closed
#      loop requests, 6000), P99_BOUND (ms, 500), ANCHOR, BFTSMART_ROOT, BFTSMART_DUR (180),
#      BFTSMART_WARMUP (110), PY (python)
set -eu
. "$(dirname "$0")/anchor_env.sh"
RATES=${RATES:-500,1000,1250,1500,1750,2000,2250,2500,3000,3500,4000,5000,6000,8000,10000}
CLIENTS=${CLIENTS:-96}
SIZE=${SIZE:-0}
out=${1:-$(mktemp -d /tmp/pbft-open-XXXXXX)}
[ $# -gt 0 ] && shift
steps=${*:-tcp grpc bftsmart report}
mkdir -p "$out"
echo "== results in $out"
for step in $steps; do
  echo "== $(date -u +%FT%TZ) $step, blockmesh $(git -C "$here" rev-parse --short HEAD)"
  case $step in
    tcp|grpc)
      "$PY" "$here/bench/pbft_bench.py" --transport "$step" --size "$SIZE" --batching on \
          --mode both --clients "$CLIENTS" --identities "$CLIENTS" --count "${COUNT:-6000}" \
          --rate "$RATES" --seconds "${STEP_SECONDS:-5}" --p99-bound "${P99_BOUND:-500}" \
          --skip-view-change --json > "$out/$step.json";;
    bftsmart)
      PORT_BASE=${PORT_BASE:-$((20000 + RANDOM % 20000))} WARMUP_S=${BFTSMART_WARMUP:-110} \
          bash "$ANCHOR" "$SIZE" "$CLIENTS" "${BFTSMART_DUR:-180}" 0 nosig > "$out/bftsmart.txt"
      grep -E "OPS_PER_SEC|latency ms|replica [0-9]|client   :|machine busy" "$out/bftsmart.txt";;
    report)
      "$PY" "$here/bench/pbft_open_report.py" "$out";;
    *) echo "unknown step $step (tcp, grpc, bftsmart, report)"; exit 2;;
  esac
done
