"""The data plane's libp2p host adapter (the only package that imports py-libp2p).

`Host` listens, dials, serves and opens streams; `Stream` is one negotiated stream;
`load_or_create_identity` keeps the node's Ed25519 key in its repo; `NetConfig` holds every
limit. See `host.py` for the py-libp2p workarounds.
"""

from blockmesh.data.net.addrs import PeerAddr, parse_peer_addr, parse_peer_id
from blockmesh.data.net.config import DEFAULT_LISTEN_ADDR, DEFAULT_NET_CONFIG, NetConfig
from blockmesh.data.net.errors import (
    DialError,
    DialFiltered,
    DialTimeout,
    IdentityError,
    InvalidMultiaddr,
    NetError,
    NotConnected,
    PingTimeout,
    ProtocolViolation,
    StreamError,
    StreamOpenError,
    StreamReset,
)
from blockmesh.data.net.host import PING_PROTOCOL, Host, PeerEvent, StreamHandler
from blockmesh.data.net.identify import IDENTIFY_PROTOCOL, IdentifyInfo, decode_identify
from blockmesh.data.net.identity import (
    IDENTITY_FILE,
    Identity,
    identity_path,
    load_identity,
    load_or_create_identity,
)
from blockmesh.data.net.stream import Stream

__all__ = [
    "DEFAULT_LISTEN_ADDR",
    "DEFAULT_NET_CONFIG",
    "IDENTIFY_PROTOCOL",
    "IDENTITY_FILE",
    "PING_PROTOCOL",
    "DialError",
    "DialFiltered",
    "DialTimeout",
    "Host",
    "IdentifyInfo",
    "Identity",
    "IdentityError",
    "InvalidMultiaddr",
    "NetConfig",
    "NetError",
    "NotConnected",
    "PeerAddr",
    "PeerEvent",
    "PingTimeout",
    "ProtocolViolation",
    "Stream",
    "StreamError",
    "StreamHandler",
    "StreamOpenError",
    "StreamReset",
    "decode_identify",
    "identity_path",
    "load_identity",
    "load_or_create_identity",
    "parse_peer_addr",
    "parse_peer_id",
]
