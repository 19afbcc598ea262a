"""Reconstruct (spec tqqq-grid.md, "Reconstruct 1-6"): the broker's view -> the grid's book.

Pure: a :class:`~bothost.model.BrokerSnapshot` in, a :class:`ReconstructResult` out (the lots,
the anchor, the orders to keep, cancel and place, critical alerts and human-readable findings).
The plugin applies it; nothing here talks to a broker. One function per step of the spec,
called in the order the steps depend on each other (1, 2 tagged, 4, 3, 2 untagged, the live
BUYs, 5, 6), all writing their findings to one :class:`_Work`.

Identity: orders and executions are matched by their broker's stable id (IB's permId: order
ids are per client id and repeat across clients), falling back to the order id for a broker
that has none. Status: an order being cancelled (PENDING_CANCEL) is not live: a BUY of ours in
that state is waited for (its fills still count) and never cancelled again; a parked
(INACTIVE) order still is live (it may resume).

Which orders are ours: orders for ``params.symbol`` whose tag is a tag of ``strategy_id``, and
*untagged* orders for the symbol (the original bot tagged nothing: legacy). Orders with any other
tag (another strategy, the user's own) are never touched and never counted, except that the
broker's position is the account's, so their shares show up in the position check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from bothost.model import BrokerSnapshot, Fill, OpenOrder, OrderStatus, Side, realized_pnl

from .grid import derive_anchor, desired_queue, legacy_purchase, reconcile_queue, sell_price, trigger_chain
from .lots import LotMap
from .orders import queue_request, sell_request
from .params import TqqqGridConfig
from .records import AlertSpec, LiveBuy, Lot, PlannedOrder, ReconstructResult
from .tags import ENTRY, QUEUE, Tag, owns, parse_own

_RESET_COMMON = (
    "Leave the GTC SELL orders at the broker in place: they protect the lots.",
    "Run `bothost status` to see what reconstruct found.",
)


def _fmt(d: Decimal | None) -> str:
    return "-" if d is None else f"{d:f}"


def _nearest_free_level(price: Decimal, candidates: Iterable[int], triggers: tuple[Decimal, ...], taken) -> int | None:
    best = None
    for level in candidates:
        if level in taken or level >= len(triggers):
            continue
        key = (abs(triggers[level] - price), level)
        if best is None or key < best[0]:
            best = (key, level)
    return None if best is None else best[1]


@dataclass
class _Work:
    """Scratch space while reconstructing."""

    findings: list[str] = field(default_factory=list)
    alerts: list[AlertSpec] = field(default_factory=list)

    def note(self, line: str) -> None:
        self.findings.append(line)

    def alert(self, title: str, details: str, *steps: str) -> None:
        self.alerts.append(AlertSpec(title, details, tuple(steps) + _RESET_COMMON))
        self.findings.append(f"CRITICAL: {title}: {details}")


@dataclass
class _Seen:
    """Reconstruct 1: what the broker reported, sorted into what each later step needs."""

    tagged_sells: list[tuple[OpenOrder, Tag]] = field(default_factory=list)
    legacy_sells: list[OpenOrder] = field(default_factory=list)
    entry_buys: list[tuple[OpenOrder, Tag]] = field(default_factory=list)
    queue_buys: list[tuple[OpenOrder, Tag]] = field(default_factory=list)
    legacy_buys: list[OpenOrder] = field(default_factory=list)
    #: BUYs of ours the broker is cancelling (PENDING_CANCEL), with their tag when tagged
    cancelling: list[tuple[OpenOrder, Tag | None]] = field(default_factory=list)
    #: order ids and stable ids of every open order, live or being cancelled
    open_ids: set[str] = field(default_factory=set)
    our_execs: list[tuple[Fill, Tag]] = field(default_factory=list)
    position: int = 0
    foreign: int = 0
    client_id: int | None = None  # the client the snapshot was read by


def _once_each(orders: Iterable[OpenOrder], sym: str, w: _Work) -> list[OpenOrder]:
    """One entry per order (its stable id). A broker may list an order twice, a copy that
    changed while the list was being sent among them (TWS does): counted twice, its filled
    shares would make the position check fail. The copy with the most filled is the newer."""
    kept: dict[str, OpenOrder] = {}
    for o in orders:
        prev = kept.get(o.stable_id)
        if prev is not None:
            if prev.symbol == sym:
                w.note(f"note: the broker listed order {o.order_id} twice: counted once")
            if o.filled < prev.filled:
                continue
        kept[o.stable_id] = o
    return list(kept.values())


def _classify(snapshot: BrokerSnapshot, sym: str, strategy_id: str, w: _Work) -> _Seen:
    """Reconstruct 1: the open orders of every client id, the executions, the position."""
    seen = _Seen(client_id=snapshot.client_id)
    for o in _once_each(snapshot.open_orders, sym, w):
        if o.symbol != sym or o.remaining <= 0:
            continue
        seen.open_ids.add(o.order_id)
        seen.open_ids.add(o.stable_id)
        tag = None
        if o.ref:
            if not owns(o.ref, strategy_id):
                seen.foreign += 1
                continue
            tag = parse_own(o.ref, strategy_id)
            if tag is None or tag.side is not o.side:
                w.alert(
                    "unreadable order tag",
                    f"open {o.side.value} order {o.order_id} ({o.quantity} {sym} @ {_fmt(o.limit)}) has tag {o.ref!r}, "
                    f"which names this strategy but cannot be read",
                    f"Check order {o.order_id} in the broker's order list; cancel it by hand if it is not a grid order.",
                )
                continue
        if not o.live and o.side is Side.BUY:
            if o.status is OrderStatus.PENDING_CANCEL:
                seen.cancelling.append((o, tag))
            continue
        if not o.live:
            # A SELL being cancelled (not by the grid: it never cancels a SELL) still covers its
            # lot until the broker says Cancelled (it may yet fill): the lot is kept, never given
            # a second SELL; the Cancelled, when it comes, is the unprotected-lot alert (S1).
            w.note(f"warning: SELL {o.order_id} ({o.ref or 'untagged'}) is being cancelled at the broker "
                   f"(not by the bot): its lot is kept until the broker says how it ended")
        if tag is None:
            (seen.legacy_sells if o.side is Side.SELL else seen.legacy_buys).append(o)
        elif o.side is Side.SELL:
            seen.tagged_sells.append((o, tag))
        elif tag.kind == ENTRY:
            seen.entry_buys.append((o, tag))
        else:
            seen.queue_buys.append((o, tag))
        if o.status is OrderStatus.INACTIVE:
            w.note(f"note: {o.side.value} {o.order_id} ({o.ref or 'untagged'}) is Inactive at the broker: kept as it is")
    for e in snapshot.executions:
        if e.symbol != sym:
            continue
        tag = parse_own(e.ref, strategy_id) if e.ref else None
        if tag is not None:
            seen.our_execs.append((e, tag))
    seen.position = snapshot.position(sym)
    w.note(
        f"broker: {len(snapshot.open_orders)} open orders ({len(seen.tagged_sells)} tagged SELLs, "
        f"{len(seen.legacy_sells)} untagged SELLs, {len(seen.entry_buys) + len(seen.queue_buys)} tagged BUYs, "
        f"{len(seen.legacy_buys)} untagged BUYs, {len(seen.cancelling)} BUYs being cancelled for {sym}; "
        f"{seen.foreign} with other tags left alone), {len(snapshot.executions)} executions, position {seen.position}"
    )
    return seen


def _tagged_lots(seen: _Seen, params: TqqqGridConfig, n_levels: int, w: _Work) -> list[Lot]:
    """Reconstruct 2 (tagged): each open tagged SELL is a lot, exact from its tag."""
    lots: list[Lot] = []
    for o, tag in seen.tagged_sells:
        if tag.level >= n_levels:
            w.alert(
                "SELL for a level the lot map does not have",
                f"SELL {o.order_id} ({o.ref}) is for level {tag.level}; the lot map has levels 0..{n_levels - 1}",
                "Restore the lot map the bot ran with, or sell that lot by hand and cancel its SELL.",
            )
            continue
        if any(lot.level == tag.level for lot in lots):
            w.note(f"note: two tagged SELLs for level {tag.level} (kept both: tags name different BUYs)")
        lot = Lot(
            level=tag.level, quantity=o.remaining, purchase=tag.price, sell_price=o.limit,
            buy_order_id=tag.buy_order_id, sell_order_id=o.order_id, sell_ref=o.ref, sold=o.filled, origin="sell-tag",
            sell_inactive=o.status is OrderStatus.INACTIVE,
        )
        lots.append(lot)
        target = sell_price(tag.price, params.profit_target)
        extra = "" if o.limit == target else f" (its limit differs from today's target {_fmt(target)}; kept as is)"
        part = f", {o.filled} of {o.quantity} already sold (R4b)" if o.filled else ""
        w.note(f"lot L{lot.level}: {lot.quantity} sh bought @ {_fmt(lot.purchase)}, SELL {o.order_id} @ {_fmt(o.limit)}{part}{extra}")
    return lots


def _completed_buys(seen: _Seen, params: TqqqGridConfig, n_levels: int, w: _Work) -> tuple[list[Lot], dict, set]:
    """Reconstruct 4: BUYs of ours that completed with no SELL for them become lots whose SELL
    will be placed (R2); never a second SELL for a BUY (a SELL's tag names its BUY).
    Returns the new lots, the last execution of each BUY and the BUYs that have a SELL."""
    covered = {t.buy_order_id for _, t in seen.tagged_sells if t.buy_order_id}
    covered |= {t.buy_order_id for e, t in seen.our_execs if e.side is Side.SELL and t.buy_order_id}
    last_buy_exec: dict[str, tuple[Fill, Tag]] = {}
    for e, tag in seen.our_execs:
        if e.side is Side.BUY:
            prev = last_buy_exec.get(e.stable_id)
            if prev is None or e.order_filled >= prev[0].order_filled:
                last_buy_exec[e.stable_id] = (e, tag)
    new_lots: list[Lot] = []
    for buy_id, (e, tag) in last_buy_exec.items():
        if buy_id in seen.open_ids or e.order_id in seen.open_ids or buy_id in covered or e.order_filled <= 0:
            continue  # still working (R2 waits for completion), or already has its SELL
        if tag.level >= n_levels:
            w.alert("BUY for a level the lot map does not have",
                    f"BUY {buy_id} ({e.ref}) filled {e.order_filled} at level {tag.level}; the lot map has {n_levels} levels",
                    "Restore the lot map the bot ran with.")
            continue
        lot = Lot(
            level=tag.level, quantity=e.order_filled, purchase=e.order_avg_price,
            sell_price=sell_price(e.order_avg_price, params.profit_target), buy_order_id=buy_id, origin="execution",
        )
        new_lots.append(lot)
        w.note(
            f"BUY {buy_id} (L{tag.level}) filled {e.order_filled} @ {_fmt(e.order_avg_price)} and has no SELL: "
            f"lot L{tag.level} made, its SELL @ {_fmt(lot.sell_price)} will be placed (Reconstruct 4, R2)"
        )
    return new_lots, last_buy_exec, covered


def _anchor(seen: _Seen, lots: list[Lot], last_buy_exec: dict, covered: set, params: TqqqGridConfig,
            lot_map: LotMap, fallback_anchor: Decimal | None, w: _Work) -> tuple[Decimal | None, str]:
    """Reconstruct 3: from the Level-0 lot, else any tag, else bot_state.json, else derived
    from the deepest lot's purchase price and level."""
    pt = params.profit_target
    anchor: Decimal | None = None
    source = "none"
    l0 = [lot for lot in lots if lot.level == 0]
    legacy_l0 = [o for o in seen.legacy_sells if lot_map.levels_with_quantity(o.quantity) == (0,)]
    if l0:
        first = l0[0]
        what = f"SELL {first.sell_order_id}" if first.sell_order_id else f"BUY {first.buy_order_id}"
        anchor, source = first.purchase, f"Level-0 lot (purchase of {what})"
    elif legacy_l0:
        anchor, source = legacy_purchase(legacy_l0[0].limit, pt), f"Level-0 lot (untagged SELL {legacy_l0[0].order_id})"
    else:
        tag_anchors: list[tuple[Decimal, str]] = []
        for o, t in sorted(seen.tagged_sells, key=lambda p: p[1].level):
            if t.anchor is not None:
                tag_anchors.append((t.anchor, f"tag of SELL {o.order_id}"))
        for e, t in seen.our_execs:
            if e.side is Side.BUY and t.kind == QUEUE and e.stable_id in last_buy_exec and e.stable_id not in covered:
                tag_anchors.append((t.price, f"tag of BUY {e.order_id}"))
        for o, t in seen.queue_buys:
            tag_anchors.append((t.price, f"tag of BUY {o.order_id}"))
        if tag_anchors:
            anchor, source = tag_anchors[0]
            others = sorted({a for a, _ in tag_anchors if a != anchor})
            if others:
                w.note(f"note: tags name other anchors too ({', '.join(map(_fmt, others))}); using {_fmt(anchor)}")
        elif fallback_anchor is not None and (lots or seen.legacy_sells):
            anchor, source = fallback_anchor, "bot_state.json"
    # Untagged SELLs need the anchor; without one, derive it from the deepest lot whose level is known.
    if anchor is None and (lots or seen.legacy_sells):
        known = [(lot.level, lot.purchase) for lot in lots]
        for o in seen.legacy_sells:
            levels = lot_map.levels_with_quantity(o.quantity)
            if len(levels) == 1:
                known.append((levels[0], legacy_purchase(o.limit, pt)))
        if known:
            level, purchase = max(known, key=lambda k: k[0])
            anchor = derive_anchor(purchase, level, params.buy_step)
            source = f"derived from the deepest lot (L{level} bought @ {_fmt(purchase)})"
        else:
            w.alert(
                "cannot tell the levels of the untagged SELLs",
                "every untagged SELL has a quantity that several levels share, and no tag, Level-0 lot or "
                "bot_state.json gives the anchor",
                "Write the grid's anchor (the Level-0 fill price) as \"anchor\" in the state folder's bot_state.json, "
                "then restart.",
            )
    if anchor is not None:
        w.note(f"anchor {_fmt(anchor)} from {source}")
    return anchor, source


def _legacy_lots(seen: _Seen, lots: list[Lot], triggers: tuple[Decimal, ...], params: TqqqGridConfig,
                 lot_map: LotMap, sym: str, w: _Work) -> list[Lot]:
    """Reconstruct 2 (untagged): level by quantity, the free level whose trigger is nearest the
    purchase price, never two lots on one level."""
    if not seen.legacy_sells or not triggers:
        return []
    taken = {lot.level for lot in lots}
    pairs: list[tuple[Decimal, int, int]] = []
    purchases: list[Decimal] = []
    for i, o in enumerate(seen.legacy_sells):
        p = legacy_purchase(o.limit, params.profit_target)
        purchases.append(p)
        levels = lot_map.levels_with_quantity(o.quantity)
        if not levels:
            w.alert(
                "untagged SELL with a quantity that is in no level",
                f"SELL {o.order_id}: {o.quantity} {sym} @ {_fmt(o.limit)}; the lot map has no level of {o.quantity} shares",
                f"Decide by hand which lot SELL {o.order_id} protects; if it is not the bot's, "
                f"give it a tag of its own or move it to another account.",
            )
            continue
        pairs.extend((abs(triggers[level] - p), level, i) for level in levels)
    pairs.sort()
    assigned: dict[int, int] = {}
    for _, level, i in pairs:
        if i in assigned or level in taken:
            continue
        assigned[i] = level
        taken.add(level)
    out: list[Lot] = []
    for i, o in enumerate(seen.legacy_sells):
        if not lot_map.levels_with_quantity(o.quantity):
            continue
        if i not in assigned:
            w.alert(
                "more untagged SELLs than levels for their quantity",
                f"SELL {o.order_id} ({o.quantity} {sym} @ {_fmt(o.limit)}): every level of {o.quantity} shares "
                f"({', '.join(map(str, lot_map.levels_with_quantity(o.quantity)))}) already has a lot",
                f"Decide by hand which lot SELL {o.order_id} protects.",
            )
            continue
        level = assigned[i]
        lot = Lot(
            level=level, quantity=o.remaining, purchase=purchases[i], sell_price=o.limit,
            sell_order_id=o.order_id, sell_ref=o.ref, sold=o.filled, origin="sell-legacy",
            sell_inactive=o.status is OrderStatus.INACTIVE,
        )
        out.append(lot)
        if seen.client_id is not None and o.client_id is not None and o.client_id != seen.client_id:
            w.note(f"warning: untagged SELL {o.order_id} was placed by client {o.client_id}, and this bot is client "
                   f"{seen.client_id}: the broker reports its fills to client {o.client_id} only, so this lot is "
                   f"checked at each reconstruct, not as it sells. Run with client_id {o.client_id} (the original "
                   f"bot's), or make this client the master client (TWS API settings)")
        w.note(
            f"lot L{level}: {lot.quantity} sh bought @ {_fmt(lot.purchase)} (from untagged SELL {o.order_id} "
            f"@ {_fmt(o.limit)}; trigger {_fmt(triggers[level])} is the nearest free one)"
        )
    return out


def _live(o: OpenOrder, level: int | None, snapshot_ns: int, is_entry: bool = False, placed_ns: int | None = None) -> LiveBuy:
    return LiveBuy(
        order_id=o.order_id, level=level, quantity=o.quantity, price=o.limit, filled=o.filled,
        avg_price=o.avg_fill_price, ref=o.ref, is_entry=is_entry,
        placed_ns=o.placed_ns or placed_ns or snapshot_ns, perm_id=o.perm_id,
        inactive=o.status is OrderStatus.INACTIVE,
    )


def _entry_orders(seen: _Seen, snapshot_ns: int, w: _Work) -> tuple[LiveBuy | None, list[LiveBuy], list[LiveBuy]]:
    """R1 after a restart: the newest live Level-0 BUY is kept (its timeout runs on from when it
    was placed: the broker's time, else its tag's); never two (others are cancelled, or kept
    until they complete if partly filled). Returns (entry, kept, to cancel)."""
    entry: LiveBuy | None = None
    kept: list[LiveBuy] = []
    cancelled: list[LiveBuy] = []
    ordered = sorted(seen.entry_buys, key=lambda p: (p[0].placed_ns or p[1].placed_ns or 0, p[0].order_id), reverse=True)
    for o, t in ordered:
        if entry is None:
            entry = _live(o, 0, snapshot_ns, is_entry=True, placed_ns=t.placed_ns)
            w.note(f"Level-0 BUY {o.order_id} live ({o.filled}/{o.quantity} filled, placed at {entry.placed_ns}): kept (R1)")
        elif o.filled > 0:
            kept.append(_live(o, 0, snapshot_ns))
            w.note(f"second Level-0 BUY {o.order_id} is partially filled: kept until it completes (R3)")
        else:
            cancelled.append(_live(o, 0, snapshot_ns))
            w.note(f"second Level-0 BUY {o.order_id}: cancel (R1: never two)")
    return entry, kept, cancelled


def _position_check(seen: _Seen, snapshot: BrokerSnapshot, lots: list[Lot], new_lots: list[Lot],
                    anchor: Decimal | None, source: str, triggers: tuple[Decimal, ...],
                    params: TqqqGridConfig, n_levels: int, sym: str, w: _Work):
    """Reconstruct 5: broker position = lots + filled part of incomplete BUYs. More shares ->
    ``on_orphan_shares``; fewer, or short -> critical. Returns the (maybe new) anchor, its
    source and triggers: orphans adopted with nothing else held start a new grid."""
    partial_filled = (sum(o.filled for o, _ in seen.entry_buys + seen.queue_buys)
                      + sum(o.filled for o in seen.legacy_buys) + sum(o.filled for o, _ in seen.cancelling))
    held = sum(lot.quantity for lot in lots)
    expected = held + partial_filled
    position = seen.position
    w.note(f"position check (Reconstruct 5): broker {position} vs lots {held} + filled part of open BUYs {partial_filled}")
    if position < 0:
        w.alert("short position", f"the broker reports {position} {sym}: the grid never sells short",
                f"Close the short {sym} position by hand, then restart.")
    elif position < expected:
        w.alert(
            "fewer shares than the lots",
            f"the broker holds {position} {sym}; the lots and partly filled BUYs account for {expected}",
            "Someone sold shares outside the bot, or a SELL filled that the executions do not show.",
            "Cancel the SELLs whose shares are gone (or buy the shares back), then restart.",
        )
    elif position > expected:
        excess = position - expected
        if params.on_orphan_shares == "alert":
            w.alert(
                "orphan shares",
                f"the broker holds {position} {sym}; the lots and partly filled BUYs account for {expected}: "
                f"{excess} shares have no SELL",
                f"Sell the {excess} shares by hand, or place a GTC SELL for them, or set `on_orphan_shares: adopt` "
                f"to make them a lot at the position's average cost, then restart.",
            )
        else:
            avg = next((p.avg_cost for p in snapshot.positions if p.symbol == sym and p.sec_type == "STK"), None) or Decimal(0)
            level: int | None
            if not lots:  # nothing else held: the orphans start a new grid as its Level-0 lot
                anchor, source = avg, "adopted orphan shares (new Level-0 lot)"
                triggers = trigger_chain(anchor, params.buy_step, n_levels)
                level = 0
            else:
                level = _nearest_free_level(avg, range(n_levels), triggers, {lot.level for lot in lots})
            if level is None or avg <= 0:
                w.alert("orphan shares cannot be adopted",
                        f"{excess} {sym} have no SELL and no free level (or no average cost) to adopt them at",
                        f"Sell the {excess} shares by hand, then restart.")
            else:
                lot = Lot(level=level, quantity=excess, purchase=avg, sell_price=sell_price(avg, params.profit_target),
                          origin="adopted")
                lots.append(lot)
                new_lots.append(lot)
                w.note(f"adopted {excess} orphan shares as lot L{level} @ {_fmt(avg)} (on_orphan_shares: adopt); "
                       f"its SELL @ {_fmt(lot.sell_price)} will be placed")
    return anchor, source, triggers


def _queue(seen: _Seen, lots: list[Lot], triggers: tuple[Decimal, ...], lot_map: LotMap, params: TqqqGridConfig,
           snapshot_ns: int, w: _Work):
    """Reconstruct 6: R3 by difference against the live BUYs. Returns (desired, kept, to
    cancel, slots to place)."""
    deepest = max((lot.level for lot in lots), default=None)
    desired = desired_queue(deepest, triggers, lot_map, params.queue_depth) if triggers else ()
    slot_by_qp = {(s.quantity, s.price): s.level for s in desired}
    queue: list[LiveBuy] = [_live(o, t.level, snapshot_ns) for o, t in seen.queue_buys]
    for o in seen.legacy_buys:
        level = slot_by_qp.get((o.quantity, o.limit))
        if level is None and o.filled > 0 and triggers:
            level = _nearest_free_level(o.limit, lot_map.levels_with_quantity(o.quantity), triggers, set())
        queue.append(_live(o, level, snapshot_ns))
        w.note(f"untagged BUY {o.order_id} ({o.quantity} @ {_fmt(o.limit)}): level {level if level is not None else 'unknown'}")
    cancel_ids, place_slots = reconcile_queue(queue, desired)
    cancel_set = set(cancel_ids)
    kept = [b for b in queue if b.order_id not in cancel_set]
    cancelled = [b for b in queue if b.order_id in cancel_set]
    if desired:
        w.note("desired queue (R3): " + ", ".join(f"L{s.level} {s.quantity}@{_fmt(s.price)}" for s in desired))
    for b in kept:
        w.note(f"keep BUY {b.order_id} L{b.level} {b.quantity}@{_fmt(b.price)}" + (f" ({b.filled} filled)" if b.filled else ""))
    for b in cancelled:
        w.note(f"cancel BUY {b.order_id} L{b.level} {b.quantity}@{_fmt(b.price)}")
    return desired, kept, cancelled, place_slots


def reconstruct(
    snapshot: BrokerSnapshot,
    params: TqqqGridConfig,
    lot_map: LotMap,
    strategy_id: str,
    fallback_anchor: Decimal | None = None,
) -> ReconstructResult:
    """Reconstruct 1-6. See the module docstring for which orders count as ours."""
    w = _Work()
    sym = params.symbol
    n_levels = len(lot_map)
    seen = _classify(snapshot, sym, strategy_id, w)  # 1
    lots = _tagged_lots(seen, params, n_levels, w)  # 2, tagged
    new_lots, last_buy_exec, covered = _completed_buys(seen, params, n_levels, w)  # 4
    lots.extend(new_lots)
    anchor, source = _anchor(seen, lots, last_buy_exec, covered, params, lot_map, fallback_anchor, w)  # 3
    triggers = trigger_chain(anchor, params.buy_step, n_levels) if anchor is not None else ()
    lots.extend(_legacy_lots(seen, lots, triggers, params, lot_map, sym, w))  # 2, untagged
    entry, kept_entries, cancelled = _entry_orders(seen, snapshot.time_ns, w)  # R1
    # A Level-0 BUY being cancelled (R1's timeout) stays the entry: if it fills before the cancel
    # takes effect, its fill sets the anchor, as it would have in a bot that never stopped.
    cancel_pending = [_live(o, t.level if t is not None else None, snapshot.time_ns,
                            is_entry=t is not None and t.kind == ENTRY, placed_ns=t.placed_ns if t else None)
                      for o, t in seen.cancelling]
    for b in cancel_pending:
        w.note(f"BUY {b.order_id} ({b.ref or 'untagged'}) is being cancelled at the broker: waited for, "
               f"not cancelled again" + (f" ({b.filled} filled so far)" if b.filled else ""))
    anchor, source, triggers = _position_check(seen, snapshot, lots, new_lots, anchor, source, triggers,
                                               params, n_levels, sym, w)  # 5
    desired, kept, to_cancel, place_slots = _queue(seen, lots, triggers, lot_map, params, snapshot.time_ns, w)  # 6
    kept = kept_entries + kept
    cancelled = cancelled + to_cancel

    to_place: list[PlannedOrder] = []
    for lot in new_lots:
        req = sell_request(params, strategy_id, lot.level, lot.quantity, lot.sell_price, lot.purchase, anchor, lot.buy_order_id)
        lot.sell_ref = req.ref
        to_place.append(PlannedOrder(req, lot=lot))
    for slot in place_slots:
        to_place.append(PlannedOrder(queue_request(params, strategy_id, slot, anchor), slot=slot))  # type: ignore[arg-type]
        w.note(f"place BUY L{slot.level} {slot.quantity}@{_fmt(slot.price)}")

    if w.alerts:
        w.note("nothing placed or cancelled (S1): the broker's orders stay as they are")
        cancelled, to_place = [], []
    lots.sort(key=lambda lot: (lot.level, lot.sell_order_id or ""))
    return ReconstructResult(
        anchor=anchor, anchor_source=source, lots=tuple(lots), entry_order=entry, live_buys=tuple(kept),
        cancelled_buys=tuple(cancelled), to_place=tuple(to_place), alerts=tuple(w.alerts),
        findings=tuple(w.findings), desired=desired, position=seen.position, cancel_pending=tuple(cancel_pending),
    )


def sells_off_target(open_orders: Iterable[OpenOrder], params: TqqqGridConfig, strategy_id: str) -> list[str]:
    """Our resting SELLs whose limit is not ``profit_target`` above their lot's purchase (the
    tag's P): they were placed under another config. One line per SELL, saying both targets."""
    out = []
    for o in open_orders:
        if o.side is not Side.SELL or not o.live or o.limit is None:
            continue
        tag = parse_own(o.ref, strategy_id) if o.ref else None
        if tag is None or tag.side is not Side.SELL or tag.price <= 0:
            continue
        expected = sell_price(tag.price, params.profit_target)
        if o.limit != expected:
            placed_at = ((o.limit / tag.price - 1) * 100).quantize(Decimal("0.01"))
            out.append(f"SELL {o.order_id} (L{tag.level}, bought @ {_fmt(tag.price)}) rests at {_fmt(o.limit)}, "
                       f"+{placed_at}%; profit_target {(params.profit_target * 100).normalize():f}% would be {_fmt(expected)}")
    return out


def execution_pnl(
    executions: Iterable[Fill], strategy_id: str, symbol: str, after_ns: int, seen_at_after: Iterable[str] = ()
) -> tuple[Decimal, Decimal, int, frozenset[str], set[str]]:
    """Gross P&L and fees of our executions newer than ``after_ns`` (those at exactly
    ``after_ns`` count unless their exec id is in ``seen_at_after``).

    Used to catch up the book's P&L with fills it did not see (the bot was down or
    disconnected). Returns ``(gross, fees, last_ns, exec ids at last_ns, exec ids whose
    commission the broker has not reported yet)``.
    """
    seen = set(seen_at_after)
    gross = Decimal(0)
    fees = Decimal(0)
    unpriced: set[str] = set()
    last_ns = after_ns
    at_last = set(seen)
    for e in executions:
        if e.symbol != symbol or e.time_ns < after_ns or (e.time_ns == after_ns and e.exec_id in seen):
            continue
        tag = parse_own(e.ref, strategy_id) if e.ref else None
        if tag is None:
            continue
        if e.commission is None:
            unpriced.add(e.exec_id)
        else:
            fees += e.commission
        if e.side is Side.SELL:
            gross += realized_pnl(e.quantity, e.price, tag.price)
        if e.time_ns > last_ns:
            last_ns, at_last = e.time_ns, set()
        at_last.add(e.exec_id)
    return gross, fees, last_ns, frozenset(at_last), unpriced
