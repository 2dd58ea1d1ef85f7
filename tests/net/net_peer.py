"""A blockmesh host in its own process, for the two-process tests and the throughput benchmark.

Run as `python net_peer.py [--repo DIR]`: it listens on 127.0.0.1 (a free port), prints one JSON
line `{"peer_id": …, "addrs": […]}` on stdout and serves until killed. Protocols:
echo (bytes back until EOF), sink (count bytes until EOF, answer the count as 8 bytes),
source (read an 8-byte total and a 4-byte write size, send that much, close), dialback
(read a payload, open an echo stream back to the caller, answer what came back).
"""

from __future__ import annotations

import argparse
import json
import sys

import trio

from blockmesh.data.net import Host, Identity, NetConfig, Stream, load_or_create_identity

ECHO = "/blockmesh/test/echo/1.0.0"
SINK = "/blockmesh/test/sink/1.0.0"
SOURCE = "/blockmesh/test/source/1.0.0"
DIALBACK = "/blockmesh/test/dialback/1.0.0"
MAX_PAYLOAD = 1 << 20


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
