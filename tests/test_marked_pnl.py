"""The summary marks the open position to the last price: a grid that sold its winners on the
way and then rode the price down must not report only its realized profit.

The check is bookkeeping that knows nothing of lots: everything the run paid and got (fills.csv)
plus what the shares held are worth at the last price is the total P&L; the realized part is the
summary's own, so the unrealized part is the difference.
"""

from __future__ import annotations

import csv
import json
from decimal import Decimal as D

from conftest import CONFIGS, bothost, write_bars

PAPER = CONFIGS / "tqqq-paper.yaml"


def test_a_position_under_water_shows_its_loss_beside_the_realized_profit(tmp_path):
    # Up and down around 50 (round trips booked), then a long fall to 40: the grid goes deep.
    wiggle = [50 + (0.6 if i % 4 < 2 else -0.6) for i in range(40)]
    fall = [50 - 0.1 * i for i in range(101)]
    data = write_bars(tmp_path / "bars.csv", wiggle + fall)
    r = bothost("backtest", str(PAPER), "--data", str(data), "--out", str(tmp_path / "out"), "--no-progress",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())

    with open(tmp_path / "out" / "fills.csv", newline="") as fh:
        fills = list(csv.DictReader(fh))
    cash = sum((1 if f["side"] == "SELL" else -1) * int(f["quantity"]) * D(f["price"]) for f in fills)
    fees = sum(D(f["commission"]) for f in fills)
    shares = sum((1 if f["side"] == "BUY" else -1) * int(f["quantity"]) for f in fills)
    last = D("40.00")  # the last bar's close is the last tick

    assert D(s["net_realized_pnl"]) > 0 and shares == s["open_position"] > 0
    assert D(s["last_price"]) == last
    assert D(s["market_value"]) == shares * last
    assert D(s["total_pnl"]) == cash - fees + shares * last < 0
    assert D(s["unrealized_pnl"]) == D(s["total_pnl"]) - D(s["net_realized_pnl"])
    assert D(s["unrealized_pnl"]) == D(s["market_value"]) - D(s["open_cost"])
    assert "total pnl" in r.stdout and "unrealized pnl" in r.stdout


def test_a_lot_bought_at_the_last_price_is_worth_its_cost(tmp_path):
    """Two round trips of the 94-share Level-0 lot (+0.50 and +0.51 a share, 1.00 a fill), then a
    third lot bought on the very last tick: it is worth what it cost, so the total is the net."""
    data = write_bars(tmp_path / "bars.csv", [50.0, 50.6, 51.2])
    r = bothost("backtest", str(PAPER), "--data", str(data), "--out", str(tmp_path / "out"), "--no-progress",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (s["realized_pnl"], s["net_realized_pnl"]) == ("94.94", "89.94")
    assert (s["open_position"], s["last_price"], s["open_cost"]) == (94, "51.20", "4812.80")
    assert (s["unrealized_pnl"], s["total_pnl"]) == ("0.00", "89.94")


def falling(tmp_path):
    """50 down to 12.50 in 0.25 steps: through all 88 levels of the lot map."""
    return write_bars(tmp_path / "fall.csv", [50 - 0.25 * i for i in range(150)] + [12.5 + 0.01 * i for i in range(20)])


def test_running_out_of_levels_is_a_warning_in_the_log_and_the_summary(tmp_path):
    r = bothost("backtest", str(PAPER), "--data", str(falling(tmp_path)), "--out", str(tmp_path / "out"),
                "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    [w] = s["warnings"]
    assert w["title"] == "tqqq_grid: out of lot map levels" and w["count"] == 1
    assert "all 88 levels are bought" in w["details"] and w["first"].startswith("2024-01-02T")
    assert "warning: tqqq_grid: out of lot map levels" in r.stdout
    assert D(s["lowest_equity"]) <= D(s["equity"]) == D(s["total_pnl"]) < 0
    log = (tmp_path / "out" / "state" / "bot_log.txt").read_text()
    assert "out of lot map levels" in log


def test_live_the_out_of_levels_warning_reaches_the_notifiers(tmp_path, monkeypatch):
    """Live (Alpaca data from sim-alpaca, the simulated venue for orders) every notifier gets it;
    a backtest only logs it (no phone pushes from a replay)."""
    from bothost.hookspecs import hookimpl
    from bothost_plugins.sim_alpaca.server import SimAlpacaThread
    from conftest import run_in_process

    class Notifier:
        def __init__(self):
            self.alerts = []

        @hookimpl
        def on_alert(self, ctx, alert):
            self.alerts.append(alert)

    config = tmp_path / "live-sim.yaml"
    config.write_text(f"extends: {CONFIGS / 'tqqq.yaml'}\nbroker: {{use: sim_broker}}\n")
    data = falling(tmp_path)
    with SimAlpacaThread(data=data, pace="asap") as sim:
        for k, v in {"ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s", "ALPACA_DATA_URL": sim.url}.items():
            monkeypatch.setenv(k, v)
        live = Notifier()
        result = run_in_process(tmp_path, config=config, observers=[live], stop_when_idle_s=2)
    assert result.status == "done"
    warned = [a for a in live.alerts if a.title == "tqqq_grid: out of lot map levels"]
    assert len(warned) == 1 and warned[0].level == "warning"

    replayed = Notifier()
    run_in_process(tmp_path / "bt", data=data, observers=[replayed])
    assert not [a for a in replayed.alerts if "out of lot map levels" in a.title]
