"""Drive the ``tqqq_grid`` strategy on the real engine and the real simulated venue.

Nothing here models a venue or an engine: :class:`GridDriver` builds the same
:class:`~bothost.engine.Engine` a run builds, around a :class:`SimBroker` in a folder of its own
(SQLite venue, ``bot_state.json``), and only watches it:

* every order the engine sends to the broker (``placed``, ``cancels``, and ``events``, the
  order of places, cancels and the updates the strategy was shown);
* I1-I4 (``check_invariants``) after every event the engine finishes (each fill with its
  consequences, each tick's ``on_tick``, each reconstruct), by wrapping ``Engine.drain``;
* what the strategy was told, through an observer plugin (:class:`Seen`).

Ticks go in either one by one (``tick``: ``Engine.handle_tick``, as a replay hands the engine a
tick it must handle) or as a whole replay (``run``: the real :class:`ReplayDriver`, skipping the
ticks that provably change nothing, or handling them all and proving they were quiet). A
restart is ``close()`` (the venue checkpointed, the state flushed, as a replay checkpoint does)
and a new driver on the same folder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np

from bothost.engine import Engine
from bothost.hookspecs import BuildEnv, TickChunk, hookimpl
from bothost.model import OpenOrder, OrderRequest, Side, Tick
from bothost.plugins import make_manager
from bothost.replay import ReplayDriver
from bothost.state import StateStore
from bothost_plugins.sim_broker.plugin import SimBroker, SimBrokerConfig
from bothost_plugins.tqqq_grid.invariants import check_invariants
from bothost_plugins.tqqq_grid.lots import LotMap, load_lot_map
from bothost_plugins.tqqq_grid.params import TqqqGridConfig
from bothost_plugins.tqqq_grid.plugin import TqqqGrid
from bothost_plugins.tqqq_grid.tags import parse_tag

REPO = Path(__file__).resolve().parents[2]
LOTS = load_lot_map(REPO / "configs" / "tqqq_lots.csv")
SYM = "TQQQ"
S = 1_000_000_000
T0 = 1_700_000_000 * S
STEP_S = 15


def at(i: int, step_s: int = STEP_S) -> int:
    """The time of the i-th tick of a test (T0, T0 + 15 s, ...)."""
    return T0 + i * step_s * S


class ArrayFeed:
    """A replay feed of prices in cents, one tick every ``step_s`` from tick ``start``."""

    symbol = SYM

    def __init__(self, prices: Sequence[int], start: int = 0, step_s: int = STEP_S):
        self.times = np.array([at(start + i, step_s) for i in range(len(prices))], dtype=np.int64)
        self.prices = np.array(list(prices), dtype=np.int64)

    def chunks(self, after_ns: int | None = None) -> Iterator[TickChunk]:
        keep = slice(None) if after_ns is None else self.times > after_ns
        yield TickChunk(self.times[keep], self.prices[keep])

    def stats(self) -> dict:
        return {"rows": len(self.prices), "bad_rows": 0, "ticks": len(self.prices), "bar_interval_s": STEP_S}


class Seen:
    """An observer plugin: what the strategy was shown (observers get every strategy's events)."""

    def __init__(self, driver: GridDriver):
        self.driver = driver
        self.fills = []
        self.updates = []
        self.commissions = []
        self.alerts = []

    @hookimpl
    def on_fill(self, ctx, fill):
        self.fills.append(fill)

    @hookimpl(tryfirst=True)  # recorded before the strategy acts on it (events stay in order)
    def on_order_update(self, ctx, update):
        self.updates.append(update)
        self.driver.events.append(("update", update.order_id, update.status))

    @hookimpl
    def on_commission(self, ctx, report):
        self.commissions.append(report)

    @hookimpl
    def on_alert(self, ctx, alert):
        self.alerts.append(alert)


@dataclass(frozen=True)
class Placed:
    time_ns: int  # the host clock when it was placed
    order_id: str
    request: OrderRequest

    @property
    def side(self) -> Side:
        return self.request.side

    @property
    def tag(self):
        return parse_tag(self.request.ref)


class GridDriver:
    def __init__(self, folder: Path, config: TqqqGridConfig | None = None, *, lot_map: LotMap = LOTS,
                 check: bool = True, observers=(), live_state_flush: bool = True, **broker_options):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.config = config or TqqqGridConfig()
        env = BuildEnv(folder / "bot.yaml", folder, "paper", logging.getLogger("test.grid_driver"))
        self.broker = SimBroker(SimBrokerConfig(**broker_options), env)
        self.broker.open()
        self.venue = self.broker.venue
        self.strategy = TqqqGrid(self.config, lot_map)
        pm = make_manager()
        self.seen = Seen(self)
        pm.register(self.seen)
        for observer in observers:
            pm.register(observer)
        self.state_store = StateStore(folder / "bot_state.json")
        self.engine = Engine(pm=pm, broker=self.broker, strategies=[("tqqq_grid", self.strategy)],
                             state=self.state_store, live_state_flush=live_state_flush)
        self.ctx = self.engine.contexts[0]
        self.check = check
        self.checked = 0
        self.placed: list[Placed] = []
        self.cancels: list[str] = []
        self.events: list[tuple] = []  # ("place", id, ref) / ("cancel", id) / ("update", id, status), in order
        self.saves = 0
        self._watch()

    # ------------------------------------------------------------------ watching (no behaviour changed)
    def _watch(self) -> None:
        broker, engine, store = self.broker, self.engine, self.state_store
        place, cancel, drain, put = broker.place, broker.cancel, engine.drain, store.put

        def placing(request: OrderRequest) -> str:
            oid = place(request)
            self.placed.append(Placed(engine.now_ns, oid, request))
            self.events.append(("place", oid, request.ref))
            return oid

        def cancelling(order_id: str) -> None:
            self.cancels.append(order_id)
            self.events.append(("cancel", order_id))
            cancel(order_id)

        def drain_and_check() -> None:
            drain()
            self.check_now()

        def putting(section, value):
            self.saves += 1
            put(section, value)

        broker.place, broker.cancel, engine.drain, store.put = placing, cancelling, drain_and_check, putting

    def check_now(self, when: str = "") -> None:
        book = self.book
        if not self.check or book is None or book.halted or self.engine.alert is not None:
            return
        problems = check_invariants(book, self.venue.open_orders(), self.position)
        assert not problems, f"at {self.engine.now_ns} {when}: {problems}"
        self.checked += 1

    # ------------------------------------------------------------------ driving
    def start(self) -> GridDriver:
        """Reconstruct from the venue (and bot_state.json), then on_start: as a run starts."""
        asyncio.run(self.engine.reconstruct())
        self.engine.start()
        return self

    def tick(self, time_ns: int, price: int) -> None:
        """One tick the engine must handle: the venue's fills, then on_tick."""
        self.engine.handle_tick(time_ns, price, Tick(time_ns, SYM, price))

    def ticks(self, prices: Sequence[int], start: int = 0) -> None:
        for i, price in enumerate(prices):
            self.tick(at(start + i), price)

    def run(self, prices: Sequence[int], start: int = 0, verify_skips: bool = False) -> None:
        """A replay of ``prices`` (tick ``start`` onwards) through the real replay driver."""
        driver = ReplayDriver(self.engine, ArrayFeed(prices, start), verify_skips=verify_skips)
        asyncio.run(driver.run())

    def deliver(self) -> None:
        """Events the broker emitted outside any event the engine was handling (an order
        cancelled from outside the bot): handled in arrival order, as the live loop does."""
        inbox = self.engine.inbox
        while inbox:
            self.engine.dispatch(inbox.popleft())
            self.engine.drain()

    def venue_alone(self, prices: Sequence[int], start: int) -> list:
        """The bot is down; the venue matches on (live, a broker keeps trading): nobody hears."""
        self.broker.bind(lambda event: None)
        fills = []
        for i, price in enumerate(prices):
            fills += list(self.venue.match(at(start + i), price))
        return fills

    def close(self, clean: bool = False) -> None:
        """Stop between two ticks: the venue committed and the state written (a replay's
        checkpoint); ``clean`` also runs on_stop first (a SIGTERM rather than a SIGKILL)."""
        if clean:
            self.engine.stop()
        self.broker.checkpoint()
        self.engine.flush_state()
        self.broker.store.close()

    # ------------------------------------------------------------------ views
    @property
    def book(self):
        return self.strategy.book

    @property
    def position(self) -> int:
        return self.venue.position.get(SYM, 0)

    @property
    def state(self) -> dict | None:
        return self.state_store.get("tqqq_grid")

    def open_orders(self, side: Side | None = None) -> list[OpenOrder]:
        return [o for o in self.venue.open_orders() if side is None or o.side is side]

    def executions(self) -> list:
        return list(self.broker.iter_executions())

    def order(self, order_id: str) -> OpenOrder | None:
        return next((o for o in self.venue.open_orders() if o.order_id == order_id), None)

    def buy_at_level(self, level: int) -> str:
        """The book's working BUY for ``level`` (not one being cancelled)."""
        (oid,) = [oid for oid, b in self.book.buys.items() if b.level == level and not b.cancel_requested]
        return oid

    def sell_of_level(self, level: int) -> str:
        (oid,) = [oid for oid, lot in self.book.lots.items() if lot.level == level]
        return oid


def fill_key(f) -> tuple:
    """An execution as fills.csv shows it."""
    return (f.time_ns, f.side.value, f.quantity, f.price, f.commission, f.order_id, f.ref)


def cents(price: Decimal) -> int:
    return int(price * 100)
