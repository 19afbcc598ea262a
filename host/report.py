"""What a run leaves behind: fills.csv, summary.json and equity.png.

Everything here is computed from the venue's executions (never from a strategy's memory), so
a run that was killed and resumed writes the same fills.csv as one that never stopped.
"""

from __future__ import annotations

import csv
import json
import os
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from .model import CENT, Fill, Side, realized_pnl, units_to_price

FILLS_HEADER = ["time", "symbol", "side", "level", "quantity", "price", "commission", "order_id", "order_ref"]
EXCHANGE_TZ = ZoneInfo("America/New_York")


def money(value: Decimal) -> str:
    """Cents when exact (1.00), all digits otherwise (0.0125): never a silent rounding."""
    q = value.quantize(CENT)
    return str(q) if q == value else str(value.normalize())


class LiveSampler:
    """Live ticks arrive one at a time: batch them into chunks for a :class:`PriceSampler`."""

    def __init__(self, sampler: PriceSampler, batch: int = 4096):
        self.sampler = sampler
        self.batch = batch
        self.times: list[int] = []
        self.prices: list[int] = []

    def add(self, time_ns: int, price: int) -> None:
        self.times.append(time_ns)
        self.prices.append(price)
        if len(self.times) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.times:
            self.sampler(np.array(self.times, dtype=np.int64), np.array(self.prices, dtype=np.int64))
            self.times, self.prices = [], []


class PriceSampler:
    """Keeps a bounded picture of the price path: the min and max of fixed buckets per chunk."""

    def __init__(self, per_chunk: int = 256):
        self.per_chunk = per_chunk
        self.times: list[np.ndarray] = []
        self.prices: list[np.ndarray] = []
        self.last: tuple[int, int] | None = None  # the newest tick (time_ns, price units): the mark

    def __call__(self, times: np.ndarray, prices: np.ndarray) -> None:
        n = len(prices)
        if n == 0:
            return
        if self.last is None or int(times[-1]) >= self.last[0]:
            self.last = (int(times[-1]), int(prices[-1]))
        buckets = max(1, min(self.per_chunk, n // 2))
        edges = np.linspace(0, n, buckets + 1).astype(np.int64)
        lo = np.minimum.reduceat(prices, edges[:-1])
        hi = np.maximum.reduceat(prices, edges[:-1])
        self.times.append(np.repeat(times[edges[:-1]], 2))
        self.prices.append(np.column_stack([lo, hi]).ravel())

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.times:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(self.times), np.concatenate(self.prices)

    def save(self, path: Path) -> None:
        """Kept in the state folder so that a resumed run still plots (and measures) the whole run."""
        t, p = self.arrays()
        self.times, self.prices = [t], [p]
        tmp = path.with_name(path.name + ".tmp.npz")
        last = np.asarray(self.last if self.last is not None else (), dtype=np.int64)
        np.savez(tmp, t=t, p=p, last=last)
        os.chmod(tmp, 0o600)  # a state file, private like the rest
        os.replace(tmp, path)

    def load(self, path: Path, upto_ns: int | None) -> None:
        try:
            with np.load(path) as data:
                t, p = data["t"], data["p"]
                last = data["last"] if "last" in data.files else np.empty(0, np.int64)
        except (OSError, KeyError, ValueError):
            return  # only a picture is lost: the fills come from the venue
        keep = t <= upto_ns if upto_ns is not None else np.zeros(len(t), bool)
        self.times, self.prices = [t[keep]], [p[keep]]
        if len(last) == 2 and upto_ns is not None and int(last[0]) <= upto_ns:
            self.last = (int(last[0]), int(last[1]))


class FillPoints:
    """Fill markers for the plot, (time_ns, price) per fill, in two flat arrays: a list of
    tuples would hold ~150 bytes a fill, and a long run has millions of fills."""

    __slots__ = ("t", "p")

    def __init__(self) -> None:
        self.t = array("q")
        self.p = array("d")

    def append(self, point: tuple[int, float]) -> None:
        self.t.append(point[0])
        self.p.append(point[1])

    def __len__(self) -> int:
        return len(self.t)


class Levels:
    """fills.csv's level per fill: integers in a flat array (None as a sentinel), a plain list
    only if a strategy describes a level that is not a small integer."""

    __slots__ = ("items",)
    _NONE = -(1 << 63)

    def __init__(self) -> None:
        self.items: Any = array("q")

    def append(self, level: Any) -> None:
        items = self.items
        if type(items) is array:
            if level is None:
                items.append(self._NONE)
                return
            if type(level) is int and self._NONE < level < (1 << 63):
                items.append(level)
                return
            self.items = items = [None if v == self._NONE else v for v in items]
        items.append(level)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        items = self.items
        if type(items) is not array:
            return iter(items)
        none = self._NONE
        return (None if v == none else v for v in items)


@dataclass
class FillStats:
    buy_fills: int = 0
    sell_fills: int = 0
    round_trips: int = 0
    realized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    peak_capital: Decimal = Decimal(0)
    open_cost: Decimal = Decimal(0)  # what the shares still held cost (per lot where tags say)
    cash_exact: Decimal = Decimal(0)  # every fill's cash, after fees, from zero
    # One entry per fill, in flat arrays (memory stays small for millions of fills).
    times: array = field(default_factory=lambda: array("q"))
    positions: array = field(default_factory=lambda: array("q"))
    cash: array = field(default_factory=lambda: array("d"))  # after fees, dollars
    capital: array = field(default_factory=lambda: array("d"))
    buys: FillPoints = field(default_factory=FillPoints)
    sells: FillPoints = field(default_factory=FillPoints)
    levels: Levels = field(default_factory=Levels)  # per fill, for fills.csv
    last_position: int = 0  # shares held after the last fill
    #: (sample times ascending, position, cash, capital at each): the same as the per-fill
    #: series above read at those times, kept instead of them (bothost.fill_columns)
    at_samples: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None


def collect_fills(fills: Iterable[Fill], describe: Callable[[str], dict | None],
                  row: Callable[[Fill, Any], None] | None = None) -> FillStats:
    """One pass over the executions: counts, P&L per lot, and the series the plot needs;
    ``row(fill, level)`` is called for each one when given (fills.csv in the same pass).

    A SELL whose tag names its lot's purchase price books ``qty x (sell - purchase)``; one that
    does not (a foreign or legacy order) books against the position's average cost.
    Money stays Decimal (exact); the per-fill series for the plot are floats.
    """
    stats = FillStats()
    position, cost, cash = 0, Decimal(0), Decimal(0)
    realized, fees, peak = Decimal(0), Decimal(0), Decimal(0)
    buys = sells = trips = 0
    cache: dict[str, tuple] = {}
    add_level, add_time, add_pos = stats.levels.append, stats.times.append, stats.positions.append
    add_cash, add_cap = stats.cash.append, stats.capital.append
    buy_t, buy_p, sell_t, sell_p = stats.buys.t.append, stats.buys.p.append, stats.sells.t.append, stats.sells.p.append
    BUY = Side.BUY
    for f in fills:
        ref = f.ref
        hit = cache.get(ref)
        if hit is None:
            info = describe(ref) if ref else None
            purchase = info.get("purchase") if info else None
            hit = (None if not info else info.get("level"), None if purchase is None else Decimal(purchase))
            if len(cache) < 65536:  # a SELL's tag is unique to its lot: a bounded memo, not a record
                cache[ref] = hit
        add_level(hit[0])
        if row is not None:
            row(f, hit[0])
        commission = f.commission
        fees += commission
        qty, price = f.quantity, f.price
        if f.side is BUY:
            buys += 1
            position += qty
            value = qty * price
            cost += value
            cash -= value
            buy_t(f.time_ns)
            buy_p(float(price))
            if cost > peak:
                peak = cost
        else:
            sells += 1
            purchase = hit[1]
            if purchase is None:
                purchase = cost / position if position else price
            realized += realized_pnl(qty, price, purchase)
            if position:
                cost -= qty * purchase
            position -= qty
            cash += qty * price
            if f.order_filled >= f.order_quantity:
                trips += 1
            sell_t(f.time_ns)
            sell_p(float(price))
            if cost > peak:
                peak = cost
        cash -= commission
        add_time(f.time_ns)
        add_pos(position)
        add_cash(float(cash))
        add_cap(float(cost))
    stats.buy_fills, stats.sell_fills, stats.round_trips = buys, sells, trips
    stats.last_position = position
    stats.realized_pnl, stats.fees, stats.peak_capital = realized, fees, peak
    stats.open_cost = cost
    stats.cash_exact = cash
    return stats


@dataclass(frozen=True)
class Mark:
    """The open position marked to the last price: what realized P&L alone does not say."""

    last_price: Decimal | None
    open_cost: Decimal
    market_value: Decimal | None
    unrealized_pnl: Decimal | None

    @classmethod
    def of(cls, shares: int, open_cost: Decimal, last_units: int | None, increment: Decimal = CENT) -> Mark:
        """``last_units``: the last price in units of the symbol's increment (cents by default)."""
        if last_units is None:
            return cls(None, open_cost, None, None if shares else Decimal(0))
        price = Decimal(last_units) / 100 if increment == CENT else units_to_price(last_units, increment)
        value = shares * price
        return cls(price, open_cost, value, value - open_cost)


class _IsoTimes:
    """ISO 8601 in exchange time with its offset; the zone is looked up once per hour and the
    date text made once per day, not per fill."""

    def __init__(self, tz: ZoneInfo = EXCHANGE_TZ):
        self.tz = tz
        self.offsets: dict[int, tuple[int, str]] = {}
        self.days: dict[int, str] = {}

    def _offset(self, hour: int) -> tuple[int, str]:
        off = self.offsets.get(hour)
        if off is None:
            stamp = datetime.fromtimestamp(hour * 3600, self.tz)
            delta = int(stamp.utcoffset().total_seconds())
            off = self.offsets[hour] = (delta, stamp.isoformat()[19:])
        return off

    def many(self, times: Sequence[int]) -> list[str]:
        """``[self(t) for t in times]``, with numpy doing the calendar (fills.csv of a long
        replay has a million times to write)."""
        t = np.asarray(times, dtype=np.int64)
        if len(t) == 0:
            return []
        seconds, nanos = np.divmod(t, 1_000_000_000)
        hours, where = np.unique(seconds // 3600, return_inverse=True)
        offs = [self._offset(int(h)) for h in hours]
        local = seconds + np.array([o[0] for o in offs], dtype=np.int64)[where]
        if local.min() < _YEAR_1000 or local.max() >= _YEAR_10000:
            return [self(int(v)) for v in t]  # four-digit years only: strftime's and numpy's differ outside
        base = np.datetime_as_string(local.astype("datetime64[s]"), unit="s").tolist()
        suffixes = [o[1] for o in offs]
        out = [b + suffixes[w] for b, w in zip(base, where.tolist())]
        for i in np.flatnonzero(nanos).tolist():
            out[i] = f"{base[i]}.{int(nanos[i]) // 1000:06d}{suffixes[where[i]]}"
        return out

    def __call__(self, time_ns: int) -> str:
        seconds, nanos = divmod(time_ns, 1_000_000_000)
        off = self._offset(seconds // 3600)
        day, second = divmod(seconds + off[0], 86400)
        date = self.days.get(day)
        if date is None:
            date = self.days[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
        minute, s = divmod(second, 60)
        h, m = divmod(minute, 60)
        text = f"{date}{h:02d}:{m:02d}:{s:02d}"
        if nanos:
            text += f".{nanos // 1000:06d}"
        return text + off[1]


_YEAR_1000 = -30610224000  # 1000-01-01T00:00:00, seconds since the epoch
_YEAR_10000 = 253402300800  # 10000-01-01T00:00:00


def iso_time(time_ns: int) -> str:
    return _IsoTimes()(time_ns)


class _Memo(dict):
    """``fn(value)`` remembered by value, for the few prices and commissions a run repeats.
    Zero is never remembered: -0 and 0 are equal keys but print differently."""

    def __init__(self, fn: Callable[[Decimal], str], most: int = 65536):
        super().__init__()
        self.fn, self.most = fn, most

    def __missing__(self, value: Decimal) -> str:
        text = self.fn(value)
        if value and len(self) < self.most:
            self[value] = text
        return text


def fill_price_text(value: Decimal) -> str:
    """A fill price as fills.csv writes it: two decimals when it is whole cents (97.00), else
    every decimal it has (a 0.0001 instrument's 49.9988): never rounded. Equal prices print the
    same (the memo of printed prices is keyed by value)."""
    return f"{value:.2f}" if value == value.quantize(CENT) else f"{value.normalize():f}"


class FillsCsv:
    """fills.csv being written: one row per execution in order, formatted here and handed to the
    csv writer in batches, into a temp file that :meth:`close` renames into place."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.iso = _IsoTimes()
        self.price_text = _Memo(fill_price_text)
        self.money_text = _Memo(money)
        self.fh = open(self.tmp, "w", newline="", buffering=1 << 20)
        self.out = csv.writer(self.fh, lineterminator="\n")
        self.out.writerow(FILLS_HEADER)
        self.batch: list[list] = []

    def add(self, f: Fill, level: Any) -> None:
        batch = self.batch
        batch.append([self.iso(f.time_ns), f.symbol, f.side.value, "" if level is None else level, f.quantity,
                      self.price_text[f.price], self.money_text[f.commission], f.order_id, f.ref])
        if len(batch) >= 4096:
            self.out.writerows(batch)
            batch.clear()

    def close(self) -> None:
        self.out.writerows(self.batch)
        self.batch.clear()
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abandon(self) -> None:
        """Stops without renaming: a half-written temp file never becomes fills.csv."""
        self.fh.close()


def write_fills(path: Path, fills: Iterable[Fill], levels: Iterable[int | None] | None = None, *,
                describe: Callable[[str], dict | None] | None = None) -> FillStats | None:
    """fills.csv, one row per execution in order, streamed to a temp file then renamed.

    Each row's level comes from ``levels`` (one per fill), or, given ``describe`` instead, from
    :func:`collect_fills` run in the same pass: the executions are read once for both fills.csv
    and the summary's stats, which are returned."""
    rows = FillsCsv(path)
    try:
        if describe is not None:
            stats = collect_fills(fills, describe, rows.add)
        else:
            stats = None
            levels = iter(levels)
            add = rows.add
            for f in fills:
                level = next(levels, _END)
                if level is _END:
                    raise ValueError("write_fills: fewer levels than fills")
                add(f, level)
            if next(levels, _END) is not _END:
                raise ValueError("write_fills: more levels than fills")
    except BaseException:
        rows.abandon()
        raise
    rows.close()
    return stats


_END = object()


def equity_curve(stats: FillStats, sample_t: np.ndarray, sample_p: np.ndarray, increment: Decimal = CENT):
    """Equity (P&L after fees, marked to the price) and capital committed at each sample.
    ``sample_p`` counts units of ``increment`` (cents by default); the prices returned are floats."""
    order = np.argsort(sample_t, kind="stable")
    t, p = sample_t[order], (sample_p[order] / 100.0 if increment == CENT else sample_p[order] * float(increment))
    if stats.at_samples is not None:
        at_t, pos, cash, cap = stats.at_samples
        if not np.array_equal(at_t, t):
            raise ValueError("equity_curve: the stats were kept at other sample times than these")
    elif len(stats.times):
        ft = np.asarray(stats.times, dtype=np.int64)
        idx = np.searchsorted(ft, t, side="right") - 1
        pos = np.where(idx >= 0, np.asarray(stats.positions)[idx.clip(0)], 0)
        cash = np.where(idx >= 0, np.asarray(stats.cash)[idx.clip(0)], 0.0)
        cap = np.where(idx >= 0, np.asarray(stats.capital)[idx.clip(0)], 0.0)
    else:
        pos, cash, cap = np.zeros(len(t)), np.zeros(len(t)), np.zeros(len(t))
    return t, p, cash + pos * p, cap


def max_drawdown(equity: np.ndarray) -> float:
    if len(equity) == 0:
        return 0.0
    return float(np.max(np.maximum.accumulate(equity) - equity))


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
