"""The simulated exchange: an order book matched against ticks, by the rules of sim-venue.md.

Pure in-memory state and logic; persistence lives in ``store.py`` and the broker adapter in
``plugin.py``. Prices are integers: units of each symbol's price increment (cents unless its
instrument declares another; see :class:`bothost.model.Instrument`); Decimal appears only where
values leave the venue (fills and snapshots). A limit that is not a whole number of increments
is rejected, as a real exchange rejects a price off its tick size. ``cash`` counts units too: it
is exact in money for a venue whose symbols share one increment (every replay: one symbol).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from bothost.hookspecs import BrokerUnavailable
from bothost.model import (
    CENT,
    CommissionReport,
    Fill,
    OpenOrder,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Side,
    exact_units,
    units_to_price,
)

NO_SELL = 1 << 62  # quiet_band's "hi" with no SELL resting
#: quiet_band when the next tick must be handled whatever its price (acks or cancels are due)
BUSY_BAND = (NO_SELL, NO_SELL)
AVG_QUANTUM = Decimal("0.000001")  # average fill prices of split fills are kept to 1e-6 dollars

BUY, SELL = Side.BUY, Side.SELL
LIT = OrderType.LIMIT_IF_TOUCHED


class SimOrder:
    """A working order. Mutable: the venue is its only writer."""

    __slots__ = (
        "id", "seq", "symbol", "side", "quantity", "filled", "limit", "aux", "order_type", "ref",
        "placed_ns", "status", "triggered", "fresh", "value", "tif", "outside_rth", "increment",
    )

    def __init__(self, id: int, seq: int, req: OrderRequest, limit: int, aux: int | None, placed_ns: int,
                 increment: Decimal = CENT):
        self.id = id
        self.seq = seq
        self.symbol = req.symbol
        self.side = req.side
        self.quantity = req.quantity
        self.filled = 0
        self.limit = limit
        self.aux = aux
        self.order_type = req.order_type
        self.ref = req.ref
        self.placed_ns = placed_ns
        self.status = OrderStatus.SUBMITTED
        self.triggered = req.order_type is not LIT
        self.fresh = False  # marketable on arrival: fills at the next tick's price (rule 2)
        self.value = 0  # Σ quantity × price in cents, for the average fill price
        self.tif = req.tif
        self.outside_rth = req.outside_rth
        self.increment = increment  # the symbol's: limit, aux and value count units of it

    def wake_price(self) -> int:
        """The price at which this order can next change state (trigger or fill)."""
        return self.limit if self.triggered else self.aux

    def avg_price(self) -> Decimal | None:
        if not self.filled:
            return None
        value, filled = self.value, self.filled
        inc = self.increment
        if inc is not CENT:
            return _average(value, filled, inc)
        if value % filled == 0:  # all at one price (or averaging to whole cents): exact
            return _dollars(value // filled)
        return (Decimal(value) / filled / 100).quantize(AVG_QUANTUM, rounding=ROUND_HALF_UP).normalize()

    def to_open_order(self) -> OpenOrder:
        return OpenOrder(
            order_id=str(self.id), symbol=self.symbol, side=self.side, quantity=self.quantity,
            filled=self.filled, limit=units_to_price(self.limit, self.increment), order_type=self.order_type,
            aux=None if self.aux is None else units_to_price(self.aux, self.increment), ref=self.ref,
            placed_ns=self.placed_ns, client_id=0, avg_fill_price=self.avg_price(), status=self.status,
        )


@dataclass(frozen=True)
class BrokerLike:
    """How much the venue behaves like an asynchronous broker (IB) instead of answering at once.

    All off by default: the embedded default is a venue that acknowledges, cancels and charges
    on the spot. Tests of the strategy against a broker that answers late turn them on.
    """

    #: an order is acknowledged (SUBMITTED, or PRE_SUBMITTED for an untriggered LIT) on the next
    #: tick, not at once
    late_acks: bool = False
    #: a cancel is PENDING_CANCEL at once and takes effect after the next tick's matching: the
    #: order can still fill on that tick (a cancel racing a fill)
    late_cancels: bool = False
    #: fills carry no commission; a CommissionReport follows each one (IB: commissionReport
    #: after execDetails)
    commission_later: bool = False
    #: orders whose tag matches one of these patterns (``re.search``) are rejected the IB way:
    #: REJECTED (code 201) and then CANCELLED for the same order
    reject_refs: tuple[str, ...] = ()
    #: orders whose tag matches are parked INACTIVE (accepted, never working)
    inactive_refs: tuple[str, ...] = ()
    #: every Nth execution (by the venue's execution number) is reported twice, the copy after
    #: the order's status (IB sends an execDetails again after a reconnect, or just twice); with
    #: ``commission_later`` its CommissionReport is repeated too. 0: off
    duplicate_execs: int = 0
    #: executions are reported after the order's status change they caused, and after this
    #: tick's pending cancels took effect (IB may send orderStatus Filled, or Cancelled with a
    #: filled quantity, before execDetails): a strategy meets a final status with fills it has
    #: not been shown yet
    execs_after_status: bool = False
    #: at these execution numbers the connection drops right after the venue executed: the
    #: execution is kept (and saved) but never reported, and the venue raises
    #: :class:`~bothost.hookspecs.BrokerUnavailable` (the run ends as with a broker that went
    #: away, exit 4); the next start reconstructs from the venue (a disconnect mid-fill)
    disconnect_at_execs: tuple[int, ...] = ()

    @property
    def reports_late(self) -> bool:
        """Any option that changes how executions are reported (the slower matching path)."""
        return bool(self.duplicate_execs or self.execs_after_status or self.disconnect_at_execs)

    def matches(self, patterns: tuple[str, ...], ref: str) -> bool:
        return any(re.search(p, ref) for p in patterns)


class Commission:
    """IB fixed pricing by default: $0.005 a share, $1.00 minimum per execution."""

    def __init__(self, per_share: Decimal = Decimal("0.005"), minimum: Decimal = Decimal("1.00")):
        self.per_share = per_share
        self.minimum = minimum
        self._cache: dict[int, Decimal] = {}

    def __call__(self, quantity: int) -> Decimal:
        fee = self._cache.get(quantity)
        if fee is None:  # a grid trades the same few quantities over and over
            fee = self._cache[quantity] = max(self.minimum, self.per_share * quantity)
        return fee


class Venue:
    """The book. ``emit`` receives OrderUpdate events (cancels, completions, rejections)."""

    def __init__(self, emit: Callable[[object], None], commission: Commission,
                 partial_fill_shares: int | None = None, like: BrokerLike | None = None,
                 increments: dict[str, Decimal] | None = None):
        self.emit = emit
        #: symbol -> price increment, for the symbols whose instrument is not priced in cents
        self.increments: dict[str, Decimal] = {s: i for s, i in (increments or {}).items() if i != CENT}
        self.commission = commission
        self.partial_fill_shares = partial_fill_shares
        self.like = like or BrokerLike()
        self.unacked: list[SimOrder] = []  # late_acks: acknowledged on the next tick
        self.cancelling: list[SimOrder] = []  # late_cancels: cancelled after the next tick's matching
        self.orders: dict[int, SimOrder] = {}  # every order not finished
        self.arriving: list[SimOrder] = []  # placed during the current tick: live from the next
        # Executions not yet checkpointed; older ones live only in the store, so memory stays
        # flat however long the run.
        self.unsaved: list[Fill] = []
        self.dirty_orders: dict[int, SimOrder] = {}
        self.next_order_id = 1
        self.next_exec_id = 1
        self.clock_ns: int | None = None
        self.last: int | None = None  # cents
        self.position: dict[str, int] = {}
        self.cost: dict[str, int] = {}  # cost basis in cents, average-cost method
        self.cash = 0  # cents, before fees
        self.fees = Decimal(0)
        self._band: tuple[int, int] | None = None
        # The working orders again, shaped for matching: BUYs are few (the queue and Level 0);
        # SELLs are many (one per lot) and kept sorted by the price that wakes them, so a tick
        # looks only at the SELLs it can reach.
        self._buys: list[SimOrder] = []
        self._sells: list[SimOrder] = []
        self._sell_keys: list[tuple[int, int]] = []  # _sell_key of each of _sells, as placed: bisect on plain tuples
        self._late_reports: dict[str, CommissionReport] = {}  # commission_later + reports_late

    def add(self, order: SimOrder) -> None:
        self.orders[order.id] = order
        if order.side is BUY:
            self._buys.append(order)
        else:
            self._insert_sell(order)
        self._band = None

    def _insert_sell(self, order: SimOrder) -> None:
        """Where bisect.insort(self._sells, order, key=_sell_key) puts it, with the keys kept
        beside the orders (no key function called on every probe)."""
        key = _sell_key(order)
        i = bisect.bisect_right(self._sell_keys, key)
        self._sell_keys.insert(i, key)
        self._sells.insert(i, order)

    def _remove_sell(self, order: SimOrder) -> None:
        i = self._sells.index(order)
        del self._sells[i]
        del self._sell_keys[i]

    def _remove(self, order: SimOrder) -> None:
        del self.orders[order.id]
        if order.side is BUY:
            self._buys.remove(order)
        else:
            self._remove_sell(order)
        self._band = None

    # ---------------------------------------------------------------- orders in
    def place(self, req: OrderRequest) -> str:
        oid = self.next_order_id
        self.next_order_id += 1
        inc = self.increments.get(req.symbol, CENT) if self.increments else CENT
        if inc is CENT:
            limit = _cents(req.limit)
            aux = None if req.aux is None else _cents(req.aux)
        else:
            limit = exact_units(req.limit, inc)
            aux = None if req.aux is None else exact_units(req.aux, inc)
        # The usual order is valid: only a doubtful one is looked at closely.
        problem = _check(req, limit, aux, inc) if (limit is None or req.quantity <= 0
                                                   or (aux is None and req.aux is not None)) else ""
        like = self.like
        if problem:
            self.emit(OrderUpdate(str(oid), self.clock_ns or 0, OrderStatus.REJECTED, req.symbol, req.side,
                                  req.quantity, 0, req.ref, None, problem))
            return str(oid)
        if like.reject_refs and like.matches(like.reject_refs, req.ref):
            # IB's way: error 201 (a reject), then a Cancelled status for the same order.
            now = self.clock_ns or 0
            for status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
                self.emit(OrderUpdate(str(oid), now, status, req.symbol, req.side, req.quantity, 0, req.ref, None,
                                      "Order rejected - reason: simulated reject (reject_refs)", code=201))
            return str(oid)
        if req.order_type is LIT and aux is None:
            aux = limit
        order = SimOrder(oid, oid, req, limit, aux, self.clock_ns or 0, inc)
        if like.inactive_refs and like.matches(like.inactive_refs, req.ref):
            order.status = OrderStatus.INACTIVE  # parked: listed, cancellable, never matched
            self.orders[oid] = order
            self.dirty_orders[oid] = order
            self.emit(OrderUpdate(str(oid), self.clock_ns or 0, OrderStatus.INACTIVE, order.symbol, order.side,
                                  order.quantity, 0, order.ref, None, "simulated (inactive_refs)"))
            return str(oid)
        last = self.last
        if last is not None:
            if order.order_type is LIT and not order.triggered:
                # Rule 4: placed with the market already through its aux, it triggers at once.
                if (order.side is BUY and last <= aux) or (order.side is SELL and last >= aux):
                    order.triggered = True
            if order.triggered:
                # Rule 2: marketable on arrival, judged against the tick being handled.
                order.fresh = (last <= limit) if order.side is BUY else (last >= limit)
        self.add(order)
        self.arriving.append(order)
        self.dirty_orders[oid] = order
        if like.late_acks:
            self.unacked.append(order)
        return str(oid)

    def cancel(self, order_id: str) -> bool:
        """Cancel at once (rule 1): a cancelled order never fills afterwards. With
        ``late_cancels`` the cancel is pending until after the next tick's matching."""
        order = self.orders.get(int(order_id)) if order_id.isdigit() else None
        if order is None:
            return False
        if order.status is OrderStatus.PENDING_CANCEL:
            return True
        if self.like.late_cancels and order.status is OrderStatus.SUBMITTED:
            order.status = OrderStatus.PENDING_CANCEL
            self.cancelling.append(order)
            self.dirty_orders[order.id] = order
            self._band = None
            self.emit(OrderUpdate(str(order.id), self.clock_ns or 0, OrderStatus.PENDING_CANCEL, order.symbol,
                                  order.side, order.quantity, order.filled, order.ref, order.avg_price()))
            return True
        self._cancel_now(order)
        return True

    def _cancel_now(self, order: SimOrder) -> None:
        if order.status is OrderStatus.INACTIVE:
            del self.orders[order.id]
        else:
            self._remove(order)
        if order in self.arriving:
            self.arriving.remove(order)
        order.status = OrderStatus.CANCELLED
        self.dirty_orders[order.id] = order
        self.emit(OrderUpdate(str(order.id), self.clock_ns or 0, OrderStatus.CANCELLED, order.symbol,
                              order.side, order.quantity, order.filled, order.ref, order.avg_price()))

    # ---------------------------------------------------------------- ticks in
    def quiet_band(self) -> tuple[int, int]:
        if self.unacked or self.cancelling:
            return BUSY_BAND  # the next tick acknowledges or cancels: it must be handled
        band = self._band
        if band is None:
            lo = -1
            for o in self._buys:  # max(o.wake_price()), inlined: once per handled tick
                w = o.limit if o.triggered else o.aux
                if w > lo:
                    lo = w
            hi = self._sells[0].wake_price() if self._sells else NO_SELL
            band = self._band = (lo, hi)
        return band

    def advance(self, time_ns: int, price: int) -> None:
        """Ticks that crossed nothing went by: move the clock, and arrivals are now resting."""
        self.clock_ns = time_ns
        self.last = price
        if self.arriving:
            for order in self.arriving:
                order.fresh = False
            self.arriving.clear()

    def _acknowledge(self, time_ns: int) -> None:
        """late_acks: the orders placed during the previous tick are acknowledged now."""
        for order in self.unacked:
            if order.status is OrderStatus.SUBMITTED:
                status = OrderStatus.SUBMITTED if order.triggered else OrderStatus.PRE_SUBMITTED
                self.emit(OrderUpdate(str(order.id), time_ns, status, order.symbol, order.side, order.quantity,
                                      order.filled, order.ref, order.avg_price()))
        self.unacked.clear()

    def _finish_cancels(self) -> None:
        """late_cancels: after this tick's matching, the pending cancels take effect."""
        cancelling, self.cancelling = self.cancelling, []
        for order in cancelling:
            if order.status is OrderStatus.PENDING_CANCEL:
                self._cancel_now(order)

    def match(self, time_ns: int, price: int) -> Iterator[Fill]:
        """The fills of a tick, one at a time (lazily: each is handled before the next is made).
        Not itself a generator: the tick's clock moves and its acknowledgements go out now, and
        the usual tick hands over ``_match`` as it is (one generator per tick, not two)."""
        self.clock_ns = time_ns
        self.last = price
        if self.unacked:
            self._acknowledge(time_ns)
        if self.like.reports_late:
            return self._match_reporting_late(time_ns, price)
        if self.cancelling:
            return self._match_then_cancel(time_ns, price)
        return self._match(time_ns, price)

    def _match_then_cancel(self, time_ns: int, price: int) -> Iterator[Fill]:
        yield from self._match(time_ns, price)
        self._finish_cancels()

    def _match_reporting_late(self, time_ns: int, price: int) -> Iterator[Fill]:
        """``match`` with the reporting faults of :class:`BrokerLike` (duplicate executions,
        executions after their status, a disconnect mid-fill). The matching is the same."""
        like = self.like
        held: list[object] = []  # execs_after_status: reported after the tick's statuses
        for fill in self._match(time_ns, price):
            number = int(fill.exec_id[1:])
            report = self._late_reports.pop(fill.exec_id, None)  # commission_later's report
            events: list[object] = [fill] if report is None else [fill, report]
            if like.duplicate_execs and number % like.duplicate_execs == 0:
                events += events  # the copy comes after the order's status (emitted already)
            if number in like.disconnect_at_execs:
                raise BrokerUnavailable(f"the simulated venue dropped the connection right after execution "
                                        f"{fill.exec_id} (disconnect_at_execs): it was never reported")
            if like.execs_after_status:
                held += events
                continue
            # The first report is handed over as the engine expects (it is handled before what
            # it caused); the rest are queued behind the order's status.
            for event in events[1:]:
                self.emit(event)
            yield events[0]
        if self.cancelling:
            self._finish_cancels()
        for event in held:
            self.emit(event)

    def _match(self, time_ns: int, price: int) -> Iterator[Fill]:
        arrived = self.arriving
        self.arriving = []
        crossed_buys: list[SimOrder] = []
        crossed_sells: list[SimOrder] = []
        for order in self._buys:
            if not order.triggered and price <= order.aux:
                order.triggered = True
                self.dirty_orders[order.id] = order
                self._band = None
            if order.triggered and price <= order.limit:
                crossed_buys.append(order)
        triggered_now = []
        for i, order in enumerate(self._sells):  # ascending wake price: stop at the first one out of reach
            if (order.limit if order.triggered else order.aux) > price:  # its wake_price()
                break
            if not order.triggered:
                order.triggered = True
                self._sell_keys[i] = _sell_key(order)  # its key as it is now (re-sorted below)
                self.dirty_orders[order.id] = order
                triggered_now.append(order)
            if price >= order.limit:
                crossed_sells.append(order)
        for order in triggered_now:  # its wake price is now its limit: re-sort it
            self._remove_sell(order)
            self._insert_sell(order)
            self._band = None
        if not (crossed_buys or crossed_sells):
            for order in arrived:
                order.fresh = False  # the first tick after arrival has been seen
            return
        crossed = crossed_buys + crossed_sells
        fill_price = {o.id: (price if o.fresh else o.limit) for o in crossed}
        for order in arrived:
            order.fresh = False  # the first tick after arrival has been seen
        if len(crossed) > 1:
            # Rule 5: BUYs before SELLs; price priority, then time placed. Picked once, here.
            crossed_buys.sort(key=lambda o: (-o.limit, o.seq))
            crossed_sells.sort(key=lambda o: (o.limit, o.seq))
            crossed = crossed_buys + crossed_sells
        for order in crossed:
            if order.status is not OrderStatus.SUBMITTED and order.status is not OrderStatus.PENDING_CANCEL:
                continue  # cancelled (or filled) while an earlier fill of this tick was handled
            yield self._execute(order, fill_price[order.id], time_ns)

    def _execute(self, order: SimOrder, price: int, time_ns: int) -> Fill:
        remaining = order.quantity - order.filled
        qty = remaining if not self.partial_fill_shares else min(remaining, self.partial_fill_shares)
        order.filled += qty
        order.value += qty * price
        commission = self.commission(qty)
        sign = 1 if order.side is BUY else -1
        sym = order.symbol
        held = self.position.get(sym, 0)
        if sign > 0:
            self.cost[sym] = self.cost.get(sym, 0) + qty * price
        elif held:
            self.cost[sym] = self.cost.get(sym, 0) - (self.cost.get(sym, 0) * qty) // held
        self.position[sym] = held + sign * qty
        self.cash -= sign * qty * price
        self.fees += commission
        exec_id = f"E{self.next_exec_id}"
        self.next_exec_id += 1
        order_id = str(order.id)
        # exec_id, order_id, time_ns, symbol, side, quantity, price, commission, ref,
        # order_quantity, order_filled, order_avg_price (positional: once per fill)
        inc = order.increment
        fill = Fill(exec_id, order_id, time_ns, sym, order.side, qty,
                    _dollars(price) if inc is CENT else units_to_price(price, inc), commission, order.ref,
                    order.quantity, order.filled, order.avg_price())
        self.unsaved.append(fill)
        if self.like.commission_later:
            # The venue keeps the whole execution; the strategy hears of its commission after it.
            report = CommissionReport(exec_id, commission, time_ns)
            if self.like.reports_late:
                self._late_reports[exec_id] = report  # _match_reporting_late sends it after the fill
            else:
                self.emit(report)
            fill = dataclasses.replace(fill, commission=None)
        self.dirty_orders[order.id] = order
        if order.filled >= order.quantity:
            order.status = OrderStatus.FILLED
            self._remove(order)
            # Queued now, handled by the engine after this fill (as IB sends execDetails, then status).
            self.emit(OrderUpdate(order_id, time_ns, OrderStatus.FILLED, sym, order.side,
                                  order.quantity, order.filled, order.ref, fill.order_avg_price))
        return fill

    # ---------------------------------------------------------------- views
    def open_orders(self) -> tuple[OpenOrder, ...]:
        """Every order not finished, in the order placed (PENDING_CANCEL and INACTIVE included,
        with their status)."""
        return tuple(o.to_open_order() for o in sorted(self.orders.values(), key=lambda o: o.seq))

    def positions(self) -> tuple[Position, ...]:
        out = []
        for sym, qty in sorted(self.position.items()):
            if qty:
                inc = self.increments.get(sym, CENT)
                if inc is not CENT:
                    out.append(Position(sym, qty, _average(self.cost.get(sym, 0), qty, inc, exact=False)))
                    continue
                avg = (Decimal(self.cost.get(sym, 0)) / qty / 100).quantize(AVG_QUANTUM, rounding=ROUND_HALF_UP)
                out.append(Position(sym, qty, avg.normalize()))
        return tuple(out)


def _sell_key(order: SimOrder) -> tuple[int, int]:
    return order.wake_price(), order.seq


@functools.lru_cache(maxsize=65536)
def _cents(value: Decimal) -> int | None:
    """A price in whole cents, or None if it is not a positive whole number of cents.
    Cached: a grid places the same few hundred prices over and over."""
    if not value.is_finite() or value <= 0:
        return None
    cents = value * 100
    return int(cents) if cents == cents.to_integral_value() else None


@functools.lru_cache(maxsize=65536)
def _dollars(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _average(value: int, quantity: int, increment: Decimal, exact: bool = True) -> Decimal:
    """``value`` units over ``quantity`` shares as a price in a declared increment: exact when it
    is a whole number of increments (and ``exact``), else to AVG_QUANTUM or a ten-thousandth of
    the increment, whichever is finer."""
    if exact and value % quantity == 0:
        return units_to_price(value // quantity, increment)
    quantum = min(AVG_QUANTUM, increment.scaleb(-4))
    return (Decimal(value) * increment / quantity).quantize(quantum, rounding=ROUND_HALF_UP).normalize()


def _check(req: OrderRequest, limit: int | None, aux: int | None, increment: Decimal = CENT) -> str:
    """Why the venue refuses an order, or '' (as a real broker would reject it)."""
    if req.quantity <= 0:
        return f"quantity must be positive, got {req.quantity}"
    for name, value, cents in (("limit", req.limit, limit), ("aux", req.aux, aux)):
        if value is not None and cents is None:
            if not value.is_finite() or value <= 0:
                return f"{name} price must be positive, got {value}"
            if increment is CENT:
                return f"{name} price {value} is not a whole number of cents (the venue trades in cents)"
            return (f"{name} price {value} is not a whole number of {req.symbol}'s price increment {increment} "
                    f"(round it to the increment: ctx.instrument.round(price))")
    return ""
