"""Run many seeds of the PBFT simulation on several cores: `make sim SEEDS=10000 JOBS=2`.

The pytest module (test_pbft_simulation.py) runs its seeds in one process, which is right for
the few hundred that `make test` runs and slow for ten thousand (~7 minutes on one core).
This spreads seed ranges over worker processes, each running `pbft_harness.run_seed` as the
test does, and lists every failing seed for replay with PBFT_SIM_SEED=<n>.

    python tests/control/consensus/sim_seeds.py --seeds 10000 --jobs 2 [--first 0]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pbft_harness import run_seed

#: Seeds a worker takes at a time: small enough to balance the cores, large enough that
#: handing out ranges costs nothing next to running them.
CHUNK = 50


def run_range(bounds: tuple[int, int]) -> list[str]:
    """Failures (one line each) among seeds [start, stop)."""
    failures = []
    for seed in range(*bounds):
        try:
            run_seed(seed)
        except AssertionError as exc:
            failures.append(f"seed {seed}: {exc}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10_000, help="how many seeds to run")
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: one per core)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or args.first < 0:
        parser.error("--seeds and --jobs must be positive, --first not negative")
    stop = args.first + args.seeds
    ranges = [(s, min(s + CHUNK, stop)) for s in range(args.first, stop, CHUNK)]
    began = time.monotonic()
    failures: list[str] = []
    done = 0
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        for found in pool.imap_unordered(run_range, ranges):
            done += 1
            failures.extend(found)
            for line in found:
                print(line, flush=True)
            if done % 20 == 0 or done == len(ranges):
                print(f"{min(done * CHUNK, args.seeds)}/{args.seeds} seeds, "
                      f"{len(failures)} failing, {time.monotonic() - began:.0f} s", flush=True)
    if failures:
        print(f"{len(failures)} failing seeds; replay one with PBFT_SIM_SEED=<n> pytest "
              "tests/control/consensus/test_pbft_simulation.py -k many_seeds", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
