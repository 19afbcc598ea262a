"""Raw Alpaca stream messages to host ticks. Pure.

The stream is read raw (``raw_data=True``) because alpaca-py's models turn the message's time
(a msgpack Timestamp, exact nanoseconds) into a datetime, which keeps only microseconds.
Prices arrive as floats and are converted exactly (cents, half up, or units of the symbol's
declared increment: ``increment``); a message that is not a
usable price (NaN, zero, negative, a crossed quote, a missing field) is a bad tick: counted,
never passed on (S3).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from bothost.model import CENT, Tick, float_to_units

#: A bar becomes four ticks, as the replay feed makes them: open, then low and high (low first
#: when close >= open), then close, at 0, 1/4, 1/2 and 3/4 of the bar.
BAR_NS = 60 * 1_000_000_000


def time_ns(value) -> int | None:
    """A message's ``t``: a msgpack Timestamp (exact ns), a datetime, or an RFC 3339 string."""
    to_nano = getattr(value, "to_unix_nano", None)
    if to_nano is not None:
        return int(to_nano())
    if isinstance(value, datetime):
        return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1_000
    if isinstance(value, str):
        try:
            whole, _, frac = value.rstrip("Z").partition(".")
            base = datetime.fromisoformat(whole + "+00:00")
            return int(base.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9] or 0)
        except ValueError:
            return None
    return None


def trade(msg: dict, symbol: str, increment: Decimal = CENT) -> Tick | str:
    """A trade message as a Tick (its price in units of ``increment``), or the reason it is a bad tick."""
    t = time_ns(msg.get("t"))
    cents = float_to_units(msg.get("p"), increment)
    if t is None:
        return "no time"
    if cents is None:
        return "price not a positive number"
    size = msg.get("s") or 0
    return Tick(t, symbol, cents, int(size) if isinstance(size, (int, float)) and size == size else 0)


def quote(msg: dict, symbol: str, increment: Decimal = CENT) -> Tick | str:
    """A quote as a Tick at its midpoint (cents or units of ``increment``, half up), or the reason
    it is a bad tick."""
    t = time_ns(msg.get("t"))
    bid, ask = float_to_units(msg.get("bp"), increment), float_to_units(msg.get("ap"), increment)
    if t is None:
        return "no time"
    if bid is None or ask is None:
        return "bid or ask not a positive number"
    if ask < bid:
        return "crossed quote"
    mid = (bid + ask + 1) // 2  # half a unit rounds up
    return Tick(t, symbol, mid, 0, bid, ask)


def bar(msg: dict, symbol: str, interval_ns: int = BAR_NS, increment: Decimal = CENT) -> list[Tick] | str:
    t = time_ns(msg.get("t"))
    o, h, lo, c = (float_to_units(msg.get(k), increment) for k in ("o", "h", "l", "c"))
    if t is None:
        return "no time"
    if None in (o, h, lo, c):
        return "price not a positive number"
    if h < lo:
        return "high below low"
    middle = (lo, h) if c >= o else (h, lo)
    prices = (o, *middle, c)
    return [Tick(t + i * interval_ns // 4, symbol, p) for i, p in enumerate(prices)]
