"""A primary killed while every replica is starved of CPU: the survivors still finish the load.

On a machine at load ~17, `cluster submit --count 200` after a primary kill once did not
finish in 120 s. Here the surviving replicas are throttled by a SIGSTOP/SIGCONT duty cycle
(cgroup v2 cpu.max is not writable here; a stopped process misses its timers as a throttled
one does while its clock goes on), the primary is killed, and the load generator must finish
within its per-request timeout. Each replica runs 0.3 s of every second, so a round takes
longer than the 1 s base timeout: before the view-change timeout stayed backed off after a
view change (consensus/view_timer.py) the survivors went through a dozen views doing so.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from test_cluster_processes import KINDS, NODES, Cluster, agreed, make_cluster, sample

__all__ = ["make_cluster"]  # the fixture, shared with test_cluster_processes

#: Of every PERIOD seconds a throttled replica runs RUNNING of them, at a phase of its own.
PERIOD = 1.0
RUNNING = 0.3
#: Seconds one request may take (the load generator's --timeout), and the whole load.
REQUEST_BOUND = 60.0
LOAD_BOUND = 120.0
#: Requests of the load: with all three survivors needed for every quorum and each running
#: 30 % of the time, a round takes seconds; 200 (the issue's count) came within a few seconds
#: of LOAD_BOUND on a slow run of the whole suite. What is checked is that the load finishes
#: and the survivors do not churn through views, not how fast.
COUNT = 80


class Throttle:
    """Stop and continue processes on a duty cycle from a thread, until closed."""

    def __init__(self, pids: list[int], seed: int = 0) -> None:
        self._pids = pids
        rng = random.Random(seed)
        self._phase = {pid: rng.uniform(0, PERIOD) for pid in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Throttle:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for pid in self._pids:
            self._signal(pid, signal.SIGCONT)

    def _signal(self, pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _run(self) -> None:
        began = time.monotonic()
        running: dict[int, bool] = dict.fromkeys(self._pids, True)
        while not self._stop.wait(0.005):
            now = time.monotonic() - began
            for pid in self._pids:
                should = (now + self._phase[pid]) % PERIOD < RUNNING
                if should != running[pid]:
                    running[pid] = should
                    self._signal(pid, signal.SIGCONT if should else signal.SIGSTOP)


@pytest.mark.slow
@KINDS
def test_killed_primary_under_cpu_starvation_still_finishes_the_load(make_cluster, kind):
    c: Cluster = make_cluster(kind)
    for node in NODES:
        c.start(node)
    c.wait_meshed(NODES)
    c.load(8)
    c.wait_until("the first commits agree", agreed(NODES))
    rest = NODES[1:]
    with Throttle([c.procs[n].pid for n in rest]):
        c.kill("node0")
        run = subprocess.run(
            [sys.executable, "-m", "blockmesh.cli", "cluster", "submit", "--cluster",
             str(c.root / "cluster.toml"), "--transport", kind, "--count", str(COUNT),
             "--size", "100", "--clients", "8", "--timeout", str(REQUEST_BOUND), "--json"],
            capture_output=True, timeout=LOAD_BOUND)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    summary = json.loads(run.stdout)
    assert summary["committed"] == COUNT and summary["failed"] == 0, summary
    status = c.wait_until("the survivors agree", agreed(rest))
    # One view change replaces node0; churning through views was the failure.
    assert all(1 <= status[n]["view"] <= 2 for n in rest), status
    for n in rest:
        assert sample(c.metrics(n), "blockmesh_pbft_view_changes_total", node=n) <= 2, n
