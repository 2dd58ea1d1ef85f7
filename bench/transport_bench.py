"""Messages per second of one-way streaming between two transports of each kind.

Run `python bench/transport_bench.py [--messages N] [--payload BYTES]`. Both
transports share one process and one event loop, so the figure is the whole CPU cost of a
message — serialize, queue, write, read, decode, dispatch — which is what bounds a replica on a
shared 2-core machine. Not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from prometheus_client import CollectorRegistry

from blockmesh.control import event_loop
from blockmesh.control.keys import Signer, Verifier
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import TRANSPORT_CLASSES, PeerError

_BURST = 512


async def stream_rate(kind: str, messages: int, payload: int) -> dict[str, float]:
    """Send `messages` PREPAREs from one transport to another; report what got through."""
    signers = [Signer.generate("sender"), Signer.generate("receiver")]
    cluster = Verifier({s.node_id: s.public_key for s in signers})
    cls = TRANSPORT_CLASSES[kind]
    sender, receiver = (cls(s, cluster, registry=CollectorRegistry()) for s in signers)
    done = asyncio.Event()
    received = 0

    def on_message(_peer: str, _msg: pb.PBFTMessage) -> None:
        nonlocal received
        received += 1
        if received == messages:
            done.set()

    receiver.set_message_handler(on_message)
    await receiver.start()
    await sender.start()
    try:
        await sender.add_peer(receiver.node_id, receiver.address)
        msg = pb.PBFTMessage(
            type=pb.PREPARE,
            view=1,
            digest=b"d" * 32,
            node_id="sender",
            signature=b"s" * 64,
            payload=b"p" * payload,
        )
        started = time.perf_counter()
        retries = 0
        for seq in range(messages):
            msg.sequence = seq
            while True:
                try:
                    await sender.send(receiver.node_id, msg)
                    break
                except PeerError:  # backlog full: let the writer drain instead of spinning
                    retries += 1
                    await asyncio.sleep(0.001)
            if seq % _BURST == 0:
                await asyncio.sleep(0)
        async with asyncio.timeout(120):
            await done.wait()
        elapsed = time.perf_counter() - started
    finally:
        await sender.stop()
        await receiver.stop()
    return {
        "messages_per_s": round(messages / elapsed),
        "mb_per_s": round(messages * (msg.ByteSize()) / elapsed / 1e6, 1),
        "message_bytes": msg.ByteSize(),
        "seconds": round(elapsed, 2),
        "backpressure_retries": retries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--payload", type=int, default=0, help="extra payload bytes per message")
    parser.add_argument("--kind", choices=sorted(TRANSPORT_CLASSES), action="append")
    args = parser.parse_args()
    for kind in args.kind or sorted(TRANSPORT_CLASSES):
        result = event_loop.run(stream_rate(kind, args.messages, args.payload))
        print(json.dumps({"transport": kind, "payload": args.payload, **result}))


if __name__ == "__main__":
    main()
