"""Issue 17: fills.csv and the summary's stats from columns (the simulated venue's way) are what
the row path writes and counts, byte for byte and Decimal for Decimal; the fast paths they lean
on (the plain SELL tag, the vectorised ISO times) read and write what the general ones do."""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bothost import report
from bothost.fill_columns import NotColumnar, write_fills_columns
from bothost.model import ExecutionColumns, Fill, Side
from bothost_plugins.tqqq_grid import tags
from bothost_plugins.tqqq_grid.plugin import describe_order_ref

T0 = 1_546_439_400_000_000_000  # 2019-01-02 14:30 UTC
COMMISSIONS = [Decimal("1.00"), Decimal("1.005"), Decimal("0.35"), Decimal("2.5"), Decimal("0.00"), Decimal("1.00125"),
               Decimal("1.0"), Decimal("3"), Decimal("1.000")]  # equal values, other exponents: str shows them


def _columns(fills: list[Fill], size: int) -> list[ExecutionColumns]:
    names = [f.name for f in dataclasses.fields(ExecutionColumns)]
    return [ExecutionColumns(*([getattr(f, n) for f in fills[i:i + size]] for n in names))
            for i in range(0, len(fills), size)]


def _book(rng: random.Random, n: int, commissions: list[Decimal], refs: str = "grid") -> list[Fill]:
    """A grid-like stream of executions: BUYs make lots, SELLs close one (tag names its purchase)."""
    lots: list[tuple[str, int, int]] = []  # (ref, qty, purchase cents)
    out, t = [], T0
    for i in range(n):
        t += rng.choice([0, 1, 60, 3600, 86_400]) * 1_000_000_000 + rng.choice([0, 0, 0, 1, 999, 123_456_789])
        price = rng.randint(100, 20_000)
        commission = rng.choice(commissions)
        if lots and rng.random() < 0.5:
            ref, qty, purchase = lots.pop(rng.randrange(len(lots)))
            part = qty if rng.random() < 0.8 else rng.randint(1, qty)
            if part < qty:
                lots.append((ref, qty - part, purchase))
            filled = rng.randint(part, part + 3)
            out.append(Fill(f"E{i}", str(i), t, "TQQQ", Side.SELL, part, Decimal(price).scaleb(-2), commission, ref,
                            filled + rng.choice([0, 0, 2]), filled, Decimal(price).scaleb(-2)))
        else:
            qty = rng.randint(1, 500)
            level = rng.randint(0, 87)
            if refs == "grid":
                buy_ref = tags.queue_tag("tqqq_grid", level, Decimal("100.00"))
                sell_ref = tags.sell_tag("tqqq_grid", level, Decimal(price).scaleb(-2), Decimal("100.00"), str(i))
            else:
                buy_ref, sell_ref = rng.choice(["", "foreign,ref", 'q"uote']), f"s{i}"
            out.append(Fill(f"E{i}", str(i), t, "TQQQ", Side.BUY, qty, Decimal(price).scaleb(-2), commission, buy_ref,
                            qty, qty, Decimal(price).scaleb(-2)))
            lots.append((sell_ref, qty, price))
    return out


def _same_stats(a: report.FillStats, b: report.FillStats) -> None:
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, report.FillPoints):
            x, y = (list(x.t), list(x.p)), (list(y.t), list(y.p))
        elif isinstance(x, report.Levels):
            x, y = list(x), list(y)
        assert x == y, f.name
        assert str(x) == str(y), f.name  # Decimals: the same exponent too (str shows it)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**9), n=st.integers(0, 400), size=st.sampled_from([1, 7, 64, 1000]),
       fees=st.sampled_from([COMMISSIONS[:1], COMMISSIONS[:2], COMMISSIONS, COMMISSIONS[3:5], COMMISSIONS[6:8],
                             [Decimal("1.0"), Decimal("1.00")]]))
def test_columns_write_and_count_what_the_rows_do(tmp_path_factory, seed, n, size, fees):
    fills = _book(random.Random(seed), n, fees)
    tmp = tmp_path_factory.mktemp("cols")
    rows = report.write_fills(tmp / "rows.csv", fills, describe=describe_order_ref)
    cols = write_fills_columns(tmp / "cols.csv", _columns(fills, size), describe_order_ref)
    assert (tmp / "cols.csv").read_bytes() == (tmp / "rows.csv").read_bytes()
    _same_stats(cols, rows)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**9), n=st.integers(0, 300), samples=st.integers(1, 400),
       size=st.sampled_from([1, 9, 128]), most=st.sampled_from([2, 7, 5000]))
def test_kept_at_the_sample_times_the_picture_and_summary_are_the_row_paths(tmp_path_factory, seed, n, samples,
                                                                               size, most):
    """Given the price picture's times, the columnar path keeps nothing per fill, yet the equity
    and capital curves (and so max_drawdown) equal the row path's to the bit, and the fill
    markers are every 2**k-th fill from the first, at most 2 x most of them."""
    rng = random.Random(seed)
    fills = _book(rng, n, COMMISSIONS)
    lo, hi = (fills[0].time_ns, fills[-1].time_ns) if fills else (T0, T0)
    times = [rng.randint(lo - 10**12, hi + 10**12) for _ in range(samples)]
    times += [f.time_ns for f in fills[:samples // 3]]  # samples at a fill's very time, too
    sample_t = np.array(sorted(times), dtype=np.int64)
    sample_p = np.array([rng.randint(100, 20_000) for _ in sample_t], dtype=np.int64)
    tmp = tmp_path_factory.mktemp("at")
    rows = report.write_fills(tmp / "rows.csv", fills, describe=describe_order_ref)
    cols = write_fills_columns(tmp / "cols.csv", _columns(fills, size), describe_order_ref, sample_t, markers=most)
    assert (tmp / "cols.csv").read_bytes() == (tmp / "rows.csv").read_bytes()
    assert len(cols.times) == len(cols.positions) == len(cols.cash) == len(cols.levels) == 0  # nothing per fill
    for a, b in zip(report.equity_curve(cols, sample_t, sample_p), report.equity_curve(rows, sample_t, sample_p)):
        assert np.array_equal(a, b)
    assert (cols.last_position, cols.realized_pnl, cols.fees, cols.peak_capital, cols.cash_exact) == \
           (rows.last_position, rows.realized_pnl, rows.fees, rows.peak_capital, rows.cash_exact)
    for kept, every in ((cols.buys, rows.buys), (cols.sells, rows.sells)):
        kept_points, all_points = list(zip(kept.t, kept.p)), list(zip(every.t, every.p))
        assert len(kept_points) <= 2 * most
        assert any(all_points[::2 ** k] == kept_points for k in range(20))


def test_fields_that_need_quoting_are_quoted_as_the_csv_writer_does(tmp_path):
    describe = lambda ref: {"purchase": Decimal("1.00"), "level": 3} if ref.startswith("s") else None  # noqa: E731
    fills = _book(random.Random(3), 300, COMMISSIONS[:1], refs="foreign")
    report.write_fills(tmp_path / "rows.csv", fills, describe=describe)
    write_fills_columns(tmp_path / "cols.csv", _columns(fills, 50), describe)
    text = (tmp_path / "cols.csv").read_text()
    assert '"foreign,ref"' in text and '"q""uote"' in text
    assert text == (tmp_path / "rows.csv").read_text()


@pytest.mark.parametrize("why, change", [
    ("a price off the cent grid", lambda f: dataclasses.replace(f, price=Decimal("50.005"))),
    ("a SELL with no purchase in its tag", lambda f: dataclasses.replace(f, ref="")),
    ("a price written with one decimal", lambda f: dataclasses.replace(f, price=Decimal("50.0"))),
])
def test_what_columns_cannot_say_exactly_falls_back_and_leaves_no_file(tmp_path, why, change):
    fills = _book(random.Random(5), 50, COMMISSIONS[:1])
    k = next(i for i, f in enumerate(fills) if f.side is Side.SELL)
    fills[k] = change(fills[k])
    (tmp_path / "fills.csv").write_text("earlier\n")
    with pytest.raises(NotColumnar):
        write_fills_columns(tmp_path / "fills.csv", _columns(fills, 16), describe_order_ref)
    assert (tmp_path / "fills.csv").read_text() == "earlier\n"  # untouched, and no temp file left
    assert [p.name for p in tmp_path.iterdir()] == ["fills.csv"]


def test_a_sell_with_nothing_held_takes_the_row_path(tmp_path):
    sell = tags.sell_tag("tqqq_grid", 2, Decimal("50.00"), None, "9")
    fills = [Fill("E1", "1", T0, "TQQQ", Side.SELL, 3, Decimal("51.00"), Decimal("1.00"), sell, 3, 3, Decimal("51.00"))]
    with pytest.raises(NotColumnar):
        write_fills_columns(tmp_path / "fills.csv", _columns(fills, 16), describe_order_ref)


_PIECES = ["tqqq_grid", "x%3Ay", "a b", "SELL", "BUY", "L0", "L3", "L012", "L1234567", "P97.03", "P97", "P-1",
           "P1e5", "A100.00", "A", "Ax", "B17", "B", "Ba%20b", "M50.00", "T123", "Q1.00", "", "P.5", "S1.00"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), min_size=0, max_size=7))
def test_the_plain_sell_tag_shortcut_reads_what_the_general_parser_reads(parts):
    ref = ":".join(parts)
    assert tags.parse_tag(ref) == tags._parse_tag(ref)


def test_every_sell_tag_the_grid_writes_takes_the_shortcut_and_round_trips():
    rng = random.Random(11)
    for _ in range(2000):
        purchase = Decimal(rng.randint(1, 10**7)).scaleb(-rng.choice([0, 2, 3, 6]))
        anchor = None if rng.random() < 0.2 else Decimal(rng.randint(1, 10**6)).scaleb(-2)
        buy = rng.choice([None, "17", str(rng.randint(1, 10**9)), "a:b c"])
        ref = tags.sell_tag("tqqq_grid", rng.randint(0, 87), purchase, anchor, buy)
        assert tags.parse_tag(ref) == tags._parse_tag(ref) is not None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-2 * 10**18, 9 * 10**18), max_size=50))
def test_iso_times_of_a_chunk_are_the_per_fill_ones(times):
    assert report._IsoTimes().many(times) == [report._IsoTimes()(t) for t in times]


def test_the_backtest_writes_fills_csv_from_columns_as_the_row_path_would(tmp_path, monkeypatch):
    """A replay takes the columnar path (the row path is not called); forced onto the row path,
    the same run writes the same fills.csv and the same summary."""
    from bothost import run as run_module
    from bothost.testing import run_backtest

    config = Path(__file__).resolve().parents[1] / "configs" / "tqqq-paper.yaml"
    sets = ["feed.synthetic.bars=6000", "feed.synthetic.volatility=1.2"]
    calls: list[int] = []
    real = report.write_fills
    monkeypatch.setattr(report, "write_fills", lambda *a, **k: calls.append(1) or real(*a, **k))
    cols = run_backtest(config, out_dir=tmp_path / "cols", overrides=sets)
    assert not calls and cols.summary["fills"] > 50

    def refuse(*a, **k):
        raise NotColumnar("forced")

    monkeypatch.setattr(run_module, "write_fills_columns", refuse)
    rows = run_backtest(config, out_dir=tmp_path / "rows", overrides=sets)
    assert calls
    assert (tmp_path / "cols" / "fills.csv").read_bytes() == (tmp_path / "rows" / "fills.csv").read_bytes()
    drop = ("wall_time_s", "ticks_per_second", "phases_s")
    assert {k: v for k, v in cols.summary.items() if k not in drop} == \
           {k: v for k, v in rows.summary.items() if k not in drop}
