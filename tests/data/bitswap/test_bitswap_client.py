"""Client want manager and sessions, driven by hand with a virtual clock."""

from __future__ import annotations

import pytest

from blockmesh.data.bitswap import (
    BitswapConfig,
    Block,
    Client,
    Entry,
    Message,
    MessageReader,
    Presence,
    PresenceType,
    ProtocolVersion,
    WantType,
)
from blockmesh.data.bitswap.framing import encode_frames
from blockmesh.data.bitswap.message import HashedBlock
from blockmesh.data.cid import CID, HashCode

V12, V11 = ProtocolVersion.V1_2_0, ProtocolVersion.V1_1_0
HAVE, BLOCK = WantType.HAVE, WantType.BLOCK


def _blocks(n: int, size: int = 2000) -> list[tuple[CID, bytes]]:
    out = []
    for i in range(n):
        data = i.to_bytes(4, "big") * (size // 4)
        out.append((CID.of(data), data))
    return out


def _sent(client: Client) -> dict[object, list[Message]]:
    """Outgoing messages by peer, checked to survive encoding for the peer's version."""
    out: dict[object, list[Message]] = {}
    for env in client.outgoing():
        decoded = MessageReader().feed(env.data)
        if all(e.want_type is BLOCK or e.cancel for e in env.message.entries):
            assert [(e.cid, e.cancel) for m in decoded for e in m.entries] == [
                (e.cid, e.cancel) for e in env.message.entries]
        out.setdefault(env.peer, []).append(env.message)
    return out


def _entries(msgs: list[Message]) -> list[Entry]:
    return [e for m in msgs for e in m.entries]


def _client(*peers, version=V12, config=None):
    client = Client(config or BitswapConfig())
    for p in peers:
        client.peer_connected(p, version, 0.0)
    return client


def test_discovery_broadcasts_want_have_with_dont_have():
    client = _client("a", "b")
    (cid, _), = _blocks(1)
    client.new_session().want([cid], 0.0)
    sent = _sent(client)
    assert set(sent) == {"a", "b"}
    for msgs in sent.values():
        (entry,) = _entries(msgs)
        assert (entry.cid, entry.want_type, entry.send_dont_have, entry.cancel) == (
            cid, HAVE, True, False)
        assert msgs[0].full  # the first message to a new peer is the full list


def test_have_leads_to_one_want_block_then_block_cancels_elsewhere():
    client = _client("a", "b", "silent")
    (cid, data), = _blocks(1)
    session = client.new_session()
    session.want([cid], 0.0)
    _sent(client)
    client.receive("a", Message(presences=(Presence(cid, PresenceType.HAVE),)), 0.1)
    client.receive("b", Message(presences=(Presence(cid, PresenceType.HAVE),)), 0.1)
    sent = _sent(client)
    assert [(e.cid, e.want_type) for e in _entries(sent["a"])] == [(cid, BLOCK)]
    assert "b" not in sent  # b answered its want-have and holds nothing of ours now
    assert client.receive("a", Message(blocks=(Block(cid, data),)), 0.2) == [(cid, data)]
    assert session.take() == [(cid, data)] and session.done
    sent = _sent(client)
    # only the peer that never answered still holds the want; the sender dropped it itself
    assert set(sent) == {"silent"}
    assert [(e.cid, e.cancel) for e in _entries(sent["silent"])] == [(cid, True)]
    assert client.stats().blocks_received == 1 and client.wantlist() == []


def test_dont_have_moves_the_want_block_to_a_peer_that_has_it():
    client = _client("a", "b")
    (cid, _), = _blocks(1)
    client.new_session().want([cid], 0.0)
    _sent(client)
    for peer in ("a", "b"):
        client.receive(peer, Message(presences=(Presence(cid, PresenceType.HAVE),)), 0.1)
    first = next(iter(_sent(client)))
    other = "b" if first == "a" else "a"
    client.receive(first, Message(presences=(Presence(cid, PresenceType.DONT_HAVE),)), 0.2)
    sent = _sent(client)
    assert [(e.cid, e.want_type) for e in _entries(sent[other])] == [(cid, BLOCK)]


def test_timeout_rerequests_from_another_peer():
    cfg = BitswapConfig(want_block_timeout=5.0)
    client = _client("a", "b", config=cfg)
    (cid, _), = _blocks(1)
    session = client.new_session()
    session.want([cid], 0.0)
    _sent(client)
    for peer in ("a", "b"):
        client.receive(peer, Message(presences=(Presence(cid, PresenceType.HAVE),)), 0.0)
    first = next(iter(_sent(client)))
    client.tick(4.9)
    assert _sent(client) == {}
    client.tick(5.0)
    sent = _sent(client)
    other = "b" if first == "a" else "a"
    assert [(e.cid, e.want_type) for e in _entries(sent[other])] == [(cid, BLOCK)]
    assert session.timeouts == 1


def test_disconnect_moves_inflight_want():
    client = _client("a", "b")
    (cid, _), = _blocks(1)
    client.new_session().want([cid], 0.0)
    _sent(client)
    for peer in ("a", "b"):
        client.receive(peer, Message(presences=(Presence(cid, PresenceType.HAVE),)), 0.0)
    first = next(iter(_sent(client)))
    client.peer_disconnected(first, 1.0)
    other = "b" if first == "a" else "a"
    assert [(e.cid, e.want_type) for e in _entries(_sent(client)[other])] == [(cid, BLOCK)]


def test_session_peers_get_optimistic_want_blocks_within_the_inflight_limit():
    cfg = BitswapConfig(max_inflight_blocks_per_peer=3)
    client = _client("a", config=cfg)
    blocks = _blocks(10)
    session = client.new_session()
    session.want([blocks[0][0]], 0.0)
    _sent(client)
    client.receive("a", Message(blocks=(Block(*blocks[0]),)), 0.0)  # a is now a session peer
    session.want([c for c, _ in blocks[1:]], 0.0)
    entries = [e for e in _entries(_sent(client)["a"]) if not e.cancel]
    assert [e.want_type for e in entries].count(BLOCK) == 3
    assert len(entries) == 9  # the other six are asked with want-have meanwhile
    client.receive("a", Message(blocks=(Block(*blocks[1]),)), 0.1)
    entries = [e for e in _entries(_sent(client)["a"]) if not e.cancel]
    assert [(e.cid, e.want_type) for e in entries] == [(blocks[4][0], BLOCK)]


def test_priorities_count_down_in_want_order():
    client = _client("a")
    blocks = _blocks(3)
    client.new_session().want([c for c, _ in blocks], 0.0)
    prios = [e.priority for e in _entries(_sent(client)["a"])]
    assert prios == sorted(prios, reverse=True) and len(set(prios)) == 3


def test_live_wants_are_limited_and_refilled():
    client = _client("a", config=BitswapConfig(session_live_wants=5))
    blocks = _blocks(12)
    session = client.new_session()
    session.want([c for c, _ in blocks], 0.0)
    assert len(_entries(_sent(client)["a"])) == 5
    assert session.pending == 12
    client.receive("a", Message(blocks=tuple(Block(c, d) for c, d in blocks[:2])), 0.1)
    entries = _entries(_sent(client)["a"])
    assert not any(e.cancel for e in entries)  # a sent them, so a dropped those wants itself
    asked = {e.cid for e in entries if not e.cancel}
    assert {blocks[5][0], blocks[6][0]} <= asked  # two queued wants went live
    assert blocks[7][0] not in asked
    # a served this session, so the still-open wants were upgraded to want-blocks at it
    assert all(e.want_type is BLOCK for e in entries if not e.cancel)


def test_new_peer_gets_full_wantlist_and_rebroadcast_resends_it():
    cfg = BitswapConfig(rebroadcast_interval=30.0)
    client = _client("a", config=cfg)
    blocks = _blocks(3)
    client.new_session().want([c for c, _ in blocks], 0.0)
    client.tick(0.0)
    _sent(client)
    client.peer_connected("late", V12, 1.0)
    (msg,) = _sent(client)["late"]
    assert msg.full and {e.cid for e in msg.entries} == {c for c, _ in blocks}
    client.tick(29.0)
    assert _sent(client) == {}
    client.tick(30.0)
    sent = _sent(client)
    assert set(sent) == {"a", "late"}
    assert all(m.full and len(m.entries) == 3 for msgs in sent.values() for m in msgs)


def test_unwanted_blocks_strike_and_flag_duplicates_do_not():
    client = _client("good", "bad", config=BitswapConfig(max_strikes=3))
    (cid, data), *junk = _blocks(4)
    session = client.new_session()
    session.want([cid], 0.0)
    client.receive("good", Message(blocks=(Block(cid, data),)), 0.1)
    client.receive("bad", Message(blocks=(Block(cid, data),)), 0.2)  # a late duplicate
    stats = client.stats()
    assert (stats.blocks_received, stats.dup_blocks_received) == (1, 1)
    assert client.strikes.count("bad") == 0
    for c, d in junk:
        client.receive("bad", Message(blocks=(Block(c, d),)), 0.3)
    assert client.strikes.is_flagged("bad")
    assert "bad" not in client.connected_peers()
    assert client.receive("bad", Message(blocks=(Block(cid, data),)), 0.4) == []


def test_block_that_does_not_hash_to_the_wanted_cid_is_refused():
    client = _client("a")
    (cid, data), = _blocks(1)
    session = client.new_session()
    session.want([cid], 0.0)
    forged = Message(blocks=(Block(cid, data[:-1] + b"!"),))  # a CID the decoder never built
    assert client.receive("a", forged, 0.1) == []
    assert session.pending == 1 and client.strikes.count("a") == 1


def test_two_sessions_share_a_block_and_cancel_only_when_both_stop():
    client = _client("a")
    (cid, data), (other, _) = _blocks(2)
    s1, s2 = client.new_session(), client.new_session()
    s1.want([cid, other], 0.0)
    s2.want([cid], 0.0)
    _sent(client)
    s1.cancel([cid], 0.1)
    assert _sent(client) == {}  # s2 still wants it
    s1.close()
    assert [(e.cid, e.cancel) for e in _entries(_sent(client)["a"])] == [(other, True)]
    assert client.receive("a", Message(blocks=(Block(cid, data),)), 0.2) == [(cid, data)]
    assert s2.take() == [(cid, data)]
    assert client.sessions == [s2]


def test_cidv0_want_satisfied_by_cidv1_payload_of_same_bytes():
    from blockmesh.data.cid import Codec

    data = b"same bytes"
    v0 = CID.of(data, Codec.DAG_PB, 0)
    client = _client("a")
    session = client.new_session()
    session.want([v0], 0.0)
    assert client.receive("a", Message(blocks=(Block(v0.to_v1(), data),)), 0.1) == [(v0, data)]
    assert session.take() == [(v0, data)]


def test_pre_1_2_peers_are_asked_for_blocks_directly():
    client = _client("old", version=V11)
    (cid, _), = _blocks(1)
    client.new_session().want([cid], 0.0)
    (entry,) = _entries(_sent(client)["old"])
    assert entry.want_type is BLOCK


def test_identity_cids_need_no_network():
    client = _client("a")
    cid = CID.of(b"inline", hash_code=HashCode.IDENTITY)
    session = client.new_session()
    session.want([cid], 0.0)
    assert session.take() == [(cid, b"inline")] and _sent(client) == {}


def test_presence_for_unknown_cid_is_ignored():
    client = _client("a")
    (cid, _), = _blocks(1)
    client.receive("a", Message(presences=(Presence(cid, PresenceType.HAVE),)), 0.0)
    assert client.strikes.count("a") == 0 and _sent(client) == {}


def test_block_racing_a_cancel_is_a_duplicate_not_a_strike():
    client = _client("a")
    (cid, data), = _blocks(1)
    session = client.new_session()
    session.want([cid], 0.0)
    _sent(client)
    session.cancel([cid], 0.1)
    assert [(e.cid, e.cancel) for e in _entries(_sent(client)["a"])] == [(cid, True)]
    assert client.receive("a", Message(blocks=(Block(cid, data),)), 0.2) == []
    assert client.strikes.count("a") == 0 and client.stats().dup_blocks_received == 1
    assert session.take() == []


def test_stream_errors_flag_after_max_strikes():
    client = _client("a", config=BitswapConfig(max_strikes=2))
    assert client.stream_error("a", "garbage", 1.0) is False
    assert client.stream_error("a", "garbage", 2.0) is True
    assert client.connected_peers() == []


def test_a_session_restricted_to_one_peer_asks_and_trusts_only_it():
    client = _client("a", "b", "c")
    (cid, data), = _blocks(1)
    session = client.new_session(only=frozenset({"b"}))
    session.want([cid], 0.0)
    assert set(_sent(client)) == {"b"}
    client.receive("a", Message(presences=(Presence(cid, PresenceType.HAVE),)), 0.1)
    client.peer_connected("d", V12, 0.2)
    client.tick(100.0)  # rebroadcast time: still only b is asked
    assert set(_sent(client)) <= {"b"}
    client.receive("b", Message(blocks=(Block(cid, data),)), 0.3)
    assert session.take() == [(cid, data)]


def test_a_restricted_session_ignores_blocks_from_other_peers():
    client = _client("a", "b")
    (cid, data), = _blocks(1)
    session = client.new_session(only=frozenset({"b"}))
    session.want([cid], 0.0)
    client.receive("a", Message(blocks=(Block(cid, data),)), 0.1)
    assert session.take() == []
    assert session.wants_cid(cid)


def test_a_session_that_keeps_nothing_gets_verified_blocks_that_are_not_stored():
    client = _client("a")
    (cid, data), = _blocks(1)
    session = client.new_session(only=frozenset({"a"}), keep=False)
    session.want([cid], 0.0)
    assert client.receive("a", Message(blocks=(Block(cid, data),)), 0.1) == []
    assert session.take() == [(cid, data)]


def test_a_decoded_block_is_hashed_once_and_a_forged_plain_block_is_still_caught(monkeypatch):
    """The decoder's HashedBlock skips the client's second hash; a Block built any other way
    is verified, so bytes that do not match their CID cannot reach the store."""
    (cid, data), (other_cid, _) = _blocks(2)
    client = _client("a")
    client.new_session().want([cid, other_cid], 0.0)
    (wire_bytes,) = encode_frames(Message(blocks=(Block(cid, data),)), V12)
    (decoded,) = MessageReader().feed(wire_bytes)
    assert isinstance(decoded.blocks[0], HashedBlock)
    monkeypatch.setattr(CID, "verify", lambda self, data: pytest.fail("hashed twice"))
    assert client.receive("a", decoded, 0.1) == [(cid, data)]
    monkeypatch.undo()
    assert client.receive("a", Message(blocks=(Block(other_cid, data),)), 0.2) == []
    with pytest.raises(TypeError):
        HashedBlock(other_cid, data)
