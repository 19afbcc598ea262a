"""Reconstruct 1-6 (spec tqqq-grid.md) on generated and hand-made broker snapshots."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bothost.model import BrokerSnapshot, Fill, OpenOrder, OrderType, Position, Side
from bothost_plugins.tqqq_grid.grid import desired_queue, sell_price, trigger_chain
from bothost_plugins.tqqq_grid.lots import LotMap, load_lot_map
from bothost_plugins.tqqq_grid.params import TqqqGridConfig
from bothost_plugins.tqqq_grid.grid import derive_anchor
from bothost_plugins.tqqq_grid.reconstruct import execution_pnl, reconstruct
from bothost_plugins.tqqq_grid.tags import entry_tag, parse_tag, queue_tag, sell_tag

D = Decimal
SID = "tqqq_grid"
SYM = "TQQQ"
LM = load_lot_map(Path(__file__).resolve().parents[1] / "configs" / "tqqq_lots.csv")
A100 = D("100.00")
SMALL = LotMap((5, 4, 3, 3, 2, 2, 2, 1, 1, 1))


# ----------------------------------------------------------------------------- a true book and its rendering
@dataclass
class TrueLot:
    level: int
    purchase: Decimal
    shares: int  # what the BUY bought
    sold: int = 0  # already sold by a partially filled SELL (R4b)
    buy_id: str = ""
    sell_id: str = ""

    @property
    def held(self) -> int:
        return self.shares - self.sold


@dataclass
class World:
    params: TqqqGridConfig
    lot_map: LotMap
    anchor: Decimal
    lots: list[TrueLot]

    @property
    def triggers(self):
        return trigger_chain(self.anchor, self.params.buy_step, len(self.lot_map))

    def desired(self):
        m = max((lot.level for lot in self.lots), default=None)
        return desired_queue(m, self.triggers, self.lot_map, self.params.queue_depth)


_ids = itertools.count(1000)


def oid() -> str:
    return str(next(_ids))


def sell_order(w: World, lot: TrueLot, tagged: bool) -> OpenOrder:
    ref = sell_tag(SID, lot.level, lot.purchase, w.anchor, lot.buy_id) if tagged else ""
    return OpenOrder(
        order_id=lot.sell_id, symbol=SYM, side=Side.SELL, quantity=lot.shares, filled=lot.sold,
        limit=sell_price(lot.purchase, w.params.profit_target), ref=ref, placed_ns=1,
    )


def queue_orders(w: World, mode: str) -> list[OpenOrder]:
    if mode == "none":
        return []
    out = []
    for s in w.desired():
        ref = queue_tag(SID, s.level, w.anchor) if mode == "tagged" else ""
        out.append(OpenOrder(oid(), SYM, Side.BUY, s.quantity, 0, s.price, OrderType.LIMIT_IF_TOUCHED, s.price, ref, 2))
    return out


def snapshot(w: World, tagged, queue: str = "tagged", extra_orders=(), executions=(), position=None, avg_cost=None):
    """``tagged``: True, False, or a set of levels whose SELLs are tagged."""
    orders = []
    for lot in w.lots:
        t = tagged if isinstance(tagged, bool) else lot.level in tagged
        orders.append(sell_order(w, lot, t))
    orders += queue_orders(w, queue)
    orders += list(extra_orders)
    held = sum(lot.held for lot in w.lots)
    pos = held if position is None else position
    positions = (Position(SYM, pos, avg_cost if avg_cost is not None else D("50.00")),) if pos else ()
    return BrokerSnapshot(time_ns=10**18, open_orders=tuple(orders), executions=tuple(executions), positions=positions)


def got_lots(result):
    return sorted((lot.level, lot.quantity, lot.purchase) for lot in result.lots)


def want_lots(w: World):
    return sorted((lot.level, lot.held, lot.purchase) for lot in w.lots)


PARAMS = st.builds(
    lambda pt, step, depth: TqqqGridConfig(profit_target=pt, buy_step=step, queue_depth=depth),
    st.sampled_from(["0.5%", "1%", "1.5%", "2%", "3.7%"]),
    st.sampled_from(["0.5%", "1%", "2%"]),
    st.sampled_from([0, 1, 3, 5]),
)


@st.composite
def worlds(draw, sub_cent_anchor=True, lot_map=LM):
    params = draw(PARAMS)
    n = len(lot_map)
    cents = draw(st.integers(min_value=1000, max_value=30000))
    anchor = D(cents) / 100
    if sub_cent_anchor and draw(st.integers(0, 3)) == 0:
        anchor = (anchor * 7 + D(1) / 100) / 7  # an average of partial fills: sub-cent
    triggers = trigger_chain(anchor, params.buy_step, n)
    # levels deep in the map repeat quantities (1, 2, 3 shares): draw many of those
    deep = st.integers(min_value=max(0, n - 40), max_value=n - 1)
    levels = draw(st.sets(st.one_of(st.integers(0, n - 1), deep), min_size=1, max_size=14))
    lots = []
    for level in sorted(levels):
        shares = lot_map.shares[level]
        sold = draw(st.integers(0, shares - 1)) if shares > 1 and draw(st.integers(0, 4)) == 0 else 0
        lots.append(TrueLot(level, triggers[level], shares, sold, buy_id=oid(), sell_id=oid()))
    return World(params, lot_map, anchor, lots)


# ----------------------------------------------------------------------------- the same lots come back
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(w=worlds(), queue=st.sampled_from(["tagged", "untagged", "none"]), fallback=st.booleans())
def test_tagged_sells_give_back_the_exact_book(w, queue, fallback):
    r = reconstruct(snapshot(w, True, queue), w.params, w.lot_map, SID, w.anchor if fallback else None)
    assert r.ok, r.findings
    assert got_lots(r) == want_lots(w)
    assert r.anchor == w.anchor
    assert {lot.level: lot.sell_order_id for lot in r.lots} == {lot.level: lot.sell_id for lot in w.lots}
    assert {lot.level: lot.buy_order_id for lot in r.lots} == {lot.level: lot.buy_id for lot in w.lots}
    assert r.to_cancel == ()
    if queue == "none":
        assert [p.slot for p in r.to_place] == list(w.desired())
    else:
        assert r.to_place == ()
        assert len(r.live_buys) == len(w.desired())


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=worlds(sub_cent_anchor=False),
    queue=st.sampled_from(["tagged", "untagged", "none"]),
    fallback=st.booleans(),
    tag_some=st.sets(st.integers(0, 87), max_size=10),
    with_l0=st.booleans(),
)
def test_untagged_sells_by_quantity_and_nearest_trigger(w, queue, fallback, tag_some, with_l0):
    if with_l0 and w.lots[0].level != 0:
        w.lots.insert(0, TrueLot(0, w.anchor, w.lot_map.shares[0], 0, oid(), oid()))
    has_l0 = w.lots[0].level == 0
    anchor_known = has_l0 or (queue == "tagged" and bool(w.desired())) or fallback or bool(tag_some & {lot.level for lot in w.lots})
    has_unique = any(len(w.lot_map.levels_with_quantity(lot.shares)) == 1 for lot in w.lots)
    snap = snapshot(w, tag_some, queue)
    r = reconstruct(snap, w.params, w.lot_map, SID, w.anchor if fallback else None)
    if not anchor_known and not has_unique:
        assert not r.ok and "cannot tell the levels" in r.alerts[0].title
        assert r.to_place == () and r.to_cancel == ()
        return
    assert r.ok, r.findings
    assert got_lots(r) == want_lots(w)  # levels, remaining quantities and purchases, exactly
    assert len({lot.level for lot in r.lots}) == len(r.lots)  # never two lots on one level
    if anchor_known:
        assert r.anchor == w.anchor
        if queue != "none":
            assert r.to_place == () and r.to_cancel == ()
    else:
        assert "derived" in r.anchor_source
        deepest = max(w.lots, key=lambda lot: lot.level)
        assert trigger_chain(r.anchor, w.params.buy_step, len(w.lot_map))[deepest.level] == deepest.purchase


def test_repeated_quantities_of_the_real_map():
    """Twenty 1-share levels, ten 2-share levels: quantity alone cannot tell them apart."""
    params = TqqqGridConfig()
    anchor = D("100.00")
    t = trigger_chain(anchor, params.buy_step, 88)
    levels = [0, 33, 58, 61, 67, 68, 70, 75, 87]
    w = World(params, LM, anchor, [TrueLot(lv, t[lv], LM.shares[lv], 0, oid(), oid()) for lv in levels])
    r = reconstruct(snapshot(w, False, "none"), params, LM, SID, None)
    assert r.ok and got_lots(r) == want_lots(w)
    assert r.anchor == anchor and "Level-0 lot" in r.anchor_source
    assert [p.slot.level for p in r.to_place] == []  # deepest is 87 = N-1: no queue


# ----------------------------------------------------------------------------- Reconstruct 4
def buy_executions(w: World, lot: TrueLot, parts: int, cancelled_after: int | None = None) -> list[Fill]:
    """The executions of the BUY of ``lot``: ``parts`` pieces, the last with the order's average."""
    qty = lot.shares if cancelled_after is None else cancelled_after
    order_qty = lot.shares
    ref = entry_tag(SID, w.anchor) if lot.level == 0 else queue_tag(SID, lot.level, w.anchor)
    sizes = [qty // parts] * (parts - 1)
    sizes.append(qty - sum(sizes))
    sizes = [s for s in sizes if s > 0]
    out, done = [], 0
    for i, s in enumerate(sizes):
        done += s
        out.append(Fill(
            exec_id=f"x{lot.buy_id}.{i}", order_id=lot.buy_id, time_ns=100 + i, symbol=SYM, side=Side.BUY,
            quantity=s, price=lot.purchase, commission=D("1.00"), ref=ref, order_quantity=order_qty,
            order_filled=done, order_avg_price=lot.purchase if done == qty else lot.purchase + D("0.01"),
        ))
    return out


def sell_execution(w: World, lot: TrueLot) -> Fill:
    ref = sell_tag(SID, lot.level, lot.purchase, w.anchor, lot.buy_id)
    price = sell_price(lot.purchase, w.params.profit_target)
    return Fill(f"s{lot.sell_id}", lot.sell_id, 200, SYM, Side.SELL, lot.shares, price, D("1.00"), ref,
                lot.shares, lot.shares, price)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(w=worlds(), pick=st.integers(0, 100), parts=st.integers(1, 3), partial=st.booleans(), others_tagged=st.booleans())
def test_buy_without_sell_gets_its_sell_once(w, pick, parts, partial, others_tagged):
    lot = w.lots[pick % len(w.lots)]
    lot.sold = 0
    filled = lot.shares
    if partial and lot.shares > 1:
        filled = lot.shares - 1  # the BUY was cancelled after a partial fill: R2 makes a lot of what filled
    lot_true = TrueLot(lot.level, lot.purchase, filled, 0, lot.buy_id, lot.sell_id)
    others = [x for x in w.lots if x is not lot]
    # untagged neighbours: the BUY's own tag (or its Level-0 lot) gives the anchor; legacy
    # purchases are whole cents, so the anchor must be too
    assume(others_tagged or w.anchor == w.anchor.quantize(D("0.01")))
    w_others = World(w.params, w.lot_map, w.anchor, others)
    execs = buy_executions(w, lot, parts, cancelled_after=filled if filled != lot.shares else None)
    held = sum(x.held for x in others) + filled
    snap = snapshot(w_others, others_tagged, "none", executions=execs, position=held)

    # 1. the bot died between the BUY's fill and its SELL: the lot is made and its SELL placed
    r = reconstruct(snap, w.params, w.lot_map, SID, None)
    assert r.ok, r.findings
    sells = [p for p in r.to_place if p.lot is not None]
    assert len(sells) == 1
    req = sells[0].request
    assert req.side is Side.SELL and req.quantity == filled and req.order_type is OrderType.LIMIT and req.tif == "GTC"
    assert req.limit == sell_price(lot.purchase, w.params.profit_target)
    tag = parse_tag(req.ref)
    assert (tag.level, tag.price, tag.buy_order_id, tag.anchor) == (lot.level, lot.purchase, lot.buy_id, w.anchor)
    assert (lot.level, filled, lot.purchase) in got_lots(r)

    # 2. restarted again once that SELL is open: nothing placed twice
    lot_true.sell_id = oid()
    w_all = World(w.params, w.lot_map, w.anchor, sorted(others + [lot_true], key=lambda x: x.level))
    snap2 = snapshot(w_all, True, "none", executions=execs, position=held)
    r2 = reconstruct(snap2, w.params, w.lot_map, SID, None)
    assert r2.ok and not [p for p in r2.to_place if p.lot is not None]
    assert got_lots(r2) == want_lots(w_all)

    # 3. ... or once that SELL has already filled (and is no longer open): nothing placed either
    execs3 = execs + [sell_execution(w, lot_true)]
    snap3 = snapshot(w_others, True, "none", executions=execs3, position=held - filled)
    r3 = reconstruct(snap3, w.params, w.lot_map, SID, None)
    assert r3.ok and not [p for p in r3.to_place if p.lot is not None]
    assert got_lots(r3) == want_lots(w_others)


def test_incomplete_buy_makes_no_lot_and_counts_in_the_position():
    params = TqqqGridConfig()
    t = trigger_chain(D("100.00"), params.buy_step, 88)
    l0 = TrueLot(0, D("100.00"), 94, 0, oid(), oid())
    w = World(params, LM, D("100.00"), [l0])
    partial = OpenOrder(oid(), SYM, Side.BUY, 88, 40, t[1], ref=queue_tag(SID, 1, D("100.00")), placed_ns=5)
    execs = [Fill("p1", partial.order_id, 50, SYM, Side.BUY, 40, t[1], D("1"), partial.ref, 88, 40, t[1])]
    r = reconstruct(snapshot(w, True, "none", extra_orders=[partial], executions=execs, position=134), params, LM, SID, None)
    assert r.ok, r.findings
    assert got_lots(r) == [(0, 94, D("100.00"))]
    assert [b.order_id for b in r.live_buys] == [partial.order_id]  # kept, it fills slot L1
    assert [p.slot.level for p in r.to_place] == [2, 3]
    # a partially filled BUY that is not in the desired queue is never cancelled either
    stale = replace(partial, limit=t[1] - D("0.50"), ref=queue_tag(SID, 1, D("99.50")))
    r = reconstruct(snapshot(w, True, "none", extra_orders=[stale], position=134), params, LM, SID, None)
    assert r.ok and stale.order_id in [b.order_id for b in r.live_buys] and r.to_cancel == ()
    assert [p.slot.level for p in r.to_place] == [1, 2, 3]


def test_an_order_the_broker_lists_twice_counts_once():
    """Seen under load through TWS: a partly filled Level-0 BUY's openOrder, sent again while the
    open-orders request was answered, was in the list twice; its 30 shares counted twice made a
    false "fewer shares than the lots" (S1) that stopped the bot."""
    params = TqqqGridConfig()
    w = World(params, LM, D("51.23"), [])
    entry = OpenOrder("17", SYM, Side.BUY, 94, 30, D("51.36"), ref=entry_tag(SID, D("51.23"), 1704207930000),
                      placed_ns=5, avg_fill_price=D("51.23"), perm_id="1000000012")
    execs = [Fill("e9", "17", 50, SYM, Side.BUY, 30, D("51.23"), D("1"), entry.ref, 94, 30, D("51.23"),
                  perm_id="1000000012")]
    older = replace(entry, filled=0, avg_fill_price=None)  # a copy from before the fill
    for orders in ([entry, entry], [older, entry], [entry, older]):
        snap = snapshot(w, True, "none", extra_orders=orders, executions=execs, position=30)
        r = reconstruct(snap, params, LM, SID, None)
        assert r.ok, r.findings
        assert r.entry_order is not None and (r.entry_order.order_id, r.entry_order.filled) == ("17", 30)
        assert r.live_buys == () and r.cancelled_buys == ()  # not a "second Level-0 BUY" of itself
        assert any("listed order 17 twice" in f for f in r.findings)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(w=worlds(), queue=st.sampled_from(["tagged", "untagged", "none"]), data=st.data())
def test_orders_listed_twice_change_nothing(w, queue, data):
    snap = snapshot(w, True, queue)
    twice = data.draw(st.lists(st.sampled_from(snap.open_orders), min_size=1, max_size=5))
    doubled = replace(snap, open_orders=snap.open_orders + tuple(twice))
    a = reconstruct(snap, w.params, w.lot_map, SID, None)
    b = reconstruct(doubled, w.params, w.lot_map, SID, None)
    assert b.ok == a.ok and got_lots(b) == got_lots(a)
    assert (b.to_place, b.entry_order, b.live_buys, b.cancelled_buys, b.anchor) == \
        (a.to_place, a.entry_order, a.live_buys, a.cancelled_buys, a.anchor)


# ----------------------------------------------------------------------------- Reconstruct 5
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(w=worlds(), extra=st.integers(1, 50), policy=st.sampled_from(["alert", "adopt"]))
def test_orphan_shares(w, extra, policy):
    params = w.params.model_copy(update={"on_orphan_shares": policy})
    held = sum(x.held for x in w.lots)
    avg = D("37.5123")
    r = reconstruct(snapshot(w, True, "tagged", position=held + extra, avg_cost=avg), params, w.lot_map, SID, None)
    if policy == "alert":
        assert not r.ok and r.alerts[0].title == "orphan shares"
        assert f"{extra} shares have no SELL" in r.alerts[0].details
        assert r.to_place == () and r.to_cancel == ()  # S1: nothing placed
        assert r.alerts[0].reset_steps
        return
    taken = {x.level for x in w.lots}
    if len(taken) == len(w.lot_map):
        assert not r.ok
        return
    assert r.ok, r.findings
    adopted = [lot for lot in r.lots if lot.origin == "adopted"]
    assert len(adopted) == 1
    a = adopted[0]
    assert a.quantity == extra and a.purchase == avg and a.level not in taken
    t = w.triggers
    assert all(abs(t[a.level] - avg) <= abs(t[lv] - avg) for lv in range(len(w.lot_map)) if lv not in taken)
    sells = [p for p in r.to_place if p.lot is a]
    assert len(sells) == 1 and sells[0].request.quantity == extra
    assert sells[0].request.limit == sell_price(avg, params.profit_target)
    assert parse_tag(sells[0].request.ref).buy_order_id is None


def test_orphans_with_no_lot_start_a_new_grid_when_adopted():
    params = TqqqGridConfig(on_orphan_shares="adopt")
    snap = BrokerSnapshot(1, positions=(Position(SYM, 30, D("45.6789")),))
    r = reconstruct(snap, params, LM, SID, D("99.00"))
    assert r.ok and r.anchor == D("45.6789")
    assert got_lots(r) == [(0, 30, D("45.6789"))]
    assert [p.request.side for p in r.to_place] == [Side.SELL, Side.BUY, Side.BUY, Side.BUY]


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(w=worlds(), missing=st.integers(1, 1000))
def test_missing_shares_alert(w, missing):
    held = sum(x.held for x in w.lots)
    missing = min(missing, held)
    r = reconstruct(snapshot(w, True, "tagged", position=held - missing), w.params, w.lot_map, SID, None)
    assert not r.ok and r.alerts[0].title == "fewer shares than the lots"
    assert r.to_place == () and r.to_cancel == ()


def test_short_position_alerts():
    snap = BrokerSnapshot(1, positions=(Position(SYM, -5, D("10")),))
    r = reconstruct(snap, TqqqGridConfig(), LM, SID, None)
    assert not r.ok and r.alerts[0].title == "short position"


def test_nothing_at_all():
    r = reconstruct(BrokerSnapshot(1), TqqqGridConfig(), LM, SID, D("99.00"))
    assert r.ok and r.lots == () and r.to_place == () and r.to_cancel == () and r.entry_order is None
    assert r.anchor is None  # no lot: R1 starts a new anchor on the next valid tick


# ----------------------------------------------------------------------------- Reconstruct 2 alerts
def test_quantity_in_no_level_alerts():
    params = TqqqGridConfig()
    odd = OpenOrder(oid(), SYM, Side.SELL, 1000, 0, D("101.00"))
    snap = BrokerSnapshot(1, open_orders=(odd,), positions=(Position(SYM, 1000, D("100")),))
    r = reconstruct(snap, params, LM, SID, D("100.00"))
    assert not r.ok
    assert r.alerts[0].title == "untagged SELL with a quantity that is in no level"
    assert odd.order_id in r.alerts[0].details


def test_more_untagged_sells_than_levels_alerts():
    params = TqqqGridConfig()
    a = OpenOrder(oid(), SYM, Side.SELL, 5, 0, D("101.00"))
    b = OpenOrder(oid(), SYM, Side.SELL, 5, 0, D("100.00"))
    snap = BrokerSnapshot(1, open_orders=(a, b), positions=(Position(SYM, 10, D("100")),))
    r = reconstruct(snap, params, SMALL, SID, D("100.00"))  # only level 0 has 5 shares
    assert not r.ok and "more untagged SELLs" in r.alerts[0].title


def test_unreadable_own_tag_alerts_and_foreign_orders_are_left_alone():
    params = TqqqGridConfig()
    bad = OpenOrder(oid(), SYM, Side.SELL, 94, 0, D("101.00"), ref="tqqq_grid:SELL:Lx")
    r = reconstruct(BrokerSnapshot(1, open_orders=(bad,), positions=(Position(SYM, 94, D("100")),)), params, LM, SID, None)
    assert not r.ok and r.alerts[0].title == "unreadable order tag"
    foreign = [
        OpenOrder(oid(), SYM, Side.BUY, 10, 0, D("50"), ref="someone_else:BUY:L1:A50.00"),
        OpenOrder(oid(), SYM, Side.SELL, 10, 0, D("150"), ref="manual"),
        OpenOrder(oid(), "QQQ", Side.SELL, 94, 0, D("400")),
        OpenOrder(oid(), SYM, Side.BUY, 10, 0, D("50"), ref="tqqq_grid_2:BUY:L1:A50.00"),
    ]
    r = reconstruct(BrokerSnapshot(1, open_orders=tuple(foreign)), params, LM, SID, None)
    assert r.ok and r.lots == () and r.to_cancel == () and r.to_place == ()


# ----------------------------------------------------------------------------- Reconstruct 3: the anchor
def _w(levels, anchor=A100, params=None, lot_map=LM):
    params = params or TqqqGridConfig()
    t = trigger_chain(anchor, params.buy_step, len(lot_map))
    return World(params, lot_map, anchor, [TrueLot(lv, t[lv], lot_map.shares[lv], 0, oid(), oid()) for lv in levels])


def test_anchor_from_level0_lot_first():
    w = _w([0, 2])
    stale_buy = OpenOrder(oid(), SYM, Side.BUY, 77, 0, D("90.00"), ref=queue_tag(SID, 3, D("95.00")))
    r = reconstruct(snapshot(w, True, "none", extra_orders=[stale_buy]), w.params, LM, SID, D("77.00"))
    assert r.anchor == D("100.00") and r.anchor_source.startswith("Level-0 lot")
    assert r.to_cancel == (stale_buy.order_id,)  # tagged with another anchor: not in the queue, cancelled
    assert [p.slot.level for p in r.to_place] == [3, 4, 5]


def test_anchor_from_untagged_level0_lot():
    w = _w([0, 40, 41])
    r = reconstruct(snapshot(w, False, "none"), w.params, LM, SID, D("77.00"))
    assert r.anchor == D("100.00") and "untagged SELL" in r.anchor_source
    assert got_lots(r) == want_lots(w)


def test_anchor_from_any_tag_before_state():
    w = _w([68, 70])  # untagged, ambiguous quantities (1 share)
    r = reconstruct(snapshot(w, False, "tagged"), w.params, LM, SID, D("77.00"))
    assert r.anchor == D("100.00") and r.anchor_source.startswith("tag of BUY")
    assert got_lots(r) == want_lots(w)
    r = reconstruct(snapshot(w, {70}, "none"), w.params, LM, SID, D("77.00"))
    assert r.anchor == D("100.00") and r.anchor_source.startswith("tag of SELL")


def test_anchor_from_state_before_derivation():
    w = _w([68, 70])
    r = reconstruct(snapshot(w, False, "none"), w.params, LM, SID, D("100.00"))
    assert r.anchor == D("100.00") and r.anchor_source == "bot_state.json"
    assert got_lots(r) == want_lots(w)
    r = reconstruct(snapshot(w, False, "none"), w.params, LM, SID, None)
    assert not r.ok  # nothing tells 1-share levels apart


def test_anchor_derived_from_deepest_lot():
    w = _w([5, 20, 41])
    r = reconstruct(snapshot(w, False, "none"), w.params, LM, SID, None)
    assert r.ok and "derived" in r.anchor_source and "L20" in r.anchor_source  # 41 (7 shares) is ambiguous
    assert got_lots(r) == want_lots(w)
    assert trigger_chain(r.anchor, w.params.buy_step, 88)[20] == w.lots[1].purchase


@given(cents=st.integers(500, 50000), level=st.integers(0, 87), step=st.sampled_from(["0.005", "0.01", "0.02"]))
def test_derive_anchor_hits_the_trigger(cents, level, step):
    a = D(cents) / 100
    step = D(step)
    t = trigger_chain(a, step, 88)
    d = derive_anchor(t[level], level, step)
    assert trigger_chain(d, step, 88)[level] == t[level]
    if level == 0:
        assert d == a


# ----------------------------------------------------------------------------- live orders kept
def test_level0_order_kept_with_its_time_and_never_two():
    params = TqqqGridConfig()
    old = OpenOrder(oid(), SYM, Side.BUY, 94, 0, D("100.25"), ref=entry_tag(SID, D("100.00")), placed_ns=100)
    new = OpenOrder(oid(), SYM, Side.BUY, 94, 0, D("100.50"), ref=entry_tag(SID, D("100.25")), placed_ns=200)
    r = reconstruct(BrokerSnapshot(300, open_orders=(old, new)), params, LM, SID, None)
    assert r.ok and r.entry_order.order_id == new.order_id and r.entry_order.placed_ns == 200
    assert r.entry_order.is_entry and r.to_cancel == (old.order_id,)


def test_untagged_buys_matching_the_queue_are_kept():
    w = _w([0, 1])
    r = reconstruct(snapshot(w, False, "untagged"), w.params, LM, SID, None)
    assert r.ok and r.to_place == () and r.to_cancel == ()
    assert sorted(b.level for b in r.live_buys) == [2, 3, 4]
    wrong = OpenOrder(oid(), SYM, Side.BUY, 3, 0, D("12.34"))
    r = reconstruct(snapshot(w, False, "untagged", extra_orders=[wrong]), w.params, LM, SID, None)
    assert r.to_cancel == (wrong.order_id,)


def test_queue_requests_follow_entry_order_and_rth():
    w = _w([0])
    for entry_order, otype in (("limit_if_touched", OrderType.LIMIT_IF_TOUCHED), ("limit", OrderType.LIMIT)):
        params = TqqqGridConfig(entry_order=entry_order, outside_rth=False)
        r = reconstruct(snapshot(w, True, "none"), params, LM, SID, None)
        reqs = r.orders_to_place
        assert [q.order_type for q in reqs] == [otype] * 3
        assert all(q.tif == "GTC" and q.outside_rth is False and q.side is Side.BUY for q in reqs)
        assert all((q.aux == q.limit) if otype is OrderType.LIMIT_IF_TOUCHED else q.aux is None for q in reqs)
        assert [q.ref for q in reqs] == [queue_tag(SID, lv, D("100.00")) for lv in (1, 2, 3)]


def test_partially_sold_sell_reads_remaining():
    w = _w([0, 3])
    w.lots[1].sold = 30
    r = reconstruct(snapshot(w, True, "tagged"), w.params, LM, SID, None)
    assert got_lots(r) == [(0, 94, D("100.00")), (3, 47, w.lots[1].purchase)]
    r = reconstruct(snapshot(w, False, "tagged"), w.params, LM, SID, None)
    assert got_lots(r) == [(0, 94, D("100.00")), (3, 47, w.lots[1].purchase)]


def test_findings_are_readable():
    w = _w([0, 1])
    r = reconstruct(snapshot(w, True, "none"), w.params, LM, SID, None)
    text = "\n".join(r.findings)
    assert "anchor 100.00 from Level-0 lot" in text
    assert "place BUY L2" in text and "position check" in text


def test_execution_pnl_catch_up():
    w = _w([0])
    lot = w.lots[0]
    execs = buy_executions(w, lot, 2) + [sell_execution(w, lot)]
    gross, fees, last, ids, _ = execution_pnl(execs, SID, SYM, 0)
    assert gross == 94 * (sell_price(D("100.00"), D("0.01")) - D("100.00")) and fees == 3
    assert last == 200 and ids == {f"s{lot.sell_id}"}
    assert execution_pnl(execs, SID, SYM, last, ids)[:2] == (0, 0)
    assert execution_pnl(execs, SID, SYM, 101, ())[1] == 2  # the second BUY piece and the SELL
    assert execution_pnl(execs, "other", SYM, 0)[:2] == (0, 0)


@pytest.mark.parametrize("target", ["0.5%", "1%", "2%"])
def test_legacy_purchase_recovers_cent_purchases(target):
    params = TqqqGridConfig(profit_target=target)
    w = _w([0, 10, 50], params=params)
    r = reconstruct(snapshot(w, False, "none"), params, LM, SID, None)
    assert got_lots(r) == want_lots(w)


def test_untagged_gap_fill_purchase_goes_to_nearest_trigger():
    """A BUY filled below its trigger (gap down): its untagged SELL still lands on its level."""
    params = TqqqGridConfig()
    t = trigger_chain(D("100.00"), params.buy_step, 88)
    gap = TrueLot(70, t[70] - D("0.20"), 1, 0, oid(), oid())  # still much nearer T(70) than T(69)/T(71)
    w = World(params, LM, D("100.00"), [TrueLot(0, D("100.00"), 94, 0, oid(), oid()), gap])
    r = reconstruct(snapshot(w, {0}, "none"), params, LM, SID, None)
    assert r.ok and got_lots(r) == want_lots(w)


def test_an_untagged_sell_of_another_client_is_a_lot_with_a_warning():
    """IB reports an order's fills to the client that placed it only: a legacy SELL of another
    client id is still a lot, and the findings say how to have its fills reported."""
    params = TqqqGridConfig()
    sell = OpenOrder("c7-3", SYM, Side.SELL, 94, 0, D("101.00"), client_id=7, perm_id="9003")
    snap = BrokerSnapshot(0, open_orders=(sell,), positions=(Position(SYM, 94, D("100")),), client_id=101)
    r = reconstruct(snap, params, LM, SID, None)
    assert r.ok and [(lot.level, lot.quantity) for lot in r.lots] == [(0, 94)]
    assert any("placed by client 7" in f and "client_id 7" in f for f in r.findings), r.findings
    same = BrokerSnapshot(0, open_orders=(replace(sell, client_id=101),), positions=snap.positions,
                          client_id=101)
    assert not any("placed by client" in f for f in reconstruct(same, params, LM, SID, None).findings)


def test_a_sell_being_cancelled_still_covers_its_lot_and_gets_no_second_sell():
    """A PendingCancel SELL may still fill: its lot stays, with no second SELL for its BUY."""
    from bothost.model import OrderStatus

    params = TqqqGridConfig()
    ref = sell_tag(SID, 1, D("99.00"), D("100.00"), "P5")
    sell = OpenOrder("9", SYM, Side.SELL, 88, 0, D("99.99"), ref=ref, status=OrderStatus.PENDING_CANCEL, perm_id="P9")
    buy = Fill("x1", "5", 100, SYM, Side.BUY, 88, D("99.00"), D("1.00"), queue_tag(SID, 1, D("100.00")), 88, 88,
               D("99.00"), perm_id="P5")
    snap = BrokerSnapshot(200, open_orders=(sell,), executions=(buy,), positions=(Position(SYM, 88, D("99")),))
    r = reconstruct(snap, params, LM, SID, D("100.00"))
    assert r.ok, r.findings
    assert [(lot.level, lot.sell_order_id) for lot in r.lots] == [(1, "9")]
    assert not any(p.lot is not None for p in r.to_place)  # no second SELL
    assert any("being cancelled" in f for f in r.findings)
