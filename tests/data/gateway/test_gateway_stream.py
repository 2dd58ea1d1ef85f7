"""Streaming: a 100 MiB file served whole and in ranges without the server holding it (the
anonymous memory of this process, where server and client run, is sampled while it streams),
and a client that disconnects mid-stream leaves no task and no open body behind."""

from __future__ import annotations

import io
import random
import socket
import struct
from pathlib import Path

import h11
import pytest
import trio

from blockmesh.data.dag.importer import ImportOptions, import_bytes, import_stream
from blockmesh.data.gateway.handler import Gateway
from blockmesh.data.gateway.server import GatewayServer
from blockmesh.data.store.config import Config, DatastoreConfig
from blockmesh.data.store.memory import MemoryBlockstore
from blockmesh.data.store.repo import Repo

MiB = 1 << 20
BIG_MIB = 100
WAIT = 30


def _chunk(index: int) -> bytes:
    return random.Random(index).randbytes(MiB)


class _Generated(io.RawIOBase):
    """BIG_MIB MiB of reproducible bytes, made one MiB at a time as the importer reads."""

    def __init__(self) -> None:
        self._index = 0
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, out) -> int:  # type: ignore[no-untyped-def]
        if not self._buffer and self._index < BIG_MIB:
            self._buffer = _chunk(self._index)
            self._index += 1
        count = min(len(out), len(self._buffer))
        out[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count


def _expected(start: int, stop: int) -> bytes:
    first, last = start // MiB, (stop - 1) // MiB
    joined = b"".join(_chunk(i) for i in range(first, last + 1))
    return joined[start - first * MiB: stop - first * MiB]


def _anon_rss() -> int:
    """Anonymous resident memory: buffers and Python objects, not the page cache or the
    store's memory map (which the kernel may drop at will)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


async def _fetch(port: int, target: str, headers: list[tuple[str, str]],
                 keep: bool) -> tuple[int, int, bytes]:
    """(status, bytes of body, the body if `keep`), reading as the server sends."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        await stream.send_all(conn.send(h11.Request(
            method="GET", target=target, headers=[("host", "127.0.0.1"), *headers])))
        await stream.send_all(conn.send(h11.EndOfMessage()))
        status, count, kept = 0, 0, bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(1 << 18))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                count += len(event.data)
                if keep:
                    kept += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, count, bytes(kept)


@pytest.mark.slow
async def test_100_mib_file_streams_whole_and_in_ranges_in_bounded_memory(tmp_path, nursery):
    config = Config(datastore=DatastoreConfig(engine="flatfs"))
    with Repo.init(tmp_path / "repo", config) as repo:
        root = import_stream(_Generated(), ImportOptions(cid_version=1), repo.blocks.put).cid
        server = GatewayServer(Gateway(repo.blocks))
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        peak = [0]

        async def sample() -> None:
            while True:
                peak[0] = max(peak[0], _anon_rss())
                await trio.sleep(0.005)

        baseline = _anon_rss()
        peak[0] = baseline
        async with trio.open_nursery() as sampler:
            sampler.start_soon(sample)
            with trio.fail_after(300):
                status, count, _ = await _fetch(port, f"/ipfs/{root}", [], keep=False)
                assert (status, count) == (200, BIG_MIB * MiB)
                size = BIG_MIB * MiB
                status, _, body = await _fetch(port, f"/ipfs/{root}",
                                               [("range", "bytes=-1500000")], keep=True)
                assert status == 206 and body == _expected(size - 1500000, size)
                status, _, body = await _fetch(
                    port, f"/ipfs/{root}", [("range", "bytes=12345-22344,77000000-77999999")],
                    keep=True)
                assert status == 206
                assert _expected(12345, 22345) in body and _expected(77000000, 78000000) in body
            sampler.cancel_scope.cancel()
        # the kept range bodies above are ~3 MiB; 100 MiB held anywhere would be far above this
        assert peak[0] - baseline < 48 * MiB, f"grew {(peak[0] - baseline) / MiB:.0f} MiB"


def _all_tasks() -> int:
    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(child) for nursery in task.child_nurseries
                       for child in nursery.child_tasks)
    return count(trio.lowlevel.current_root_task())


async def test_client_that_disconnects_mid_stream_leaves_nothing_behind(nursery):
    store = MemoryBlockstore()
    data = random.Random(7).randbytes(16 * MiB)
    root = import_bytes(data, ImportOptions(cid_version=1), store.put).cid
    server = GatewayServer(Gateway(store))
    port = await nursery.start(server.serve, "127.0.0.1", 0)
    await trio.sleep(0.05)
    before = _all_tasks()
    for _ in range(3):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(f"GET /ipfs/{root} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        first = await stream.receive_some(65536)
        assert first.startswith(b"HTTP/1.1 200")
        with trio.fail_after(WAIT):
            while server.active_streams == 0:
                await trio.sleep(0.01)
        # close with a reset, as a killed browser tab does
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()
    with trio.fail_after(WAIT):
        while server.active_streams or _all_tasks() != before:
            await trio.sleep(0.01)
    # and the server still serves
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"HEAD /ipfs/{root} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200")
