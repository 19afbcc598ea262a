"""The replay feed: CSV/Parquet bars, ticks and quotes, and seeded synthetic data.

What a user notices: which ticks a file turns into (order, timing, prices in cents), which rows
are skipped and why, that Parquet and CSV agree, that chunking never changes the result, that a
resumed run gets exactly the rest, and the errors for unusable files.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bothost.errors import InputError
from bothost.hookspecs import BuildEnv, ReplayFeed, TickChunk
from bothost.registry import Registry
from bothost_plugins.replay_feed import plugin as rf_plugin
from bothost_plugins.replay_feed.bars import GapCounter
from bothost_plugins.replay_feed.errors import DataError
from bothost_plugins.replay_feed.feed import FileFeed, SyntheticFeed
from bothost_plugins.replay_feed.layout import inspect
from bothost_plugins.replay_feed.reader import Scan, to_cents
from bothost_plugins.replay_feed.synthetic import generate_bars, write_csv
from bothost_plugins.replay_feed.times import _parse_general, _buffers, parse_iso, parse_timestamps

NS = 1_000_000_000
NY = ZoneInfo("America/New_York")
# Reading files takes longer than hypothesis' default 200 ms deadline on a busy machine.
QUICK = settings(deadline=None)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def run(feed, after_ns=None) -> tuple[np.ndarray, np.ndarray]:
    chunks = list(feed.chunks(after_ns))
    for c in chunks:
        assert isinstance(c, TickChunk)
        assert c.time_ns.dtype == np.int64 and c.price.dtype == np.int64
    if not chunks:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([c.time_ns for c in chunks]), np.concatenate([c.price for c in chunks])


def ticks_of(path: Path, **kw) -> tuple[FileFeed, np.ndarray, np.ndarray]:
    feed = FileFeed(path, **kw).open()
    t, p = run(feed)
    return feed, t, p


def utc_ns(text: str) -> int:
    d = datetime.fromisoformat(text)
    if d.tzinfo is None:
        d = d.replace(tzinfo=NY)
    return int(d.timestamp()) * NS


def secs_from(t: np.ndarray, t0: np.int64 | int) -> list[float]:
    return ((t - t0) / NS).tolist()


def bars_csv(path: Path, rows: list[tuple], header="timestamp,open,high,low,close,volume") -> Path:
    lines = [header] + [",".join(str(x) for x in r) for r in rows]
    return write(path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# bars -> ticks
# --------------------------------------------------------------------------------------------


def test_up_bar_is_open_low_high_close_and_down_bar_open_high_low_close(tmp_path):
    path = bars_csv(tmp_path / "b.csv", [
        ("2024-01-02T09:30:00-05:00", 10.00, 10.50, 9.80, 10.20, 100),  # up: O L H C
        ("2024-01-02T09:31:00-05:00", 10.20, 10.40, 9.90, 10.00, 100),  # down: O H L C
        ("2024-01-02T09:32:00-05:00", 10.00, 10.10, 9.95, 10.00, 100),  # flat counts as up
    ])
    feed, t, p = ticks_of(path)
    assert p.tolist() == [1000, 980, 1050, 1020, 1020, 1040, 990, 1000, 1000, 995, 1010, 1000]
    assert np.all(np.diff(t) > 0)
    assert feed.stats()["ticks"] == 12


@pytest.mark.parametrize("step, expected", [
    (timedelta(minutes=1), [0, 15, 30, 45]),
    (timedelta(minutes=5), [0, 75, 150, 225]),
    (timedelta(hours=1), [0, 900, 1800, 2700]),
])
def test_tick_times_are_quarters_of_the_bar_interval(tmp_path, step, expected):
    t0 = datetime(2024, 1, 2, 14, 30, tzinfo=timezone.utc)
    rows = [((t0 + i * step).isoformat(), 10, 11, 9, 10.5, 1) for i in range(5)]
    feed, t, _ = ticks_of(bars_csv(tmp_path / "b.csv", rows))
    assert feed.stats()["bar_interval_s"] == step.total_seconds()
    for i in range(5):
        start = int((t0 + i * step).timestamp()) * NS
        assert secs_from(t[4 * i: 4 * i + 4], start) == expected


def test_one_minute_bars_tick_at_00_15_30_45_seconds(tmp_path):
    rows = [(f"2024-01-02 09:{30 + i}:00", 10, 11, 9, 10.5, 1) for i in range(10)]
    _, t, _ = ticks_of(bars_csv(tmp_path / "b.csv", rows))
    assert sorted(set((t // NS % 60).tolist())) == [0, 15, 30, 45]
    assert (t // NS % 60).tolist()[:8] == [0, 15, 30, 45, 0, 15, 30, 45]


def test_daily_bars_tick_every_six_hours(tmp_path):
    days = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09"]
    rows = [(d, 10, 11, 9, 10.5, 1) for d in days]
    feed, t, _ = ticks_of(bars_csv(tmp_path / "d.csv", rows, header="Date,Open,High,Low,Close,Volume"))
    assert feed.stats()["bar_interval_s"] == 86_400  # weekends are the rarer gap
    start = utc_ns("2024-01-02T00:00:00")  # a date alone is midnight, New York time
    assert secs_from(t[:4], start) == [0, 6 * 3600, 12 * 3600, 18 * 3600]
    assert int(t[16]) == utc_ns("2024-01-08T00:00:00")  # Monday after the weekend: no fill-in


def test_interval_is_the_most_common_gap_ties_to_the_smaller(tmp_path):
    t0 = utc_ns("2024-01-02T09:30:00")
    # gaps: 120, 60, 120, 60 -> tie between 60 and 120: the smaller
    offsets = [0, 120, 180, 300, 360]
    rows = [(datetime.fromtimestamp(t0 // NS + o, NY).isoformat(), 10, 11, 9, 10.5, 1) for o in offsets]
    feed, t, _ = ticks_of(bars_csv(tmp_path / "tie.csv", rows))
    assert feed.stats()["bar_interval_s"] == 60
    assert secs_from(t[:4], t0) == [0, 15, 30, 45]
    # gaps: 300 x3, 60 x2 -> 300
    offsets = [0, 300, 600, 900, 960, 1020]
    rows = [(datetime.fromtimestamp(t0 // NS + o, NY).isoformat(), 10, 11, 9, 10.5, 1) for o in offsets]
    feed, _, _ = ticks_of(bars_csv(tmp_path / "mode.csv", rows))
    assert feed.stats()["bar_interval_s"] == 300


def test_interval_counts_only_accepted_bars(tmp_path):
    # Accepted bars are 2 minutes apart; the bad rows in between would make 1-minute gaps.
    rows = []
    for i in range(6):
        rows.append((f"2024-01-02T10:{2 * i:02d}:00", 10, 11, 9, 10.5, 1))
        rows.append((f"2024-01-02T10:{2 * i + 1:02d}:00", 10, 9, 11, 10.5, 1))  # high < low: bad
    feed, t, _ = ticks_of(bars_csv(tmp_path / "b.csv", rows))
    assert feed.stats()["bar_interval_s"] == 120
    assert feed.stats()["bad_rows_by_reason"]["high_below_low"] == 6
    assert secs_from(t[:4], t[0]) == [0, 30, 60, 90]


def test_a_single_bar_uses_a_one_minute_interval(tmp_path):
    feed, t, p = ticks_of(bars_csv(tmp_path / "one.csv", [("2024-01-02T09:30:00Z", 10, 11, 9, 10.5, 1)]))
    assert feed.stats()["bar_interval_s"] == 60
    assert secs_from(t, t[0]) == [0, 15, 30, 45]
    assert p.tolist() == [1000, 900, 1100, 1050]


def test_gaps_make_no_ticks(tmp_path):
    rows = [("2024-01-02T15:58:00-05:00", 10, 11, 9, 10.5, 1), ("2024-01-02T15:59:00-05:00", 10, 11, 9, 10.5, 1),
            ("2024-01-03T09:30:00-05:00", 10, 11, 9, 10.5, 1), ("2024-01-03T09:31:00-05:00", 10, 11, 9, 10.5, 1)]
    _, t, _ = ticks_of(bars_csv(tmp_path / "b.csv", rows))
    assert len(t) == 16
    assert int(t[8]) == utc_ns("2024-01-03T09:30:00-05:00")


def test_a_bar_followed_too_soon_is_squeezed_so_ticks_stay_in_order(tmp_path):
    rows = [("2024-01-02T09:30:00Z", 10, 11, 9, 10.5, 1), ("2024-01-02T09:31:00Z", 10, 11, 9, 10.5, 1),
            ("2024-01-02T09:32:00Z", 10, 11, 9, 10.5, 1), ("2024-01-02T09:32:20Z", 10, 11, 9, 10.5, 1),
            ("2024-01-02T09:33:00Z", 10, 11, 9, 10.5, 1)]
    feed, t, _ = ticks_of(bars_csv(tmp_path / "b.csv", rows))
    assert feed.stats()["bar_interval_s"] == 60
    assert np.all(np.diff(t) > 0)
    assert secs_from(t[8:12], t[8]) == [0, 5, 10, 15]  # 20 s to the next bar: quarters of that
    assert secs_from(t[12:16], t[12]) == [0, 10, 20, 30]  # 40 s: the +45 s tick would not fit either
    assert secs_from(t[16:20], t[16]) == [0, 15, 30, 45]  # the last bar: the interval


# --------------------------------------------------------------------------------------------
# Real exports
# --------------------------------------------------------------------------------------------

YF = """Datetime,Open,High,Low,Close,Adj Close,Volume,Dividends,Stock Splits
2024-03-08 15:58:00-05:00,82.19999694824219,82.30000305175781,82.0999984741211,82.25,82.25,1000,0.0,0.0
2024-03-08 15:59:00-05:00,82.25,82.26000213623047,82.0,82.01000213623047,82.01000213623047,1200,0.0,0.0
2024-03-11 09:30:00-04:00,81.0,81.5,80.5,81.19999694824219,81.19999694824219,5000,0.0,0.0
2024-03-11 09:31:00-04:00,81.19999694824219,81.25,81.0999984741211,81.0999984741211,81.0999984741211,700,0.0,0.0
"""


def test_yfinance_export(tmp_path):
    feed, t, p = ticks_of(write(tmp_path / "TQQQ.csv", YF))
    s = feed.stats()
    assert s["kind"] == "bars" and s["bad_rows"] == 0 and s["rows"] == 4
    assert s["bar_interval_s"] == 60
    assert p[:4].tolist() == [8220, 8210, 8230, 8225]  # float noise rounds to the cent
    assert p[4:8].tolist() == [8225, 8226, 8200, 8201]  # down bar: O H L C
    assert int(t[0]) == utc_ns("2024-03-08T15:58:00-05:00")
    assert int(t[8]) == utc_ns("2024-03-11T09:30:00-04:00")  # after the DST change


def test_alpaca_export(tmp_path):
    text = ("timestamp,open,high,low,close,volume,trade_count,vwap\n"
            "2024-01-02T14:30:00Z,50.01,50.05,49.9,50.0,12000,120,50.0123\n"
            "2024-01-02T14:31:00Z,50.0,50.2,49.99,50.15,9000,80,50.1\n")
    feed, t, p = ticks_of(write(tmp_path / "alpaca.csv", text))
    assert p.tolist() == [5001, 5005, 4990, 5000, 5000, 4999, 5020, 5015]
    assert int(t[0]) == utc_ns("2024-01-02T09:30:00")
    assert feed.stats()["bad_rows"] == 0


def test_naive_timestamps_are_new_york_time_across_dst(tmp_path):
    rows = [("2024-03-08 15:59:00", 10, 11, 9, 10.5, 1),  # EST: UTC-5
            ("2024-03-11 09:30:00", 10, 11, 9, 10.5, 1),  # EDT: UTC-4
            ("2024-11-01 09:30:00", 10, 11, 9, 10.5, 1),  # EDT
            ("2024-11-04 09:30:00", 10, 11, 9, 10.5, 1)]  # EST
    _, t, _ = ticks_of(bars_csv(tmp_path / "naive.csv", rows))
    expected = [datetime(2024, 3, 8, 20, 59), datetime(2024, 3, 11, 13, 30),
                datetime(2024, 11, 1, 13, 30), datetime(2024, 11, 4, 14, 30)]
    assert t[::4].tolist() == [int(e.replace(tzinfo=timezone.utc).timestamp()) * NS for e in expected]


def test_naive_times_in_the_dst_gap_and_overlap_follow_python_fold_0():
    texts = ["2024-03-10 01:59:00", "2024-03-10 02:30:00", "2024-03-10 03:00:00",
             "2024-11-03 00:59:00", "2024-11-03 01:30:00", "2024-11-03 02:00:00"]
    ns, ok = parse_timestamps(pa.array(texts))
    assert ok.all()
    assert ns.tolist() == [int(datetime.fromisoformat(x).replace(tzinfo=NY).timestamp()) * NS for x in texts]


@pytest.mark.parametrize("text, expected", [
    ("2024-01-02", "2024-01-02T00:00:00-05:00"),
    ("2024-01-02T09:30", "2024-01-02T09:30:00-05:00"),
    ("2024-01-02 09", "2024-01-02T09:00:00-05:00"),
    ("2024-07-02T09:30:00", "2024-07-02T09:30:00-04:00"),
    ("2024-01-02T14:30:00Z", "2024-01-02T14:30:00+00:00"),
    ("2024-01-02T14:30:00.25Z", "2024-01-02T14:30:00.250000+00:00"),
    ("2024-01-02T09:30:00-0500", "2024-01-02T09:30:00-05:00"),
    ("2024-01-02T20:00:00+05:30", "2024-01-02T20:00:00+05:30"),
    (" 2024-01-02T09:30:00-05:00 ", "2024-01-02T09:30:00-05:00"),
])
def test_timestamp_forms(text, expected):
    ns, ok = parse_timestamps(pa.array([text]))
    d = datetime.fromisoformat(expected)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert ok[0] and int(ns[0]) == (d - epoch) // timedelta(microseconds=1) * 1000


@pytest.mark.parametrize("text", ["", "abc", "2024-02-30", "2023-02-29", "2024-13-01", "2024-01-02T24:00",
                                  "2024-01-02T09:30:60", "2024/01/02", "2024-01-02T09:30:00+25:00",
                                  "2024-01-02T09:30:00.", "1600-01-01", "02.01.2024"])
def test_unreadable_timestamps(text):
    _, ok = parse_timestamps(pa.array([text]))
    assert not ok[0]


# --------------------------------------------------------------------------------------------
# Bad rows
# --------------------------------------------------------------------------------------------

BAD = """timestamp,open,high,low,close
2024-01-02T09:30:00,10,11,9,10.5
2024-01-02T09:31:00,NaN,11,9,10.5
2024-01-02T09:32:00,10,11,9,0
2024-01-02T09:33:00,10,11,-9,10.5
2024-01-02T09:34:00,10,9,11,10.5
2024-01-02T09:31:00,10,11,9,10.5
2024-01-02T09:35:00,10,11,9,10.5
2024-01-02T09:35:00,10,11,9,10.5
2024-01-02T09:34:30,10,11,9,10.5
2024-01-02T09:36:00,abc,11,9,10.5
2024-01-02T09:37:00,10,11,9
not a time,10,11,9,10.5
2024-01-02T09:38:00,,11,9,10.5
2024-01-02T09:39:00,10,11,9,inf
2024-01-02T09:40:00,15,11,9,10.5
2024-01-02T09:41:00,10.5,11,9,8
"""


def test_bad_rows_are_skipped_counted_by_reason_and_never_fatal(tmp_path):
    feed, t, p = ticks_of(write(tmp_path / "bad.csv", BAD))
    s = feed.stats()
    assert s["rows"] == 16
    assert s["bad_rows_by_reason"] == {
        "unparseable": 4,  # abc, missing field, not a time, empty price
        "not_finite": 2,  # NaN, inf
        "not_positive": 2,  # close 0, low -9
        "high_below_low": 1,
        "not_after_previous": 2,  # the duplicate 09:35 and 09:34:30 after it
    }
    assert s["bad_rows"] == 11
    bar_times = t[::4].tolist()
    # The 09:31 row after the skipped 09:31..09:34 rows is accepted: skipped rows do not move
    # the reference. Open/close outside [low, high] are kept as they are.
    assert bar_times == [utc_ns(f"2024-01-02T09:{m}:00") for m in (30, 31, 35, 40, 41)]
    assert p[12:16].tolist() == [1500, 1100, 900, 1050]  # open 15 above high 11: kept (down bar)
    assert p[16:20].tolist() == [1050, 1100, 900, 800]  # close 8 below low 9: kept
    assert s["ticks"] == 20 and s["complete"]


def test_a_skipped_row_does_not_move_the_reference(tmp_path):
    text = ("timestamp,price\n"
            "2024-01-02T10:00:00Z,10\n"
            "2024-01-02T10:05:00Z,-1\n"  # bad (price): must not become the reference
            "2024-01-02T10:01:00Z,11\n"  # later than 10:00: accepted
            "2024-01-02T10:01:00Z,12\n"  # duplicate: skipped
            "2024-01-02T10:00:30Z,13\n"  # back in time: skipped, not the reference either
            "2024-01-02T10:00:45Z,14\n"  # still not later than 10:01: skipped
            "2024-01-02T10:02:00Z,15\n")
    feed, t, p = ticks_of(write(tmp_path / "ticks.csv", text))
    assert p.tolist() == [1000, 1100, 1500]
    assert feed.stats()["bad_rows_by_reason"] == {"unparseable": 0, "not_finite": 0, "not_positive": 1,
                                                  "not_after_previous": 3}
    assert feed.stats()["bar_interval_s"] is None


def test_sub_cent_price_that_rounds_to_zero_is_not_positive(tmp_path):
    text = "timestamp,price\n2024-01-02T10:00:00Z,0.004\n2024-01-02T10:00:01Z,0.005\n"
    feed, _, p = ticks_of(write(tmp_path / "t.csv", text))
    assert p.tolist() == [1]
    assert feed.stats()["bad_rows_by_reason"]["not_positive"] == 1


def test_quotes_tick_at_the_midpoint_rounded_half_up(tmp_path):
    text = ("Timestamp,Bid,Ask,Bid_Size,Ask_Size\n"
            "2024-01-02T14:30:00Z,10.00,10.01,1,1\n"  # 10.005 -> 10.01
            "2024-01-02T14:30:01Z,10.00,10.00,1,1\n"
            "2024-01-02T14:30:02Z,10.02,10.01,1,1\n"  # crossed: skipped
            "2024-01-02T14:30:03Z,9.999,10.004,1,1\n")  # 10.00 and 10.00
    feed, t, p = ticks_of(write(tmp_path / "q.csv", text))
    assert p.tolist() == [1001, 1000, 1000]
    s = feed.stats()
    assert s["kind"] == "quotes" and s["bad_rows_by_reason"]["crossed_quote"] == 1
    assert s["bar_interval_s"] is None


def test_ticks_file(tmp_path):
    text = "time,price,size\n2024-01-02T14:30:00.5Z,10.125,100\n2024-01-02T14:30:01Z,10.135,5\n"
    feed, t, p = ticks_of(write(tmp_path / "t.csv", text))
    assert p.tolist() == [1013, 1014]
    assert t.tolist() == [utc_ns("2024-01-02T14:30:00+00:00") + NS // 2, utc_ns("2024-01-02T14:30:01+00:00")]
    s = feed.stats()
    assert s["kind"] == "ticks" and s["ticks"] == 2 and s["first_ns"] == t[0] and s["last_ns"] == t[-1]


def test_text_and_typed_reading_agree(tmp_path):
    """The fast path (Arrow converts the columns) and the text path give the same values."""
    path = write(tmp_path / "yf.csv", YF)
    lay = inspect(path)
    assert lay.time_hint == "utc"
    fast = list(Scan(lay, typed=True))
    slow = list(Scan(lay, typed=False))
    for a, b in zip(fast, slow, strict=True):
        assert np.array_equal(a.time_ns, b.time_ns)
        for x, y in zip(a.prices, b.prices, strict=True):
            assert np.array_equal(x, y)


# --------------------------------------------------------------------------------------------
# Rounding
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, cents", [
    ("82.19999694824219", 8220), ("1.005", 101), ("0.125", 13), ("0.135", 14), ("2.675", 268),
    ("10.004999", 1000), ("10.00499999", 1000), ("10.005", 1001), ("99999.995", 9999999 + 1),
    ("0.015", 2), ("1.115", 112), ("4.35", 435), ("8.345", 835), ("50", 5000), ("0.5e1", 500),
])
def test_prices_round_half_up_to_the_cent_as_written(tmp_path, value, cents):
    assert int(to_cents(np.array([float(value)]))[0]) == cents
    text = f"timestamp,price\n2024-01-02T14:30:00Z,{value}\n"
    _, _, p = ticks_of(write(tmp_path / "r.csv", text))
    assert p.tolist() == [cents]


@given(st.integers(min_value=0, max_value=8), st.data())
@QUICK
def test_rounding_matches_decimal_half_up(decimals, data):
    """Any price written with up to 6 decimals below $10M, or 7-8 decimals below $100k."""
    units = data.draw(st.integers(min_value=0, max_value=(10**5 if decimals > 6 else 10**7) - 1))
    if decimals:
        frac = data.draw(st.one_of(
            st.integers(min_value=0, max_value=10**decimals - 1),
            # right at, just below and just above a half cent
            st.sampled_from([5 * 10 ** (decimals - 3) + d for d in (-1, 0, 1)] if decimals >= 3 else [0])))
        text = f"{units}.{frac:0{decimals}d}"
    else:
        text = str(units)
    expected = int(Decimal(text).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) * 100)
    assert int(to_cents(np.array([float(text)]))[0]) == expected


# --------------------------------------------------------------------------------------------
# Parquet, chunking, resume
# --------------------------------------------------------------------------------------------


def test_parquet_gives_the_same_chunks_as_csv(tmp_path):
    csv_path = write(tmp_path / "yf.csv", YF)
    table = pcsv.read_csv(csv_path)  # Arrow infers a timestamp[s, tz=UTC] column and floats
    pq.write_table(table, tmp_path / "yf.parquet")
    pq.write_table(pcsv.read_csv(csv_path, convert_options=pcsv.ConvertOptions(
        column_types={"Datetime": pa.string()})), tmp_path / "yf_text.parquet")
    a = FileFeed(csv_path, chunk_rows=2).open()
    b = FileFeed(tmp_path / "yf.parquet", chunk_rows=2).open()
    c = FileFeed(tmp_path / "yf_text.parquet", chunk_rows=2).open()
    ca, cb, cc = list(a.chunks()), list(b.chunks()), list(c.chunks())
    assert len(ca) == len(cb) == len(cc)
    for x, y, z in zip(ca, cb, cc):
        assert np.array_equal(x.time_ns, y.time_ns) and np.array_equal(x.price, y.price)
        assert np.array_equal(x.time_ns, z.time_ns) and np.array_equal(x.price, z.price)
    assert b.stats()["format"] == "parquet"
    for key in ("rows", "bad_rows", "ticks", "bar_interval_s", "first_ns", "last_ns"):
        assert a.stats()[key] == b.stats()[key] == c.stats()[key]


def test_parquet_with_bad_rows_counts_like_csv(tmp_path):
    csv_path = write(tmp_path / "bad.csv", BAD.replace("2024-01-02T09:37:00,10,11,9\n", ""))
    table = pcsv.read_csv(csv_path, convert_options=pcsv.ConvertOptions(
        column_types={k: pa.string() for k in ("timestamp", "open", "high", "low", "close")}))
    pq.write_table(table, tmp_path / "bad.parquet")
    fa, ta, pa_ = ticks_of(csv_path)
    fb, tb, pb = ticks_of(tmp_path / "bad.parquet")
    assert np.array_equal(ta, tb) and np.array_equal(pa_, pb)
    assert fa.stats()["bad_rows_by_reason"] == fb.stats()["bad_rows_by_reason"]


@pytest.fixture(scope="module")
def messy_csv(tmp_path_factory) -> Path:
    """300 one-minute bars with every kind of bad row sprinkled in (read on the text path)."""
    rng = np.random.default_rng(5)
    t0 = utc_ns("2024-01-02T09:30:00")
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(300):
        ts = datetime.fromtimestamp(t0 // NS + 60 * i, NY).isoformat()
        o, c = (round(float(x), 4) for x in 20 + rng.random(2))
        h, l = max(o, c) + 0.05, min(o, c) - 0.05
        r = rng.random()
        if r < 0.03:
            o = "NaN"
        elif r < 0.06:
            c = ""
        elif r < 0.08:
            h, l = l, h
        elif r < 0.10:
            ts = datetime.fromtimestamp(t0 // NS + 60 * (i - 3), NY).isoformat()
        elif r < 0.12:
            lines.append(lines[-1])
        elif r < 0.13:
            l = -1
        lines.append(f"{ts},{o},{h},{l},{c},100")
    path = tmp_path_factory.mktemp("messy") / "messy.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def clean_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clean") / "clean.csv"
    write_csv(path, seed=3, bars=500)
    return path


_reference: dict = {}


def reference(path: Path):
    """The ticks and stats of ``path`` read with the default chunk size (computed once)."""
    if path not in _reference:
        feed = FileFeed(path).open()
        t, p = run(feed)
        _reference[path] = (t, p, feed.stats())
    return _reference[path]


@given(chunk_rows=st.integers(min_value=1, max_value=400))
@settings(max_examples=40, deadline=None)
def test_chunk_size_never_changes_the_ticks(messy_csv, clean_csv, chunk_rows):
    for path in (messy_csv, clean_csv):
        t_ref, p_ref, stats = reference(path)
        feed = FileFeed(path, chunk_rows=chunk_rows).open()
        t, p = run(feed)
        assert np.array_equal(t, t_ref) and np.array_equal(p, p_ref)
        assert feed.stats() == stats
        assert np.all(np.diff(t) > 0)


def test_messy_file_counts(messy_csv):
    feed = FileFeed(messy_csv).open()
    t, _ = run(feed)
    s = feed.stats()
    assert s["bad_rows"] > 0 and s["rows"] == s["bad_rows"] + len(t) // 4
    assert s["bar_interval_s"] == 60


@given(cut=st.integers(min_value=0, max_value=1999), chunk_rows=st.sampled_from([1, 7, 64, 65_536]))
@settings(max_examples=30, deadline=None)
def test_resume_after_ns_gives_exactly_the_rest(clean_csv, cut, chunk_rows):
    t_all, p_all, _ = reference(clean_csv)
    after = int(t_all[cut])
    feed = FileFeed(clean_csv, chunk_rows=chunk_rows).open()
    t, p = run(feed, after_ns=after)
    assert np.array_equal(t, t_all[cut + 1:]) and np.array_equal(p, p_all[cut + 1:])
    assert feed.stats()["rows"] == 500 and feed.stats()["ticks"] == 2000  # the whole file


def test_resume_on_tick_data_still_counts_the_whole_file(tmp_path):
    text = ("timestamp,price\n2024-01-02T10:00:00Z,10\n2024-01-02T10:00:00Z,10\n"
            "2024-01-02T10:00:01Z,11\n2024-01-02T10:00:02Z,x\n2024-01-02T10:00:03Z,12\n")
    feed = FileFeed(write(tmp_path / "t.csv", text)).open()
    t, p = run(feed, after_ns=utc_ns("2024-01-02T10:00:01+00:00"))
    assert p.tolist() == [1200]
    assert feed.stats()["bad_rows"] == 2 and feed.stats()["rows"] == 5 and feed.stats()["ticks_emitted"] == 1
    assert run(feed, after_ns=utc_ns("2024-01-02T11:00:00+00:00"))[0].size == 0


# --------------------------------------------------------------------------------------------
# Unusable files
# --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    feed = FileFeed(tmp_path / "nope.csv")  # building the feed reads nothing
    with pytest.raises(DataError) as err:
        feed.open()
    assert "nope.csv" in str(err.value) and "not found" in str(err.value)
    assert isinstance(err.value, InputError)  # the CLI's exit status 2


@pytest.mark.parametrize("content, words", [
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "PNG image"),
    (np.random.default_rng(0).bytes(4000), "binary"),
    (b"\x1f\x8b\x08\x00" + bytes(100), "gzip"),
    (b"", "empty"),
])
def test_not_a_csv_or_parquet_file(tmp_path, content, words):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        FileFeed(path).open()
    text = str(err.value)
    assert text.startswith(f"{path}:") and words in text and "\n  hint: " in text
    assert re.match(rf"{re.escape(str(path))}:\d+(:\d+)?: ", text), text  # always a line (and column) to look at


def test_a_fake_parquet_file(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1" + bytes(50))
    with pytest.raises(DataError, match="Parquet"):
        FileFeed(path).open()


@pytest.mark.parametrize("header, words", [
    ("timestamp,open,high,low,volume", "no price columns"),
    ("timestamp,bid,size", "no price columns"),
    ("timestamp,close,volume", "lacks open, high, low"),
    ("when,open,high,low,close", "no time column"),
    ('{"a": 1}', "no price columns"),
])
def test_header_without_price_or_time_columns(tmp_path, header, words):
    path = write(tmp_path / "prices.csv", header + "\n2024-01-02,1,2,3,4\n")
    with pytest.raises(DataError) as err:
        FileFeed(path).open()
    text = str(err.value)
    assert text.startswith(f"{path}:1: ") and words in text and "hint:" in text


def test_header_is_case_insensitive_and_extra_columns_are_ignored(tmp_path):
    text = "Symbol,TIME,Close,Open,LOW,High,Vwap,Trade_Count\nTQQQ,2024-01-02T14:30:00Z,10.5,10,9,11,10.2,5\n"
    feed, _, p = ticks_of(write(tmp_path / "c.csv", text))
    assert p.tolist() == [1000, 900, 1100, 1050]


def test_separate_date_and_time_columns_are_joined(tmp_path):
    text = "Date,Time,Open,High,Low,Close\n2024-01-02,09:30,10,11,9,10.5\n2024-01-02,09:31,10,11,9,10.5\n"
    _, t, _ = ticks_of(write(tmp_path / "dt.csv", text))
    assert t[::4].tolist() == [utc_ns("2024-01-02T09:30:00"), utc_ns("2024-01-02T09:31:00")]


# --------------------------------------------------------------------------------------------
# Timestamp parser: the byte-matrix fast path and the per-row path agree
# --------------------------------------------------------------------------------------------

_iso = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, blank, off: (
        f"{y:04d}-{mo:02d}-{d:02d}" + (
            "" if sep is None else
            f"{sep}{h:02d}" + ("" if mi is None else f":{mi:02d}" + ("" if s is None else f":{s:02d}" + frac))
            + ("" if off is None else blank + off))),
    st.integers(1600, 2300), st.integers(0, 13), st.integers(0, 32), st.sampled_from([None, "T", " ", "t"]),
    st.integers(0, 25), st.one_of(st.none(), st.integers(0, 61)), st.one_of(st.none(), st.integers(0, 61)),
    st.sampled_from(["", ".5", ",25", ".123456789", ".1234567891", "."]), st.sampled_from(["", " "]),
    st.one_of(st.none(), st.sampled_from(["Z", "z", "+05:30", "-0400", "+01", "-23:59", "+24:00", "+05:"])),
)


@given(st.lists(_iso, min_size=1, max_size=20), st.integers(1, 50))
@QUICK
def test_fast_and_general_timestamp_parsers_agree(texts, repeat):
    arr = pa.array(texts)
    start, end, data = _buffers(arr)
    g_ns, g_ok, g_naive = _parse_general(start, end, data, np.ones(len(texts), bool))
    # a uniform column (fast path) of each text
    for i, text in enumerate(texts):
        ns, ok, naive = parse_iso(pa.array([text] * repeat))
        assert ok.tolist() == [bool(g_ok[i])] * repeat, text
        if g_ok[i]:
            assert ns.tolist() == [int(g_ns[i])] * repeat and naive.tolist() == [bool(g_naive[i])] * repeat
    ns, ok, naive = parse_iso(arr)  # mixed column
    assert np.array_equal(ok, g_ok) and np.array_equal(ns[ok], g_ns[g_ok])


@given(_iso)
@QUICK
def test_what_arrow_reads_we_read_the_same(text):
    """The typed fast path relies on this: our grammar contains Arrow's, with equal values."""
    ns, ok, naive = parse_iso(pa.array([text]))
    for tz in ("UTC", None):
        try:
            value = pc_cast_timestamp(text, tz)
        except pa.ArrowInvalid:
            continue
        out_ns, out_ok = pa_times(value, tz)
        if out_ok:
            assert ok[0], text
            full, _ = parse_timestamps(pa.array([text]))
            assert int(full[0]) == out_ns, text


def pc_cast_timestamp(text: str, tz):
    import io

    table = pcsv.read_csv(io.BytesIO(f"t\n{text}\n".encode()), convert_options=pcsv.ConvertOptions(
        column_types={"t": pa.timestamp("ns", tz)}, null_values=[], strings_can_be_null=False))
    return table["t"].combine_chunks()


def pa_times(arr, tz):
    from bothost_plugins.replay_feed.times import arrow_times_to_ns

    ns, ok = arrow_times_to_ns(arr)
    return int(ns[0]), bool(ok[0])


# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------


def _concat(chunks):
    keys = chunks[0].keys()
    return {k: np.concatenate([c[k] for c in chunks]) for k in keys}


@given(chunk=st.integers(min_value=1, max_value=40_000))
@settings(max_examples=15, deadline=None)
def test_synthetic_is_deterministic_for_a_seed_whatever_the_chunk_size(chunk):
    ref = _concat(list(generate_bars(11, 40_000)))
    got = _concat(list(generate_bars(11, 40_000, chunk_bars=chunk)))
    for k in ref:
        assert np.array_equal(ref[k], got[k])


def test_synthetic_bars_are_sane_and_seeds_differ():
    a = _concat(list(generate_bars(1, 50_000)))
    b = _concat(list(generate_bars(2, 50_000)))
    assert not np.array_equal(a["close"], b["close"])
    assert a["open"][0] == 5000  # default start price $50.00
    assert (a["low"] > 0).all()
    assert (a["low"] <= np.minimum(a["open"], a["close"])).all()
    assert (a["high"] >= np.maximum(a["open"], a["close"])).all()
    assert ((a["high"] - a["low"]) > 0).mean() > 0.9  # bars have ranges, from the sub-steps
    assert np.array_equal(a["open"][1:], a["close"][:-1])
    assert (np.diff(a["time_ns"]) == 60 * NS).all()
    assert int(a["time_ns"][0]) == utc_ns("2024-01-02T09:30:00")
    # annualised volatility 0.6 over 252 x 390 one-minute bars, roughly
    r = np.diff(np.log(a["close"].astype(float)))
    assert 0.5 < r.std() * np.sqrt(252 * 390) < 0.7


def test_synthetic_feed_equals_its_csv_read_back(tmp_path):
    path = tmp_path / "synth.csv"
    assert write_csv(path, seed=9, bars=3000, volatility=0.8, start_price=42.0, interval=300) == 3000
    lines = path.read_text().splitlines()
    assert lines[0] == "timestamp,open,high,low,close,volume"
    assert lines[1].startswith("2024-01-02T09:30:00-05:00,42.00,")
    direct = SyntheticFeed(seed=9, bars=3000, volatility=0.8, start_price=42.0, interval=300, chunk_rows=500)
    from_file = FileFeed(path).open()
    t1, p1 = run(direct)
    t2, p2 = run(from_file)
    assert np.array_equal(t1, t2) and np.array_equal(p1, p2)
    s1, s2 = direct.stats(), from_file.stats()
    for key in ("rows", "bad_rows", "ticks", "bar_interval_s", "first_ns", "last_ns"):
        assert s1[key] == s2[key], key
    assert s1["bar_interval_s"] == 300 and secs_from(t1[:4], t1[0]) == [0, 75, 150, 225]


def test_synthetic_feed_resume():
    feed = SyntheticFeed(seed=4, bars=1000)
    t, p = run(feed)
    t2, p2 = run(feed, after_ns=int(t[1234]))
    assert np.array_equal(t2, t[1235:]) and np.array_equal(p2, p[1235:])


# --------------------------------------------------------------------------------------------
# The plugin: registration, config, factory
# --------------------------------------------------------------------------------------------


def env_for(tmp_path: Path) -> BuildEnv:
    return BuildEnv(config_path=tmp_path / "bot.yaml", state_dir=tmp_path / "state", mode="paper",
                    log=logging.getLogger("test"))


def test_registers_the_replay_feed_kind():
    registry = Registry()
    rf_plugin.bothost_register(registry)
    kind = registry.get("feed", "replay_feed")
    assert kind.model is rf_plugin.ReplayFeedConfig and kind.factory is rf_plugin.make_replay_feed
    assert "synthetic" in kind.summary


def test_config_one_source_and_no_unknown_keys():
    cfg = rf_plugin.ReplayFeedConfig()
    assert cfg.data is None and cfg.synthetic is None and cfg.symbol == "TQQQ" and cfg.chunk_rows == 65_536
    with pytest.raises(ValidationError, match="not both"):
        rf_plugin.ReplayFeedConfig(data="x.csv", synthetic={"seed": 1})
    with pytest.raises(ValidationError):
        rf_plugin.ReplayFeedConfig(file="x.csv")
    with pytest.raises(ValidationError):
        rf_plugin.ReplayFeedConfig(synthetic={"bars": 0})
    with pytest.raises(ValidationError):
        rf_plugin.ReplayFeedConfig(synthetic={"seeds": 1})
    s = rf_plugin.SyntheticConfig(interval="5m", volatility="80%")
    assert s.interval == 300 and s.volatility == pytest.approx(0.8)
    assert rf_plugin.SyntheticConfig().model_dump() == {
        "seed": 7, "bars": 20_000, "start_price": 50.0, "volatility": 0.6, "drift": 0.0, "interval": 60}


def test_factory_resolves_data_relative_to_the_config_and_checks_it_on_open(tmp_path):
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "bars.csv", YF)
    env = env_for(tmp_path)
    feed = rf_plugin.make_replay_feed(rf_plugin.ReplayFeedConfig(data="data/bars.csv", symbol="QQQ"), env)
    assert isinstance(feed, ReplayFeed) and feed.symbol == "QQQ"
    feed.open()
    assert feed.stats()["source"] == str(tmp_path / "data" / "bars.csv")
    assert "1-minute bars" in feed.describe()
    missing = rf_plugin.make_replay_feed(rf_plugin.ReplayFeedConfig(data="data/none.csv"), env)
    with pytest.raises(DataError, match="none.csv"):
        missing.open()


def test_factory_without_data_is_synthetic(tmp_path):
    feed = rf_plugin.make_replay_feed(rf_plugin.ReplayFeedConfig(), env_for(tmp_path))
    assert isinstance(feed, ReplayFeed)
    s = feed.stats()
    assert s["source"] == "synthetic(seed=7, bars=20000)" and s["ticks_total"] == 80_000
    assert s["bar_interval_s"] == 60 and s["bad_rows"] == 0
    t, _ = run(feed)
    assert len(t) == 80_000 and t[-1] == s["last_ns"] and t[0] == s["first_ns"]
    assert "seed 7" in feed.describe()
    feed = rf_plugin.make_replay_feed(
        rf_plugin.ReplayFeedConfig(synthetic={"seed": 3, "bars": 10, "interval": 300}), env_for(tmp_path))
    assert len(run(feed)[0]) == 40 and feed.stats()["bar_interval_s"] == 300


def test_synth_command_writes_a_csv_the_feed_reads(tmp_path):
    out = tmp_path / "s.csv"
    assert rf_plugin.synth_command(out, bars=100, seed=5, volatility=0.3, start_price=20.0, interval=60) == 100
    feed = FileFeed(out).open()
    assert feed.stats()["rows"] == 100 and feed.stats()["bad_rows"] == 0
    assert run(feed)[1][0] == 2000


def test_gap_counter_merges_across_chunks():
    g = GapCounter()
    g.add(np.array([0, 60, 120], dtype=np.int64))
    g.add(np.array([300, 360], dtype=np.int64))  # gap 180 across the chunk boundary
    g.add(np.array([], dtype=np.int64))
    g.add(np.array([420, 720, 1020, 1320], dtype=np.int64))
    assert dict(zip(g.keys.tolist(), g.counts.tolist())) == {60: 4, 180: 1, 300: 3}
    assert g.mode() == 60


def test_a_bad_value_deep_in_a_big_file_switches_to_text_without_losing_or_recounting(tmp_path):
    """The fast path meets an empty cell only in a later block: the pass goes on as text from
    the row it had reached, and every count (a short line before it included) stays exact."""
    path = tmp_path / "big.csv"
    write_csv(path, seed=2, bars=6000)
    lines = path.read_text().splitlines()
    lines[100] = ",".join(lines[100].split(",")[:4])  # a short line: wrong field count
    parts = lines[4500].split(",")
    lines[4500] = ",".join(parts[:2] + [""] + parts[3:])  # an empty high: unparseable
    path.write_text("\n".join(lines) + "\n")
    lay = inspect(path)
    fast = Scan(lay, chunk_rows=100)
    got = list(fast)
    assert fast.typed is False  # it had to switch
    slow = Scan(lay, chunk_rows=100, typed=False)
    want = list(slow)
    assert np.array_equal(np.concatenate([a.time_ns for a in got]), np.concatenate([a.time_ns for a in want]))
    assert fast.counts == slow.counts
    assert fast.counts.rows == 6000 and fast.counts.by_reason["unparseable"] == 2 and fast.counts.bad == 2
    feed = FileFeed(path, chunk_rows=100).open()
    t, _ = run(feed)
    assert len(t) == 4 * 5998 and feed.stats()["bad_rows"] == 2


@given(st.lists(st.integers(min_value=-2_000_000_000, max_value=4_000_000_000), min_size=1, max_size=50))
@QUICK
def test_written_timestamps_read_back_exactly(seconds):
    """The CSV writer's New York text (with offset) parses back to the same instants, DST included."""
    from bothost_plugins.replay_feed.textfmt import Lines

    utc = np.array(seconds, dtype=np.int64) * NS
    strings = Lines(len(utc)).iso_local(utc).bytes().decode().splitlines()
    assert all(datetime.fromisoformat(s) == datetime.fromtimestamp(x, timezone.utc)
               for s, x in zip(strings, seconds))
    ns, ok = parse_timestamps(pa.array(strings))
    assert ok.all() and ns.tolist() == utc.tolist()


def test_price_and_volume_text():
    from bothost_plugins.replay_feed.textfmt import Lines

    cents = np.array([0, 5, 99, 100, 1230, 123456789], dtype=np.int64)
    vol = np.array([0, 7, 10, 100, 99999, 2**40], dtype=np.int64)
    assert Lines(6).cents(cents).uint(vol).uint(vol, min_digits=3).bytes().decode().splitlines() == [
        "0.00,0,000", "0.05,7,007", "0.99,10,010", "1.00,100,100", "12.30,99999,99999",
        f"1234567.89,{2**40},{2**40}"]


def test_synthetic_csv_across_a_dst_change_reads_back(tmp_path):
    path = tmp_path / "dst.csv"
    write_csv(path, seed=1, bars=2000, interval=3600, start="2024-03-01T09:30:00")
    direct = SyntheticFeed(seed=1, bars=2000, interval=3600, start="2024-03-01T09:30:00")
    t1, p1 = run(direct)
    feed = FileFeed(path).open()
    t2, p2 = run(feed)
    assert np.array_equal(t1, t2) and np.array_equal(p1, p2) and feed.stats()["bar_interval_s"] == 3600
    text = path.read_text()
    assert "2024-03-10T01:30:00-05:00" in text and "2024-03-10T03:30:00-04:00" in text


def test_header_only_bom_and_crlf(tmp_path):
    with pytest.raises(DataError, match="no data rows"):  # a header alone is no data: bad input
        ticks_of(write(tmp_path / "empty.csv", "timestamp,open,high,low,close\n"))
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffTimestamp,Price\r\n2024-01-02T14:30:00Z,10.5\r\n2024-01-02T14:30:01Z,10.6".encode())
    feed, t, p = ticks_of(path)
    assert p.tolist() == [1050, 1060] and feed.stats()["bad_rows"] == 0


@given(st.sampled_from(["{y}-{m}-{d}", "{y}-{m}-{d}T{H}", "{y}-{m}-{d} {H}:{M}", "{y}-{m}-{d}T{H}:{M}:{S}",
                        "{y}-{m}-{d}T{H}:{M}:{S}.{f}Z", "{y}-{m}-{d} {H}:{M}:{S}-{oh}:{om}",
                        "{y}-{m}-{d}T{H}:{M}:{S}+{oh}{om}", "{y}-{m}-{d}t{H}:{M}:{S},{f} +{oh}"]),
       st.lists(st.tuples(st.integers(1500, 2400), st.integers(0, 19), st.integers(0, 39), st.integers(0, 29),
                          st.integers(0, 69), st.integers(0, 69), st.integers(0, 999), st.integers(0, 29),
                          st.integers(0, 69)), min_size=2, max_size=60))
@QUICK
def test_fast_path_rows_with_one_layout_agree_with_the_general_parser(fmt, fields):
    texts = [fmt.format(y=f"{y:04d}", m=f"{m:02d}", d=f"{d:02d}", H=f"{H:02d}", M=f"{M:02d}", S=f"{S:02d}",
                        f=f"{fr:03d}", oh=f"{oh:02d}", om=f"{om:02d}")
             for y, m, d, H, M, S, fr, oh, om in fields]
    arr = pa.array(texts)
    start, end, data = _buffers(arr)
    g_ns, g_ok, g_naive = _parse_general(start, end, data, np.ones(len(texts), bool))
    ns, ok, naive = parse_iso(arr)
    assert ok.tolist() == g_ok.tolist()
    assert ns[ok].tolist() == g_ns[g_ok].tolist() and naive.tolist() == g_naive.tolist()
    for text, good, value in zip(texts, ok, ns):  # and both agree with Python where it has a say
        try:
            d = datetime.fromisoformat(text.replace(",", ".").replace("t", "T").replace(" +", "+"))
        except ValueError:
            continue
        if good and d.tzinfo is not None:
            epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
            assert int(value) == (d - epoch) // timedelta(microseconds=1) * 1000, text


def test_synthetic_band_keeps_prices_between_the_walls_whatever_the_chunk_size():
    """`bothost data synth --band LOW,HIGH`: a range-bound market (the walls reflect the walk)."""
    import numpy as np

    from bothost_plugins.replay_feed.synthetic import generate_bars

    def bars(chunk):
        parts = list(generate_bars(3, 30_000, volatility=2.0, band=(40.0, 60.0), chunk_bars=chunk))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    a, b = bars(1000), bars(7919)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["low"].min() >= 4000 and a["high"].max() <= 6000
    # it really wanders across the band, reflecting off both walls
    assert a["low"].min() < 4100 and a["high"].max() > 5900
    free = {k: np.concatenate([p[k] for p in generate_bars(3, 30_000, volatility=2.0)]) for k in ("low", "high")}
    assert free["low"].min() < 4000 or free["high"].max() > 6000
