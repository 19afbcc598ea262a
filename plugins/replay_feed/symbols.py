"""A replay of several symbols: one data file per symbol, their ticks merged in time order.

``feed: {use: replay_feed, data_by_symbol: {TQQQ: tqqq.csv, SOXL: soxl.csv}}``. Each file is
read by its own :class:`~.feed.FileFeed` (so each is checked, counted and converted exactly as a
one-symbol replay of it would be); :meth:`SymbolsFeed.runs` hands the host runs of consecutive
ticks of one symbol, in time order across the files (ties: the order the config names the
symbols), so that each run goes to that symbol's venue and strategy with the one-symbol
vectorised skipping. A one-symbol replay never comes through here.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from bothost.hookspecs import TickChunk

from .feed import FileFeed


class SymbolsFeed:
    """Several :class:`FileFeed` s, one per symbol, replayed together."""

    def __init__(self, files: dict[str, Path], chunk_rows: int, increments: dict[str, Decimal]):
        self.feeds = {symbol: FileFeed(path, symbol=symbol, chunk_rows=chunk_rows, increment=increments[symbol])
                      for symbol, path in files.items()}
        self.symbols = list(self.feeds)
        self.symbol = self.symbols[0]  # hookspecs.ReplayFeed; the ticks of the others come through runs()

    def open(self) -> SymbolsFeed:
        """Check every file (DataError names the file and line)."""
        for feed in self.feeds.values():
            feed.open()
        return self

    def chunks(self, after_ns: int | None = None) -> Iterator[TickChunk]:
        """hookspecs.ReplayFeed's one-symbol door: not how a replay of several symbols is read."""
        raise TypeError("a replay of several symbols is read with runs(), one symbol's venue at a time")

    def runs(self, after_ns: dict[str, int | None]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """``(symbol, times, prices)``: runs of one symbol's ticks, in time order over all the
        files; each symbol's ticks only after its own ``after_ns`` (a resumed replay)."""
        rank = {s: i for i, s in enumerate(self.symbols)}
        sources = {s: iter(f.chunks(after_ns=after_ns.get(s))) for s, f in self.feeds.items()}
        pending: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        def fill(symbol: str) -> None:
            for chunk in sources[symbol]:
                if len(chunk):
                    pending[symbol] = (chunk.time_ns, chunk.price)
                    return
            pending.pop(symbol, None)

        for symbol in self.symbols:
            fill(symbol)
        while pending:
            # the symbol whose next tick is first (ties: the config's order)
            symbol = min(pending, key=lambda s: (int(pending[s][0][0]), rank[s]))
            times, prices = pending[symbol]
            others = [(int(t[0]), rank[s]) for s, (t, _) in pending.items() if s != symbol]
            if others:
                t_next, r_next = min(others)
                # this symbol's ticks before the other's next one (at the same time: by rank)
                cut = int(np.searchsorted(times, t_next, side="right" if rank[symbol] < r_next else "left"))
            else:
                cut = len(times)
            cut = max(cut, 1)
            yield symbol, times[:cut], prices[:cut]
            if cut < len(times):
                pending[symbol] = (times[cut:], prices[cut:])
            else:
                fill(symbol)

    def stats(self) -> dict[str, Any]:
        """The files' counts added up; ``by_symbol`` has each file's own."""
        each = {s: f.stats() for s, f in self.feeds.items()}

        def total(key: str) -> int | None:
            values = [v.get(key) for v in each.values()]
            return None if any(v is None for v in values) else sum(values)

        reasons: dict[str, int] = {}
        for v in each.values():
            for reason, n in (v.get("bad_rows_by_reason") or {}).items():
                reasons[reason] = reasons.get(reason, 0) + n
        return {
            "source": ", ".join(f"{s} {v['source']}" for s, v in each.items()),
            "rows": total("rows"),
            "bad_rows": total("bad_rows"),
            "bad_rows_by_reason": reasons,
            "ticks": total("ticks"),
            "ticks_total": total("ticks_total"),
            "ticks_emitted": total("ticks_emitted"),
            "bar_interval_s": next(iter(each.values())).get("bar_interval_s"),
            "complete": all(v.get("complete") for v in each.values()),
            "by_symbol": each,
        }

    def describe(self) -> str:
        return "; ".join(f"{s}: {f.describe()}" for s, f in self.feeds.items())
