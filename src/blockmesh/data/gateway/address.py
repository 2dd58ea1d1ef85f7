"""The gateway's listen address, a multiaddr like kubo's `Addresses.Gateway`
(`/ip4/127.0.0.1/tcp/8080`), read without py-libp2p so the CLI stays light."""

from __future__ import annotations

import ipaddress

from blockmesh.errors import BlockmeshError


class GatewayAddressError(BlockmeshError):
    """A gateway listen address that is not /ip4/<addr>/tcp/<port> or /ip6/<addr>/tcp/<port>."""


def parse_listen(text: str) -> tuple[str, int]:
    """(host, port) of `/ip4|ip6/<address>/tcp/<port>`; port 0 picks a free one."""
    parts = text.split("/")
    if len(parts) != 5 or parts[0] or parts[1] not in ("ip4", "ip6") or parts[3] != "tcp":
        raise GatewayAddressError(f"gateway address {text!r} must be /ip4/<addr>/tcp/<port> or "
                                  "/ip6/<addr>/tcp/<port>")
    try:
        address = ipaddress.ip_address(parts[2])
        port = int(parts[4])
    except ValueError:
        raise GatewayAddressError(f"gateway address {text!r} has a bad IP or port") from None
    if (address.version == 4) != (parts[1] == "ip4") or not 0 <= port <= 65535:
        raise GatewayAddressError(f"gateway address {text!r} has a bad IP or port")
    return str(address), port


def listen_multiaddr(host: str, port: int) -> str:
    kind = "ip6" if ":" in host else "ip4"
    return f"/{kind}/{host}/tcp/{port}"
