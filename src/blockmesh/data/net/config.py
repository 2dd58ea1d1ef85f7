"""Every limit and timeout of the libp2p host adapter, in one place.

The host talks to peers it does not trust, so nothing it does may wait or buffer without bound:
dials, stream negotiation, pings and identify all have deadlines, reads are capped, and a peer
may keep only so many inbound streams open at once. The defaults follow go-libp2p where it has
an opinion (10 s dial and negotiation timeouts) and kubo's behaviour otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The demo's listen address; tests use port 0 on 127.0.0.1.
DEFAULT_LISTEN_ADDR = "/ip4/127.0.0.1/tcp/4001"

#: go-yamux (kubo) sends a keep-alive PING on every connection idle this long and drops the
#: connection when no PONG arrives; our Yamux answers it (tests hold a kubo connection
#: idle past this).
KUBO_YAMUX_KEEPALIVE_S = 30.0


@dataclass(frozen=True)
class NetConfig:
    """Limits of one host. Times are seconds, sizes bytes."""

    listen_addrs: tuple[str, ...] = (DEFAULT_LISTEN_ADDR,)
    # Whole dial: TCP connect + Noise + muxer negotiation (go-libp2p's default dial timeout).
    dial_timeout: float = 10.0
    # Opening an outbound stream and agreeing on its protocol with multistream-select.
    stream_open_timeout: float = 10.0
    # A peer that opens a stream but never finishes negotiating is reset after this.
    inbound_negotiate_timeout: float = 10.0
    ping_timeout: float = 10.0
    identify_timeout: float = 10.0
    # Waiting for a fresh connection's muxer to be ready before calling it connected.
    connection_ready_timeout: float = 5.0
    # Graceful close of a connection before it is abandoned.
    close_timeout: float = 5.0
    # Upper bound on what one Stream.read returns; callers ask for less, never more.
    max_read_size: int = 1 << 20
    # Identify replies are a few hundred bytes; go-libp2p's signed records keep them under 8 KiB.
    max_identify_size: int = 64 << 10
    # Inbound streams one peer may have open at once (across its connections); more are reset.
    max_inbound_streams_per_peer: int = 128
    # Connections in total and per peer; py-libp2p refuses dials and accepts beyond them.
    max_connections: int = 256
    max_connections_per_peer: int = 2
    # Queued connection events per subscriber before it is dropped as too slow.
    event_buffer: int = 1024

    def __post_init__(self) -> None:
        if not self.listen_addrs:
            raise ValueError("listen_addrs must name at least one address")
        for name in (
            "dial_timeout",
            "stream_open_timeout",
            "inbound_negotiate_timeout",
            "ping_timeout",
            "identify_timeout",
            "connection_ready_timeout",
            "close_timeout",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        for name in (
            "max_read_size",
            "max_identify_size",
            "max_inbound_streams_per_peer",
            "max_connections",
            "max_connections_per_peer",
            "event_buffer",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


DEFAULT_NET_CONFIG = NetConfig()
