"""The spec's invariants I1-I4 as one pure check (spec tqqq-grid.md, "Invariants").

Use after every event and after every restart::

    problems = check_invariants(strategy.book, snapshot.open_orders, snapshot.position(symbol))
    assert not problems, problems

``open_orders`` are the broker's open orders (any symbol, any client: only the book's symbol
and the strategy's own orders are looked at: those the book holds, those tagged with its
strategy id, and untagged ones for its symbol). ``position`` is the broker's position in the
book's symbol.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from bothost.model import OpenOrder, Side

from .book import Book
from .tags import owns, parse_own


def check_invariants(book: Book, open_orders: Iterable[OpenOrder], position: int) -> list[str]:
    """A list of broken invariants, one line each (empty when all hold)."""
    sid, sym = book.strategy_id, book.symbol
    ours: list[OpenOrder] = []
    for o in open_orders:
        if o.symbol != sym or o.remaining <= 0:
            continue
        if o.order_id in book.lots or o.order_id in book.buys or not o.ref or owns(o.ref, sid):
            ours.append(o)
    by_id = {o.order_id: o for o in ours}
    problems: list[str] = []

    # I1: every open lot has exactly one live SELL with its quantity and price.
    for sell_id, lot in book.lots.items():
        o = by_id.get(sell_id) if sell_id is not None else None
        if o is None or o.side is not Side.SELL:
            problems.append(f"I1: lot L{lot.level} ({lot.quantity} @ {lot.purchase}) has no live SELL (expected order {sell_id})")
            continue
        if o.remaining != lot.quantity:
            problems.append(f"I1: lot L{lot.level} holds {lot.quantity} but its SELL {sell_id} has {o.remaining} remaining")
        if o.limit != lot.sell_price:
            problems.append(f"I1: lot L{lot.level}'s SELL {sell_id} is @ {o.limit}, the lot says {lot.sell_price}")
    for o in ours:
        if o.side is Side.SELL and o.order_id not in book.lots:
            problems.append(f"I1: live SELL {o.order_id} ({o.remaining} @ {o.limit}, tag {o.ref!r}) belongs to no lot")

    # I2: live BUYs within the desired queue, the Level-0 order and partially filled BUYs.
    desired = {(s.level, s.quantity, s.price) for s in book.desired()}
    for o in ours:
        if o.side is not Side.BUY or o.order_id == book.entry_id or o.filled > 0:
            continue
        b = book.buys.get(o.order_id)
        if b is not None and b.cancel_requested:
            continue  # its cancel is in flight
        if b is not None:
            level = b.level
        else:
            tag = parse_own(o.ref, sid) if o.ref else None
            level = tag.level if tag is not None else None
        if (level, o.quantity, o.limit) not in desired:
            problems.append(
                f"I2: live BUY {o.order_id} (L{level} {o.quantity} @ {o.limit}) is not in the desired queue "
                f"{sorted((lv, q, str(p)) for lv, q, p in desired)}"
                + ("" if b is not None else " and the book does not hold it")
            )

    # I3: broker position = sum of open lots + filled part of incomplete BUYs.
    held = sum(lot.quantity for lot in book.lots.values())
    partial = sum(o.filled for o in ours if o.side is Side.BUY)
    if position != held + partial:
        problems.append(f"I3: broker position {position} != lots {held} + filled part of open BUYs {partial}")

    # I4: no two live orders share a tag.
    counts = Counter(o.ref for o in ours if o.ref)
    for ref, n in sorted(counts.items()):
        if n > 1:
            ids = [o.order_id for o in ours if o.ref == ref]
            problems.append(f"I4: {n} live orders share the tag {ref!r}: {', '.join(ids)}")
    return problems
