"""The Alpaca plugin's pure parts: raw stream messages to ticks, market hours, config, fetch plan."""

from __future__ import annotations

from datetime import datetime, timezone

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bothost.errors import InputError
from bothost.model import Tick
from bothost_plugins.alpaca_feed import convert
from bothost_plugins.alpaca_feed.config import AlpacaFeedConfig
from bothost_plugins.alpaca_feed.fetch import FetchPlan, parse_timeframe
from bothost_plugins.alpaca_feed.hours import market_open

T = 1_704_205_815_123_456_789  # 2024-01-02 14:30:15.123456789 UTC (09:30 in New York)


def ts(ns: int) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_unix_nano(ns)


@given(st.integers(1, 10_000_000))
def test_a_float_price_converts_exactly(cents):
    tick = convert.trade({"t": ts(T), "p": float(f"{cents / 100:.2f}"), "s": 100, "S": "TQQQ"}, "TQQQ")
    assert tick == Tick(T, "TQQQ", cents, 100)


def test_the_time_keeps_its_nanoseconds():
    assert convert.time_ns(ts(T)) == T
    assert convert.time_ns("2024-01-02T14:30:15.123456789Z") == T
    assert convert.time_ns(datetime(2024, 1, 2, 14, 30, 15, 123456, tzinfo=timezone.utc)) == T - 789


@pytest.mark.parametrize("msg, reason", [
    ({"t": ts(T), "p": float("nan")}, "price not a positive number"),
    ({"t": ts(T), "p": 0.0}, "price not a positive number"),
    ({"t": ts(T), "p": -1.5}, "price not a positive number"),
    ({"t": ts(T)}, "price not a positive number"),
    ({"p": 50.0}, "no time"),
])
def test_bad_trades_are_reasons_not_ticks(msg, reason):
    assert convert.trade(msg, "TQQQ") == reason


def test_quotes_trade_at_the_midpoint_and_crossed_ones_are_bad():
    assert convert.quote({"t": ts(T), "bp": 50.00, "ap": 50.03}, "TQQQ") == Tick(T, "TQQQ", 5002, 0, 5000, 5003)
    assert convert.quote({"t": ts(T), "bp": 50.05, "ap": 50.00}, "TQQQ") == "crossed quote"


def test_a_bar_becomes_the_replays_four_ticks():
    up = convert.bar({"t": ts(T), "o": 50.0, "h": 50.5, "l": 49.5, "c": 50.2}, "TQQQ")
    assert [(t.time_ns - T, t.price) for t in up] == [(0, 5000), (15 * 10**9, 4950), (30 * 10**9, 5050), (45 * 10**9, 5020)]
    down = convert.bar({"t": ts(T), "o": 50.0, "h": 50.5, "l": 49.5, "c": 49.8}, "TQQQ")
    assert [t.price for t in down] == [5000, 5050, 4950, 4980]
    assert convert.bar({"t": ts(T), "o": 50.0, "h": 49.0, "l": 49.5, "c": 49.8}, "TQQQ") == "high below low"


def ny(y, m, d, hh, mm):
    from zoneinfo import ZoneInfo

    return int(datetime(y, m, d, hh, mm, tzinfo=ZoneInfo("America/New_York")).timestamp()) * 10**9


def test_market_hours_follow_the_xnys_calendar():
    assert market_open(ny(2024, 1, 2, 10, 0), "regular")
    assert not market_open(ny(2024, 1, 2, 8, 0), "regular") and market_open(ny(2024, 1, 2, 8, 0), "extended")
    assert not market_open(ny(2024, 1, 2, 21, 0), "extended")
    assert not market_open(ny(2024, 1, 6, 12, 0), "extended")  # a Saturday
    assert not market_open(ny(2024, 12, 25, 12, 0), "extended")  # Christmas
    assert not market_open(ny(2024, 11, 29, 14, 0), "regular")  # the day after Thanksgiving closes at 13:00


def test_the_stream_url_follows_the_data_url():
    cfg = AlpacaFeedConfig(key="k", secret="s", url="http://127.0.0.1:7700/", feed="iex")
    assert cfg.stream_url() == "ws://127.0.0.1:7700/v2/iex"
    assert AlpacaFeedConfig(key="k", secret="s", feed="sip").stream_url() == "wss://stream.data.alpaca.markets/v2/sip"
    assert "s" not in repr(AlpacaFeedConfig(key="k", secret="s").secret)  # a SecretStr never shows itself
    with pytest.raises(ValueError):
        AlpacaFeedConfig(key="k", secret="s", url="127.0.0.1:7700")


def test_a_fetch_is_planned_in_windows_that_cover_the_range():
    plan = FetchPlan("TQQQ", "2024-01-01", "2024-01-12", "1Min", "iex", "raw")
    windows = plan.windows()
    assert windows[0][0] == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert windows[-1][1] == datetime(2024, 1, 13, tzinfo=timezone.utc)
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:]))
    assert parse_timeframe("5Min").value == "5Min"
    with pytest.raises(InputError, match="not a bar size"):
        parse_timeframe("5 minutes")
