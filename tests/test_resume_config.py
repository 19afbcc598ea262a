"""A resume continues the run its state folder holds, and only that run: a config that now says
something else that changes the result is refused (exit 2, each difference named, the ways out
given) before anything runs; `--fresh` starts the folder over, moving the old one aside.

Live, SELLs resting at the broker that were placed with another profit_target are refused the
same way, before anything is placed, even with no local state at all.
"""

from __future__ import annotations

import csv
from decimal import Decimal as D
from pathlib import Path

import pytest

from bothost.model import OpenOrder, OrderStatus, Side
from bothost_plugins.sim_tws.server import SimTwsThread
from bothost_plugins.tqqq_grid.params import TqqqGridConfig
from bothost_plugins.tqqq_grid.reconstruct import sells_off_target
from bothost_plugins.tqqq_grid.tags import sell_tag
from conftest import CONFIGS, bothost, write_bars

PAPER = CONFIGS / "tqqq-paper.yaml"


@pytest.fixture
def finished(tmp_path) -> Path:
    r = bothost("run", str(PAPER), "--state", "S", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path


def test_a_changed_grid_parameter_is_refused_and_nothing_is_touched(finished):
    state = finished / "S"
    before = {p.name: p.read_bytes() for p in [state / "venue.sqlite", state / "out" / "fills.csv"]}
    r = bothost("run", str(PAPER), "--state", "S", "--no-progress", "--set", "strategies.0.profit_target=2%",
                cwd=finished)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("error: S/bot_state.json: this state folder holds a run made with another config")
    assert "strategies.0.profit_target: '1%' in the state, '2%' now" in r.stderr
    assert "--fresh" in r.stderr and "--state DIR" in r.stderr and "Traceback" not in r.stderr
    assert {p.name: p.read_bytes() for p in [state / "venue.sqlite", state / "out" / "fills.csv"]} == before


def test_a_venue_setting_is_refused_too_but_the_next_days_data_goes_on(finished):
    r = bothost("run", str(PAPER), "--state", "S", "--no-progress", "--set", "broker.commission_min=2",
                cwd=finished)
    assert r.returncode == 2 and "broker.commission_min" in r.stderr, r.stderr
    later = write_bars(finished / "later.csv", [50 + 0.1 * i for i in range(50)], start="2031-01-02T09:30:00-05:00")
    r = bothost("run", str(PAPER), "--state", "S", "--no-progress", "--data", str(later), cwd=finished)
    assert r.returncode == 0, r.stderr  # the same paper account, on later data


def test_a_setting_that_changes_no_result_resumes(finished):
    r = bothost("run", str(PAPER), "--state", "S", "--no-progress", "--set", "engine.checkpoint_every=5s",
                cwd=finished)
    assert r.returncode == 0, r.stderr


def test_fresh_moves_the_old_run_aside_and_starts_over(finished):
    old_fills = (finished / "S" / "out" / "fills.csv").read_bytes()
    r = bothost("run", str(PAPER), "--state", "S", "--no-progress", "--fresh", "--set",
                "strategies.0.profit_target=2%", cwd=finished)
    assert r.returncode == 0, r.stderr
    [aside] = [p for p in finished.iterdir() if p.name.startswith("S.previous-")]
    assert f"--fresh: the old state folder is now {aside.name}" in r.stderr.replace(str(finished) + "/", "")
    assert (aside / "out" / "fills.csv").read_bytes() == old_fills  # nothing deleted
    with open(finished / "S" / "out" / "fills.csv", newline="") as fh:
        sells = [row for row in csv.DictReader(fh) if row["side"] == "SELL"]
    assert sells and all(D(s["order_ref"].split(":P")[1].split(":")[0]) * D("1.02") - D(s["price"]) < D("0.01")
                         for s in sells)  # every SELL at +2% of its purchase now


def _sell(order_id: str, level: int, purchase: str, limit: str) -> OpenOrder:
    ref = sell_tag("tqqq_grid", level, D(purchase), D("50.00"), "B" + order_id)
    return OpenOrder(order_id=order_id, symbol="TQQQ", side=Side.SELL, quantity=10, filled=0,
                     limit=D(limit), ref=ref, status=OrderStatus.SUBMITTED)


def test_sells_off_target_names_each_sell_and_both_targets():
    params = TqqqGridConfig(profit_target="2%")
    orders = [_sell("7", 0, "50.00", "50.50"), _sell("8", 1, "49.50", "50.49")]
    [line] = sells_off_target(orders, params, "tqqq_grid")
    assert line == "SELL 7 (L0, bought @ 50.00) rests at 50.50, +1.00%; profit_target 2% would be 51.00"
    assert sells_off_target(orders[1:], params, "tqqq_grid") == []
    assert sells_off_target(orders, params, "another_grid") == []  # not ours


def test_live_resting_sells_of_another_target_are_refused_before_anything_is_placed(tmp_path):
    """IB (sim-tws) holds a lot and its SELL at +1%; the bot starts with no local state and
    profit_target 2%: exit 2 naming the SELL, and the broker's orders are as they were."""
    bars = write_bars(tmp_path / "bars.csv", [50 - 0.02 * i for i in range(60)])
    sim = SimTwsThread(data=bars, state_dir=tmp_path / "sim", pace="lockstep").start()
    try:
        ib = CONFIGS / "tqqq-ib.yaml"
        env = {"IB_PORT": str(sim.port)}
        first = bothost("run", str(ib), "--state", str(tmp_path / "bot"), "--no-progress", "--stop-when-idle", "2",
                        cwd=tmp_path, env=env)
        assert first.returncode == 0, first.stderr
        orders = sim.call(lambda s: sorted((o.perm_id, o.status) for o in s.exchange.orders.values()))
        r = bothost("run", str(ib), "--state", str(tmp_path / "fresh"), "--no-progress", "--stop-when-idle", "2",
                    "--set", "strategies.0.profit_target=2%", cwd=tmp_path, env=env)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "resting SELLs were placed with another profit_target" in r.stderr
        assert "+1.00%; profit_target 2% would be" in r.stderr and "Traceback" not in r.stderr
        assert sim.call(lambda s: sorted((o.perm_id, o.status) for o in s.exchange.orders.values())) == orders
    finally:
        sim.stop()
