"""The full dress rehearsal: the user's own `configs/tqqq.yaml` (IB orders, Alpaca data), unchanged,
run as a user runs it against `bothost sim --pace lockstep` (the TWS and Alpaca simulators on one
replay clock), pointed there by the environment alone (IB_PORT, ALPACA_DATA_URL, any key pair).

It must end with the fills a `bothost backtest` of the same file makes: time, symbol, side, level,
quantity, price and commission; the same when the bot is SIGKILLed at random moments and
restarted, since a restarted bot rebuilds its lots from the broker's orders and the simulator
sends again the tick the dead bot had not finished.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from bothost_plugins.replay_feed.synthetic import write_csv
from conftest import CONFIGS, bothost

LIVE_CONFIG = CONFIGS / "tqqq.yaml"
COMPARED = slice(0, 7)  # time, symbol, side, level, quantity, price, commission (ids differ by venue)
BARS = 1200


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "bars.csv"
    write_csv(path, bars=BARS, seed=11, volatility=1.0, start_price=50.0, interval=60)
    return path


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return [r[COMPARED] for r in csv.reader(fh)]


@pytest.fixture(scope="module")
def backtest_out(bars, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("backtest")
    r = bothost("backtest", str(LIVE_CONFIG), "--data", str(bars), "--out", str(out), "--no-progress", cwd=out)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def backtest(backtest_out) -> list[list[str]]:
    out = backtest_out
    fills = rows(out / "fills.csv")
    sides = Counter(r[2] for r in fills[1:])
    assert sides["BUY"] > 20 and sides["SELL"] > 10  # the grid went deep and sold back up
    return fills


class Sim:
    """`bothost sim` in its own process, both ports chosen by the system (read from its first line)."""

    def __init__(self, data: Path, state: Path, *faults: str):
        args = [sys.executable, "-m", "bothost", "sim", "--data", str(data), "--tws-port", "0", "--alpaca-port",
                "0", "--pace", "lockstep", "--state", str(state), "--no-progress"]
        for fault in faults:
            args += ["--fault", fault]
        self.proc = subprocess.Popen(args, cwd=state.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"sim listening: TWS 127\.0\.0\.1:(\d+), Alpaca (http://127\.0\.0\.1:\d+) ", line)
        assert m, line + self.proc.stderr.read()
        self.tws_port, self.alpaca_url = int(m.group(1)), m.group(2)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)


def bot_env(sim: Sim) -> dict:
    return {**os.environ, "COLUMNS": "200", "IB_PORT": str(sim.tws_port), "ALPACA_DATA_URL": sim.alpaca_url,
            "ALPACA_API_KEY": "AKREHEARSAL", "ALPACA_SECRET_KEY": "rehearsal-secret"}


def bot_command(state: Path) -> list[str]:
    return [sys.executable, "-m", "bothost", "run", str(LIVE_CONFIG), "--state", str(state), "--no-progress",
            "--stop-when-idle", "5"]


def finish(sim: Sim, state: Path) -> list[list[str]]:
    r = subprocess.run(bot_command(state), env=bot_env(sim), cwd=state.parent, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for secret in ("AKREHEARSAL", "rehearsal-secret"):
        assert secret not in r.stdout + r.stderr + (state / "bot_log.txt").read_text()
    return rows(state / "out" / "fills.csv")


def test_the_live_config_against_bothost_sim_fills_exactly_like_the_backtest(bars, backtest, backtest_out,
                                                                           tmp_path):
    sim = Sim(bars, tmp_path / "sim")
    try:
        fills = finish(sim, tmp_path / "bot")
    finally:
        sim.stop()
    assert fills == backtest
    live = json.loads((tmp_path / "bot" / "out" / "summary.json").read_text())
    replayed = json.loads((backtest_out / "summary.json").read_text())
    for key in ("ticks", "fills", "realized_pnl", "fees", "open_lots", "open_position", "last_price", "open_cost",
                "unrealized_pnl", "total_pnl"):
        assert live[key] == replayed[key], key  # the position marked to the same last price
    # `bothost status` of the live config needs no secrets: it reads only the state folder
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPACA_")}
    shown = subprocess.run([sys.executable, "-m", "bothost", "status", str(LIVE_CONFIG), "--state",
                            str(tmp_path / "bot")], env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "total_pnl" in shown.stdout and live["total_pnl"] in shown.stdout
    log = (tmp_path / "bot" / "bot_log.txt").read_text()
    assert "Alpaca stream connected" in log  # the ticks came over Alpaca's protocol, not IB's


@pytest.mark.parametrize("seed", [int(s) for s in os.environ.get("REHEARSAL_SEEDS", "1,2").split(",")])
def test_the_live_config_killed_at_random_moments_restarts_to_the_backtests_fills(bars, backtest, tmp_path, seed):
    """SIGKILL (no clean-up of any kind) at three random points of the run (after a random number
    of fills, plus a random few milliseconds, so the kill lands anywhere between two fills), with
    an Alpaca drop besides; each restart a new process that knows only its state folder and what
    IB and Alpaca tell it."""
    rng = random.Random(seed)
    total = len(backtest) - 1
    targets = sorted(rng.sample(range(1, total - 10), 3))
    sim = Sim(bars, tmp_path / "sim", "alpaca:drop@tick=%d" % rng.randrange(500, 4 * BARS - 500))
    state = tmp_path / "bot"
    state.mkdir()
    kills = []
    try:
        for target in targets:
            proc = subprocess.Popen(bot_command(state), env=bot_env(sim), cwd=tmp_path,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while journal_size(state) < target:
                assert proc.poll() is None, "the bot ended before it was killed"
                assert time.monotonic() < deadline, f"no fill {target} in 60 s"
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            kills.append(journal_size(state))
        fills = finish(sim, state)
    finally:
        sim.stop()
    assert kills[-1] < total, "the kills were not mid-run"
    assert fills == backtest, f"killed after fills {kills}"


def journal_size(state: Path) -> int:
    """Executions the bot has written to its journal so far (0 before it made the journal)."""
    path = state / "executions.sqlite"
    if not path.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as db:
            return db.execute("SELECT count(*) FROM executions").fetchone()[0]
    except sqlite3.OperationalError:  # created but its table not yet written
        return 0
