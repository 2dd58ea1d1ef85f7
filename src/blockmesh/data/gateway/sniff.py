"""Content-Type of a UnixFS file, decided as kubo decides it: the file name's extension first,
then the first 512 bytes, with the content-sniffing rules of the WHATWG MIME Sniffing standard
that Go's `http.DetectContentType` implements (written here from that standard's tables).

The extension table is Go's built-in one, then Python's own defaults (never /etc/mime.types,
so the answer does not depend on the machine); text types get `charset=utf-8`, as Go adds it.
"""

from __future__ import annotations

import mimetypes
import posixpath

SNIFF_LEN = 512
_GO_BUILTIN = {
    ".avif": "image/avif", ".css": "text/css; charset=utf-8", ".gif": "image/gif",
    ".htm": "text/html; charset=utf-8", ".html": "text/html; charset=utf-8",
    ".jpeg": "image/jpeg", ".jpg": "image/jpeg", ".js": "text/javascript; charset=utf-8",
    ".json": "application/json", ".mjs": "text/javascript; charset=utf-8",
    ".pdf": "application/pdf", ".png": "image/png", ".svg": "image/svg+xml",
    ".wasm": "application/wasm", ".webp": "image/webp", ".xml": "text/xml; charset=utf-8",
}
_DEFAULTS = mimetypes.MimeTypes(filenames=())

_WS = b"\t\n\x0c\r "
# Tags that make a document HTML when they open it (after leading whitespace), compared
# case-insensitively and followed by a space or '>'.
_HTML_TAGS = (b"<!DOCTYPE HTML", b"<HTML", b"<HEAD", b"<SCRIPT", b"<IFRAME", b"<H1", b"<DIV",
              b"<FONT", b"<TABLE", b"<A", b"<STYLE", b"<TITLE", b"<B", b"<BODY", b"<BR", b"<P",
              b"<!--")
# (mask, pattern, type): data[:len(pattern)] & mask == pattern; mask None means exact prefix.
_MASKED: tuple[tuple[bytes | None, bytes, str], ...] = (
    (None, b"%PDF-", "application/pdf"),
    (None, b"%!PS-Adobe-", "application/postscript"),
    (b"\xff\xff\x00\x00", b"\xfe\xff\x00\x00", "text/plain; charset=utf-16be"),
    (b"\xff\xff\x00\x00", b"\xff\xfe\x00\x00", "text/plain; charset=utf-16le"),
    (b"\xff\xff\xff\x00", b"\xef\xbb\xbf\x00", "text/plain; charset=utf-8"),
    (None, b"\x00\x00\x01\x00", "image/x-icon"),
    (None, b"\x00\x00\x02\x00", "image/x-icon"),
    (None, b"BM", "image/bmp"),
    (None, b"GIF87a", "image/gif"),
    (None, b"GIF89a", "image/gif"),
    (b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff", b"RIFF\x00\x00\x00\x00WEBPVP",
     "image/webp"),
    (None, b"\x89PNG\r\n\x1a\n", "image/png"),
    (None, b"\xff\xd8\xff", "image/jpeg"),
    (b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff", b"FORM\x00\x00\x00\x00AIFF",
     "audio/aiff"),
    (None, b"ID3", "audio/mpeg"),
    (None, b"OggS\x00", "application/ogg"),
    (None, b"MThd\x00\x00\x00\x06", "audio/midi"),
    (b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff", b"RIFF\x00\x00\x00\x00AVI ",
     "video/avi"),
    (b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff", b"RIFF\x00\x00\x00\x00WAVE",
     "audio/wave"),
    (None, b"\x1aE\xdf\xa3", "video/webm"),
    (None, b"\x00\x01\x00\x00", "font/ttf"),
    (None, b"OTTO", "font/otf"),
    (None, b"ttcf", "font/collection"),
    (None, b"wOFF", "font/woff"),
    (None, b"wOF2", "font/woff2"),
    (None, b"\x1f\x8b\x08", "application/x-gzip"),
    (None, b"PK\x03\x04", "application/zip"),
    (None, b"Rar!\x1a\x07\x00", "application/x-rar-compressed"),
    (None, b"Rar!\x1a\x07\x01\x00", "application/x-rar-compressed"),
    (None, b"\x00asm", "application/wasm"),
)
_BINARY = frozenset([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])


def by_extension(name: str) -> str | None:
    ext = posixpath.splitext(name)[1].lower()
    if not ext:
        return None
    if ext in _GO_BUILTIN:
        return _GO_BUILTIN[ext]
    guessed, _ = _DEFAULTS.guess_type("x" + ext, strict=True)
    if guessed is None:
        return None
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def detect(head: bytes) -> str:
    """The type the first bytes of a file announce (at most SNIFF_LEN of them are looked at)."""
    data = head[:SNIFF_LEN]
    text = data.lstrip(_WS)
    upper = text[:16].upper()
    for tag in _HTML_TAGS:
        if upper.startswith(tag) and len(text) > len(tag) and text[len(tag)] in b" >":
            return "text/html; charset=utf-8"
    if text.startswith(b"<?xml"):
        return "image/svg+xml" if b"<svg" in data else "text/xml; charset=utf-8"
    for mask, pattern, kind in _MASKED:
        if len(data) < len(pattern):
            continue
        if mask is None:
            if data.startswith(pattern):
                return kind
        elif bytes(a & b for a, b in zip(data, mask, strict=False)) == pattern:
            return kind
    if _is_mp4(data):
        return "video/mp4"
    if text.startswith(b"<svg"):
        return "image/svg+xml"
    if any(byte in _BINARY for byte in data):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def _is_mp4(data: bytes) -> bool:
    """An ISO base media file: a first box of type 'ftyp' whose brands include 'mp4'."""
    if len(data) < 12:
        return False
    box = int.from_bytes(data[:4], "big")
    if len(data) < box or box % 4 != 0 or data[4:8] != b"ftyp":
        return False
    for start in range(8, box, 4):
        if start == 12:
            continue  # the minor version, not a brand
        if data[start:start + 3] == b"mp4":
            return True
    return False


def content_type(name: str | None, head: bytes) -> str:
    """Extension of `name` first (kubo's order), then the bytes."""
    return (name and by_extension(name)) or detect(head)
