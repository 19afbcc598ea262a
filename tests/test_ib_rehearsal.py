"""The dress rehearsal: `bothost run` of the user's IB config against `sim-tws --pace lockstep`,
the bot in its own process as a user runs it, the simulator on 127.0.0.1.

A lockstep rehearsal makes the decisions a backtest of the same data makes: its fills (time,
side, level, quantity, price, commission) equal `bothost backtest`'s, with either client
library, and through the faults a live bot meets (a dropped connection, a simulator restart,
the bot SIGKILLed between a BUY fill and its SELL, duplicate execution reports, partial fills).
Faults that change what the bot may do (an outage with fills meanwhile, rejects, parked
orders) end with the broker's orders exactly where reconstruct wants them: I1-I4 hold, no lot
is lost or doubled, no SELL is placed twice.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import os
import signal
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from bothost.hookspecs import BuildEnv
from bothost_plugins.ib_broker.broker import IbBroker
from bothost_plugins.ib_broker.config import IbBrokerConfig
from bothost_plugins.replay_feed.synthetic import write_csv
from bothost_plugins.sim_tws.server import SimTwsThread
from bothost_plugins.tqqq_grid.lots import load_lot_map
from bothost_plugins.tqqq_grid.params import TqqqGridConfig
from bothost_plugins.tqqq_grid.reconstruct import reconstruct
from bothost_plugins.tqqq_grid.tags import parse_tag
from conftest import CONFIGS, bothost

IB_CONFIG = CONFIGS / "tqqq-ib.yaml"
COMPARED = slice(0, 7)  # time, symbol, side, level, quantity, price, commission (ids differ by venue)


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "bars.csv"
    write_csv(path, bars=1200, seed=3, volatility=1.0, start_price=50.0, interval=60)
    return path


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return [r[COMPARED] for r in csv.reader(fh)]


@pytest.fixture(scope="module")
def backtest(bars, tmp_path_factory) -> list[list[str]]:
    out = tmp_path_factory.mktemp("backtest")
    r = bothost("backtest", str(IB_CONFIG), "--data", str(bars), "--out", str(out), "--no-progress", cwd=out)
    assert r.returncode == 0, r.stderr
    fills = rows(out / "fills.csv")
    sides = Counter(r[2] for r in fills[1:])
    assert sides["BUY"] > 20 and sides["SELL"] > 10  # enough for the grid to go deep and re-arm
    return fills


def bot_command(state: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bothost", "run", str(IB_CONFIG), "--state", str(state), "--no-progress",
            "--stop-when-idle", "2", *extra]


def bot_env(port: int) -> dict:
    return {**os.environ, "IB_PORT": str(port), "COLUMNS": "200"}


def run_bot(state: Path, port: int, *extra: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(bot_command(state, *extra), env=bot_env(port), capture_output=True, text=True,
                          timeout=timeout, cwd=state.parent)


def broker_view(port: int, tmp: Path):
    """The broker's own orders, executions and position, read by a second client (id 909)."""

    async def main():
        broker = IbBroker(IbBrokerConfig(port=port, client_id=909, connect_retries=0),
                          BuildEnv(tmp / "c.yaml", tmp, "paper", logging.getLogger("view")))
        await broker.connect()
        try:
            return await broker.snapshot(0)
        finally:
            await broker.close()

    return asyncio.run(asyncio.wait_for(main(), 30))


def assert_steady_and_whole(port: int, tmp: Path, state: Path) -> None:
    """What the bot left at the broker is what reconstruct would build: every lot has its one
    SELL (I1), the BUYs are the desired queue (I2), the position is the lots (I3), no two orders
    share a tag (I4) - so a reconstruct now finds nothing to place or cancel. And no SELL was
    ever placed twice for one BUY, and the bot's own view agrees with the broker's."""
    snap = broker_view(port, tmp)
    params = TqqqGridConfig()
    result = reconstruct(snap, params, load_lot_map(CONFIGS / "tqqq_lots.csv"), "tqqq_grid")
    assert result.ok, result.findings
    assert result.to_place == () and result.cancelled_buys == (), result.findings
    tagged = [o.ref for o in snap.open_orders if o.ref]
    assert len(set(tagged)) == len(tagged)  # I4
    sells_per_buy: dict[str, set[str]] = {}  # BUY -> the SELL orders naming it (executed or open)
    for x in [*snap.executions, *snap.open_orders]:
        if x.ref and ":SELL:" in x.ref:
            sells_per_buy.setdefault(parse_tag(x.ref).buy_order_id, set()).add(x.stable_id)
    doubled = {b: s for b, s in sells_per_buy.items() if len(s) > 1}
    assert not doubled, doubled  # never a second SELL for one BUY
    book = json.loads((state / "status.json").read_text())["strategies"]["tqqq_grid"]["book"]
    assert sorted((lot["level"], lot["quantity"]) for lot in book["lots"]) == \
        sorted((lot.level, lot.quantity) for lot in result.lots)


def rehearse(tmp: Path, bars: Path, *, faults=(), partial=None, bot_args=(), kills=()) -> tuple[list, SimTwsThread]:
    """A whole rehearsal: the simulator in a thread here, the bot in a child process, restarted
    after each planned kill; returns the bot's fills.csv rows (the simulator keeps running)."""
    sim = SimTwsThread(data=bars, state_dir=tmp / "sim", pace="lockstep", faults=list(faults),
                       partial_fill_shares=partial).start()
    state = tmp / "bot"
    state.mkdir(exist_ok=True)
    for kill in kills:
        proc = subprocess.Popen(bot_command(state, *bot_args), env=bot_env(sim.port), cwd=tmp,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill(sim, proc)
        proc.wait(timeout=120)
        assert proc.returncode == -signal.SIGKILL, "the bot ended before it was killed"
    r = run_bot(state, sim.port, *bot_args)
    assert r.returncode == 0, r.stdout + r.stderr
    return rows(state / "out" / "fills.csv"), sim


@pytest.mark.parametrize("lib", ["ib_insync", "ib_async"])
def test_a_lockstep_rehearsal_fills_exactly_like_the_backtest(bars, backtest, tmp_path, lib):
    fills, sim = rehearse(tmp_path, bars, bot_args=("--set", f"broker.client_library={lib}"))
    try:
        assert fills == backtest
        # What went to TWS, in order: the Level-0 BUY, then its SELL and the 3-deep queue (LIT)
        placed = sim.call(lambda s: sorted(s.exchange.orders.values(), key=lambda o: o.perm_id))
        tags = [parse_tag(o.ref) for o in placed]
        assert (tags[0].side.value, tags[0].level, tags[0].kind, placed[0].order_type) == ("BUY", 0, "M", "LMT")
        first = sorted((t.side.value, t.level) for t in tags[1:5])
        assert first == [("BUY", 1), ("BUY", 2), ("BUY", 3), ("SELL", 0)], first
        assert {placed[i].order_type for i in range(1, 5) if tags[i].side.value == "BUY"} == {"LIT"}
        assert all(o.tif == "GTC" and o.outside_rth for o in placed)
        levels = [(r[2], r[3]) for r in fills[1:]]
        assert levels[0] == ("BUY", "0") and any(side == "BUY" and lvl != "0" for side, lvl in levels)
        sold = {lvl for side, lvl in levels if side == "SELL"}
        rearmed = [lvl for lvl in sold if levels.count(("BUY", lvl)) >= 2]
        assert rearmed, "no level was bought again after its SELL filled"
        assert_steady_and_whole(sim.port, tmp_path, tmp_path / "bot")
    finally:
        sim.stop()


def test_the_journal_fills_csv_and_status_of_a_live_run(bars, backtest, tmp_path):
    """A live run keeps every execution in its state folder as it arrives; summary.json and
    status.json say what a backtest's do, and the simulator's clock is the host's clock."""
    fills, sim = rehearse(tmp_path, bars)
    sim.stop()
    state = tmp_path / "bot"
    assert (state / "executions.sqlite").stat().st_mode & 0o777 == 0o600
    summary = json.loads((state / "out" / "summary.json").read_text())
    assert summary["status"] == "done" and summary["fills"] == len(backtest) - 1
    assert summary["ticks"] == 4 * 1200 and summary["reconstructs"] == 1
    assert (state / "out" / "equity.png").stat().st_size > 10_000
    assert fills[1][0].startswith("2024-01-02T09:3")  # data time, not today's


@pytest.mark.parametrize("fault", ["drop@tick=400", "restart@tick=700", "duplicate-exec@all"])
def test_faults_that_lockstep_absorbs_leave_the_fills_of_the_backtest(bars, backtest, tmp_path, fault):
    fills, sim = rehearse(tmp_path, bars, faults=[fault])
    try:
        assert fills == backtest
        assert_steady_and_whole(sim.port, tmp_path, tmp_path / "bot")
    finally:
        sim.stop()


def kill_between_a_buy_fill_and_its_sell(sim: SimTwsThread, proc: subprocess.Popen) -> None:
    """SIGKILL the bot the moment the venue has filled a queue BUY, before the bot hears of it:
    the shares are bought and no SELL protects them (the original bot's orphan shares)."""
    def arm(s):
        ex = s.exchange
        real = ex._send_fill

        def send_fill(rec):
            if rec.side == "BUY" and ":BUY:L3:" in rec.ref and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                ex._send_fill = real
            return real(rec)

        ex._send_fill = send_fill

    sim.call(arm)


def test_the_bot_killed_between_a_buy_fill_and_its_sell_restarts_to_the_backtests_fills(bars, backtest, tmp_path):
    fills, sim = rehearse(tmp_path, bars, kills=[kill_between_a_buy_fill_and_its_sell])
    try:
        assert fills == backtest
        findings = json.loads((tmp_path / "bot" / "status.json").read_text())["strategies"]["tqqq_grid"]["reconstruct"]
        assert any("has no SELL: lot L3 made" in f for f in findings), findings  # Reconstruct 4
        assert_steady_and_whole(sim.port, tmp_path, tmp_path / "bot")
    finally:
        sim.stop()


def test_partial_fills_rehearse_like_a_backtest_with_partial_fills(bars, tmp_path):
    out = tmp_path / "bt"
    r = bothost("backtest", str(IB_CONFIG), "--data", str(bars), "--out", str(out), "--no-progress",
                "--set", "broker.partial_fill_shares=30", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    fills, sim = rehearse(tmp_path, bars, partial=30)
    try:
        assert fills == rows(out / "fills.csv")
        assert any(int(r[4]) == 30 for r in fills[1:])
        assert_steady_and_whole(sim.port, tmp_path, tmp_path / "bot")
    finally:
        sim.stop()


@pytest.mark.parametrize("faults", [
    ["1100@tick=500", "1102@tick=900"],  # TWS loses IB; the venue fills meanwhile; back with data kept
    ["reject201@ref=tqqq_grid:BUY:L2,count=3"],  # IB refuses queue orders (201, then Cancelled)
    ["inactive@ref=tqqq_grid:SELL:L1"],  # a SELL parked Inactive
])
def test_faults_that_change_the_bots_choices_still_leave_everything_whole(bars, tmp_path, faults):
    fills, sim = rehearse(tmp_path, bars, faults=faults)
    try:
        assert len(fills) > 10
        assert_steady_and_whole(sim.port, tmp_path, tmp_path / "bot")
        log = (tmp_path / "bot" / "bot_log.txt").read_text()
        if faults[0].startswith("1100"):
            assert "1100" in log and "1102" in log
            summary = json.loads((tmp_path / "bot" / "out" / "summary.json").read_text())
            assert summary["reconstructs"] == 2 and summary.get("held_ticks", 0) >= 0
    finally:
        sim.stop()


def test_legacy_untagged_sells_of_the_original_bot_are_recovered(bars, tmp_path):
    """The original bot tagged nothing and its quantities repeat across levels. Its SELLs (and
    the shares they protect) are waiting at the broker; the new bot rebuilds the lots from them,
    places the queue and trades on."""
    lot_map = load_lot_map(CONFIGS / "tqqq_lots.csv")
    anchor = Decimal("50.00")
    from bothost_plugins.tqqq_grid.grid import sell_price, trigger_chain

    triggers = trigger_chain(anchor, Decimal("0.01"), len(lot_map))
    legacy_levels = [0, 1, 2]
    sim = SimTwsThread(data=bars, state_dir=tmp_path / "sim", pace="lockstep").start()
    try:
        def seed(s):
            total = sum(lot_map.shares[lv] for lv in legacy_levels)
            # the original bot ran as client 101 too (the spec: the same client id every run)
            buy = s.seed_order("BUY", total, "1000.00", client_id=101)  # the shares it bought
            return buy

        sim.call(seed)
        sim.call(lambda s: s.advance(1))  # the venue fills that BUY on its own
        for lv in legacy_levels:
            limit = sell_price(triggers[lv], Decimal("0.01"))
            sim.call(lambda s, lv=lv, limit=limit: s.seed_order("SELL", lot_map.shares[lv], str(limit), client_id=101))
        state = tmp_path / "bot"
        state.mkdir()
        r = run_bot(state, sim.port)
        assert r.returncode == 0, r.stdout + r.stderr
        findings = json.loads((state / "status.json").read_text())["strategies"]["tqqq_grid"]["reconstruct"]
        assert any("from untagged SELL" in f for f in findings), findings
        assert_steady_and_whole(sim.port, tmp_path, state)
    finally:
        sim.stop()


def test_the_bot_killed_at_random_moments_ends_with_the_fills_of_one_never_killed(bars, backtest, tmp_path):
    """I5 for a rehearsal: SIGKILL at two random moments of the bot's run, each restart
    reconstructs from the simulator (which waits while the bot is away)."""
    import random
    import time

    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)

    def kill_later(sim, proc):
        log = tmp_path / "bot" / "bot_log.txt"
        starts = log.read_text().count("run starting") if log.exists() else 0
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().count("run starting") > starts):
            assert proc.poll() is None and time.monotonic() < deadline, f"the bot never started (seed {seed})"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.3, 1.5))
        os.kill(proc.pid, signal.SIGKILL)

    fills, sim = rehearse(tmp_path, bars, kills=[kill_later, kill_later])
    try:
        assert fills == backtest, f"fills differ (seed {seed})"
        assert_steady_and_whole(sim.port, tmp_path, tmp_path / "bot")
    finally:
        sim.stop()


def test_the_connection_dropped_mid_fill_reconnects_to_the_backtests_fills(bars, backtest, tmp_path):
    """The socket closes right after TWS sent an execution, before the bot acknowledged it:
    the bot reconnects by itself, reconstructs (the fill is in reqExecutions) and trades on."""
    sim = SimTwsThread(data=bars, state_dir=tmp_path / "sim", pace="lockstep").start()
    dropped = []

    def arm(s):
        ex = s.exchange
        real = ex._send_fill

        def send_fill(rec):
            got = real(rec)
            if rec.side == "SELL" and len(dropped) < 2:
                dropped.append(rec.exec_id)
                asyncio.get_running_loop().call_soon(s.drop_connections)  # right after it went out
            return got

        ex._send_fill = send_fill

    try:
        sim.call(arm)
        state = tmp_path / "bot"
        state.mkdir()
        r = run_bot(state, sim.port)
        assert r.returncode == 0, r.stdout + r.stderr
        assert len(dropped) == 2
        assert rows(state / "out" / "fills.csv") == backtest
        summary = json.loads((state / "out" / "summary.json").read_text())
        assert summary["reconstructs"] == 3  # the start, and one after each reconnect
        assert_steady_and_whole(sim.port, tmp_path, state)
    finally:
        sim.stop()
