"""The combined simulator (``bothost sim``): one replay, the TWS door and the Alpaca door.

A tiny bot (the MiniGrid of test_sim_tws_helpers) trades over TWS with ib_insync (HELLO, exec and
tick acks) and takes its ticks from alpaca-py's StockDataStream. In lockstep its fills must equal
the venue run directly (what ``bothost backtest`` does), every tick must be handled once, in order,
at its exact ns time; and a bot killed at any moment (or only its Alpaca connection cut, or the
simulator restarted) must end with the same fills.
"""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_bars
from test_sim_alpaca_helpers import AlpacaBot, Stream, quiet_alpaca
from test_sim_tws_helpers import NS, connect, feed_ticks, reference_fills, run, sim_fills, until

from bothost_plugins.sim_alpaca import CombinedSim
from bothost_plugins.sim_alpaca.combined import split_faults
from bothost_plugins.sim_tws.faults import FaultSyntaxError


@pytest.fixture(autouse=True)
def _quiet():
    quiet_alpaca()


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """A seeded random walk around $50 whose swings fill the MiniGrid's orders often."""
    rng = random.Random(11)
    closes, p = [], 50.0
    for _ in range(150):
        p = max(5.0, p + rng.choice([-0.35, -0.2, -0.1, 0.1, 0.2, 0.35]))
        closes.append(round(p, 2))
    return write_bars(tmp_path_factory.mktemp("walk") / "walk.csv", closes)


@pytest.fixture(scope="module")
def ticks(walk):
    return feed_ticks(walk)


@pytest.fixture(scope="module")
def expected(ticks):
    fills = reference_fills(ticks)
    assert len(fills) >= 8, "the walk should make the MiniGrid trade"
    return fills


def test_lockstep_fills_equal_the_venue_run_and_every_tick_is_handled_once(walk, ticks, expected, tmp_path):
    async def main():
        sim = await CombinedSim(walk, tmp_path / "state").start()
        try:
            bot = await AlpacaBot(sim).start()
            await sim.wait_finished(30)
            await until(lambda: len(bot.ticks) == len(ticks), 5)
            assert sim_fills(sim) == expected
            assert bot.ticks == [t for t, _ in ticks]  # exact ns, in order, once
            assert bot.duplicates == 0
            assert sim.alpaca.counters["resent"] == 0
            await bot.stop()
        finally:
            await sim.stop()
    run(main())


def test_ticks_at_odd_nanoseconds_and_the_files_sizes(tmp_path):
    """A tick file: the Alpaca trades carry its exact ns times and sizes, the acks are exact, the
    venue fills as the venue run does."""
    rng = random.Random(5)
    rows, p = ["timestamp,price,size"], 50.0
    for i in range(400):
        p = max(5.0, p + rng.choice([-0.2, -0.1, 0.1, 0.2]))
        rows.append(f"2024-01-02T14:{30 + i // 60:02d}:{i % 60:02d}.{rng.randrange(10**9):09d}Z,{p:.2f},{i % 7 + 1}")
    data = tmp_path / "ticks.csv"
    data.write_text("\n".join(rows) + "\n")
    ticks = feed_ticks(data)
    assert any(t % NS for t, _ in ticks)

    async def main():
        sim = await CombinedSim(data, tmp_path / "state").start()
        try:
            bot = await AlpacaBot(sim).start()
            sizes = []
            orig = bot._on_trade

            async def on_trade(msg):
                sizes.append(msg["s"])
                await orig(msg)
            bot.stream._on_trade = on_trade
            await sim.wait_finished(30)
            await until(lambda: len(bot.ticks) == len(ticks), 5)
            assert bot.ticks == [t for t, _ in ticks]
            assert sizes[:14] == [i % 7 + 1 for i in range(14)]
            assert sim_fills(sim) == reference_fills(ticks)
            await bot.stop()
        finally:
            await sim.stop()
    run(main())


def test_no_pacer_no_progress(walk, tmp_path):
    """A pacer is a TWS client that sent HELLO while an Alpaca client subscribes to the symbol's
    trades: with only one of the two, the replay does not move."""
    async def main():
        sim = await CombinedSim(walk, tmp_path / "state").start()
        try:
            ib = await connect("ib_insync", sim.tws_port, 11)
            ib.client.send(9000, 1)  # HELLO, but nobody on the Alpaca side
            await asyncio.sleep(0.3)
            assert sim.tick_index == -1
            ib.disconnect()
            stream = await Stream(sim.stream_url(), raw=True).start()  # Alpaca, but no HELLO
            await until(lambda: sim.alpaca.has_subscribers(), 5)
            await asyncio.sleep(0.3)
            assert sim.tick_index == -1 and not stream.trades
            ib = await connect("ib_insync", sim.tws_port, 12)
            ib.client.send(9000, 1)  # both: the first tick goes out, then it waits for the ack
            await until(lambda: len(stream.trades) == 1, 5)
            await asyncio.sleep(0.2)
            assert sim.tick_index == 0 and len(stream.trades) == 1
            ib.client.send(9001, 1, "tick", str(stream.trades[0]["t"].to_unix_nano() - 1))  # not enough: exact ns
            await asyncio.sleep(0.2)
            assert len(stream.trades) == 1
            ib.client.send(9001, 1, "tick", str(stream.trades[0]["t"].to_unix_nano()))
            await until(lambda: len(stream.trades) == 2, 5)
            ib.disconnect()
            await stream.stop()
        finally:
            await sim.stop()
    run(main())


def _kill_plan(kill_at, expected):
    """kill_when(kind, key): the Nth tick; the tick after the Nth BUY fill (the bot places its next
    BUY on that very tick, so a tick that is not re-sent changes the run); the Nth execution."""
    kind, n = kill_at
    buy_times = [t // NS for t, side, *_ in expected if side == "BUY"]
    sell_times = [t // NS for t, side, *_ in expected if side == "SELL"]
    seen = {"tick": 0, "exec": 0}

    def kill_when(k, key):
        seen[k] += 1
        if kind == "tick":
            return k == "tick" and seen[k] == n
        if kind == "tick-after-buy":
            return k == "tick" and key == buy_times[n]
        if kind == "tick-after-sell":
            return k == "tick" and key == sell_times[n]
        return k == "exec" and seen[k] == n
    return kill_when


KILLS = [("tick", 1), ("tick", 37), ("tick-after-buy", 0), ("tick-after-buy", 2), ("tick-after-sell", 1),
         ("exec", 1), ("exec", 4)]


@pytest.mark.parametrize("kill_at", KILLS, ids=[f"{k}-{n}" for k, n in KILLS])
def test_bot_killed_and_restarted_ends_with_the_same_fills(walk, ticks, expected, tmp_path, kill_at):
    """Killed when an event arrives, before handling it (no orders, no ack, both sockets closed): the
    restarted bot (a new process: nothing remembered but what the broker tells it) is sent the tick
    again over Alpaca; an execution it missed it finds with reqExecutions."""
    async def main():
        sim = await CombinedSim(walk, tmp_path / "state").start()
        try:
            bot = await AlpacaBot(sim, kill_when=_kill_plan(kill_at, expected)).start()
            await until(lambda: bot.dead or sim.finished, 30)
            assert bot.dead
            await until(lambda: 11 not in sim.exchange.sessions and not sim.alpaca.conns, 5)
            bot2 = await AlpacaBot(sim).start()
            await sim.wait_finished(30)
            assert sim_fills(sim) == expected
            await until(lambda: bot2.ticks and bot2.ticks[-1] == ticks[-1][0], 5)
            # nothing lost, nothing twice: the two lives handled every tick; a tick the first one
            # was killed on (unhandled) is handled by the second
            assert sorted(set(bot.ticks) | set(bot2.ticks)) == [t for t, _ in ticks]
            assert not set(bot.ticks) & set(bot2.ticks)
            await bot2.stop()
        finally:
            await sim.stop()
    run(main())


def test_bot_killed_after_sending_orders_but_before_its_ack(walk, ticks, expected, tmp_path):
    """It handled the tick (an order went out after the tick did), then died before acking: the
    tick counts as handled and is not sent again to the restarted bot."""
    async def main():
        sim = await CombinedSim(walk, tmp_path / "state").start()
        try:
            bot = await AlpacaBot(sim).start()
            placed = bot.bot.b.place
            n = {"orders": 0}

            def place_then_die(*a):
                h = placed(*a)
                n["orders"] += 1
                if n["orders"] == 3:
                    bot.kill()  # the placeOrder is out, the ack never will be
                return h
            bot.bot.b.place = place_then_die
            await until(lambda: bot.dead, 30)
            await until(lambda: 11 not in sim.exchange.sessions and not sim.alpaca.conns, 5)
            bot2 = await AlpacaBot(sim).start()
            await sim.wait_finished(30)
            assert sim_fills(sim) == expected
            assert bot2.ticks[0] > bot.ticks[-1]  # the handled tick was not sent again
            await bot2.stop()
        finally:
            await sim.stop()
    run(main())


@pytest.mark.parametrize("fault", ["alpaca:drop@tick=40", "alpaca:drop@tick=41", "alpaca:stall@tick=90,seconds=0.3",
                                   "402@tick=120", "malformed@tick=7", "nan@tick=8", "duplicate@all"])
def test_alpaca_faults_lose_nothing(walk, ticks, expected, tmp_path, fault):
    """The bot's Alpaca connection is cut (or refused once, or goes mute) while TWS stays up: alpaca-py
    reconnects and re-subscribes, the simulator sends it the tick it may have missed, and the run
    ends with the same fills, every tick handled exactly once. Bad frames and NaN trades come
    beside the ticks, never instead of them."""
    async def main():
        sim = await CombinedSim(walk, tmp_path / "state", faults=[fault]).start()
        try:
            bot = await AlpacaBot(sim).start()
            await sim.wait_finished(30)
            await until(lambda: bot.ticks and bot.ticks[-1] == ticks[-1][0], 5)
            assert sim_fills(sim) == expected
            assert bot.ticks == [t for t, _ in ticks]
            if "drop" in fault or "402" in fault:
                assert sim.alpaca.counters["connections"] >= 2  # it did reconnect
                assert sim.alpaca.counters["resent"] >= 1
            if "402" in fault:
                assert sim.alpaca.counters["auth_failed"] == 1
            if fault.startswith("duplicate"):
                assert bot.duplicates == len(ticks)
            await bot.stop()
        finally:
            await sim.stop()
    run(main())


def test_mute_alpaca_stream_is_reconnected_by_data_timeout(walk, ticks, expected, tmp_path):
    """A stall with no end: alpaca-py's data_timeout (0.44) closes the mute socket and reconnects;
    the re-subscription gets the tick the mute socket swallowed."""
    async def main():
        sim = await CombinedSim(walk, tmp_path / "state", faults=["stall@tick=200"]).start()
        try:
            bot = await AlpacaBot(sim, data_timeout=0.5).start()
            await sim.wait_finished(30)
            await until(lambda: bot.ticks and bot.ticks[-1] == ticks[-1][0], 5)
            assert sim_fills(sim) == expected
            assert bot.ticks == [t for t, _ in ticks]
            assert sim.alpaca.counters["connections"] == 2
            await bot.stop()
        finally:
            await sim.stop()
    run(main())


def test_simulator_restart_mid_rehearsal(walk, ticks, expected, tmp_path):
    """restart@tick=N: both doors close, the venue reloads from its state folder; the bot comes back
    (a new process) and the run ends with the same fills."""
    async def main():
        sim = await CombinedSim(walk, tmp_path / "state", faults=["restart@tick=250"]).start()
        try:
            bot = await AlpacaBot(sim).start()
            await until(lambda: sim.tws.restarts == 1 and not bot.ib.isConnected(), 30)
            await until(lambda: not sim.alpaca.conns, 5)
            await bot.stop()
            bot2 = await AlpacaBot(sim).start()
            await sim.wait_finished(30)
            assert sim_fills(sim) == expected
            assert sorted(set(bot.ticks) | set(bot2.ticks)) == [t for t, _ in ticks]
            await bot2.stop()
        finally:
            await sim.stop()
    run(main())


def test_simulator_restart_with_the_same_bot_process(walk, ticks, expected, tmp_path):
    """The simulator restarts; the bot process lives on, reconnects both sockets and keeps its memory
    of the trades it handled. The tick it is owed comes with a new trade id, so its feed takes it."""
    async def main():
        sim = await CombinedSim(walk, tmp_path / "state", faults=["restart@tick=250"]).start()
        try:
            bot = await AlpacaBot(sim).start()
            await until(lambda: sim.tws.restarts == 1 and not bot.ib.isConnected(), 30)
            await until(lambda: not sim.alpaca.conns, 5)
            await bot.stream.stop()
            await bot.connect_tws()
            await bot.connect_alpaca()
            await sim.wait_finished(30)
            assert sim_fills(sim) == expected
            await until(lambda: bot.ticks[-1] == ticks[-1][0], 5)
            assert sorted(set(bot.ticks)) == [t for t, _ in ticks]
            await bot.stop()
        finally:
            await sim.stop()
    run(main())


@pytest.mark.parametrize("at", [30, 77, 200])
def test_tws_drop_while_a_tick_ack_is_outstanding(walk, ticks, expected, tmp_path, at):
    """TWS goes (the socket drops) after the bot handled a tick, before its ack: the Alpaca stream
    stays up. The bot reconnects TWS; the tick is owed to it (no order was sent after it) and comes
    again over Alpaca with a new id, so its feed takes it; the run ends with the same fills."""
    async def main():
        sim = await CombinedSim(walk, tmp_path / "state").start()
        try:
            bot = await AlpacaBot(sim).start()
            when = ticks[at][0]
            dropped = []

            def drop_first(t):
                if t == when and not dropped:
                    dropped.append(t)
                    sim.tws.drop_connections()  # the ack after this is lost with the socket
                    bot.ib.disconnect()
            bot.before_ack = drop_first
            await until(lambda: not bot.ib.isConnected(), 30)
            await until(lambda: 11 not in sim.exchange.sessions, 5)
            await bot.connect_tws()
            await sim.wait_finished(30)
            assert sim_fills(sim) == expected
            await until(lambda: bot.ticks[-1] == ticks[-1][0], 5)
            assert sorted(set(bot.ticks)) == [t for t, _ in ticks]
            assert bot.ticks.count(when) == 2 and sim.alpaca.counters["resent"] == 1  # taken again
            await bot.stop()
        finally:
            await sim.stop()
    run(main())


def test_rest_bars_stop_at_the_replay_clock(walk, tmp_path):
    """No look-ahead: the historical endpoint serves the bars complete at the replay's clock only."""
    from alpaca.data.historical import StockHistoricalDataClient
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame

    async def main():
        sim = await CombinedSim(walk, tmp_path / "state").start()
        try:
            client = StockHistoricalDataClient("key", "secret", url_override=sim.alpaca_url)
            req = StockBarsRequest(symbol_or_symbols="TQQQ", timeframe=TimeFrame.Minute)
            assert (await asyncio.to_thread(client.get_stock_bars, req)).data == {}
            await sim.advance(41)  # ticks 0..40: bars 0..9 complete (10 bars = 40 ticks), bar 10 begun
            bars = (await asyncio.to_thread(client.get_stock_bars, req)).data["TQQQ"]
            assert len(bars) == 10
        finally:
            await sim.stop()
    run(main())


def test_realtime_pace_needs_no_pacer(walk, ticks, tmp_path):
    """--pace x600: the clock starts with the first Alpaca subscription and waits for nobody."""
    async def main():
        sim = await CombinedSim(walk, tmp_path / "state", pace="x600").start()
        try:
            await asyncio.sleep(0.2)
            assert sim.tick_index == -1
            s = await Stream(sim.stream_url(), raw=True).start()
            await until(lambda: len(s.trades) >= 41, 10)
            assert [(m["t"].to_unix_nano(), round(m["p"] * 100)) for m in s.trades[:41]] == ticks[:41]
            await s.stop()
        finally:
            await sim.stop()
    run(main())


def test_fault_routing():
    tws, alpaca = split_faults(["drop@tick=5", "alpaca:drop@tick=6", "alpaca-stall@tick=7", "402@next", "nan@all",
                                "restart@tick=9", "duplicate-exec@all", "http429@next"])
    assert [f.kind for f in tws] == ["drop", "restart", "duplicate-exec"]
    assert [f.kind for f in alpaca] == ["drop", "stall", "402", "nan", "http429"]
    with pytest.raises(FaultSyntaxError, match="Alpaca"):
        split_faults(["wobble@tick=3"])


# ============================================================================ the command line
def _start_cli(args, cwd):
    proc = subprocess.Popen([sys.executable, "-m", "bothost", "sim", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line


def test_cli_sim_serves_both_doors_and_stops_on_sigterm(walk, ticks, expected, tmp_path):
    proc, line = _start_cli(["--data", str(walk), "--tws-port", "0", "--alpaca-port", "0", "--state",
                             str(tmp_path / "state"), "--no-progress"], tmp_path)
    try:
        m = re.match(r"sim listening: TWS 127\.0\.0\.1:(\d+), Alpaca http://127\.0\.0\.1:(\d+) "
                     r"\(pace lockstep, data .*walk\.csv, 600 ticks\)$", line.strip())
        assert m, line

        class Remote:
            tws_port, alpaca_port = int(m.group(1)), int(m.group(2))

            def stream_url(self, feed="iex"):
                return f"ws://127.0.0.1:{self.alpaca_port}/v2/{feed}"

        async def main():
            bot = await AlpacaBot(Remote()).start()
            await until(lambda: len(bot.ticks) == len(ticks), 30)
            fills = [(int(f.execution.time.timestamp()), f.execution.side) for f in bot.ib.fills()]
            await bot.stop()
            return fills
        fills = run(main())
        assert fills == [(t // NS, "BOT" if side == "BUY" else "SLD") for t, side, *_ in expected]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "state committed" in out


@pytest.mark.parametrize("args, message", [
    (["--pace", "sometimes"], "pace must be"),
    (["--fault", "wobble@tick=1"], "unknown fault"),
    (["--fault", "alpaca:stall"], "say when"),
    (["--tws-port", "7001", "--alpaca-port", "7001"], "must differ"),
    (["--key", "nocolon"], "KEY:SECRET"),
])
def test_cli_sim_bad_input_is_one_line_and_status_2(walk, tmp_path, args, message):
    r = subprocess.run([sys.executable, "-m", "bothost", "sim", "--data", str(walk), *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("door", ["--tws-port", "--alpaca-port"])
def test_cli_sim_port_in_use(walk, tmp_path, door):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "bothost", "sim", "--data", str(walk), "--tws-port", "0",
                            "--alpaca-port", "0", door, str(port), "--state", str(tmp_path / "s")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr


# ============================================================================ speed
async def _bench(data: Path, state: Path):
    sim = await CombinedSim(data, state).start()
    try:
        t0 = time.perf_counter()
        bot = await AlpacaBot(sim).start()
        await sim.wait_finished(None)
        wall = time.perf_counter() - t0
        n = sim.exchange.tick_index + 1
        fills = sim_fills(sim)
        await bot.stop()
        return wall, n, fills
    finally:
        await sim.stop()


def test_lockstep_speed_in_process(tmp_path):
    from bothost_plugins.replay_feed.synthetic import write_csv

    data = tmp_path / "bars.csv"
    write_csv(data, seed=3, bars=1000)
    wall, n, fills = run(_bench(data, tmp_path / "state"), timeout=120)
    assert n == 4000
    assert fills == reference_fills(feed_ticks(data))
    assert wall / n < 0.004, f"{wall / n * 1e3:.2f} ms a tick"  # measured ~0.4 ms; loose for shared CI


async def _bench_two_processes(data: Path, state: Path):
    proc = subprocess.Popen([sys.executable, "-m", "bothost", "sim", "--data", str(data), "--tws-port", "0",
                             "--alpaca-port", "0", "--state", str(state), "--no-progress"], stdout=subprocess.PIPE,
                            text=True)
    try:
        m = re.search(r"TWS 127\.0\.0\.1:(\d+), Alpaca http://127\.0\.0\.1:(\d+)", proc.stdout.readline())

        class Remote:
            tws_port, alpaca_port = int(m.group(1)), int(m.group(2))

            def stream_url(self, feed="iex"):
                return f"ws://127.0.0.1:{self.alpaca_port}/v2/{feed}"
        n = len(feed_ticks(data))
        t0 = time.perf_counter()
        bot = await AlpacaBot(Remote()).start()
        await until(lambda: len(bot.ticks) >= n, timeout=3600, step=0.05)
        wall = time.perf_counter() - t0
        fills = bot.ib.fills()
        await bot.stop()
        return wall, n, fills
    finally:
        proc.terminate()
        proc.wait(30)


def main(argv=None) -> None:
    """``python tests/test_sim_combined.py --bars 20000 [--inprocess]``: the combined lockstep's speed with
    a real client loop (ib_insync acking + alpaca-py's stream): the simulator in its own process
    (``bothost sim``), or both in one process and loop."""
    import argparse
    import tempfile

    from bothost_plugins.replay_feed.synthetic import write_csv

    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--inprocess", action="store_true")
    args = ap.parse_args(argv)
    quiet_alpaca()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bars.csv"
        write_csv(data, seed=args.seed, bars=args.bars)
        bench = _bench if args.inprocess else _bench_two_processes
        wall, n, fills = run(bench(data, Path(tmp) / "state"), timeout=3600)
    mode = "one process" if args.inprocess else "two processes"
    print(f"combined lockstep, {mode}: {args.bars:,} bars = {n:,} ticks, {len(fills):,} fills in {wall:.1f} s: "
          f"{n / wall:,.0f} ticks/s, {wall / n * 1e3:.3f} ms a tick")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
