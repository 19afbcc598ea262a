"""The simulated venue's matching rules (sim-venue.md, Matching 1-7), one test per rule."""

from decimal import Decimal

import pytest

from bothost.model import OrderRequest, OrderStatus, OrderType, Side
from bothost_plugins.sim_broker.store import VenueStore
from bothost_plugins.sim_broker.venue import Commission, Venue

D = Decimal


def buy(limit, qty=10, ref="", otype=OrderType.LIMIT, aux=None):
    return OrderRequest("TQQQ", Side.BUY, qty, D(limit), otype, None if aux is None else D(aux), ref=ref)


def sell(limit, qty=10, ref=""):
    return OrderRequest("TQQQ", Side.SELL, qty, D(limit), ref=ref)


@pytest.fixture
def events():
    return []


@pytest.fixture
def venue(events):
    return Venue(events.append, Commission())


def tick(venue, t, cents, on_fill=None):
    fills = []
    for f in venue.match(t, cents):
        fills.append(f)
        if on_fill:
            on_fill(f)
    return fills


def test_order_placed_on_tick_k_is_live_from_k_plus_1(venue):
    tick(venue, 1, 10000)
    fills_seen = []

    def place_more(fill):
        venue.place(buy("100.00", ref="late"))  # placed during tick 2's matching

    venue.place(buy("100.00", ref="first"))
    fills_seen += tick(venue, 2, 9990, place_more)
    assert [f.ref for f in fills_seen] == ["first"]
    assert [f.ref for f in tick(venue, 3, 9990)] == ["late"]


def test_cancel_takes_effect_at_once(venue, events):
    tick(venue, 1, 10000)
    oid = venue.place(buy("99.00"))
    venue.cancel(oid)
    assert tick(venue, 2, 9000) == []
    assert events[-1].status is OrderStatus.CANCELLED


def test_marketable_on_arrival_fills_next_tick_at_that_ticks_price(venue):
    tick(venue, 1, 10000)
    venue.place(buy("100.25"))  # limit >= last: marketable
    [f] = tick(venue, 2, 10010)
    assert f.price == D("100.10")  # the tick's price, not the limit


def test_marketable_order_that_is_no_longer_marketable_rests_at_its_limit(venue):
    tick(venue, 1, 10000)
    venue.place(buy("100.25"))
    assert tick(venue, 2, 10050) == []
    [f] = tick(venue, 3, 9000)
    assert f.price == D("100.25")  # resting now: no price improvement


def test_skipped_quiet_tick_also_ends_arrival(venue):
    tick(venue, 1, 10000)
    venue.place(buy("100.25"))
    venue.advance(2, 10050)  # the engine skipped a tick that crossed nothing
    [f] = tick(venue, 3, 9000)
    assert f.price == D("100.25")


def test_resting_limits_fill_at_limit_without_improvement(venue):
    tick(venue, 1, 10000)
    venue.place(buy("99.00"))
    venue.place(sell("101.00"))
    [b] = tick(venue, 2, 9800)
    [s] = tick(venue, 3, 10300)
    assert (b.price, s.price) == (D("99.00"), D("101.00"))


def test_lit_triggers_on_touch_and_fills_like_a_limit(venue):
    tick(venue, 1, 10000)
    venue.place(buy("99.00", otype=OrderType.LIMIT_IF_TOUCHED, aux="99.00"))
    assert tick(venue, 2, 9901) == []
    [f] = tick(venue, 3, 9900)
    assert f.price == D("99.00")


def test_lit_placed_below_its_trigger_is_triggered_at_once_and_marketable(venue):
    tick(venue, 1, 9700)  # a gap down: the market is already below the trigger
    venue.place(buy("99.00", otype=OrderType.LIMIT_IF_TOUCHED, aux="99.00"))
    [f] = tick(venue, 2, 9750)
    assert f.price == D("97.50")  # rule 2 applies to it as to any limit


def test_price_priority_buys_first_and_cancel_during_tick_is_honoured(venue):
    tick(venue, 1, 10000)
    low = venue.place(buy("98.00", ref="low"))
    venue.place(buy("99.00", ref="high"))
    venue.place(sell("97.00", ref="sell"))  # crossed too (a SELL limit under the market)
    order = []

    def on_fill(f):
        order.append(f.ref)
        if f.ref == "high":
            venue.cancel(low)  # the strategy cancels while the tick is being matched

    tick(venue, 2, 9700, on_fill)
    assert order == ["high", "sell"]


def test_partial_fills_split_and_average(events):
    venue = Venue(events.append, Commission(), partial_fill_shares=4)
    tick(venue, 1, 10000)
    venue.place(buy("99.00", qty=10))
    fills = tick(venue, 2, 9900) + tick(venue, 3, 9800) + tick(venue, 4, 9800)
    assert [f.quantity for f in fills] == [4, 4, 2]
    assert fills[-1].order_complete and not fills[0].order_complete
    assert events[-1].status is OrderStatus.FILLED


def test_commission_ib_fixed_default(venue):
    tick(venue, 1, 10000)
    venue.place(buy("99.00", qty=94))
    venue.place(buy("98.00", qty=400))
    f1, f2 = tick(venue, 2, 9000)
    assert f1.commission == D("1.00")  # minimum
    assert f2.commission == D("2.000")  # 400 x $0.005


def test_quiet_band_covers_every_order(venue):
    tick(venue, 1, 10000)
    venue.place(buy("99.00"))
    venue.place(buy("97.00", otype=OrderType.LIMIT_IF_TOUCHED, aux="98.00"))
    venue.place(sell("101.00"))
    assert venue.quiet_band() == (9900, 10100)


def test_rejects_sub_cent_and_nonpositive_prices(venue, events):
    venue.place(buy("99.005"))
    venue.place(OrderRequest("TQQQ", Side.BUY, 0, D("1.00")))
    assert [e.status for e in events] == [OrderStatus.REJECTED, OrderStatus.REJECTED]
    assert "cents" in events[0].message


def test_checkpoint_round_trip_resumes_identically(tmp_path, events):
    """A venue reloaded from its checkpoint continues exactly like the one that never stopped."""
    def scenario(v):
        tick(v, 1, 10000)
        v.place(buy("100.25", ref="a"))
        v.place(sell("101.00", ref="b", qty=3))
        return v

    a = scenario(Venue(events.append, Commission()))
    store = VenueStore(tmp_path / "v.sqlite")
    store.checkpoint(a)
    b = Venue(events.append, Commission())
    VenueStore(tmp_path / "v.sqlite").load(b)
    fa = tick(a, 2, 10010) + tick(a, 3, 10100)
    fb = tick(b, 2, 10010) + tick(b, 3, 10100)
    assert [(f.order_id, f.price, f.quantity) for f in fa] == [(f.order_id, f.price, f.quantity) for f in fb]
    assert a.place(buy("1.00")) == b.place(buy("1.00"))  # order ids continue identically
    assert (tmp_path / "v.sqlite").stat().st_mode & 0o777 == 0o600


def test_a_checkpoint_stores_plain_text_and_integers(tmp_path, events):
    """The paper account's file holds what a user's own SQL reads plainly: statuses, sides and
    order types as their text, flags as 0/1, prices as text with their decimals."""
    import sqlite3

    v = Venue(events.append, Commission())
    tick(v, 1, 10000)
    v.place(buy("100.25", ref="a"))
    v.place(OrderRequest("TQQQ", Side.BUY, 5, D("99.00"), OrderType.LIMIT_IF_TOUCHED, D("99.50"), ref="lit"))
    tick(v, 2, 10020)  # the BUY at 100.25 fills; the LIT waits untriggered
    store = VenueStore(tmp_path / "v.sqlite")
    store.checkpoint(v)
    store.close()
    db = sqlite3.connect(tmp_path / "v.sqlite")
    orders = db.execute("SELECT ref, side, typeof(side), order_type, status, triggered, typeof(triggered), fresh, "
                        "outside_rth FROM orders ORDER BY id").fetchall()
    assert orders == [("a", "BUY", "text", "LMT", "filled", 1, "integer", 0, 1),
                      ("lit", "BUY", "text", "LIT", "submitted", 0, "integer", 0, 1)]
    execs = db.execute("SELECT side, typeof(side), price, commission, order_avg FROM executions").fetchall()
    assert execs == [("BUY", "text", "100.20", "1.00", "100.20")]
