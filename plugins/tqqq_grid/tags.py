"""R5 order tags (IB ``orderRef``, or the broker's client order id).

Format (fields separated by ``:``, no spaces)::

    <strategy>:BUY:L0:M<last>[:T<ms>]               Level-0 entry (R1); M = the last price it derives from,
                                                    T = when it was placed (host clock, ms since the
                                                    epoch): a broker that does not report placement
                                                    times (IB) still lets a restart continue R1's
                                                    timeout where it was
    <strategy>:BUY:L<n>:A<anchor>                   queue BUY (R3); its price is T(n) of that anchor
    <strategy>:SELL:L<n>:P<purchase>:A<anchor>:B<buy order id>
                                                    a lot's SELL (R2); P = the BUY's average fill price,
                                                    B = the BUY it protects (Reconstruct 4); B is left
                                                    out for a lot adopted from orphan shares

for example ``tqqq_grid:BUY:L4:A100.00`` and ``tqqq_grid:SELL:L3:P97.03:A100.00:B17``.

Prices are written exactly: two decimals when on the cent grid, otherwise every digit of the
Decimal (an average of partial fills can be 97.0333333...), never in exponent form. The
strategy id and the buy order id are percent-encoded (``urllib.parse.quote``) so that a ``:``,
``%`` or a space in them cannot break the format; ordinary ids (``tqqq_grid``, ``17``, a UUID)
are written as they are. Parsing gives back exactly what was formatted.
"""

from __future__ import annotations

import functools

import re
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote, unquote

from bothost.model import Side

ENTRY = "M"  # Level-0 BUY: derives from the market's last price
QUEUE = "A"  # queue BUY: derives from the anchor
SELL = "P"  # SELL: derives from the purchase price

_PRICE = re.compile(r"\d+(?:\.\d+)?")
_LEVEL = re.compile(r"L(0|[1-9]\d{0,5})")
_PLACED = re.compile(r"T(0|[1-9]\d{0,15})")


def format_price(value: Decimal) -> str:
    """Exact, plain notation: ``100.00``, ``97.0333333333``; at least two decimals."""
    try:
        text = _PRICE_TEXT.get(value)
    except TypeError:  # a signalling NaN cannot be hashed; _format_price refuses it
        text = None
    if text is not None:
        return text
    text = _format_price(value)
    if value > 0 and len(_PRICE_TEXT) < 65536:  # by value: equal Decimals print alike (not -0 and 0)
        _PRICE_TEXT[value] = text
    return text


_PRICE_TEXT: dict[Decimal, str] = {}  # a grid tags the same few hundred prices over and over


def _format_price(value: Decimal) -> str:
    if not value.is_finite() or value < 0:
        raise ValueError(f"a tag price must be finite and >= 0, got {value}")
    text = format(value, "f")
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(frac) < 2:
        frac = frac.ljust(2, "0")
    return f"{whole}.{frac}"


def _parse_price(text: str) -> Decimal | None:
    if not _PRICE.fullmatch(text):
        return None
    return Decimal(text)


@functools.lru_cache(maxsize=4096)
def _enc(text: str) -> str:
    return quote(text, safe="")


@dataclass(frozen=True, slots=True)
class Tag:
    strategy_id: str
    side: Side
    level: int
    kind: str  # ENTRY, QUEUE or SELL
    price: Decimal  # last (ENTRY), anchor (QUEUE) or purchase (SELL)
    anchor: Decimal | None = None  # SELL only: the anchor of the grid the lot belongs to
    buy_order_id: str | None = None  # SELL only: the BUY it protects (its broker's stable id)
    placed_ms: int | None = None  # ENTRY only: when it was placed, ms since the epoch (host clock)

    @property
    def placed_ns(self) -> int | None:
        return None if self.placed_ms is None else self.placed_ms * 1_000_000

    @property
    def is_entry(self) -> bool:
        return self.kind == ENTRY

    def render(self) -> str:
        return format_tag(self)


def format_tag(tag: Tag) -> str:
    parts = [_enc(tag.strategy_id), tag.side.value, f"L{tag.level}", f"{tag.kind}{format_price(tag.price)}"]
    if tag.anchor is not None:
        parts.append("A" + format_price(tag.anchor))
    if tag.buy_order_id:  # an empty id is no id
        parts.append("B" + _enc(tag.buy_order_id))
    if tag.placed_ms is not None:
        parts.append(f"T{tag.placed_ms}")
    return ":".join(parts)


def entry_tag(strategy_id: str, last: Decimal, placed_ns: int | None = None) -> str:
    placed_ms = None if placed_ns is None else placed_ns // 1_000_000
    return format_tag(Tag(strategy_id, Side.BUY, 0, ENTRY, last, placed_ms=placed_ms))


def queue_tag(strategy_id: str, level: int, anchor: Decimal) -> str:
    return format_tag(Tag(strategy_id, Side.BUY, level, QUEUE, anchor))


def sell_tag(strategy_id: str, level: int, purchase: Decimal, anchor: Decimal | None, buy_order_id: str | None) -> str:
    # format_tag's text for this Tag, without building the Tag (one per lot: on the fill path)
    text = f"{_enc(strategy_id)}:SELL:L{level}:{SELL}{format_price(purchase)}"
    if anchor is not None:
        text += ":A" + format_price(anchor)
    if buy_order_id:
        text += ":B" + _enc(buy_order_id)
    return text


def tag_prefix(strategy_id: str) -> str:
    """Every tag of ``strategy_id`` starts with this."""
    return _enc(strategy_id) + ":"


def owns(ref: str, strategy_id: str) -> bool:
    """Whether ``ref`` claims to be a tag of ``strategy_id`` (it may still be malformed)."""
    return ref.startswith(tag_prefix(strategy_id))


#: A lot's SELL tag with nothing percent-encoded in it: the one tag every report reads once per
#: lot (fills.csv of a long replay parses a million). A subset of what _parse_tag accepts, read
#: to the same Tag; anything else takes the general parser.
_PLAIN_SELL = re.compile(r"([^:% ]+):SELL:L(0|[1-9]\d{0,5}):P(\d+(?:\.\d+)?)(?::A(\d+(?:\.\d+)?))?(?::B([^:% ]+))?")


def parse_tag(ref: str) -> Tag | None:
    """The tag in ``ref``, or None when ``ref`` is not in this format (foreign or garbled)."""
    m = _PLAIN_SELL.fullmatch(ref)
    if m is not None:
        sid, level, price, anchor, buy_id = m.groups()
        return Tag(sid, Side.SELL, int(level), SELL, Decimal(price), None if anchor is None else Decimal(anchor),
                   buy_id, None)
    return _parse_tag(ref)


def _parse_tag(ref: str) -> Tag | None:
    """parse_tag's general case: every format, every encoding, every way a tag can be garbled."""
    if not ref or " " in ref:
        return None
    parts = ref.split(":")
    if len(parts) < 4 or len(parts) > 6:
        return None
    sid_raw, side_raw, level_raw, price_raw, *extras = parts
    if not sid_raw:
        return None
    try:
        side = Side(side_raw)
    except ValueError:
        return None
    if not _LEVEL.fullmatch(level_raw):
        return None
    level = int(level_raw[1:])
    kind = price_raw[:1]
    price = _parse_price(price_raw[1:])
    if price is None:
        return None
    anchor: Decimal | None = None
    buy_id: str | None = None
    placed_ms: int | None = None
    if side is Side.BUY:
        if kind == ENTRY and len(extras) == 1 and _PLACED.fullmatch(extras[0]):
            placed_ms = int(extras.pop()[1:])
        if kind not in (ENTRY, QUEUE) or extras or (kind == ENTRY and level != 0):
            return None
    else:
        if kind != SELL:
            return None
        rest = list(extras)
        if rest and rest[0].startswith("A"):
            anchor = _parse_price(rest.pop(0)[1:])
            if anchor is None:
                return None
        if rest and rest[0].startswith("B") and len(rest[0]) > 1:
            buy_id = unquote(rest.pop(0)[1:])
        if rest:
            return None
    return Tag(unquote(sid_raw), side, level, kind, price, anchor, buy_id, placed_ms)


def parse_own(ref: str, strategy_id: str) -> Tag | None:
    """The tag in ``ref`` if it is a well-formed tag of ``strategy_id``, else None."""
    if not owns(ref, strategy_id):
        return None
    tag = parse_tag(ref)
    if tag is None or tag.strategy_id != strategy_id:
        return None
    return tag
