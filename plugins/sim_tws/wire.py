"""TWS socket framing and field encoding.

The TWS API is a stream of messages, each a 4-byte big-endian length followed by that many bytes:
text fields, each terminated by a NUL. The very first bytes a client sends are ``API\\0`` and
then one framed message ``v<min>..<max>[ options]`` (its supported client versions); the
server's first framed message is ``<serverVersion>\\0<connection time>\\0``.

Encoding of field values (what the clients' ``Decoder.parse`` expects):
``None`` -> empty; ``bool`` -> ``1``/``0``; ``int`` -> decimal; ``Decimal`` -> its plain text;
``float`` -> ``repr``; ``str`` as is. The IB "unset" markers (``UNSET_INTEGER`` 2**31-1,
``UNSET_DOUBLE`` the largest double) are sent empty, so the client parses them back to its own
unset default.
"""

from __future__ import annotations

import struct
from decimal import Decimal

UNSET_INTEGER = 2 ** 31 - 1
UNSET_DOUBLE = 1.7976931348623157e308
#: how TWS spells an unset double when it does send one (e.g. realizedPNL of an opening fill)
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"

_HEADER = struct.Struct(">I")
#: a message longer than this is a broken or hostile client (TWS itself caps messages far lower)
MAX_MESSAGE = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent bytes that are not the TWS protocol."""


def field_text(value) -> str:
    t = type(value)
    if t is str:
        return value
    if value is None:
        return ""
    if t is bool:
        return "1" if value else "0"
    if t is int:
        return "" if value == UNSET_INTEGER else str(value)
    if t is float:
        if value == UNSET_DOUBLE:
            return ""
        return "Infinite" if value == float("inf") else repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def encode(fields) -> bytes:
    """One framed message from a sequence of field values."""
    body = "\0".join([field_text(f) for f in fields]).encode() + b"\0"
    return _HEADER.pack(len(body)) + body


def frame(body: bytes) -> bytes:
    """Frame a body that is already NUL-terminated text fields."""
    return _HEADER.pack(len(body)) + body


def frame_text(text: str) -> bytes:
    return frame(text.encode())


class MessageReader:
    """Incremental parser of the client's byte stream: feed bytes, get lists of text fields.

    ``handshake`` is True until the ``API\\0`` prefix has been seen; the version message that
    follows it is returned like any other (one field: ``v157..176``).
    """

    __slots__ = ("buf", "handshake")

    def __init__(self):
        self.buf = bytearray()
        self.handshake = True

    def feed(self, data: bytes) -> list[list[str]]:
        buf = self.buf
        buf += data
        out: list[list[str]] = []
        if self.handshake:
            if len(buf) < 4:
                if not b"API\0".startswith(bytes(buf)):
                    raise ProtocolError("not a TWS API client (no API prefix)")
                return out
            if bytes(buf[:4]) != b"API\0":
                raise ProtocolError("not a TWS API client (no API prefix)")
            del buf[:4]
            self.handshake = False
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            size = _HEADER.unpack_from(buf, pos)[0]
            if size > MAX_MESSAGE:
                raise ProtocolError(f"message of {size} bytes")
            end = pos + 4 + size
            if end > n:
                break
            text = bytes(buf[pos + 4:end]).decode(errors="backslashreplace")
            fields = text.split("\0")
            if fields and fields[-1] == "":
                fields.pop()
            out.append(fields)
            pos = end
        if pos:
            del buf[:pos]
        return out


def parse_version_range(text: str) -> tuple[int, int]:
    """``v157..176`` (optionally followed by connect options) -> (157, 176); ``v100`` -> (100, 100)."""
    if not text.startswith("v"):
        raise ProtocolError(f"bad version message {text!r}")
    spec = text[1:].split(" ", 1)[0]
    try:
        if ".." in spec:
            lo, hi = spec.split("..", 1)
            return int(lo), int(hi)
        v = int(spec)
        return v, v
    except ValueError:
        raise ProtocolError(f"bad version message {text!r}") from None


def cents_text(cents: int) -> str:
    """Integer cents as the decimal dollars text a client parses with float()."""
    if cents < 0:
        return "-" + cents_text(-cents)
    return f"{cents // 100}.{cents % 100:02d}"
