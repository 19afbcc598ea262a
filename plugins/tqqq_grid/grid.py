"""Pure grid arithmetic (spec tqqq-grid.md, "Prices" and R3). Decimal only, ROUND_HALF_UP."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import NamedTuple, Protocol

from bothost.model import round2

from .lots import LotMap

_ONE = Decimal(1)


def trigger_chain(anchor: Decimal, buy_step: Decimal, n_levels: int) -> tuple[Decimal, ...]:
    """Prices: ``T(0) = A``; ``T(n) = round2(T(n-1) x (1 - buy_step))``.

    Chained from the previous *rounded* trigger (100.00, 99.00, 98.01, 97.03, ...), never
    ``A x (1 - s)^n``. ``T(0)`` is the anchor itself, which may have sub-cent digits (the
    average of partial fills); every deeper trigger is on the cent grid.
    """
    if n_levels <= 0:
        return ()
    factor = _ONE - buy_step
    out = [anchor]
    t = anchor
    for _ in range(n_levels - 1):
        t = round2(t * factor)
        out.append(t)
    return tuple(out)


def sell_price(purchase: Decimal, profit_target: Decimal) -> Decimal:
    """Prices: SELL limit of a lot = ``round2(purchase x (1 + profit_target))``."""
    return round2(purchase * (_ONE + profit_target))


def l0_limit(last: Decimal, l0_buffer: Decimal) -> Decimal:
    """R1: Level-0 BUY limit = ``round2(last x (1 + l0_buffer))``."""
    return round2(last * (_ONE + l0_buffer))


def legacy_purchase(limit: Decimal, profit_target: Decimal) -> Decimal:
    """Reconstruct 2: purchase of an untagged SELL = ``round2(limit / (1 + profit_target))``."""
    return round2(limit / (_ONE + profit_target))


class QueueSlot(NamedTuple):
    """One BUY the R3 queue wants resting at the broker."""

    level: int
    quantity: int
    price: Decimal


def desired_queue(
    deepest_open_level: int | None, triggers: Sequence[Decimal], lot_map: LotMap, queue_depth: int
) -> tuple[QueueSlot, ...]:
    """R3: levels ``m+1 .. m+queue_depth`` (stopping at N-1), each ``shares(level)`` at ``T(level)``.

    No open lot (``m`` is None) wants no queue (R4: the queue is cancelled).
    """
    if deepest_open_level is None:
        return ()
    last = min(deepest_open_level + queue_depth, len(lot_map) - 1, len(triggers) - 1)
    shares = lot_map.shares
    return tuple(QueueSlot(level, shares[level], triggers[level]) for level in range(deepest_open_level + 1, last + 1))


class LiveBuyLike(Protocol):
    order_id: str
    level: int | None
    quantity: int
    price: Decimal
    filled: int


def reconcile_queue(
    live_buys: Iterable[LiveBuyLike], desired: Sequence[QueueSlot]
) -> tuple[tuple[str, ...], tuple[QueueSlot, ...]]:
    """R3 by difference: ``(order ids to cancel, slots to place)``.

    A live BUY that matches a desired slot on (level, quantity, price) is kept, one per slot;
    every other live BUY is cancelled, except a partially filled one, which is never cancelled
    (it is left to complete; when it matches a slot it fills that slot). Slots that no live BUY
    fills are placed, in the order of ``desired`` (shallowest level first).
    """
    wanted = set(desired)  # a QueueSlot is the tuple (level, quantity, price): it is its own key
    live = list(live_buys)
    taken: set[tuple] = set()
    for b in live:  # partially filled BUYs claim their slot first: they are kept in any case
        if b.filled > 0:
            key = (b.level, b.quantity, b.price)
            if key in wanted:
                taken.add(key)
    cancel: list[str] = []
    for b in live:
        if b.filled > 0:
            continue
        key = (b.level, b.quantity, b.price)
        if key in wanted and key not in taken:
            taken.add(key)
        else:
            cancel.append(b.order_id)
    place = tuple(s for s in desired if s not in taken)
    return tuple(cancel), place


def _trigger_at(anchor: Decimal, factor: Decimal, level: int) -> Decimal:
    t = anchor
    for _ in range(level):
        t = round2(t * factor)
    return t


def derive_anchor(purchase: Decimal, level: int, buy_step: Decimal) -> Decimal:
    """Reconstruct 3, last resort: an anchor (on the cent grid) whose chained trigger at
    ``level`` is ``purchase``, or the nearest to it when none is.

    ``T(level)`` is a non-decreasing function of the anchor (each chained ``round2`` is), so a
    binary search finds the anchors whose trigger is ``purchase``; among them the one nearest to
    the unrounded ``purchase / (1 - buy_step)^level`` is taken.
    """
    factor = Decimal(1) - buy_step
    ideal = purchase / factor**level
    if level == 0:
        return purchase
    cent = Decimal("0.01")
    # how far the chain's rounding can move the anchor: 0.005 per step, scaled back up
    span = int((Decimal("0.005") * level / factor**level) / cent) + 2
    base = round2(ideal)
    lo_k, hi_k = -span, span  # search k in [lo_k, hi_k] for the first anchor with T >= purchase
    if _trigger_at(base + hi_k * cent, factor, level) < purchase:
        return base
    while lo_k < hi_k:
        mid = (lo_k + hi_k) // 2
        if _trigger_at(base + mid * cent, factor, level) >= purchase:
            hi_k = mid
        else:
            lo_k = mid + 1
    first = base + lo_k * cent
    if _trigger_at(first, factor, level) != purchase:
        below = first - cent  # no anchor hits it: take the nearer of the two neighbours
        if abs(_trigger_at(below, factor, level) - purchase) <= abs(_trigger_at(first, factor, level) - purchase):
            return below
        return first
    # all anchors in [first, last] have T(level) == purchase; take the one nearest the ideal
    lo_k2, hi_k2 = lo_k, span
    while lo_k2 < hi_k2:  # last k with T == purchase
        mid = (lo_k2 + hi_k2 + 1) // 2
        if _trigger_at(base + mid * cent, factor, level) <= purchase:
            lo_k2 = mid
        else:
            hi_k2 = mid - 1
    last = base + lo_k2 * cent
    return min(max(base, first), last)
