"""Time to first byte for content found only through the DHT, beside kubo (the same as
`blockmesh bench dht`; run by hand).

    python bench/dht_bench.py [--nodes 20] [--repeat 3] [--size-kib 1024] [--no-kubo] [--json]

N daemons on 127.0.0.1 bootstrapped from node 0; see blockmesh.bench.dhtbench for what is timed.
"""

from __future__ import annotations

import sys

from blockmesh.cli.bench import bench_dht

if __name__ == "__main__":
    sys.exit(bench_dht.main(standalone_mode=True))
