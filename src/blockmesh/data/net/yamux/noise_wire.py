"""Noise transport messages read and written straight on the TCP socket, under our Yamux.

After the handshake, py-libp2p reads each Noise message with two exact reads (the 2-byte
length, then the body), each going through three wrapper layers and a trio lock, and writes
each 64 KiB message with its own locked `send_all`. A profile of a 100 MiB fetch spent more time
there than in ChaCha20-Poly1305 itself. Our Yamux is the only reader and writer of the
connection once it is running, so it takes the socket over: one `receive_some` of up to
`RECV_SIZE` bytes yields every whole message in it, and one `send_all` carries every message of
a batch of frames. Encryption and decryption still go through py-libp2p's Noise cipher state,
whose nonces stay in step because nothing else uses the connection afterwards.

Only the exact stack blockmesh builds (SecureSession over Noise over py-libp2p's TCP stream)
is taken over; anything else is used through its own `read`/`write`.
"""

from __future__ import annotations

from typing import Any

import trio
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH, NoiseTransportReadWriter
from libp2p.security.secure_session import SecureSession

RECV_SIZE = 256 * 1024
_LEN = 2  # Noise messages are prefixed by a big-endian 16-bit length


class NoiseWire:
    """Decrypted bytes in, encrypted messages out, on the socket under a SecureSession."""

    def __init__(self, noise: NoiseTransportReadWriter, socket: trio.SocketStream,
                 leftover: bytes) -> None:
        self._noise = noise
        self._socket = socket
        self._leftover = leftover  # decrypted during negotiation, not yet read
        self._buf = b""

    @classmethod
    def take_over(cls, secured_conn: Any) -> NoiseWire | None:
        """A NoiseWire for `secured_conn` when it is the stack we know, else None."""
        if not isinstance(secured_conn, SecureSession):
            return None
        noise = secured_conn.conn
        raw = getattr(getattr(noise, "read_writer", None), "read_write_closer", None)
        socket = getattr(getattr(raw, "stream", None), "stream", None)
        if not isinstance(noise, NoiseTransportReadWriter) or not isinstance(
                socket, trio.SocketStream):
            return None
        return cls(noise, socket, secured_conn._drain(None))

    async def read(self) -> list[bytes]:
        """The plaintext of every whole message that has arrived, waiting for at least one;
        [] once the peer has closed the connection."""
        if self._leftover:
            out, self._leftover = [self._leftover], b""
            return out
        out: list[bytes] = []
        decrypt = self._noise.decrypt
        while True:
            buf = self._buf
            pos, end = 0, len(buf)
            while end - pos >= _LEN:
                size = (buf[pos] << 8) | buf[pos + 1]
                if end - pos - _LEN < size:
                    break
                out.append(decrypt(buf[pos + _LEN:pos + _LEN + size]))
                pos += _LEN + size
            self._buf = buf[pos:] if pos else buf
            if out:
                return out
            data = await self._socket.receive_some(RECV_SIZE)
            if not data:
                return []
            self._buf = self._buf + data if self._buf else data

    async def write(self, data: bytes) -> None:
        """Encrypt `data` as messages of at most MAX_PLAINTEXT_LENGTH and send them at once."""
        encrypt = self._noise.encrypt
        parts: list[bytes] = []
        for start in range(0, len(data), MAX_PLAINTEXT_LENGTH):
            sealed = encrypt(data[start:start + MAX_PLAINTEXT_LENGTH]
                             if len(data) > MAX_PLAINTEXT_LENGTH else data)
            parts.append(len(sealed).to_bytes(_LEN, "big"))
            parts.append(sealed)
        await self._socket.send_all(b"".join(parts))
