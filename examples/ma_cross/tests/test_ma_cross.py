"""ma_cross on the real engine and simulated venue (bothost.testing), and its signals alone."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bothost.model import Side
from bothost.testing import StrategyConfigError, StrategyHarness
from ma_cross.plugin import MaCross, MaCrossConfig
from ma_cross.signals import Cross, Crossover

DOWN = [f"{100 - i * 0.5:.2f}" for i in range(10)]  # 100.00 .. 95.50
UP = ["96.00", "97.00", "97.05", "97.50", "98.00"]  # crosses up at 97.00; 97.05 is within the BUY's limit


def test_a_cross_is_said_once_and_only_after_the_warm_up():
    signals = Crossover(fast=2, slow=4)
    said = [signals.add(p) for p in [100, 99, 98, 97, 96, 99, 103, 104, 100, 95]]
    assert said == [None, None, None, None, None, None, Cross.UP, None, None, Cross.DOWN]
    with pytest.raises(ValueError):
        Crossover(fast=4, slow=4)


def harness(folder) -> StrategyHarness:
    strategy = MaCross(MaCrossConfig(symbol="SPY", fast=2, slow=5, quantity=10, slippage="0.1%"))
    return StrategyHarness(strategy, folder, strategy_id="ma_cross")


def test_buys_on_the_cross_up_and_sells_on_the_cross_down(tmp_path):
    h = harness(tmp_path)
    h.ticks(DOWN + UP)
    buy = h.placed[0]
    assert (buy.side, buy.quantity, buy.ref) == (Side.BUY, 10, "ma_cross:buy")
    assert buy.limit == Decimal("97.10")  # 0.1% through the price it crossed at
    assert h.position == 10  # filled by the next tick
    held = h.strategy.holdings()  # what the summary and bothost status show
    assert (held.shares, held.open_cost) == (10, 10 * h.fills[0].price)
    h.ticks(["97.00", "96.00", "95.95"])  # crosses down at 96.00: a SELL at 95.90, filled at 95.95
    sell = h.placed[-1]
    assert (sell.side, sell.quantity, sell.ref) == (Side.SELL, 10, "ma_cross:sell")
    assert h.position == 0 and len(h.fills) == 2
    h.stop()


def test_after_a_restart_it_knows_what_it_holds(tmp_path):
    h = harness(tmp_path)
    h.ticks(DOWN + UP)  # bought
    again = h.restart()
    assert again.strategy.held == 10  # from the broker's position, not a local file
    again.ticks(["98.00", "98.50", "99.00", "99.50", "100.00"])  # the averages warm up again
    assert again.placed == []  # holding already: no second BUY
    again.ticks(["99.00", "97.00", "96.95"])  # crosses down at 97.00
    assert [o.side for o in again.placed] == [Side.SELL] and again.position == 0
    again.stop()


def test_its_config_is_checked_as_a_run_checks_it(tmp_path):
    with pytest.raises(StrategyConfigError, match="fast"):
        StrategyHarness.from_config("ma_cross", {"fast": 50, "slow": 20}, tmp_path)
    h = StrategyHarness.from_config("ma_cross", {"symbol": "SPY", "fast": 2, "slow": 5}, tmp_path)
    h.ticks(DOWN + UP)
    assert [o.side for o in h.placed] == [Side.BUY]
    h.stop()
