"""The engine: one ordered event stream, timers on the host clock, atomic state."""

import asyncio
import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest

from bothost import state as state_mod
from bothost.engine import Engine
from bothost.hookspecs import BuildEnv, hookimpl
from bothost.model import OrderRequest, Side, Tick
from bothost.plugins import make_manager
from bothost.state import StateStore, atomic_write_json
from bothost_plugins.sim_broker.plugin import SimBroker, SimBrokerConfig


class Recorder:
    """A strategy that buys on every 3rd tick and logs every event it sees, in order."""

    symbol = "XYZ"
    wants_every_tick = True

    def __init__(self, name="rec"):
        self.seen = []
        self.n = 0

    @hookimpl
    def on_tick(self, ctx, tick):
        self.seen.append(("tick", tick.time_ns))
        self.n += 1
        if self.n % 3 == 0:
            ctx.place(OrderRequest("XYZ", Side.BUY, 1, Decimal(tick.price + 5).scaleb(-2), ref=f"b{self.n}"))

    @hookimpl
    def on_fill(self, ctx, fill):
        self.seen.append(("fill", fill.ref, fill.time_ns))

    @hookimpl
    def on_order_update(self, ctx, update):
        self.seen.append(("update", update.ref, update.status.value))

    @hookimpl
    def on_timer(self, ctx, name, time_ns):
        self.seen.append(("timer", name, time_ns))



class PushFeed:
    """A live feed that pushes ticks from its own task, yielding to the loop between ticks."""

    def __init__(self, prices):
        self.prices = prices

    async def stream(self, emit):
        for i, p in enumerate(self.prices):
            emit(Tick(1_000 * (i + 1), "XYZ", p))
            await asyncio.sleep(0)


def run_live(tmp_path: Path, strategy, feed) -> Engine:
    """The live path, start to finish: connect, reconstruct, start, events until the feed ends."""
    tmp_path.mkdir(exist_ok=True)
    env = BuildEnv(tmp_path / "c.yaml", tmp_path, "paper", logging.getLogger("t"))
    broker = SimBroker(SimBrokerConfig(), env)
    engine = Engine(pm=make_manager(), broker=broker, strategies=[("rec", strategy)],
                    state=StateStore(tmp_path / "bot_state.json"))
    if hasattr(feed, "engine"):
        feed.engine = engine  # a test feed that also speaks for the broker (its connection events)

    async def main():
        await broker.connect()
        await engine.reconstruct()
        engine.start()
        await engine.run_live(feed)
        await broker.close()

    asyncio.run(main())
    return engine


def run_once(tmp_path: Path, prices) -> list:
    rec = Recorder()
    run_live(tmp_path, rec, PushFeed(prices))
    return rec.seen


def test_two_sources_interleave_deterministically(tmp_path):
    prices = [10000, 9990, 9980, 9995, 9970, 9960, 9990, 9950, 9940, 9930]
    first = run_once(tmp_path / "a", prices)
    second = run_once(tmp_path / "b", prices)
    assert first == second
    kinds = [e[0] for e in first]
    assert "fill" in kinds and "update" in kinds
    # The venue's fills for a tick come before the strategy sees that tick, and each fill's
    # status update follows its fill before anything else happens.
    for i, event in enumerate(first):
        if event[0] == "fill":
            assert first[i + 1] == ("update", event[1], "filled")
            assert first[i + 2] == ("tick", event[2])


class ArrayFeed:
    symbol = "XYZ"

    def __init__(self, prices):
        import numpy as np

        from bothost.hookspecs import TickChunk

        self.chunk = TickChunk(np.arange(1, len(prices) + 1, dtype=np.int64) * 1000, np.array(prices, dtype=np.int64))

    def chunks(self, after_ns=None):
        yield self.chunk

    def stats(self):
        return {}


def test_timer_fires_on_the_host_clock_before_that_tick_in_a_replay(tmp_path):
    from bothost.replay import ReplayDriver

    class TimerUser(Recorder):
        @hookimpl
        def on_start(self, ctx):
            ctx.set_timer("t1", 5_500)

    env = BuildEnv(tmp_path / "c.yaml", tmp_path, "paper", logging.getLogger("t"))
    broker = SimBroker(SimBrokerConfig(), env)
    rec = TimerUser()
    engine = Engine(pm=make_manager(), broker=broker, strategies=[("rec", rec)],
                    state=StateStore(tmp_path / "bot_state.json"), live_state_flush=False)

    async def main():
        await broker.connect()
        await engine.reconstruct()
        engine.start()
        await ReplayDriver(engine, ArrayFeed([10000] * 8)).run()

    asyncio.run(main())
    i = rec.seen.index(("timer", "t1", 5_500))
    assert rec.seen[i - 1] == ("tick", 5_000) and rec.seen[i + 1] == ("tick", 6_000)


def test_bad_live_ticks_are_counted_and_never_reach_the_strategy(tmp_path):
    env = BuildEnv(tmp_path / "c.yaml", tmp_path, "paper", logging.getLogger("t"))
    rec = Recorder()
    engine = Engine(pm=make_manager(), broker=SimBroker(SimBrokerConfig(), env), strategies=[("rec", rec)],
                    state=StateStore(tmp_path / "s.json"))
    engine.broker.open()
    for t in (Tick(10, "XYZ", 0), Tick(11, "XYZ", -5), Tick(12, "XYZ", 100, bid=101, ask=100),
              Tick(13, "XYZ", 100), Tick(12, "XYZ", 100)):
        engine.on_live_tick(t)
    assert rec.seen == [("tick", 13)]
    assert engine.counters.bad_ticks == 4


def test_atomic_write_survives_a_crash_between_write_and_rename(tmp_path, monkeypatch):
    path = tmp_path / "bot_state.json"
    atomic_write_json(path, {"anchor": "100.00"})

    def crash(src, dst):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(state_mod, "_replace", crash)
    with pytest.raises(OSError):
        atomic_write_json(path, {"anchor": "999.00"})
    assert json.loads(path.read_text()) == {"anchor": "100.00"}
    assert [p.name for p in tmp_path.iterdir()] == ["bot_state.json"]
    assert path.stat().st_mode & 0o777 == 0o600


def test_corrupt_state_file_is_bad_input_naming_the_file(tmp_path):
    from bothost.errors import InputError

    path = tmp_path / "bot_state.json"
    path.write_text('{"strategies": {"x": ')
    with pytest.raises(InputError) as err:
        StateStore(path).get("x")
    assert "bot_state.json:1" in str(err.value) and "mv " in str(err.value)


def test_a_reconnect_reconstructs_in_line_before_the_next_event(tmp_path):
    """After RESTORED the engine reconstructs from a fresh snapshot, and no other event is
    handled until that is done (IB: fills during a 1100 disconnect are only seen this way)."""
    from bothost.model import ConnectionEvent, ConnectionState

    class Reconnecting(PushFeed):
        engine = None

        async def stream(self, emit):
            for i, p in enumerate(self.prices):
                if i == 3:
                    self.engine.emit_broker(ConnectionEvent(0, "broker", ConnectionState.LOST, "1100"))
                    self.engine.emit_broker(ConnectionEvent(0, "broker", ConnectionState.RESTORED, "1102"))
                emit(Tick(1_000 * (i + 1), "XYZ", p))
                await asyncio.sleep(0)

    class Seeing(Recorder):
        @hookimpl
        def reconstruct(self, ctx, snapshot):
            self.seen.append(("reconstruct", len(snapshot.open_orders)))

        @hookimpl
        def on_connection(self, ctx, event):
            self.seen.append(("connection", event.state.value))

    rec = Seeing()
    engine = run_live(tmp_path, rec, Reconnecting([10000] * 6))
    i = rec.seen.index(("connection", "restored"))
    # the order placed on the 3rd tick is in the new snapshot; the 4th tick comes after it
    assert rec.seen[i + 1] == ("reconstruct", 1)
    assert rec.seen[i + 2][-1] == 4_000  # then the 4th tick (its fill first), nothing in between
    assert engine.counters.reconstructs == 2
