"""Import benchmark entry point: `python bench/import_bench.py [--size-mib N ...]`.

The same as `blockmesh bench import`; see docs/benchmarks.md for the recorded numbers.
"""

from blockmesh.cli.main import cli

if __name__ == "__main__":
    cli(["bench", "import", *__import__("sys").argv[1:]])
