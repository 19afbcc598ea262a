"""The venue fault campaign: the grid on the real engine against venues that misbehave.

Two venues, both through the real engine (observers registered on it, ``tests/support/venue_faults.py``):

* the simulated venue (``sim_broker``) with seeded random mixes of its IB-like options (late
  acks, cancels that race a fill for a tick, commissions after the fill, 201 rejects, Inactive
  orders, partial fills) and of the reporting faults added for this campaign (an execution
  reported twice, executions reported after the status they caused, a disconnect right after
  an execution that was never reported);
* the TWS simulator in lockstep (``sim_tws``) through the real IB plugin and ib_insync, with
  seeded mixes of its faults (drops, a restart, duplicate executions, partial fills, 201
  rejects, Inactive orders, delayed acks, 1100/1102 with fills meanwhile, the bot away) and the
  socket dropped right after an execution went out.

After every fill, order update, commission, tick and reconstruct the observer compares the
grid's book with the broker's own orders and position: I1 (each lot has exactly one SELL of its
quantity and price), I2 (live BUYs within the desired queue, Level 0 and partial BUYs), I3
(position = lots + filled part of open BUYs), I4 (no two live orders share a tag), and once a
tick has settled that every desired BUY is working. No SELL is ever placed twice for one BUY.
After the run nothing is lost or doubled: every execution at the venue is in fills.csv exactly
once, and the book's fees and gross P&L are the executions' own.

More draws: ``VENUE_FAULT_DRAWS=200 VENUE_FAULT_TWS_DRAWS=20 pytest tests/test_venue_fault_campaign.py``
(``VENUE_FAULT_SEED`` moves the seeds), or ``python benchmarks/venue_fault_campaign.py``, which
writes ``benchmarks/results/venue_fault_campaign.json``.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from bothost.hookspecs import BrokerUnavailable, CriticalStop
from bothost.model import OrderRequest, OrderStatus, Side
from bothost_plugins.replay_feed.synthetic import write_csv
from bothost_plugins.sim_broker.venue import BrokerLike, Commission, Venue
from conftest import run_in_process
from support.grid_driver import GridDriver
from support.venue_faults import (
    Mix,
    TwsMix,
    VenueObserver,
    audit_venue_run,
    draw_mix,
    draw_tws_mix,
    run_mix,
    run_tws_mix,
)

D = Decimal
SEED = int(os.environ.get("VENUE_FAULT_SEED", "0"))
DRAWS = int(os.environ.get("VENUE_FAULT_DRAWS", "8"))
TWS_DRAWS = int(os.environ.get("VENUE_FAULT_TWS_DRAWS", "1"))
TWS_BARS = 900


# ------------------------------------------------------------------ the venue's new options
def _venue(**like) -> tuple[Venue, list]:
    events: list = []
    venue = Venue(events.append, Commission(), like=BrokerLike(**like))
    list(venue.match(1, 5000))  # a price to judge orders by
    return venue, events


def _buy(venue: Venue, qty: int = 10, limit: str = "50.00", ref: str = "t:BUY") -> str:
    return venue.place(OrderRequest("TQQQ", Side.BUY, qty, D(limit), ref=ref))


def test_duplicate_execs_reports_every_nth_execution_twice_after_its_status():
    venue, events = _venue(duplicate_execs=2)
    _buy(venue, ref="a")
    _buy(venue, ref="b")
    yielded = list(venue.match(2, 4990))
    assert [f.exec_id for f in yielded] == ["E1", "E2"]
    kinds = [(type(e).__name__, getattr(e, "exec_id", None) or e.status.value) for e in events]
    # E1 once; E2 again after its order's Filled (as IB re-sends an execDetails)
    assert kinds == [("OrderUpdate", "filled"), ("OrderUpdate", "filled"), ("Fill", "E2")]
    assert events[-1] == yielded[1]
    assert len(venue.unsaved) == 2  # the venue executed twice, not three times


def test_execs_after_status_reports_the_status_and_the_cancels_first():
    venue, events = _venue(execs_after_status=True, late_cancels=True, commission_later=True)
    oid = _buy(venue, qty=10)
    list(venue.match(2, 5001))  # not marketable: rests
    venue.cancel(oid)  # pending until after the next tick's matching
    events.clear()
    venue.partial_fill_shares = 4
    assert list(venue.match(3, 4990)) == []  # nothing handed over during matching
    assert [type(e).__name__ for e in events] == ["OrderUpdate", "Fill", "CommissionReport"]
    cancelled, fill, report = events
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.filled == 4  # the status first
    assert fill.order_filled == 4 and fill.commission is None and report.exec_id == fill.exec_id


def test_disconnect_at_execs_drops_right_after_the_execution_which_is_kept():
    venue, events = _venue(disconnect_at_execs=(2,))
    _buy(venue, ref="a")
    _buy(venue, ref="b", limit="49.00")
    with pytest.raises(BrokerUnavailable, match="E2"):
        list(venue.match(2, 4890))
    assert [f.exec_id for f in venue.unsaved] == ["E1", "E2"]  # both executed (and saved at the checkpoint)
    assert venue.position["TQQQ"] == 20


def test_the_new_options_are_config_keys(tmp_path):
    from bothost_plugins.sim_broker.plugin import SimBrokerConfig

    like = SimBrokerConfig(duplicate_execs=3, execs_after_status=True, disconnect_at_execs=[5]).like()
    assert (like.duplicate_execs, like.execs_after_status, like.disconnect_at_execs) == (3, True, (5,))
    assert not SimBrokerConfig().like().reports_late  # the embedded default takes the fast path


# ------------------------------------------------------------------ regressions (defects found by the campaign)
def _no_halt(driver: GridDriver) -> None:
    assert not driver.book.halted and driver.seen.alerts == [], driver.seen.alerts


def test_a_buys_last_execution_reported_again_after_filled_is_ignored(tmp_path):
    """Defect 1: an execution delivered twice (hookspecs.on_fill allows it) after its BUY had
    completed reached a book that no longer held the BUY: "execution of an order the grid does
    not hold", a critical stop (S1) of a healthy bot. Now a known exec id is ignored."""
    d = GridDriver(tmp_path, duplicate_execs=1).start()
    d.ticks([5000, 4999])  # Level-0 BUY placed, then filled; the execution comes twice
    _no_halt(d)
    assert len(d.book.lots) == 1 and sum(1 for p in d.placed if p.side is Side.SELL) == 1
    assert d.book.fees == D("1.00")  # booked once
    assert d.seen.fills.count(d.seen.fills[0]) == 2  # it was delivered twice


def test_a_sells_last_execution_reported_again_after_the_lot_closed_is_ignored(tmp_path):
    d = GridDriver(tmp_path, duplicate_execs=1).start()
    d.ticks([5000, 4999])
    sell = d.order(d.sell_of_level(0))
    d.ticks([int(sell.limit * 100)], start=2)  # the SELL fills; reported twice
    _no_halt(d)
    assert d.book.lots == {}
    assert d.book.gross_pnl == 94 * (sell.limit - D("49.99"))  # once


def test_an_execution_reported_after_cancelled_with_its_fill_is_not_an_unknown_fill(tmp_path):
    """Defect 2: IB may report an order's Cancelled (with its filled quantity) before the last
    execution. The book made the lot from the status, as it should (R2), and then halted on
    that execution as one of an order it did not hold. Now it books its commission only."""
    d = GridDriver(tmp_path, late_cancels=True, execs_after_status=True, partial_fill_shares=5,
                   commission_later=True).start()
    d.ticks([5000] * 12)  # the Level-0 BUY fills 5 a tick; cancelled at 120 s (R1), one more fill races it
    _no_halt(d)
    (lot,) = d.book.lots.values()
    filled = sum(f.quantity for f in d.executions())
    assert lot.level == 0 and lot.quantity == filled and 0 < filled < 94
    assert d.book.fees == sum(f.commission for f in d.executions()) and not d.book.fee_pending
    assert sum(1 for p in d.placed if p.side is Side.SELL) == 1


def test_an_execution_a_reconstruct_already_counted_is_not_booked_again(tmp_path):
    """The same defect after a restart: a broker replaying executions after the reconnect
    re-delivers one the snapshot held (and reconstruct accounted for)."""
    first = GridDriver(tmp_path).start()
    first.ticks([5000, 4999])
    first.close()
    again = GridDriver(tmp_path).start()
    fees = again.book.fees
    (e1,) = again.executions()
    again.engine.dispatch(e1)
    _no_halt(again)
    assert again.book.fees == fees and len(again.book.lots) == 1


def test_a_late_execution_with_more_shares_than_the_status_said_still_halts(tmp_path):
    """Tolerating late executions must not hide shares the book never counted (I3)."""
    d = GridDriver(tmp_path).start()
    d.ticks([5000, 4999])
    (e1,) = d.executions()
    from dataclasses import replace

    extra = replace(e1, exec_id="X1", order_quantity=188, order_filled=188)
    with pytest.raises(CriticalStop):
        d.engine.dispatch(extra)
    assert d.book.halted and "does not hold" in d.seen.alerts[0].title


# ------------------------------------------------------------------ the campaign on the simulated venue
@pytest.mark.parametrize("seed", range(SEED, SEED + DRAWS))
def test_seeded_fault_mixes_keep_i1_to_i4_after_every_event(tmp_path, seed):
    mix = draw_mix(seed)
    try:
        stats = run_mix(tmp_path, mix)
    except AssertionError as exc:
        raise AssertionError(f"{mix.describe()}\n{exc}") from exc
    assert stats["checked"] > 50, stats
    assert stats["executions"] > 0, stats


def test_every_fault_at_once_on_the_simulated_venue(tmp_path):
    mix = Mix(seed=-1, bars=2500, volatility=1.2, data_seed=3, broker={
        "late_acks": True, "late_cancels": True, "commission_later": True, "execs_after_status": True,
        "partial_fill_shares": 5, "duplicate_execs": 1, "reject_refs": [":BUY:L2:"],
        "inactive_refs": [":SELL:L4:"], "disconnect_at_execs": [9, 40]})
    stats = run_mix(tmp_path, mix)
    assert stats["restarts"] == 2 and stats["duplicates_delivered"] > 0 and stats["max_lots"] >= 3, stats


def test_a_rejected_sell_stops_the_bot_and_nothing_more_is_placed(tmp_path):
    """A SELL refused (201): the lot is unprotected, which is S1 by the spec: the critical
    alert, nothing more placed, the broker's orders left as they are."""
    observer = VenueObserver()
    result = run_in_process(tmp_path, ["feed.synthetic.bars=2000", "feed.synthetic.volatility=1.0",
                                       "broker.reject_refs=[':SELL:L1:']", "broker.broker_like=true"],
                            observers=[observer])
    assert result.status == "critical" and "SELL rejected" in result.summary["alert"]
    placed = sum(observer.sells_placed.values())
    assert observer.strategy.book.halted and placed >= 2 and observer.placed_after_halt == 0
    audit_venue_run(tmp_path / "state", tmp_path / "out", None)  # still nothing lost in fills.csv
    status = json.loads((tmp_path / "state" / "status.json").read_text())
    assert status["alert"] and "L1" in status["alert"]


def test_a_disconnect_mid_fill_reconstructs_the_lot_and_places_its_sell_once(tmp_path, caplog):
    """The connection drops right after a queue BUY executed: the bot never heard of it. The
    run ends as with a broker gone (exit 4); the next start finds the execution with no SELL
    (Reconstruct 4), makes the lot and places its one SELL."""
    overrides = ["feed.synthetic.bars=1500", "feed.synthetic.volatility=1.0", "feed.synthetic.seed=3",
                 "broker.disconnect_at_execs=[6]"]  # E6: the queue BUY of L1 (this data's 6th execution)
    observer = VenueObserver()
    with pytest.raises(BrokerUnavailable, match="E6"):
        run_in_process(tmp_path, overrides, observers=[observer])
    status = json.loads((tmp_path / "state" / "status.json").read_text())
    assert status["summary"]["status"] == "failed"
    result = run_in_process(tmp_path, overrides, observers=[observer])
    assert result.status == "done"
    findings = json.loads((tmp_path / "state" / "status.json").read_text())["strategies"]["tqqq_grid"]["reconstruct"]
    assert any("has no SELL: lot L1 made" in f for f in findings), findings
    audit_venue_run(tmp_path / "state", tmp_path / "out", observer.strategy.book)


# ------------------------------------------------------------------ the campaign through the TWS simulator
@pytest.fixture(scope="module")
def tws_bars(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "bars.csv"
    write_csv(path, bars=TWS_BARS, seed=3, volatility=1.0, start_price=50.0, interval=60)
    return path


def test_every_fault_at_once_through_the_tws_simulator(tmp_path, tws_bars):
    """Drops (one right after an execution went out, before the bot acted on it), a simulator
    restart, every execution reported twice, partial fills, 201 rejects, an Inactive SELL,
    delayed acks, and TWS cut off from IB while the venue trades."""
    mix = TwsMix(seed=-1, faults=["duplicate-exec@all", "delay-acks@all", "restart@tick=2600",
                                  "reject201@ref=tqqq_grid:BUY:L2,count=2", "inactive@ref=tqqq_grid:SELL:L3",
                                  "1100@tick=1500", "1102@tick=1700"],
                 partial=30, drop_after_execs=(9,), exempt={2})
    stats = run_tws_mix(tmp_path, tws_bars, mix)
    assert stats["reconstructs"] >= 4 and stats["executions"] > 50 and stats["checked"] > 200, stats


@pytest.mark.parametrize("seed", range(SEED, SEED + TWS_DRAWS))
def test_seeded_rehearsal_fault_mixes_keep_i1_to_i4_after_every_event(tmp_path, tws_bars, seed):
    mix = draw_tws_mix(seed, 4 * TWS_BARS)
    try:
        stats = run_tws_mix(tmp_path, tws_bars, mix)
    except AssertionError as exc:
        raise AssertionError(f"{mix.describe()}\n{exc}") from exc
    assert stats["checked"] > 100 and stats["executions"] > 20, stats


def test_commissions_of_executions_that_beat_their_orders_ack_reach_fills_csv(tmp_path, tws_bars):
    """An execution that arrives before its order's ack (TWS acking late): ib_insync keeps its
    commission report on the fill and announces it only for an order it knows by permId; the
    plugin hands it on when the ack arrives, so fills.csv, the fees and the book have it."""
    run_tws_mix(tmp_path, tws_bars, TwsMix(seed=-2, faults=["delay-acks@all"]))
