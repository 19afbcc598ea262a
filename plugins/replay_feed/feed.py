"""The replay feed objects the engine pulls ticks from: a data file, or the seeded generator.

Both satisfy :class:`bothost.hookspecs.ReplayFeed`: ``symbol``, ``chunks(after_ns=None)`` (tick
chunks in time order, only those strictly after ``after_ns`` when resuming) and ``stats()``;
plus ``open()`` (check the file before the run starts: raises :class:`DataError`) and
``describe()``.

A bar file is read twice, both passes streaming: the first (at ``open()``) finds the bar
interval, which needs the whole file (the most common gap between accepted bars), and counts the
bad rows; the second turns bars into ticks. A tick or quote file needs one pass: its counts are
complete once ``chunks()`` has been iterated to the end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from bothost.hookspecs import TickChunk
from bothost.model import CENT

from .bars import DEFAULT_INTERVAL_NS, GapCounter, ticks_from_bars
from .errors import DataError
from .layout import BARS, NO_ROWS_HINT, QUOTES, REASON_WORDS, REASONS, Layout, inspect
from .reader import DEFAULT_CHUNK_ROWS, Counts, Scan
from .synthetic import DEFAULT_SUBSTEPS, bar_chunks, start_ns
from .times import NS


def _seconds(ns: int | None) -> int | float | None:
    if ns is None:
        return None
    return ns // NS if ns % NS == 0 else ns / NS


def _interval_text(ns: int) -> str:
    s = _seconds(ns)
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if isinstance(s, int) and s % size == 0:
            return f"{s // size}-{unit}"
    return f"{s}-second"


def _first_row_line(path: Path) -> int:
    """The line of the first non-blank line after the header (2 unless blank lines come first)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return 2
    lines = re.split(rb"\r\n|\n|\r", head)
    for i, line in enumerate(lines[1:], 2):
        if line.strip():
            return i
    return 2


def _after(source: Iterator[tuple[np.ndarray, np.ndarray]], after_ns: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Drop the ticks at or before ``after_ns`` (the ticks come in time order)."""
    for t, p in source:
        if after_ns is not None:
            if len(t) == 0 or t[-1] <= after_ns:
                continue
            if t[0] <= after_ns:
                k = int(np.searchsorted(t, after_ns, side="right"))
                t, p = t[k:], p[k:]
            after_ns = None  # everything from here on is later
        if len(t):
            yield t, p


class _Feed:
    symbol: str

    def __init__(self, symbol: str, increment: Decimal = CENT):
        self.symbol = symbol
        #: the chunks' prices count units of this (the symbol's instrument; cents by default)
        self.increment = increment
        self._emitted = 0

    def _emit(self, source, after_ns: int | None) -> Iterator[TickChunk]:
        self._emitted = 0
        for t, p in _after(source, after_ns):
            self._emitted += len(t)
            yield TickChunk(time_ns=t, price=p)


class FileFeed(_Feed):
    """Ticks from a CSV or Parquet file of bars, ticks or quotes (see :mod:`.reader`)."""

    def __init__(self, path: str | Path, symbol: str = "TQQQ", chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 increment: Decimal = CENT):
        super().__init__(symbol, increment)
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be >= 1")
        self.path = Path(path)
        self.chunk_rows = int(chunk_rows)
        self.layout: Layout | None = None
        self._counts: Counts | None = None  # complete counts of the whole file, once known
        self._partial: Counts | None = None  # counts of a pass under way
        self._interval_ns: int | None = None
        self._first_ns: int | None = None
        self._last_ns: int | None = None
        self._ticks_total: int | None = None
        self._typed: bool | None = None  # how the survey read the file (see reader.Scan)
        self._checked = False  # a tick/quote file: a good row was seen by open()

    # -- set-up ----------------------------------------------------------------------------

    def open(self) -> FileFeed:
        """Check the file (exists, CSV or Parquet, usable header, at least one good row) and,
        for bars, read it once to find the bar interval and count the bad rows. Raises
        DataError. Idempotent."""
        if self.layout is None:
            self.layout = inspect(self.path)
        if self.layout.kind == BARS:
            if self._counts is None:
                self._survey()
            if self._counts.accepted == 0:
                raise self._no_rows(self._counts)
        else:
            # A tick or quote file is read once, during the run; here only as far as its first
            # good row, so that a file with none is bad input before anything starts.
            self.check()
        return self

    def check(self) -> FileFeed:
        """The quick look (what config validation does): the header is usable and some row is
        good; reads only as far as the first good row. Raises DataError."""
        if self.layout is None:
            self.layout = inspect(self.path)
        if not self._checked:
            scan = Scan(self.layout, self.chunk_rows, increment=self.increment)
            if not any(len(acc) for acc in scan):
                raise self._no_rows(scan.counts)
            self._checked = True
        return self

    def _no_rows(self, counts: Counts) -> DataError:
        """The file has a header and not one usable row."""
        line = 1 if self.layout.fmt == "parquet" else _first_row_line(self.path)
        if counts.rows == 0:
            return DataError("no data rows: the file has a header and nothing else", self.path, 1,
                             hint=NO_ROWS_HINT)
        reasons = ", ".join(f"{n:,} {REASON_WORDS.get(r, r)}" for r, n in counts.by_reason.items() if n)
        every = "the only row was" if counts.rows == 1 else f"all {counts.rows:,} rows were"
        return DataError(
            f"no data rows: {every} skipped ({reasons})", self.path, line,
            hint=f"a usable {self.layout.kind[:-1]} row has a readable time later than the row before it and "
                 f"finite prices above 0{' with high >= low' if self.layout.kind == BARS else ''}"
                 f"{' with ask >= bid' if self.layout.kind == QUOTES else ''}; the header is "
                 f"{','.join(self.layout.header)[:120]}")

    def _survey(self) -> None:
        scan = Scan(self.layout, self.chunk_rows, increment=self.increment)
        self._partial = scan.counts
        gaps = GapCounter()
        first = last = None
        for acc in scan:
            if len(acc):
                gaps.add(acc.time_ns)
                if first is None:
                    first = int(acc.time_ns[0])
                last = int(acc.time_ns[-1])
        self._interval_ns = gaps.mode() or DEFAULT_INTERVAL_NS
        self._typed = scan.typed
        self._counts = scan.counts
        self._partial = None
        self._first_ns = first
        self._last_ns = None if last is None else last + (3 * self._interval_ns) // 4
        self._ticks_total = 4 * scan.counts.accepted

    # -- the protocol ----------------------------------------------------------------------

    def chunks(self, after_ns: int | None = None) -> Iterator[TickChunk]:
        """Ticks in time order, only those strictly after ``after_ns`` when given. The whole file
        is read either way, so the bad-row counts always describe all of it."""
        self.open()
        scan = Scan(self.layout, self.chunk_rows, typed=self._typed, increment=self.increment)
        if self.layout.kind == BARS:
            source = ticks_from_bars(scan, self._interval_ns)
            yield from self._emit(source, after_ns)
            return
        self._partial = scan.counts
        state = {"first": None, "last": None}

        def ticks():
            for acc in scan:
                if len(acc):
                    if state["first"] is None:
                        state["first"] = int(acc.time_ns[0])
                    state["last"] = int(acc.time_ns[-1])
                    yield acc.time_ns, acc.prices[0]

        yield from self._emit(ticks(), after_ns)
        self._counts = scan.counts
        self._partial = None
        self._first_ns, self._last_ns = state["first"], state["last"]
        self._ticks_total = scan.counts.accepted

    def stats(self) -> dict[str, Any]:
        """Counts for the summary. ``complete`` says whether the counts cover the whole file
        (always after ``open()`` for bars; after ``chunks()`` ran to the end for ticks/quotes)."""
        lay = self.layout
        counts = self._counts or self._partial or Counts(REASONS[lay.kind] if lay else ())
        return {
            "source": str(self.path),
            "format": lay.fmt if lay else None,
            "kind": lay.kind if lay else None,
            "rows": counts.rows,
            "bad_rows": counts.bad,
            "bad_rows_by_reason": dict(counts.by_reason),
            "ticks": self._ticks_total,
            "ticks_total": self._ticks_total,
            "ticks_emitted": self._emitted,
            "bar_interval_s": _seconds(self._interval_ns),
            "first_ns": self._first_ns,
            "last_ns": self._last_ns,
            "complete": self._counts is not None,
        }

    def describe(self) -> str:
        lay = self.layout
        if lay is None:
            return f"replay of {self.path}"
        what = f"{lay.fmt.upper() if lay.fmt == 'csv' else 'Parquet'} {lay.kind} {self.path}"
        if self._counts is None:
            return what
        c = self._counts
        parts = [f"{c.rows:,} rows"]
        if self._interval_ns is not None:
            parts.append(f"{_interval_text(self._interval_ns)} bars")
        parts.append(f"{c.bad:,} bad rows skipped" if c.bad else "no bad rows")
        return f"{what} ({', '.join(parts)})"


class SyntheticFeed(_Feed):
    """Ticks from the seeded geometric Brownian motion generator (see :mod:`.synthetic`)."""

    def __init__(self, seed: int = 7, bars: int = 20_000, *, start_price: float = 50.0, volatility: float = 0.6,
                 drift: float = 0.0, interval: int = 60, start=None, substeps: int = DEFAULT_SUBSTEPS,
                 symbol: str = "TQQQ", chunk_rows: int = DEFAULT_CHUNK_ROWS, increment: Decimal = CENT):
        super().__init__(symbol, increment)
        self.params = dict(start_price=start_price, volatility=volatility, drift=drift, interval=interval,
                           start=start, substeps=substeps, increment=increment)
        self.seed = int(seed)
        self.bars = int(bars)
        self.chunk_rows = int(chunk_rows)
        self._interval_ns = int(round(interval * NS))
        self._start_ns = start_ns(start)

    def open(self) -> SyntheticFeed:
        return self

    def chunks(self, after_ns: int | None = None) -> Iterator[TickChunk]:
        source = ticks_from_bars(bar_chunks(self.seed, self.bars, chunk_bars=self.chunk_rows, **self.params),
                                 self._interval_ns)
        yield from self._emit(source, after_ns)

    @property
    def source(self) -> str:
        return f"synthetic(seed={self.seed}, bars={self.bars})"

    def stats(self) -> dict[str, Any]:
        last_bar = self._start_ns + (self.bars - 1) * self._interval_ns
        return {
            "source": self.source,
            "format": "synthetic",
            "kind": BARS,
            "rows": self.bars,
            "bad_rows": 0,
            "bad_rows_by_reason": dict.fromkeys(REASONS[BARS], 0),
            "ticks": 4 * self.bars,
            "ticks_total": 4 * self.bars,
            "ticks_emitted": self._emitted,
            "bar_interval_s": _seconds(self._interval_ns),
            "first_ns": self._start_ns if self.bars else None,
            "last_ns": last_bar + (3 * self._interval_ns) // 4 if self.bars else None,
            "complete": True,
        }

    def describe(self) -> str:
        p = self.params
        return (f"synthetic GBM bars: seed {self.seed}, {self.bars:,} {_interval_text(self._interval_ns)} bars "
                f"from ${p['start_price']:,.2f}, volatility {p['volatility']:.0%} a year, drift {p['drift']:.0%}")
