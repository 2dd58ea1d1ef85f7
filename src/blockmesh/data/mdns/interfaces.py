"""The IPv4 interfaces mDNS runs on: listed from the kernel, then chosen by the config.

mDNS is link-local: a node announces itself on the links it can be reached over. With no
interfaces named in `[discovery] interfaces`, those are the interfaces holding a swarm listen
address (all multicast interfaces but loopback when the node listens on 0.0.0.0). A node that
listens on 127.0.0.1 alone has no link to announce on, which is an error rather than a silent
no-op: the user asked for mDNS.
"""

from __future__ import annotations

import fcntl
import socket
import struct
from dataclasses import dataclass

from blockmesh.errors import BlockmeshError

# Linux ioctls and interface flags (<linux/sockios.h>, <net/if.h>).
SIOCGIFFLAGS = 0x8913
SIOCGIFADDR = 0x8915
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_MULTICAST = 0x1000


class MdnsError(BlockmeshError):
    """mDNS cannot run as configured (no usable interface, a socket option refused)."""


@dataclass(frozen=True)
class Interface:
    name: str
    index: int
    address: str  # its (primary) IPv4 address
    up: bool
    loopback: bool
    multicast: bool


def ipv4_interfaces() -> list[Interface]:
    """Every interface with an IPv4 address, in the kernel's order."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for index, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                flags = struct.unpack_from("H", fcntl.ioctl(probe, SIOCGIFFLAGS, request), 16)[0]
                raw = fcntl.ioctl(probe, SIOCGIFADDR, request)
            except OSError:  # no IPv4 address (or gone meanwhile)
                continue
            found.append(Interface(name, index, socket.inet_ntoa(raw[20:24]),
                                   bool(flags & IFF_UP), bool(flags & IFF_LOOPBACK),
                                   bool(flags & IFF_MULTICAST)))
    return found


def choose(available: list[Interface], configured: list[str],
           listen_addrs: list[str]) -> list[Interface]:
    """The interfaces to run on: the configured ones, else those holding a listen address."""
    if configured:
        by_name = {i.name: i for i in available}
        chosen = []
        for name in configured:
            interface = by_name.get(name)
            if interface is None:
                raise MdnsError(f"[discovery] interfaces names {name!r}, which has no IPv4 "
                                "address here")
            if not (interface.up and interface.multicast):
                raise MdnsError(f"interface {name} is down or cannot multicast")
            chosen.append(interface)
        return chosen
    hosts = {a.split("/")[2] for a in listen_addrs if a.startswith("/ip4/")}
    chosen = [i for i in available if i.up and i.multicast and not i.loopback
              and ("0.0.0.0" in hosts or i.address in hosts)]
    if not chosen:
        raise MdnsError("[discovery] mdns is on, but no multicast interface holds a swarm "
                        f"listen address ({', '.join(sorted(hosts)) or 'none over IPv4'}): "
                        "listen on a LAN address or name interfaces in [discovery] interfaces")
    return chosen
