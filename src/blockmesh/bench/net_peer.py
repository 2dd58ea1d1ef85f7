"""A blockmesh host in its own process, for the two-process tests and the throughput benchmark.

`start_peer` runs it as `python -m blockmesh.bench.net_peer [--repo DIR]`: it listens on
127.0.0.1 (a free port), prints one JSON line `{"peer_id": …, "addrs": […]}` on stdout and
serves until killed. Protocols: echo (bytes back until EOF), sink (count bytes until EOF,
answer the count as 8 bytes), source (read an 8-byte total and a 4-byte write size, send that
much, close), dialback (read a payload, open an echo stream back to the caller, answer what
came back).
"""

from __future__ import annotations

import argparse
import json
import selectors
import subprocess
import sys

import trio

from blockmesh.data.net import Host, Identity, NetConfig, Stream, load_or_create_identity

ECHO = "/blockmesh/test/echo/1.0.0"
SINK = "/blockmesh/test/sink/1.0.0"
SOURCE = "/blockmesh/test/source/1.0.0"
DIALBACK = "/blockmesh/test/dialback/1.0.0"
MAX_PAYLOAD = 1 << 20


START_TIMEOUT = 30
WAIT = 15


class Peer:
    """The child process and what it announced."""

    def __init__(self, proc: subprocess.Popen[bytes], hello: dict[str, object]) -> None:
        self.proc = proc
        self.peer_id = str(hello["peer_id"])
        self.addrs = [str(a) for a in hello["addrs"]]  # type: ignore[union-attr]


def start_peer(*args: str) -> Peer:
    """Start a peer process and wait for its announcement (bounded; killed on failure)."""
    proc = subprocess.Popen([sys.executable, "-m", "blockmesh.bench.net_peer", *args],
                            stdout=subprocess.PIPE)
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
    """Kill the peer by PID and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=WAIT)
    if proc.stdout is not None:
        proc.stdout.close()



async def echo(stream: Stream) -> None:
    while data := await stream.read():
        await stream.write(data)


async def sink(stream: Stream) -> None:
    total = 0
    while data := await stream.read():
        total += len(data)
    await stream.write(total.to_bytes(8, "big"))


async def source(stream: Stream) -> None:
    header = await stream.read_exactly(12)
    remaining = int.from_bytes(header[:8], "big")
    block = bytes(int.from_bytes(header[8:], "big"))
    while remaining > 0:
        piece = block[:remaining]
        await stream.write(piece)
        remaining -= len(piece)
    await stream.close_write()


def dialback(host: Host):
    async def serve(stream: Stream) -> None:
        payload = bytearray()
        while len(payload) <= MAX_PAYLOAD and (data := await stream.read()):
            payload += data
        back = await host.new_stream(stream.peer_id, [ECHO])
        async with back:
            await back.write(bytes(payload))
            await back.close_write()
            echoed = bytearray()
            while data := await back.read():
                echoed += data
        await stream.write(bytes(echoed))

    return serve


async def main(repo: str | None) -> None:
    identity = load_or_create_identity(repo) if repo else Identity.generate()
    host = Host(identity, NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",)))
    host.set_stream_handler([ECHO], echo)
    host.set_stream_handler([SINK], sink)
    host.set_stream_handler([SOURCE], source)
    host.set_stream_handler([DIALBACK], dialback(host))
    async with host.run():
        print(json.dumps({"peer_id": host.peer_id, "addrs": host.addrs()}), flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo")
    args = parser.parse_args()
    try:
        trio.run(main, args.repo)
    except KeyboardInterrupt:
        sys.exit(0)
