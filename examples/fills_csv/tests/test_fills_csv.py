"""fills_csv as an observer of a strategy on the real engine and simulated venue (bothost.testing)."""

from __future__ import annotations

import csv
import logging
from decimal import Decimal

from bothost.hookspecs import BuildEnv, hookimpl
from bothost.model import OrderRequest, Side
from bothost.plugins import load_plugins
from bothost.testing import StrategyHarness
from fills_csv.plugin import FillsCsvConfig, make_notifier


class BuysThenSells:
    """A strategy for the test: BUY 10 at 50.00, then SELL them at 51.00."""

    symbol = "SPY"

    @hookimpl
    def on_start(self, ctx):
        ctx.place(OrderRequest("SPY", Side.BUY, 10, Decimal("50.00"), ref=f"{ctx.strategy_id}:buy"))

    @hookimpl
    def on_fill(self, ctx, fill):
        if fill.side is Side.BUY and fill.order_complete:
            ctx.place(OrderRequest("SPY", Side.SELL, 10, Decimal("51.00"), ref=f"{ctx.strategy_id}:sell"))


def notifier(folder):
    env = BuildEnv(config_path=folder / "config.yaml", state_dir=folder, mode="paper", log=logging.getLogger("t"))
    return make_notifier(FillsCsvConfig(), env)


def rows(folder):
    with open(folder / "fills_log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_fill_of_the_strategy_is_a_row(tmp_path):
    h = StrategyHarness(BuysThenSells(), tmp_path / "run", observers=[notifier(tmp_path)], strategy_id="demo")
    h.ticks(["50.50", "49.90", "50.40", "51.20"])
    written = rows(tmp_path)
    assert [(r["event"], r["side"], r["quantity"], r["ref"]) for r in written] == [
        ("fill", "BUY", "10", "demo:buy"), ("fill", "SELL", "10", "demo:sell")]
    assert [r["exec_id"] for r in written] == [f.exec_id for f in h.fills]
    assert [Decimal(r["price"]) for r in written] == [f.price for f in h.fills]
    assert all(r["commission"] and r["strategy"] == "demo" for r in written)
    h.stop()


def test_a_commission_reported_later_is_its_own_row(tmp_path):
    h = StrategyHarness(BuysThenSells(), tmp_path / "run", observers=[notifier(tmp_path)],
                        venue={"commission_later": True})
    h.ticks(["50.50", "49.90", "50.40"])
    fill, commission = rows(tmp_path)
    assert (fill["event"], fill["commission"]) == ("fill", "")
    assert (commission["event"], commission["exec_id"]) == ("commission", fill["exec_id"])
    assert Decimal(commission["commission"]) == h.fills[0].commission
    h.stop()


def test_an_execution_is_written_once_also_by_the_next_run(tmp_path):
    h = StrategyHarness(BuysThenSells(), tmp_path / "run", observers=[notifier(tmp_path)], strategy_id="demo")
    h.ticks(["50.50", "49.90"])  # bought; the SELL is working
    bought = h.fills[0]
    h.stop()
    later = notifier(tmp_path)  # the next run on the same state folder reads the file first
    later.on_fill(h.ctx, bought)  # the BUY delivered again (a broker replaying executions after a reconnect)
    later.on_fill(h.ctx, bought)
    assert [r["exec_id"] for r in rows(tmp_path)] == [bought.exec_id]


def test_is_registered():
    _, registry, _ = load_plugins()  # installed (pip install -e .): its entry point registers it
    assert registry.get("notifier", "fills_csv").factory is make_notifier
