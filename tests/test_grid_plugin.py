"""The tqqq_grid hooks (R1-R4b, S1) against a small in-test venue and context.

The venue here is a deliberately small stand-in that follows sim-venue.md's "Each tick, in this
order" and "Matching" rules closely enough to drive the strategy; the integration tests against
the real simulated venue live elsewhere.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pluggy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bothost import hookspecs
from bothost.hookspecs import BuildEnv, CriticalStop
from bothost.model import (
    Alert,
    BrokerSnapshot,
    Fill,
    OpenOrder,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Side,
    Tick,
    round2,
)
from bothost_plugins.tqqq_grid import plugin as grid_plugin
from bothost_plugins.tqqq_grid.grid import l0_limit, sell_price, trigger_chain
from bothost_plugins.tqqq_grid.invariants import check_invariants
from bothost_plugins.tqqq_grid.lots import LotMap, LotMapError, load_lot_map
from bothost_plugins.tqqq_grid.params import TqqqGridConfig
from bothost_plugins.tqqq_grid.plugin import TqqqGrid, make_strategy
from bothost_plugins.tqqq_grid.tags import parse_tag

D = Decimal
REPO = Path(__file__).resolve().parents[1]
LM = load_lot_map(REPO / "configs" / "tqqq_lots.csv")
SYM = "TQQQ"
S = 1_000_000_000
T0 = 1_700_000_000 * S


# ----------------------------------------------------------------------------- a small venue
@dataclass
class VOrder:
    order_id: str
    req: OrderRequest
    seq: int
    live_from: int  # tick index from which it can fill (rule 1)
    marketable: bool  # marketable on arrival (rule 2)
    placed_ns: int
    filled: int = 0
    cost: Decimal = D(0)

    @property
    def avg(self) -> Decimal | None:
        return self.cost / self.filled if self.filled else None


class MiniVenue:
    def __init__(self, partial: bool = False, reject=None):
        self.orders: dict[str, VOrder] = {}
        self.executions: list[Fill] = []
        self.position = 0
        self.cost = D(0)
        self.next_id = 1
        self.seq = 0
        self.tick_index = -1
        self.last: int | None = None
        self.partial = partial
        self.reject = reject or (lambda req: False)
        self.time_ns = T0

    def place(self, req: OrderRequest, now_ns: int) -> tuple[str, bool]:
        oid = str(self.next_id)
        self.next_id += 1
        if self.reject(req):
            return oid, False
        self.seq += 1
        last = D(self.last) / 100 if self.last is not None else None
        marketable = last is not None and (req.limit >= last if req.side is Side.BUY else req.limit <= last)
        self.orders[oid] = VOrder(oid, req, self.seq, self.tick_index + 1, marketable, now_ns)
        return oid, True

    def cancel(self, oid: str) -> VOrder | None:
        return self.orders.pop(oid, None)  # rule 1: takes effect at once

    def crossed(self, price: int) -> list[str]:
        p = D(price) / 100
        live = [o for o in self.orders.values() if o.live_from <= self.tick_index]
        buys = sorted((o for o in live if o.req.side is Side.BUY and p <= o.req.limit), key=lambda o: (-o.req.limit, o.seq))
        sells = sorted((o for o in live if o.req.side is Side.SELL and p >= o.req.limit), key=lambda o: (o.req.limit, o.seq))
        return [o.order_id for o in buys + sells]  # rule 5

    def fill(self, oid: str, price: int, time_ns: int) -> Fill | None:
        o = self.orders.get(oid)
        if o is None:
            return None  # cancelled meanwhile
        p = D(price) / 100
        at = p if (o.marketable and o.live_from == self.tick_index) else o.req.limit  # rules 2, 3
        remaining = o.req.quantity - o.filled
        qty = remaining if not self.partial else max(1, min(remaining, (o.req.quantity + 1) // 2))
        o.filled += qty
        o.cost += qty * at
        if o.req.side is Side.BUY:
            self.position += qty
            self.cost += qty * at
        else:
            self.cost -= self.cost / self.position * qty if self.position else 0
            self.position -= qty
        f = Fill(
            exec_id=f"e{len(self.executions) + 1}", order_id=oid, time_ns=time_ns, symbol=SYM, side=o.req.side,
            quantity=qty, price=at, commission=D("1.00"), ref=o.req.ref, order_quantity=o.req.quantity,
            order_filled=o.filled, order_avg_price=o.avg,
        )
        self.executions.append(f)
        if o.filled >= o.req.quantity:
            del self.orders[oid]
        return f

    def open_orders(self) -> tuple[OpenOrder, ...]:
        return tuple(
            OpenOrder(o.order_id, SYM, o.req.side, o.req.quantity, o.filled, o.req.limit, o.req.order_type, o.req.aux,
                      o.req.ref, o.placed_ns, None, o.avg)
            for o in self.orders.values()
        )

    def snapshot(self) -> BrokerSnapshot:
        avg = round2(self.cost / self.position) if self.position else D(0)
        pos = (Position(SYM, self.position, avg),) if self.position else ()
        return BrokerSnapshot(self.time_ns, self.open_orders(), tuple(self.executions), pos)


# ----------------------------------------------------------------------------- a small engine and context
class Ctx:
    def __init__(self, engine: Engine, strategy_id: str = "tqqq_grid", state: dict | None = None):
        self.engine = engine
        self.strategy_id = strategy_id
        self.log = logging.getLogger("test.tqqq_grid")
        self.every_tick: bool | None = None
        self.wakes: list[int] = []
        self.state = state
        self.saves = 0
        self.records: dict = {}
        self.placed: list[tuple[str, OrderRequest]] = []
        self.cancels: list[str] = []
        self.alerts: list[Alert] = []

    @property
    def now_ns(self) -> int:
        return self.engine.venue.time_ns

    def place(self, order: OrderRequest) -> str:
        oid = self.engine.place(order)
        self.placed.append((oid, order))
        return oid

    def cancel(self, order_id: str) -> None:
        self.cancels.append(order_id)
        self.engine.cancel(order_id)

    def want_every_tick(self, wanted: bool) -> None:
        self.every_tick = wanted

    def wake_at(self, time_ns: int) -> None:
        self.wakes.append(time_ns)

    def set_timer(self, name, time_ns):  # pragma: no cover - not used by the grid
        raise AssertionError("the grid uses wake_at")

    def save_state(self, state) -> None:
        self.saves += 1
        self.state = state() if callable(state) else state  # the host evaluates it when it writes

    def load_state(self):
        return self.state

    def alert(self, title, details, reset_steps=()):
        a = Alert(title, details, tuple(reset_steps))
        self.alerts.append(a)
        raise CriticalStop(a)

    def record(self, key, value):
        self.records[key] = value() if callable(value) else value


class Engine:
    """Feeds ticks the way sim-venue.md says: fills first (on_fill), then on_tick; skips ticks the
    strategy does not need (want_every_tick / wake_at / quiet band)."""

    def __init__(self, config: TqqqGridConfig, venue: MiniVenue | None = None, lot_map: LotMap = LM,
                 state: dict | None = None, check: bool = True):
        self.venue = venue or MiniVenue()
        self.strategy = TqqqGrid(config, lot_map)
        self.pm = pluggy.PluginManager("bothost")
        self.pm.add_hookspecs(hookspecs)
        self.pm.register(self.strategy)
        self.ctx = Ctx(self, state=state)
        self.pending: list[OrderUpdate] = []
        self.fills: list[tuple] = []
        self.check = check
        self.events = 0

    # the venue side of ctx
    def place(self, req: OrderRequest) -> str:
        oid, ok = self.venue.place(req, self.venue.time_ns)
        if not ok:
            self.pending.append(OrderUpdate(oid, self.venue.time_ns, OrderStatus.REJECTED, SYM, req.side, req.quantity, 0, req.ref, None, "test says no"))
        return oid

    def cancel(self, oid: str) -> None:
        o = self.venue.cancel(oid)
        if o is not None:
            self.pending.append(OrderUpdate(oid, self.venue.time_ns, OrderStatus.CANCELLED, SYM, o.req.side, o.req.quantity, o.filled, o.req.ref, o.avg))

    def _drain(self) -> None:
        while self.pending:
            u = self.pending.pop(0)
            self.pm.hook.on_order_update(ctx=self.ctx, update=u)
            self._check()

    def _check(self) -> None:
        self.events += 1
        if self.check and self.strategy.book is not None and not self.pending:
            problems = check_invariants(self.strategy.book, self.venue.open_orders(), self.venue.position)
            assert not problems, problems

    def start(self) -> None:
        self.pm.hook.reconstruct(ctx=self.ctx, snapshot=self.venue.snapshot())
        self._drain()
        self._check()
        self.pm.hook.on_start(ctx=self.ctx)

    def tick(self, time_ns: int, price: int) -> None:
        v = self.venue
        v.time_ns = time_ns
        v.tick_index += 1
        v.last = price  # rule 2: the tick's price is taken before matching
        buys = [o.req.limit for o in v.orders.values() if o.req.side is Side.BUY]
        sells = [o.req.limit for o in v.orders.values() if o.req.side is Side.SELL]
        p = D(price) / 100
        outside = (buys and p <= max(buys)) or (sells and p >= min(sells))
        filled = False
        for oid in v.crossed(price):
            f = v.fill(oid, price, time_ns)
            if f is None:
                continue
            filled = True
            self.fills.append((f.time_ns, f.side.value, f.quantity, f.price, f.order_id, f.ref))
            self.pm.hook.on_fill(ctx=self.ctx, fill=f)
            self._drain()
            self._check()
        due = [w for w in self.ctx.wakes if w <= time_ns]
        if self.ctx.every_tick or filled or outside or due:
            self.ctx.wakes = [w for w in self.ctx.wakes if w > time_ns]
            self.pm.hook.on_tick(ctx=self.ctx, tick=Tick(time_ns, SYM, price))
            self._drain()
            self._check()

    def run(self, prices, start_index: int = 0, step_s: int = 15) -> None:
        for i, price in enumerate(prices):
            self.tick(T0 + (start_index + i) * step_s * S, price)

    @property
    def book(self):
        return self.strategy.book


def orders_placed(ctx: Ctx, side=None):
    return [(oid, r) for oid, r in ctx.placed if side is None or r.side is side]


# ----------------------------------------------------------------------------- R1
def test_r1_entry_timeout_and_retry_on_the_next_tick():
    e = Engine(TqqqGridConfig())
    e.start()
    assert e.ctx.every_tick is True
    e.tick(T0, 10000)
    (oid, req), = orders_placed(e.ctx)
    assert (req.side, req.quantity, req.limit, req.order_type, req.tif) == (Side.BUY, 94, D("100.25"), OrderType.LIMIT, "GTC")
    assert parse_tag(req.ref).is_entry and req.outside_rth is True
    assert e.ctx.every_tick is False and e.ctx.wakes == [T0 + 120 * S]
    # the price runs away: never filled; ticks are skipped until the wake-up
    for k in range(1, 8):
        e.tick(T0 + k * 15 * S, 10100 + k)
    assert len(e.ctx.placed) == 1 and e.ctx.cancels == []
    e.tick(T0 + 120 * S, 10200)  # first tick at placed + timeout: cancelled, not replaced on the same tick
    assert e.ctx.cancels == [oid] and len(e.ctx.placed) == 1
    assert e.ctx.every_tick is True  # the cancel was confirmed: R1 wants the next tick
    e.tick(T0 + 135 * S, 10210)
    assert len(e.ctx.placed) == 2 and e.ctx.placed[1][1].limit == l0_limit(D("102.10"), D("0.0025"))


def test_r1_entry_fills_on_its_timeout_tick():
    e = Engine(TqqqGridConfig())
    e.start()
    e.tick(T0, 10000)
    e.tick(T0 + 120 * S, 10020)  # matched first (fills at 100.20 <= 100.25), then the timeout check
    assert e.ctx.cancels == []
    assert len(e.book.lots) == 1 and e.book.anchor == D("100.20")


def test_r1_ignores_bad_ticks():
    e = Engine(TqqqGridConfig())
    e.start()
    e.pm.hook.on_tick(ctx=e.ctx, tick=Tick(T0, SYM, 0))
    e.pm.hook.on_tick(ctx=e.ctx, tick=Tick(T0, SYM, -5))
    e.pm.hook.on_tick(ctx=e.ctx, tick=Tick(T0, "QQQ", 40000))
    assert e.ctx.placed == []


# ----------------------------------------------------------------------------- R2, R3, R4
def test_entry_fill_sets_anchor_sell_and_queue():
    e = Engine(TqqqGridConfig())
    e.start()
    e.tick(T0, 10000)
    e.tick(T0 + 15 * S, 10000)  # marketable on arrival: fills at this tick's price
    assert e.book.anchor == D("100.00")
    placed = [r for _, r in e.ctx.placed[1:]]
    sell, *queue = placed
    assert (sell.side, sell.quantity, sell.limit, sell.order_type, sell.tif) == (Side.SELL, 94, D("101.00"), OrderType.LIMIT, "GTC")
    tag = parse_tag(sell.ref)
    assert (tag.level, tag.price, tag.buy_order_id) == (0, D("100.00"), e.ctx.placed[0][0])
    assert [(q.quantity, q.limit, q.aux, q.order_type) for q in queue] == [
        (88, D("99.00"), D("99.00"), OrderType.LIMIT_IF_TOUCHED),
        (82, D("98.01"), D("98.01"), OrderType.LIMIT_IF_TOUCHED),
        (77, D("97.03"), D("97.03"), OrderType.LIMIT_IF_TOUCHED),
    ]
    assert e.ctx.every_tick is False
    assert e.ctx.records["book"]["anchor"] == "100.00" and e.ctx.state["lots"][0]["level"] == 0


def test_queue_fill_reconciles_by_difference_and_sell_rearms():
    e = Engine(TqqqGridConfig(entry_order="limit"))
    e.start()
    e.tick(T0, 10000)
    e.tick(T0 + 15 * S, 10000)
    n = len(e.ctx.placed)
    e.tick(T0 + 30 * S, 9900)  # L1 fills at 99.00
    new = [r for _, r in e.ctx.placed[n:]]
    assert [(r.side, r.quantity, r.limit) for r in new] == [(Side.SELL, 88, D("99.99")), (Side.BUY, 72, D("96.06"))]
    assert new[1].order_type is OrderType.LIMIT and new[1].aux is None
    assert e.ctx.cancels == []  # L2, L3 kept
    n = len(e.ctx.placed)
    e.tick(T0 + 45 * S, 9999)  # L1's SELL fills: the lot closes, R3 re-arms L1 and drops L4
    assert len(e.book.lots) == 1
    assert [(r.side, r.quantity, r.limit) for _, r in e.ctx.placed[n:]] == [(Side.BUY, 88, D("99.00"))]
    assert len(e.ctx.cancels) == 1
    assert e.book.gross_pnl == 88 * (D("99.99") - D("99.00"))
    assert e.book.fees == 3  # entry, L1 BUY, L1 SELL
    assert D(e.ctx.records["book"]["net_realized_pnl"]) == 88 * (D("99.99") - D("99.00")) - 3
    assert D(e.ctx.records["book"]["realized_pnl"]) == 88 * (D("99.99") - D("99.00"))


def test_last_lot_sold_cancels_queue_and_reenters_on_the_same_tick():
    e = Engine(TqqqGridConfig())
    e.start()
    e.tick(T0, 10000)
    e.tick(T0 + 15 * S, 10000)
    e.tick(T0 + 30 * S, 10100)  # L0 SELL at 101.00 fills
    assert not e.book.lots
    assert len(e.ctx.cancels) == 3  # the queue
    last = e.ctx.placed[-1][1]
    assert last.side is Side.BUY and parse_tag(last.ref).is_entry and last.limit == D("101.25")


def test_partial_entry_then_timeout_makes_one_lot_of_what_filled():
    e = Engine(TqqqGridConfig(), MiniVenue(partial=True))
    e.start()
    e.tick(T0, 10000)
    e.tick(T0 + 15 * S, 10000)  # 47 of 94 at 100.00
    e.tick(T0 + 30 * S, 10050)  # not marketable any more
    assert not e.book.lots
    e.tick(T0 + 120 * S, 10060)  # timeout: cancel; its cancellation completes the BUY (R2)
    (lot,) = e.book.lots.values()
    assert (lot.level, lot.quantity, lot.purchase) == (0, 47, D("100.00"))
    assert e.book.anchor == D("100.00")
    sells = [r for _, r in e.ctx.placed if r.side is Side.SELL]
    assert len(sells) == 1 and sells[0].quantity == 47


def test_partial_buys_make_one_lot_and_partial_sells_book_what_filled():
    e = Engine(TqqqGridConfig(), MiniVenue(partial=True))
    e.start()
    e.tick(T0, 10000)
    e.tick(T0 + 15 * S, 10000)  # 47
    e.tick(T0 + 30 * S, 10000)  # 47 more, at the limit 100.25: complete
    assert [(lot.quantity, lot.purchase) for lot in e.book.lots.values()] == [(94, D("100.125"))]
    assert e.book.anchor == D("100.125")  # the average of the partial fills, sub-cent
    t1 = trigger_chain(D("100.125"), D("0.01"), 2)[1]
    assert t1 == D("99.12")
    e.tick(T0 + 45 * S, 9900)  # L1: 44 of 88
    assert len(e.book.lots) == 1
    e.tick(T0 + 60 * S, 9900)  # 44 more: complete -> one lot of 88
    assert sorted(lot.quantity for lot in e.book.lots.values()) == [88, 94]
    gross0 = e.book.gross_pnl
    e.tick(T0 + 75 * S, 10011)  # L1's SELL @ 100.11: 44 of 88 (R4b)
    lot1 = next(lot for lot in e.book.lots.values() if lot.level == 1)
    assert lot1.quantity == 44 and e.book.gross_pnl - gross0 == 44 * (D("100.11") - D("99.12"))
    e.tick(T0 + 90 * S, 10011)
    assert [lot.level for lot in e.book.lots.values()] == [0]


def test_fill_after_cancel_request_still_makes_a_lot():
    """IB: fills of an order whose cancel was asked for may arrive until its cancelled update."""
    e = Engine(TqqqGridConfig())
    e.start()
    book = e.book
    e.tick(T0, 10000)
    oid = book.entry_id
    # the strategy asks for the cancel, but the broker has not acted on it yet
    book.buys[oid].cancel_requested = True
    fill = Fill("x1", oid, T0 + S, SYM, Side.BUY, 94, D("100.10"), D("1"), book.buys[oid].ref, 94, 94, D("100.10"))
    e.venue.orders.pop(oid)
    e.venue.position += 94
    e.pm.hook.on_fill(ctx=e.ctx, fill=fill)
    assert [(lot.level, lot.quantity) for lot in book.lots.values()] == [(0, 94)] and book.entry_id is None
    # a cancelled update arriving late for an order already complete changes nothing
    e.pm.hook.on_order_update(ctx=e.ctx, update=OrderUpdate(oid, T0 + S, OrderStatus.CANCELLED, SYM, Side.BUY, 94, 94))
    assert len(book.lots) == 1


def test_cancel_confirmed_with_more_filled_completes_the_buy():
    e = Engine(TqqqGridConfig())
    e.start()
    e.tick(T0, 10000)
    oid = e.book.entry_id
    e.pm.hook.on_order_update(ctx=e.ctx, update=OrderUpdate(oid, T0 + S, OrderStatus.CANCELLED, SYM, Side.BUY, 94, 10, "", D("100.05")))
    assert [(lot.level, lot.quantity, lot.purchase) for lot in e.book.lots.values()] == [(0, 10, D("100.05"))]


class SlowCancelCtx(Ctx):
    """IB-like: a cancel is only a request; the order stays live until its update is delivered."""

    def __init__(self):
        super().__init__(engine=None)
        self.ids = iter(range(1, 10**6))
        self.now = T0

    @property
    def now_ns(self) -> int:
        return self.now

    def place(self, order):
        oid = str(next(self.ids))
        self.placed.append((oid, order))
        return oid

    def cancel(self, order_id):
        self.cancels.append(order_id)


def _fill(book, oid, price, qty=None):
    b = book.buys.get(oid)
    lot = book.lots.get(oid)
    side = Side.BUY if b is not None else Side.SELL
    total = b.quantity if b is not None else lot.quantity
    q = qty or total
    ref = b.ref if b is not None else lot.sell_ref
    return Fill(f"x{oid}.{q}", oid, T0, SYM, side, q, price, D("1"), ref, total, q, price)


def test_a_tag_is_reused_only_once_its_cancel_is_confirmed():
    strat = TqqqGrid(TqqqGridConfig(), LM)
    ctx = SlowCancelCtx()
    strat.reconstruct(ctx=ctx, snapshot=BrokerSnapshot(T0))
    book = strat.book
    strat.on_tick(ctx=ctx, tick=Tick(T0, SYM, 10000))
    strat.on_fill(ctx=ctx, fill=_fill(book, book.entry_id, D("100.00")))
    by_level = {b.level: oid for oid, b in book.buys.items()}
    strat.on_fill(ctx=ctx, fill=_fill(book, by_level[1], D("99.00")))
    strat.on_fill(ctx=ctx, fill=_fill(book, by_level[2], D("98.01")))  # lots 0..2, queue 3, 4, 5
    assert sorted(b.level for b in book.buys.values()) == [3, 4, 5]
    l5 = next(oid for oid, b in book.buys.items() if b.level == 5)
    l2_sell = next(oid for oid, lot in book.lots.items() if lot.level == 2)
    strat.on_fill(ctx=ctx, fill=_fill(book, l2_sell, D("98.99")))  # m = 1: cancel L5, re-arm L2
    assert ctx.cancels == [l5] and book.buys[l5].cancel_requested
    new_l2 = next(oid for oid, b in book.buys.items() if b.level == 2)
    n = len(ctx.placed)
    strat.on_fill(ctx=ctx, fill=_fill(book, new_l2, D("98.01")))  # m = 2 again: L5 wanted, its old order still live
    placed = [r for _, r in ctx.placed[n:]]
    assert [r.side for r in placed] == [Side.SELL]  # no second live order with L5's tag (I4)
    strat.on_order_update(ctx=ctx, update=OrderUpdate(l5, T0, OrderStatus.CANCELLED, SYM, Side.BUY, 67, 0, book.buys[l5].ref))
    (oid, r), = ctx.placed[n + 1:]
    assert r.side is Side.BUY and parse_tag(r.ref).level == 5 and r.limit == trigger_chain(D("100.00"), D("0.01"), 6)[5]


def test_rejected_sell_alerts_and_rejected_buy_is_dropped(caplog):
    e = Engine(TqqqGridConfig(), MiniVenue(reject=lambda r: r.side is Side.BUY and r.quantity == 82), check=False)
    e.start()
    e.tick(T0, 10000)
    with caplog.at_level(logging.WARNING):
        e.tick(T0 + 15 * S, 10000)
    assert "rejected" in caplog.text
    assert sorted(b.level for b in e.book.buys.values()) == [1, 3]  # L2 stays out of the book
    e2 = Engine(TqqqGridConfig(), MiniVenue(reject=lambda r: r.side is Side.SELL))
    e2.start()
    e2.tick(T0, 10000)
    with pytest.raises(CriticalStop) as info:
        e2.tick(T0 + 15 * S, 10000)
    assert "SELL rejected" in info.value.alert.title and e2.ctx.alerts
    assert e2.book.halted
    n = len(e2.ctx.placed)
    e2.pm.hook.on_tick(ctx=e2.ctx, tick=Tick(T0 + 30 * S, SYM, 9000))
    assert len(e2.ctx.placed) == n  # S1: nothing more is placed


def test_rejected_entry_backs_off():
    e = Engine(TqqqGridConfig(), MiniVenue(reject=lambda r: r.quantity == 94), check=False)
    e.start()
    for k in range(10):
        e.tick(T0 + k * 15 * S, 10000)
    assert len(e.ctx.placed) == 2  # at 0 s and again once l0_timeout has passed (120 s)


def test_unknown_fill_alerts():
    e = Engine(TqqqGridConfig())
    e.start()
    f = Fill("z", "999", T0, SYM, Side.BUY, 5, D("10"), D("1"), "", 5, 5, D("10"))
    with pytest.raises(CriticalStop, match="does not hold"):
        e.pm.hook.on_fill(ctx=e.ctx, fill=f)


def test_duplicate_execution_is_ignored():
    e = Engine(TqqqGridConfig(), MiniVenue(partial=True))
    e.start()
    e.tick(T0, 10000)
    e.tick(T0 + 15 * S, 10000)
    f = e.venue.executions[-1]
    fees = e.book.fees
    e.pm.hook.on_fill(ctx=e.ctx, fill=f)
    assert e.book.fees == fees and e.book.buys[f.order_id].filled == 47


def test_sell_cancelled_outside_alerts():
    e = Engine(TqqqGridConfig())
    e.start()
    e.tick(T0, 10000)
    e.tick(T0 + 15 * S, 10000)
    sell_id = next(iter(e.book.lots))
    with pytest.raises(CriticalStop, match="unprotected"):
        e.pm.hook.on_order_update(ctx=e.ctx, update=OrderUpdate(sell_id, T0, OrderStatus.CANCELLED, SYM, Side.SELL, 94, 0))


def test_state_saved_once_per_event():
    e = Engine(TqqqGridConfig())
    e.start()
    e.tick(T0, 10000)
    saves = e.ctx.saves
    e.tick(T0 + 15 * S, 10000)  # one fill: SELL + 3 BUYs placed, one save
    assert e.ctx.saves == saves + 1
    st_ = e.ctx.state
    assert st_["anchor"] == "100.00" and st_["lots"][0]["quantity"] == 94 and st_["last_event_ns"] == T0 + 15 * S
    saves = e.ctx.saves
    e.tick(T0 + 30 * S, 10050)  # nothing happens: nothing saved
    assert e.ctx.saves == saves


# ----------------------------------------------------------------------------- reconstruct through the hook
def test_reconstruct_alert_places_nothing():
    v = MiniVenue()
    v.position = 50
    v.cost = D("5000")
    e = Engine(TqqqGridConfig(), v)
    with pytest.raises(CriticalStop, match="orphan shares"):
        e.start()
    assert e.ctx.placed == [] and e.ctx.cancels == []
    assert any("CRITICAL" in line for line in e.ctx.records["reconstruct"])


def test_reconstruct_adopts_orphans_when_told():
    v = MiniVenue()
    v.position = 50
    v.cost = D("5000")
    e = Engine(TqqqGridConfig(on_orphan_shares="adopt"), v)
    e.start()
    assert [(lot.level, lot.quantity, lot.purchase) for lot in e.book.lots.values()] == [(0, 50, D("100.00"))]
    assert [r.side for _, r in e.ctx.placed] == [Side.SELL, Side.BUY, Side.BUY, Side.BUY]


def test_state_anchor_is_the_fallback():
    v = MiniVenue()
    t = trigger_chain(D("100.00"), D("0.01"), 88)
    v.place(OrderRequest(SYM, Side.SELL, 1, sell_price(t[70], D("0.01"))), T0)  # untagged, 1 share: ambiguous
    v.position = 1
    e = Engine(TqqqGridConfig(), v, state={"anchor": "100.00", "strategy_id": "tqqq_grid", "gross_pnl": "5", "fees": "2"})
    e.start()
    assert [lot.level for lot in e.book.lots.values()] == [70]
    assert e.book.realized_pnl == 3


# ----------------------------------------------------------------------------- many events: invariants and restarts
def price_path(seed: int, n: int) -> list[int]:
    rng = random.Random(seed)
    p = 10000
    out = []
    drift = rng.choice([-40, -15, 0, 15])
    for _ in range(n):
        p = max(500, p + rng.randint(-120, 120) + (drift if rng.random() < 0.5 else 0))
        if rng.random() < 0.03:
            p = max(500, p + rng.choice([-600, 600]))  # gaps
        out.append(p)
    return out


CONFIGS = st.builds(
    lambda depth, entry, timeout, pt: TqqqGridConfig(queue_depth=depth, entry_order=entry, l0_timeout=timeout, profit_target=pt),
    st.sampled_from([0, 1, 3, 5]),
    st.sampled_from(["limit_if_touched", "limit"]),
    st.sampled_from(["30s", "120s", "1h"]),
    st.sampled_from(["0.5%", "1%", "2%"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), config=CONFIGS, partial=st.booleans())
def test_invariants_hold_after_every_event(seed, config, partial):
    e = Engine(config, MiniVenue(partial=partial))  # the engine checks I1-I4 after every event
    e.start()
    e.run(price_path(seed, 400))
    assert e.events > 0
    # the book's view of P&L agrees with the executions
    gross = D(0)
    buys = {}
    for f in e.venue.executions:
        if f.side is Side.BUY:
            buys[f.order_id] = f.order_avg_price
    for f in e.venue.executions:
        if f.side is Side.SELL:
            gross += f.quantity * (f.price - parse_tag(f.ref).price)
    assert e.book.gross_pnl == gross
    assert e.book.fees == len(e.venue.executions)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), config=CONFIGS, partial=st.booleans(), cut=st.integers(1, 399), keep_state=st.booleans())
def test_restart_equivalence(seed, config, partial, cut, keep_state):
    """I5 in small: stop the bot between two ticks, build a new one from the venue alone (and
    maybe its state backup), go on: the same fills, the same book."""
    prices = price_path(seed, 400)
    whole = Engine(config, MiniVenue(partial=partial))
    whole.start()
    whole.run(prices)

    first = Engine(config, MiniVenue(partial=partial))
    first.start()
    first.run(prices[:cut])
    second = Engine(config, first.venue, state=first.ctx.state if keep_state else None)
    second.fills = list(first.fills)
    second.start()
    assert [r for _, r in second.ctx.placed] == []  # the venue already held everything the bot wanted
    assert second.ctx.cancels == []
    second.run(prices[cut:], start_index=cut)
    assert second.fills == whole.fills
    assert second.venue.open_orders() == whole.venue.open_orders()
    assert sorted((x.level, x.quantity, x.purchase) for x in second.book.lots.values()) == sorted(
        (x.level, x.quantity, x.purchase) for x in whole.book.lots.values()
    )
    assert second.book.anchor == whole.book.anchor or not whole.book.lots
    if keep_state:
        assert second.book.gross_pnl == whole.book.gross_pnl and second.book.fees == whole.book.fees


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), config=CONFIGS, partial=st.booleans(), cut=st.integers(1, 300), down=st.integers(1, 100))
def test_restart_after_the_venue_matched_alone(seed, config, partial, cut, down):
    """Live, the venue keeps matching while the bot is down: reconstruct must leave the lots,
    SELLs and queue the bot would hold had it seen those fills."""
    prices = price_path(seed, cut + down + 50)
    e = Engine(config, MiniVenue(partial=partial))
    e.start()
    e.run(prices[:cut])
    v = e.venue
    for i, price in enumerate(prices[cut:cut + down]):  # the bot is down: fills happen, nobody hears
        v.time_ns = T0 + (cut + i) * 15 * S
        v.tick_index += 1
        v.last = price
        for oid in v.crossed(price):
            v.fill(oid, price, v.time_ns)
    # what the bot would hold: every complete BUY of ours whose SELL has not completed is a lot
    done_buys = {}
    sold = {}
    for f in v.executions:
        if f.side is Side.BUY and f.order_id not in v.orders:
            done_buys[f.order_id] = (parse_tag(f.ref).level, f.order_filled, f.order_avg_price)
        if f.side is Side.SELL:
            sold[parse_tag(f.ref).buy_order_id] = f.order_filled if f.order_id in v.orders else None
    expected = sorted(
        (lv, q - (sold.get(b) or 0), avg) for b, (lv, q, avg) in done_buys.items() if b not in sold or sold[b] is not None
    )
    again = Engine(config, v, state=e.ctx.state)
    again.start()  # the engine checks I1-I4 right after reconstruct
    assert sorted((x.level, x.quantity, x.purchase) for x in again.book.lots.values()) == expected
    n_sells = len([r for _, r in again.ctx.placed if r.side is Side.SELL])
    protected = {parse_tag(r.ref).buy_order_id for _, r in e.ctx.placed if r.side is Side.SELL}
    assert n_sells == len([b for b in done_buys if b not in protected])  # one SELL for each BUY that had none
    again.run(prices[cut + down:], start_index=cut + down)  # and it goes on keeping them


def test_bot_died_between_fill_and_sell():
    """Reconstruct 4 end to end: the BUY filled, the bot never placed its SELL."""
    e = Engine(TqqqGridConfig())
    e.start()
    e.tick(T0, 10000)
    # the venue fills the entry but the strategy never hears of it (it was down)
    v = e.venue
    v.time_ns = T0 + 15 * S
    v.tick_index += 1
    v.last = 10000
    (oid,) = v.crossed(10000)
    v.fill(oid, 10000, T0 + 15 * S)
    e2 = Engine(TqqqGridConfig(), v)
    e2.start()
    sells = [r for _, r in e2.ctx.placed if r.side is Side.SELL]
    assert len(sells) == 1 and parse_tag(sells[0].ref).buy_order_id == oid
    e3 = Engine(TqqqGridConfig(), v)
    e3.start()
    assert e3.ctx.placed == []  # never a SELL twice for the same BUY


# ----------------------------------------------------------------------------- registration and factory
def test_registration_and_factory(tmp_path):
    from bothost.registry import Registry

    reg = Registry()
    grid_plugin.bothost_register(registry=reg)
    kind = reg.get("strategy", "tqqq_grid")
    assert kind.model is TqqqGridConfig and kind.factory is make_strategy and kind.summary
    (tmp_path / "tqqq_lots.csv").write_text("level,shares\n0,3\n1,2\n2,1\n")
    env = BuildEnv(tmp_path / "bot.yaml", tmp_path / "state", "paper", logging.getLogger("t"))
    strat = make_strategy(TqqqGridConfig(), env)
    assert strat.lot_map.shares == (3, 2, 1)
    with pytest.raises(LotMapError):
        make_strategy(TqqqGridConfig(lots="missing.csv"), env)
    pm = pluggy.PluginManager("bothost")
    pm.add_hookspecs(hookspecs)
    pm.register(strat)  # the hookimpls validate against the specs
    names = {impl.plugin_name for impl in pm.hook.on_tick.get_hookimpls()}
    assert names


def test_entry_point_loads():
    from bothost.plugins import load_plugins

    _, reg, loaded = load_plugins()
    assert "tqqq_grid" in reg.names("strategy")


def test_config_defaults_and_errors():
    c = TqqqGridConfig()
    assert (c.profit_target, c.buy_step, c.l0_buffer) == (D("0.01"), D("0.01"), D("0.0025"))
    assert c.l0_timeout.total_seconds() == 120 and c.queue_depth == 3
    assert c.entry_order == "limit_if_touched" and c.outside_rth is True and c.on_orphan_shares == "alert"
    assert TqqqGridConfig(l0_timeout="2m").l0_timeout_ns == 120 * S
    from pydantic import ValidationError

    for bad in ({"profit_target": "0%"}, {"buy_step": "-1%"}, {"l0_buffer": "-0.1%"}, {"queue_depth": -1},
                {"entry_order": "market"}, {"on_orphan_shares": "sell"}, {"typo": 1}):
        with pytest.raises(ValidationError):
            TqqqGridConfig(**bad)


def test_describe_order_ref_for_reports():
    from bothost_plugins.tqqq_grid.plugin import describe_order_ref

    assert describe_order_ref(ref="tqqq_grid:SELL:L3:P97.0333:A100.00:B17") == {
        "level": 3, "role": "sell", "strategy": "tqqq_grid", "purchase": D("97.0333"), "buy_order_id": "17"}
    assert describe_order_ref(ref="tqqq_grid:BUY:L4:A100.00") == {"level": 4, "role": "queue", "strategy": "tqqq_grid"}
    assert describe_order_ref(ref="tqqq_grid:BUY:L0:M101.25")["role"] == "entry"
    assert describe_order_ref(ref="manual order") is None
    assert describe_order_ref(ref="") is None
