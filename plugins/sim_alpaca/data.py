"""What the Alpaca simulator serves, made from the replay data file.

* The stream's ticks are exactly the backtest's: ``replay_feed.FileFeed(path, symbol)`` (bars become
  four ticks, prices whole cents, bad rows skipped). :func:`iter_ticks` adds what FileFeed does not
  carry: a tick file's ``size`` column and a quote file's bid and ask (read by the same
  validation, row for row, and checked against FileFeed's times as they go).
* The historical REST endpoint serves bars: a bar file's own bars (open, high, low, close exact in
  cents; ``volume``, ``trade_count``, ``vwap`` columns when the file has them), a tick or quote
  file's ticks made into one-minute bars, aggregated to the requested timeframe (:class:`BarTable`).

Where the file does not say, the values are those the simulator's own stream shows for the bar:
four trades of 100 shares (``v`` 400, ``n`` 4, ``vw`` the mean of the four prices).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bothost_plugins.replay_feed.feed import FileFeed
from bothost_plugins.replay_feed.layout import BARS, QUOTES, TICKS, Layout
from bothost_plugins.replay_feed.reader import MAX_PRICE, Accepted, Scan, to_cents, to_float
from bothost_plugins.replay_feed.times import local_to_utc, utc_offset

NS = 1_000_000_000
MINUTE_NS = 60 * NS
DAY_NS = 86_400 * NS
TRADE_SIZE = 100  # bars carry no trade sizes: every tick is a round lot (as sim-tws reports it)

#: columns read beside the prices, by kind of file (header names, case-insensitive)
EXTRAS = {BARS: ("volume", "trade_count", "vwap"), TICKS: ("size",), QUOTES: ("bid_size", "ask_size")}


# ============================================================================ the file's rows
class _RowScan(Scan):
    """A :class:`Scan` that also returns, for the rows it accepted, extra numeric columns and (for
    quotes) the bid and ask themselves. The accepted rows are Scan's own; the row each came from
    is the earliest row with that time whose prices are valid (Scan keeps exactly that one: a later
    valid row with the same time is ``not_after_previous``)."""

    def __init__(self, layout: Layout, extras: dict[str, str], chunk_rows: int):
        self.n_prices = len(layout.price_cols)
        self.roles = tuple(extras)  # e.g. "volume", keyed by role
        # Scan reads the layout's columns; its validation only looks at the arrays it is given
        super().__init__(dataclasses.replace(layout, price_cols=layout.price_cols + tuple(extras.values())),
                         chunk_rows)

    def _validate(self, time_arrays, price_arrays):
        prices = price_arrays[:self.n_prices]
        acc = super()._validate(time_arrays, prices)  # the prices only: Scan's rules, Scan's counts
        idx = self._rows(time_arrays, prices, acc)
        extra = {}
        for name, arr in zip(self.roles, price_arrays[self.n_prices:]):
            values, ok = to_float(arr)
            values = np.where(ok, values, np.nan)[idx]
            extra[name] = values
        if self.layout.kind == QUOTES and len(idx):
            vals = [to_float(a)[0][idx] for a in price_arrays[:2]]
            extra["bid"], extra["ask"] = to_cents(vals[0]), to_cents(vals[1])
        return acc, extra

    def _rows(self, time_arrays, price_arrays, acc: Accepted) -> np.ndarray:
        if not len(acc):
            return np.zeros(0, dtype=np.int64)
        ts, ok = self._times(time_arrays)
        valid = ok.copy()
        cents = []
        for arr in price_arrays:
            v, readable = to_float(arr)
            fin = readable & np.isfinite(v) & (np.abs(np.where(readable, v, 0.0)) <= MAX_PRICE)
            valid &= fin
            cents.append(to_cents(np.where(fin, v, 1.0)))
        for c in cents:
            valid &= c > 0
        kind = self.layout.kind
        if kind == BARS:
            valid &= cents[1] >= cents[2]
        elif kind == QUOTES:
            valid &= cents[1] >= cents[0]
        cand = np.flatnonzero(valid)
        ct = ts[cand]
        order = np.argsort(ct, kind="stable")
        pos = np.searchsorted(ct[order], acc.time_ns, side="left")
        idx = cand[order[np.minimum(pos, len(order) - 1)]]
        if not np.array_equal(ts[idx], acc.time_ns):  # pragma: no cover - would be a reader change
            raise RuntimeError("sim_alpaca: the rows of the data file do not line up with the replay's")
        return idx


def _extra_columns(layout: Layout) -> dict[str, str]:
    """role -> the file's own column name, for the extra columns the file has (first of a name)."""
    have: dict[str, str] = {}
    for h in layout.header:
        have.setdefault(h.strip().lower().lstrip("\ufeff"), h)
    return {name: have[name] for name in EXTRAS[layout.kind] if name in have}


def _row_scan(path: Path, symbol: str) -> tuple[FileFeed, _RowScan]:
    feed = FileFeed(path, symbol).open()
    lay = feed.layout
    return feed, _RowScan(lay, _extra_columns(lay), feed.chunk_rows)


# ============================================================================ stream ticks
@dataclass(slots=True)
class StreamTick:
    idx: int
    t: int  # ns
    p: int  # cents
    size: int = TRADE_SIZE
    bid: int | None = None  # cents (quote files)
    ask: int | None = None
    bid_size: int = 1
    ask_size: int = 1


def _int_size(x: float, default: int) -> int:
    return int(x) if x == x and x >= 0 else default


def iter_ticks(path: Path, symbol: str) -> Iterator[StreamTick]:
    """The replay's ticks in order (FileFeed's, exactly), with sizes and bid/ask where the file has them."""
    feed, scan = _row_scan(path, symbol)
    kind = feed.layout.kind
    side = None
    if kind != BARS:
        def rows():
            for acc, extra in scan:
                if not len(acc):
                    continue
                t = acc.time_ns.tolist()
                cols = {k: v.tolist() for k, v in extra.items()}
                for i in range(len(t)):
                    yield t[i], {k: v[i] for k, v in cols.items()}
        side = rows()
    idx = 0
    for chunk in feed.chunks():
        tl, pl = chunk.time_ns.tolist(), chunk.price.tolist()
        for t, p in zip(tl, pl):
            tick = StreamTick(idx, t, p)
            if side is not None:
                row = next(side, None)
                if row is None or row[0] != t:  # pragma: no cover - the two readers disagree
                    side = None
                else:
                    x = row[1]
                    tick.size = _int_size(x.get("size", float("nan")), TRADE_SIZE)
                    if "bid" in x:
                        tick.bid, tick.ask = x["bid"], x["ask"]
                        tick.bid_size = _int_size(x.get("bid_size", float("nan")), 1)
                        tick.ask_size = _int_size(x.get("ask_size", float("nan")), 1)
            yield tick
            idx += 1


def quote_of(tick: StreamTick) -> tuple[int, int]:
    """The quote shown for a tick: a quote file's own bid and ask; else a cent either side of the
    trade (so the midpoint, rounded half up, is the trade price again)."""
    if tick.bid is not None:
        return tick.bid, tick.ask
    if tick.p > 1:
        return tick.p - 1, tick.p + 1
    return tick.p, tick.p


# ============================================================================ REST bars
@dataclass
class BarTable:
    """Bars in time order: ``t`` (ns, the bar's start), ``o h l c`` (int64 cents), ``v`` ``n`` (float64),
    ``vw`` (float64 dollars), all the same length; ``interval_ns`` the bar size (0: calendar bars)."""

    t: np.ndarray
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray  # noqa: E741
    c: np.ndarray
    v: np.ndarray
    n: np.ndarray
    vw: np.ndarray
    interval_ns: int
    unit: str = "Min"  # the calendar unit of interval (Min, Hour: fixed; Day, Week, Month: New York calendar)
    amount: int = 1

    def __len__(self) -> int:
        return len(self.t)

    def end_ns(self) -> np.ndarray:
        """When each bar is complete."""
        if self.unit in ("Min", "Hour"):
            return self.t + self.interval_ns
        nxt = np.empty_like(self.t)
        if len(self.t):
            nxt[:-1] = self.t[1:]
            nxt[-1] = _calendar_next(int(self.t[-1]), self.unit, self.amount)
        return nxt


def _calendar_next(t: int, unit: str, amount: int) -> int:
    wall = np.array([t], dtype=np.int64) + utc_offset(np.array([t], dtype=np.int64))
    w = wall[0]
    if unit == "Day":
        nxt = w + DAY_NS
    elif unit == "Week":
        nxt = w + 7 * DAY_NS
    else:
        m = np.datetime64(int(w), "ns").astype("datetime64[M]") + amount
        nxt = m.astype("datetime64[ns]").astype(np.int64)
    return int(local_to_utc(np.array([nxt], dtype=np.int64))[0])


def load_bars(path: Path, symbol: str) -> BarTable:
    """The file as bars: its own (bar files) or its ticks made into one-minute bars."""
    feed, scan = _row_scan(path, symbol)
    kind = feed.layout.kind
    ts, cols, extras = [], [[] for _ in range(4)], {}
    for acc, extra in scan:
        if not len(acc):
            continue
        ts.append(acc.time_ns)
        if kind == BARS:
            for i in range(4):
                cols[i].append(acc.prices[i])
        else:
            cols[0].append(acc.prices[0])
        for k, v in extra.items():
            extras.setdefault(k, []).append(v)
    t = np.concatenate(ts) if ts else np.zeros(0, dtype=np.int64)
    cat = {k: np.concatenate(v) for k, v in extras.items()}
    if kind == BARS:
        o, h, lo, c = (np.concatenate(x) if x else np.zeros(0, dtype=np.int64) for x in cols)
        interval = int(round((feed.stats().get("bar_interval_s") or 60) * NS))
        four = (o + h + lo + c) / 400.0
        v = cat.get("volume")
        v = np.full(len(t), 4.0 * TRADE_SIZE) if v is None else np.where(np.isnan(v), 4.0 * TRADE_SIZE, v)
        n = cat.get("trade_count")
        n = np.full(len(t), 4.0) if n is None else np.where(np.isnan(n), 4.0, n)
        vw = cat.get("vwap")
        vw = four if vw is None else np.where(np.isnan(vw), four, vw)
        unit, amount = _unit_of(interval)
        return BarTable(t, o, h, lo, c, v, n, vw, interval, unit, amount)
    # ticks or quotes: one-minute bars of the ticks
    p = np.concatenate(cols[0]) if cols[0] else np.zeros(0, dtype=np.int64)
    size = cat.get("size")
    size = np.full(len(t), float(TRADE_SIZE)) if size is None else np.where(np.isnan(size) | (size < 0),
                                                                             float(TRADE_SIZE), size)
    if kind == QUOTES:
        size = np.full(len(t), float(TRADE_SIZE))
    ticks = BarTable(t, p, p, p, p, size, np.ones(len(t)), p / 100.0, 0, "Tick", 1)
    return aggregate(ticks, t - t % MINUTE_NS, MINUTE_NS, "Min", 1)


def _unit_of(interval_ns: int) -> tuple[str, int]:
    if interval_ns % DAY_NS == 0 and interval_ns // DAY_NS in (1,):
        return "Day", 1
    if interval_ns % (3600 * NS) == 0 and interval_ns // (3600 * NS) < 24:
        return "Hour", interval_ns // (3600 * NS)
    if interval_ns % MINUTE_NS == 0:
        return "Min", interval_ns // MINUTE_NS
    return "Sec", max(1, interval_ns // NS)


def aggregate(b: BarTable, key: np.ndarray, interval_ns: int, unit: str, amount: int) -> BarTable:
    """Bars grouped by ``key`` (a bucket start per bar, non-decreasing): OHLC exact, volumes summed,
    vwap volume-weighted."""
    if len(b) == 0:
        z = np.zeros(0, dtype=np.int64)
        return BarTable(z, z, z, z, z, z.astype(float), z.astype(float), z.astype(float), interval_ns, unit, amount)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:] - 1, len(key) - 1]
    v = np.add.reduceat(b.v, starts)
    wsum = np.add.reduceat(b.vw * b.v, starts)
    mean_vw = np.add.reduceat(b.vw, starts) / np.diff(np.r_[starts, len(key)])
    with np.errstate(invalid="ignore", divide="ignore"):
        vw = np.where(v > 0, wsum / np.where(v > 0, v, 1), mean_vw)
    return BarTable(key[starts].astype(np.int64), b.o[starts], np.maximum.reduceat(b.h, starts),
                    np.minimum.reduceat(b.l, starts), b.c[ends], v, np.add.reduceat(b.n, starts), vw,
                    interval_ns, unit, amount)


# ============================================================================ timeframes
_TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNITS = {"Min": "Min", "T": "Min", "Hour": "Hour", "H": "Hour", "Day": "Day", "D": "Day", "Week": "Week",
          "W": "Week", "Month": "Month", "M": "Month"}


class TimeframeError(ValueError):
    pass


def parse_timeframe(text: str) -> tuple[int, str]:
    """Alpaca's timeframe (``1Min``, ``5T``, ``1Hour``, ``1Day``, ``1Week``, ``3Month``) -> (amount, unit)."""
    m = _TIMEFRAME.match(text or "")
    if not m:
        raise TimeframeError(f"invalid timeframe {text!r}")
    amount, unit = int(m.group(1)), _UNITS[m.group(2)]
    ok = {"Min": 1 <= amount <= 59, "Hour": 1 <= amount <= 23, "Day": amount == 1, "Week": amount == 1,
          "Month": amount in (1, 2, 3, 6, 12)}[unit]
    if not ok:
        raise TimeframeError(f"invalid timeframe {text!r}")
    return amount, unit


def resample(base: BarTable, amount: int, unit: str) -> BarTable:
    """``base`` (the file's bars) as ``amount`` ``unit`` bars. Raises TimeframeError when the file's bars
    are coarser than asked (or do not divide it)."""
    size = {"Min": MINUTE_NS, "Hour": 3600 * NS}.get(unit, 0) * amount
    base_desc = _describe(base)
    if unit in ("Min", "Hour"):
        if base.unit in ("Day", "Week", "Month") or base.interval_ns <= 0 or size % base.interval_ns:
            raise TimeframeError(f"the simulator's data has {base_desc} bars: it cannot make {amount}{unit} bars "
                                 f"of them (ask for a multiple of its bar size)")
        if size == base.interval_ns:
            return base
        return aggregate(base, base.t - base.t % size, size, unit, amount)
    if base.unit in ("Week", "Month") or (base.unit == "Sec" and DAY_NS % base.interval_ns) or \
            (base.unit in ("Min", "Hour") and DAY_NS % base.interval_ns):
        raise TimeframeError(f"the simulator's data has {base_desc} bars: it cannot make {amount}{unit} bars of them")
    if unit == "Day" and base.unit == "Day":
        return base
    wall = base.t + utc_offset(base.t)
    day = wall - wall % DAY_NS
    if unit == "Day":
        key = day
    elif unit == "Week":
        days = day // DAY_NS
        key = day - ((days + 3) % 7) * DAY_NS  # back to Monday (1970-01-01 was a Thursday)
    else:
        months = day.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
        key = ((months // amount) * amount).astype("datetime64[M]").astype("datetime64[ns]").astype(np.int64)
    return aggregate(base, local_to_utc(key), 0, unit, amount)


def _describe(b: BarTable) -> str:
    if b.unit in ("Day", "Week", "Month"):
        return f"1-{b.unit.lower()}"
    s = b.interval_ns / NS
    if s % 3600 == 0:
        return f"{int(s // 3600)}-hour"
    if s % 60 == 0:
        return f"{int(s // 60)}-minute"
    return f"{s:g}-second"
