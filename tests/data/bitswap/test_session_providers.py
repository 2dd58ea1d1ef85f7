"""When a session asks for providers (`Session.needs_providers`), driven with a virtual clock."""

from __future__ import annotations

from blockmesh.data.bitswap import (
    BitswapConfig,
    Block,
    Client,
    Message,
    Presence,
    PresenceType,
    ProtocolVersion,
)
from blockmesh.data.cid import CID

CONFIG = BitswapConfig(provider_search_delay=1.0, provider_search_interval=60.0)


def _cids(n: int) -> list[tuple[CID, bytes]]:
    return [(CID.of(bytes([i]) * 100), bytes([i]) * 100) for i in range(n)]


def _client(*peers: str) -> Client:
    client = Client(CONFIG)
    for peer in peers:
        client.peer_connected(peer, ProtocolVersion.V1_2_0, 0.0)
    return client


def test_no_peer_to_ask_searches_at_once_then_waits_the_interval() -> None:
    (cid, _), = _cids(1)
    session = _client().new_session()
    session.want([cid], 0.0)
    assert session.needs_providers(0.0) == [cid]
    assert session.needs_providers(0.1) == []
    assert session.needs_providers(59.9) == []
    assert session.needs_providers(60.0) == [cid]


def test_every_peer_said_dont_have_searches_at_once() -> None:
    (cid, _), = _cids(1)
    client = _client("a")
    session = client.new_session()
    session.want([cid], 0.0)
    assert session.needs_providers(0.0) == []  # "a" was asked and may have it
    client.receive("a", Message(presences=(Presence(cid, PresenceType.DONT_HAVE),)), 0.1)
    assert session.needs_providers(0.1) == [cid]


def test_a_peer_that_said_have_means_no_search() -> None:
    (cid, _), = _cids(1)
    client = _client("a")
    session = client.new_session()
    session.want([cid], 0.0)
    client.receive("a", Message(presences=(Presence(cid, PresenceType.HAVE),)), 0.1)
    assert session.needs_providers(5.0) == []


def test_idle_session_searches_its_oldest_unanswered_want_one_at_a_time() -> None:
    blocks = _cids(3)
    client = _client("a")
    session = client.new_session()
    session.want([cid for cid, _ in blocks], 0.0)
    assert session.needs_providers(0.0) == []
    assert session.needs_providers(0.9) == []
    assert session.needs_providers(1.0) == [blocks[0][0]]
    assert session.needs_providers(1.0) == [blocks[1][0]]  # next call, next want


def test_a_block_arriving_resets_the_idle_clock_and_received_wants_are_forgotten() -> None:
    blocks = _cids(2)
    client = _client("a")
    session = client.new_session()
    session.want([cid for cid, _ in blocks], 0.0)
    assert session.needs_providers(0.5) == []
    client.receive("a", Message(blocks=(Block(blocks[0][0], blocks[0][1]),)), 0.8)
    assert session.needs_providers(1.2) == []  # the clock restarted at this check
    # "a" served the session, so it was sent a want-block for the rest: no search while that
    # is in flight; once it times out, "a" counts as lacking the block and a search starts.
    assert session.needs_providers(2.2) == []
    client.tick(1.0 + CONFIG.want_block_timeout)
    assert session.needs_providers(1.0 + CONFIG.want_block_timeout) == [blocks[1][0]]


def test_audit_and_closed_sessions_never_search() -> None:
    (cid, _), = _cids(1)
    client = _client()
    audit = client.new_session(only=frozenset({"a"}), keep=False)
    audit.want([cid], 0.0)
    assert audit.needs_providers(10.0) == []
    session = client.new_session()
    session.want([cid], 0.0)
    session.close()
    assert session.needs_providers(10.0) == []
