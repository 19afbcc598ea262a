"""The grid's runtime state machine: what the strategy holds and has working, event by event.

The hooks in ``plugin.py`` hand every event to a :class:`Book`; the book decides with the pure
functions of ``grid.py`` and acts through ``ctx.place`` / ``ctx.cancel``. One event at a time
(the engine never re-enters a hook), so no locks.

State, all small dicts:

* ``lots``: open lots by the order id of their SELL (R2, I1);
* ``buys``: every BUY of ours still working at the broker, by order id: the Level-0 entry
  (``entry_id``), the queue, partially filled BUYs, and BUYs whose cancel was asked for but not
  yet confirmed (their fills still count until the cancelled update arrives);
* the anchor and its trigger chain (computed once per anchor), realized P&L and fees.
"""

from __future__ import annotations

import logging
from operator import attrgetter
from decimal import Decimal
from typing import Any

from bothost.bounded import Recent
from bothost.errors import InputError
from bothost.model import (
    BrokerSnapshot,
    CommissionReport,
    Fill,
    OrderStatus,
    OrderUpdate,
    Side,
    Tick,
    realized_pnl,
)

from .grid import QueueSlot, desired_queue, l0_limit, reconcile_queue, sell_price, trigger_chain
from .lots import LotMap
from .orders import entry_request, queue_request, sell_request
from .params import TqqqGridConfig
from .reconstruct import ReconstructResult, execution_pnl, reconstruct, sells_off_target
from .records import LiveBuy, Lot
from .tags import format_price, queue_tag

STATE_VERSION = 1
#: how many executions (by exec id) and ended BUYs the book remembers, to recognise one
#: reported again or late (a bounded memory: a long run must not grow without end)
REMEMBER_EXECS = 16384
REMEMBER_ENDED = 4096
_ZERO = Decimal(0)
_LEVEL = attrgetter("level")


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        d = Decimal(str(value))
    except Exception:
        return None
    return d if d.is_finite() else None


class Book:
    def __init__(self, params: TqqqGridConfig, lot_map: LotMap, strategy_id: str, log: logging.Logger | None = None):
        self.params = params
        self.lot_map = lot_map
        self.strategy_id = strategy_id
        self.symbol = params.symbol
        self.log = log or logging.getLogger(f"bothost.strategy.{strategy_id}")
        self.timeout_ns = params.l0_timeout_ns
        self.anchor: Decimal | None = None
        self.triggers: tuple[Decimal, ...] = ()
        self._queue_refs: dict[int, str] = {}
        self._desired: dict[int, tuple[QueueSlot, ...]] = {}  # desired() by deepest level, for these triggers
        self._queue_requests: dict[QueueSlot, Any] = {}  # R3's OrderRequest per slot, for this anchor
        self.lots: dict[str, Lot] = {}
        self.buys: dict[str, LiveBuy] = {}
        self.entry_id: str | None = None
        self.gross_pnl = _ZERO
        self.fees = _ZERO
        self.pnl_ns = 0  # time of the newest execution booked into gross_pnl / fees
        self.pnl_ids: set[str] = set()  # exec ids booked at exactly pnl_ns
        #: executions booked before their commission was reported (IB: commissionReport comes
        #: after execDetails); the commission is added when it arrives, even after a restart
        self.fee_pending: set[str] = set()
        self.last_event_ns = 0
        self.halted = False
        self.reconstructed = False
        self.feed_down = False  # the feed said LOST (stale or away): no new Level-0 entry until RESTORED
        self._entry_cancel_tick_ns: int | None = None  # R1: no new entry on the tick that cancelled one
        self._entry_retry_ns = 0  # after a rejected entry, no new one before this
        self._deferred = False  # a queue slot waits for its tag to be free (I4)
        self._dirty = False
        self._every_tick: bool | None = None
        self._lot_cache: dict[str, tuple[tuple, dict]] = {}
        self._deepest: int | None = None  # cache of deepest_level(); reset whenever lots are added or removed
        #: executions already booked (the newest REMEMBER_EXECS): one delivered again (a broker
        #: replaying them after a reconnect, or reporting one twice) is ignored, also after its
        #: order has ended (hookspecs.on_fill: "an execution can be delivered twice")
        self._booked_execs = Recent(REMEMBER_EXECS)
        #: BUYs that ended, order id -> the filled quantity their lot was made of: IB may report
        #: an order's final status (Cancelled with a filled quantity) before the execution itself,
        #: and that execution then belongs to a lot already made
        self._ended_buys = Recent(REMEMBER_ENDED)

    # ------------------------------------------------------------------ derived views
    @property
    def realized_pnl(self) -> Decimal:
        """Gross P&L of every SELL fill (qty x (sell - purchase)) minus every commission paid."""
        return self.gross_pnl - self.fees

    @property
    def entry(self) -> LiveBuy | None:
        return self.buys.get(self.entry_id) if self.entry_id is not None else None

    def shares_held(self) -> int:
        return sum(lot.quantity for lot in self.lots.values())

    def deepest_level(self) -> int | None:
        """``m`` of R3: the deepest open level (cached until the set of lots changes)."""
        if not self.lots:
            return None
        m = self._deepest
        if m is None:
            m = self._deepest = max(map(_LEVEL, self.lots.values()))
        return m

    def desired(self) -> tuple[QueueSlot, ...]:
        """R3's desired queue for the lots held now (empty with no lot: R4)."""
        if not self.lots or not self.triggers:
            return ()
        m = self.deepest_level()
        queue = self._desired.get(m)
        if queue is None:  # a pure function of the deepest level while the triggers stay
            queue = self._desired[m] = desired_queue(m, self.triggers, self.lot_map, self.params.queue_depth)
        return queue

    def set_anchor(self, anchor: Decimal | None) -> None:
        if anchor == self.anchor and (anchor is None or self.triggers):
            return
        self.anchor = anchor
        self.triggers = trigger_chain(anchor, self.params.buy_step, len(self.lot_map)) if anchor is not None else ()
        self._queue_refs = {}
        self._desired = {}
        self._queue_requests = {}

    def _queue_ref(self, level: int) -> str:
        ref = self._queue_refs.get(level)
        if ref is None:
            ref = self._queue_refs[level] = queue_tag(self.strategy_id, level, self.anchor)  # type: ignore[arg-type]
        return ref

    # ------------------------------------------------------------------ reconstruct
    def apply_reconstruct(self, ctx, snapshot: BrokerSnapshot, state: dict | None) -> ReconstructResult:
        """Reconstruct 1-6 against ``snapshot``, then act on it (or raise the S1 alert)."""
        if not isinstance(state, dict) or state.get("strategy_id", self.strategy_id) != self.strategy_id:
            state = None  # not this strategy's backup
        off = sells_off_target(snapshot.open_orders, self.params, self.strategy_id)
        if off:
            # The config changed under SELLs that are resting at the broker: acting on it would
            # leave two targets in one grid. Refused before anything is placed (exit 2).
            raise InputError(
                f"{self.strategy_id}: the broker's resting SELLs were placed with another profit_target:\n    "
                + "\n    ".join(off[:10]) + (f"\n    ... and {len(off) - 10} more" if len(off) > 10 else ""),
                hint="put profit_target back to what those SELLs were placed with; or re-price them at the broker "
                     "to the new target, keeping each order's order_ref (its tag), then start again")
        fallback = _dec(state.get("anchor")) if state else None
        result = reconstruct(snapshot, self.params, self.lot_map, self.strategy_id, fallback)
        ctx.record("reconstruct", list(result.findings))
        if not result.ok:
            self.halted = True
            first = result.alerts[0]
            details = first.details
            if len(result.alerts) > 1:
                details += "\nAlso:\n" + "\n".join(f"- {a.title}: {a.details}" for a in result.alerts[1:])
            self.log.critical("reconstruct failed: %s", "; ".join(a.title for a in result.alerts))
            ctx.alert(f"{self.strategy_id}: reconstruct: {first.title}", details, list(first.reset_steps))
            return result  # pragma: no cover - ctx.alert does not return

        if not self.reconstructed and state:
            # P&L lives only here (the broker has no notion of it): start from the backup
            self.gross_pnl = _dec(state.get("gross_pnl")) or _ZERO
            self.fees = _dec(state.get("fees")) or _ZERO
            self.pnl_ns = int(state.get("pnl_ns") or 0)
            self.pnl_ids = set(state.get("pnl_exec_ids") or ())
            self.fee_pending = set(state.get("fee_pending") or ())
            self.last_event_ns = int(state.get("last_event_ns") or 0)
        if self.fee_pending:  # commissions that arrived while the bot was not listening
            for e in snapshot.executions:
                if e.exec_id in self.fee_pending and e.commission is not None:
                    self.fees += e.commission
                    self.fee_pending.discard(e.exec_id)
        gross, fees, last_ns, ids, unpriced = execution_pnl(snapshot.executions, self.strategy_id, self.symbol,
                                                            self.pnl_ns, self.pnl_ids)
        if gross or fees or last_ns != self.pnl_ns:
            self.gross_pnl += gross
            self.fees += fees
            self.pnl_ns, self.pnl_ids = last_ns, set(ids)
        self.fee_pending |= unpriced
        # Reconstruct accounted for every execution in the snapshot: one reported again later
        # (a broker replaying executions after the reconnect) is not a new fill.
        self._remember_execs(e.exec_id for e in tuple(snapshot.executions)[-REMEMBER_EXECS:])
        self.reconstructed = True

        self.set_anchor(result.anchor)
        self._lot_cache = {}
        self._deepest = None
        self.lots = {}
        self.buys = {}
        self.entry_id = None
        self._deferred = False
        self._entry_cancel_tick_ns = None
        for b in result.live_buys:
            self.buys[b.order_id] = b
        if result.entry_order is not None:
            e = result.entry_order
            self.buys[e.order_id] = e
            self.entry_id = e.order_id
            ctx.wake_at(e.placed_ns + self.timeout_ns)
        for b in result.cancel_pending:
            b.cancel_requested = True  # already being cancelled: not asked again
            self.buys[b.order_id] = b
            if b.is_entry and self.entry_id is None:
                self.entry_id = b.order_id  # R1: no new entry until its Cancelled arrives
        for b in result.cancelled_buys:
            b.cancel_requested = True
            self.buys[b.order_id] = b
            ctx.cancel(b.order_id)
        for lot in result.lots:
            if lot.sell_order_id is not None:
                self.lots[lot.sell_order_id] = lot
        worn = {b.ref for b in self.buys.values()}  # I4, as in _reconcile
        now = ctx.now_ns
        for planned in result.to_place:
            req = planned.request
            if planned.lot is not None:
                oid = ctx.place(req)
                planned.lot.sell_order_id = oid
                self.lots[oid] = planned.lot
                self._deepest = None
            elif planned.slot is not None:
                if req.ref in worn:
                    self._deferred = True
                    continue
                oid = ctx.place(req)
                s = planned.slot
                self.buys[oid] = LiveBuy(oid, s.level, s.quantity, s.price, ref=req.ref, placed_ns=now)
        self.last_event_ns = max(self.last_event_ns, snapshot.time_ns)
        self._dirty = True
        self.flush(ctx)
        return result

    # ------------------------------------------------------------------ ticks (R1)
    def on_tick(self, ctx, tick: Tick) -> None:
        if self.halted:
            return
        if self.entry_id is None:
            if self.lots:
                return  # the common case: nothing to do on a tick
            if (
                not self.feed_down
                and tick.price > 0  # S3 (the engine drops bad ticks already)
                and tick.symbol == self.symbol
                and (self._entry_cancel_tick_ns is None or tick.time_ns > self._entry_cancel_tick_ns)
                and tick.time_ns >= self._entry_retry_ns
            ):
                self._place_entry(ctx, tick)
        else:
            entry = self.buys[self.entry_id]
            if not entry.cancel_requested and tick.time_ns >= entry.placed_ns + self.timeout_ns:
                # R1 timeout, checked after this tick's matching: still not (completely) filled.
                # A partially filled entry is cancelled too; its cancellation completes it (R2).
                entry.cancel_requested = True
                self._entry_cancel_tick_ns = tick.time_ns
                self.log.info("Level-0 BUY %s unfilled after %ss: cancelling (R1)", entry.order_id, self.timeout_ns / 1e9)
                ctx.cancel(entry.order_id)
        self._sync_ticks(ctx)

    def on_connection(self, ctx, event) -> None:
        """A feed that went stale or away holds new Level-0 entries: a first price after a gap
        in the data is not a price to enter at blind. The broker's LOST is the engine's (it holds
        everything); RESTORED is followed by a reconstruct."""
        if event.origin == "feed":
            down = event.state.value == "lost"
            if down != self.feed_down:
                self.feed_down = down
                self.log.warning("%s: new Level-0 entries %s", event.source, "held" if down else "allowed again")
                self._sync_ticks(ctx)

    def _place_entry(self, ctx, tick: Tick) -> None:
        last = ctx.price(tick.price)  # the tick's units of the instrument's increment (TQQQ: cents)
        limit = l0_limit(last, self.params.l0_buffer)
        qty = self.lot_map.shares[0]
        req = entry_request(self.params, self.strategy_id, qty, limit, last, tick.time_ns)
        oid = ctx.place(req)
        self.buys[oid] = LiveBuy(oid, 0, qty, limit, ref=req.ref, is_entry=True, placed_ns=tick.time_ns)
        self.entry_id = oid
        self._entry_cancel_tick_ns = None
        ctx.wake_at(tick.time_ns + self.timeout_ns)
        self.log.info("Level-0 BUY %s: %d @ %s (last %s) (R1)", oid, qty, limit, last)

    # ------------------------------------------------------------------ fills (R2, R3, R4)
    def on_fill(self, ctx, fill: Fill) -> None:
        if self.halted:
            return
        if fill.exec_id in self._booked_execs:
            self.log.warning("duplicate execution %s of %s %s ignored (reported again)", fill.exec_id,
                             fill.side.value, fill.order_id)
            return
        self.last_event_ns = fill.time_ns
        if fill.side is Side.BUY:
            b = self.buys.get(fill.order_id)
            if b is None:
                if not self._late_exec_of_ended_buy(ctx, fill):
                    self._unknown_fill(ctx, fill)
                return
            if fill.order_filled <= b.filled:
                self.log.warning("duplicate execution %s of BUY %s ignored", fill.exec_id, fill.order_id)
                return
            self._book_exec(fill)
            b.filled = fill.order_filled
            b.avg_price = fill.order_avg_price
            if fill.perm_id:
                b.perm_id = fill.perm_id
            if fill.order_complete:
                self._complete_buy(ctx, b)
        else:
            lot = self.lots.get(fill.order_id)
            if lot is None:
                self._unknown_fill(ctx, fill)
                return
            if fill.order_filled <= lot.sold:
                self.log.warning("duplicate execution %s of SELL %s ignored", fill.exec_id, fill.order_id)
                return
            self._book_exec(fill)
            self.gross_pnl += realized_pnl(fill.quantity, fill.price, lot.purchase)  # R4b: P&L for what filled
            lot.sold = fill.order_filled
            lot.quantity = fill.order_quantity - fill.order_filled
            if lot.quantity <= 0:  # R4: the SELL completed, the lot is closed
                del self.lots[fill.order_id]
                if lot.level == self._deepest:
                    self._deepest = None  # recomputed when next asked; otherwise the deepest stays
                self.log.info("lot L%d closed by SELL %s @ %s", lot.level, fill.order_id, fill.price)
        self._reconcile(ctx)  # R3 after every fill; with no lot left this cancels the queue (R4)
        self._dirty = True
        self.flush(ctx)

    def _late_exec_of_ended_buy(self, ctx, fill: Fill) -> bool:
        """An execution of a BUY whose final status came first (its lot was made from the
        status's filled quantity): only its commission is left to book. False if it is not one."""
        made_of = self._ended_buys.get(fill.order_id)
        if made_of is None or fill.order_filled > made_of:
            return False  # shares the book never counted: the caller halts (I3)
        self._book_exec(fill)
        self.log.info("execution %s of BUY %s came after the order's final status: its lot was made already",
                      fill.exec_id, fill.order_id)
        self._dirty = True
        self.flush(ctx)
        return True

    def _remember_execs(self, exec_ids) -> None:
        for exec_id in exec_ids:
            self._booked_execs.remember(exec_id)

    def _book_exec(self, fill: Fill) -> None:
        self._booked_execs.remember(fill.exec_id)
        if fill.commission is None:
            self.fee_pending.add(fill.exec_id)  # booked when its CommissionReport arrives
        else:
            self.fees += fill.commission
        if fill.time_ns > self.pnl_ns:
            self.pnl_ns = fill.time_ns
            self.pnl_ids = {fill.exec_id}
        else:
            self.pnl_ids.add(fill.exec_id)

    def on_commission(self, ctx, report: CommissionReport) -> None:
        """A commission reported after its fill (IB): the fees include it from now on."""
        if report.exec_id not in self.fee_pending:
            return  # already booked (reported twice, or it came with the fill)
        self.fee_pending.discard(report.exec_id)
        self.fees += report.commission
        self._dirty = True
        self.flush(ctx)

    def _complete_buy(self, ctx, b: LiveBuy) -> None:
        """R2: a complete BUY (fully filled, or cancelled after a partial fill) becomes one lot
        with its filled quantity at its average price, and its SELL is placed at once."""
        self.buys.pop(b.order_id, None)
        if b.order_id == self.entry_id:
            self.entry_id = None
        if b.filled <= 0:
            return
        self._ended_buys.remember(b.order_id, b.filled)
        purchase = b.avg_price if b.avg_price is not None else b.price
        if b.is_entry:
            if self.lots:
                self.log.warning("Level-0 BUY %s completed while lots are open: the anchor moves", b.order_id)
            self.set_anchor(purchase)  # R2: the Level-0 fill sets A and the trigger chain
        if b.level is None:
            self._halt(ctx, "a BUY of unknown level filled",
                       f"BUY {b.order_id} ({b.quantity} {self.symbol} @ {b.price}, untagged) filled {b.filled} "
                       f"@ {purchase}; the grid cannot tell which level it is",
                       [f"Place a GTC SELL for those {b.filled} shares by hand, or set on_orphan_shares: adopt, then restart."])
            return
        limit = sell_price(purchase, self.params.profit_target)
        # The SELL's tag names the BUY by its stable id (IB permId): order ids repeat across clients.
        buy_id = b.stable_id
        req = sell_request(self.params, self.strategy_id, b.level, b.filled, limit, purchase, self.anchor, buy_id)  # type: ignore[arg-type]
        oid = ctx.place(req)
        self.lots[oid] = Lot(b.level, b.filled, purchase, limit, buy_id, oid, req.ref, origin="buy")  # type: ignore[arg-type]
        if self._deepest is not None and b.level > self._deepest:
            self._deepest = b.level  # type: ignore[assignment]
        self.log.info("lot L%s: %d @ %s from BUY %s; SELL %s @ %s (R2)", b.level, b.filled, purchase, b.order_id, oid, limit)
        if b.level == len(self.lot_map) - 1:
            # Every level is bought: below here the grid buys nothing more, however far the
            # price falls, and the whole position rides it down. The trader must know.
            ctx.warn(f"{self.strategy_id}: out of lot map levels",
                     f"all {len(self.lot_map)} levels are bought (L{b.level} filled {b.filled} {self.symbol} @ {purchase}); "
                     f"no BUY is placed below {purchase} until a SELL fills. Holding {self.shares_held()} shares.")

    def _reconcile(self, ctx) -> None:
        """R3 by difference: keep matching BUYs, cancel the rest (never a partially filled one),
        place what is missing."""
        desired = self.desired()
        live = [b for b in self.buys.values() if not b.is_entry and not b.cancel_requested]
        if not desired and not live:
            return
        cancel, place = reconcile_queue(live, desired)
        for oid in cancel:
            self.buys[oid].cancel_requested = True
            ctx.cancel(oid)
        if place:
            # I4: a tag still worn by a live order (one being cancelled, or a partially filled
            # BUY that no longer matches its slot) is reused only once that order is gone
            worn = {b.ref for b in self.buys.values()}
            now = ctx.now_ns
            for slot in place:
                ref = self._queue_ref(slot.level)
                if ref in worn:
                    self._deferred = True
                    continue
                req = self._queue_requests.get(slot)
                if req is None:  # the same few requests over and over while the anchor stays (frozen: shareable)
                    req = self._queue_requests[slot] = queue_request(self.params, self.strategy_id, slot, self.anchor, ref)  # type: ignore[arg-type]
                oid = ctx.place(req)
                self.buys[oid] = LiveBuy(oid, slot.level, slot.quantity, slot.price, ref=ref, placed_ns=now)

    # ------------------------------------------------------------------ order updates
    def on_update(self, ctx, update: OrderUpdate) -> None:
        if self.halted:
            return
        status = update.status
        if status is OrderStatus.FILLED:  # the common case: its fills were booked already
            self._sync_ticks(ctx)
            return
        if status is OrderStatus.INACTIVE:
            self._inactive(ctx, update)
        elif status is OrderStatus.PENDING_CANCEL:
            b = self.buys.get(update.order_id)
            if b is not None and not b.cancel_requested:
                self.log.warning("BUY %s (%s) is being cancelled outside the bot", b.order_id, b.ref)
                b.cancel_requested = True  # its fills still count until the broker confirms
            elif update.order_id in self.lots:
                self.log.warning("SELL %s of lot L%d is being cancelled outside the bot", update.order_id,
                                 self.lots[update.order_id].level)
        elif status is OrderStatus.SUBMITTED or status is OrderStatus.PRE_SUBMITTED:
            b = self.buys.get(update.order_id)
            if b is not None and b.inactive:
                b.inactive = False
                self.log.info("BUY %s (%s) is working again", b.order_id, b.ref)
            elif update.order_id in self.lots and self.lots[update.order_id].sell_inactive:
                self.lots[update.order_id].sell_inactive = False
                self.log.info("SELL %s is working again", update.order_id)
        if status is OrderStatus.CANCELLED or status is OrderStatus.REJECTED:
            self.last_event_ns = max(self.last_event_ns, update.time_ns)
            b = self.buys.get(update.order_id)
            if b is not None:
                self._buy_gone(ctx, b, update)
            elif update.order_id in self.lots:
                lot = self.lots[update.order_id]
                what = "rejected" if status is OrderStatus.REJECTED else "cancelled"
                self._dirty = True
                self.flush(ctx)
                self._halt(
                    ctx, f"SELL {what}: lot L{lot.level} is unprotected",
                    f"SELL {update.order_id} ({lot.quantity} {self.symbol} @ {lot.sell_price}, tag {lot.sell_ref}) "
                    f"was {what}" + (f": {update.message}" if update.message else ""),
                    [f"Place a GTC SELL of {lot.quantity} {self.symbol} @ {lot.sell_price} with order ref "
                     f"{lot.sell_ref} by hand (or sell the shares), then restart: reconstruct picks it up."],
                )
        self._sync_ticks(ctx)

    def _inactive(self, ctx, update: OrderUpdate) -> None:
        """IB parks an order it cannot work right now as Inactive (an exchange or margin check,
        hours the exchange does not accept). It may resume; it may stay parked. The grid keeps
        it: a parked SELL is still the lot's one SELL (a second one would sell the lot twice if
        the first resumed), a parked BUY keeps its queue slot (its tag stays taken, I4). Nothing
        halts; the log and ``bothost status`` say so, and a cancel by the broker later is
        handled as any cancel (a cancelled SELL is the unprotected-lot alert)."""
        why = update.message or "no reason given"
        lot = self.lots.get(update.order_id)
        b = self.buys.get(update.order_id)
        if lot is not None and not lot.sell_inactive:
            lot.sell_inactive = True
            self.log.warning("SELL %s of lot L%d (%d @ %s) is Inactive at the broker (%s): kept as the lot's SELL; "
                             "check it in TWS if it stays so", update.order_id, lot.level, lot.quantity, lot.sell_price, why)
        elif b is not None and not b.inactive:
            b.inactive = True
            self.log.warning("BUY %s (%s) is Inactive at the broker (%s): kept in its slot", b.order_id, b.ref, why)
        self._dirty = True
        self.flush(ctx)

    def _buy_gone(self, ctx, b: LiveBuy, update: OrderUpdate) -> None:
        """A BUY was cancelled (by us or not) or rejected: it leaves the book; with a partial
        fill it is complete (R2)."""
        requested = b.cancel_requested
        if update.filled > b.filled:
            self.log.warning("BUY %s ended with %d filled but only %d were reported as fills", b.order_id, update.filled, b.filled)
            b.filled = update.filled
            b.avg_price = update.avg_fill_price if update.avg_fill_price is not None else b.avg_price
        if update.status is OrderStatus.REJECTED:
            why = update.message or "no reason given"
            self.log.warning("BUY %s (%s) rejected: %s; left out of the book", b.order_id, b.ref, why)
            if b.is_entry:
                self._entry_retry_ns = update.time_ns + self.timeout_ns
            # A broker that keeps refusing (margin, permissions, a price band) leaves the grid
            # without the levels it is configured to hold, and the re-placements fail quietly
            # in the log: the trader is told (once, then at most hourly live; counted).
            then = (f"a new Level-0 BUY is tried after {self.timeout_ns // 1_000_000_000} s" if b.is_entry
                    else "the grid places that level again after its next fill")
            ctx.warn(f"{self.strategy_id}: BUY rejected by the broker",
                     f"BUY {b.order_id} (L{b.level}, {b.quantity} {self.symbol} @ {b.price}, tag {b.ref}) was "
                     f"rejected: {why}; {then}. If it keeps happening, check the account (buying power, "
                     f"trading permissions) and the order at the broker.")
        elif not requested:
            self.log.warning("BUY %s (%s) was cancelled outside the bot", b.order_id, b.ref)
        if b.filled > 0:
            self._complete_buy(ctx, b)  # R2: cancelled after a partial fill
            self._reconcile(ctx)
            self._dirty = True
            self.flush(ctx)
            return
        self.buys.pop(b.order_id, None)
        if b.order_id == self.entry_id:
            self.entry_id = None
        if self._deferred:  # its tag is free again: place what waited for it (R3)
            self._deferred = False
            self._reconcile(ctx)

    def _unknown_fill(self, ctx, fill: Fill) -> None:
        self._halt(
            ctx, "execution of an order the grid does not hold",
            f"{fill.side.value} execution {fill.exec_id} of order {fill.order_id}: {fill.quantity} {fill.symbol} "
            f"@ {fill.price} (tag {fill.ref!r}) matches no lot and no working BUY; the position no longer "
            f"matches the lots (I3)",
            ["Restart: reconstruct rebuilds the lots from the broker and checks the position."],
        )

    def _halt(self, ctx, title: str, details: str, steps: list[str]) -> None:
        self.halted = True
        self.log.critical("%s: %s", title, details)
        ctx.alert(f"{self.strategy_id}: {title}", details, steps)

    # ------------------------------------------------------------------ output
    def _sync_ticks(self, ctx) -> None:
        """R1 needs every tick while it may place an entry; otherwise only crossing ticks and
        the wake-ups it asked for (the entry's timeout)."""
        want = not self.halted and not self.lots and self.entry_id is None
        if want is not self._every_tick:
            self._every_tick = want
            ctx.want_every_tick(want)

    def _lot_dicts(self) -> list[dict]:
        """The lots as plain dicts, by level; cached per lot (a lot only changes its quantity),
        so that saving after every fill stays cheap with many lots open."""
        cache = self._lot_cache
        out = []
        for sell_id, lot in self.lots.items():
            hit = cache.get(sell_id)
            key = (lot.quantity, lot.sell_inactive)
            if hit is None or hit[0] != key:
                hit = cache[sell_id] = (key, lot.as_dict())
            out.append(hit[1])
        if len(cache) > len(self.lots):
            for sell_id in [k for k in cache if k not in self.lots]:
                del cache[sell_id]
        out.sort(key=lambda d: (d["level"], d["sell_order_id"] or ""))
        return out

    def state(self, lots: list[dict] | None = None) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "strategy_id": self.strategy_id,
            "symbol": self.symbol,
            "anchor": None if self.anchor is None else format_price(self.anchor),
            "lots": self._lot_dicts() if lots is None else lots,
            "gross_pnl": str(self.gross_pnl),
            "fees": str(self.fees),
            "realized_pnl": str(self.realized_pnl),
            "pnl_ns": self.pnl_ns,
            "pnl_exec_ids": sorted(self.pnl_ids),
            "fee_pending": sorted(self.fee_pending),
            "last_event_ns": self.last_event_ns,
        }

    def view(self, lots: list[dict] | None = None) -> dict[str, Any]:
        """What ``bothost status`` shows (published with ``ctx.record("book", ...)``)."""
        lots = self._lot_dicts() if lots is None else lots
        entry = self.entry
        return {
            "symbol": self.symbol,
            "anchor": None if self.anchor is None else format_price(self.anchor),
            "lots": lots,
            "open_lots": len(lots),
            "shares": sum(d["quantity"] for d in lots),
            "deepest_level": self.deepest_level(),
            # The grid's shape, so a reader (`bothost serve`, report.html) can draw the trigger
            # ladder from the anchor: T(k) = round2(T(k-1) x (1 - buy_step)), k < levels.
            "grid": {"buy_step": str(self.params.buy_step), "profit_target": str(self.params.profit_target),
                     "queue_depth": self.params.queue_depth, "levels": len(self.lot_map)},
            "queue": [
                {"order_id": b.order_id, "level": b.level, "quantity": b.quantity, "price": format_price(b.price),
                 "filled": b.filled, **({"inactive": True} if b.inactive else {})}
                for b in sorted(self.buys.values(), key=lambda x: (x.level if x.level is not None else -1, x.order_id))
                if not b.is_entry
            ],
            "entry": None if entry is None else {
                "order_id": entry.order_id, "quantity": entry.quantity, "price": format_price(entry.price),
                "filled": entry.filled, "placed_ns": entry.placed_ns,
            },
            # Named as in summary.json: realized is gross (qty x (sell - purchase)), net is after fees.
            "realized_pnl": str(self.gross_pnl),
            "fees": str(self.fees),
            "net_realized_pnl": str(self.realized_pnl),
            "last_event_ns": self.last_event_ns,
        }

    def save(self, ctx) -> None:
        """Save and publish now, changed or not (on_stop). Never before a reconstruct: an empty
        book would overwrite the backup (anchor, P&L) that the next start falls back on."""
        if not self.reconstructed:
            return
        self._dirty = True
        self.flush(ctx)

    def flush(self, ctx) -> None:
        """Once per event: the backup state and the status view, if anything changed."""
        self._sync_ticks(ctx)
        if not self._dirty:
            return
        self._dirty = False
        # Handed over as callables: the host builds them only when it writes (every event live,
        # every checkpoint in a replay), so a replay with many fills does not pay per fill.
        ctx.save_state(self.state)
        ctx.record("book", self.view)
