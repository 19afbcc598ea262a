"""bothost.testing, as a plugin author uses it: a strategy of their own through scripted ticks on
the real engine and simulated venue (fills, partial fills, commissions, restarts, alerts,
warnings, timers), a registered strategy built from its config section, and a config through
``bothost backtest`` in-process."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bothost.hookspecs import hookimpl
from bothost.model import OrderRequest, OrderStatus, OrderType, Side
from bothost.testing import (
    HarnessStopped,
    StrategyConfigError,
    StrategyHarness,
    replay_feed,
    run_backtest,
    sim_venue,
    to_cents,
    to_ns,
)
from conftest import PAPER, write_bars

D = Decimal


class DipBuyer:
    """A small third-party-style strategy: a BUY 1 below the first price; each fill of it gets a
    SELL 1 above its price; an alert when the price falls below ``floor``; a warning (once a
    tick) when the price is above ``ceiling``; it remembers what reconstruct told it."""

    name = "dip"
    symbol = "XYZ"
    wants_every_tick = True

    def __init__(self, quantity: int = 10, floor: str = "50", ceiling: str = "1000"):
        self.quantity, self.floor, self.ceiling = quantity, D(floor), D(ceiling)
        self.buy_id: str | None = None
        self.rebuilt: list = []  # open orders reconstruct saw
        self.timers: list[str] = []
        self.stopped = False

    @hookimpl
    def reconstruct(self, ctx, snapshot):
        self.rebuilt = [o for o in snapshot.open_orders if o.ref.startswith(ctx.strategy_id + ":")]
        self.buy_id = next((o.order_id for o in self.rebuilt if o.side is Side.BUY), None)
        if self.rebuilt:
            self.buy_id = self.buy_id or "done"

    @hookimpl
    def on_tick(self, ctx, tick):
        price = D(tick.price) / 100
        if price < self.floor:
            ctx.alert("price below the floor", f"{price} < {self.floor}", ["look at the chart"])
        if price > self.ceiling:
            ctx.warn("price above the ceiling", f"{price}")
        if self.buy_id is None:
            self.buy_id = ctx.place(OrderRequest(self.symbol, Side.BUY, self.quantity, price - 1, ref=f"{ctx.strategy_id}:BUY"))
            ctx.set_timer("checkup", tick.time_ns + 60 * 10**9)

    @hookimpl
    def on_fill(self, ctx, fill):
        if fill.side is Side.BUY:
            ctx.place(OrderRequest(self.symbol, Side.SELL, fill.quantity, fill.price + 1,
                                   ref=f"{ctx.strategy_id}:SELL:P{fill.price}"))
        ctx.save_state({"last_fill": fill.exec_id})

    @hookimpl
    def on_timer(self, ctx, name, time_ns):
        self.timers.append(name)

    @hookimpl
    def on_stop(self, ctx):
        self.stopped = True


def test_a_strategy_places_fills_and_sells_on_the_real_venue(tmp_path):
    with StrategyHarness(DipBuyer(), tmp_path) as h:
        h.tick("100.00")
        assert [(r.side, r.quantity, r.limit, r.ref) for r in h.placed] == [(Side.BUY, 10, D("99.00"), "dip:BUY")]
        assert [o.ref for o in h.open_orders] == ["dip:BUY"] and h.fills == []
        h.ticks(["99.50", "98.75"])  # the BUY at 99.00 fills at its limit on the second
        (fill,) = h.fills
        assert (fill.side, fill.quantity, fill.price, fill.commission, fill.ref) == (Side.BUY, 10, D("99.00"), D("1.00"), "dip:BUY")
        assert h.seen.fills == [fill] and h.position == 10
        (sell,) = h.open_orders
        assert (sell.side, sell.limit, sell.ref) == (Side.SELL, D("100.00"), "dip:SELL:P99.00")
        assert h.saved_state == {"last_fill": fill.exec_id}
        h.tick("100.10")
        assert [f.side for f in h.fills] == [Side.BUY, Side.SELL] and h.position == 0 and h.open_orders == []
        statuses = [(u.side, u.status) for u in h.seen.updates]
        assert statuses == [(Side.BUY, OrderStatus.FILLED), (Side.SELL, OrderStatus.FILLED)]
    assert h.strategy.stopped and h.stopped


def test_partial_fills_and_late_commissions_come_from_the_venue_settings(tmp_path):
    h = StrategyHarness(DipBuyer(), tmp_path, venue={"partial_fill_shares": 4, "commission_later": True}).start()
    h.ticks(["100", "98", "98", "98"])
    assert [f.quantity for f in h.seen.fills if f.side is Side.BUY] == [4, 4, 2]
    assert all(f.commission is None for f in h.seen.fills)  # told later, matched by exec id
    assert [c.exec_id for c in h.seen.commissions] == [f.exec_id for f in h.seen.fills]
    assert [f.commission for f in h.fills] == [D("1.00")] * 3  # the venue keeps them with the execution
    h.stop()


def test_a_restart_gives_a_fresh_strategy_that_reconstructs_from_the_venue(tmp_path):
    h = StrategyHarness(DipBuyer(), tmp_path).start()
    h.ticks(["100", "98.5"])
    first = h.strategy
    h2 = h.restart()
    assert h.stopped and not first.stopped  # a stop between two events, not on_stop
    assert h2.strategy is not first and h2.strategy.rebuilt and h2.strategy.rebuilt[0].ref == "dip:SELL:P99.00"
    assert h2.saved_state == h.saved_state  # bot_state.json carried over
    h2.tick("100.5")  # the SELL placed before the restart fills now
    assert [f.side for f in h2.fills] == [Side.BUY, Side.SELL]
    assert h2.placed == []  # the new instance placed nothing: it knew of the SELL
    assert h2.now_ns > h.now_ns
    h3 = h2.restart(clean=True)
    assert h2.strategy.stopped and h3.strategy.rebuilt == []
    h3.stop()


def test_a_critical_alert_ends_the_harness_and_leaves_the_orders(tmp_path):
    h = StrategyHarness(DipBuyer(floor="90"), tmp_path).start()
    h.ticks(["100", "95", "89", "200"])  # ends at 89
    (alert,) = h.alerts
    assert alert.title == "price below the floor" and alert.reset_steps == ("look at the chart",)
    assert h.alert is alert and [o.ref for o in h.open_orders] == ["dip:SELL:P99.00"]  # left in place
    with pytest.raises(HarnessStopped, match="price below the floor"):
        h.tick("100")
    h.stop()
    assert not h.strategy.stopped  # no on_stop after a critical alert (as a run)


def test_warnings_are_all_recorded_and_timers_run_on_tick_time(tmp_path):
    h = StrategyHarness(DipBuyer(ceiling="100"), tmp_path).start()
    h.tick("100")
    h.tick("101", at="2024-01-02T14:30:30+00:00")
    h.tick("102", at=to_ns("2024-01-02T14:30:45Z"))
    assert [w.title for w in h.warnings] == ["price above the ceiling"] * 2
    assert h.strategy.timers == []
    h.tick("100", at="2024-01-02T14:31:00")  # 60 s after the first tick (a naive time is UTC)
    assert h.strategy.timers == ["checkup"]
    with pytest.raises(ValueError, match="before the host clock"):
        h.tick("100", at="2024-01-02T14:00:00")
    with pytest.raises(ValueError, match="not a number"):
        h.tick("abc")
    h.stop()


def test_a_replay_goes_through_the_replay_driver(tmp_path):
    h = StrategyHarness(DipBuyer(), tmp_path).start()
    h.replay(["100", "99.5", "98", "99", "100.5"], verify_skips=True)
    assert [f.side for f in h.fills] == [Side.BUY, Side.SELL]
    h.replay(write_bars(tmp_path / "bars.csv", [100.0, 97.0, 102.0], start="2024-02-01T09:30:00-05:00"))
    assert h.seen.ticks > 5
    h.stop()


def test_from_config_builds_an_installed_strategy_validated_by_its_model(tmp_path, repo):
    h = StrategyHarness.from_config("tqqq_grid", {"symbol": "TQQQ", "lots": "tqqq_lots.csv"}, tmp_path,
                                    config_dir=repo / "configs")
    h.start()
    h.tick("50.00")
    (entry,) = h.placed
    assert (entry.side, entry.limit) == (Side.BUY, D("50.13"))  # Level 0: last + l0_buffer 0.25%
    assert entry.ref.startswith("tqqq_grid:BUY:L0:")
    h.ticks(["50.05", "49.90", "49.80"])
    assert (h.fills[0].side, h.fills[0].price) == (Side.BUY, D("50.05"))  # marketable: the next tick's price
    assert any(o.order_type is OrderType.LIMIT_IF_TOUCHED for o in h.open_orders)  # the queue below
    h2 = h.restart()
    assert h2.strategy is not h.strategy and h2.strategy.book.lots  # rebuilt from the venue
    h2.stop()


def test_from_config_names_the_mistake(tmp_path, repo):
    with pytest.raises(StrategyConfigError, match="profit_target"):
        StrategyHarness.from_config("tqqq_grid", {"profit_target": "lots"}, tmp_path, config_dir=repo / "configs")
    with pytest.raises(StrategyConfigError, match="did you mean 'tqqq_grid'"):
        StrategyHarness.from_config("tqqq_gird", {}, tmp_path)


def test_sim_venue_and_replay_feed_helpers(tmp_path):
    venue = sim_venue(tmp_path, commission_min="0.50")
    oid = venue.place(OrderRequest("XYZ", Side.BUY, 10, D("10.00"), ref="t:1"))
    assert [f.quantity for f in venue.match(1, to_cents("9.99"))] == [10]
    assert venue.venue.open_orders() == () and oid == "1"
    feed = replay_feed(["10", "10.5"], "XYZ", start="2024-01-02T14:30:00Z", step_s=60)
    (chunk,) = feed.chunks()
    assert chunk.price.tolist() == [1000, 1050] and int(chunk.time_ns[1] - chunk.time_ns[0]) == 60 * 10**9
    with pytest.raises(Exception, match="extra"):
        sim_venue(tmp_path / "b", comission_min="1")


def test_run_backtest_gives_the_commands_exit_status_summary_and_fills(tmp_path):
    data = write_bars(tmp_path / "bars.csv", [50 + (i % 20) * 0.3 - (i % 7) * 0.4 for i in range(300)])
    result = run_backtest(PAPER, data=data, out_dir=tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert result.summary["status"] == "done" and result.summary["fills"] == len(result.fill_rows()) > 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategies:\n  - use: tqqq_grid\n    profit_target: lots\n")
    failed = run_backtest(bad, out_dir=tmp_path / "out2")
    assert failed.exit_code == 2 and "profit_target" in failed.output and failed.fills is None
