"""The Kademlia DHT message (go-libp2p-kad-dht's `dht.pb`) and its length-prefixed framing.

Field numbers follow `pb/dht.proto` of go-libp2p-kad-dht and `record/pb/record.proto` of
go-libp2p-record: Message{type=1, key=2, record=3, closerPeers=8, providerPeers=9,
clusterLevelRaw=10}, Peer{id=1, addrs=2, connection=3}, Record{key=1, value=2, timeReceived=5}.
Go frames each message with an unsigned varint length (go-msgio's `varint` delimited writer) and
refuses messages over 4 MiB; the same cap applies here, checked on the length prefix before the
body is buffered. Counts of peers and addresses are capped too, so a decoded message is bounded
in objects as well as bytes. Unknown fields are skipped (newer peers may add some); a known field
with the wrong wire type is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from blockmesh.data import pbwire, varint
from blockmesh.errors import DecodeError

MAX_MESSAGE_SIZE = 4 << 20  # go-libp2p-kad-dht's network message cap (4 MiB)
MAX_PEERS = 200  # closer or provider peers in one message; go sends at most k=20 closer peers
MAX_ADDRS = 64  # addresses of one peer
MAX_ADDR_LEN = 1024  # one binary multiaddr
MAX_KEY_LEN = 1024  # a multihash, peer id or record key
MAX_ID_LEN = 128  # a binary peer id (identity or sha2-256 multihash)

# Message
_F_TYPE, _F_KEY, _F_RECORD, _F_CLOSER, _F_PROVIDERS, _F_CLUSTER = 1, 2, 3, 8, 9, 10
# Message.Peer
_F_P_ID, _F_P_ADDRS, _F_P_CONN = 1, 2, 3
# Record
_F_R_KEY, _F_R_VALUE, _F_R_TIME = 1, 2, 5


class KadDecodeError(DecodeError):
    """Bytes from a peer that are not a DHT message this node accepts."""


class KadMessageTooLarge(KadDecodeError):
    """A frame or a part of it over the caps above."""


class MessageType(IntEnum):
    PUT_VALUE = 0
    GET_VALUE = 1
    ADD_PROVIDER = 2
    GET_PROVIDERS = 3
    FIND_NODE = 4
    PING = 5


class Connectedness(IntEnum):
    NOT_CONNECTED = 0
    CONNECTED = 1
    CAN_CONNECT = 2
    CANNOT_CONNECT = 3


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A peer as the DHT passes it around: binary peer id and binary multiaddrs."""

    id: bytes
    addrs: tuple[bytes, ...] = ()
    connection: Connectedness = Connectedness.NOT_CONNECTED


@dataclass(frozen=True, slots=True)
class Record:
    key: bytes
    value: bytes
    time_received: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    key: bytes = b""
    record: Record | None = None
    closer_peers: tuple[PeerInfo, ...] = field(default=())
    provider_peers: tuple[PeerInfo, ...] = field(default=())
    cluster_level: int = 0


# -- encoding -------------------------------------------------------------------------------------
def _encode_peer(peer: PeerInfo) -> bytes:
    body = pbwire.len_field(_F_P_ID, peer.id)
    for addr in peer.addrs:
        body += pbwire.len_field(_F_P_ADDRS, addr)
    if peer.connection:
        body += pbwire.varint_field(_F_P_CONN, int(peer.connection))
    return body


def _encode_record(record: Record) -> bytes:
    body = pbwire.len_field(_F_R_KEY, record.key) + pbwire.len_field(_F_R_VALUE, record.value)
    if record.time_received:
        body += pbwire.len_field(_F_R_TIME, record.time_received.encode())
    return body


def encode_message(msg: Message) -> bytes:
    """The protobuf body (no length prefix). Refuses what a peer would refuse to decode."""
    if len(msg.closer_peers) > MAX_PEERS or len(msg.provider_peers) > MAX_PEERS:
        raise KadMessageTooLarge(f"more than {MAX_PEERS} peers in one DHT message")
    body = pbwire.varint_field(_F_TYPE, int(msg.type))
    if msg.key:
        body += pbwire.len_field(_F_KEY, msg.key)
    if msg.record is not None:
        body += pbwire.len_field(_F_RECORD, _encode_record(msg.record))
    for peer in msg.closer_peers:
        body += pbwire.len_field(_F_CLOSER, _encode_peer(peer))
    for peer in msg.provider_peers:
        body += pbwire.len_field(_F_PROVIDERS, _encode_peer(peer))
    if msg.cluster_level:
        body += pbwire.varint_field(_F_CLUSTER, msg.cluster_level)
    if len(body) > MAX_MESSAGE_SIZE:
        raise KadMessageTooLarge(f"DHT message of {len(body)} bytes over {MAX_MESSAGE_SIZE}")
    return body


def frame(msg: Message) -> bytes:
    body = encode_message(msg)
    return varint.encode(len(body)) + body


# -- decoding -------------------------------------------------------------------------------------
def _fields(buf: bytes | memoryview, what: str):  # type: ignore[no-untyped-def]
    try:
        yield from pbwire.fields(buf, canonical=False)
    except pbwire.ProtobufError as exc:
        raise KadDecodeError(f"malformed {what}: {exc}") from None


def _want(wire: int, expected: int, what: str) -> None:
    if wire != expected:
        raise KadDecodeError(f"{what} has wire type {wire}, expected {expected}")


def _decode_peer(buf: memoryview) -> PeerInfo:
    peer_id = b""
    addrs: list[bytes] = []
    connection = Connectedness.NOT_CONNECTED
    for number, wire, value in _fields(buf, "DHT peer"):
        if number == _F_P_ID:
            _want(wire, pbwire.LEN, "peer id")
            assert isinstance(value, memoryview)
            if not 0 < len(value) <= MAX_ID_LEN:
                raise KadDecodeError(f"peer id of {len(value)} bytes")
            peer_id = bytes(value)
        elif number == _F_P_ADDRS:
            _want(wire, pbwire.LEN, "peer address")
            assert isinstance(value, memoryview)
            if len(addrs) >= MAX_ADDRS:
                raise KadMessageTooLarge(f"more than {MAX_ADDRS} addresses for one peer")
            if len(value) > MAX_ADDR_LEN:
                raise KadMessageTooLarge(f"an address of {len(value)} bytes")
            addrs.append(bytes(value))
        elif number == _F_P_CONN:
            _want(wire, pbwire.VARINT, "connection")
            assert isinstance(value, int)
            # An unknown enum value reads as the default, as proto3 runtimes do.
            connection = (Connectedness(value) if value in Connectedness._value2member_map_
                          else Connectedness.NOT_CONNECTED)
    if not peer_id:
        raise KadDecodeError("DHT peer without an id")
    return PeerInfo(peer_id, tuple(addrs), connection)


def _decode_record(buf: memoryview) -> Record:
    key, value_bytes, time_received = b"", b"", ""
    for number, wire, value in _fields(buf, "DHT record"):
        if number in (_F_R_KEY, _F_R_VALUE, _F_R_TIME):
            _want(wire, pbwire.LEN, "record field")
            assert isinstance(value, memoryview)
            if number == _F_R_KEY:
                if len(value) > MAX_KEY_LEN:
                    raise KadMessageTooLarge(f"record key of {len(value)} bytes")
                key = bytes(value)
            elif number == _F_R_VALUE:
                value_bytes = bytes(value)
            else:
                try:
                    time_received = bytes(value[:64]).decode()
                except UnicodeDecodeError:
                    raise KadDecodeError("record timeReceived is not UTF-8") from None
    return Record(key, value_bytes, time_received)


def decode_message(body: bytes | memoryview) -> Message:
    """One message body (no length prefix)."""
    if len(body) > MAX_MESSAGE_SIZE:
        raise KadMessageTooLarge(f"DHT message of {len(body)} bytes over {MAX_MESSAGE_SIZE}")
    mtype: int = 0
    key = b""
    record: Record | None = None
    closer: list[PeerInfo] = []
    providers: list[PeerInfo] = []
    cluster = 0
    for number, wire, value in _fields(body, "DHT message"):
        if number == _F_TYPE:
            _want(wire, pbwire.VARINT, "message type")
            assert isinstance(value, int)
            mtype = value
        elif number == _F_KEY:
            _want(wire, pbwire.LEN, "key")
            assert isinstance(value, memoryview)
            if len(value) > MAX_KEY_LEN:
                raise KadMessageTooLarge(f"key of {len(value)} bytes")
            key = bytes(value)
        elif number == _F_RECORD:
            _want(wire, pbwire.LEN, "record")
            assert isinstance(value, memoryview)
            record = _decode_record(value)
        elif number in (_F_CLOSER, _F_PROVIDERS):
            _want(wire, pbwire.LEN, "peer list entry")
            assert isinstance(value, memoryview)
            target = closer if number == _F_CLOSER else providers
            if len(target) >= MAX_PEERS:
                raise KadMessageTooLarge(f"more than {MAX_PEERS} peers in one DHT message")
            target.append(_decode_peer(value))
        elif number == _F_CLUSTER:
            _want(wire, pbwire.VARINT, "cluster level")
            assert isinstance(value, int)
            cluster = value & 0xFFFFFFFF
    if mtype not in MessageType._value2member_map_:
        raise KadDecodeError(f"unknown DHT message type {mtype}")
    return Message(MessageType(mtype), key, record, tuple(closer), tuple(providers), cluster)


class FrameReader:
    """Stream bytes in, whole message bodies out. A length prefix over the cap is refused as
    soon as its bytes show it, before any body is buffered; after an error the reader is dead."""

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._max = max_size
        self._buf = bytearray()
        self._need: int | None = None
        self._failed: KadDecodeError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        if self._failed is not None:
            raise self._failed
        self._buf += data
        out: list[bytes] = []
        try:
            while True:
                if self._need is None and not self._read_prefix():
                    break
                assert self._need is not None
                if len(self._buf) < self._need:
                    break
                out.append(bytes(self._buf[: self._need]))
                del self._buf[: self._need]
                self._need = None
        except KadDecodeError as exc:
            self._failed = exc
            self._buf.clear()
            raise
        return out

    @property
    def idle(self) -> bool:
        """Between frames: nothing of a next frame has arrived."""
        return self._need is None and not self._buf

    @property
    def want(self) -> int:
        """How many more bytes would complete the current frame (at least 1)."""
        if self._need is None:
            return 1
        return max(1, self._need - len(self._buf))

    def _read_prefix(self) -> bool:
        value = 0
        for i, byte in enumerate(self._buf[: varint.MAX_VARINT_BYTES]):
            value |= (byte & 0x7F) << (7 * i)
            if value > self._max or (byte >= 0x80 and 1 << (7 * (i + 1)) > self._max):
                raise KadMessageTooLarge(f"length prefix over {self._max} bytes")
            if byte < 0x80:
                try:
                    length, end = varint.decode(self._buf)
                except varint.VarintError as exc:
                    raise KadDecodeError(f"bad length prefix: {exc}") from None
                del self._buf[:end]
                self._need = length
                return True
        return False
