"""Allow and deny rules by address range and by peer id, for dials and accepted connections.

Rules are written as multiaddrs, kubo's shape for `swarm filters`: `/ip4/10.0.0.0/ipcidr/8`,
`/ip6/fd00::/ipcidr/8` (a bare `/ip4/A` or `/ip6/A` is one address), and, for a peer,
`/p2p/<peer id>`. A deny rule always wins. An allow list of a kind (address ranges, or peers)
that is not empty admits only what it names, so `allow /ip4/127.0.0.0/ipcidr/8` alone keeps
the node to loopback. The host asks `addr_denied` before it dials and before the security
handshake of an accepted connection (the address is known, the peer not yet), and
`peer_denied` before a dial and right after the handshake, when the peer id is proven.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from blockmesh.errors import DecodeError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_RULES = 4096


class FilterError(DecodeError):
    """A filter rule that is not `/ip4|ip6/ADDR[/ipcidr/N]` or `/p2p/<peer id>`."""


@dataclass(frozen=True)
class Rule:
    """One parsed rule: exactly one of `network` and `peer` is set."""

    text: str
    network: Network | None = None
    peer: str | None = None


def parse_rule(text: str) -> Rule:
    """Parse a rule and give it its canonical text (host bits of a range are cleared)."""
    if not isinstance(text, str) or not text.startswith("/") or len(text) > 256:
        raise FilterError(f"invalid filter {text!r}: a filter is a multiaddr such as "
                          "/ip4/10.0.0.0/ipcidr/8 or /p2p/<peer id>")
    parts = text.strip("/").split("/")
    if parts[0] == "p2p" and len(parts) == 2 and parts[1]:
        return Rule(f"/p2p/{parts[1]}", peer=parts[1])
    if parts[0] in ("ip4", "ip6") and len(parts) in (2, 4):
        try:
            address = ipaddress.ip_address(parts[1])
            if (address.version == 4) != (parts[0] == "ip4"):
                raise ValueError(f"{parts[1]} is not an {parts[0]} address")
            bits = address.max_prefixlen
            if len(parts) == 4:
                if parts[2] != "ipcidr":
                    raise ValueError("the second part must be /ipcidr/<prefix length>")
                bits = int(parts[3])
            network = ipaddress.ip_network(f"{address}/{bits}", strict=False)
        except ValueError as exc:
            raise FilterError(f"invalid filter {text!r}: {exc}") from None
        return Rule(f"/{parts[0]}/{network.network_address}/ipcidr/{network.prefixlen}",
                    network=network)
    raise FilterError(f"invalid filter {text!r}: expected /ip4/ADDR/ipcidr/N, "
                      "/ip6/ADDR/ipcidr/N or /p2p/<peer id>")


def address_ip(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a multiaddr starts with (None for a DNS name or anything else)."""
    parts = addr.strip("/").split("/")
    if len(parts) < 2 or parts[0] not in ("ip4", "ip6"):
        return None
    try:
        return ipaddress.ip_address(parts[1].split("%")[0])
    except ValueError:
        return None


@dataclass
class Filters:
    """The rule lists, in the order they were added."""

    deny: list[Rule] = field(default_factory=list)
    allow: list[Rule] = field(default_factory=list)

    @classmethod
    def from_lists(cls, deny: list[str], allow: list[str]) -> Filters:
        filters = cls()
        for text in deny:
            filters.add(text)
        for text in allow:
            filters.add(text, allow=True)
        return filters

    def add(self, text: str, *, allow: bool = False) -> Rule:
        """Add a rule (adding one twice is a no-op); returns it in canonical form."""
        rule = parse_rule(text)
        rules = self.allow if allow else self.deny
        if rule not in rules:
            if len(self.deny) + len(self.allow) >= MAX_RULES:
                raise FilterError(f"at most {MAX_RULES} filter rules")
            rules.append(rule)
        return rule

    def add_all(self, texts: list[str], *, allow: bool = False) -> list[Rule]:
        """Add every rule or, when one does not parse or they would not all fit under
        MAX_RULES, none (FilterError). Returns the rules, canonical, in the order given."""
        rules = [parse_rule(text) for text in texts]
        target = self.allow if allow else self.deny
        new = [rule for rule in dict.fromkeys(rules) if rule not in target]
        if len(self.deny) + len(self.allow) + len(new) > MAX_RULES:
            raise FilterError(f"at most {MAX_RULES} filter rules: {len(new)} more do not fit")
        target.extend(new)
        return rules

    def state(self) -> tuple[list[Rule], list[Rule]]:
        """A copy of both lists, for `restore` when an edit could not be saved."""
        return list(self.deny), list(self.allow)

    def restore(self, state: tuple[list[Rule], list[Rule]]) -> None:
        """Put back the lists `state` copied (in place: the host holds this object)."""
        self.deny[:], self.allow[:] = state

    def remove(self, text: str, *, allow: bool = False) -> bool:
        """Remove a rule; False if there was no such rule."""
        rule = parse_rule(text)
        rules = self.allow if allow else self.deny
        if rule in rules:
            rules.remove(rule)
            return True
        return False

    def lists(self) -> tuple[list[str], list[str]]:
        """(deny, allow) as rule texts, for the config file and `swarm filters ls`."""
        return [r.text for r in self.deny], [r.text for r in self.allow]

    def addr_denied(self, addr: str) -> str | None:
        """Why a connection at `addr` (a multiaddr) is refused, or None if it may go ahead.
        An address without an IP (a DNS name) passes here; its peer rules still apply."""
        ip = address_ip(addr)
        if ip is None:
            return None
        for rule in self.deny:
            if rule.network is not None and _contains(rule.network, ip):
                return f"{ip} is denied by the filter {rule.text}"
        allowed = [r for r in self.allow if r.network is not None]
        if allowed and not any(_contains(r.network, ip) for r in allowed if r.network):
            return f"{ip} is outside every allowed range ({', '.join(r.text for r in allowed)})"
        return None

    def peer_denied(self, peer: str) -> str | None:
        """Why `peer` is refused, or None if it may connect."""
        for rule in self.deny:
            if rule.peer == peer:
                return f"peer {peer} is denied by the filter {rule.text}"
        allowed = [r.peer for r in self.allow if r.peer is not None]
        if allowed and peer not in allowed:
            return f"peer {peer} is not on the allow list"
        return None


def _contains(network: Network, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is the IPv4 address it carries.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.version == network.version and ip in network
