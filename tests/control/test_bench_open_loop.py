"""The PBFT benchmark's open-loop schedule: requests go out on time whatever the replies do,
and latency counts from the scheduled instant (no coordinated omission)."""

from __future__ import annotations

import asyncio

from blockmesh.bench.pbftbench import Row, run_schedule, saturation, sustains
from blockmesh.control.cluster.client import RequestFailed

RATE = 256.0  # requests per second: 1/256 s apart, exact in binary
WARMUP = 0.0625  # 16 unmeasured requests
SECONDS = 0.25  # 64 measured requests


def test_requests_keep_their_schedule_while_no_reply_comes() -> None:
    """Two identities, no reply until after the last scheduled instant: every request after
    the first two waits in the queue, all still commit, and the earliest measured request's
    latency spans from its instant to the release, not from when an identity took it."""
    started: list[int] = []

    async def main() -> tuple[float, float, object]:
        loop = asyncio.get_running_loop()
        gate = asyncio.Event()
        released: list[float] = []

        async def execute(session: int) -> None:
            started.append(session)
            await gate.wait()

        def release() -> None:
            released.append(loop.time())
            gate.set()

        began = loop.time()
        loop.call_later(WARMUP + SECONDS + 0.05, release)
        out = await run_schedule([0, 1], execute, RATE, SECONDS, WARMUP, drain=10.0)
        return began, released[0], out

    began, released, out = asyncio.run(main())
    assert 63 <= out.committed <= 65
    assert out.failed == 0 and out.unfinished == 0
    assert out.queued == out.committed  # both identities were busy from the warm-up on
    assert len(started) == out.everything == out.committed + 16
    assert out.window_commits == 0  # nothing committed inside the window: it was blocked
    assert max(out.latencies) >= released - (began + WARMUP) - 0.01


def test_requests_left_at_the_end_of_the_drain_are_unfinished() -> None:
    async def main() -> object:
        async def execute(session: int) -> None:
            await asyncio.Event().wait()

        return await run_schedule(list(range(8)), execute, RATE, SECONDS, WARMUP, drain=0.1)

    out = asyncio.run(main())
    assert out.committed == out.everything == 0
    assert 63 <= out.unfinished <= 65
    assert out.latencies == []


def test_failed_requests_are_counted_and_free_their_identity() -> None:
    async def main() -> object:
        async def execute(session: int) -> None:
            raise RequestFailed("refused")

        return await run_schedule([0], execute, RATE, SECONDS, WARMUP, drain=1.0)

    out = asyncio.run(main())
    assert 63 <= out.failed <= 65
    assert out.committed == out.unfinished == 0


def _row(rate: float, committed_per_second: float, p99: float, unfinished: int = 0,
         last_p50: float = 20.0) -> Row:
    return Row("tcp", "open", True, 0, 96, rate, 100, 0, 0, unfinished, 5.0,
               committed_per_second, p99 / 2, p99, 10.0, p50_first_half_ms=20.0,
               p50_second_half_ms=last_p50)


def test_saturation_is_the_highest_sustained_step() -> None:
    rows = [_row(500, 500, 40), _row(1000, 990, 80), _row(1500, 1300, 900),
            _row(2000, 1400, 2000), _row(1250, 1240, 120, unfinished=3),
            _row(1750, 1740, 300, last_p50=250)]
    assert [sustains(r) for r in rows] == [True, True, False, False, False, False]
    (found,) = saturation(rows)
    assert (found.offered, found.committed_per_second, found.peak_per_second) == (1000, 990, 1740)
    assert saturation([_row(500, 200, 40)])[0].offered is None
