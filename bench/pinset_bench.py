"""Pinset benchmark entry point: `python bench/pinset_bench.py [--pins N --file-mib M ...]`.

The same as `blockmesh bench pinset`; see docs/benchmarks.md for the recorded numbers.
"""

import sys

from blockmesh.cli.main import cli

if __name__ == "__main__":
    cli(["bench", "pinset", *sys.argv[1:]])
