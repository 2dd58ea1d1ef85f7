"""gRPC SubmitStream, both ends: many client requests per stream message, answers likewise.

A unary SubmitRequest costs grpc.aio a call set-up, a task and a completion on each side, and a
client sends every request to every replica: with 32 closed-loop clients that was most of the
load generator's CPU (docs/benchmarks.md). Over one stream per (client process, replica), each
side instead packs whatever is ready into one message — the requests its sessions issued since
the last write, or the answers a replica's last engine step produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable

import grpc
import grpc.aio

from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport.errors import PeerError
from blockmesh.control.transport.state import SubmitGate

log = logging.getLogger(__name__)

METHOD = "SubmitStream"
#: Calls in one SubmitBatch a replica accepts, and answers it packs into one SubmitAnswers.
MAX_CALLS = 1024


async def serve(gate: SubmitGate, batches: AsyncIterator[pb.SubmitBatch],
                context: grpc.aio.ServicerContext, max_bytes: int) -> None:
    """The replica's side: feed every call to `gate`, stream the answers back in bursts."""
    answers: asyncio.Queue[pb.SubmitAnswer | None] = asyncio.Queue()

    def deliver_to(call_id: int) -> Callable[[pb.SubmitRequestResponse], None]:
        return lambda response: answers.put_nowait(
            pb.SubmitAnswer(call_id=call_id, response=response))

    async def read() -> None:
        try:
            async for batch in batches:
                if len(batch.calls) > MAX_CALLS:
                    log.info("a client sent %d calls in one SubmitBatch", len(batch.calls))
                    return
                for call in batch.calls:
                    gate.submit(call.request, deliver_to(call.call_id))
        finally:
            answers.put_nowait(None)

    reader = asyncio.create_task(read())
    try:
        while True:
            first = await answers.get()
            if first is None:
                return
            out = pb.SubmitAnswers(answers=[first])
            size = first.ByteSize()
            while not answers.empty() and len(out.answers) < MAX_CALLS and size < max_bytes // 2:
                item = answers.get_nowait()
                if item is None:
                    await context.write(out)
                    return
                out.answers.append(item)
                size += item.ByteSize()
            await context.write(out)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


class SubmitStreamClient:
    """The client's side over one channel: `submit` returns a future for the answer.

    The stream opens on first use and again after it fails; a failure fails every call then
    in flight (the caller retries, as after any transport error)."""

    def __init__(self, channel: grpc.aio.Channel, service: str, address: str) -> None:
        self._open = channel.stream_stream(
            f"/{service}/{METHOD}",
            request_serializer=pb.SubmitBatch.SerializeToString,
            response_deserializer=pb.SubmitAnswers.FromString,
        )
        self._address = address
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[pb.SubmitRequestResponse]] = {}
        self._outbox: list[pb.SubmitCall] = []
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def submit(self, request: pb.PBFTMessage) -> asyncio.Future[pb.SubmitRequestResponse]:
        if not self._tasks:
            self._start()
        call_id = next(self._ids)
        future: asyncio.Future[pb.SubmitRequestResponse] = (
            asyncio.get_running_loop().create_future())
        future.add_done_callback(lambda _f: self._waiting.pop(call_id, None))
        self._waiting[call_id] = future
        self._outbox.append(pb.SubmitCall(call_id=call_id, request=request))
        assert self._wake is not None
        self._wake.set()
        return future

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail("closed")

    def _start(self) -> None:
        call = self._open()
        self._wake = asyncio.Event()
        self._tasks = [asyncio.create_task(self._write(call)),
                       asyncio.create_task(self._read(call))]

    async def _write(self, call: grpc.aio.StreamStreamCall) -> None:
        assert self._wake is not None
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._outbox:
                    chunk, self._outbox = self._outbox[:MAX_CALLS], self._outbox[MAX_CALLS:]
                    await call.write(pb.SubmitBatch(calls=chunk))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            self._broken(call, f"submit stream write failed: {exc}")

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        try:
            async for answers in call:
                for answer in answers.answers:
                    future = self._waiting.get(answer.call_id)
                    if future is not None and not future.done():
                        future.set_result(answer.response)
            self._broken(call, "the replica ended the submit stream")
        except grpc.aio.AioRpcError as exc:
            self._broken(call, exc.code().name.lower())

    def _broken(self, call: grpc.aio.StreamStreamCall, why: str) -> None:
        call.cancel()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._tasks = []
        self._outbox = []
        self._fail(why)

    def _fail(self, why: str) -> None:
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(PeerError(self._address, "disconnected", why))
