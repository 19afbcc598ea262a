"""A replay of strategies on several symbols: a simulated venue per symbol behind one broker.

The one-symbol replay (``replay.py``) is untouched and never comes through here. A feed that
replays several symbols (:class:`ReplaysSymbols`: the replay feed's ``data_by_symbol``) hands
over runs of one symbol's ticks in time order; the run builds the config's broker once per
symbol (each in its own folder, ``venues/<SYMBOL>/``), and :class:`VenuesBySymbol` puts them
behind one broker for the engine: orders go to their symbol's venue, ids are the venue's with
the symbol in front (each venue numbers from 1), and while a run of one symbol's ticks is
handled the engine matches against that symbol's venue only, with the one-symbol skipping of
quiet ticks against that venue's band. Each symbol's fills are the fills of a one-symbol replay
of its file; a strategy's timer fires at the first tick of any symbol at or after its time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import time
from collections.abc import Iterator
from typing import Any

from .hookspecs import Emit, ReplaysSymbols
from .model import BrokerSnapshot, CommissionReport, Fill, OpenOrder, OrderRequest, OrderUpdate
from .replay import ReplayDriver


def _ours(symbol: str, event: Any) -> Any:
    """A venue's event with the broker's ids: the venue's own with the symbol in front."""
    if isinstance(event, Fill):
        return dataclasses.replace(event, exec_id=f"{symbol}-{event.exec_id}", order_id=f"{symbol}-{event.order_id}")
    if isinstance(event, OrderUpdate):
        return dataclasses.replace(event, order_id=f"{symbol}-{event.order_id}")
    if isinstance(event, CommissionReport):
        return dataclasses.replace(event, exec_id=f"{symbol}-{event.exec_id}")
    if isinstance(event, OpenOrder):
        return dataclasses.replace(event, order_id=f"{symbol}-{event.order_id}")
    return event


class SymbolVenue:
    """One symbol's venue as the engine matches against it while that symbol's ticks run."""

    def __init__(self, symbol: str, venue: Any):
        self.symbol = symbol
        self.venue = venue

    def match(self, time_ns: int, price: int) -> Iterator[Fill]:
        symbol = self.symbol
        for fill in self.venue.match(time_ns, price):
            yield _ours(symbol, fill)

    def quiet_band(self) -> tuple[int, int]:
        return self.venue.quiet_band()

    def advance(self, time_ns: int, price: int) -> None:
        self.venue.advance(time_ns, price)

    def checkpoint(self) -> None:
        self.venue.checkpoint()

    @property
    def clock_ns(self) -> int | None:
        return self.venue.clock_ns

    def iter_executions(self, since_ns: int | None = None) -> Iterator[Fill]:
        symbol = self.symbol
        for fill in self.venue.iter_executions(since_ns):
            yield _ours(symbol, fill)


class VenuesBySymbol:
    """Broker and MatchingVenue over a simulated venue per symbol (see the module docstring)."""

    def __init__(self, venues: dict[str, Any]):
        self.by_symbol = {symbol: SymbolVenue(symbol, venue) for symbol, venue in venues.items()}
        self.name = "venues by symbol"

    # Broker ---------------------------------------------------------------------------------
    def bind(self, emit: Emit) -> None:
        for symbol, sv in self.by_symbol.items():
            sv.venue.bind(lambda event, symbol=symbol: emit(_ours(symbol, event)))

    async def connect(self) -> None:
        for sv in self.by_symbol.values():
            await sv.venue.connect()

    async def snapshot(self, executions_since_ns: int | None) -> BrokerSnapshot:
        parts = {s: await sv.venue.snapshot(executions_since_ns) for s, sv in self.by_symbol.items()}
        return BrokerSnapshot(
            time_ns=max(p.time_ns for p in parts.values()),
            open_orders=tuple(_ours(s, o) for s, p in parts.items() for o in p.open_orders),
            executions=tuple(heapq.merge(*([_ours(s, e) for e in p.executions] for s, p in parts.items()),
                                         key=lambda e: e.time_ns)),
            positions=tuple(pos for p in parts.values() for pos in p.positions))

    def place(self, order: OrderRequest) -> str:
        sv = self.by_symbol.get(order.symbol)
        if sv is None:
            raise ValueError(f"no venue for {order.symbol}: this replay has data of {', '.join(self.by_symbol)} only")
        return f"{order.symbol}-{sv.venue.place(order)}"

    def cancel(self, order_id: str) -> None:
        symbol, _, own = order_id.rpartition("-")
        self.by_symbol[symbol].venue.cancel(own)

    async def close(self) -> None:
        for sv in self.by_symbol.values():
            await sv.venue.close()

    # MatchingVenue: the engine matches against one symbol's venue at a time (the driver's) ----
    def match(self, time_ns: int, price: int) -> Iterator[Fill]:
        raise TypeError("a replay of several symbols matches one symbol's venue at a time")

    def quiet_band(self) -> tuple[int, int]:
        raise TypeError("a replay of several symbols has a quiet band per symbol")

    def advance(self, time_ns: int, price: int) -> None:
        raise TypeError("a replay of several symbols advances one symbol's venue at a time")

    def checkpoint(self) -> None:
        for sv in self.by_symbol.values():
            sv.checkpoint()

    @property
    def clock_ns(self) -> int | None:
        """The latest of the venues' clocks (None: no venue has seen a tick)."""
        clocks = [c for c in (sv.clock_ns for sv in self.by_symbol.values()) if c is not None]
        return max(clocks) if clocks else None

    def iter_executions(self, since_ns: int | None = None) -> Iterator[Fill]:
        """Every venue's executions, oldest first (a tie: the config's order of the symbols)."""
        return heapq.merge(*(sv.iter_executions(since_ns) for sv in self.by_symbol.values()),
                           key=lambda e: e.time_ns)


class MultiSymbolReplayDriver(ReplayDriver):
    """The replay loop over runs of one symbol's ticks, each against that symbol's venue."""

    #: Ticks between two looks at the event loop (SIGINT/SIGTERM): runs may be a tick long.
    YIELD_EVERY = 65_536

    def __init__(self, engine, feed: ReplaysSymbols, venues: VenuesBySymbol,
                 last_prices: dict[str, int] | None = None, **options):
        super().__init__(engine, feed, **options)
        self.venues = venues
        self.last_prices = last_prices if last_prices is not None else {}

    async def run(self) -> None:
        engine = self.engine
        try:
            await self._run()
        finally:
            self.venue = engine.venue = self.venues

    async def _run(self) -> None:
        engine = self.engine
        handle = engine.handle_tick
        counters = engine.counters
        by_symbol = self.venues.by_symbol
        last_checkpoint = time.monotonic()
        since_yield = 0
        for symbol, times, prices in self.feed.runs({s: sv.clock_ns for s, sv in by_symbol.items()}):
            venue = self.venue = engine.venue = by_symbol[symbol]
            self.symbol = symbol
            n = len(prices)
            i = 0
            while i < n:
                j = self.next_index(times, prices, i, n) if self.skip else i
                if self.verify and j > i:
                    self._verify_quiet(times, prices, i, min(j, n))
                    if engine.stopping:
                        return
                    if j >= n:
                        break
                elif j >= n:
                    venue.advance(int(times[n - 1]), int(prices[n - 1]))
                    break
                elif j > i:
                    venue.advance(int(times[j - 1]), int(prices[j - 1]))
                handle(int(times[j]), int(prices[j]), None, symbol)
                if engine.stopping:
                    return
                i = j + 1
            self.last_prices[symbol] = int(prices[n - 1])
            counters.ticks += n
            since_yield += n
            if self.on_progress is not None:
                self.on_progress(n)
            if since_yield >= self.YIELD_EVERY:
                since_yield = 0
                if time.monotonic() - last_checkpoint >= self.checkpoint_every_s:
                    self.checkpoint()
                    last_checkpoint = time.monotonic()
                await asyncio.sleep(0)  # let SIGINT/SIGTERM handlers run
                if self.interrupted:
                    self.checkpoint()  # a clean stop: the next start resumes exactly here
                    return
        self.checkpoint()

    def checkpoint(self) -> None:
        if self.on_checkpoint is not None:
            self.on_checkpoint()
        self.venues.checkpoint()
        self.engine.flush_state()
