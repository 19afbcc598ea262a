"""The grid on the real engine, simulated venue and replay feed: I1-I4 after every event, I6,
and skipping quiet ticks proven exact."""

from __future__ import annotations

import hashlib

import pytest

from bothost.hookspecs import hookimpl
from bothost_plugins.tqqq_grid.invariants import check_invariants
from conftest import PAPER, bothost, run_in_process, write_bars


class InvariantChecker:
    """An observer plugin: after each tick the engine handles, with every consequence of it
    handled (fills, cancels, new orders), the book must agree with the venue."""

    def __init__(self):
        self.checked = 0
        self.max_lots = 0

    @hookimpl
    def on_start(self, ctx):
        engine, strategy, venue = ctx.engine, ctx.instance, ctx.engine.broker.venue
        self.check(strategy, venue, "after reconstruct")
        handle = engine.handle_tick

        def handle_and_check(time_ns, price, tick=None, symbol=None):
            handle(time_ns, price, tick, symbol)
            self.check(strategy, venue, f"after the tick at {time_ns} ({price})")

        engine.handle_tick = handle_and_check

    def check(self, strategy, venue, when):
        book = strategy.book
        problems = check_invariants(book, venue.open_orders(), venue.position.get(book.symbol, 0))
        assert not problems, f"{when}: {problems}"
        self.checked += 1
        self.max_lots = max(self.max_lots, len(book.lots))


@pytest.mark.parametrize("partial", [None, 7])
def test_invariants_hold_after_every_event(tmp_path, partial):
    checker = InvariantChecker()
    overrides = ["feed.synthetic.bars=6000", "feed.synthetic.volatility=1.0", "feed.synthetic.seed=3"]
    if partial:
        overrides.append(f"broker.partial_fill_shares={partial}")
    result = run_in_process(tmp_path, overrides, observers=[checker], verify_skips=True)
    assert result.status == "done"
    assert result.summary["fills"] > 100 and checker.checked >= result.summary["ticks_handled"] * 0.99
    assert checker.max_lots >= 3  # the grid went several levels deep, not just L0 in and out


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_i6_two_runs_give_byte_identical_fills(tmp_path):
    for name in ("a", "b"):
        r = bothost("backtest", str(PAPER), "--out", str(tmp_path / name), "--set", "feed.synthetic.bars=8000",
                    cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    assert _sha(tmp_path / "a" / "fills.csv") == _sha(tmp_path / "b" / "fills.csv")
    assert (tmp_path / "a" / "fills.csv").read_text().count("\n") > 50


def _bars_file(tmp_path, step_s, n, with_gaps_and_bad_rows=False):
    import math
    import random

    rng = random.Random(step_s)
    closes, x = [], math.log(60.0)
    lo, hi = math.log(20.0), math.log(120.0)  # reflected: a long series stays a tradeable price
    for _ in range(n):
        x += rng.gauss(0, 0.004 if step_s < 3600 else 0.03)
        x = lo + abs(x - lo) if x < lo else (hi - abs(x - hi) if x > hi else x)
        closes.append(math.exp(x))
    path = write_bars(tmp_path / f"bars_{step_s}.csv", closes, step_s=step_s)
    if with_gaps_and_bad_rows:
        lines = path.read_text().splitlines()
        head, rows = lines[0], lines[1:]
        rows = rows[:300] + rows[1300:]  # a gap (a halt) in the middle
        rows.insert(50, rows[49])  # duplicate
        rows.insert(80, rows[70])  # back in time
        t = rows[90].split(",")[0]
        rows.insert(91, f"{t[:-9]}59:59-05:00,nan,1,1,1,1")  # NaN (and not later: bad twice over)
        rows.insert(120, rows[119].split(",")[0].replace(":00-", ":30-") + ",0,0,0,0,0")
        rows.insert(150, rows[149].split(",")[0].replace(":00-", ":30-") + ",50,49,51,50,1")  # high < low
        path.write_text("\n".join([head, *rows]) + "\n")
    return path


@pytest.mark.parametrize("step_s,n,bad", [(60, 100_000, False), (300, 100_000, False), (86_400, 100_000, False),
                                          (60, 20_000, True)])
def test_skipping_quiet_ticks_changes_no_fill(tmp_path, step_s, n, bad):
    """Issue 10: fills byte-identical with and without the optimisation, on 100,000 bars at
    1-minute, 5-minute and daily bar sizes (daily: 274 years of them), and on data with gaps and
    bad rows."""
    data = _bars_file(tmp_path, step_s, n, bad)
    outs = {}
    for mode in ("true", "false"):
        out = tmp_path / f"out_{mode}"
        r = bothost("backtest", str(PAPER), "--data", str(data), "--out", str(out),
                    "--set", f"engine.skip_quiet_ticks={mode}", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        outs[mode] = out
    assert _sha(outs["true"] / "fills.csv") == _sha(outs["false"] / "fills.csv")
    assert (outs["true"] / "fills.csv").read_text().count("\n") > 20
    import json

    fast = json.loads((outs["true"] / "summary.json").read_text())
    slow = json.loads((outs["false"] / "summary.json").read_text())
    assert fast["ticks"] == slow["ticks"] and fast["ticks_handled"] < slow["ticks_handled"]
    if bad:
        assert fast["bad_rows_skipped"] >= 4
