"""Seeded synthetic bars: geometric Brownian motion, so a run needs no data file at all.

Each bar is built from ``substeps`` steps of the log-price random walk: the open is the previous
close, the close is the last step, the high and low are the extremes of the steps (and the
open), so bars have realistic ranges. Prices are whole cents (half up) and never below 1 cent.

* ``volatility`` and ``drift`` are annualised over *trading* time: a year is 252 days of 6.5
  hours (98,280 one-minute bars), because the bars are consecutive, with no nights or weekends.
* Bars follow each other every ``interval`` seconds from ``start`` (default 2024-01-02 09:30
  New York time), with no nights: simple, and regular.
* Deterministic: the normal draws come in fixed blocks of :data:`BLOCK_BARS` bars, block ``k``
  from its own generator ``PCG64(SeedSequence(seed, spawn_key=(k,)))`` (what
  ``SeedSequence(seed).spawn`` would hand out), so the bars depend on the seed and the
  parameters only, never on the chunk size the caller asks for. Streaming: memory is one block
  and one chunk, whatever the number of bars.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np

from bothost.model import CENT

from . import arrow
from .reader import Accepted, to_units
from .textfmt import Lines
from .times import NS, parse_timestamps

TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600
BLOCK_BARS = 16_384
DEFAULT_START = "2024-01-02T09:30:00"  # naive: New York time (14:30 UTC)
DEFAULT_SUBSTEPS = 8
DEFAULT_CHUNK_BARS = 65_536
CSV_HEADER = "timestamp,open,high,low,close,volume"


def start_ns(start: str | int | datetime | None) -> int:
    """``start`` as UTC ns: ISO text (naive = New York time), a datetime, or ns already."""
    if start is None:
        start = DEFAULT_START
    if isinstance(start, datetime):
        if start.tzinfo is None:
            start = start.isoformat()
        else:
            return int(start.timestamp()) * NS + start.microsecond * 1000
    if isinstance(start, str):
        ns, ok = parse_timestamps(arrow.strings([start]))
        if not ok[0]:
            raise ValueError(f"start {start!r} is not an ISO timestamp")
        return int(ns[0])
    return int(start)


def _check(bars: int, start_price: float, volatility: float, interval: float, substeps: int) -> None:
    if bars < 0:
        raise ValueError("bars must be >= 0")
    if not (start_price > 0 and math.isfinite(start_price)):
        raise ValueError("start_price must be > 0")
    if not (volatility >= 0 and math.isfinite(volatility)):
        raise ValueError("volatility must be >= 0")
    if not interval > 0:
        raise ValueError("interval must be > 0 seconds")
    if substeps < 1:
        raise ValueError("substeps must be >= 1")


def _fold(path: np.ndarray, low: float, high: float) -> np.ndarray:
    """Reflect a log-price path into [log low, log high]: a random walk between two walls.
    Folding the free path is the reflected walk itself (a symmetric step is as likely either
    way), so it stays vectorised and the same whatever the block size."""
    a, b = math.log(low), math.log(high)
    width = b - a
    u = np.mod(path - a, 2 * width)
    return a + np.where(u <= width, u, 2 * width - u)


def _blocks(seed: int, bars: int, start_price: float, volatility: float, drift: float,
            interval: float, t0: int, substeps: int,
            band: tuple[float, float] | None = None, increment: Decimal = CENT) -> Iterator[dict[str, np.ndarray]]:
    dt = interval / substeps / TRADING_SECONDS_PER_YEAR
    mu = (drift - 0.5 * volatility * volatility) * dt
    sd = volatility * math.sqrt(dt)
    interval_ns = int(round(interval * NS))
    level = math.log(start_price)  # log price carried from block to block
    for k, first in enumerate(range(0, bars, BLOCK_BARS)):
        nb = min(BLOCK_BARS, bars - first)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(k,))))
        steps = rng.standard_normal(nb * substeps)
        steps *= sd
        steps += mu
        path = np.cumsum(steps)
        path += level
        path = path.reshape(nb, substeps)
        start = level
        level = float(path[-1, -1])  # the free (unreflected) walk is what carries on
        if band is not None:
            path = _fold(path, *band)
            start = float(_fold(np.array([start]), *band)[0])
        close = path[:, -1]
        opn = np.empty(nb)
        opn[0] = start
        opn[1:] = close[:-1]
        hi = opn.copy()
        lo = opn.copy()
        for j in range(substeps):  # column by column: faster than max(axis=1) on short rows
            np.maximum(hi, path[:, j], out=hi)
            np.minimum(lo, path[:, j], out=lo)
        volume = rng.integers(1, 100, nb, dtype=np.int64) * 100
        cents = [np.maximum(to_units(np.exp(x), increment), 1) for x in (opn, hi, lo, close)]
        yield {
            "time_ns": t0 + (first + np.arange(nb, dtype=np.int64)) * interval_ns,
            "open": cents[0],
            "high": cents[1],
            "low": cents[2],
            "close": cents[3],
            "volume": volume,
        }


def generate_bars(seed: int = 7, bars: int = 20_000, *, start_price: float = 50.0, volatility: float = 0.6,
                  drift: float = 0.0, interval: float = 60, start: str | int | datetime | None = None,
                  substeps: int = DEFAULT_SUBSTEPS, band: tuple[float, float] | None = None,
                  chunk_bars: int = DEFAULT_CHUNK_BARS, increment: Decimal = CENT) -> Iterator[dict[str, np.ndarray]]:
    """Yield chunks of ``chunk_bars`` bars (the last one shorter) as dicts of int64 arrays:
    ``time_ns`` (UTC), ``open``, ``high``, ``low``, ``close`` (cents, or units of ``increment``),
    ``volume`` (shares).
    ``band=(low, high)`` reflects the price between two walls (a range-bound market).

    The same seed and parameters give the same bars whatever ``chunk_bars`` is.
    """
    _check(bars, start_price, volatility, interval, substeps)
    if chunk_bars < 1:
        raise ValueError("chunk_bars must be >= 1")
    t0 = start_ns(start)
    pending: list[dict[str, np.ndarray]] = []
    have = 0
    if band is not None and not (0 < band[0] < start_price < band[1]):
        raise ValueError(f"band {band} must hold the start price {start_price} strictly inside it")
    for block in _blocks(seed, bars, start_price, volatility, drift, interval, t0, substeps, band, increment):
        pending.append(block)
        have += len(block["time_ns"])
        while have >= chunk_bars:
            out, pending, have = _take(pending, chunk_bars)
            yield out
    if have:
        out, pending, have = _take(pending, have)
        yield out


def _take(pending: list[dict[str, np.ndarray]], n: int):
    """The first n bars of the pending blocks, and what is left."""
    keys = pending[0].keys()
    got, rest, need = [], [], n
    for block in pending:
        m = len(block["time_ns"])
        if need >= m:
            got.append(block)
            need -= m
        elif need > 0:
            got.append({k: v[:need] for k, v in block.items()})
            rest.append({k: v[need:] for k, v in block.items()})
            need = 0
        else:
            rest.append(block)
    out = got[0] if len(got) == 1 else {k: np.concatenate([g[k] for g in got]) for k in keys}
    return out, rest, sum(len(b["time_ns"]) for b in rest)


def bar_chunks(seed: int = 7, bars: int = 20_000, **params) -> Iterator[Accepted]:
    """The generator's bars as :class:`~.reader.Accepted` chunks (open, high, low, close): the
    same shape the file reader produces, so the same bar -> tick step serves both."""
    for b in generate_bars(seed, bars, **params):
        yield Accepted(b["time_ns"], (b["open"], b["high"], b["low"], b["close"]))


def write_csv(path: str | Path, *, seed: int = 7, bars: int = 20_000, start_price: float = 50.0,
              volatility: float = 0.6, drift: float = 0.0, interval: int = 60,
              start: str | int | datetime | None = None, substeps: int = DEFAULT_SUBSTEPS,
              band: tuple[float, float] | None = None, chunk_bars: int = DEFAULT_CHUNK_BARS) -> int:
    """Write a bars CSV: ``timestamp,open,high,low,close,volume``, ISO timestamps in New York
    time with their offset (``2024-01-02T09:30:00-05:00``), prices with two decimals. Returns
    the number of bars. Reading it back gives exactly the generator's bars.

    The text is built chunk by chunk as a byte matrix (see :mod:`.textfmt`), streamed to a
    temporary file next to ``path`` and renamed, so a reader never sees half a file.
    """
    if interval != int(interval):
        raise ValueError("write_csv writes whole-second timestamps: interval must be whole seconds")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    n = 0
    try:
        with open(tmp, "wb") as out:
            out.write((CSV_HEADER + "\n").encode())
            for b in generate_bars(seed, bars, start_price=start_price, volatility=volatility, drift=drift,
                                   interval=interval, start=start, substeps=substeps, band=band,
                                   chunk_bars=chunk_bars):
                lines = Lines(len(b["time_ns"])).iso_local(b["time_ns"])
                for key in ("open", "high", "low", "close"):
                    lines.cents(b[key])
                out.write(lines.uint(b["volume"]).bytes())
                n += len(b["time_ns"])
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n
