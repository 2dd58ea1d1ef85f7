"""Bandwidth limits on real streams between hosts in one trio run on 127.0.0.1: an inbound
limit held by reading slowly, and a global limit shared by peers where per-peer ones are not.

The bounds are the limiter's own arithmetic: a transfer may beat size/rate by at most the
bucket it starts with (and, inbound, the last read, which is charged but never waited for),
and may not run more than 10 % slower. 1 MiB/s is far below what loopback does under load."""

from __future__ import annotations

import os

import pytest
import trio

from blockmesh.data.net import Host, Identity, NetConfig
from blockmesh.data.net.bandwidth import BandwidthLimits
from blockmesh.data.net.ratelimit import TokenBucket

SINK = "/blockmesh/test/sink/1.0.0"
RATE = 1 << 20
READ_SIZE = 64 << 10
WAIT = 30


def config(**limits: int) -> NetConfig:
    return NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",), max_read_size=READ_SIZE,
                     bandwidth=BandwidthLimits(**limits))


async def sink(stream) -> None:
    total = 0
    while data := await stream.read():
        total += len(data)
    await stream.write(total.to_bytes(8, "big"))


async def send(host: Host, peer: str, payload: bytes) -> None:
    async with await host.new_stream(peer, [SINK]) as stream:
        await stream.write(payload)
        await stream.close_write()
        assert int.from_bytes(await stream.read_exactly(8), "big") == len(payload)


def burst() -> float:
    return TokenBucket.for_rate(RATE, 0.0).burst


async def test_an_inbound_limit_slows_the_sender_through_flow_control():
    size = 2 << 20
    sender = Host(Identity.generate(), config())
    receiver = Host(Identity.generate(), config(rate_in=RATE))
    receiver.set_stream_handler([SINK], sink)
    async with sender.run(), receiver.run():
        with trio.fail_after(WAIT):
            await sender.connect(receiver.addrs()[0])
            start = trio.current_time()
            await send(sender, receiver.peer_id, os.urandom(size))
            elapsed = trio.current_time() - start
    assert (size - burst() - READ_SIZE) / RATE <= elapsed <= 1.1 * size / RATE
    now = trio.current_time()
    assert receiver.bandwidth.stats(now, peer=sender.peer_id).total_in == size
    assert sender.bandwidth.stats(now, protocol=SINK).total_out == size


@pytest.mark.parametrize("limits, shared", [
    ({"rate_out": RATE}, True),
    ({"peer_rate_out": RATE}, False),
])
async def test_a_global_limit_is_shared_and_a_per_peer_one_is_not(limits, shared):
    size = 2 << 20
    sender = Host(Identity.generate(), config(**limits))
    receivers = [Host(Identity.generate(), config()) for _ in range(2)]
    for receiver in receivers:
        receiver.set_stream_handler([SINK], sink)
    async with sender.run(), receivers[0].run(), receivers[1].run():
        with trio.fail_after(WAIT):
            for receiver in receivers:
                await sender.connect(receiver.addrs()[0])
            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                for receiver in receivers:
                    nursery.start_soon(send, sender, receiver.peer_id, os.urandom(size))
            elapsed = trio.current_time() - start
    moved = 2 * size if shared else size  # what one bucket had to let through
    assert (moved - burst()) / RATE <= elapsed <= 1.1 * moved / RATE
