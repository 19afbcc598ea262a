"""The alpaca_feed plugin and `bothost data fetch` against `bothost sim-alpaca`: the real
alpaca-py clients over real sockets on 127.0.0.1.

The feed turns the stream into exactly the ticks a backtest makes of the same file (trades,
quotes at the midpoint, bars as four ticks), through drops (no tick twice), a stall (stale:
a LOST, a reconnect, a RESTORED), malformed frames and NaN prices (counted, skipped), and
Alpaca's refusals (exit 4 with the reason, in seconds). A fetch resumes where it was
interrupted, and a backtest of what it fetched equals a backtest of the source.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from bothost.hookspecs import BrokerUnavailable, BuildEnv
from bothost.model import ConnectionEvent, ConnectionState, Tick
from bothost_plugins.alpaca_feed import fetch as fetch_mod
from bothost_plugins.alpaca_feed.config import AlpacaFeedConfig
from bothost_plugins.alpaca_feed.feed import AlpacaFeed
from bothost_plugins.replay_feed.feed import FileFeed
from bothost_plugins.replay_feed.synthetic import write_csv
from bothost_plugins.sim_alpaca.server import SimAlpaca, SimAlpacaThread
from conftest import CONFIGS, bothost


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "bars.csv"
    write_csv(path, bars=300, seed=5, volatility=0.8, start_price=50.0, interval=60)
    return path


def replay_ticks(path: Path) -> list[tuple[int, int]]:
    feed = FileFeed(path, "TQQQ")
    feed.open()
    out = []
    for chunk in feed.chunks():
        out += list(zip(chunk.time_ns.tolist(), chunk.price.tolist()))
    return out


def make_feed(url: str, tmp: Path, **settings) -> AlpacaFeed:
    return AlpacaFeed(AlpacaFeedConfig(key="AKTEST", secret="SECRET", url=url, **settings),
                      BuildEnv(tmp / "c.yaml", tmp, "paper", logging.getLogger("test")))


async def stream_until(feed: AlpacaFeed, done, timeout: float = 20.0) -> list:
    events: list = []
    task = asyncio.create_task(feed.stream(events.append))
    deadline = time.monotonic() + timeout
    try:
        while not done(events) and not task.done():
            assert time.monotonic() < deadline, f"timed out with {len(events)} events"
            await asyncio.sleep(0.02)
        if task.done():
            task.result()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return events


def ticks_of(events) -> list[tuple[int, int]]:
    return [(e.time_ns, e.price) for e in events if isinstance(e, Tick)]


def test_trades_become_exactly_the_backtests_ticks(bars, tmp_path):
    want = replay_ticks(bars)

    async def main():
        async with SimAlpaca(bars, pace="asap") as sim:
            feed = make_feed(sim.url, tmp_path)
            events = await stream_until(feed, lambda ev: len(ticks_of(ev)) >= len(want))
            return events, feed.stats()

    events, stats = asyncio.run(main())
    assert ticks_of(events) == want  # exact ns times, exact cents, in order
    assert stats["bad_ticks_by_reason"] == {} and stats["duplicates_dropped"] == 0


def test_quotes_trade_at_the_midpoint_and_bars_make_four_ticks(bars, tmp_path):
    async def main(data):
        async with SimAlpaca(bars, pace="asap") as sim:
            feed = make_feed(sim.url, tmp_path, data=data)
            return await stream_until(feed, lambda ev: len(ticks_of(ev)) >= 40)

    quotes = [e for e in asyncio.run(main("quotes")) if isinstance(e, Tick)]
    assert quotes and all(q.bid is not None and q.bid <= q.price <= q.ask for q in quotes)
    bar_ticks = ticks_of(asyncio.run(main("bars")))
    assert len(bar_ticks) >= 40 and len({t for t, _ in bar_ticks}) == len(bar_ticks)


def test_a_dropped_stream_reconnects_with_no_tick_twice(bars, tmp_path):
    """Alone, the simulator replays on its own clock (as Alpaca does): what it sends while the
    feed is away is lost, never sent twice; the feed says LOST and RESTORED each time and goes on."""
    want = replay_ticks(bars)

    async def main():
        # 15 s of data per tick at x4000: about 4 ms a tick, so each reconnect misses some.
        async with SimAlpaca(bars, pace="x4000", faults=["drop@tick=100", "drop@tick=700"]) as sim:
            feed = make_feed(sim.url, tmp_path)
            events = await stream_until(feed, lambda ev: want[-1] in ticks_of(ev), timeout=40)
            return events, feed.stats()

    events, stats = asyncio.run(main())
    got = ticks_of(events)
    assert len(set(got)) == len(got) and got == sorted(got)  # no tick twice, none out of order
    assert set(got) <= set(want) and got[:99] == want[:99]  # all real; nothing lost before the drop
    states = [e.state for e in events if isinstance(e, ConnectionEvent)]
    assert states == [ConnectionState.LOST, ConnectionState.RESTORED] * 2
    assert stats["reconnects"] == 2
    after = [i for i, e in enumerate(events) if isinstance(e, ConnectionEvent)][-1]
    assert ticks_of(events[after:]), "ticks flow again after the second reconnect"


def test_malformed_frames_and_nan_prices_are_counted_and_skipped(bars, tmp_path):
    want = replay_ticks(bars)

    async def main():
        async with SimAlpaca(bars, pace="asap", faults=["malformed@tick=20", "nan@tick=30", "duplicate@tick=40"]) as sim:
            feed = make_feed(sim.url, tmp_path)
            events = await stream_until(feed, lambda ev: len(ticks_of(ev)) >= len(want))
            return events, feed.stats()

    events, stats = asyncio.run(main())
    assert ticks_of(events) == want  # nothing bad passed on, nothing good lost
    assert stats["bad_ticks_by_reason"] == {"malformed message": 1, "price not a positive number": 1}
    assert stats["duplicates_dropped"] == 1


def test_a_stall_while_the_market_is_open_is_stale_then_reconnected(bars, tmp_path):
    """The socket stays up but goes mute: after stale_after of market hours with no trade the
    feed says LOST (stale), drops the socket itself and says RESTORED when trades come again."""
    want = replay_ticks(bars)

    async def main():
        async with SimAlpaca(bars, pace="x4000", faults=["stall@tick=50,seconds=30"]) as sim:
            feed = make_feed(sim.url, tmp_path, stale_after="500ms")
            events = await stream_until(feed, lambda ev: len(ticks_of(ev)) >= 120, timeout=30)
            return events

    events = asyncio.run(main())
    conn = [e for e in events if isinstance(e, ConnectionEvent)]
    assert conn[0].state is ConnectionState.LOST and conn[0].message.startswith("stale")
    assert conn[1].state is ConnectionState.RESTORED
    got = ticks_of(events)
    assert got[:49] == want[:49] and len(set(got)) == len(got) and set(got) <= set(want)
    restored = events.index(conn[1])
    assert ticks_of(events[restored:]), "trades flow again after the reconnect"


@pytest.mark.parametrize("code, words", [("402", "authentication failed"), ("409", "insufficient subscription")])
def test_alpaca_refusing_ends_the_feed_with_the_reason_at_once(bars, tmp_path, code, words):
    async def main():
        async with SimAlpaca(bars, pace="asap", faults=[f"{code}@all"]) as sim:
            feed = make_feed(sim.url, tmp_path)
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable) as err:
                await asyncio.wait_for(feed.stream(lambda e: None), 10)
            return str(err.value), time.monotonic() - started

    message, took = asyncio.run(main())
    assert code in message and words in message and took < 5


def test_bad_keys_end_a_run_with_exit_4_and_the_message_in_seconds(bars, tmp_path):
    """`bothost run` of a paper config on Alpaca data: wrong keys are exit 4, and the keys never
    reach the terminal or the log."""
    config = tmp_path / "alpaca-paper.yaml"
    config.write_text(f"extends: {CONFIGS / 'tqqq.yaml'}\nbroker: {{use: sim_broker}}\n")
    with SimAlpacaThread(data=bars, pace="asap", faults=["402@all"]) as sim:
        started = time.monotonic()
        r = bothost("run", str(config), "--state", str(tmp_path / "s"), "--no-progress", cwd=tmp_path,
                    env={"ALPACA_API_KEY": "AKWRONG123", "ALPACA_SECRET_KEY": "wrongsecret99",
                         "ALPACA_DATA_URL": sim.url}, timeout=60)
        took = time.monotonic() - started
    assert r.returncode == 4, r.stdout + r.stderr
    assert "402" in r.stderr and "ALPACA_API_KEY" in r.stderr and took < 10
    log = (tmp_path / "s" / "bot_log.txt").read_text()
    for secret in ("AKWRONG123", "wrongsecret99"):
        assert secret not in r.stdout + r.stderr and secret not in log


def test_fetch_then_backtest_equals_a_backtest_of_the_source(bars, tmp_path):
    with SimAlpacaThread(data=bars, pace="asap", page_size=100) as sim:  # several pages per window
        env = {"ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s", "ALPACA_DATA_URL": sim.url}
        r = bothost("data", "fetch", "TQQQ", "--start", "2024-01-01", "--end", "2024-01-05", "--out",
                    str(tmp_path / "fetched.parquet"), cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "wrote 300 bars" in r.stdout
    outs = []
    for name, data in (("source", bars), ("fetched", tmp_path / "fetched.parquet")):
        out = tmp_path / name
        b = bothost("backtest", str(CONFIGS / "tqqq-paper.yaml"), "--data", str(data), "--out", str(out),
                    "--no-progress", cwd=tmp_path)
        assert b.returncode == 0, b.stderr
        outs.append((out / "fills.csv").read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") > 5


def test_an_interrupted_fetch_resumes_where_it_stopped(bars, tmp_path):
    plan = fetch_mod.FetchPlan("TQQQ", "2023-12-20", "2024-01-12", "1Min", "iex", "raw")  # 5 windows
    with SimAlpacaThread(data=bars, pace="asap", page_size=50) as sim:
        whole = tmp_path / "whole.csv"
        fetch_mod.fetch(plan, whole, "k", "s", sim.url)

        def interrupt(i, n):
            if i == 3:
                raise KeyboardInterrupt  # Ctrl-C after the third window

        out = tmp_path / "part.csv"
        with pytest.raises(KeyboardInterrupt):
            fetch_mod.fetch(plan, out, "k", "s", sim.url, progress=interrupt)
        assert not out.exists() and (tmp_path / "part.csv.partial").exists()
        seen = []
        fetch_mod.fetch(plan, out, "k", "s", sim.url, progress=lambda i, n: seen.append(i))
    assert out.read_bytes() == whole.read_bytes()
    assert not (tmp_path / "part.csv.partial").exists()
    other = fetch_mod.FetchPlan("TQQQ", "2024-01-01", "2024-01-12", "1Min", "iex", "raw")
    (tmp_path / "x.csv.partial").write_text("timestamp\n")
    (tmp_path / "x.csv.partial.json").write_text('{"plan": {"symbol": "SPY"}, "done_until": "x"}')
    with pytest.raises(Exception, match="unfinished fetch of other parameters"):
        fetch_mod.fetch(other, tmp_path / "x.csv", "k", "s", "http://127.0.0.1:9")


def test_fetch_refused_is_exit_4_with_alpacas_reason(bars, tmp_path):
    with SimAlpacaThread(data=bars, pace="asap", faults=["http403@all"]) as sim:
        r = bothost("data", "fetch", "TQQQ", "--start", "2024-01-01", "--end", "2024-01-05", "--out",
                    str(tmp_path / "f.csv"), cwd=tmp_path,
                    env={"ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s", "ALPACA_DATA_URL": sim.url})
    assert r.returncode == 4, r.stdout + r.stderr
    assert "403" in r.stderr and "Traceback" not in r.stderr


def test_a_stream_that_cannot_be_reached_at_start_up_ends_the_feed_with_the_url(tmp_path):
    """alpaca-py would retry a refused connection for ever without a word in our log."""
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main():
        feed = make_feed(f"http://127.0.0.1:{port}", tmp_path, connect_retries=1)
        with pytest.raises(BrokerUnavailable) as err:
            await asyncio.wait_for(feed.stream(lambda e: None), 20)
        return str(err.value)

    message = asyncio.run(main())
    assert f"ws://127.0.0.1:{port}/v2/iex" in message and "after 2 attempts" in message
    assert "ALPACA_DATA_URL" in message
