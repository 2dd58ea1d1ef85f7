"""The connectivity engines driven directly: backoff schedule, redial targets, the bootstrap
threshold, connection-manager trimming, filter matching, health reasons."""

from __future__ import annotations

import ipaddress
import random

import pytest

from blockmesh.data.connectivity import filters as filters_module
from blockmesh.data.connectivity.backoff import Backoff, BackoffPolicy
from blockmesh.data.connectivity.connmgr import ConnManager, ConnMgrPolicy
from blockmesh.data.connectivity.filters import FilterError, Filters, parse_rule
from blockmesh.data.connectivity.health import DialGroup, HealthFacts, assess, reachability
from blockmesh.data.connectivity.redial import Redialer, below_threshold

PEER_A = "12D3KooWJc26VKH439j3Wk48Jdx3s6cE5r8UkQ4zxxvGRqd3ScHB"
PEER_B = "12D3KooWRdcUzQpuTGcqMLY78cKAxF5YDLVbhwN2MQv1qbx3nVzU"


# -- backoff -----------------------------------------------------------------------------------
def test_backoff_is_full_jitter_under_a_doubling_capped_ceiling():
    policy = BackoffPolicy(base=1.0, factor=2.0, cap=10.0)
    backoff = Backoff(policy, random.Random(7))
    reference = random.Random(7)
    ceilings = [1, 2, 4, 8, 10, 10, 10]
    for ceiling in ceilings:
        assert backoff.ceiling() == ceiling
        expected = reference.uniform(0.0, ceiling)
        delay = backoff.next_delay()
        assert delay == expected and 0 <= delay <= ceiling
    assert backoff.failures == len(ceilings)
    backoff.reset()
    assert backoff.ceiling() == 1.0


def test_backoff_survives_a_peer_down_for_ever():
    backoff = Backoff(BackoffPolicy(base=0.5, cap=60.0), random.Random(1))
    for _ in range(5000):
        assert 0 <= backoff.next_delay() <= 60.0


def test_backoff_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        BackoffPolicy(base=0)
    with pytest.raises(ValueError):
        BackoffPolicy(base=5, cap=1)
    with pytest.raises(ValueError):
        BackoffPolicy(factor=0.5)


# -- redial ------------------------------------------------------------------------------------
def test_redialer_dials_new_targets_once_and_backs_off_after_failures():
    redial = Redialer(BackoffPolicy(base=1.0, cap=8.0), random.Random(3))
    redial.add(PEER_A, ("/ip4/127.0.0.1/tcp/1/p2p/A", "/ip4/127.0.0.1/tcp/2/p2p/A"), now=0.0)
    [target] = redial.due(0.0)
    assert target.addr().endswith("/tcp/1/p2p/A")
    assert redial.due(0.0) == []  # being dialled: not handed out twice
    redial.failed(PEER_A, "refused", now=0.0)
    assert target.last_error == "refused" and target.addr().endswith("/tcp/2/p2p/A")
    first = target.next_at
    assert 0.0 <= first <= 1.0 and redial.next_deadline() == first
    assert redial.due(first - 1e-9) == [] and redial.due(first) == [target]
    redial.failed(PEER_A, "refused again", now=first)
    assert first <= target.next_at <= first + 2.0  # the ceiling doubled
    redial.connected(PEER_A)
    assert target.backoff.failures == 0 and target.last_error is None
    assert redial.due(100.0) == [] and redial.next_deadline() is None
    redial.disconnected(PEER_A, now=50.0)
    assert 50.0 <= target.next_at <= 51.0  # a fresh loss starts again from base
    assert redial.connected_count() == 0


def test_redialer_limit_leaves_the_rest_due():
    redial = Redialer(BackoffPolicy(), random.Random(0))
    for i in range(5):
        redial.add(f"peer{i}", (f"/ip4/127.0.0.1/tcp/{i}/p2p/x",), now=float(i))
    first = redial.due(10.0, limit=2)
    assert [t.peer for t in first] == ["peer0", "peer1"]
    assert [t.peer for t in redial.due(10.0)] == ["peer2", "peer3", "peer4"]


def test_bootstrap_threshold():
    assert below_threshold(0, 4) and below_threshold(3, 4)
    assert not below_threshold(4, 4) and not below_threshold(0, 0)


# -- connection manager ------------------------------------------------------------------------
def _manager(low=2, high=4, grace=10.0) -> ConnManager:
    return ConnManager(ConnMgrPolicy(low_water=low, high_water=high, grace_period=grace,
                                     activity_window=30.0))


def test_connmgr_trims_least_useful_down_to_low_water():
    mgr = _manager()
    for i, peer in enumerate(["idle", "tagged", "busy", "old-idle", "p5", "p6"]):
        mgr.connected(peer, now=float(i))
    mgr.tag("tagged", "dht", 50)
    mgr.active("busy", now=95.0)
    assert mgr.trim(now=5.0) == []  # everyone still in the grace period
    victims = mgr.trim(now=100.0)
    # 6 peers, low water 2: four go, lowest score first, then the longest idle.
    assert victims == ["idle", "old-idle", "p5", "p6"]
    for peer in victims:
        mgr.disconnected(peer)
    assert mgr.trim(now=101.0) == [] and mgr.info()["peers"] == 2


def test_connmgr_below_high_water_trims_nothing():
    mgr = _manager()
    for i in range(4):
        mgr.connected(f"p{i}", now=0.0)
    assert mgr.trim(now=1000.0) == []
    assert mgr.next_grace_end(now=0.0) is None


def test_connmgr_never_trims_protected_peers_or_new_ones():
    mgr = _manager(low=1, high=2, grace=10.0)
    mgr.connected("member", 0.0)
    mgr.connected("peering", 0.0)
    mgr.connected("stranger", 0.0)
    mgr.connected("newcomer", 95.0)
    mgr.protect("member", "cluster")
    mgr.protect("peering", "peering")
    mgr.protect("peering", "bitswap-session")
    assert mgr.trim(now=100.0) == ["stranger"]  # newcomer in its grace period until 105
    assert mgr.next_grace_end(now=100.0) == 105.0
    assert mgr.unprotect("peering", "bitswap-session") is True  # still protected by peering
    assert mgr.unprotect("peering", "peering") is False
    mgr.disconnected("stranger")
    assert mgr.trim(now=106.0) == ["peering", "newcomer"]
    assert mgr.is_protected("member") and mgr.protected_by("cluster") == {"member"}


def test_connmgr_protection_outlives_a_reconnect():
    mgr = _manager(low=0, high=0, grace=0.0)
    mgr.protect("member", "cluster")
    mgr.connected("member", 0.0)
    mgr.disconnected("member")
    mgr.connected("member", 1.0)
    assert mgr.trim(now=10.0) == []


def test_connmgr_policy_checks():
    with pytest.raises(ValueError):
        ConnMgrPolicy(low_water=5, high_water=4)
    with pytest.raises(ValueError):
        ConnMgrPolicy(grace_period=-1)


# -- filters -----------------------------------------------------------------------------------
def test_filter_rules_parse_to_canonical_text():
    assert parse_rule("/ip4/10.1.2.3/ipcidr/8").text == "/ip4/10.0.0.0/ipcidr/8"
    assert parse_rule("/ip4/192.168.1.7").text == "/ip4/192.168.1.7/ipcidr/32"
    assert parse_rule("/ip6/fd00::1/ipcidr/8").text == "/ip6/fd00::/ipcidr/8"
    assert parse_rule(f"/p2p/{PEER_A}").peer == PEER_A
    for bad in ["10.0.0.0/8", "/ip4/10.0.0.0/ipcidr/33", "/ip4/::1", "/ip6/10.0.0.1",
                "/ip4/10.0.0.0/tcp/8", "/dns4/example.com", "/p2p/", "", "/ip4/300.1.1.1"]:
        with pytest.raises(FilterError):
            parse_rule(bad)


def test_deny_cidrs_ipv4_and_ipv6():
    filters = Filters.from_lists(["/ip4/10.0.0.0/ipcidr/8", "/ip6/fd00::/ipcidr/8"], [])
    assert filters.addr_denied("/ip4/10.200.0.1/tcp/4001")
    assert filters.addr_denied("/ip4/11.0.0.1/tcp/4001") is None
    assert filters.addr_denied("/ip6/fd12:3456::1/tcp/4001")
    assert filters.addr_denied("/ip6/fe80::1/tcp/4001") is None
    assert filters.addr_denied("/ip6/::ffff:10.0.0.9/tcp/1")  # IPv4-mapped counts as IPv4
    assert filters.addr_denied("/dns4/example.com/tcp/1") is None  # no IP to judge
    assert filters.peer_denied(PEER_A) is None


def test_allow_lists_admit_only_what_they_name_and_deny_wins():
    filters = Filters.from_lists([f"/p2p/{PEER_B}", "/ip4/127.0.0.2/ipcidr/32"],
                                 ["/ip4/127.0.0.0/ipcidr/8", f"/p2p/{PEER_A}", f"/p2p/{PEER_B}"])
    assert filters.addr_denied("/ip4/127.0.0.1/tcp/1") is None
    assert "outside every allowed range" in filters.addr_denied("/ip4/192.168.0.1/tcp/1")
    assert "denied by the filter /ip4/127.0.0.2/ipcidr/32" in filters.addr_denied(
        "/ip4/127.0.0.2/tcp/1")
    assert filters.addr_denied("/ip6/::1/tcp/1")  # an IPv6 address is outside an IPv4 range
    assert filters.peer_denied(PEER_A) is None
    assert "denied by the filter" in filters.peer_denied(PEER_B)
    assert "not on the allow list" in filters.peer_denied("12D3KooWother")


def test_filter_add_remove_and_lists():
    filters = Filters()
    filters.add("/ip4/10.9.9.9/ipcidr/8")
    filters.add("/ip4/10.0.0.0/ipcidr/8")  # the same rule: no duplicate
    filters.add(f"/p2p/{PEER_A}", allow=True)
    assert filters.lists() == (["/ip4/10.0.0.0/ipcidr/8"], [f"/p2p/{PEER_A}"])
    assert filters.remove("/ip4/10.0.0.0/ipcidr/8") is True
    assert filters.remove("/ip4/10.0.0.0/ipcidr/8") is False
    assert filters.remove(f"/p2p/{PEER_A}") is False  # it is on the allow list
    assert filters.remove(f"/p2p/{PEER_A}", allow=True) is True


def test_ipv6_prefix_boundaries():
    filters = Filters.from_lists(["/ip6/2001:db8::/ipcidr/32"], [])
    inside = ipaddress.ip_address("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")
    outside = ipaddress.ip_address("2001:db9::")
    assert filters.addr_denied(f"/ip6/{inside}/tcp/1")
    assert filters.addr_denied(f"/ip6/{outside}/tcp/1") is None


# -- health ------------------------------------------------------------------------------------
def _facts(**kw) -> HealthFacts:
    base = dict(now=0.0, peers=0, listen_addrs=("/ip4/127.0.0.1/tcp/4001",), groups=())
    return HealthFacts(**{**base, **kw})


def test_health_without_configured_peers_says_so():
    report = assess(_facts())
    assert report["status"] == "isolated" and report["reachability"] == "loopback"
    assert any("no bootstrap or peering peers are configured" in r for r in report["reasons"])


def test_health_names_the_last_dial_error_and_filters():
    group = DialGroup("bootstrap", targets=2, connected=0,
                      errors={PEER_A: "refused", PEER_B: "connection refused (port 9)"})
    report = assess(_facts(groups=(group,), filtered=3, last_filtered="dial x: denied"))
    reasons = " | ".join(report["reasons"])
    assert "all 2 bootstrap dial(s) failing; last error: connection refused (port 9)" in reasons
    assert "3 connection(s) refused by filters; last: dial x: denied" in reasons
    assert report["routing_table_size"] is None
    assert report["groups"]["bootstrap"]["failing"][PEER_A] == "refused"


def test_health_ok_and_degraded():
    ok = assess(_facts(peers=3, routing_table_size=12, groups=(DialGroup("peering", 1, 1),)))
    assert ok["status"] == "ok" and ok["routing_table_size"] == 12
    bad = DialGroup("peering", 2, 1, errors={PEER_A: "timeout"})
    assert assess(_facts(peers=1, groups=(bad,)))["status"] == "degraded"


def test_reachability_kinds():
    assert reachability(("/ip4/127.0.0.1/tcp/1",)) == "loopback"
    assert reachability(("/ip4/127.0.0.1/tcp/1", "/ip4/192.168.1.2/tcp/1")) == "private"
    assert reachability(("/ip6/2606:4700::1/tcp/1", "/ip6/::1/tcp/1")) == "public"
    assert reachability(("/dns4/example.com/tcp/1",)) == "unknown"


def test_adding_a_batch_of_filters_is_all_or_nothing(monkeypatch):
    monkeypatch.setattr(filters_module, "MAX_RULES", 3)
    filters = Filters.from_lists(["/ip4/10.0.0.0/ipcidr/8"], [])
    with pytest.raises(FilterError):  # the second does not parse: the first is not added
        filters.add_all(["/ip4/192.168.0.0/ipcidr/16", "/ip4/300.0.0.1"])
    with pytest.raises(FilterError, match="at most 3"):  # 3 new ones do not fit beside 1
        filters.add_all(["/ip4/1.0.0.0/ipcidr/8", "/ip4/2.0.0.0/ipcidr/8", "/p2p/x"])
    assert filters.lists() == (["/ip4/10.0.0.0/ipcidr/8"], [])
    before = filters.state()
    rules = filters.add_all(["/ip4/1.2.3.4/ipcidr/8", "/ip4/1.0.0.0/ipcidr/8",
                             "/ip4/10.0.0.0/ipcidr/8"])  # duplicates take no room
    assert [r.text for r in rules] == ["/ip4/1.0.0.0/ipcidr/8"] * 2 + ["/ip4/10.0.0.0/ipcidr/8"]
    assert filters.lists() == (["/ip4/10.0.0.0/ipcidr/8", "/ip4/1.0.0.0/ipcidr/8"], [])
    deny = filters.deny
    filters.restore(before)
    assert filters.lists() == (["/ip4/10.0.0.0/ipcidr/8"], []) and filters.deny is deny
