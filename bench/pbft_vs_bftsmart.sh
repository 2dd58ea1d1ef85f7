#!/bin/bash
# PBFT beside BFT-SMaRt in one run: blockmesh's closed-loop cells (4 replicas, 32 clients, $SIZE B,
# batching on, TCP and gRPC, MAC-only requests unless --client-auth signature is passed) and then
# BFT-SMaRt's own ThroughputLatency benchmark (4 replicas, 32 client threads, $SIZE B, no request
# signatures: its default) through the anchor script, which needs BFT-SMaRt's source in
# $BFTSMART_ROOT/src (see the anchor's header). Prints BFT-SMaRt's CPU per request as ours.
#
# usage: bench/pbft_vs_bftsmart.sh [extra `blockmesh bench pbft` args...]
# env: SIZE (request bytes for both, default 0), ANCHOR (the anchor script),
#      BFTSMART_DUR / BFTSMART_WARMUP (seconds), PY (python)
set -eu
. "$(dirname "$0")/anchor_env.sh"
SIZE=${SIZE:-0}
echo "== $(date -u +%FT%TZ) blockmesh $(git -C "$here" rev-parse --short HEAD)"
"$PY" "$here/bench/pbft_bench.py" --size "$SIZE" --batching on --mode closed --skip-view-change \
    --count 6000 "$@"
echo "== $(date -u +%FT%TZ) BFT-SMaRt"
out=$(WARMUP_S=${BFTSMART_WARMUP:-110} bash "$ANCHOR" "$SIZE" 32 "${BFTSMART_DUR:-180}" 0 nosig)
echo "$out" | grep -E "OPS_PER_SEC|latency ms|replica [0-9]|client   :|machine busy"
echo "$out" | python3 -c '
import re, sys
text = sys.stdin.read()
reps = [float(x) for x in re.findall(r"replica \d: ([\d.]+)%", text)]
cli = re.search(r"client   : ([\d.]+)%", text)
ops = re.search(r"OPS_PER_SEC (\d+)", text)
if reps and cli and ops and int(ops.group(1)):
    per = 10 / int(ops.group(1))  # percent of a core -> ms of CPU per request
    print("BFT-SMaRt CPU ms/request: replicas %.3f (busiest %.3f), client %.3f"
          % (sum(reps) * per, max(reps) * per, float(cli.group(1)) * per))'
