"""Whole nodes in memory: each engine's envelopes are encoded, cut into pieces, decoded by the
other side's stream reader and fed in. A virtual clock drives timeouts. Fetches real UnixFS DAGs."""

from __future__ import annotations

import random

from blockmesh.data.bitswap import (
    Bitswap,
    BitswapConfig,
    Block,
    Message,
    MessageReader,
    ProtocolVersion,
    encode_frames,
)
from blockmesh.data.cid import CID
from blockmesh.data.dag import exporter
from blockmesh.data.dag.importer import ImportOptions, import_bytes
from blockmesh.data.dag.links import links
from blockmesh.data.store.memory import MemoryBlockstore


class Net:
    """Nodes joined by lossless in-memory links; `down` peers swallow everything sent to them."""

    def __init__(self, nodes: dict[str, Bitswap], seed: int = 0) -> None:
        self.nodes = nodes
        self.readers: dict[tuple[str, str], MessageReader] = {}
        self.rng = random.Random(seed)
        self.mute: set[str] = set()  # nodes whose outgoing messages are lost (stalled peers)
        self.sent_blocks: dict[str, int] = {name: 0 for name in nodes}

    def connect(self, a: str, b: str, now: float,
                version: ProtocolVersion = ProtocolVersion.V1_2_0) -> None:
        self.nodes[a].peer_connected(b, version.value, now)
        self.nodes[b].peer_connected(a, version.value, now)

    def disconnect(self, a: str, b: str, now: float) -> None:
        self.nodes[a].peer_disconnected(b, now)
        self.nodes[b].peer_disconnected(a, now)

    def pump(self, now: float, rounds: int = 10_000) -> None:
        for _ in range(rounds):
            moved = False
            for name, node in self.nodes.items():
                for env in node.outbox():
                    moved = True
                    node.message_sent(env)
                    if name in self.mute:
                        continue
                    self.sent_blocks[name] += len(env.message.blocks)
                    reader = self.readers.setdefault((name, env.peer), MessageReader())
                    data = env.data
                    pos = 0
                    while pos < len(data):  # the transport delivers arbitrary pieces
                        step = self.rng.randint(1, 70_000)
                        for msg in reader.feed(data[pos : pos + step]):
                            self.nodes[env.peer].receive(name, msg, now)
                        pos += step
            if not moved:
                return
        raise AssertionError("network never went quiet")


def fetch_dag(net: Net, node: str, root: CID, start: float = 0.0, step: float = 1.0,
              max_steps: int = 200):
    """Walk the DAG as a caller would: want the root, then the links of each block received."""
    bs = net.nodes[node]
    session = bs.new_session()
    now = start
    session.want([root], now)
    got: dict[CID, bytes] = {}
    for _ in range(max_steps):
        net.pump(now)
        for cid, data in session.take():
            got[cid] = data
            session.want([c for c in links(cid, data) if c not in got], now)
        if session.done:
            return session, got, now
        now += step
        for n in net.nodes.values():
            n.tick(now)
    raise AssertionError(f"fetch did not finish: {session.pending} pending")


def _dag(size: int, seed: int, opts: ImportOptions) -> tuple[bytes, CID, MemoryBlockstore]:
    data = random.Random(seed).randbytes(size)
    store = MemoryBlockstore()
    root = import_bytes(data, opts, sink=store.put).cid
    return data, root, store


def test_fetch_multi_block_dag_cidv0():
    data, root, src = _dag(300_000, 1, ImportOptions(chunk_size=4096))
    net = Net({"server": Bitswap(src), "client": Bitswap(MemoryBlockstore())})
    net.connect("server", "client", 0.0)
    session, got, _ = fetch_dag(net, "client", root)
    dst = net.nodes["client"].store
    assert len(got) == src.stat().blocks == dst.stat().blocks > 70
    assert b"".join(exporter.read_file(dst.get, root)) == data
    stat = net.nodes["client"].stat()
    assert stat.blocks_received == len(got) and stat.dup_blks_received == 0
    assert stat.wantlist == ()
    assert net.nodes["server"].stat().blocks_sent == len(got)
    ledger = net.nodes["server"].ledger("client")
    assert ledger.blocks_sent == len(got) and ledger.wantlist_size == 0
    assert net.nodes["server"].ledgers() == {"client": ledger}
    assert ledger.debt_ratio > 1000  # the client took everything and gave nothing back
    assert ledger.bytes_sent == sum(len(d) for d in got.values()) == stat.data_received
    assert net.nodes["server"].peer_wantlist("client") == []
    assert session.peers == {"server"}


def test_fetch_cidv1_raw_leaves_over_every_protocol_version():
    for version in (ProtocolVersion.V1_2_0, ProtocolVersion.V1_1_0):
        data, root, src = _dag(120_000, 2, ImportOptions(cid_version=1, chunk_size=2048))
        net = Net({"server": Bitswap(src), "client": Bitswap(MemoryBlockstore())})
        net.connect("server", "client", 0.0, version)
        _, got, _ = fetch_dag(net, "client", root)
        assert b"".join(exporter.read_file(net.nodes["client"].store.get, root)) == data
        assert len(got) == src.stat().blocks


def test_fetch_cidv0_over_1_0_0():
    data, root, src = _dag(50_000, 3, ImportOptions(chunk_size=4096))
    net = Net({"server": Bitswap(src), "client": Bitswap(MemoryBlockstore())})
    net.connect("server", "client", 0.0, ProtocolVersion.V1_0_0)
    fetch_dag(net, "client", root)
    assert b"".join(exporter.read_file(net.nodes["client"].store.get, root)) == data


def test_spreads_over_two_servers_and_survives_one_stalling():
    data, root, src = _dag(400_000, 4, ImportOptions(chunk_size=8192))
    a, b = MemoryBlockstore(), MemoryBlockstore()
    for cid in src.iterate():
        a.put(cid, src.get(cid))
        b.put(cid, src.get(cid))
    cfg = BitswapConfig(max_inflight_blocks_per_peer=4)
    net = Net({"a": Bitswap(a, cfg), "b": Bitswap(b, cfg), "c": Bitswap(MemoryBlockstore(), cfg)})
    net.connect("a", "c", 0.0)
    net.connect("b", "c", 0.0)
    session = net.nodes["c"].new_session()
    session.want([root], 0.0)
    net.pump(0.0)
    (first,) = session.take()
    leaves = links(*first)
    net.mute.add("b")  # b goes silent: its want-blocks time out and move to a
    session.want(leaves, 0.0)
    net.pump(0.0)
    to_b = [c for c, kind in net.nodes["c"].client.sent_wants("b").items() if kind.name == "BLOCK"]
    assert to_b and net.sent_blocks["a"] < len(leaves) + 1  # the work was spread over both
    assert session.timeouts == 0
    got = {first[0]: first[1]}
    now = 0.0
    for _ in range(100):
        got.update(session.take())
        if session.done:
            break
        now += 1.0
        for n in net.nodes.values():
            n.tick(now)
        net.pump(now)
    assert session.done and session.timeouts > 0
    assert b"".join(exporter.read_file(net.nodes["c"].store.get, root)) == data


def test_disconnect_midway_moves_wants_to_the_other_peer():
    data, root, src = _dag(200_000, 5, ImportOptions(chunk_size=4096))
    other = MemoryBlockstore()
    for cid in src.iterate():
        other.put(cid, src.get(cid))
    net = Net({"a": Bitswap(src), "b": Bitswap(other), "c": Bitswap(MemoryBlockstore())})
    net.connect("a", "c", 0.0)
    net.connect("b", "c", 0.0)
    net.mute.update({"a", "b"})
    session = net.nodes["c"].new_session()
    session.want([root], 0.0)
    net.pump(0.0)  # the wants went out, the answers are lost
    net.mute.clear()
    net.disconnect("a", "c", 0.0)
    now = 0.0
    got = {}
    for _ in range(100):
        net.pump(now)
        for cid, blk in session.take():
            got[cid] = blk
            session.want(links(cid, blk), now)
        if session.done:
            break
        now += 1.0
        net.nodes["c"].tick(now)
    assert session.done
    assert b"".join(exporter.read_file(net.nodes["c"].store.get, root)) == data


def test_want_block_kept_by_server_is_served_when_block_arrives():
    blob = b"pushed later" * 200
    cid = CID.of(blob)
    net = Net({"s": Bitswap(MemoryBlockstore()), "c": Bitswap(MemoryBlockstore())})
    net.connect("s", "c", 0.0, ProtocolVersion.V1_1_0)  # no HAVEs: the client asks for blocks
    session = net.nodes["c"].new_session()
    session.want([cid], 0.0)
    net.pump(0.0)
    net.nodes["s"].add_blocks([(cid, blob)])
    net.pump(0.5)
    assert session.take() == [(cid, blob)]


def test_block_nobody_has_then_added_later():
    blob = b"arrives later" * 200
    cid = CID.of(blob)
    net = Net({"s": Bitswap(MemoryBlockstore()), "c": Bitswap(MemoryBlockstore())})
    net.connect("s", "c", 0.0)
    session = net.nodes["c"].new_session()
    session.want([cid], 0.0)
    net.pump(0.0)
    assert session.take() == [] and session.pending == 1
    net.nodes["s"].add_blocks([(cid, blob)])
    net.pump(1.0)
    # the want-have survived its DONT_HAVE, so the server announces the block at once
    assert session.take() == [(cid, blob)]


def test_client_becomes_server_for_what_it_fetched():
    data, root, src = _dag(60_000, 6, ImportOptions(chunk_size=4096))
    net = Net({"a": Bitswap(src), "b": Bitswap(MemoryBlockstore()),
               "c": Bitswap(MemoryBlockstore())})
    net.connect("a", "b", 0.0)
    fetch_dag(net, "b", root)
    net.disconnect("a", "b", 0.0)
    net.connect("b", "c", 0.0)
    fetch_dag(net, "c", root)
    assert b"".join(exporter.read_file(net.nodes["c"].store.get, root)) == data


def test_liar_sending_unwanted_blocks_is_flagged_and_refused():
    honest = Bitswap(MemoryBlockstore())
    honest.peer_connected("liar", ProtocolVersion.V1_2_0.value, 0.0)
    for i in range(3):
        junk = bytes([i]) * 10
        body = encode_frames(Message(blocks=(Block(CID.of(junk), junk),)),
                             ProtocolVersion.V1_2_0)[0]
        for msg in MessageReader().feed(body):
            assert honest.receive("liar", msg, 0.0) == []
    assert "liar" in honest.flagged()
    assert honest.stat().blocks_received == 0 and honest.store.stat().blocks == 0
    assert honest.peer_connected("liar", ProtocolVersion.V1_2_0.value, 1.0) is False


def test_garbage_streams_get_a_peer_flagged_and_forgotten_by_the_server():
    from blockmesh.data.bitswap import BitswapError, Entry

    src = MemoryBlockstore()
    blob = b"served" * 100
    src.put(CID.of(blob), blob)
    node = Bitswap(src, BitswapConfig(max_strikes=2))
    node.peer_connected("rude", ProtocolVersion.V1_2_0.value, 0.0)
    node.receive("rude", Message((Entry(CID.of(blob)),)), 0.0)
    flagged = False
    for attempt in range(2):
        reader = MessageReader()
        try:
            reader.feed(b"\x05\xff\xff\xff\xff\xff")
        except BitswapError as exc:
            flagged = node.stream_error("rude", str(exc), float(attempt))
    assert flagged and "rude" in node.flagged()
    assert node.outbox() == []  # its queued reply was dropped with it
    assert node.ledger("rude") is None
