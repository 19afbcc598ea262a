"""Bars -> ticks, and the bar interval.

A bar becomes four trade ticks at its timestamp plus 0, 1/4, 1/2 and 3/4 of the bar interval:
open, then low and high (low first when close >= open, high first otherwise), then close. So
1-minute bars give ticks at :00, :15, :30 and :45 seconds, 5-minute bars every 75 s, daily
bars every 6 hours.

The bar interval is the data's bar size: the most common gap between consecutive accepted bars
(ties: the smaller). With fewer than two accepted bars there is no gap to count; the interval is
then 60 s (one-minute bars, the common case).

One case the rule above leaves open: a bar followed by the next one sooner than 3/4 of the
interval (irregular data: a 30 s gap in 1-minute bars). Its ticks at +45 s would come after the
next bar's open, and replay ticks must be in time order. Such a bar's four ticks are spread over
the gap to the next bar instead (+0, 1/4, 1/2, 3/4 of the gap). Regular data never meets this.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from .reader import Accepted

NS = 1_000_000_000
DEFAULT_INTERVAL_NS = 60 * NS


class GapCounter:
    """Counts the gaps between consecutive accepted bars, chunk by chunk; :meth:`mode` is the
    bar interval. Memory is the number of *distinct* gaps (a handful for real bar data)."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.int64)
        self._last: int | None = None

    def add(self, ts: np.ndarray) -> None:
        if len(ts) == 0:
            return
        if self._last is not None:
            gaps = np.diff(ts, prepend=np.int64(self._last))
        else:
            gaps = np.diff(ts)
        self._last = int(ts[-1])
        if gaps.size == 0:
            return
        g0 = gaps[0]
        same = gaps == g0
        n0 = int(same.sum())
        keys = [np.array([g0], dtype=np.int64)]
        counts = [np.array([n0], dtype=np.int64)]
        if n0 != gaps.size:  # the usual case: most gaps equal, a few others (nights, halts)
            u, c = np.unique(gaps[~same], return_counts=True)
            keys.append(u)
            counts.append(c.astype(np.int64))
        keys = np.concatenate([self.keys, *keys])
        counts = np.concatenate([self.counts, *counts])
        self.keys, inv = np.unique(keys, return_inverse=True)
        self.counts = np.bincount(inv.ravel(), weights=counts, minlength=len(self.keys)).astype(np.int64)

    def mode(self) -> int | None:
        """The most common gap in ns (ties: the smaller), or None with no gap at all."""
        if self.keys.size == 0:
            return None
        return int(self.keys[int(np.argmax(self.counts))])  # keys ascending: first max is smallest


def bar_ticks(ts, o, h, l, c, interval_ns: int, next_ns: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Four ticks per bar, in time order: (time_ns, price) int64 arrays of length 4 * len(ts).

    ``next_ns`` is the time of the bar after the last one given (None: there is none).
    """
    n = len(ts)
    times = np.empty((n, 4), dtype=np.int64)
    prices = np.empty((n, 4), dtype=np.int64)
    if n == 0:
        return times.ravel(), prices.ravel()
    i = int(interval_ns)
    offs = (0, i // 4, i // 2, (3 * i) // 4)
    times[:, 0] = ts
    times[:, 1] = ts + offs[1]
    times[:, 2] = ts + offs[2]
    times[:, 3] = ts + offs[3]
    # Irregular data: a bar whose next bar comes too soon is squeezed into the gap.
    nxt = np.empty(n, dtype=np.int64)
    nxt[:-1] = ts[1:]
    late = np.zeros(n, dtype=bool)
    late[:-1] = times[:-1, 3] >= nxt[:-1]
    if next_ns is not None:
        nxt[-1] = next_ns
        late[-1] = times[-1, 3] >= next_ns
    if late.any():
        k = np.flatnonzero(late)
        gap = nxt[k] - ts[k]
        times[k, 1] = ts[k] + gap // 4
        times[k, 2] = ts[k] + gap // 2
        times[k, 3] = ts[k] + (3 * gap) // 4
    up = c >= o
    prices[:, 0] = o
    prices[:, 1] = np.where(up, l, h)
    prices[:, 2] = np.where(up, h, l)
    prices[:, 3] = c
    return times.ravel(), prices.ravel()


def ticks_from_bars(chunks: Iterable[Accepted], interval_ns: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream bar chunks into tick chunks. The last bar of each chunk waits for the next chunk
    (its ticks depend on when the next bar comes, see the module docstring)."""
    held: Accepted | None = None
    for acc in chunks:
        if len(acc) == 0:
            continue
        if held is not None:
            acc = Accepted(
                np.concatenate([held.time_ns, acc.time_ns]),
                tuple(np.concatenate([a, b]) for a, b in zip(held.prices, acc.prices)),
            )
        n = len(acc)
        if n > 1:
            o, h, l, c = (p[:-1] for p in acc.prices)
            yield bar_ticks(acc.time_ns[:-1], o, h, l, c, interval_ns, int(acc.time_ns[-1]))
        held = Accepted(acc.time_ns[-1:].copy(), tuple(p[-1:].copy() for p in acc.prices))
    if held is not None:
        yield bar_ticks(held.time_ns, *held.prices, interval_ns, None)
