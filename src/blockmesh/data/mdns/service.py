"""The mDNS adapter: one multicast UDP socket per chosen interface, driving `MdnsEngine`, and
dials of the peers it finds through the node's Host.

It exists only when `[discovery] mdns = true`: with mDNS off (the default) nothing here runs,
no socket is opened and no group joined, so the node sends nothing to any multicast address.

Each socket is bound to 224.0.0.251:5353 (shared with any other responder on the machine),
joins the group on its one interface, sends there (IP_MULTICAST_IF) and, with Linux's
IP_MULTICAST_ALL off, receives only what arrives on that interface, so the node is present
on exactly the links it was told to use. IPv6 (ff02::fb) is not spoken.
"""

from __future__ import annotations

import logging
import socket
import struct

import trio

from blockmesh.data.mdns.dns import MAX_MESSAGE, DnsFormatError
from blockmesh.data.mdns.engine import DialPlanner, FoundPeer, MdnsEngine
from blockmesh.data.mdns.interfaces import Interface, MdnsError, choose, ipv4_interfaces
from blockmesh.data.net import Host, NetError

logger = logging.getLogger(__name__)

GROUP = "224.0.0.251"
PORT = 5353
IP_MULTICAST_ALL = 49  # Linux <linux/in.h>; Python's socket module does not name it
#: Each dial of an announced peer's address (all of them together are tried in turn).
DIAL_TIMEOUT = 10.0
#: Saying goodbye on the way out may take this long before it is abandoned.
GOODBYE_TIMEOUT = 1.0


class MdnsService:
    def __init__(self, host: Host, *, interval: float, interfaces: list[str],
                 max_dialing: int = 4) -> None:
        if not interval > 0:
            raise MdnsError("[discovery] interval must be a positive number of seconds")
        self.host = host
        self.interval = interval
        self.configured = interfaces
        self.engine = MdnsEngine(host.peer_id)
        # A peer that did not answer a dial is tried again after three intervals.
        self.planner = DialPlanner(max_dialing=max_dialing, retry_after=3 * interval)
        self.interfaces: list[Interface] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Query every `interval` seconds and answer others until cancelled; raises MdnsError
        when there is no interface to run on."""
        self.interfaces = choose(ipv4_interfaces(), self.configured, self.host.addrs())
        sockets: list[tuple[Interface, trio.socket.SocketType]] = []
        try:
            for interface in self.interfaces:
                sockets.append((interface, await _open(interface)))
            async with trio.open_nursery() as nursery:
                for interface, sock in sockets:
                    nursery.start_soon(self._receive, interface, sock, nursery)
                logger.info("mDNS on %s as %s", ", ".join(i.name for i in self.interfaces),
                            self.engine.instance)
                task_status.started()
                for interface, sock in sockets:
                    addrs = self._addrs_on(interface)
                    if addrs:
                        await _send(sock, self.engine.announcement(interface.address, addrs))
                while True:
                    for _, sock in sockets:
                        await _send(sock, self.engine.query())
                    await trio.sleep(self.interval)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(GOODBYE_TIMEOUT):
                for interface, sock in sockets:
                    addrs = self._addrs_on(interface)
                    if addrs:
                        await _send(sock, self.engine.announcement(interface.address, addrs,
                                                                   ttl=0))
            for _, sock in sockets:
                sock.close()

    def _addrs_on(self, interface: Interface) -> list[str]:
        """Our swarm addresses reachable over `interface` (0.0.0.0 stands for its address)."""
        out = []
        for addr in self.host.addrs():
            parts = addr.split("/")
            if len(parts) > 2 and parts[1] == "ip4" and parts[2] in (interface.address,
                                                                     "0.0.0.0"):
                parts[2] = interface.address
                out.append("/".join(parts))
        return out

    async def _receive(self, interface: Interface, sock: trio.socket.SocketType,
                       nursery: trio.Nursery) -> None:
        while True:
            try:
                packet, _ = await sock.recvfrom(MAX_MESSAGE)
            except OSError as exc:
                logger.warning("mDNS receive on %s failed: %s", interface.name, exc)
                await trio.sleep(1.0)
                continue
            addrs = self._addrs_on(interface)
            try:
                handled = self.engine.handle(packet, interface.address, addrs,
                                             trio.current_time())
            except DnsFormatError as exc:
                logger.debug("ignoring a malformed mDNS packet on %s: %s", interface.name, exc)
                continue
            if handled.reply is not None and addrs:
                await _send(sock, handled.reply)
            for found in handled.found:
                connected = self.host.is_connected(found.peer_id)
                if self.planner.should_dial(found.peer_id, connected, trio.current_time()):
                    nursery.start_soon(self._dial, found)

    async def _dial(self, found: FoundPeer) -> None:
        try:
            for addr in found.addrs:
                try:
                    await self.host.connect(addr, timeout=DIAL_TIMEOUT)
                except NetError as exc:
                    logger.info("mDNS peer %s not reachable at %s: %s", found.peer_id, addr, exc)
                    continue
                logger.info("mDNS: connected to %s at %s", found.peer_id, addr)
                return
        finally:
            self.planner.finished(found.peer_id)


async def _open(interface: Interface) -> trio.socket.SocketType:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        mreqn = struct.pack("4s4si", socket.inet_aton(GROUP),
                            socket.inet_aton(interface.address), interface.index)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)  # RFC 6762 section 11
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        await sock.bind((GROUP, PORT))
    except OSError as exc:
        sock.close()
        raise MdnsError(f"cannot open mDNS on {interface.name} ({interface.address}): "
                        f"{exc.strerror or exc}") from None
    return sock


async def _send(sock: trio.socket.SocketType, packet: bytes) -> None:
    """Multicast `packet`; a failure (the link went down, say) is logged, not raised."""
    try:
        await sock.sendto(packet, (GROUP, PORT))
    except OSError as exc:
        logger.warning("mDNS send failed: %s", exc.strerror or exc)
