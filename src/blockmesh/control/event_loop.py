"""The asyncio event loop of control-plane processes: uvloop.

A replica, a load generator and the PBFT benchmark spend 10-20 % of their CPU in the event
loop itself (callbacks, timers, socket readiness). uvloop runs the same asyncio API on libuv in
compiled code; side by side it cut CPU per request by 3-10 % and raised closed-loop throughput
by about 8 % over both transports (docs/benchmarks.md). grpc.aio runs on it unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on a new uvloop event loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
