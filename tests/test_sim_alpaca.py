"""sim_alpaca alone: the real alpaca-py 0.44 clients against the simulated Alpaca data service.

The stream (``StockDataStream``, url_override = the full ws URL) must deliver the backtest's own
ticks as trades (exact cents, exact ns), quotes and minute bars as alpaca-py's models; historical
bars (``StockHistoricalDataClient``, url_override = the base URL) must come back whole across
pages, in every timeframe the data allows; each fault must be seen by the client as Alpaca's own
would be.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import msgpack
import pytest
import requests
from conftest import write_bars
from test_sim_alpaca_helpers import Stream, quiet_alpaca
from test_sim_tws_helpers import NS, feed_ticks, run, until

from bothost_plugins.sim_alpaca import SimAlpaca, SimAlpacaThread
from bothost_plugins.sim_alpaca.faults import FaultSyntaxError, parse_fault
from bothost_plugins.sim_alpaca.rest import parse_time
from bothost_plugins.sim_alpaca.wire import rfc3339

T0 = "2024-01-02T09:30:00-05:00"  # 14:30 UTC


@pytest.fixture(autouse=True)
def _quiet():
    quiet_alpaca()


@pytest.fixture(scope="module")
def bars(tmp_path_factory):
    """40 one-minute bars with float-noise-free prices, a volume column and no vwap."""
    closes = [50 + 0.07 * ((i * 7) % 11) - 0.03 * (i % 5) for i in range(40)]
    return write_bars(tmp_path_factory.mktemp("bars") / "bars.csv", [round(c, 2) for c in closes], start=T0)


@pytest.fixture(scope="module")
def ticks(bars):
    return feed_ticks(bars)


@pytest.fixture(scope="module")
def tickfile(tmp_path_factory):
    """Ticks at odd nanoseconds, with sizes; one bad row (NaN) the replay skips."""
    path = tmp_path_factory.mktemp("ticks") / "ticks.csv"
    rows = ["timestamp,price,size"]
    for i in range(30):
        ns = 123_456_789 + i * 1_000_001
        rows.append(f"2024-01-02T14:30:{i:02d}.{ns % NS:09d}Z,{50 + i / 100:.2f},{10 + i}")
    rows.insert(5, "2024-01-02T14:30:03.500000000Z,nan,5")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def quotefile(tmp_path_factory):
    path = tmp_path_factory.mktemp("quotes") / "quotes.csv"
    rows = ["timestamp,bid,ask,bid_size,ask_size"]
    for i in range(20):
        rows.append(f"2024-01-02T14:30:{i:02d}Z,{50 + i / 100:.2f},{50.03 + i / 100:.2f},{i + 1},{2 * i + 1}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _file_bars(path):
    """The bars CSV as written (cents), by time."""
    out = []
    for line in path.read_text().splitlines()[1:]:
        t, o, h, lo, c, v = line.split(",")
        dt = datetime.fromisoformat(t)
        out.append((int(dt.timestamp()) * NS, *(round(float(x) * 100) for x in (o, h, lo, c)), int(v)))
    return out


# ============================================================================ the stream
def test_trades_quotes_and_bars_arrive_as_alpaca_py_models_with_exact_values(bars, ticks):
    from alpaca.data.models import Bar, Quote, Trade

    async def main():
        sim = await SimAlpaca(bars, pace="asap").start()
        try:
            s = await Stream(sim.stream_url(), quotes=True, bars=True).start()
            await sim.wait_finished(10)
            await until(lambda: len(s.bars) == 40 and len(s.trades) == len(ticks), 5)
            assert all(type(x) is Trade for x in s.trades)
            assert [(int(x.timestamp.timestamp()) * NS, round(x.price * 100)) for x in s.trades] == ticks
            assert all(x.price == p / 100 for x, (_, p) in zip(s.trades, ticks))  # the float of the exact cents
            assert [x.id for x in s.trades] == list(range(1, len(ticks) + 1))
            assert {(x.symbol, x.size, x.exchange, x.tape, tuple(x.conditions)) for x in s.trades} == \
                {("TQQQ", 100.0, "V", "C", ("@",))}
            assert all(x.timestamp.tzinfo is not None for x in s.trades)
            assert all(type(x) is Quote for x in s.quotes) and len(s.quotes) == len(ticks)
            for q, (_, p) in zip(s.quotes, ticks):
                assert (q.bid_price, q.ask_price) == ((p - 1) / 100, (p + 1) / 100)  # the midpoint is the trade
            assert all(type(x) is Bar for x in s.bars)
            want = _file_bars(bars)
            got = [(int(b.timestamp.timestamp()) * NS, round(b.open * 100), round(b.high * 100), round(b.low * 100),
                    round(b.close * 100), b.volume) for b in s.bars]
            assert got == [(t, o, h, lo, c, 400) for t, o, h, lo, c, _v in want]  # 4 trades of 100 shares a bar
            assert s.bars[0].trade_count == 4 and s.bars[0].vwap == pytest.approx(sum(want[0][1:5]) / 400)
            await s.stop()
        finally:
            await sim.stop()
    run(main())


def test_raw_messages_keep_the_exact_nanoseconds_and_the_files_sizes(tickfile):
    async def main():
        sim = await SimAlpaca(tickfile, pace="asap").start()
        try:
            raw = await Stream(sim.stream_url(), raw=True).start()
            parsed = await Stream(sim.stream_url()).start()
            await sim.wait_finished(10)
            want = feed_ticks(tickfile)
            assert len(want) == 30  # the NaN row is skipped, as the backtest skips it
            await until(lambda: len(raw.trades) == 30 and len(parsed.trades) == 30, 5)
            assert all(isinstance(m["t"], msgpack.Timestamp) for m in raw.trades)
            assert [(m["t"].to_unix_nano(), round(m["p"] * 100)) for m in raw.trades] == want
            assert [m["s"] for m in raw.trades] == [10 + i for i in range(30)]
            # alpaca-py's models keep microseconds (msgpack Timestamp.to_datetime truncates)
            assert [int(x.timestamp.timestamp() * 1e6) * 1000 for x in parsed.trades] == [t // 1000 * 1000 for t, _ in want]
            await raw.stop()
            await parsed.stop()
        finally:
            await sim.stop()
    run(main())


def test_a_quote_files_quotes_are_its_own(quotefile):
    async def main():
        sim = await SimAlpaca(quotefile, pace="asap").start()
        try:
            s = await Stream(sim.stream_url(), trades=True, quotes=True).start()
            await sim.wait_finished(10)
            await until(lambda: len(s.quotes) == 20, 5)
            want = feed_ticks(quotefile)
            for i, (q, (_t, mid)) in enumerate(zip(s.quotes, want)):
                assert (round(q.bid_price * 100), round(q.ask_price * 100)) == (5000 + i, 5003 + i)
                assert (q.bid_size, q.ask_size) == (i + 1, 2 * i + 1)
                assert (round(q.bid_price * 100) + round(q.ask_price * 100) + 1) // 2 == mid  # the replay's tick
            assert [round(x.price * 100) for x in s.trades] == [p for _, p in want]
            await s.stop()
        finally:
            await sim.stop()
    run(main())


def test_daily_bars_and_the_last_minute_bar_at_the_end(bars, ticks):
    async def main():
        sim = await SimAlpaca(bars, pace="asap").start()
        try:
            s = await Stream(sim.stream_url(), trades=False, daily=True).start()
            await sim.wait_finished(10)
            await until(lambda: len(s.daily) == 1, 5)
            d = s.daily[0]
            assert d.timestamp == datetime(2024, 1, 2, 5, 0, tzinfo=timezone.utc)  # midnight in New York
            assert round(d.open * 100) == ticks[0][1] and round(d.close * 100) == ticks[-1][1]
            assert round(d.high * 100) == max(p for _, p in ticks) and d.volume == 100 * len(ticks)
            await s.stop()
        finally:
            await sim.stop()
    run(main())


def test_realtime_pace_follows_the_data_at_speed(bars):
    """x600: the 15 s between two ticks of a one-minute bar take 25 ms; the clock starts with the first
    subscription."""
    async def main():
        sim = await SimAlpaca(bars, pace="x600").start()
        try:
            await asyncio.sleep(0.2)
            assert sim.tick_index == -1  # nobody subscribed yet: the clock has not started
            arrivals = []

            async def stamp(_):
                arrivals.append(time.monotonic())
            s = await Stream(sim.stream_url(), on_trade=stamp).start()
            await until(lambda: len(arrivals) >= 41, 10)
            span = arrivals[40] - arrivals[0]
            assert 0.8 < span < 1.6, span  # 40 gaps of 25 ms
            await s.stop()
        finally:
            await sim.stop()
    run(main())


def test_run_in_a_thread_and_stop_cleanly(bars, ticks):
    """StockDataStream.run() (asyncio.run inside) in a thread; stop() from outside ends it."""
    from alpaca.data.live import StockDataStream

    with SimAlpacaThread(data=bars, pace="x2000") as sim:
        got = []
        stream = StockDataStream("key", "secret", url_override=sim.stream_url("sip"))

        async def on_trade(t):
            got.append(t)
        stream.subscribe_trades(on_trade, "TQQQ")
        th = threading.Thread(target=stream.run, daemon=True)
        th.start()
        deadline = time.monotonic() + 10
        while len(got) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(got) >= 5 and got[0].exchange == "Q"  # the SIP feed's exchange
        stream.stop()  # sets its stop flag on its own loop ...
        sim.call(lambda s: s.drop_connections())  # ... and the next recv ends at once
        th.join(10)
        assert not th.is_alive()


def test_json_mode_for_a_client_that_does_not_ask_for_msgpack(bars, ticks):
    """Text frames, RFC 3339 times with nanoseconds; Alpaca's control messages and errors."""
    from websockets.asyncio.client import connect

    async def main():
        sim = await SimAlpaca(bars, pace="asap").start()
        try:
            async with connect(sim.stream_url()) as ws:
                first = await ws.recv()
                assert isinstance(first, str) and json.loads(first) == [{"T": "success", "msg": "connected"}]
                await ws.send(json.dumps({"action": "subscribe", "trades": ["TQQQ"]}))
                assert json.loads(await ws.recv()) == [{"T": "error", "code": 401, "msg": "not authenticated"}]
                await ws.send("this is not json")
                assert json.loads(await ws.recv())[0]["code"] == 400
                await ws.send(json.dumps({"action": "auth", "key": "k", "secret": "s"}))
                assert json.loads(await ws.recv()) == [{"T": "success", "msg": "authenticated"}]
                await ws.send(json.dumps({"action": "auth", "key": "k", "secret": "s"}))
                assert json.loads(await ws.recv())[0] == {"T": "error", "code": 403, "msg": "already authenticated"}
                await ws.send(json.dumps({"action": "subscribe", "trades": ["TQQQ"], "bars": ["*"]}))
                ack = json.loads(await ws.recv())[0]
                assert ack == {"T": "subscription", "trades": ["TQQQ"], "quotes": [], "bars": ["*"],
                               "updatedBars": [], "dailyBars": [], "statuses": [], "lulds": [],
                               "corrections": ["TQQQ"], "cancelErrors": ["TQQQ"]}
                msgs = []
                while len([m for m in msgs if m["T"] == "t"]) < len(ticks):
                    msgs += json.loads(await asyncio.wait_for(ws.recv(), 5))
                trades = [m for m in msgs if m["T"] == "t"]
                assert trades[1]["t"] == "2024-01-02T14:30:15Z"
                assert [(parse_time(m["t"], "t"), round(m["p"] * 100)) for m in trades] == ticks
                await ws.send(json.dumps({"action": "unsubscribe", "trades": ["TQQQ"]}))
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    if msg[0]["T"] == "subscription":
                        break
                assert msg[0]["trades"] == [] and msg[0]["bars"] == ["*"]
        finally:
            await sim.stop()
    run(main())


def test_rfc3339_keeps_nanoseconds():
    assert rfc3339(1_704_205_815_123_456_789) == "2024-01-02T14:30:15.123456789Z"
    assert parse_time("2024-01-02T14:30:15.123456789Z", "t") == 1_704_205_815_123_456_789
    assert parse_time("2024-01-02T09:30:15.5-05:00", "t") == 1_704_205_815_500_000_000
    assert parse_time("2024-01-02", "start") == 1_704_171_600 * NS  # midnight in New York


def test_auth_timeout(bars):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async def main():
        sim = await SimAlpaca(bars, pace="asap", auth_timeout_s=0.2).start()
        try:
            async with connect(sim.stream_url(), additional_headers={"Content-Type": "application/msgpack"}) as ws:
                assert msgpack.unpackb(await ws.recv()) == [{"T": "success", "msg": "connected"}]
                assert msgpack.unpackb(await asyncio.wait_for(ws.recv(), 2)) == \
                    [{"T": "error", "code": 404, "msg": "auth timeout"}]
                with pytest.raises(ConnectionClosed):  # closed (a TimeoutError would mean left open)
                    await asyncio.wait_for(ws.recv(), 2)
        finally:
            await sim.stop()
    run(main())


# ============================================================================ stream faults
def test_drop_alpaca_py_reconnects_and_subscribes_again(bars, ticks):
    async def main():
        sim = await SimAlpaca(bars, pace="x3000", faults=["drop@tick=30"]).start()
        try:
            s = await Stream(sim.stream_url(), raw=True, backoff=0.05).start()
            await sim.wait_finished(10)
            await until(lambda: s.trades and s.trades[-1]["i"] == len(ticks), 5)
            ids = [m["i"] for m in s.trades]
            assert ids[:30] == list(range(1, 31))  # up to the drop
            assert sim.counters["connections"] == 2  # alpaca-py reconnected by itself, and subscribed again
            assert ids == sorted(ids) and len(ids) < len(ticks)  # what went out meanwhile is lost (as live)
            assert not s.ended
            await s.stop()
        finally:
            await sim.stop()
    run(main())


def test_stall_holds_the_data_until_it_ends(bars, ticks):
    async def main():
        sim = await SimAlpaca(bars, pace="x3000", faults=["stall@tick=20,seconds=0.4"]).start()
        try:
            arrivals = []

            async def stamp(_):
                arrivals.append(time.monotonic())
            s = await Stream(sim.stream_url(), raw=True, on_trade=stamp).start()
            await sim.wait_finished(10)
            await until(lambda: len(s.trades) == len(ticks), 5)
            assert [m["i"] for m in s.trades] == list(range(1, len(ticks) + 1))  # nothing lost
            assert arrivals[20] - arrivals[19] > 0.3  # mute meanwhile
            assert sim.counters["connections"] == 1
            await s.stop()
        finally:
            await sim.stop()
    run(main())


def test_stall_without_end_data_timeout_reconnects(bars, ticks):
    """A connected-but-mute socket (pings answered): alpaca-py 0.44's data_timeout reconnects it."""
    async def main():
        sim = await SimAlpaca(bars, pace="x1000", faults=["stall@tick=10"]).start()
        try:
            s = await Stream(sim.stream_url(), raw=True, data_timeout=0.3, backoff=0.05).start()
            await until(lambda: sim.counters["connections"] == 2, 10)
            await until(lambda: s.trades and s.trades[-1]["i"] > 10, 5)
            assert [m["i"] for m in s.trades][:10] == list(range(1, 11))
            await s.stop()
        finally:
            await sim.stop()
    run(main())


@pytest.mark.parametrize("code", ["402", "406"])
def test_auth_failures_are_retried_by_alpaca_py(bars, ticks, code):
    async def main():
        sim = await SimAlpaca(bars, pace="asap", faults=[f"{code}@next"]).start()
        try:
            s = await Stream(sim.stream_url(), raw=True, backoff=0.05).start()
            await sim.wait_finished(10)
            await until(lambda: len(s.trades) == len(ticks), 5)
            assert sim.counters["auth_failed"] == 1 and sim.counters["connections"] == 2
            assert not s.ended  # alpaca-py retried (with its backoff), it did not give up
            await s.stop()
        finally:
            await sim.stop()
    run(main())


def test_insufficient_subscription_ends_the_run(bars):
    async def main():
        sim = await SimAlpaca(bars, pace="asap", faults=["409@all,feed=sip"]).start()
        try:
            sip = await Stream(sim.stream_url("sip"), raw=True, backoff=0.05).start()
            iex = await Stream(sim.stream_url("iex"), raw=True, backoff=0.05).start()
            await until(lambda: sip.ended, 5)  # _run_forever returned: no retry
            assert sip.task.exception() is None and not sip.trades
            await sim.wait_finished(10)
            await until(lambda: iex.trades, 5)  # the iex feed is fine
            assert sim.counters["connections"] == 2
            await sip.stop()
            await iex.stop()
        finally:
            await sim.stop()
    run(main())


def test_connection_limit(bars):
    """Alpaca allows one connection per key and feed: a second one gets 406 (alpaca-py retries it
    for as long as the first is connected)."""
    async def main():
        sim = await SimAlpaca(bars, pace="x100", connection_limit=1).start()
        try:
            first = await Stream(sim.stream_url(), raw=True).start()
            await until(lambda: first.trades, 5)
            second = await Stream(sim.stream_url(), raw=True, backoff=0.05).start()
            await until(lambda: sim.counters["auth_failed"] >= 2, 5)
            assert not second.trades and not second.ended
            await first.stop()
            await until(lambda: second.trades, 5)
            await second.stop()
        finally:
            await sim.stop()
    run(main())


def test_wrong_keys_are_402(bars):
    async def main():
        sim = await SimAlpaca(bars, pace="asap", keys={"good": "pair"}).start()
        try:
            bad = await Stream(sim.stream_url(), raw=True, key="good", secret="wrong", backoff=0.05).start()
            await until(lambda: sim.counters["auth_failed"] >= 2, 5)
            assert not bad.trades
            await bad.stop()
            good = await Stream(sim.stream_url(), raw=True, key="good", secret="pair").start()
            await until(lambda: good.trades, 5)
            await good.stop()
        finally:
            await sim.stop()
    run(main())


def test_bad_frames_nan_prices_and_duplicates(bars, ticks):
    """A frame msgpack cannot read: alpaca-py logs it and reads on. A NaN price: alpaca-py hands a
    Trade with price nan to the handler (a feed must drop it). A duplicate: the same trade twice."""
    async def main():
        sim = await SimAlpaca(bars, pace="asap", faults=["malformed@tick=3", "nan@tick=5",
                                                         "duplicate@tick=7,count=2"]).start()
        try:
            s = await Stream(sim.stream_url()).start()
            await sim.wait_finished(10)
            await until(lambda: len(s.trades) == len(ticks) + 3, 5)
            nan = [x for x in s.trades if math.isnan(x.price)]
            assert len(nan) == 1 and nan[0].timestamp == s.trades[6].timestamp and nan[0].id != 6
            ids = [x.id for x in s.trades if not math.isnan(x.price)]
            assert ids == sorted(list(range(1, len(ticks) + 1)) + [8, 9])  # ticks 7 and 8 (ids 8, 9) twice
            assert not s.ended
            await s.stop()
        finally:
            await sim.stop()
    run(main())


@pytest.mark.parametrize("spec", ["drop@tick=5", "stall@tick=5,seconds=2", "stall@time=2024-01-02T10:00:00",
                                  "402@next", "406@all", "409@tick=3,count=2", "409@all,feed=sip", "nan@all",
                                  "malformed@next,count=3", "duplicate@tick=1", "http401@next", "http429@next,count=4",
                                  "http500@all"])
def test_fault_syntax_accepted(spec):
    assert parse_fault(spec).kind == spec.split("@")[0]


@pytest.mark.parametrize("spec", ["", "wobble@next", "drop@next", "stall", "402", "nan@tick=x", "http429@tick=3",
                                  "drop@tick=3,seconds=2", "nan@next,feed=sip", "402@next,feed=nasdaq"])
def test_fault_syntax_refused(spec):
    with pytest.raises(FaultSyntaxError):
        parse_fault(spec)


# ============================================================================ historical bars
@pytest.fixture(scope="module")
def rest(bars):
    with SimAlpacaThread(data=bars, pace="asap", page_size=7) as sim:
        yield sim


def _client(sim, **kw):
    from alpaca.data.historical import StockHistoricalDataClient

    c = StockHistoricalDataClient(kw.get("key", "key"), kw.get("secret", "secret"), url_override=sim.url)
    c._retry_wait = 0  # alpaca-py sleeps 3 s before each retry of a 429
    return c


def _req(timeframe="1Min", **kw):
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    amount, unit = re.fullmatch(r"(\d+)(\w+)", timeframe).groups()
    return StockBarsRequest(symbol_or_symbols=kw.pop("symbols", "TQQQ"),
                            timeframe=TimeFrame(int(amount), TimeFrameUnit(unit)), **kw)


def _cents(b):
    return (int(b.timestamp.timestamp()) * NS, round(b.open * 100), round(b.high * 100), round(b.low * 100),
            round(b.close * 100), b.volume)


def test_bars_come_back_whole_across_pages(rest, bars):
    got = _client(rest).get_stock_bars(_req()).data["TQQQ"]
    assert [_cents(b) for b in got] == _file_bars(bars)  # 40 bars in 6 pages of 7
    assert rest.sim.rest.requests >= 6
    assert all(b.vwap == pytest.approx((b.open + b.high + b.low + b.close) / 4) and b.trade_count == 4 for b in got)


def _agg(rows, size_s):
    out = {}
    for t, o, h, lo, c, v in rows:
        k = t - t % (size_s * NS)
        if k not in out:
            out[k] = [k, o, h, lo, c, v]
        else:
            b = out[k]
            b[2], b[3], b[4], b[5] = max(b[2], h), min(b[3], lo), c, b[5] + v
    return [tuple(b) for b in out.values()]


@pytest.mark.parametrize("timeframe, size_s", [("5Min", 300), ("15Min", 900), ("1Hour", 3600)])
def test_bars_aggregated_to_the_timeframe(rest, bars, timeframe, size_s):
    got = _client(rest).get_stock_bars(_req(timeframe)).data["TQQQ"]
    assert [_cents(b) for b in got] == _agg(_file_bars(bars), size_s)


def test_daily_bars_are_new_york_days(rest, bars):
    (day,) = _client(rest).get_stock_bars(_req("1Day")).data["TQQQ"]
    rows = _file_bars(bars)
    assert day.timestamp == datetime(2024, 1, 2, 5, 0, tzinfo=timezone.utc)
    assert _cents(day)[1:] == (rows[0][1], max(r[2] for r in rows), min(r[3] for r in rows), rows[-1][4],
                               sum(r[5] for r in rows))


def test_start_end_limit_sort(rest, bars):
    rows = _file_bars(bars)
    start = datetime(2024, 1, 2, 14, 35, tzinfo=timezone.utc)
    end = datetime(2024, 1, 2, 14, 50, tzinfo=timezone.utc)
    got = _client(rest).get_stock_bars(_req(start=start, end=end)).data["TQQQ"]
    assert [_cents(b) for b in got] == rows[5:21]  # end is inclusive
    got = _client(rest).get_stock_bars(_req(limit=17)).data["TQQQ"]
    assert [_cents(b) for b in got] == rows[:17]  # three pages: 7, 7, then the 3 left of the limit
    from alpaca.common.enums import Sort
    got = _client(rest).get_stock_bars(_req(sort=Sort.DESC, limit=10)).data["TQQQ"]
    assert [_cents(b) for b in got] == rows[::-1][:10]
    assert _client(rest).get_stock_bars(_req(symbols=["SPY"])).data == {}
    got = _client(rest).get_stock_bars(_req(symbols=["SPY", "TQQQ"])).data
    assert list(got) == ["TQQQ"] and len(got["TQQQ"]) == 40


def test_the_single_symbol_path_and_raw_json(rest, bars):
    url = f"{rest.url}/v2/stocks/TQQQ/bars"
    r = requests.get(url, params={"timeframe": "1Min", "limit": 3}, headers={"APCA-API-KEY-ID": "k",
                                                                               "APCA-API-SECRET-KEY": "s"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["symbol"] == "TQQQ" and len(body["bars"]) == 3 and body["next_page_token"]
    first = body["bars"][0]
    assert set(first) == {"t", "o", "h", "l", "c", "v", "n", "vw"}
    assert (first["t"], first["v"], first["n"]) == ("2024-01-02T14:30:00Z", 1000, 4)
    assert round(first["o"] * 100) == _file_bars(bars)[0][1]
    r2 = requests.get(url, params={"timeframe": "1Min", "limit": 3, "page_token": body["next_page_token"]},
                      headers={"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"})
    assert r2.json()["bars"][0]["t"] == "2024-01-02T14:33:00Z"


@pytest.mark.parametrize("params, status, words", [
    ({"timeframe": "7Fortnight"}, 422, "invalid timeframe"),
    ({"timeframe": "90Min"}, 422, "invalid timeframe"),
    ({"timeframe": "1Min", "limit": "0"}, 422, "invalid limit"),
    ({"timeframe": "1Min", "feed": "nasdaq"}, 422, "invalid feed"),
    ({"timeframe": "1Min", "start": "yesterday"}, 422, "invalid start"),
    ({"timeframe": "1Min", "page_token": "garbage!"}, 422, "page token"),
    ({"timeframe": "1Min", "sort": "up"}, 422, "invalid sort"),
    ({}, 422, "missing timeframe"),
])
def test_bad_requests_are_422(rest, params, status, words):
    r = requests.get(f"{rest.url}/v2/stocks/bars", params={"symbols": "TQQQ", **params},
                     headers={"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"})
    assert r.status_code == status and words in r.json()["message"]


def test_errors_reach_alpaca_py_as_api_errors(rest):
    from alpaca.common.exceptions import APIError

    assert len(_client(rest).get_stock_bars(_req("1Week")).data["TQQQ"]) == 1  # 1-minute bars make weeks
    assert len(_client(rest).get_stock_bars(_req("1Month")).data["TQQQ"]) == 1
    from alpaca.data.enums import Adjustment, DataFeed
    got = _client(rest).get_stock_bars(_req("30Min", feed=DataFeed.SIP, adjustment=Adjustment.ALL, asof="2024-01-02"))
    assert len(got.data["TQQQ"]) == 2  # feed, adjustment, asof accepted (the file is what it is)
    r = requests.get(f"{rest.url}/v2/stocks/bars", params={"symbols": "TQQQ", "timeframe": "1Min"})
    assert r.status_code == 401 and r.json()["message"] == "unauthorized."  # no keys
    with SimAlpacaThread(data=rest.sim.data, pace="asap", keys={"k": "s"}) as sim:
        with pytest.raises(APIError) as err:
            _client(sim, key="k", secret="wrong").get_stock_bars(_req())
        assert err.value.status_code == 401 and err.value.message == "unauthorized."
        assert _client(sim, key="k", secret="s").get_stock_bars(_req()).data["TQQQ"]


@pytest.mark.parametrize("spec, status", [("http401@next", 401), ("http403@next", 403), ("http500@next", 500),
                                          ("http422@next", 422), ("http429@next,count=4", 429)])
def test_injected_http_errors(rest, spec, status):
    from alpaca.common.exceptions import APIError

    rest.call(lambda s: s.add_fault(spec))
    with pytest.raises(APIError) as err:
        _client(rest).get_stock_bars(_req())
    assert err.value.status_code == status
    assert err.value.code == status * 100_000 and err.value.message
    assert _client(rest).get_stock_bars(_req()).data["TQQQ"]  # once the fault is used up


def test_429_is_retried_by_alpaca_py(rest):
    rest.call(lambda s: s.add_fault("http429@next,count=3"))
    before = rest.sim.rest.requests
    assert len(_client(rest).get_stock_bars(_req()).data["TQQQ"]) == 40
    assert rest.sim.rest.requests - before == 3 + 6  # three 429s retried, then the six pages


def test_coarser_data_cannot_make_finer_bars(tmp_path):
    from alpaca.common.exceptions import APIError

    five = write_bars(tmp_path / "five.csv", [50 + i / 10 for i in range(30)], step_s=300, start=T0)
    with SimAlpacaThread(data=five, pace="asap") as sim:
        assert len(_client(sim).get_stock_bars(_req("5Min")).data["TQQQ"]) == 30
        assert len(_client(sim).get_stock_bars(_req("15Min")).data["TQQQ"]) == 10
        with pytest.raises(APIError) as err:
            _client(sim).get_stock_bars(_req("1Min"))
        assert err.value.status_code == 422 and "5-minute bars" in err.value.message


def test_tick_files_serve_one_minute_bars(tickfile):
    with SimAlpacaThread(data=tickfile, pace="asap") as sim:
        (bar,) = _client(sim).get_stock_bars(_req()).data["TQQQ"]
        want = feed_ticks(tickfile)
        assert (round(bar.open * 100), round(bar.close * 100), bar.trade_count) == (want[0][1], want[-1][1], 30)
        assert bar.volume == sum(10 + i for i in range(30))


# ============================================================================ the command line
def test_cli_serves_the_stream_and_rest_and_stops_on_sigterm(bars, ticks, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "bothost", "sim-alpaca", "--data", str(bars), "--port", "0",
                             "--pace", "asap", "--no-progress"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.match(r"sim-alpaca listening on http://127\.0\.0\.1:(\d+) \(stream ws://127\.0\.0\.1:\d+/v2/iex; "
                     r"pace asap, data .*bars\.csv, 160 ticks\)$", line.strip())
        assert m, line
        port = int(m.group(1))

        async def main():
            s = await Stream(f"ws://127.0.0.1:{port}/v2/iex", raw=True).start()
            await until(lambda: len(s.trades) == len(ticks), 10)
            await s.stop()
            return [(x["t"].to_unix_nano(), round(x["p"] * 100)) for x in s.trades]
        assert run(main()) == ticks
        r = requests.get(f"http://127.0.0.1:{port}/v2/stocks/bars", params={"symbols": "TQQQ", "timeframe": "1Min"},
                         headers={"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"})
        assert len(r.json()["bars"]["TQQQ"]) == 40
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err


@pytest.mark.parametrize("args, message", [
    (["--pace", "lockstep"], "bothost sim"),
    (["--pace", "x0"], "pace must be"),
    (["--fault", "stall@next"], "say when"),
    (["--host", "0.0.0.0"], "loopback"),
    (["--key", "k"], "KEY:SECRET"),
])
def test_cli_bad_input_is_one_line_and_status_2(bars, tmp_path, args, message):
    r = subprocess.run([sys.executable, "-m", "bothost", "sim-alpaca", "--data", str(bars), *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and message in r.stderr and "Traceback" not in r.stderr


def test_cli_missing_data_file(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bothost", "sim-alpaca", "--data", "nope.csv"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no such data file" in r.stderr
