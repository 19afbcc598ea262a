"""The lockstep extension: a rehearsal over the socket fills exactly like the venue run directly
(what ``bothost backtest`` does), and a bot killed and restarted mid-rehearsal ends with the same
fills as one never killed, whatever the moment of the kill. Also: a simulator restart mid-run."""

from __future__ import annotations

import asyncio
import random

import pytest
from conftest import write_bars
from test_sim_tws_helpers import (
    LIBS,
    NS,
    feed_ticks,
    gone,
    reference_fills,
    run,
    sim_fills,
    start_bot,
    until,
)

from bothost_plugins.sim_tws import SimTws


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
def expected(walk):
    fills = reference_fills(feed_ticks(walk))
    assert len(fills) >= 8, "the walk should make the MiniGrid trade"
    return fills


@pytest.mark.parametrize("libname", LIBS)
def test_lockstep_fills_equal_the_venue_run(walk, expected, tmp_path, libname):
    async def main():
        sim = await SimTws(walk, tmp_path / "state", pace="lockstep").start()
        try:
            ib, bot, pacer = await start_bot(libname, sim, 11)
            await sim.wait_finished(30)
            assert sim_fills(sim) == expected
            assert len(pacer.ticks) == len(feed_ticks(walk))  # every tick, once, in order
            assert sim.exchange.counters["misaligned"] == 0
            ib.disconnect()
        finally:
            await sim.stop()
    run(main())


def test_no_pacer_no_progress(walk, tmp_path):
    """Lockstep with no pacer connected: the replay does not move (the bot is down)."""
    async def main():
        sim = await SimTws(walk, tmp_path / "state").start()
        try:
            await asyncio.sleep(0.2)
            assert sim.tick_index == -1
            await sim.advance(5)  # unless told to: the venue then runs on its own
            assert sim.tick_index == 4
        finally:
            await sim.stop()
    run(main())


def _kill_plan(kill_at, expected):
    """kill_when(kind, key): the first tick; the tick after the Nth BUY fill (the bot places its next
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


KILLS = [("tick", 1), ("tick-after-buy", 0), ("tick-after-buy", 2), ("tick-after-sell", 1),
         ("exec", 1), ("exec", 2), ("exec", 5)]


@pytest.mark.parametrize("kill_at", KILLS, ids=[f"{k}-{n}" for k, n in KILLS])
@pytest.mark.parametrize("libname", LIBS)
def test_bot_killed_and_restarted_ends_with_the_same_fills(walk, expected, tmp_path, libname, kill_at):
    """Killed when an event arrives, before handling it (no orders sent, no ack): the simulator
    re-sends a tick it may not have handled, and an execution is found by reqExecutions."""
    async def main():
        sim = await SimTws(walk, tmp_path / "state", pace="lockstep").start()
        try:
            ib, bot, pacer = await start_bot(libname, sim, 11, kill_when=_kill_plan(kill_at, expected))
            await until(lambda: pacer.dead or sim.finished, 30)
            assert pacer.dead
            await gone(sim, 11)
            ib2, bot2, pacer2 = await start_bot(libname, sim, 11)
            await sim.wait_finished(30)
            assert sim_fills(sim) == expected
            ib2.disconnect()
        finally:
            await sim.stop()
    run(main())


@pytest.mark.parametrize("libname", LIBS)
def test_bot_killed_after_sending_orders_but_before_its_ack(walk, expected, tmp_path, libname):
    """Killed after handling a tick that made it place an order, before acking: the tick counts as
    handled (it is not sent again), and the restarted bot picks up the order by reconstructing."""
    async def main():
        sim = await SimTws(walk, tmp_path / "state", pace="lockstep").start()
        try:
            state = {"n": 0}
            ib, bot, pacer = await start_bot(libname, sim, 11)
            placed_before = bot.b.place

            def place_then_die(*a):
                h = placed_before(*a)
                state["n"] += 1
                if state["n"] == 3:
                    pacer.kill()  # after the placeOrder went out, before the ack
                return h
            bot.b.place = place_then_die
            await until(lambda: pacer.dead, 30)
            await gone(sim, 11)
            ib2, bot2, pacer2 = await start_bot(libname, sim, 11)
            await sim.wait_finished(30)
            assert sim_fills(sim) == expected
            assert pacer2.ticks[0][0] > pacer.ticks[-1][0]  # the handled tick was not sent again
            ib2.disconnect()
        finally:
            await sim.stop()
    run(main())


def test_simulator_restart_mid_rehearsal_keeps_everything(walk, expected, tmp_path):
    """The simulator restarts (stop + start on the same state) twice during a rehearsal; the bot
    reconnects each time; orders, executions and ids survive, and the fills are the same."""
    async def main():
        sim = await SimTws(walk, tmp_path / "state", pace="lockstep", port=0).start()
        port = sim.port
        try:
            ib, bot, pacer = await start_bot("ib_insync", sim, 11)
            for stop_at in (120, 390):
                await until(lambda: sim.tick_index >= stop_at, 30)  # noqa: B023 - awaited here, in this turn of the loop
                before = [(e.exec_id, e.perm_id, e.order_id) for e in sim.executions()]
                await sim.restart()
                assert sim.port == port
                assert [(e.exec_id, e.perm_id, e.order_id) for e in sim.executions()] == before
                await until(lambda: not ib.isConnected(), 5)  # noqa: B023 - awaited here, in this turn of the loop
                ib, bot, pacer = await start_bot("ib_insync", sim, 11)
            await sim.wait_finished(30)
            assert sim_fills(sim) == expected
            ib.disconnect()
        finally:
            await sim.stop()
    run(main())


RESTARTS = [("exec", 2), ("exec", 6), ("tick-after-buy", 1), ("tick", 90)]


@pytest.mark.parametrize("partial", [None, 3])
@pytest.mark.parametrize("restart_at", RESTARTS, ids=[f"{k}-{n}" for k, n in RESTARTS])
def test_simulator_restart_in_the_middle_of_a_tick(walk, tmp_path, restart_at, partial):
    """The simulator restarts while it waits for an ack (of a fill: in the middle of a tick's
    fills; of the tick's data): it resumes that very tick, by the same rules as a bot restart."""
    expected = reference_fills(feed_ticks(walk), partial)

    async def main():
        sim = await SimTws(walk, tmp_path / "state", partial_fill_shares=partial).start()
        try:
            plan = _kill_plan(restart_at, expected)
            hit = {"n": 0}

            def restart_when(kind, key):
                if plan(kind, key):
                    hit["n"] += 1
                    asyncio.get_running_loop().create_task(sim.restart())
                    return True  # the bot does not get to handle it: the connection is going
                return False
            ib, bot, pacer = await start_bot("ib_insync", sim, 11, kill_when=restart_when)
            await until(lambda: sim.restarts == 1, 30)
            await until(lambda: not ib.isConnected(), 5)
            ib, bot, pacer = await start_bot("ib_insync", sim, 11)
            await sim.wait_finished(30)
            assert hit["n"] == 1
            assert sim_fills(sim) == expected
            ib.disconnect()
        finally:
            await sim.stop()
    run(main())


def test_restart_fault_from_the_schedule(walk, expected, tmp_path):
    async def main():
        sim = await SimTws(walk, tmp_path / "state", faults=["restart@tick=200"]).start()
        try:
            ib, bot, pacer = await start_bot("ib_insync", sim, 11)
            await until(lambda: sim.restarts == 1 and sim.exchange is not None and not ib.isConnected(), 30)
            ib, bot, pacer = await start_bot("ib_insync", sim, 11)
            await sim.wait_finished(30)
            assert sim.restarts == 1  # fired once, not again after the restart
            assert sim_fills(sim) == expected
            ib.disconnect()
        finally:
            await sim.stop()
    run(main())


def test_tick_times_are_data_times(walk, tmp_path):
    async def main():
        sim = await SimTws(walk, tmp_path / "state").start()
        try:
            ib, bot, pacer = await start_bot("ib_insync", sim, 11)
            await sim.wait_finished(30)
            ticks = feed_ticks(walk)
            assert [t for t, _ in pacer.ticks] == [t // NS for t, _ in ticks]
            assert [round(p * 100) for _, p in pacer.ticks] == [p for _, p in ticks]
            ib.disconnect()
        finally:
            await sim.stop()
    run(main())
