"""The trio/asyncio bridge: calls both ways, errors, cancellation and a clean stop."""

from __future__ import annotations

import asyncio
import threading

import pytest
import trio

from blockmesh.daemon.bridge import BridgeClosed, ControlLoop


async def test_calls_cross_both_ways_and_the_thread_stops() -> None:
    control = ControlLoop()
    seen: list[str] = []
    stopped = threading.Event()

    async def main() -> None:
        try:
            await asyncio.Event().wait()  # serve until cancelled
        finally:
            stopped.set()

    async def double(x: int) -> int:
        await asyncio.sleep(0.01)
        assert threading.current_thread().name == "control-plane"
        control.to_trio(lambda: seen.append(threading.current_thread().name))
        return 2 * x

    async with trio.open_nursery() as nursery:
        await nursery.start(control.run, main)
        assert await control.call(double(21)) == 42
        with trio.fail_after(5):
            while not seen:
                await trio.sleep(0.01)
        assert seen == [threading.current_thread().name]
        nursery.cancel_scope.cancel()
    assert stopped.is_set()
    assert not any(t.name == "control-plane" for t in threading.enumerate())
    with pytest.raises(BridgeClosed):
        await control.call(double(1))


async def test_errors_and_cancellation_cross_the_bridge() -> None:
    control = ControlLoop()
    cancelled = threading.Event()

    async def main() -> None:
        await asyncio.Event().wait()

    async def boom() -> None:
        raise ValueError("from asyncio")

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with trio.open_nursery() as nursery:
        await nursery.start(control.run, main)
        with pytest.raises(ValueError, match="from asyncio"):
            await control.call(boom())
        with trio.move_on_after(0.1):
            await control.call(forever())
        with trio.fail_after(5):
            while not cancelled.is_set():
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


async def test_a_failing_main_fails_the_owner() -> None:
    async def main() -> None:
        raise RuntimeError("replica died")

    with pytest.raises(RuntimeError, match="replica died"):
        with trio.fail_after(5):
            await ControlLoop().run(main)
