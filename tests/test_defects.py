"""One test per defect of the original bot (tqqq-grid.md, last section), each showing it fixed,
on the real engine and simulated venue."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from decimal import Decimal

from bothost.model import OrderRequest, Side
from bothost_plugins.tqqq_grid.grid import sell_price, trigger_chain
from bothost_plugins.tqqq_grid.tags import entry_tag
from conftest import PAPER, bothost, write_bars
from test_reconstruct_venue import T0, MIN, buy_fill, close_venue, open_venue, orders_of, run_after

D = Decimal
PCT = D("0.01")


def backtest(tmp_path, closes, *extra):
    data = write_bars(tmp_path / "bars.csv", closes, spread=0.0)
    r = bothost("backtest", str(PAPER), "--data", str(data), "--out", str(tmp_path / "out"), *extra, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "fills.csv").open()))
    return rows, json.loads((tmp_path / "out" / "summary.json").read_text())


def restart_after_level0_fill(tmp_path, price: Decimal):
    """The bot died right after its Level-0 BUY filled at ``price``, before placing anything
    else; then it starts again on a market 10 cents above."""
    state = tmp_path / "state"
    b = open_venue(state)
    buy_fill(b.venue, T0, 94, price, ref=entry_tag("tqqq_grid", price - D("0.10")))
    close_venue(b)
    r, venue = run_after(tmp_path, state, [float(price) + 0.10] * 5)
    assert r.returncode == 0, r.stderr
    return r, venue


def test_a_level_is_rearmed_after_its_sell_fills_while_running(tmp_path):
    """Defect: no re-arm while running. A price swinging between L0 and L1 keeps earning."""
    closes = [50.00, 50.00] + [49.40, 50.10] * 6  # L1 = 49.50, its SELL at 1% above
    rows, summary = backtest(tmp_path, closes)
    level1 = Counter(r["side"] for r in rows if r["level"] == "1")
    assert level1["BUY"] >= 5 and level1["SELL"] >= 5
    assert summary["round_trips"] >= 5


def test_a_partially_filled_buy_makes_one_lot(tmp_path):
    """Defect: a lot per execution. With fills split in pieces of 10 shares, each BUY order still
    gets exactly one SELL, for its whole quantity."""
    closes = [50.00] * 3 + [49.40] * 12 + [48.90] * 12 + [50.20] * 30
    rows, _ = backtest(tmp_path, closes, "--set", "broker.partial_fill_shares=10")
    bought = defaultdict(int)
    for r in rows:
        if r["side"] == "BUY":
            bought[r["order_id"]] += int(r["quantity"])
    assert any(v > 10 for v in bought.values())  # some BUY really was split
    sells = defaultdict(int)
    for r in rows:
        if r["side"] == "SELL":
            buy_id = r["order_ref"].split(":B")[1]
            sells[(buy_id, r["order_id"])] += int(r["quantity"])
    per_buy = Counter(buy_id for buy_id, _ in sells)
    assert per_buy and all(n == 1 for n in per_buy.values())  # one SELL order per BUY order
    for (buy_id, _), qty in sells.items():
        assert qty == bought[buy_id]


def test_repeated_quantities_recover_to_distinct_levels(tmp_path):
    """Defect: quantity-only recovery. Untagged SELLs of 2 shares (levels 58-67 all hold 2) go to
    the levels whose triggers are nearest their purchase, never two on one level."""
    state = tmp_path / "state"
    chain = trigger_chain(D("100.00"), PCT, 88)
    b = open_venue(state)
    t = T0
    for level, qty in ((0, 94), (60, 2), (62, 2)):
        buy_fill(b.venue, t, qty, chain[level])
        b.venue.place(OrderRequest("TQQQ", Side.SELL, qty, sell_price(chain[level], PCT)))
        t += MIN
    close_venue(b)
    r, venue = run_after(tmp_path, state, [float(chain[62]) + 0.02] * 5)
    assert r.returncode == 0, r.stderr
    lots = json.loads((state / "status.json").read_text())["strategies"]["tqqq_grid"]["book"]["lots"]
    assert sorted(lot["level"] for lot in lots) == [0, 60, 62]
    assert [o.limit for o in orders_of(venue, Side.BUY)] == [chain[63], chain[64], chain[65]]


def test_a_crash_between_buy_fill_and_sell_loses_no_lot(tmp_path):
    """Defect: orphan shares after a crash. The BUY's execution is found and its SELL placed."""
    r, venue = restart_after_level0_fill(tmp_path, D("40.00"))
    assert [(o.quantity, o.limit) for o in orders_of(venue, Side.SELL)] == [(94, D("40.40"))]


def test_queue_is_reconciled_by_difference_not_cancel_all(tmp_path):
    """Defect: cancel-everything-then-replace raced with fills. Each fill touches only the
    orders that must change: about one order placed and at most one cancelled per fill."""
    closes = [50.0, 50.0] + [50.0 * (0.99 ** (i % 12)) for i in range(1, 200)]
    rows, summary = backtest(tmp_path, closes)
    fills = summary["fills"]
    assert fills > 100
    assert summary["orders_placed"] <= 1.6 * fills  # cancel-all would place ~4 per fill


def test_trigger_chain_after_restart_is_the_rounded_chain(tmp_path):
    """Defect: unrounded trigger chains after restart. From anchor 100.00 the queue after a
    restart is 99.00, 98.01, 97.03 (chained cents), not 97.0299 or A*(1-s)^n rounded once."""
    r, venue = restart_after_level0_fill(tmp_path, D("100.00"))
    assert [o.limit for o in orders_of(venue, Side.BUY)] == [D("99.00"), D("98.01"), D("97.03")]
