"""Tick-to-order latency in the live engine: the asyncio path with the simulated venue.

A feed task emits ticks as a live feed would (from its own task, yielding to the loop between
ticks); a probe strategy answers every tick with an order (cancelling the previous one). We time
from the feed's ``emit`` to the venue receiving the first order that tick caused: queueing,
dispatch through pluggy, the venue's matching of that tick, and the strategy's hooks.

Two sections:

* ``quiet``: the probe's orders rest far below the market, so no tick fills anything;
* ``fills``: every ``--fill-every``-th tick (default 10) the probe's BUY is marketable, so the
  next tick fills it; the probe answers each fill with a resting SELL (cancelled on the next
  tick). On those ticks the first order is the fill's answer: matching, the fill, its order
  status and the strategy's ``on_fill``, all before the order goes out.

    python benchmarks/latency.py [--ticks 100000] [--fill-every 10] [--json]
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

    def __init__(self, fill_every: int = 0):
        self.fill_every = fill_every
        self.last_order: str | None = None
        self.last_sell: str | None = None
        self.ticks = 0
        self.fills = 0

    @hookimpl
    def on_tick(self, ctx, tick):
        self.ticks += 1
        if self.last_order is not None:
            ctx.cancel(self.last_order)  # a no-op at the venue when it filled
        if self.last_sell is not None:
            ctx.cancel(self.last_sell)
            self.last_sell = None
        if self.fill_every and self.ticks % self.fill_every == 0:
            limit = tick.price + 50  # marketable: fills on the next tick
        else:
            limit = tick.price // 2  # far below the market: rests, never fills
        self.last_order = ctx.place(OrderRequest("TQQQ", Side.BUY, 1, Decimal(limit).scaleb(-2)))

    @hookimpl
    def on_fill(self, ctx, fill):
        self.fills += 1
        if fill.side is Side.BUY:  # the answer to a fill: a resting SELL of what was bought
            self.last_sell = ctx.place(OrderRequest("TQQQ", Side.SELL, fill.quantity, fill.price * 2))


class TimedBroker(SimBroker):
    """Times the first order placed after each tick was emitted."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.sent: int | None = None  # perf_counter_ns of the tick waiting for its first order
        self.latencies_ns: list[int] = []

    def place(self, order):
        if self.sent is not None:
            self.latencies_ns.append(time.perf_counter_ns() - self.sent)
            self.sent = None
        return super().place(order)


class Feed:
    def __init__(self, broker: TimedBroker, n: int):
        self.broker, self.n = broker, n

    async def stream(self, emit):
        rng = np.random.default_rng(1)
        prices = (5000 + np.cumsum(rng.integers(-2, 3, self.n))).clip(100).tolist()
        t0 = time.time_ns()
        for i, p in enumerate(prices):
            self.broker.sent = time.perf_counter_ns()
            emit(Tick(t0 + i * 1000, "TQQQ", int(p)))
            await asyncio.sleep(0)  # a live feed's callback returns to the loop between ticks


def measure(n: int, fill_every: int = 0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = BuildEnv(Path(tmp) / "c.yaml", Path(tmp), "paper", logging.getLogger("bench"))
        broker = TimedBroker(SimBrokerConfig(), env)
        probe = Probe(fill_every)
        engine = Engine(pm=make_manager(), broker=broker, strategies=[("probe", probe)],
                        state=StateStore(Path(tmp) / "s.json"), live_state_flush=False)

        async def main():
            await broker.connect()
            await engine.reconstruct()
            engine.start()
            await engine.run_live(Feed(broker, n))
            await broker.close()

        asyncio.run(main())
        lat = np.array(broker.latencies_ns) / 1000.0
    out = {"ticks": n, "p50_us": round(float(np.percentile(lat, 50)), 1),
           "p99_us": round(float(np.percentile(lat, 99)), 1), "max_us": round(float(lat.max()), 1)}
    if fill_every:
        out.update(fill_every=fill_every, fills=probe.fills, ticks_per_fill=round(n / max(1, probe.fills), 2))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=100_000)
    ap.add_argument("--fill-every", type=int, default=10, help="a fill on every Nth tick in the fills section")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = {"quiet": measure(args.ticks), "fills": measure(args.ticks, args.fill_every)}
    # The quiet figures stay at the top level too (the harness's earlier readers use them).
    result.update({k: v for k, v in result["quiet"].items()})
    if args.json:
        print(json.dumps(result))
    else:
        for name in ("quiet", "fills"):
            r = result[name]
            extra = f", {r['fills']:,} fills" if "fills" in r else ""
            print(f"{name}: tick-to-order over {r['ticks']:,} ticks{extra}: p50 {r['p50_us']} us, "
                  f"p99 {r['p99_us']} us, max {r['max_us']} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
