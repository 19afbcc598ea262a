"""The broker conformance suite against ib_broker through sim-tws: the real ib_insync client
over a real socket on 127.0.0.1, one simulator (one paper account) for the whole module.

The simulator's replay is the market: its ticks come from a tape the driver writes as the suite
asks (one tick at the reference price, then the price asked for), so the venue matches on
exactly the prices the suite names, through sim-tws's own replay and matching. A restart is a
new IbBroker with the same client id; the connection is cut by closing every socket (the
broker's supervisor reconnects, as in a run).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import threading
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from bothost.hookspecs import BuildEnv, TickChunk
from bothost.model import NS_PER_SECOND, decimal_to_cents
from bothost.testing.conformance import BrokerConformance, VenueCapabilities
from bothost_plugins.ib_broker.broker import IbBroker
from bothost_plugins.ib_broker.config import IbBrokerConfig
from bothost_plugins.replay_feed.synthetic import write_csv
from bothost_plugins.sim_tws import SimTws

REFERENCE = Decimal("50.00")
PARTIAL = 4  # the simulator fills at most this many shares of an order per tick


class Tape:
    """sim-tws's replay feed, written as the test goes: when nothing is asked, a tick at the
    reference price (the replay pulls its next tick before it waits for leave to handle it)."""

    symbol = "TQQQ"

    def __init__(self, reference: Decimal, start_ns: int):
        self.reference = decimal_to_cents(reference)
        self.asked: collections.deque[int] = collections.deque()
        self.time_ns = start_ns

    def chunks(self, after_ns: int | None = None):
        while True:
            price = self.asked.popleft() if self.asked else self.reference
            self.time_ns += NS_PER_SECOND
            yield TickChunk(np.array([self.time_ns], dtype=np.int64), np.array([price], dtype=np.int64))

    def stats(self) -> dict:
        return {"rows": 0, "bad_rows": 0, "ticks": 0}


class TapedSimTws:
    """A SimTws on a loop of its own thread (a TWS the test's loops connect to), its replay
    reading a :class:`Tape`."""

    def __init__(self, data: Path, state_dir: Path):
        self.data, self.state_dir = data, state_dir
        self.sim: SimTws | None = None
        self.tape: Tape | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._done: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="sim-tws", daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        self.sim = SimTws(self.data, self.state_dir, partial_fill_shares=PARTIAL)
        await self.sim.start()
        # Before the replay task's first step (nothing has yielded since it was created):
        self.tape = Tape(REFERENCE, self.sim.exchange.first_ns or 1_704_205_800 * NS_PER_SECOND)
        self.sim.exchange.feed = self.tape
        self._ready.set()
        await self._done.wait()
        await self.sim.stop()

    def start(self) -> TapedSimTws:
        self._thread.start()
        assert self._ready.wait(30), "sim-tws did not start"
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._done.set)
        self._thread.join(30)

    async def call(self, fn):
        """``fn(sim)`` on the simulator's loop (awaited if it is a coroutine), from the test's loop."""
        async def run():
            result = fn(self.sim)
            return await result if asyncio.iscoroutine(result) else result
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), self.loop))

    async def trade_at(self, cents: int) -> None:
        def go(sim):
            self.tape.asked += [cents, self.tape.reference]
            # the reference tick already pulled, this one, and the market back at the reference
            return sim.advance(3)
        await self.call(go)


class IbVenueDriver:
    """ib_broker's side of the conformance suite, on the module's simulator."""

    symbol = "TQQQ"
    reference_price = REFERENCE
    capabilities = VenueCapabilities(partial_fill_shares=PARTIAL, late_commission=True, connection=True,
                                     trades_while_away=True,
                                     settle_s=0.02, timeout_s=10.0)

    broker_class = IbBroker

    def __init__(self, tws: TapedSimTws, folder: Path, lib: str = "ib_insync"):
        self.tws, self.folder = tws, folder
        self.config = IbBrokerConfig(port=tws.sim.port, client_id=101, client_library=lib, connect_retries=0,
                                     heartbeat="1s", heartbeat_timeout="2s")

    def new_broker(self) -> IbBroker:
        return self.broker_class(self.config, BuildEnv(self.folder / "bot.yaml", self.folder, "paper",
                                              logging.getLogger("test.conformance.ib")))

    async def trade_at(self, broker, price: Decimal) -> None:
        await self.tws.trade_at(decimal_to_cents(price))

    async def cut_connection(self) -> None:
        await self.tws.call(lambda sim: sim.drop_connections())

    async def restore_connection(self) -> None:
        pass  # the simulator listens on: the broker's supervisor reconnects by itself

    def settings(self, live: bool) -> IbBrokerConfig:
        return self.config.model_copy(update={"port": 7496}) if live else self.config


@pytest.fixture(scope="module")
def tws(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim-tws")
    data = folder / "bars.csv"
    write_csv(data, bars=50, seed=3, volatility=1.0, start_price=50.0, interval=60)
    server = TapedSimTws(data, folder / "state").start()
    yield server
    server.stop()


class TestIbBrokerThroughSimTws(BrokerConformance):
    @pytest.fixture(params=["ib_insync", "ib_async"])
    def venue(self, request, tws, tmp_path):
        return IbVenueDriver(tws, tmp_path, request.param)


class DropsTags(IbBroker):
    def place(self, order):
        return super().place(dataclasses.replace(order, ref=""))


def test_the_suite_fails_an_ib_broker_that_drops_tags(tws, tmp_path):
    """The suite is as strict over a socket: tags lost on the way to TWS are found."""
    driver = IbVenueDriver(tws, tmp_path)
    driver.broker_class = DropsTags
    with pytest.raises(AssertionError, match="tags in the snapshot"):
        BrokerConformance().test_tags_round_trip_through_open_orders_fills_and_executions(driver)
