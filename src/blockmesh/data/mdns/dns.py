"""DNS messages as multicast DNS uses them (RFC 1035, RFC 6762), encoded and decoded with no I/O.

Only what libp2p's mDNS discovery needs has a typed form (PTR, SRV, TXT, A, AAAA); any other
record keeps its raw data. Decoding follows compression pointers but bounds everything a
packet from the local network could abuse: the packet size, the number of records, each
name's length and the pointers it follows (a pointer must point backwards, so a loop is
impossible). Any malformed packet is a `DnsFormatError` and nothing else. Encoding never
compresses: our messages are a few hundred bytes.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from blockmesh.errors import DecodeError

#: RFC 6762 section 17: a multicast DNS packet is at most 9000 bytes including IP and UDP headers.
MAX_MESSAGE = 9000
#: Records of one section we accept (a full 9000-byte packet holds fewer than ~800 tiny ones).
MAX_RECORDS = 256
MAX_NAME = 255
MAX_LABEL = 63
MAX_TXT_STRING = 255

TYPE_A = 1
TYPE_PTR = 12
TYPE_TXT = 16
TYPE_AAAA = 28
TYPE_SRV = 33
TYPE_ANY = 255
CLASS_IN = 1
# The class field's top bit: "unicast response wanted" in a question, "cache flush" in a record.
TOP_BIT = 0x8000
FLAG_RESPONSE = 0x8000
FLAG_AUTHORITATIVE = 0x0400

_HEADER = struct.Struct("!HHHHHH")


class DnsFormatError(DecodeError):
    """Bytes that are not a DNS message we accept (malformed, truncated, over a bound), or a
    message that cannot be encoded."""


@dataclass(frozen=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True)
class Question:
    name: str  # absolute, ends with "."
    qtype: int
    qclass: int = CLASS_IN
    unicast: bool = False


RData = str | Srv | tuple[bytes, ...] | bytes
"""PTR: the target name; SRV: `Srv`; TXT: its strings; A/AAAA: the address as text;
other types: the raw data."""


@dataclass(frozen=True)
class Record:
    name: str
    rtype: int
    ttl: int
    data: RData
    rclass: int = CLASS_IN
    cache_flush: bool = False


@dataclass(frozen=True)
class Message:
    id: int = 0
    flags: int = 0
    questions: tuple[Question, ...] = ()
    answers: tuple[Record, ...] = ()
    authorities: tuple[Record, ...] = ()
    additionals: tuple[Record, ...] = field(default_factory=tuple)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)

    def records(self) -> tuple[Record, ...]:
        return self.answers + self.authorities + self.additionals


def same_name(a: str, b: str) -> bool:
    """DNS names compare without regard to ASCII case."""
    return a.lower() == b.lower()


# -- encoding ------------------------------------------------------------------------------------

def encode(message: Message) -> bytes:
    """The wire form of `message`; DnsFormatError if a field does not fit it."""
    try:
        return _encode(message)
    except struct.error as exc:
        raise DnsFormatError(f"a field is out of range: {exc}") from None


def _encode(message: Message) -> bytes:
    sections = (message.answers, message.authorities, message.additionals)
    if len(message.questions) > MAX_RECORDS or any(len(s) > MAX_RECORDS for s in sections):
        raise DnsFormatError(f"more than {MAX_RECORDS} entries in a section")
    out = bytearray(_HEADER.pack(message.id & 0xFFFF, message.flags & 0xFFFF,
                                 len(message.questions), *(len(s) for s in sections)))
    for question in message.questions:
        out += _encode_name(question.name)
        qclass = question.qclass | (TOP_BIT if question.unicast else 0)
        out += struct.pack("!HH", question.qtype, qclass)
    for section in sections:
        for record in section:
            data = _encode_rdata(record)
            rclass = record.rclass | (TOP_BIT if record.cache_flush else 0)
            out += _encode_name(record.name)
            out += struct.pack("!HHIH", record.rtype, rclass, record.ttl, len(data))
            out += data
    if len(out) > MAX_MESSAGE:
        raise DnsFormatError(f"message of {len(out)} bytes is over {MAX_MESSAGE}")
    return bytes(out)


def _encode_name(name: str) -> bytes:
    out = bytearray()
    for label in _labels(name):
        raw = label.encode()
        if not 0 < len(raw) <= MAX_LABEL:
            raise DnsFormatError(f"label {label!r} of {name!r} is empty or over {MAX_LABEL}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise DnsFormatError(f"name {name!r} is over {MAX_NAME} bytes")
    return bytes(out)


def _labels(name: str) -> list[str]:
    stripped = name[:-1] if name.endswith(".") else name
    return stripped.split(".") if stripped else []


def _encode_rdata(record: Record) -> bytes:
    data = record.data
    if record.rtype == TYPE_PTR and isinstance(data, str):
        return _encode_name(data)
    if record.rtype == TYPE_SRV and isinstance(data, Srv):
        fixed = struct.pack("!HHH", data.priority, data.weight, data.port)
        return fixed + _encode_name(data.target)
    if record.rtype == TYPE_TXT and isinstance(data, tuple):
        out = bytearray()
        for string in data:
            if len(string) > MAX_TXT_STRING:
                raise DnsFormatError(f"TXT string over {MAX_TXT_STRING} bytes")
            out.append(len(string))
            out += string
        return bytes(out or b"\x00")  # RFC 6763: an empty TXT record holds one empty string
    if record.rtype in (TYPE_A, TYPE_AAAA) and isinstance(data, str):
        try:
            address = ipaddress.ip_address(data)
        except ValueError:
            raise DnsFormatError(f"{data!r} is not an IP address") from None
        if address.version != (4 if record.rtype == TYPE_A else 6):
            raise DnsFormatError(f"{data} does not fit a type {record.rtype} record")
        return address.packed
    if isinstance(data, bytes):
        return data
    raise DnsFormatError(f"record data {data!r} does not fit type {record.rtype}")


# -- decoding ------------------------------------------------------------------------------------

def decode(packet: bytes) -> Message:
    """The message in `packet`; DnsFormatError for anything malformed or over a bound."""
    if len(packet) > MAX_MESSAGE:
        raise DnsFormatError(f"packet of {len(packet)} bytes is over {MAX_MESSAGE}")
    if len(packet) < _HEADER.size:
        raise DnsFormatError("packet shorter than a DNS header")
    msg_id, flags, qd, an, ns, ar = _HEADER.unpack_from(packet)
    for count in (qd, an, ns, ar):
        if count > MAX_RECORDS:
            raise DnsFormatError(f"a section claims {count} entries (at most {MAX_RECORDS})")
    reader = _Reader(packet, _HEADER.size)
    questions = []
    for _ in range(qd):
        name = reader.name()
        qtype, qclass = reader.unpack("!HH")
        questions.append(Question(name, qtype, qclass & ~TOP_BIT, bool(qclass & TOP_BIT)))
    sections = [tuple(reader.record() for _ in range(count)) for count in (an, ns, ar)]
    return Message(msg_id, flags, tuple(questions), *sections)


class _Reader:
    def __init__(self, packet: bytes, offset: int) -> None:
        self.packet = packet
        self.offset = offset

    def take(self, size: int) -> bytes:
        end = self.offset + size
        if end > len(self.packet):
            raise DnsFormatError("packet ends inside a field")
        chunk = self.packet[self.offset:end]
        self.offset = end
        return chunk

    def unpack(self, fmt: str) -> tuple[int, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def name(self) -> str:
        name, self.offset = _decode_name(self.packet, self.offset)
        return name

    def record(self) -> Record:
        name = self.name()
        rtype, rclass, ttl, length = self.unpack("!HHIH")
        start = self.offset
        raw = self.take(length)
        data: RData
        if rtype == TYPE_PTR:
            data, end = _decode_name(self.packet, start)
            _check_end(end, self.offset)
        elif rtype == TYPE_SRV:
            if length < 7:
                raise DnsFormatError("SRV record too short")
            priority, weight, port = struct.unpack_from("!HHH", raw)
            target, end = _decode_name(self.packet, start + 6)
            _check_end(end, self.offset)
            data = Srv(priority, weight, port, target)
        elif rtype == TYPE_TXT:
            data = _decode_txt(raw)
        elif rtype == TYPE_A:
            if length != 4:
                raise DnsFormatError("A record data is not 4 bytes")
            data = str(ipaddress.IPv4Address(raw))
        elif rtype == TYPE_AAAA:
            if length != 16:
                raise DnsFormatError("AAAA record data is not 16 bytes")
            data = str(ipaddress.IPv6Address(raw))
        else:
            data = raw
        return Record(name, rtype, ttl, data, rclass & ~TOP_BIT, bool(rclass & TOP_BIT))


def _check_end(end: int, expected: int) -> None:
    if end != expected:
        raise DnsFormatError("a name does not fill its record's data exactly")


def _decode_txt(raw: bytes) -> tuple[bytes, ...]:
    strings = []
    offset = 0
    while offset < len(raw):
        size = raw[offset]
        end = offset + 1 + size
        if end > len(raw):
            raise DnsFormatError("TXT string runs past its record")
        strings.append(raw[offset + 1:end])
        offset = end
    return tuple(strings)


def _decode_name(packet: bytes, offset: int) -> tuple[str, int]:
    """The name at `offset` and the offset just past it (past the first pointer, if any).

    A compression pointer must point before the place it was read from, so following pointers
    always moves backwards and ends."""
    labels: list[str] = []
    size = 0
    position = offset
    resume: int | None = None
    while True:
        if position >= len(packet):
            raise DnsFormatError("packet ends inside a name")
        length = packet[position]
        if length & 0xC0 == 0xC0:
            if position + 1 >= len(packet):
                raise DnsFormatError("packet ends inside a compression pointer")
            target = ((length & 0x3F) << 8) | packet[position + 1]
            if target >= position:
                raise DnsFormatError("compression pointer does not point backwards")
            if resume is None:
                resume = position + 2
            position = target
            continue
        if length & 0xC0:
            raise DnsFormatError(f"unknown label type {length >> 6}")
        if length == 0:
            break
        raw = packet[position + 1:position + 1 + length]
        if len(raw) != length:
            raise DnsFormatError("packet ends inside a label")
        size += length + 1
        if size + 1 > MAX_NAME:
            raise DnsFormatError(f"name over {MAX_NAME} bytes")
        try:
            label = raw.decode()
        except UnicodeDecodeError:
            raise DnsFormatError("label is not UTF-8") from None
        if "." in label:
            raise DnsFormatError("label holds a dot")
        labels.append(label)
        position += 1 + length
    end = resume if resume is not None else position + 1
    return ".".join(labels) + ".", end
