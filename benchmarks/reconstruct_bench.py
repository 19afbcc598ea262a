"""Reconstruct with all 88 lots open (every level of the real lot map) against the simulated venue.

The venue is prepared as a crashed bot would leave it: 88 BUY executions, 88 tagged GTC SELLs.
We time the engine's reconstruct: the broker snapshot (open orders, executions, positions) and
the grid rebuilding its book from it (Reconstruct 1-6), median of several runs.

    python benchmarks/reconstruct_bench.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from bothost.engine import Engine
from bothost.hookspecs import BuildEnv
from bothost.model import OrderRequest, Side
from bothost.plugins import load_plugins
from bothost.state import StateStore
from bothost_plugins.sim_broker.plugin import SimBroker, SimBrokerConfig
from bothost_plugins.tqqq_grid.grid import sell_price, trigger_chain
from bothost_plugins.tqqq_grid.lots import load_lot_map
from bothost_plugins.tqqq_grid.tags import entry_tag, queue_tag, sell_tag

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "tqqq-paper.yaml"
PCT = Decimal("0.01")


def prepare(state: Path) -> int:
    """A venue holding all 88 lots with their SELLs; returns the number of lots."""
    env = BuildEnv(CONFIG, state, "paper", logging.getLogger("bench"))
    broker = SimBroker(SimBrokerConfig(), env)
    broker.open()
    venue = broker.venue
    lots = load_lot_map(REPO / "configs" / "tqqq_lots.csv")
    anchor = Decimal("100.00")
    chain = trigger_chain(anchor, PCT, len(lots))
    t = 1704205800 * 10**9
    for level, shares in enumerate(lots):
        ref = entry_tag("tqqq_grid", anchor) if level == 0 else queue_tag("tqqq_grid", level, anchor)
        cents = int(chain[level] * 100)
        venue.advance(t, cents + 1)
        buy = venue.place(OrderRequest("TQQQ", Side.BUY, shares, chain[level], ref=ref))
        t += 60 * 10**9
        assert len(list(venue.match(t, cents))) == 1
        venue.place(OrderRequest("TQQQ", Side.SELL, shares, sell_price(chain[level], PCT),
                                 ref=sell_tag("tqqq_grid", level, chain[level], anchor, buy)))
        t += 60 * 10**9
    broker.checkpoint()
    broker.store.close()
    return len(lots)


def measure(runs: int) -> dict:
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        n = prepare(state)
        pm, registry, _ = load_plugins()
        kind = registry.get("strategy", "tqqq_grid")
        env = BuildEnv(CONFIG, state, "paper", logging.getLogger("bench"))
        for _ in range(runs):
            broker = SimBroker(SimBrokerConfig(), env)
            strategy = kind.factory(kind.model(), env)
            engine = Engine(pm=pm, broker=broker, strategies=[("tqqq_grid", strategy)],
                            state=StateStore(state / "bot_state.json"), live_state_flush=False)

            async def once(broker=broker, engine=engine):  # this turn's (run at once, below)
                await broker.connect()
                start = time.perf_counter()
                await engine.reconstruct(None)
                elapsed = time.perf_counter() - start
                await broker.close()
                return elapsed

            times.append(asyncio.run(once()))
            assert len(strategy.book.lots) == n, f"reconstructed {len(strategy.book.lots)} lots of {n}"
            pm.unregister(strategy)
    return {"lots": n, "runs": runs, "median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = measure(args.runs)
    print(json.dumps(result) if args.json else
          f"reconstruct of {result['lots']} lots: median {result['median_s'] * 1000:.1f} ms, max {result['max_s'] * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
