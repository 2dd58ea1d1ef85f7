"""Control-plane transports: how PBFT replicas (and their clients) reach each other.

Two implementations of one `Transport` interface — gRPC (`GrpcTransport`, grpc.aio) and raw TCP
(`TcpTransport`, asyncio streams with length-prefixed protobuf frames) — so the replica can be
benchmarked on both and the choice made on numbers.

Concurrency decision: the control plane runs on **asyncio**. grpc.aio is asyncio-native and does
not run under trio; the TCP transport uses asyncio streams so both share one event loop and one
set of primitives. The data-plane daemon is trio (py-libp2p needs it): when both planes share a
process, the control plane runs its own asyncio loop in a dedicated thread and talks to the trio
side through a queue, so there is one thread hop per batch crossing planes, never per message
inside the control plane.

Both transports encrypt every connection with mutual TLS 1.3 against the certificates the
cluster lists (tls.py), authenticate every replica connection with a mutual Ed25519
challenge–response (handshake.py) against the cluster's public keys, bound to the TLS
certificate, treat PBFTMessage envelopes as opaque (the
engine verifies message signatures), bound every size and queue (config.py), throttle flooding
peers, redial lost peers with exponential backoff and jitter, and export Prometheus metrics to a
registry the caller passes in (metrics.py).
"""

from blockmesh.control.transport.client import ReplicaClient
from blockmesh.control.transport.config import TransportConfig
from blockmesh.control.transport.errors import (
    AuthenticationError,
    FrameTooLarge,
    PeerError,
    TransportError,
)
from blockmesh.control.transport.grpc_transport import GrpcTransport
from blockmesh.control.transport.interface import (
    MessageHandler,
    RequestHandler,
    Responder,
    StateProvider,
    Transport,
)
from blockmesh.control.transport.tcp import TcpTransport

TRANSPORT_CLASSES: dict[str, type[GrpcTransport] | type[TcpTransport]] = {
    "grpc": GrpcTransport,
    "tcp": TcpTransport,
}

__all__ = [
    "TRANSPORT_CLASSES",
    "AuthenticationError",
    "FrameTooLarge",
    "GrpcTransport",
    "MessageHandler",
    "PeerError",
    "ReplicaClient",
    "RequestHandler",
    "Responder",
    "StateProvider",
    "TcpTransport",
    "Transport",
    "TransportConfig",
    "TransportError",
]
