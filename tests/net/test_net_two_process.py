"""A blockmesh host in a child process: connect, identify, ping and streams both ways."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from net_peer import DIALBACK, ECHO, SINK, SOURCE, echo

from blockmesh.data.net import Host, Identity, NetConfig

HERE = Path(__file__).resolve().parent

START_TIMEOUT = 30
WAIT = 15


class Peer:
    """The child process and what it announced."""

    def __init__(self, proc: subprocess.Popen[bytes], hello: dict[str, object]) -> None:
        self.proc = proc
        self.peer_id = str(hello["peer_id"])
        self.addrs = [str(a) for a in hello["addrs"]]  # type: ignore[union-attr]


def start_peer(*args: str) -> Peer:
    env = dict(os.environ)
    src = str(HERE.parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "net_peer.py"), *args],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = _readline(proc, START_TIMEOUT)
        return Peer(proc, json.loads(line))
    except BaseException:
        stop_peer(proc)
        raise


def _readline(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError(f"peer {proc.pid} printed nothing within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"peer {proc.pid} exited with {proc.wait()}")
    return line


def stop_peer(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=WAIT)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def peer() -> Iterator[Peer]:
    child = start_peer()
    try:
        yield child
    finally:
        stop_peer(child.proc)


async def test_two_processes_connect_identify_ping_and_stream_both_ways(peer):
    host = Host(Identity.generate(), NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",)))
    host.set_stream_handler([ECHO], echo)
    async with host.run():
        with trio.fail_after(WAIT):
            assert await host.connect(peer.addrs[0]) == peer.peer_id
            info = await host.identify(peer.peer_id)
            assert {ECHO, SINK, SOURCE, DIALBACK, "/ipfs/ping/1.0.0"} <= set(info.protocols)
            assert await host.ping(peer.peer_id) > 0

            payload = os.urandom(300_000)
            # Us -> child: the child counts what we send.
            async with await host.new_stream(peer.peer_id, [SINK]) as stream:
                await stream.write(payload)
                await stream.close_write()
                assert int.from_bytes(await stream.read_exactly(8), "big") == len(payload)
            # Child -> us: the child opens a stream to our echo handler.
            async with await host.new_stream(peer.peer_id, [DIALBACK]) as stream:
                await stream.write(payload[:5000])
                await stream.close_write()
                echoed = bytearray()
                while data := await stream.read():
                    echoed += data
            assert bytes(echoed) == payload[:5000]


async def test_restarted_peer_keeps_its_peer_id(tmp_path):
    ids = []
    for _ in range(2):
        child = start_peer("--repo", str(tmp_path / "repo"))
        try:
            ids.append(child.peer_id)
            host = Host(Identity.generate(), NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",)))
            async with host.run():
                with trio.fail_after(WAIT):
                    await host.connect(child.addrs[0])
                    assert (await host.identify(child.peer_id)).peer_id == child.peer_id
        finally:
            stop_peer(child.proc)
    assert ids[0] == ids[1]
