"""The IB path on loopback, measured from the outside: `bothost sim-tws` in its own process, as
TWS would be, and the real client library in this one.

* **round trip**: ``placeOrder`` to the acknowledgement (the first ``orderStatus`` for that
  order: PreSubmitted / Submitted), one order at a time, through the ib_broker plugin's own
  ``place`` and the events it emits;
* **rehearsal**: ``bothost run configs/tqqq-ib.yaml`` against ``sim-tws --pace lockstep`` on N
  one-minute bars, wall time and ticks per second (the bot acknowledges every tick and fill).

    .venv/bin/python benchmarks/ib_loopback.py                 # 2000 orders, 20,000 bars
    .venv/bin/python benchmarks/ib_loopback.py --orders 500 --bars 2000 --library ib_async

Prints the figures and writes them to ``benchmarks/results/ib_loopback.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sim(data: Path, state: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([str(BIN / "bothost"), "sim-tws", "--data", str(data), "--port", str(port),
                             "--pace", "lockstep", "--state", str(state), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        raise SystemExit(f"sim-tws did not start: {line}")
    return proc


async def round_trips(port: int, n: int, library: str) -> list[float]:
    from bothost.hookspecs import BuildEnv
    from bothost.model import OrderRequest, OrderUpdate, Side
    from bothost_plugins.ib_broker.broker import IbBroker
    from bothost_plugins.ib_broker.config import IbBrokerConfig

    acked: dict[str, float] = {}
    got = asyncio.Event()

    def on_event(event):
        if isinstance(event, OrderUpdate) and event.order_id not in acked:
            acked[event.order_id] = time.perf_counter()
            got.set()

    broker = IbBroker(IbBrokerConfig(port=port, client_library=library, connect_retries=0),
                      BuildEnv(REPO / "c.yaml", REPO, "paper", logging.getLogger("bench")))
    broker.bind(on_event)
    await broker.connect()
    out = []
    try:
        for i in range(n):
            got.clear()
            start = time.perf_counter()
            oid = broker.place(OrderRequest("TQQQ", Side.BUY, 1, Decimal("1.00"), ref=f"bench:{i}"))
            while oid not in acked:
                await got.wait()
                got.clear()
            out.append(acked[oid] - start)
            broker.cancel(oid)
    finally:
        await broker.close()
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--bars", type=int, default=20_000)
    ap.add_argument("--library", default="ib_insync", choices=["ib_insync", "ib_async"])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ib_loopback.json")
    a = ap.parse_args()
    from bothost_plugins.replay_feed.synthetic import write_csv

    results: dict = {"library": a.library}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "bars.csv"
        write_csv(data, bars=max(a.bars, 10), seed=42, volatility=1.0, start_price=50.0, interval=60)

        port = free_port()
        sim = start_sim(data, tmp / "sim-rt", port)
        try:
            times = asyncio.run(round_trips(port, a.orders, a.library))
        finally:
            sim.terminate()
            sim.wait()
        ms = [t * 1000 for t in times]
        results["round_trip_ms"] = {"orders": len(ms), "p50": round(pct(ms, 0.5), 3), "p99": round(pct(ms, 0.99), 3),
                                    "max": round(max(ms), 3), "mean": round(statistics.fmean(ms), 3)}
        print(f"placeOrder -> acknowledgement ({a.library}, {len(ms)} orders): p50 {pct(ms, 0.5):.3f} ms, "
              f"p99 {pct(ms, 0.99):.3f} ms, max {max(ms):.3f} ms")

        port = free_port()
        sim = start_sim(data, tmp / "sim-rehearsal", port)
        try:
            state = tmp / "bot"
            started = time.perf_counter()
            r = subprocess.run([str(BIN / "bothost"), "run", str(REPO / "configs" / "tqqq-ib.yaml"), "--state",
                                str(state), "--no-progress", "--stop-when-idle", "1",
                                "--set", f"broker.client_library={a.library}"],
                               env={**os.environ, "IB_PORT": str(port)}, capture_output=True, text=True)
            wall = time.perf_counter() - started - 1.0  # minus the idle second that ends it
        finally:
            sim.terminate()
            sim.wait()
        if r.returncode != 0:
            raise SystemExit(f"rehearsal failed ({r.returncode}): {r.stderr[-2000:]}")
        summary = json.loads((state / "out" / "summary.json").read_text())
        results["rehearsal"] = {"bars": a.bars, "ticks": summary["ticks"], "fills": summary.get("fills"),
                                "wall_s": round(wall, 2), "ticks_per_s": round(summary["ticks"] / wall)}
        print(f"lockstep rehearsal ({a.library}): {a.bars:,} bars, {summary['ticks']:,} ticks, "
              f"{summary.get('fills')} fills in {wall:.1f} s ({summary['ticks'] / wall:,.0f} ticks/s)")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
