"""Every limit of the control-plane transports, in one place.

The defaults follow the seed design (64 MB messages, 10 s dial timeout) and are sized for a
small PBFT cluster doing thousands of requests per second; tests shrink the timing ones.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class TransportConfig:
    """Limits and timings shared by the gRPC and TCP transports.

    Attributes:
        max_message_size: largest message or frame accepted or sent, in bytes (seed: 64 MB).
        dial_timeout: seconds to connect to a peer, handshake included (seed: 10 s).
        handshake_timeout: seconds an accepted connection may take to authenticate.
        rpc_timeout: seconds to wait for a SyncState/GetCheckpoint/GetStatus answer.
        request_timeout: seconds the request handler may take to answer a client submission.
        backoff_initial, backoff_max, backoff_multiplier: reconnect delays; each delay is
            drawn from [d/2, d] where d grows geometrically up to backoff_max.
        max_backlog_messages, max_backlog_bytes: per-connection send queue bounds; beyond
            them a message is dropped and reported instead of growing memory without bound.
        max_write_batch_bytes: how many queued bytes one socket write may coalesce.
        peer_message_rate, peer_message_burst: inbound messages per second per connection
            before its reads are paused (a flooding peer gets throttled, others unaffected).
        peer_byte_rate: inbound bytes per second per connection before reads are paused.
        max_pending_handshakes: connections allowed to be mid-handshake at once.
        max_client_connections: client (non-replica) connections served at once (TCP).
        sync_max_blocks: cap on blocks in one SyncState answer (the size cap also applies).
        max_pending_requests: client submissions waiting on the request handler at once.
    """

    max_message_size: int = 64 * MIB
    dial_timeout: float = 10.0
    handshake_timeout: float = 5.0
    rpc_timeout: float = 10.0
    request_timeout: float = 30.0
    backoff_initial: float = 0.1
    backoff_max: float = 10.0
    backoff_multiplier: float = 2.0
    max_backlog_messages: int = 16384
    max_backlog_bytes: int = 256 * MIB
    max_write_batch_bytes: int = 1 * MIB
    peer_message_rate: float = 100_000.0
    peer_message_burst: int = 20_000
    peer_byte_rate: float = 512.0 * MIB
    max_pending_handshakes: int = 64
    max_client_connections: int = 1024
    sync_max_blocks: int = 256
    max_pending_requests: int = 8192
