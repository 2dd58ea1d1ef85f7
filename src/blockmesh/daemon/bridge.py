"""The one place where the daemon's two event loops meet: trio (data plane) and asyncio (control).

py-libp2p runs only on trio, and grpc.aio only on asyncio, so a member daemon runs the PBFT
replica on an asyncio (uvloop) loop in a thread of its own, owned by a trio task: the thread
starts when the task starts and is stopped and joined when the task's scope ends, so the
daemon's one root still owns everything. Nothing else crosses between the loops: trio code
awaits an asyncio coroutine with `call`, and asyncio code hands a plain callback to trio with
`to_trio`. Both directions cost one wake-up of the other loop (measured in the PBFT benchmark
when the replica runs inside the daemon).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import trio
import uvloop

from blockmesh.errors import BlockmeshError

T = TypeVar("T")


class BridgeClosed(BlockmeshError):
    """The control-plane loop is not running (not started yet, or already stopped)."""


class ControlLoop:
    """An asyncio loop on its own thread, started and stopped by a trio task (`run`)."""

    def __init__(self, name: str = "control-plane") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token: trio.lowlevel.TrioToken | None = None

    async def run(self, main: Callable[[], Awaitable[None]], *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run `main()` on the asyncio thread until it returns or this task is cancelled.

        `main` is started before `task_status.started()`, so callers can `call` at once. An
        exception `main` raises is raised here; cancelling this task cancels `main`.
        """
        self._token = trio.lowlevel.current_trio_token()
        loop = uvloop.new_event_loop()
        ready = threading.Event()
        outcome: concurrent.futures.Future[None] = concurrent.futures.Future()
        stop: list[asyncio.Event] = []

        async def supervise() -> None:
            stop.append(asyncio.Event())
            task = asyncio.ensure_future(main())
            ready.set()
            waiter = asyncio.ensure_future(stop[0].wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if not task.cancelled():
                task.result()  # re-raise what main raised

        def thread_main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(supervise())
                outcome.set_result(None)
            except BaseException as exc:  # handed to the trio task, which raises it
                outcome.set_exception(exc)
            finally:
                ready.set()
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=thread_main, name=self.name, daemon=True)
        thread.start()
        await trio.to_thread.run_sync(ready.wait)
        self._loop = loop
        try:
            task_status.started()
            await _wait_future(outcome)
        finally:
            self._loop = None
            if stop and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # closed since the check
                    loop.call_soon_threadsafe(stop[0].set)
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(thread.join)
        outcome.result()

    async def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await `coroutine` on the asyncio loop from trio; cancelling the caller cancels it."""
        loop = self._loop
        if loop is None:
            coroutine.close()
            raise BridgeClosed("the control plane is not running")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return await _wait_future(future)
        finally:
            future.cancel()

    def to_trio(self, callback: Callable[[], None]) -> None:
        """From the asyncio thread: run `callback` soon on the trio loop (never blocks)."""
        if self._token is None:
            raise BridgeClosed("the daemon's trio loop is not running")
        # When the daemon is shutting down, nobody is left to tell.
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(callback)


async def _wait_future(future: concurrent.futures.Future[T]) -> T:
    """Wait for a future of another thread without blocking trio (one wake-up, no polling)."""
    done = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def wake(_: object) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(done.set)

    future.add_done_callback(wake)
    await done.wait()
    return future.result()
