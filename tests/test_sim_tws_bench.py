"""Lockstep speed: a rehearsal with a real ib_insync client acking every tick and every fill.

The test runs a small size in-process (a regression guard with a generous bound). Run the file as a
script for the real measurement, the simulator in its own process (``python -m
bothost_plugins.sim_tws.cli``) and the bot in this one, as a rehearsal runs::

    .venv/bin/python tests/test_sim_tws_bench.py --bars 20000            # two processes
    .venv/bin/python tests/test_sim_tws_bench.py --bars 20000 --inprocess

The bot is the MiniGrid of test_sim_tws_helpers (it places, cancels and gets filled), so the
figure includes order traffic, not only tick acks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from test_sim_tws_helpers import reference_fills, feed_ticks, run, sim_fills, start_bot, until  # noqa: E402

from bothost_plugins.replay_feed.synthetic import write_csv  # noqa: E402
from bothost_plugins.sim_tws import SimTws  # noqa: E402


async def inprocess(data: Path, state: Path) -> tuple[float, int, int, object]:
    sim = await SimTws(data, state, pace="lockstep").start()
    try:
        t0 = time.perf_counter()
        ib, bot, pacer = await start_bot("ib_insync", sim, 11)
        await sim.wait_finished(None)
        wall = time.perf_counter() - t0
        ib.disconnect()
        return wall, sim.exchange.tick_index + 1, sim.exchange.fills, sim_fills(sim)
    finally:
        await sim.stop()


async def two_processes(data: Path, state: Path) -> tuple[float, int, int]:
    proc = subprocess.Popen([sys.executable, "-m", "bothost_plugins.sim_tws.cli", "--data", str(data), "--port", "0",
                             "--state", str(state), "--no-progress"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(line.split("127.0.0.1:")[1].split()[0])

        class Remote:  # what start_bot needs of a SimTws
            def __init__(self, port):
                self.port = port
        t0 = time.perf_counter()
        ib, bot, pacer = await start_bot("ib_insync", Remote(port), 11)
        n = len(feed_ticks(data))
        await until(lambda: len(pacer.ticks) >= n, timeout=3600, step=0.05)
        wall = time.perf_counter() - t0
        fills = len(ib.fills())
        ib.disconnect()
        return wall, len(pacer.ticks), fills
    finally:
        proc.terminate()
        proc.wait(30)


def test_lockstep_speed_in_process(tmp_path):
    data = tmp_path / "bars.csv"
    write_csv(data, seed=3, bars=1500)
    wall, ticks, fills, got = run(inprocess(data, tmp_path / "state"), timeout=120)
    assert ticks == 6000
    assert got == reference_fills(feed_ticks(data))
    # target: 80,000 ticks in well under 3 minutes on 2 cores (~0.5 ms a tick); the bound here is
    # loose (shared CI machines), the script above reports the real figure
    assert wall / ticks < 0.004, f"{wall / ticks * 1e3:.2f} ms a tick"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--inprocess", action="store_true", help="simulator and bot in one process and loop")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bars.csv"
        write_csv(data, seed=args.seed, bars=args.bars)
        if args.inprocess:
            wall, ticks, fills, _ = run(inprocess(data, Path(tmp) / "state"), timeout=3600)
        else:
            wall, ticks, fills = run(two_processes(data, Path(tmp) / "state"), timeout=3600)
    mode = "one process" if args.inprocess else "two processes"
    print(f"lockstep, {mode}: {args.bars:,} bars = {ticks:,} ticks, {fills:,} fills in {wall:.1f} s: "
          f"{ticks / wall:,.0f} ticks/s, {wall / ticks * 1e3:.3f} ms a tick")


if __name__ == "__main__":
    main()
