"""fills.csv and the run's fill statistics from executions a chunk of columns at a time.

The row path (:func:`bothost.report.collect_fills` over :class:`~bothost.model.Fill` objects) is
the definition; this is the same computation for a broker that hands its executions over as
columns (:class:`~bothost.hookspecs.KeepsExecutionColumns`, the simulated venue), done in whole
integer units of money instead of a Decimal per fill: a range-bound replay has one execution
every few bars, and reading them back one object at a time was a fifth of its run.

Exactness is kept where money leaves: every price is a whole number of cents, every commission a
whole number of its own smallest digit, so the sums are integers and the Decimals built from them
at the end equal the row path's (value *and* exponent, which ``str`` shows). A run this cannot
express exactly (a price not written as whole cents with two decimals, a SELL whose tag names no
such purchase, a SELL with nothing held) raises :class:`NotColumnar` and the caller takes the row path instead.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from .model import ExecutionColumns, Side
from .report import FILLS_HEADER, FillStats, _IsoTimes, _Memo, fill_price_text, money

BUY = Side.BUY


_INT64_SAFE = 1 << 62
_FLOAT_EXACT = 1 << 53


class NotColumnar(Exception):
    """These executions need the row path's Decimal arithmetic (see the module's docstring)."""


def _cents(value: Decimal) -> int:
    """A price as whole cents; NotColumnar if it is not one."""
    cents = value * 100
    if not cents.is_finite() or cents != cents.to_integral_value():
        raise NotColumnar(f"price {value} is not whole cents")
    return int(cents)


def _two(value: Decimal) -> Decimal:
    """``value`` if it is written with exactly two decimals (97.00, as the venue keeps prices);
    else NotColumnar: the row path's Decimal sums would carry another exponent."""
    if not isinstance(value, Decimal) or value.as_tuple().exponent != -2:
        raise NotColumnar(f"price {value} is not written with two decimals")
    return value


class _CentsMemo(dict):
    def __missing__(self, value: Decimal) -> int:
        cents = _cents(value)
        if len(self) < 65536:  # bounded: daily bars over years are many distinct prices
            self[value] = cents
        return cents


def write_fills_columns(path: Path, chunks: Iterable[ExecutionColumns], describe: Callable[[str], dict | None],
                        sample_times: np.ndarray | None = None, markers: int = 5000) -> FillStats:
    """fills.csv (byte for byte what :func:`bothost.report.write_fills` writes) and the
    :class:`~bothost.report.FillStats` of :func:`bothost.report.collect_fills`, in one pass over
    ``chunks``. Streamed to a temp file renamed into place; on NotColumnar (or any failure) the
    temp file is removed and fills.csv is left as it was.

    Given ``sample_times`` (the price picture's times, ascending), nothing per fill is kept: the
    position, cash and capital are kept at those times instead (``FillStats.at_samples``, what
    :func:`bothost.report.equity_curve` reads off the per-fill series otherwise), and the fill
    markers of the picture are thinned as they come (to at most ``2 x markers`` a side). Memory
    then stays flat however many fills."""
    tmp = path.with_name(path.name + ".tmp")
    fh = open(tmp, "w", newline="", buffering=1 << 20)
    try:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(FILLS_HEADER)
        stats = _collect(chunks, describe, lambda *columns: _write_rows(fh, out, columns), sample_times, markers)
    except BaseException:
        fh.close()
        os.unlink(tmp)
        raise
    fh.close()
    os.replace(tmp, path)
    return stats


class _Thinned:
    """A picture's fill markers kept to at most ``2 * most`` however many fills come: every
    ``stride``-th one, the stride doubling (and every other kept one dropped) when full. The
    plot thins them to ``most`` evenly in the end (plot.fill_points)."""

    def __init__(self, points: Any, most: int = 5000):
        self.points, self.most = points, most
        self.stride, self.seen = 1, 0

    def add(self, t: np.ndarray, p: np.ndarray) -> None:
        first = (-self.seen) % self.stride  # the index in this batch of the next one kept
        self.seen += len(t)
        self.points.t.frombytes(t[first::self.stride].tobytes())
        self.points.p.frombytes(p[first::self.stride].tobytes())
        while len(self.points.t) > 2 * self.most:
            self.points.t, self.points.p = self.points.t[::2], self.points.p[::2]
            self.stride *= 2


_NEEDS_QUOTES = (",", '"', "\n", "\r")


def _write_rows(fh: Any, out: Any, columns: tuple) -> None:
    """The rows of ``columns`` as the csv writer writes them: joined here when no field needs
    quoting (four times faster than the writer), through the writer otherwise."""
    plain = all(type(v) is int or v == "" for v in columns[3])  # level: an int, or none
    if plain:
        for i in (1, 7, 8):  # symbol, order_id, order_ref: the texts a broker or strategy chose
            text = "\x00".join(columns[i])
            if any(c in text for c in _NEEDS_QUOTES):
                plain = False
                break
    if not plain:
        out.writerows(zip(*columns))
        return
    fh.write("".join([f"{a},{b},{c},{d},{e},{f},{g},{h},{i}\n" for a, b, c, d, e, f, g, h, i in zip(*columns)]))


def _collect(chunks: Iterable[ExecutionColumns], describe: Callable[[str], dict | None],
             write: Callable[..., None], sample_times: np.ndarray | None = None, most: int = 5000) -> FillStats:
    stats = FillStats()
    flat = sample_times is not None  # keep the series at the samples, not per fill
    if flat:
        st = np.asarray(sample_times, dtype=np.int64)
        at_pos, at_cash, at_cap = np.zeros(len(st), np.int64), np.zeros(len(st)), np.zeros(len(st))
        markers = {True: _Thinned(stats.buys, most), False: _Thinned(stats.sells, most)}
    refs: dict[str, tuple] = {}  # ref -> (level, purchase in cents or None), bounded as the row path's
    cents = _CentsMemo()
    iso = _IsoTimes()
    price_text = _Memo(fill_price_text)
    money_text = _Memo(money)
    fee_counts: Counter[Decimal] = Counter()
    # Running totals in cents (the cash in `scale` units, once the commissions are known).
    position = cost = peak = realized = 0
    buys = sells = trips = 0
    cash_flow = 0  # Σ sells - Σ buys, cents (before fees)
    fees_units = 0  # Σ commissions in units of 10^-fee_digits dollars
    fee_digits = 2
    fee_units: dict[Decimal, int] = {}
    fee_exp = 0  # the smallest exponent of the commissions (and of Decimal(0), where sums start)
    any_fill = False
    levels, times, positions, cash_series, capital = (stats.levels, stats.times, stats.positions, stats.cash,
                                                      stats.capital)
    for chunk in chunks:
        n = len(chunk.time_ns)
        if n == 0:
            continue
        any_fill = True
        info = []
        for ref in chunk.ref:
            hit = refs.get(ref)
            if hit is None:
                d = describe(ref) if ref else None
                purchase = d.get("purchase") if d else None
                hit = (None if not d else d.get("level"), None if purchase is None else _cents(_two(Decimal(purchase))))
                if len(refs) < 65536:
                    refs[ref] = hit
            info.append(hit)
        for v in {id(v): v for v in chunk.price}.values():  # each distinct object once
            _two(v)
        for c in {id(c): c for c in chunk.commission}.values():
            exp = c.as_tuple().exponent if isinstance(c, Decimal) else None
            if isinstance(exp, int):
                fee_exp = min(fee_exp, exp)  # the row path's sums carry the smallest exponent
        price_c = [cents[p] for p in chunk.price]
        for c in chunk.commission:
            if c not in fee_units:
                if c is None or not c.is_finite():
                    raise NotColumnar(f"commission {c}")
                exp = c.as_tuple().exponent
                if not isinstance(exp, int) or exp < -12:
                    raise NotColumnar(f"commission {c}")
                if -exp > fee_digits:
                    # finer commissions: every unit so far scales up
                    factor = 10 ** (-exp - fee_digits)
                    fees_units *= factor
                    fee_units = {k: v * factor for k, v in fee_units.items()}
                    fee_digits = -exp
                fee_units[c] = int(c.scaleb(fee_digits))
        fee_counts.update(chunk.commission)
        scale_f = 10 ** (fee_digits - 2)  # cents -> fee units
        denominator = 10 ** fee_digits
        # The book, a chunk at a time: BUYs add their value to the cost, SELLs take their lot's
        # purchase off it. int64 throughout; the running totals are carried between chunks.
        side, ft = chunk.side, chunk.time_ns
        is_buy = np.fromiter((v is BUY for v in side), dtype=bool, count=n)
        q = np.asarray(chunk.quantity, dtype=np.int64)
        p = np.asarray(price_c, dtype=np.int64)
        sell = ~is_buy
        purchase = [h[1] for h in info]
        if any(purchase[k] is None for k in np.flatnonzero(sell).tolist()):
            raise NotColumnar("a SELL whose tag names no purchase price")
        pp = np.asarray([0 if v is None else v for v in purchase], dtype=np.int64)
        if n and (int(np.abs(q).max()) * max(int(p.max()), int(pp.max()), 1) * 8 * n >= _INT64_SAFE):
            raise NotColumnar("values too large for int64 sums")
        value = q * p
        dq = np.where(is_buy, q, -q)
        pos = position + np.cumsum(dq)
        if (pos - dq)[sell].min(initial=1) == 0:
            raise NotColumnar("a SELL with nothing held")
        cost_run = cost + np.cumsum(np.where(is_buy, value, -q * pp))
        flow = cash_flow + np.cumsum(np.where(is_buy, -value, value))
        fee_run = fees_units + np.cumsum(np.fromiter((fee_units[c] for c in chunk.commission), dtype=np.int64,
                                                     count=n))
        if int(np.abs(flow).max()) * scale_f >= _INT64_SAFE:
            raise NotColumnar("cash too large for int64 in the commissions' units")
        cash_run = flow * scale_f - fee_run
        buys += int(is_buy.sum())
        sells += n - int(is_buy.sum())
        realized += int((q * (p - pp))[sell].sum())
        trips += int((np.asarray(chunk.order_filled) >= np.asarray(chunk.order_quantity))[sell].sum())
        peak = max(peak, int(cost_run.max()))
        position, cost, cash_flow, fees_units = int(pos[-1]), int(cost_run[-1]), int(flow[-1]), int(fee_run[-1])
        if int(np.abs(cash_run).max()) >= _FLOAT_EXACT or int(np.abs(cost_run).max()) >= _FLOAT_EXACT:
            raise NotColumnar("money beyond float's exact integers")
        prices_f = np.fromiter((float(v) for v in chunk.price), dtype=np.float64, count=n)
        t64 = np.asarray(ft, dtype=np.int64)
        # float(Decimal) and an exact integer over a power of ten are both the correctly rounded
        # value of the same number (both below 2**53): the series equal the row path's to the bit.
        cash_f, cap_f = cash_run / float(denominator), cost_run / 100.0
        if flat:
            # Each sample takes the newest fill at or before it: those of this chunk overwrite
            # what earlier chunks gave (the executions come in time order).
            last = np.searchsorted(t64, st, side="right") - 1
            hit = last >= 0
            at_pos[hit], at_cash[hit], at_cap[hit] = pos[last[hit]], cash_f[last[hit]], cap_f[last[hit]]
            markers[True].add(t64[is_buy], prices_f[is_buy])
            markers[False].add(t64[sell], prices_f[sell])
        else:
            for points, mask in ((stats.buys, is_buy), (stats.sells, sell)):
                points.t.frombytes(t64[mask].tobytes())
                points.p.frombytes(prices_f[mask].tobytes())
            for hit_ in info:
                levels.append(hit_[0])
            times.frombytes(t64.tobytes())
            positions.frombytes(pos.tobytes())
            cash_series.frombytes(cash_f.tobytes())
            capital.frombytes(cap_f.tobytes())
        write(iso.many(ft), chunk.symbol, [s.value for s in side], ["" if h[0] is None else h[0] for h in info],
              chunk.quantity, [price_text[v] for v in chunk.price], [money_text[c] for c in chunk.commission], chunk.order_id,
              chunk.ref)
    stats.buy_fills, stats.sell_fills, stats.round_trips = buys, sells, trips
    stats.last_position = position
    if flat:
        stats.at_samples = (st, at_pos, at_cash, at_cap)
    if not any_fill:
        return stats
    # Back to Decimal, with the exponents the row path's sums would carry.
    # Every price is exactly two decimals (checked), so the cent sums carry exponent -2; the
    # commissions' and the cash's carry their smallest. (Counter merges 1.0 and 1.00: equal keys.)
    stats.fees = sum((c * k for c, k in fee_counts.items()), Decimal(0)).quantize(Decimal(1).scaleb(fee_exp))
    stats.realized_pnl = Decimal(realized).scaleb(-2) if sells else Decimal(0)
    stats.peak_capital = Decimal(peak).scaleb(-2) if peak > 0 else Decimal(0)
    stats.open_cost = Decimal(cost).scaleb(-2)
    cash_units = cash_flow * 10 ** (fee_digits - 2) - fees_units
    stats.cash_exact = Decimal(cash_units).scaleb(-fee_digits).quantize(Decimal(1).scaleb(min(-2, fee_exp)))
    return stats

