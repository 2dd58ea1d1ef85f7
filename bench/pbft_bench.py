"""PBFT cluster benchmark entry point: `python bench/pbft_bench.py [--transport tcp ...]`.

The same as `blockmesh bench pbft`; see docs/benchmarks.md for the recorded numbers.
"""

from blockmesh.cli.main import cli

if __name__ == "__main__":
    cli(["bench", "pbft", *__import__("sys").argv[1:]])
