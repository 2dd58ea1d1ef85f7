"""The mDNS DNS codec and discovery engine, driven directly (no sockets)."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockmesh.data.mdns.dns import (
    FLAG_RESPONSE,
    MAX_MESSAGE,
    TYPE_A,
    TYPE_AAAA,
    TYPE_PTR,
    TYPE_SRV,
    TYPE_TXT,
    DnsFormatError,
    Message,
    Question,
    Record,
    Srv,
    decode,
    encode,
)
from blockmesh.data.mdns.engine import (
    META_QUERY,
    REPLY_GAP,
    SERVICE,
    DialPlanner,
    MdnsEngine,
    dialable,
    random_peer_name,
)
from blockmesh.data.mdns.interfaces import Interface, MdnsError, choose
from blockmesh.data.net.bandwidth import UNLIMITED, limits_from_config
from blockmesh.data.store.config import Config, ConfigError, DiscoveryConfig

US = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
THEM = "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"
OUR_ADDRS = [f"/ip4/192.168.1.5/tcp/4001/p2p/{US}"]


# -- codec ---------------------------------------------------------------------------------------

labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=20)
names = st.lists(labels, min_size=1, max_size=4).map(lambda parts: ".".join(parts) + ".")
records = st.one_of(
    st.builds(Record, names, st.just(TYPE_PTR), st.integers(0, 2**32 - 1), names),
    st.builds(Record, names, st.just(TYPE_SRV), st.integers(0, 2**32 - 1),
              st.builds(Srv, st.integers(0, 65535), st.integers(0, 65535),
                        st.integers(0, 65535), names)),
    st.builds(Record, names, st.just(TYPE_TXT), st.integers(0, 2**32 - 1),
              st.lists(st.binary(max_size=40), min_size=1, max_size=4).map(tuple),
              cache_flush=st.booleans()),
    st.builds(Record, names, st.just(TYPE_A), st.integers(0, 2**32 - 1),
              st.ip_addresses(v=4).map(str)),
    st.builds(Record, names, st.just(TYPE_AAAA), st.integers(0, 2**32 - 1),
              st.ip_addresses(v=6).map(str)),
    st.builds(Record, names, st.just(99), st.integers(0, 2**32 - 1), st.binary(max_size=30)),
)
messages = st.builds(
    Message, st.integers(0, 65535), st.integers(0, 65535),
    st.lists(st.builds(Question, names, st.integers(1, 255), st.just(1), st.booleans()),
             max_size=3).map(tuple),
    st.lists(records, max_size=4).map(tuple), st.lists(records, max_size=2).map(tuple),
    st.lists(records, max_size=4).map(tuple))


@given(messages)
def test_encode_then_decode_gives_the_message_back(message):
    assert decode(encode(message)) == message


@given(st.binary(max_size=600))
def test_any_bytes_decode_or_raise_dns_format_error(packet):
    with contextlib.suppress(DnsFormatError):
        decode(packet)


@given(messages, st.data())
def test_a_corrupted_message_decodes_or_raises_dns_format_error(message, data):
    packet = bytearray(encode(message))
    for _ in range(data.draw(st.integers(1, 4))):
        packet[data.draw(st.integers(0, len(packet) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(packet)))
    with contextlib.suppress(DnsFormatError):
        decode(bytes(packet[:cut]))


def test_compressed_names_are_followed_but_only_backwards():
    # "_p2p._udp.local." at offset 12, then a PTR whose data points back at it.
    header = struct.pack("!HHHHHH", 0, FLAG_RESPONSE, 0, 1, 0, 0)
    name = b"\x04_p2p\x04_udp\x05local\x00"
    rdata = b"\x03abc\xc0\x0c"
    packet = header + name + struct.pack("!HHIH", TYPE_PTR, 1, 120, len(rdata)) + rdata
    (record,) = decode(packet).answers
    assert record.name == SERVICE and record.data == "abc." + SERVICE
    loop = header + b"\xc0\x0c" + struct.pack("!HHIH", TYPE_A, 1, 1, 4) + bytes(4)
    with pytest.raises(DnsFormatError, match="backwards"):
        decode(loop)


@pytest.mark.parametrize("packet, error", [
    (b"\x00" * 11, "header"),
    (struct.pack("!HHHHHH", 0, 0, 300, 0, 0, 0), "entries"),
    (bytes(MAX_MESSAGE + 1), "over"),
    (struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 0) + b"\x05ab", "label"),
    (struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 0) + b"\x80", "label type"),
    (struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 0) + (b"\x3f" + b"a" * 63) * 5 + b"\x00", "255"),
    (struct.pack("!HHHHHH", 0, 0x8000, 0, 1, 0, 0) + b"\x00" + struct.pack("!HHIH", 1, 1, 0, 3)
     + b"abc", "4 bytes"),
])
def test_malformed_packets_are_typed_errors(packet, error):
    with pytest.raises(DnsFormatError, match=error):
        decode(packet)


def test_unencodable_messages_are_typed_errors():
    with pytest.raises(DnsFormatError):
        encode(Message(answers=(Record("a.", TYPE_A, 1, "::1"),)))
    with pytest.raises(DnsFormatError):
        encode(Message(answers=(Record("a.", TYPE_SRV, 1, Srv(0, 0, 70000, "b.")),)))
    with pytest.raises(DnsFormatError):
        encode(Message(questions=(Question("x" * 64 + ".", TYPE_A),)))


# -- engine ----------------------------------------------------------------------------------

def test_peer_names_are_random_labels_as_go_libp2p_makes_them():
    name = random_peer_name()
    assert 32 <= len(name) <= 63
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789")
    assert random_peer_name() != name


def test_a_ptr_query_gets_the_records_kubo_needs():
    engine = MdnsEngine(US, "abc")
    query = decode(engine.query())
    assert query.questions == (Question(SERVICE, TYPE_PTR),) and not query.is_response
    handled = engine.handle(engine.query(), "192.168.1.5", OUR_ADDRS, 10.0)
    reply = decode(handled.reply)
    assert reply.is_response and handled.found == ()
    assert reply.answers == (Record(SERVICE, TYPE_PTR, 120, "abc." + SERVICE),)
    by_type = {r.rtype: r for r in reply.additionals}
    assert by_type[TYPE_SRV].data == Srv(0, 0, 4001, "abc.local.")
    assert by_type[TYPE_TXT].data == (b"dnsaddr=" + OUR_ADDRS[0].encode(),)
    assert by_type[TYPE_A].name == "abc.local." and by_type[TYPE_A].data == "192.168.1.5"


def test_replies_are_rate_limited_per_interface():
    engine = MdnsEngine(US, "abc")
    assert engine.handle(engine.query(), "192.168.1.5", OUR_ADDRS, 10.0).reply is not None
    assert engine.handle(engine.query(), "192.168.1.5", OUR_ADDRS, 10.5).reply is None
    assert engine.handle(engine.query(), "10.0.0.5", OUR_ADDRS, 10.5).reply is not None
    assert engine.handle(engine.query(), "192.168.1.5", OUR_ADDRS,
                         10.0 + REPLY_GAP).reply is not None


def test_meta_and_direct_questions_are_answered_and_others_ignored():
    engine = MdnsEngine(US, "abc")

    def ask(name: str, qtype: int) -> Message | None:
        packet = encode(Message(questions=(Question(name, qtype),)))
        reply = engine.handle(packet, "192.168.1.5", OUR_ADDRS, ask.now).reply
        ask.now += REPLY_GAP
        return None if reply is None else decode(reply)

    ask.now = 0.0
    assert ask(META_QUERY, TYPE_PTR).answers == (Record(META_QUERY, TYPE_PTR, 120, SERVICE),)
    assert [r.rtype for r in ask("ABC._p2p._udp.local.", TYPE_TXT).answers] == [TYPE_TXT]
    assert [r.rtype for r in ask("abc.local.", TYPE_A).answers] == [TYPE_A]
    assert ask("_http._tcp.local.", TYPE_PTR) is None


def test_an_announcement_is_found_and_our_own_is_not():
    ours = MdnsEngine(US, "abc")
    theirs = MdnsEngine(THEM, "xyz")
    addrs = [f"/ip4/10.1.2.3/tcp/4001/p2p/{THEM}", f"/ip4/127.0.0.1/tcp/4001/p2p/{THEM}",
             f"/ip4/8.8.8.8/tcp/4001/p2p/{THEM}"]
    found = ours.handle(theirs.announcement("10.1.2.3", addrs), "10.1.2.9", OUR_ADDRS, 0.0)
    assert [(f.peer_id, f.addrs) for f in found.found] == [
        (THEM, (f"/ip4/10.1.2.3/tcp/4001/p2p/{THEM}",))]
    assert ours.handle(ours.announcement("10.1.2.9", OUR_ADDRS), "10.1.2.9", OUR_ADDRS,
                       0.0).found == ()


def test_a_kubo_style_response_with_several_txt_strings_is_understood():
    addrs = (f"/ip4/192.168.1.7/tcp/4001/p2p/{THEM}", f"/ip6/fd00::7/tcp/4001/p2p/{THEM}",
             f"/ip4/192.168.1.7/udp/4001/quic-v1/p2p/{THEM}")
    instance = "q1w2e3r4t5y6u7i8o9p0q1w2e3r4t5y6." + SERVICE
    response = Message(flags=FLAG_RESPONSE, answers=(Record(SERVICE, TYPE_PTR, 120, instance),),
                       additionals=(Record(instance, TYPE_TXT, 120,
                                           tuple(b"dnsaddr=" + a.encode() for a in addrs)),))
    (found,) = MdnsEngine(US).handle(encode(response), "192.168.1.5", OUR_ADDRS, 0.0).found
    assert found.addrs == addrs[:2]  # QUIC is not a transport this node speaks


@pytest.mark.parametrize("addr, ok", [
    (f"/ip4/192.168.0.1/tcp/1/p2p/{THEM}", True),
    (f"/ip4/172.16.0.1/tcp/1/ipfs/{THEM}", True),
    (f"/ip4/169.254.3.4/tcp/1/p2p/{THEM}", True),
    (f"/ip6/fd12::1/tcp/1/p2p/{THEM}", True),
    (f"/ip4/1.1.1.1/tcp/1/p2p/{THEM}", False),
    (f"/ip4/127.0.0.1/tcp/1/p2p/{THEM}", False),
    (f"/ip6/::ffff:127.0.0.1/tcp/1/p2p/{THEM}", False),  # our loopback in IPv6 clothes
    (f"/ip6/::ffff:10.0.0.1/tcp/1/p2p/{THEM}", False),
    (f"/ip4/0.0.0.0/tcp/1/p2p/{THEM}", False),
    (f"/ip6/fe80::1/tcp/1/p2p/{THEM}", False),
    (f"/ip4/192.168.0.1/tcp/0/p2p/{THEM}", False),
    (f"/ip4/192.168.0.1/tcp/99999/p2p/{THEM}", False),
    (f"/ip6/192.168.0.1/tcp/1/p2p/{THEM}", False),
    ("/ip4/192.168.0.1/tcp/1/p2p/notapeer", False),
    ("/ip4/192.168.0.1/tcp/1", False),
])
def test_only_private_tcp_addresses_are_dialled(addr, ok):
    assert (dialable(addr) is not None) == ok


def test_the_dial_planner_bounds_dials():
    planner = DialPlanner(max_dialing=2, retry_after=30.0, max_remembered=3)
    assert not planner.should_dial("a", True, 0.0)  # connected already
    assert planner.should_dial("a", False, 0.0)
    assert not planner.should_dial("a", False, 0.0)  # being dialled
    assert planner.should_dial("b", False, 0.0)
    assert not planner.should_dial("c", False, 0.0)  # two dials at once at most
    planner.finished("a")
    assert not planner.should_dial("a", False, 10.0)  # tried 10 s ago
    assert planner.should_dial("a", False, 30.0)
    for k, peer in enumerate("defgh"):
        planner.finished("a")
        planner.finished("b")
        assert planner.should_dial(peer, False, 40.0 + k)
        planner.finished(peer)
    assert len(planner._attempts) <= 3


def _iface(name: str, address: str, *, loopback: bool = False,
           multicast: bool = True) -> Interface:
    return Interface(name, 1, address, True, loopback, multicast)


def test_interfaces_follow_the_listen_addresses_or_the_config():
    available = [_iface("lo", "127.0.0.1", loopback=True, multicast=False),
                 _iface("eth0", "10.0.0.2"), _iface("eth1", "192.168.9.2")]
    listen = ["/ip4/10.0.0.2/tcp/4001/p2p/x"]
    assert [i.name for i in choose(available, [], listen)] == ["eth0"]
    assert [i.name for i in choose(available, [], ["/ip4/0.0.0.0/tcp/1"])] == ["eth0", "eth1"]
    assert [i.name for i in choose(available, ["eth1"], listen)] == ["eth1"]
    with pytest.raises(MdnsError, match=r"127\.0\.0\.1"):
        choose(available, [], ["/ip4/127.0.0.1/tcp/4001"])
    with pytest.raises(MdnsError, match="wlan0"):
        choose(available, ["wlan0"], listen)
    with pytest.raises(MdnsError, match="cannot multicast"):
        choose(available, ["lo"], listen)


def test_a_new_config_has_mdns_off_and_no_bandwidth_limit(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(Config().to_toml())
    loaded = Config.load(path)
    assert loaded.discovery == DiscoveryConfig(mdns=False, interval=10, interfaces=[])
    assert limits_from_config(loaded.bandwidth) == UNLIMITED
    path.write_text('[discovery]\nmdns = "yes"\n')
    with pytest.raises(ConfigError, match=r"discovery\.mdns"):
        Config.load(path)
