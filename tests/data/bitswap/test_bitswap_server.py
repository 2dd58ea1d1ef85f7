"""Decision engine: replies per want type, fairness, budgets, cancels, late blocks, floods."""

from __future__ import annotations

from server_harness import drain

from blockmesh.data.bitswap import (
    BitswapConfig,
    DecisionEngine,
    Entry,
    Message,
    MessageReader,
    PeerStrikes,
    Presence,
    PresenceType,
    ProtocolVersion,
    WantType,
)
from blockmesh.data.cid import CID
from blockmesh.data.store.memory import MemoryBlockstore

HAVE, BLOCK = WantType.HAVE, WantType.BLOCK


def _store_with(*datas: bytes) -> tuple[MemoryBlockstore, list[CID]]:
    store = MemoryBlockstore()
    cids = []
    for data in datas:
        cid = CID.of(data)
        store.put(cid, data)
        cids.append(cid)
    return store, cids


def _want(cid, kind=BLOCK, dont_have=False, priority=1):
    return Entry(cid, priority, False, kind, dont_have)


def test_want_block_answered_with_block_and_want_removed():
    store, (cid,) = _store_with(b"x" * 5000)
    eng = DecisionEngine(store)
    eng.peer_connected("p")
    eng.message_received("p", Message((_want(cid),)))
    (env,) = drain(eng)
    assert env.peer == "p" and [b.cid for b in env.message.blocks] == [cid]
    assert MessageReader().feed(env.data) == [env.message]
    assert eng.peer_wantlist("p") == []
    snap = eng.ledger("p")
    assert (snap.blocks_sent, snap.bytes_sent, snap.exchanged) == (1, 5000, 1)


def test_want_have_small_block_gets_the_block_large_gets_have():
    small, large = b"s" * 1024, b"L" * 1025
    store, (c_small, c_large) = _store_with(small, large)
    eng = DecisionEngine(store)
    eng.peer_connected("p")
    eng.message_received("p", Message((_want(c_small, HAVE), _want(c_large, HAVE))))
    (env,) = drain(eng)
    assert [b.cid for b in env.message.blocks] == [c_small]
    assert env.message.presences == (Presence(c_large, PresenceType.HAVE),)
    assert eng.peer_wantlist("p") == []  # a want-have is answered once


def test_dont_have_only_when_asked():
    store = MemoryBlockstore()
    missing = [CID.of(b"a"), CID.of(b"b"), CID.of(b"c")]
    eng = DecisionEngine(store)
    eng.peer_connected("p")
    wants = (_want(missing[0], BLOCK, True), _want(missing[1], HAVE, True),
             _want(missing[2], BLOCK, False))
    eng.message_received("p", Message(wants))
    (env,) = drain(eng)
    assert set(env.message.presences) == {Presence(missing[0], PresenceType.DONT_HAVE),
                                          Presence(missing[1], PresenceType.DONT_HAVE)}
    # every want stays on the list after a DONT_HAVE (as in boxo), so the block or a HAVE
    # goes out once it shows up
    assert {w.cid for w in eng.peer_wantlist("p")} == set(missing)


def test_block_added_later_reaches_the_peers_that_wanted_it():
    store = MemoryBlockstore()
    data = b"late" * 1000
    cid = CID.of(data)
    eng = DecisionEngine(store)
    for peer in ("a", "b", "c"):
        eng.peer_connected(peer)
    eng.message_received("a", Message((_want(cid, BLOCK, True),)))
    eng.message_received("b", Message((_want(cid, HAVE),)))
    drain(eng)  # a gets a DONT_HAVE, b nothing
    store.put(cid, data)
    eng.blocks_added([cid])
    by_peer = {env.peer: env.message for env in drain(eng)}
    assert set(by_peer) == {"a", "b"}
    assert [b.data for b in by_peer["a"].blocks] == [data]
    assert by_peer["b"].presences == (Presence(cid, PresenceType.HAVE),)


def test_block_added_under_another_cid_version_matches_by_multihash():
    from blockmesh.data.cid import Codec

    data = b"dag-pb-ish bytes"
    v0 = CID.of(data, Codec.DAG_PB, 0)
    store = MemoryBlockstore()
    eng = DecisionEngine(store)
    eng.peer_connected("p")
    eng.message_received("p", Message((_want(v0),)))
    assert drain(eng) == []
    store.put(v0.to_v1(), data)
    eng.blocks_added([v0.to_v1()])
    (env,) = drain(eng)
    assert env.message.blocks[0].cid == v0  # answered under the CID the peer asked with


def test_cancel_removes_pending_task_and_want():
    store, cids = _store_with(b"1" * 100, b"2" * 100)
    eng = DecisionEngine(store)
    eng.peer_connected("p")
    eng.message_received("p", Message(tuple(_want(c) for c in cids)))
    eng.message_received("p", Message((Entry(cids[0], cancel=True),)))
    (env,) = drain(eng)
    assert [b.cid for b in env.message.blocks] == [cids[1]]


def test_full_wantlist_replaces():
    store, cids = _store_with(b"1" * 100, b"2" * 100)
    eng = DecisionEngine(store)
    eng.peer_connected("p")
    eng.message_received("p", Message((_want(CID.of(b"missing")), _want(cids[0]))))
    eng.message_received("p", Message((_want(cids[1]),), full=True))
    assert [w.cid for w in eng.peer_wantlist("p")] == [cids[1]]
    (env,) = drain(eng)
    assert [b.cid for b in env.message.blocks] == [cids[1]]


def test_priority_order_and_target_batching():
    datas = [bytes([i]) * 6000 for i in range(6)]
    store, cids = _store_with(*datas)
    eng = DecisionEngine(store)  # 16 KiB target: three 6000-byte blocks per message
    eng.peer_connected("p")
    eng.message_received("p", Message(tuple(_want(c, priority=i) for i, c in enumerate(cids))))
    envs = drain(eng)
    order = [b.cid for env in envs for b in env.message.blocks]
    assert order == list(reversed(cids))
    assert [len(env.message.blocks) for env in envs] == [3, 3]
    assert envs[0].message.pending_bytes == 3 * 6000 and envs[1].message.pending_bytes == 0


def test_outstanding_bytes_cap_waits_for_message_sent():
    datas = [bytes([i]) * 100_000 for i in range(20)]
    store, cids = _store_with(*datas)
    eng = DecisionEngine(store, BitswapConfig(max_outstanding_bytes_per_peer=250_000))
    eng.peer_connected("p")
    eng.message_received("p", Message(tuple(_want(c) for c in cids)))
    held = []
    while (env := eng.next_envelope()) is not None:
        held.append(env)
    assert len(held) == 3  # 300 kB in flight crosses the cap; the rest waits
    assert eng.outstanding("p") == 300_000
    eng.message_sent(held[0])
    assert eng.next_envelope() is not None
    assert eng.next_envelope() is None
    assert eng.queued("p") == 16


def test_fair_across_peers():
    datas = [bytes([i]) * 20_000 for i in range(10)]
    store, cids = _store_with(*datas)
    eng = DecisionEngine(store)
    for peer in ("a", "b"):
        eng.peer_connected(peer)
    eng.message_received("a", Message(tuple(_want(c) for c in cids)))
    eng.message_received("b", Message(tuple(_want(c) for c in cids[:3])))
    peers = [env.peer for env in drain(eng)]
    assert peers[:6] == ["a", "b", "a", "b", "a", "b"]
    assert peers.count("a") == 10 and peers.count("b") == 3


def test_wantlist_bounded_and_flood_flagged():
    strikes = PeerStrikes(3, 10)
    cfg = BitswapConfig(max_wantlist_per_peer=10, max_dropped_wants_per_peer=15)
    eng = DecisionEngine(MemoryBlockstore(), cfg, strikes)
    eng.peer_connected("p")
    eng.message_received("p", Message(tuple(_want(CID.of(bytes([i]))) for i in range(20))))
    assert len(eng.peer_wantlist("p")) == 10 and not strikes.is_flagged("p")
    eng.message_received("p", Message(tuple(_want(CID.of(bytes([i]))) for i in range(20, 40))))
    assert strikes.is_flagged("p")
    assert "p" not in eng.peers
    eng.message_received("p", Message((_want(CID.of(b"more")),)))
    assert "p" not in eng.peers  # ignored once flagged


def test_old_protocol_peers_get_no_presences():
    store, (c_big,) = _store_with(b"B" * 5000)
    eng = DecisionEngine(store)
    eng.peer_connected("old", ProtocolVersion.V1_1_0)
    eng.message_received("old", Message((_want(CID.of(b"missing"), BLOCK, True), _want(c_big))))
    (env,) = drain(eng)
    assert env.message.presences == () and [b.cid for b in env.message.blocks] == [c_big]
    assert MessageReader().feed(env.data)[0].blocks == env.message.blocks


def test_deleted_block_becomes_dont_have():
    store, (cid,) = _store_with(b"gone" * 10)
    eng = DecisionEngine(store)
    eng.peer_connected("p")
    eng.message_received("p", Message((_want(cid, BLOCK, True),)))
    store.delete(cid)
    (env,) = drain(eng)
    assert env.message.blocks == () and env.message.presences == (
        Presence(cid, PresenceType.DONT_HAVE),)


def test_repeated_wants_do_not_grow_the_queue():
    store, (cid,) = _store_with(b"x" * 2000)
    eng = DecisionEngine(store)
    eng.peer_connected("p")
    for i in range(500):
        eng.message_received("p", Message((_want(cid, HAVE if i % 2 else BLOCK, priority=i),)))
    assert eng.queued("p") == 1
    (env,) = drain(eng)
    assert [b.cid for b in env.message.blocks] == [cid]


def test_disconnect_forgets_the_peer():
    store, (cid,) = _store_with(b"x")
    eng = DecisionEngine(store)
    eng.peer_connected("p")
    eng.message_received("p", Message((_want(cid),)))
    eng.peer_disconnected("p")
    assert eng.next_envelope() is None and eng.ledger("p") is None


def test_received_blocks_are_accounted():
    from blockmesh.data.bitswap import Block

    eng = DecisionEngine(MemoryBlockstore())
    eng.peer_connected("p")
    eng.message_received("p", Message(blocks=(Block(CID.of(b"abc"), b"abc"),)))
    snap = eng.ledger("p")
    assert (snap.blocks_received, snap.bytes_received, snap.exchanged) == (1, 3, 1)
