"""The tqqq_grid hooks (R1-R4b, I1-I5, S1) on the real engine and the real simulated venue.

Every test drives the Engine a run builds, around a SimBroker in a folder of its own
(``tests/support/grid_driver.py``), and I1-I4 are checked after every event the engine
finishes. Where the behaviour depends on a broker that answers late (IB), the venue is told to
behave so: ``late_acks``, ``late_cancels`` (a cancel is pending until after the next tick's
matching, so a fill can race it), ``commission_later``, ``reject_refs`` (error 201, then
Cancelled), ``inactive_refs``. Events the venue cannot produce (an execution of an order nobody
placed, a duplicate execution) are dispatched into the engine by hand, as a broker adapter hands
its events in; an order cancelled outside the bot is cancelled at the venue itself.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import tempfile
from decimal import Decimal
from pathlib import Path

import pluggy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bothost import hookspecs
from bothost.hookspecs import BuildEnv, CriticalStop, hookimpl
from bothost.model import (
    CommissionReport,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    Tick,
)
from bothost.state import atomic_write_json
from bothost_plugins.sim_broker.plugin import SimBroker, SimBrokerConfig
from bothost_plugins.tqqq_grid import plugin as grid_plugin
from bothost_plugins.tqqq_grid.grid import l0_limit, sell_price, trigger_chain
from bothost_plugins.tqqq_grid.lots import LotMapError
from bothost_plugins.tqqq_grid.params import TqqqGridConfig
from bothost_plugins.tqqq_grid.plugin import make_strategy
from bothost_plugins.tqqq_grid.tags import entry_tag, parse_tag, sell_tag
from support.grid_driver import S, SYM, GridDriver, at, cents, fill_key

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
PENDING_CANCEL, CANCELLED, REJECTED = OrderStatus.PENDING_CANCEL, OrderStatus.CANCELLED, OrderStatus.REJECTED
INACTIVE = OrderStatus.INACTIVE
PCT = D("0.01")
IB = {"broker_like": True}  # late acks, late cancels, commission reported after the fill
VENUES = pytest.mark.parametrize("venue", [{}, IB], ids=["at-once", "ib-like"])


@pytest.fixture
def make(tmp_path):
    """A grid on the real engine and a fresh simulated venue, each in a folder of its own."""
    n = itertools.count()

    def make(config: TqqqGridConfig | None = None, **options) -> GridDriver:
        return GridDriver(tmp_path / f"bot{next(n)}", config, **options)

    return make


def strategy_log(caplog, *words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "bothost.strategy.tqqq_grid" and all(w in r.getMessage() for w in words)]


# ----------------------------------------------------------------------------- R1
@VENUES
def test_r1_entry_timeout_and_retry_on_the_next_tick(make, venue):
    g = make(**venue).start()
    assert g.ctx.every_tick is True
    g.tick(at(0), 10000)
    (entry,) = g.placed
    req = entry.request
    assert (req.side, req.quantity, req.limit, req.order_type, req.tif) == (BUY, 94, D("100.25"), OrderType.LIMIT, "GTC")
    assert entry.tag.is_entry and req.outside_rth is True
    assert g.ctx.every_tick is False and g.ctx.wakes == [at(0) + 120 * S]
    for k in range(1, 8):  # the price runs away: never filled, nothing cancelled before the timeout
        g.tick(at(k), 10100 + k)
    assert len(g.placed) == 1 and g.cancels == []
    g.tick(at(8), 10200)  # the first tick at placed + 120 s: cancelled, not replaced on the same tick
    assert g.cancels == [entry.order_id] and len(g.placed) == 1
    if venue:  # IB: the cancel is pending until the broker confirms it (after the next tick's matching)
        assert g.order(entry.order_id).status is PENDING_CANCEL
    else:
        assert g.order(entry.order_id) is None and g.ctx.every_tick is True
    g.engine.dispatch(Tick(at(8), SYM, 10190))  # a second print with the same time: still the timeout's time
    g.engine.drain()
    assert g.order(entry.order_id) is None  # cancelled at the broker now (IB: after this print's matching)
    assert g.cancels == [entry.order_id] and len(g.placed) == 1  # R1: no new entry at the cancel's time
    g.tick(at(9), 10210)  # the tick after: a new entry, once the old one is confirmed cancelled
    assert len(g.placed) == 2
    retry = g.placed[1]
    assert retry.tag.is_entry and retry.time_ns == at(9) and retry.request.limit == l0_limit(D("102.10"), D("0.0025"))
    assert g.events.index(("update", entry.order_id, CANCELLED)) < g.events.index(("place", retry.order_id, retry.request.ref))
    assert [o.order_id for o in g.open_orders()] == [retry.order_id]  # never two live Level-0 orders


@VENUES
def test_r1_in_a_replay_that_skips_quiet_ticks_the_retry_is_on_the_tick_after_the_timeout(make, venue):
    g = make(**venue).start()
    g.run([10000] + [10100] * 7 + [10200, 10210, 10300, 10400])
    assert [(p.time_ns, p.tag.is_entry) for p in g.placed] == [(at(0), True), (at(9), True)]
    assert g.placed[1].request.limit == l0_limit(D("102.10"), D("0.0025"))
    assert g.engine.counters.handled_ticks < 12  # the quiet ticks before the timeout were skipped


@VENUES
def test_r1_entry_fills_on_its_timeout_tick(make, venue):
    g = make(**venue).start()
    g.tick(at(0), 10000)
    g.tick(at(8), 10020)  # matched first (fills at 100.20 <= 100.25), then the timeout check
    assert g.cancels == []
    assert len(g.book.lots) == 1 and g.book.anchor == D("100.20") and g.position == 94


def test_r1_ignores_bad_ticks(make):
    g = make().start()
    for tick in (Tick(at(0), SYM, 0), Tick(at(1), SYM, -5), Tick(at(2), "QQQ", 40000)):
        g.engine.dispatch(tick)  # the engine's S3 drops the first two; the third is not the grid's symbol
    assert g.engine.counters.bad_ticks == 2
    for k, price in ((3, 0), (4, -5)):  # handed past the engine's check (a replay's path): the grid's own S3
        g.tick(at(k), price)
    assert g.placed == []
    g.tick(at(5), 10000)
    assert [(p.request.limit, p.time_ns) for p in g.placed] == [(D("100.25"), at(5))]


# ----------------------------------------------------------------------------- R2, R3, R4
@VENUES
def test_entry_fill_sets_anchor_sell_and_queue(make, venue):
    g = make(**venue).start()
    g.tick(at(0), 10000)
    g.tick(at(1), 10000)  # marketable on arrival: fills at this tick's price
    assert g.book.anchor == D("100.00")
    sell, *queue = g.placed[1:]
    r = sell.request
    assert (r.side, r.quantity, r.limit, r.order_type, r.tif) == (SELL, 94, D("101.00"), OrderType.LIMIT, "GTC")
    assert (sell.tag.level, sell.tag.price, sell.tag.buy_order_id) == (0, D("100.00"), g.placed[0].order_id)
    assert [(q.request.quantity, q.request.limit, q.request.aux, q.request.order_type) for q in queue] == [
        (88, D("99.00"), D("99.00"), OrderType.LIMIT_IF_TOUCHED),
        (82, D("98.01"), D("98.01"), OrderType.LIMIT_IF_TOUCHED),
        (77, D("97.03"), D("97.03"), OrderType.LIMIT_IF_TOUCHED),
    ]
    assert g.ctx.every_tick is False
    assert g.ctx.recorded()["book"]["anchor"] == "100.00" and g.state["lots"][0]["level"] == 0
    if venue:  # IB acknowledges on the next tick (an untriggered LIT as PreSubmitted): nothing changes
        n = len(g.placed)
        g.tick(at(2), 10000)
        acks = {u.order_id: u.status for u in g.seen.updates if u.time_ns == at(2)}
        assert acks == {sell.order_id: OrderStatus.SUBMITTED, **{q.order_id: OrderStatus.PRE_SUBMITTED for q in queue}}
        assert len(g.placed) == n and g.cancels == []


@VENUES
def test_queue_fill_reconciles_by_difference_and_sell_rearms(make, venue):
    g = make(TqqqGridConfig(entry_order="limit"), **venue).start()
    g.ticks([10000, 10000])
    n = len(g.placed)
    g.tick(at(2), 9900)  # L1 fills at 99.00
    new = g.placed[n:]
    assert [(p.side, p.request.quantity, p.request.limit) for p in new] == [(SELL, 88, D("99.99")), (BUY, 72, D("96.06"))]
    assert new[1].request.order_type is OrderType.LIMIT and new[1].request.aux is None
    assert g.cancels == []  # L2, L3 kept
    l4 = new[1].order_id
    n = len(g.placed)
    g.tick(at(3), 9999)  # L1's SELL fills: the lot closes, R3 re-arms L1 and drops L4
    assert len(g.book.lots) == 1
    assert [(p.side, p.request.quantity, p.request.limit) for p in g.placed[n:]] == [(BUY, 88, D("99.00"))]
    assert g.cancels == [l4]
    g.tick(at(4), 9999)
    assert sorted((o.quantity, o.limit) for o in g.open_orders(BUY)) == [(77, D("97.03")), (82, D("98.01")), (88, D("99.00"))]
    assert g.book.gross_pnl == 88 * (D("99.99") - D("99.00"))
    assert g.book.fees == 3  # entry, L1 BUY, L1 SELL ($1.00 minimum each)
    view = g.ctx.recorded()["book"]
    assert D(view["net_realized_pnl"]) == 88 * (D("99.99") - D("99.00")) - 3
    assert D(view["realized_pnl"]) == 88 * (D("99.99") - D("99.00"))


@VENUES
def test_last_lot_sold_cancels_queue_and_reenters_on_the_same_tick(make, venue):
    g = make(**venue).start()
    g.ticks([10000, 10000])
    queue = [p.order_id for p in g.placed[2:]]
    assert len(queue) == 3
    g.tick(at(2), 10100)  # L0's SELL at 101.00 fills
    assert not g.book.lots
    assert sorted(g.cancels) == sorted(queue)
    last = g.placed[-1]
    assert last.side is BUY and last.tag.is_entry and last.request.limit == D("101.25") and last.time_ns == at(2)


@pytest.mark.parametrize("late", [False, True], ids=["cancel-at-once", "late-cancel"])
def test_partial_entry_then_timeout_makes_one_lot_of_what_filled(make, late):
    g = make(partial_fill_shares=47, late_cancels=late).start()
    g.tick(at(0), 10000)
    g.tick(at(1), 10000)  # 47 of 94 at 100.00
    g.tick(at(2), 10050)  # above the limit: nothing more
    entry = g.placed[0].order_id
    assert not g.book.lots and g.book.buys[entry].filled == 47
    g.tick(at(8), 10060)  # timeout: cancel; its cancellation completes the BUY (R2)
    if late:
        assert not g.book.lots and g.order(entry).status is PENDING_CANCEL
        g.tick(at(9), 10060)  # the broker confirms after this tick's matching
    (lot,) = g.book.lots.values()
    assert (lot.level, lot.quantity, lot.purchase) == (0, 47, D("100.00"))
    assert g.book.anchor == D("100.00") and g.position == 47
    assert [p.request.quantity for p in g.placed if p.side is SELL] == [47]


def test_partial_buys_make_one_lot_and_partial_sells_book_what_filled(make):
    g = make(partial_fill_shares=47).start()
    g.tick(at(0), 10000)
    g.tick(at(1), 10000)  # 47 at this tick's price (marketable on arrival)
    g.tick(at(2), 10000)  # 47 more, at the limit 100.25: complete
    assert [(lot.quantity, lot.purchase) for lot in g.book.lots.values()] == [(94, D("100.125"))]
    assert g.book.anchor == D("100.125")  # the average of the partial fills, sub-cent
    assert trigger_chain(D("100.125"), PCT, 2)[1] == D("99.12")
    g.tick(at(3), 9900)  # L1: 47 of 88 at 99.12
    assert len(g.book.lots) == 1
    g.tick(at(4), 9900)  # 41 more: complete -> one lot of 88
    assert sorted(lot.quantity for lot in g.book.lots.values()) == [88, 94]
    assert [p.request.quantity for p in g.placed if p.side is SELL] == [94, 88]
    gross0 = g.book.gross_pnl
    g.tick(at(5), 10011)  # L1's SELL @ 100.11: 47 of 88 (R4b)
    lot1 = next(lot for lot in g.book.lots.values() if lot.level == 1)
    assert lot1.quantity == 41 and g.book.gross_pnl - gross0 == 47 * (D("100.11") - D("99.12"))
    g.tick(at(6), 10011)
    assert [lot.level for lot in g.book.lots.values()] == [0]
    assert g.book.gross_pnl - gross0 == 88 * (D("100.11") - D("99.12")) and g.book.fees == 6


@pytest.mark.parametrize("partial", [None, 40])
def test_a_fill_after_the_cancel_request_still_makes_a_lot(make, partial):
    """IB: an order whose cancel was asked for can still fill until the broker confirms."""
    g = make(late_cancels=True, partial_fill_shares=partial).start()
    g.tick(at(0), 10000)
    entry = g.placed[0]
    for k in range(1, 9):
        g.tick(at(k), 10100)  # the timeout tick (8) asks for the cancel
    assert g.cancels == [entry.order_id] and g.order(entry.order_id).status is PENDING_CANCEL
    g.tick(at(9), 10010)  # the broker fills it before the cancel takes effect
    qty = partial or 94
    assert [(lot.level, lot.quantity, lot.purchase) for lot in g.book.lots.values()] == [(0, qty, D("100.25"))]
    assert g.book.entry_id is None and g.book.anchor == D("100.25") and g.order(entry.order_id) is None
    sells = [p for p in g.placed if p.side is SELL]
    assert [p.request.quantity for p in sells] == [qty]
    # a Cancelled for the order arriving late (an adapter repeating itself) changes nothing
    g.engine.dispatch(OrderUpdate(entry.order_id, at(9), CANCELLED, SYM, BUY, 94, qty, entry.request.ref, D("100.25")))
    g.engine.drain()
    assert len(g.book.lots) == 1 and not g.book.halted and len([p for p in g.placed if p.side is SELL]) == 1


def test_a_cancel_confirmed_with_more_filled_than_reported_completes_the_buy(make, caplog):
    """The broker's cancel confirmation says 10 shares filled, but their execution report never
    arrived: the BUY is complete with what the broker says (R2)."""
    g = make(late_cancels=True, partial_fill_shares=10).start()
    lost = []
    match = g.broker.match

    def match_losing_reports(time_ns, price):
        for fill in match(time_ns, price):
            if time_ns == at(9):
                lost.append(fill)  # the execution report is lost on the way
                continue
            yield fill

    g.broker.match = match_losing_reports
    g.tick(at(0), 10000)
    for k in range(1, 9):
        g.tick(at(k), 10100)
    with caplog.at_level(logging.WARNING):
        g.tick(at(9), 10000)
    assert [f.quantity for f in lost] == [10]
    assert [(lot.level, lot.quantity, lot.purchase) for lot in g.book.lots.values()] == [(0, 10, D("100.25"))]
    assert g.position == 10 and [p.request.quantity for p in g.placed if p.side is SELL] == [10]
    assert strategy_log(caplog, "ended with 10 filled but only 0 were reported")


def test_a_tag_is_reused_only_once_its_cancel_is_confirmed(make):
    """I4 against a broker whose cancels are pending for a tick: the slot waits for its tag."""
    g = make(late_cancels=True).start()
    g.ticks([10000, 10000])  # L0 bought at 100.00; queue L1, L2, L3
    g.tick(at(2), 9801)  # L1 and L2 fill: lots 0..2, queue 3, 4, 5
    assert sorted(b.level for b in g.book.buys.values()) == [3, 4, 5]
    l5 = g.buy_at_level(5)
    l5_ref = g.book.buys[l5].ref
    g.tick(at(3), 9899)  # L2's SELL @ 98.99 fills: m = 1, so cancel L5 and re-arm L2
    assert g.cancels == [l5] and g.book.buys[l5].cancel_requested
    assert g.order(l5).status is PENDING_CANCEL
    n = len(g.placed)
    g.tick(at(4), 9801)  # the new L2 fills: m = 2 again, L5 wanted while its old order is still there
    new = g.placed[n:]
    assert [(p.side, p.tag.level) for p in new] == [(SELL, 2), (BUY, 5)]
    new_l5 = new[1]
    assert new_l5.request.ref == l5_ref and new_l5.order_id != l5
    assert new_l5.request.limit == trigger_chain(D("100.00"), PCT, 6)[5]
    # the new L5 was placed only after the broker confirmed the old one cancelled
    assert g.events.index(("update", l5, CANCELLED)) < g.events.index(("place", new_l5.order_id, l5_ref))
    assert [o.order_id for o in g.open_orders() if o.ref == l5_ref] == [new_l5.order_id]


def test_rejected_sell_alerts_and_rejected_buy_is_dropped(make, caplog):
    g = make(reject_refs=[":BUY:L2:"]).start()
    g.tick(at(0), 10000)
    with caplog.at_level(logging.WARNING):
        g.tick(at(1), 10000)
    assert strategy_log(caplog, "rejected", "left out of the book")
    assert sorted(b.level for b in g.book.buys.values()) == [1, 3]  # L2 stays out of the book
    assert sorted(parse_tag(o.ref).level for o in g.open_orders(BUY)) == [1, 3]
    assert not g.book.halted and g.engine.alert is None
    warned = g.engine.warnings["tqqq_grid: BUY rejected by the broker"]  # the trader is told, not only the log
    assert warned["count"] == 1 and "L2" in warned["details"] and "after its next fill" in warned["details"]

    g2 = make(reject_refs=[":SELL:"]).start()
    g2.tick(at(0), 10000)
    with pytest.raises(CriticalStop) as info:
        g2.tick(at(1), 10000)
    assert "SELL rejected" in info.value.alert.title
    assert g2.seen.alerts == [info.value.alert] and g2.book.halted  # one alert, though IB reports twice
    n = len(g2.placed)
    g2.tick(at(2), 9000)  # the venue still fills the resting BUYs; the bot places nothing more (S1)
    assert len(g2.placed) == n and g2.cancels == []


def test_rejected_entry_backs_off(make):
    g = make(reject_refs=[":BUY:L0:"]).start()
    g.ticks([10000] * 10)
    assert [p.time_ns for p in g.placed] == [at(0), at(8)]  # at 0 s and again once l0_timeout has passed
    assert not g.book.halted and g.engine.alert is None and g.open_orders() == []
    assert g.engine.warnings["tqqq_grid: BUY rejected by the broker"]["count"] == 2  # one title, counted


def test_unknown_fill_alerts(make):
    g = make().start()
    g.tick(at(0), 10000)
    fill = Fill("z1", "999", at(0), SYM, BUY, 5, D("10"), D("1"), "", 5, 5, D("10"))
    with pytest.raises(CriticalStop, match="does not hold"):
        g.engine.dispatch(fill)  # as an adapter would hand in an execution of an order nobody here placed
    assert g.book.halted and len(g.seen.alerts) == 1


def test_duplicate_execution_is_ignored(make, caplog):
    g = make(partial_fill_shares=47).start()
    g.ticks([10000, 10000])
    (fill,) = g.seen.fills
    fees = g.book.fees
    with caplog.at_level(logging.WARNING):
        g.engine.dispatch(fill)  # the broker reports the same execution twice
    assert g.book.fees == fees and g.book.buys[fill.order_id].filled == 47
    g.tick(at(2), 10000)
    assert [lot.quantity for lot in g.book.lots.values()] == [94]
    g.tick(at(3), 10113)  # the SELL @ 101.13 fills 47
    sell_fill = g.seen.fills[-1]
    assert sell_fill.side is SELL
    gross = g.book.gross_pnl
    g.engine.dispatch(sell_fill)
    assert g.book.gross_pnl == gross and [lot.quantity for lot in g.book.lots.values()] == [47]
    assert len(strategy_log(caplog, "duplicate execution")) == 2


@pytest.mark.parametrize("late", [False, True], ids=["cancel-at-once", "late-cancel"])
def test_sell_cancelled_outside_the_bot_alerts(make, late, caplog):
    g = make(late_cancels=late).start()
    g.ticks([10000, 10000])
    sell_id = g.sell_of_level(0)
    g.venue.cancel(sell_id)  # someone cancels it in TWS
    if late:
        with caplog.at_level(logging.WARNING):
            g.deliver()  # PendingCancel: warned about, the lot is still protected
        assert strategy_log(caplog, "being cancelled outside the bot") and not g.book.halted
        with pytest.raises(CriticalStop, match="unprotected"):
            g.tick(at(2), 10000)
    else:
        with pytest.raises(CriticalStop, match="unprotected"):
            g.deliver()
    assert g.book.halted and len(g.seen.alerts) == 1


def test_state_saved_once_per_event(make):
    g = make().start()
    g.tick(at(0), 10000)
    saves = g.saves
    g.tick(at(1), 10000)  # one fill: SELL + 3 BUYs placed, one save
    assert g.saves == saves + 1
    on_disk = json.loads((g.folder / "bot_state.json").read_text())["strategies"]["tqqq_grid"]
    assert on_disk["anchor"] == "100.00" and on_disk["lots"][0]["quantity"] == 94
    assert on_disk["last_event_ns"] == at(1)
    saves = g.saves
    g.tick(at(2), 10050)  # nothing happens: nothing saved
    assert g.saves == saves


# ----------------------------------------------------------------------------- reconstruct through the hook
def prepared_venue(folder: Path, build) -> Path:
    """The venue as a broker would hold it before the bot starts: ``build(venue)`` trades on it."""
    folder.mkdir(parents=True, exist_ok=True)
    broker = SimBroker(SimBrokerConfig(), BuildEnv(folder / "bot.yaml", folder, "paper", logging.getLogger("t")))
    broker.open()
    build(broker.venue)
    broker.checkpoint()
    broker.store.close()
    return folder


def bought(venue, time_ns: int, qty: int, price: Decimal, ref: str = "") -> str:
    """A BUY that fills at ``price`` on the tick at ``time_ns``."""
    venue.advance(time_ns - S, cents(price) + 50)
    oid = venue.place(OrderRequest(SYM, BUY, qty, price, ref=ref))
    assert [f.order_id for f in venue.match(time_ns, cents(price))] == [oid]
    return oid


def test_reconstruct_alert_places_nothing(tmp_path):
    def build(v):
        buy = bought(v, at(0), 94, D("100.00"), entry_tag("tqqq_grid", D("99.90")))
        v.place(OrderRequest(SYM, SELL, 94, D("101.00"), ref=sell_tag("tqqq_grid", 0, D("100.00"), D("100.00"), buy)))
        bought(v, at(1), 50, D("100.00"))  # 50 more shares, bought by hand: nothing protects them

    g = GridDriver(prepared_venue(tmp_path / "bot", build))
    with pytest.raises(CriticalStop, match="orphan shares"):
        g.start()
    assert g.placed == [] and g.cancels == []  # not even the queue the L0 lot wants (S1)
    assert [(o.side, o.quantity) for o in g.open_orders()] == [(SELL, 94)]  # the broker's orders stay
    assert any("CRITICAL" in line for line in g.ctx.recorded()["reconstruct"])
    assert len(g.seen.alerts) == 1


def test_reconstruct_adopts_orphans_when_told(tmp_path):
    g = GridDriver(prepared_venue(tmp_path / "bot", lambda v: bought(v, at(0), 50, D("100.00"))),
                   TqqqGridConfig(on_orphan_shares="adopt")).start()
    assert [(lot.level, lot.quantity, lot.purchase) for lot in g.book.lots.values()] == [(0, 50, D("100.00"))]
    assert [(p.side, p.request.quantity, p.request.limit) for p in g.placed] == [
        (SELL, 50, D("101.00")), (BUY, 88, D("99.00")), (BUY, 82, D("98.01")), (BUY, 77, D("97.03"))]


def test_state_anchor_is_the_fallback(tmp_path):
    t = trigger_chain(D("100.00"), PCT, 88)

    def build(v):  # a legacy (untagged) 1-share lot: 1 share is the quantity of many levels
        bought(v, at(0), 1, t[70])
        v.place(OrderRequest(SYM, SELL, 1, sell_price(t[70], PCT)))

    without = GridDriver(prepared_venue(tmp_path / "without", build))
    with pytest.raises(CriticalStop, match="cannot tell the levels"):
        without.start()
    folder = prepared_venue(tmp_path / "with", build)
    atomic_write_json(folder / "bot_state.json", {"strategies": {"tqqq_grid": {
        "anchor": "100.00", "strategy_id": "tqqq_grid", "gross_pnl": "5", "fees": "2"}}})
    g = GridDriver(folder).start()
    assert [lot.level for lot in g.book.lots.values()] == [70]
    assert sorted(o.limit for o in g.open_orders(BUY)) == [t[73], t[72], t[71]]
    assert g.book.realized_pnl == 3


# ----------------------------------------------------------------------------- a broker that answers late
class FeesAtFill:
    """An observer: what the book held when each fill had been handled (observers run after the strategy)."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def on_fill(self, ctx, fill):
        book = ctx.instance.book
        self.seen.append((fill.commission, book.fees, set(book.fee_pending)))


def test_commission_reported_later_is_booked_once(make):
    at_fill = FeesAtFill()
    g = make(commission_later=True, observers=[at_fill]).start()
    g.ticks([10000, 10000])
    (fill,) = g.seen.fills
    assert at_fill.seen == [(None, D(0), {fill.exec_id})]  # booked at once, its fee not yet known
    (report,) = g.seen.commissions
    assert (report.exec_id, report.commission) == (fill.exec_id, D("1.00"))
    assert g.book.fees == D("1.00") and not g.book.fee_pending
    g.engine.dispatch(report)  # the broker reports it again
    g.engine.dispatch(CommissionReport(fill.exec_id, D("1.00"), at(1)))
    assert g.book.fees == D("1.00")
    g.tick(at(2), 10100)  # the SELL fills: its fee is booked once too
    assert g.book.fees == D("2.00") and g.book.realized_pnl == 94 * D("1.00") - 2
    on_disk = json.loads((g.folder / "bot_state.json").read_text())["strategies"]["tqqq_grid"]
    assert on_disk["fees"] == "2.00" and on_disk["fee_pending"] == []


def test_a_commission_missed_before_a_restart_is_booked_once_after_it(make):
    g = make(commission_later=True).start()
    missed = []
    g.broker.bind(lambda e: missed.append(e) if isinstance(e, CommissionReport) else g.engine.emit_broker(e))
    g.ticks([10000, 10000])  # the bot stops before the commission report reaches it
    assert [type(e) for e in missed] == [CommissionReport] and g.book.fees == 0 and g.book.fee_pending
    g.close()
    again = GridDriver(g.folder, commission_later=True).start()  # the broker's executions carry it now
    assert again.book.fees == D("1.00") and not again.book.fee_pending
    again.engine.dispatch(missed[0])  # and the report itself, delivered late after all
    assert again.book.fees == D("1.00")


def test_an_inactive_sell_keeps_its_lot_and_does_not_halt(make, caplog):
    with caplog.at_level(logging.WARNING):
        g = make(inactive_refs=[":SELL:L0:"]).start()
        g.ticks([10000, 10000])
    sell_id = g.sell_of_level(0)
    assert g.order(sell_id).status is INACTIVE
    assert g.book.lots[sell_id].sell_inactive and not g.book.halted and g.engine.alert is None
    assert strategy_log(caplog, "is Inactive at the broker", "kept as the lot's SELL")
    assert g.ctx.recorded()["book"]["lots"][0]["sell_inactive"] is True
    g.ticks([10150, 10200], start=2)  # above its limit: a parked SELL does not fill; no second SELL
    assert [p.tag.level for p in g.placed if p.side is SELL] == [0] and g.position == 94
    g.tick(at(4), 9900)  # the queue works on: L1 bought, its SELL placed
    assert sorted(lot.level for lot in g.book.lots.values()) == [0, 1]
    g.close()
    again = GridDriver(g.folder, inactive_refs=[":SELL:L0:"]).start()  # a restart keeps it as the lot's SELL
    assert [p.side for p in again.placed] == []
    assert [(lot.level, lot.sell_inactive) for lot in sorted(again.book.lots.values(), key=lambda x: x.level)] == [
        (0, True), (1, False)]


def test_an_inactive_queue_buy_keeps_its_slot(make, caplog):
    with caplog.at_level(logging.WARNING):
        g = make(inactive_refs=[":BUY:L2:"]).start()
        g.ticks([10000, 10000])
    l2 = g.buy_at_level(2)
    assert g.book.buys[l2].inactive and g.order(l2).status is INACTIVE
    assert strategy_log(caplog, "is Inactive at the broker", "kept in its slot")
    assert [q.get("inactive", False) for q in g.ctx.recorded()["book"]["queue"]] == [False, True, False]
    n = len(g.placed)
    g.tick(at(2), 9900)  # L1 fills: L2 is still wanted, and the parked order keeps its slot
    assert [(p.side, p.tag.level) for p in g.placed[n:]] == [(SELL, 1), (BUY, 4)]
    assert [o.order_id for o in g.open_orders(BUY) if parse_tag(o.ref).level == 2] == [l2]
    g.tick(at(3), 9801)  # through L2's price: a parked order does not fill
    assert sorted(lot.level for lot in g.book.lots.values()) == [0, 1] and g.position == 94 + 88
    assert not g.book.halted and g.cancels == []


def test_a_buy_being_cancelled_outside_the_bot_is_waited_for(make, caplog):
    """IB reports PendingCancel for a BUY someone cancels in TWS: the bot marks it as being
    cancelled (never asks again), its fills still count, and its slot is placed again only once
    the broker confirms the cancel (I4)."""
    g = make(late_cancels=True).start()
    g.ticks([10000, 10000])
    l1, l3 = g.buy_at_level(1), g.buy_at_level(3)
    l3_ref = g.book.buys[l3].ref
    g.venue.cancel(l1)
    g.venue.cancel(l3)
    with caplog.at_level(logging.WARNING):
        g.deliver()
    assert g.book.buys[l1].cancel_requested and g.book.buys[l3].cancel_requested
    assert len(strategy_log(caplog, "being cancelled outside the bot")) == 2
    g.tick(at(2), 9801)  # L1 fills before its cancel takes effect, L2 fills; L3's cancel is confirmed
    assert sorted(lot.level for lot in g.book.lots.values()) == [0, 1, 2] and g.position == 94 + 88 + 82
    assert g.cancels == []
    (new_l3,) = [p for p in g.placed if p.request.ref == l3_ref and p.order_id != l3]
    assert g.events.index(("update", l3, CANCELLED)) < g.events.index(("place", new_l3.order_id, l3_ref))
    assert sorted(parse_tag(o.ref).level for o in g.open_orders(BUY)) == [3, 4, 5]


def test_a_201_reject_then_cancelled_reaches_the_book_once(make, caplog):
    with caplog.at_level(logging.INFO):
        g = make(reject_refs=[":BUY:L2:"]).start()
        g.ticks([10000, 10000])
        g.tick(at(2), 9900)  # L1 fills: L2 is wanted again, placed again, rejected again
    l2s = [p.order_id for p in g.placed if p.side is BUY and p.tag.level == 2]
    assert len(l2s) == 2
    for oid in l2s:
        shown = [(u.status, u.code) for u in g.seen.updates if u.order_id == oid]
        assert shown == [(REJECTED, 201)]  # the Cancelled that IB sends after a 201 never reached the grid
        assert len(strategy_log(caplog, f"BUY {oid} ", "rejected")) == 1
    assert "later status cancelled ignored" in caplog.text
    assert not strategy_log(caplog, "cancelled outside the bot")
    assert not g.book.halted and sorted(b.level for b in g.book.buys.values()) == [3, 4]


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
BROKERS = st.builds(
    lambda like, partial: {**like, "partial_fill_shares": partial},
    st.sampled_from([{}, IB, {"late_cancels": True}, {"late_acks": True, "commission_later": True}]),
    st.sampled_from([None, 5, 40]),
)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _lots(g: GridDriver) -> list[tuple]:
    return sorted((x.level, x.quantity, x.purchase) for x in g.book.lots.values())


@PROPERTY
@given(seed=st.integers(0, 10**6), config=CONFIGS, broker=BROKERS, verify=st.booleans())
def test_invariants_hold_after_every_event(seed, config, broker, verify):
    with tempfile.TemporaryDirectory() as folder:
        g = GridDriver(Path(folder), config, live_state_flush=False, **broker).start()
        g.run(price_path(seed, 400), verify_skips=verify)  # I1-I4 checked after every event
        assert g.checked > 1 and not g.book.halted and g.engine.alert is None
        executions = g.executions()
        # the book's P&L agrees with the broker's executions
        gross = sum((f.quantity * (f.price - parse_tag(f.ref).price) for f in executions if f.side is SELL), D(0))
        assert g.book.gross_pnl == gross
        assert g.book.fees == sum((f.commission for f in executions), D(0)) and not g.book.fee_pending
        g.close()


@PROPERTY
@given(seed=st.integers(0, 10**6), config=CONFIGS, broker=BROKERS, cut=st.integers(1, 299), keep_state=st.booleans())
def test_restart_equivalence(seed, config, broker, cut, keep_state):
    """I5 in small: stop the bot between two ticks, start a new one from the venue alone (and
    maybe its state backup), go on: the same fills, the same orders, the same book."""
    prices = price_path(seed, 300)
    with tempfile.TemporaryDirectory() as folder:
        whole = GridDriver(Path(folder) / "whole", config, live_state_flush=False, **broker).start()
        whole.run(prices)
        first = GridDriver(Path(folder) / "cut", config, live_state_flush=False, **broker).start()
        first.run(prices[:cut])
        first.close()
        if not keep_state:
            (first.folder / "bot_state.json").unlink(missing_ok=True)
        second = GridDriver(first.folder, config, live_state_flush=False, **broker).start()
        assert second.placed == [] and second.cancels == []  # the venue held everything the bot wanted
        second.run(prices[cut:], start=cut)
        assert [fill_key(f) for f in second.executions()] == [fill_key(f) for f in whole.executions()]
        assert second.open_orders() == whole.open_orders()
        assert _lots(second) == _lots(whole)
        assert second.book.anchor == whole.book.anchor or not whole.book.lots
        assert (second.book.gross_pnl, second.book.fees) == (whole.book.gross_pnl, whole.book.fees)
        assert not (whole.book.halted or second.book.halted)
        whole.close()
        second.close()


@PROPERTY
@given(seed=st.integers(0, 10**6), config=CONFIGS, broker=BROKERS, cut=st.integers(1, 250), down=st.integers(1, 100))
def test_restart_after_the_venue_matched_alone(seed, config, broker, cut, down):
    """Live, the venue keeps matching while the bot is down: reconstruct must leave the lots,
    SELLs and queue the bot would hold had it seen those fills."""
    prices = price_path(seed, cut + down + 50)
    with tempfile.TemporaryDirectory() as folder:
        g = GridDriver(Path(folder), config, live_state_flush=False, **broker).start()
        g.run(prices[:cut])
        g.venue_alone(prices[cut:cut + down], start=cut)  # the bot is down: fills happen, nobody hears
        open_ids = {o.order_id for o in g.open_orders()}
        executions = g.executions()
        g.close()
        # what the bot would hold: every complete BUY of ours whose SELL has not completed is a lot
        done_buys, sold = {}, {}
        for f in executions:
            tag = parse_tag(f.ref)
            if f.side is BUY and f.order_id not in open_ids:
                done_buys[f.order_id] = (tag.level, f.order_filled, f.order_avg_price)
            if f.side is SELL:
                sold[tag.buy_order_id] = f.order_filled if f.order_id in open_ids else None
        expected = sorted((lv, q - (sold.get(b) or 0), avg) for b, (lv, q, avg) in done_buys.items()
                          if b not in sold or sold[b] is not None)
        again = GridDriver(g.folder, config, live_state_flush=False, **broker).start()  # I1-I4 checked
        assert _lots(again) == expected
        protected = {p.tag.buy_order_id for p in g.placed if p.side is SELL}
        assert len([p for p in again.placed if p.side is SELL]) == len([b for b in done_buys if b not in protected])
        again.run(prices[cut + down:], start=cut + down)  # and it goes on keeping them
        assert not again.book.halted and again.engine.alert is None
        again.close()


def test_bot_died_between_fill_and_sell(make):
    """Reconstruct 4 end to end: the BUY filled, the bot never placed its SELL."""
    g = make().start()
    g.tick(at(0), 10000)
    entry = g.placed[0].order_id
    assert [f.order_id for f in g.venue_alone([10000], start=1)] == [entry]  # the bot was down
    g.close()
    again = GridDriver(g.folder).start()
    sells = [p for p in again.placed if p.side is SELL]
    assert [(p.tag.buy_order_id, p.request.quantity, p.request.limit) for p in sells] == [(entry, 94, D("101.00"))]
    again.close()
    third = GridDriver(g.folder).start()
    assert third.placed == []  # never a SELL twice for the same BUY


def test_restart_while_the_level0_cancel_is_pending_then_it_fills(tmp_path):
    """I5 against a broker whose cancels are pending for a tick: the bot stops right after asking
    to cancel its unfilled Level-0 BUY; the broker fills it before the cancel takes effect. The
    restarted bot must hold what the bot that never stopped holds: that fill sets the anchor,
    and the queue is placed under it."""
    prices = [10000] + [10100] * 8 + [10000, 9950, 9900]
    whole = GridDriver(tmp_path / "whole", late_cancels=True).start()
    whole.ticks(prices)
    first = GridDriver(tmp_path / "cut", late_cancels=True).start()
    first.ticks(prices[:9])  # tick 8 is the Level-0 timeout: cancel asked for, pending
    assert first.order(first.placed[0].order_id).status is PENDING_CANCEL
    first.close()
    second = GridDriver(first.folder, late_cancels=True).start()
    second.ticks(prices[9:], start=9)  # tick 9: the Level-0 BUY fills at 100.25
    assert whole.book.anchor == D("100.25") and _lots(whole) == [(0, 94, D("100.25")), (1, 88, D("99.25"))]
    assert second.book.anchor == whole.book.anchor
    assert _lots(second) == _lots(whole)
    assert [fill_key(f) for f in second.executions()] == [fill_key(f) for f in whole.executions()]


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


def test_a_stale_feed_holds_new_level0_entries_until_it_is_back(tmp_path, caplog):
    """The feed said LOST (stale, or away): no new Level-0 entry; the notifiers get a warning
    and the bot runs on; after the feed's RESTORED the next tick enters."""
    from bothost.model import ConnectionEvent, ConnectionState

    from support.grid_driver import GridDriver, at

    d = GridDriver(tmp_path).start()
    with caplog.at_level(logging.WARNING):
        d.engine.dispatch(ConnectionEvent(at(0), "alpaca_feed", ConnectionState.LOST, "stale: no trades for 30s",
                                          origin="feed"))
    d.ticks([5000, 5001], start=1)
    assert d.placed == [] and d.engine.alert is None and not d.engine.stopping
    assert "WARNING: market data: alpaca_feed lost" in caplog.text
    d.engine.dispatch(ConnectionEvent(at(3), "alpaca_feed", ConnectionState.RESTORED, "back", origin="feed"))
    d.ticks([5002], start=3)
    assert [p.tag.level for p in d.placed] == [0] and d.placed[0].time_ns == at(3)
