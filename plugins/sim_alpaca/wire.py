"""Alpaca's market-data stream messages, as alpaca-py 0.44 reads them, in msgpack or JSON.

A frame is a list of messages, each a map with ``T`` (its type). alpaca-py asks for msgpack
(``Content-Type: application/msgpack`` on the upgrade request) and unpacks every frame with
``msgpack.unpackb``; a data message's ``t`` must then be a msgpack Timestamp extension (type -1:
alpaca-py calls ``.to_datetime()`` on it; raw mode hands it over as it is, exact to the
nanosecond). In JSON mode (text frames) times are RFC 3339 with nanoseconds.

Field names, per alpaca-py's ``mappings.py``: trade ``t p s x i c z``, quote ``t bx bp bs ax ap as c z``,
bar ``t o h l c v n vw`` (``n`` and ``vw`` are required-but-nullable in its Bar model: always sent).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import msgpack

NS = 1_000_000_000
MSGPACK, JSON = "msgpack", "json"

#: the stream's control messages
CONNECTED = {"T": "success", "msg": "connected"}
AUTHENTICATED = {"T": "success", "msg": "authenticated"}

#: Alpaca's stream error codes and texts
ERRORS = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    409: "insufficient subscription",
    410: "invalid subscribe action for this feed",
    500: "internal error",
}

#: channels a subscribe message may name, in the order Alpaca acknowledges them
CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds", "corrections",
            "cancelErrors")
#: corrections and cancel errors follow a trade subscription (they cannot be asked for alone)
FOLLOW_TRADES = ("corrections", "cancelErrors")

EXCHANGE = {"iex": "V", "test": "V", "sip": "Q", "delayed_sip": "Q"}
TAPE = "C"  # Nasdaq-listed (TQQQ)


def error(code: int, msg: str | None = None) -> dict:
    return {"T": "error", "code": code, "msg": msg or ERRORS.get(code, "error")}


def price(cents: int) -> float:
    """Dollars as the float nearest the exact cents (what ``float("12.34")`` gives)."""
    return cents / 100


class Stamp:
    """A data time in ns, encoded per mode: a msgpack Timestamp, or RFC 3339 text."""

    __slots__ = ("ns",)

    def __init__(self, ns: int):
        self.ns = int(ns)


def rfc3339(ns: int) -> str:
    """``2024-01-02T14:30:15.123456789Z``; whole seconds without a fraction (``...T14:30:00Z``)."""
    sec, frac = divmod(int(ns), NS)
    base = datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z" if frac else f"{base}Z"


def trade(symbol: str, ident: int, t: int, cents: int, size: int, feed: str, p: float | None = None) -> dict:
    return {"T": "t", "S": symbol, "i": ident, "x": EXCHANGE.get(feed, "V"), "p": price(cents) if p is None else p,
            "s": size, "c": ["@"], "z": TAPE, "t": Stamp(t)}


def quote(symbol: str, t: int, bid: int, ask: int, bid_size: int, ask_size: int, feed: str) -> dict:
    x = EXCHANGE.get(feed, "V")
    return {"T": "q", "S": symbol, "bx": x, "bp": price(bid), "bs": bid_size, "ax": x, "ap": price(ask),
            "as": ask_size, "c": ["R"], "z": TAPE, "t": Stamp(t)}


def bar(kind: str, symbol: str, t: int, o: int, h: int, lo: int, c: int, v: float, n: float, vw: float) -> dict:
    """``kind`` ``b`` (minute bar), ``d`` (daily bar) or ``u`` (updated bar)."""
    return {"T": kind, "S": symbol, "o": price(o), "h": price(h), "l": price(lo), "c": price(c), "v": _num(v),
            "t": Stamp(t), "n": _num(n), "vw": round(float(vw), 6)}


def _num(x: float):
    return int(x) if float(x).is_integer() else float(x)


# ============================================================================ encoding
def _default(obj):
    if isinstance(obj, Stamp):
        return msgpack.Timestamp.from_unix_nano(obj.ns)
    raise TypeError(f"cannot pack {type(obj).__name__}")


def encode(messages: list[dict], mode: str) -> bytes | str:
    """One frame: bytes (msgpack) or text (JSON)."""
    if mode == MSGPACK:
        return msgpack.packb(messages, default=_default)
    return json.dumps(messages, default=_json_default, separators=(",", ":"))


def _json_default(obj):
    if isinstance(obj, Stamp):
        return rfc3339(obj.ns)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def malformed(mode: str) -> bytes | str:
    """A frame the client cannot read: 0xc1 is the one byte msgpack never uses; JSON cut short."""
    return b"\xc1\x93\xa1T" if mode == MSGPACK else '[{"T":"t","S":'


def decode(frame: bytes | str):
    """A client frame (msgpack or JSON, either way) -> the object, or None when it is neither."""
    if isinstance(frame, str):
        try:
            return json.loads(frame)
        except ValueError:
            return None
    try:
        return msgpack.unpackb(frame)
    except Exception:
        try:
            return json.loads(frame.decode())
        except (ValueError, UnicodeDecodeError):
            return None
