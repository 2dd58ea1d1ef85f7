"""The adapter's bookkeeping without a network: Bitswap sessions protect the peers they fetch
from for exactly as long as they live, and the settings reach the host's filters."""

from __future__ import annotations

import pytest

from blockmesh.data.bitswap import Bitswap
from blockmesh.data.connectivity.filters import FilterError
from blockmesh.data.connectivity.service import (
    SESSION_TAG,
    Connectivity,
    ConnectivitySettings,
    routing_table_size,
)
from blockmesh.data.net import Host, Identity, InvalidMultiaddr
from blockmesh.data.store.memory import MemoryBlockstore

PEER = "12D3KooWJc26VKH439j3Wk48Jdx3s6cE5r8UkQ4zxxvGRqd3ScHB"


def _connectivity(**settings) -> Connectivity:
    return Connectivity(Host(Identity.generate()), Bitswap(MemoryBlockstore()),
                        ConnectivitySettings(**settings))


def test_a_live_session_protects_its_peers_until_it_closes():
    conn = _connectivity()
    session = conn.bitswap.new_session(only=frozenset({PEER}), keep=False)
    conn._observe_bitswap(now=0.0)
    assert conn.connmgr.is_protected(PEER, SESSION_TAG)
    session.close()
    conn._observe_bitswap(now=1.0)
    assert not conn.connmgr.is_protected(PEER)


def test_settings_install_the_filters_and_reject_bad_rules():
    conn = _connectivity(filters_deny=("/ip4/10.0.0.0/ipcidr/8",), filters_allow=(f"/p2p/{PEER}",))
    assert conn.host.filters.lists() == (["/ip4/10.0.0.0/ipcidr/8"], [f"/p2p/{PEER}"])
    with pytest.raises(FilterError):
        _connectivity(filters_deny=("10.0.0.0/8",))
    with pytest.raises(InvalidMultiaddr):
        _connectivity(filters_deny=("/p2p/notapeer",))
    with pytest.raises(InvalidMultiaddr):
        _connectivity(bootstrap=("/ip4/127.0.0.1/tcp/1",))


def test_routing_table_size_reads_the_dht_stats():
    class FakeDht:
        def stats(self):
            return {"wan": {"peers": 3}, "lan": {"peers": 2}, "providers": {"records": 9}}

    assert routing_table_size(None) is None
    assert routing_table_size(FakeDht()) == 5
