"""libp2p mDNS discovery as a state machine: packets and the clock in, packets and peers out.

What goes on the wire follows the libp2p mDNS spec as go-libp2p (kubo) speaks it: a query is
one question, `_p2p._udp.local.` PTR; a node answers with a PTR to `<name>._p2p._udp.local.`,
where `<name>` is a random label of 32-63 letters and digits chosen at start (not the peer id:
the spec's later revision keeps it out of DNS names), and adds that instance's SRV record
(host `<name>.local.`), its A record, and a TXT record whose strings are
`dnsaddr=<multiaddr>/p2p/<peer id>`, one per address. Only the TXT strings matter to libp2p;
kubo ignores an answer without an A record, so one is always sent. The DNS-SD meta query and
direct SRV/TXT/A questions about our names are answered too (the spec's "gotchas").

What a packet from the LAN can make us do is bounded: at most one multicast reply per second
on an interface (RFC 6762's per-record rate, applied to the whole reply); at most
`MAX_ADDRS_PER_PEER` addresses taken per peer and `MAX_PEERS_PER_PACKET` peers per packet; and
only addresses in private ranges are ever dialled, so a LAN host cannot make the node dial
out to the internet or to a service on its own loopback.
"""

from __future__ import annotations

import ipaddress
import secrets
import string
from dataclasses import dataclass

from blockmesh.data.mdns.dns import (
    FLAG_AUTHORITATIVE,
    FLAG_RESPONSE,
    TYPE_A,
    TYPE_ANY,
    TYPE_PTR,
    TYPE_SRV,
    TYPE_TXT,
    Message,
    Question,
    Record,
    Srv,
    decode,
    encode,
    same_name,
)
from blockmesh.data.net.addrs import parse_peer_id
from blockmesh.data.net.errors import InvalidMultiaddr

SERVICE = "_p2p._udp.local."
META_QUERY = "_services._dns-sd._udp.local."
DNSADDR = b"dnsaddr="
#: Seconds a receiver may keep our records (go-libp2p's zeroconf uses 120 as well).
RECORD_TTL = 120
#: RFC 6762 section 6: a record is multicast at most once per second on a link.
REPLY_GAP = 1.0
MAX_ADDRS_PER_PEER = 16
MAX_PEERS_PER_PACKET = 16

_NAME_ALPHABET = string.ascii_lowercase + string.digits


def random_peer_name() -> str:
    """A fresh instance label, as go-libp2p makes them: 32 to 63 lowercase letters and digits."""
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(32 + secrets.randbelow(32)))


@dataclass(frozen=True)
class FoundPeer:
    """A peer another node announced, with its addresses we would dial (each ends /p2p/<id>)."""

    peer_id: str
    addrs: tuple[str, ...]


@dataclass(frozen=True)
class Handled:
    reply: bytes | None
    found: tuple[FoundPeer, ...]


class MdnsEngine:
    """One node's mDNS: the records it announces and what it makes of packets it receives.

    The adapter says, per packet, which interface it came in on: its IPv4 address and the
    multiaddrs the node has there. Replies are rate-limited per interface.
    """

    def __init__(self, peer_id: str, peer_name: str | None = None) -> None:
        self.peer_id = peer_id
        self.peer_name = peer_name or random_peer_name()
        self.instance = f"{self.peer_name}.{SERVICE}"
        self.host_name = f"{self.peer_name}.local."
        self._last_reply: dict[str, float] = {}

    def query(self) -> bytes:
        """The question every node answers: who serves `_p2p._udp.local.`?"""
        return encode(Message(questions=(Question(SERVICE, TYPE_PTR),)))

    def announcement(self, ip: str, addrs: list[str], *, ttl: int = RECORD_TTL) -> bytes:
        """An unsolicited response with all our records (TTL 0 says goodbye)."""
        ptr, srv, txt, a = self._records(ip, addrs, ttl)
        return encode(Message(flags=FLAG_RESPONSE | FLAG_AUTHORITATIVE, answers=(ptr,),
                              additionals=(srv, txt, a)))

    def handle(self, packet: bytes, ip: str, addrs: list[str], now: float) -> Handled:
        """A packet that arrived on the interface with address `ip`, where the node is reachable
        at `addrs`. Raises DnsFormatError for a malformed packet."""
        message = decode(packet)
        if message.is_response:
            return Handled(None, tuple(self._peers_in(message)))
        return Handled(self._reply(message, ip, addrs, now), ())

    # -- answering -------------------------------------------------------------------------

    def _records(self, ip: str, addrs: list[str], ttl: int) -> tuple[Record, ...]:
        port = next((int(a.split("/")[4]) for a in addrs if a.split("/")[3:4] == ["tcp"]), 4001)
        strings = tuple(DNSADDR + a.encode() for a in addrs[:MAX_ADDRS_PER_PEER])
        return (
            Record(SERVICE, TYPE_PTR, ttl, self.instance),
            Record(self.instance, TYPE_SRV, ttl, Srv(0, 0, port, self.host_name),
                   cache_flush=True),
            Record(self.instance, TYPE_TXT, ttl, strings, cache_flush=True),
            Record(self.host_name, TYPE_A, ttl, ip, cache_flush=True),
        )

    def _reply(self, message: Message, ip: str, addrs: list[str], now: float) -> bytes | None:
        ptr, srv, txt, a = self._records(ip, addrs, RECORD_TTL)
        answers: list[Record] = []
        for question in message.questions:
            wants = question.qtype
            if same_name(question.name, SERVICE) and wants in (TYPE_PTR, TYPE_ANY):
                answers.append(ptr)
            elif same_name(question.name, META_QUERY) and wants in (TYPE_PTR, TYPE_ANY):
                answers.append(Record(META_QUERY, TYPE_PTR, RECORD_TTL, SERVICE))
            elif same_name(question.name, self.instance):
                answers += [r for r in (srv, txt) if wants in (r.rtype, TYPE_ANY)]
            elif same_name(question.name, self.host_name) and wants in (TYPE_A, TYPE_ANY):
                answers.append(a)
        if not answers:
            return None
        last = self._last_reply.get(ip)
        if last is not None and 0 <= now - last < REPLY_GAP:
            return None
        self._last_reply[ip] = now
        # Answers about our instance carry the rest of its records, so one packet is enough.
        about_us = any(r in (ptr, srv, txt) for r in answers)
        extra = [r for r in (srv, txt, a) if r not in answers] if about_us else []
        return encode(Message(flags=FLAG_RESPONSE | FLAG_AUTHORITATIVE,
                              answers=tuple(answers), additionals=tuple(extra)))

    # -- discovering ---------------------------------------------------------------------

    def _peers_in(self, message: Message) -> list[FoundPeer]:
        """Peers announced in the TXT records of a response, by their dnsaddr strings."""
        found: dict[str, list[str]] = {}
        for record in message.records():
            if record.rtype != TYPE_TXT or not isinstance(record.data, tuple):
                continue
            if not record.name.lower().endswith("." + SERVICE):
                continue
            for raw in record.data:
                if not raw.startswith(DNSADDR):
                    continue
                parsed = dialable(raw[len(DNSADDR):].decode(errors="replace"))
                if parsed is None or parsed[0] == self.peer_id:
                    continue
                peer, addr = parsed
                if peer not in found and len(found) >= MAX_PEERS_PER_PACKET:
                    continue
                addrs = found.setdefault(peer, [])
                if addr not in addrs and len(addrs) < MAX_ADDRS_PER_PEER:
                    addrs.append(addr)
        return [FoundPeer(peer, tuple(addrs)) for peer, addrs in found.items()]


def dialable(text: str) -> tuple[str, str] | None:
    """(peer id, `/ip4|ip6/<addr>/tcp/<port>/p2p/<id>`) for an address we would dial, else None.

    Only TCP (all this node speaks) to private-range addresses: RFC 1918 and link-local IPv4,
    unique-local IPv6. Loopback is refused: a LAN peer's loopback is ours."""
    parts = text.split("/")
    if len(parts) != 7 or parts[0] or parts[1] not in ("ip4", "ip6") or parts[3] != "tcp":
        return None
    if parts[5] not in ("p2p", "ipfs") or not parts[4].isdigit():
        return None
    try:
        ip = ipaddress.ip_address(parts[2])
        peer = parse_peer_id(parts[6])
    except (ValueError, InvalidMultiaddr):
        return None
    port = int(parts[4])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return None  # ::ffff:127.0.0.1 is "private" to Python but is this host's loopback
    if (ip.version != (4 if parts[1] == "ip4" else 6) or not 0 < port < 65536
            or not ip.is_private or ip.is_loopback or ip.is_unspecified or ip.is_multicast
            or (ip.version == 6 and ip.is_link_local)):  # fe80:: needs a zone we do not have
        return None
    return peer, f"/{parts[1]}/{ip}/tcp/{port}/p2p/{peer}"


class DialPlanner:
    """Which announced peers to dial now: not one we are connected to or already dialling, at
    most `max_dialing` at once, and each peer at most once per `retry_after` seconds (peers
    answer every query, so each one is heard again and again)."""

    def __init__(self, *, max_dialing: int = 4, retry_after: float = 30.0,
                 max_remembered: int = 1024) -> None:
        self.max_dialing = max_dialing
        self.retry_after = retry_after
        self.max_remembered = max_remembered
        self.dialing: set[str] = set()
        self._attempts: dict[str, float] = {}

    def should_dial(self, peer: str, connected: bool, now: float) -> bool:
        if connected or peer in self.dialing or len(self.dialing) >= self.max_dialing:
            return False
        last = self._attempts.get(peer)
        if last is not None and 0 <= now - last < self.retry_after:
            return False
        if len(self._attempts) >= self.max_remembered:
            self._attempts = {p: t for p, t in self._attempts.items()
                              if 0 <= now - t < self.retry_after}
            while len(self._attempts) >= self.max_remembered:
                del self._attempts[next(iter(self._attempts))]
        self._attempts[peer] = now
        self.dialing.add(peer)
        return True

    def finished(self, peer: str) -> None:
        self.dialing.discard(peer)
