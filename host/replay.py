"""The replay driver: recorded or generated ticks through the engine, as fast as the machine allows.

The feed hands over columnar chunks (int64 nanoseconds, int64 cents). Most ticks of a grid
replay change nothing: they fill no order, trigger no order and no timer is due. Those are
found with vectorised comparisons against the venue's *quiet band* and skipped; only the ticks
that matter go through the engine one by one. A strategy that did not declare otherwise sees
every tick (``ctx.want_every_tick``), and ``verify_skips`` replays every tick while checking
that none of the skipped ones would have done anything: the proof that skipping is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator

import numpy as np

from .engine import Engine
from .hookspecs import ReplayFeed

log = logging.getLogger("bothost.replay")


#: The young generation's threshold during a replay (Python's default is 700 allocations).
REPLAY_GC_THRESHOLD = (50_000, 20, 10)


@contextlib.contextmanager
def replay_gc() -> Iterator[None]:
    """Python's cycle collector tuned for a replay, then put back as it was.

    A replay makes and drops a handful of objects per fill (the fill, its order's update, the
    next order), almost none of them in reference cycles: reference counting frees them. The
    collector at its defaults still scanned the young objects every 700 allocations and, every
    few hundred thousand, the whole heap: every module, the config and pydantic's schemas, which
    live for the whole run. Measured on the 1,000,000-bar range-bound file: 1.2 s of collection,
    0.3 s like this. What exists when the replay starts is frozen (never scanned again, still
    freed normally at exit), and the young generation is collected every 50,000 allocations."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*REPLAY_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


class SkipViolation(AssertionError):
    """A tick the engine would have skipped made something happen: skipping is not exact."""


class ReplayDriver:
    def __init__(self, engine: Engine, feed: ReplayFeed, *, skip_quiet_ticks: bool = True,
                 verify_skips: bool = False, checkpoint_every_s: float = 2.0,
                 on_progress: Callable[[int], None] | None = None,
                 on_sample: Callable[[np.ndarray, np.ndarray], None] | None = None,
                 on_checkpoint: Callable[[], None] | None = None):
        if engine.venue is None:
            raise ValueError("a replay needs a broker that matches orders itself (a simulated venue)")
        self.engine = engine
        self.venue = engine.venue
        self.feed = feed
        self.symbol = feed.symbol
        self.skip = skip_quiet_ticks or verify_skips
        self.verify = verify_skips
        self.checkpoint_every_s = checkpoint_every_s
        self.on_progress = on_progress
        self.on_sample = on_sample
        self.on_checkpoint = on_checkpoint
        self.interrupted = False

    def _next_wake(self) -> int | None:
        wake = self.engine.timers.next_time()
        for ctx in self.engine.contexts:
            if ctx.wakes and (wake is None or ctx.wakes[0] < wake):
                wake = ctx.wakes[0]
        return wake

    def next_index(self, times: np.ndarray, prices: np.ndarray, i: int, n: int) -> int:
        """The first index >= i whose tick can change anything (n if none in this chunk)."""
        for ctx in self.engine.contexts:
            if ctx.every_tick:
                return i
        lo, hi = self.venue.quiet_band()
        end = n
        wake = self._next_wake()
        if wake is not None:
            end = max(i, min(n, int(np.searchsorted(times, wake, side="left"))))
        start, width = i, 256  # about the usual distance between two events of a grid
        while start < end:
            stop = min(end, start + width)
            seg = prices[start:stop]
            hit = seg <= lo
            hit |= seg >= hi
            k = int(hit.argmax())
            if hit[k]:
                return start + k
            start = stop
            width <<= 2  # quiet stretches are long: widen the window geometrically
        return end

    async def run(self) -> None:
        engine, venue = self.engine, self.venue
        handle = engine.handle_tick
        symbol = self.symbol
        counters = engine.counters
        last_checkpoint = time.monotonic()
        for chunk in self.feed.chunks(after_ns=venue.clock_ns):
            times, prices = chunk.time_ns, chunk.price
            n = len(prices)
            if n == 0:
                continue
            if self.on_sample is not None:
                self.on_sample(times, prices)
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
            counters.ticks += n
            if self.on_progress is not None:
                self.on_progress(n)
            if time.monotonic() - last_checkpoint >= self.checkpoint_every_s:
                self.checkpoint()
                last_checkpoint = time.monotonic()
            await asyncio.sleep(0)  # let SIGINT/SIGTERM handlers run between chunks
            if self.interrupted:
                self.checkpoint()  # a clean stop: the next start resumes exactly here
                return
        self.checkpoint()

    def _verify_quiet(self, times, prices, i: int, j: int) -> None:
        """Handle ticks i..j-1, which skipping would pass over, and prove each one was quiet."""
        engine = self.engine
        c = engine.counters
        for k in range(i, j):
            before = (c.fills, c.orders_placed, c.orders_cancelled)
            engine.handle_tick(int(times[k]), int(prices[k]), None, self.symbol)
            if (c.fills, c.orders_placed, c.orders_cancelled) != before:
                raise SkipViolation(
                    f"tick {k} at {int(times[k])} price {int(prices[k])} would have been skipped "
                    f"but changed the book (fills/placed/cancelled {before} -> "
                    f"{(c.fills, c.orders_placed, c.orders_cancelled)})")
            if engine.stopping:
                return

    def checkpoint(self) -> None:
        if self.on_checkpoint is not None:
            self.on_checkpoint()
        self.venue.checkpoint()
        self.engine.flush_state()
