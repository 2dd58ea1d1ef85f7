"""The HTTP gateway beside Bitswap (the same as `blockmesh bench gateway`; run by hand).

    python bench/gateway_bench.py [--size-mib 100] [--small-blocks 2000] [--clients 8]

Two daemons on 127.0.0.1; see blockmesh.bench.gatewaybench for what each row measures.
"""

from __future__ import annotations

import sys

from blockmesh.cli.bench import bench_gateway

if __name__ == "__main__":
    sys.exit(bench_gateway.main(standalone_mode=True))
