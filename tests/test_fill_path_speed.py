"""Issue 17 (fill-path speed): the shortcuts taken for speed give what the long way gives, and the
benchmark's fill-path section reads its targets right. All in-process and fast."""

from __future__ import annotations

import logging
import random
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bothost import plot, report
from bothost.hookspecs import BuildEnv
from bothost.model import Fill, OrderRequest, Side
from bothost_plugins.sim_broker.plugin import SimBroker, SimBrokerConfig
from bothost_plugins.tqqq_grid import tags

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.append(str(BENCH))


def test_a_sell_tag_is_the_tag_format_tag_writes():
    rng = random.Random(17)
    for _ in range(3000):
        purchase = Decimal(rng.randint(1, 10**7)).scaleb(-rng.choice([0, 2, 2, 3, 6]))
        anchor = None if rng.random() < 0.2 else Decimal(rng.randint(1, 10**6)).scaleb(-2)
        buy = rng.choice([None, "", "17", "a:b%c d", str(rng.randint(1, 10**9))])
        sid, level = rng.choice(["tqqq_grid", "x:y", "é"]), rng.randint(0, 90)
        fast = tags.sell_tag(sid, level, purchase, anchor, buy)
        assert fast == tags.format_tag(tags.Tag(sid, Side.SELL, level, tags.SELL, purchase, anchor, buy))
        assert tags.parse_tag(fast).price == purchase


@pytest.mark.parametrize("text", ["0", "-0", "0.00", "1E+2", "100", "1.000", "97.0333333"])
def test_a_remembered_tag_price_prints_as_a_fresh_one(text):
    value = Decimal(text)
    first, again = tags.format_price(value), tags.format_price(value)
    assert first == again == tags._format_price(value)


def test_a_tag_price_that_is_not_a_number_is_still_refused():
    for text in ("NaN", "sNaN", "Infinity", "-1"):
        with pytest.raises(ValueError):
            tags.format_price(Decimal(text))


def _fill(i: int, ref: str, side=Side.BUY) -> Fill:
    return Fill(f"E{i}", str(i), 1_700_000_000_000_000_000 + i * 60_000_000_000, "TQQQ", side, 3, Decimal("50.25"),
                Decimal("1.00"), ref, 3, 3, Decimal("50.25"))


def test_fills_csv_levels_none_numbers_and_a_strategy_own_kind(tmp_path):
    fills = [_fill(1, "a"), _fill(2, ""), _fill(3, "b"), _fill(4, "c", Side.SELL)]
    levels = {"a": {"level": 4}, "b": {"level": "L7-east"}, "c": {"level": 4, "purchase": Decimal("50")}}
    stats = report.collect_fills(fills, levels.get)
    assert list(stats.levels) == [4, None, "L7-east", 4]
    report.write_fills(tmp_path / "fills.csv", fills, stats.levels)
    rows = (tmp_path / "fills.csv").read_text().splitlines()
    assert [r.split(",")[3] for r in rows[1:]] == ["4", "", "L7-east", "4"]
    assert stats.realized_pnl == Decimal("0.75") and stats.positions[-1] == 6
    assert plot.fill_points(stats.buys).shape == (3, 2)
    with pytest.raises(ValueError):
        report.write_fills(tmp_path / "short.csv", fills, [1, 2])


def test_a_broker_subclass_that_times_its_orders_is_still_called(tmp_path):
    calls = []

    class Timed(SimBroker):
        def place(self, order):
            calls.append(order.ref)
            return super().place(order)

    env = BuildEnv(tmp_path / "c.yaml", tmp_path, "paper", logging.getLogger("t"))
    broker = Timed(SimBrokerConfig(), env)
    broker.open()
    broker.place(OrderRequest("TQQQ", Side.BUY, 1, Decimal("10.00"), ref="x"))
    assert calls == ["x"]
    plain = SimBroker(SimBrokerConfig(), BuildEnv(tmp_path / "c.yaml", tmp_path / "p", "paper", logging.getLogger("t")))
    (tmp_path / "p").mkdir()
    plain.open()
    assert plain.place.__self__ is plain.venue  # the untouched class goes straight to its venue


def test_latency_fills_section_has_a_fill_on_every_tenth_tick():
    import latency

    r = latency.measure(3000, fill_every=10)
    assert 290 <= r["fills"] <= 300 and r["ticks_per_fill"] <= 10.5
    assert 0 < r["p50_us"] <= r["p99_us"] <= r["max_us"]


def test_fill_path_targets_read_off_a_run():
    import fillpath

    results = {
        "bothost": [{"system": "bothost", "bars": 1_000_000, "status": "ok", "wall_s": 4.0}],
        "peers": [{"system": "vectorbt", "mode": "warm", "bars": 1_000_000, "status": "ok", "wall_s": 13.0}],
        "cost_vs_work": {"fit": {"per_fill_us": 30.0}},
        "latency": {"result": {"fills": {"p99_us": 80.0}}},
        "fill_path": {
            "bothost": [{"bars": 1_000_000, "status": "ok", "wall_s": 5.0, "rss_mb": 200},
                        {"bars": 10_000_000, "status": "ok", "wall_s": 60.0, "rss_mb": 250}],
            "peers": [{"system": "vectorbt", "mode": "warm", "status": "ok", "wall_s": 11.0},
                      {"system": "backtesting", "mode": "-", "status": "failed", "wall_s": 99.0}],
        },
    }
    got = {t["target"]: (t["value"], t["met"]) for t in fillpath.targets(results)}
    assert got["range-bound 1M: vectorbt warm / bothost"] == (2.2, True)
    assert got["range-bound 1M: backtesting.py / bothost"] == (None, None)  # it failed: not measured
    assert got["cost per fill (cost-against-work fit), us"] == (30.0, False)
    assert got["standard 1M: vectorbt warm / bothost"] == (3.25, True)
    assert got["range-bound 10M: peak RSS MB"] == (250, True)
    assert got["range-bound 10M wall / 1M wall"] == (12.0, False)
    assert got["live tick-to-order p99 with fills, us"] == (80.0, True)


def test_a_replay_leaves_the_garbage_collector_as_it_found_it(tmp_path):
    """replay_gc tunes the collector for the replay only: afterwards nothing stays frozen and the
    thresholds are back (a sweep or a test suite runs many backtests in one process)."""
    import gc

    from bothost.replay import REPLAY_GC_THRESHOLD, replay_gc
    from bothost.testing import run_backtest

    before = gc.get_threshold()
    with replay_gc():
        assert gc.get_threshold() == REPLAY_GC_THRESHOLD and gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    r = run_backtest(Path(__file__).resolve().parents[1] / "configs" / "tqqq-paper.yaml", out_dir=tmp_path / "run",
                     overrides=["feed.synthetic.bars=2000"])
    assert r.ok, r.output
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_the_plotted_line_keeps_every_extreme_of_the_full_line():
    """equity.png draws each series reduced to its first, lowest, highest and last point per
    bucket: the picture loses no spike, and short series are drawn whole."""
    import numpy as np

    rng = np.random.default_rng(3)
    for n in (10, 6000, 27_140, 200_000):
        t = np.sort(rng.integers(0, 10**15, n))
        y = np.cumsum(rng.standard_normal(n))
        y[rng.integers(0, n)] += 500  # a spike
        tt, yy = plot.envelope(t, y)
        if n <= 6000:
            assert len(tt) == n
            continue
        assert len(tt) <= 4 * 1500 and (np.diff(tt) >= 0).all()
        assert (tt[0], tt[-1]) == (t[0], t[-1]) and yy.max() == y.max() and yy.min() == y.min()
        # every kept point is a point of the line, and each bucket's extremes are among them
        assert set(zip(tt.tolist(), yy.tolist())) <= set(zip(t.tolist(), y.tolist()))
        edges = np.linspace(0, n, 1501).astype(int)
        for a, b in zip(edges[:-1], edges[1:]):
            assert y[a:b].max() in yy and y[a:b].min() in yy
