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
