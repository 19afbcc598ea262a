"""Tick-to-order latency in the live engine: the asyncio path with the simulated venue.

A feed task emits ticks as a live feed would (from its own task, yielding to the loop between
ticks); a probe strategy answers every tick with an order (cancelling the previous one). We time
from the feed's ``emit`` to the venue receiving the order: queueing, dispatch through pluggy, the
venue's matching of that tick, and the strategy's hook.

    python benchmarks/latency.py [--ticks 100000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

from bothost.engine import Engine
from bothost.hookspecs import BuildEnv, hookimpl
from bothost.model import OrderRequest, Side, Tick
from bothost.plugins import make_manager
from bothost.state import StateStore
from bothost_plugins.sim_broker.plugin import SimBroker, SimBrokerConfig


class Probe:
    symbol = "TQQQ"
    wants_every_tick = True

    def __init__(self):
        self.last_order: str | None = None

    @hookimpl
    def on_tick(self, ctx, tick):
        if self.last_order is not None:
            ctx.cancel(self.last_order)
        # Far below the market: rests, never fills, so every tick does the same work.
        self.last_order = ctx.place(OrderRequest("TQQQ", Side.BUY, 1, Decimal(tick.price // 2).scaleb(-2)))


class TimedBroker(SimBroker):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.sent_at: list[int] = []
        self.placed_at: list[int] = []

    def place(self, order):
        self.placed_at.append(time.perf_counter_ns())
        return super().place(order)


class Feed:
    def __init__(self, broker: TimedBroker, n: int):
        self.broker, self.n = broker, n

    async def stream(self, emit):
        rng = np.random.default_rng(1)
        prices = (5000 + np.cumsum(rng.integers(-2, 3, self.n))).clip(100).tolist()
        t0 = time.time_ns()
        for i, p in enumerate(prices):
            self.broker.sent_at.append(time.perf_counter_ns())
            emit(Tick(t0 + i * 1000, "TQQQ", int(p)))
            await asyncio.sleep(0)  # a live feed's callback returns to the loop between ticks


def measure(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = BuildEnv(Path(tmp) / "c.yaml", Path(tmp), "paper", logging.getLogger("bench"))
        broker = TimedBroker(SimBrokerConfig(), env)
        engine = Engine(pm=make_manager(), broker=broker, strategies=[("probe", Probe())],
                        state=StateStore(Path(tmp) / "s.json"), live_state_flush=False)

        async def main():
            await broker.connect()
            await engine.reconstruct()
            engine.start()
            await engine.run_live(Feed(broker, n))
            await broker.close()

        asyncio.run(main())
        lat = (np.array(broker.placed_at[: n]) - np.array(broker.sent_at[: len(broker.placed_at)])) / 1000.0
    return {"ticks": n, "p50_us": round(float(np.percentile(lat, 50)), 1),
            "p99_us": round(float(np.percentile(lat, 99)), 1), "max_us": round(float(lat.max()), 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = measure(args.ticks)
    print(json.dumps(result) if args.json else
          f"tick-to-order over {result['ticks']:,} ticks: p50 {result['p50_us']} us, "
          f"p99 {result['p99_us']} us, max {result['max_us']} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
