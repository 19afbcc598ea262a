"""equity.png: price with the fills marked, equity and capital committed (matplotlib's Figure
API, no pyplot). Drawn by the plot worker (plot_worker.py) while a run writes its other outputs,
or in-process when the worker cannot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .report import FillPoints


def import_matplotlib():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg


def fill_points(points: FillPoints | list[tuple[int, float]], most: int = 5000) -> np.ndarray:
    """At most ``most`` fill markers, evenly thinned: a readable picture, not 100k markers."""
    step = max(1, -(-len(points) // most))
    if isinstance(points, FillPoints):
        t = np.frombuffer(points.t, dtype=np.int64)[::step].astype(np.float64) if len(points) else np.empty(0)
        p = np.frombuffer(points.p, dtype=np.float64)[::step] if len(points) else np.empty(0)
        return np.column_stack([t, p]).reshape(-1, 2)
    return np.asarray(points[::step], dtype=np.float64).reshape(-1, 2)


def envelope(t: np.ndarray, y: np.ndarray, buckets: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """The points of the line (t, y) that draw it as the whole line draws at a picture's width:
    in each of ``buckets`` runs of consecutive points, the first, the lowest, the highest and the
    last, in time order (the M4 reduction). A 12-inch figure is 1,200 pixels wide; a long run
    samples tens of thousands of prices, and drawing them all was most of equity.png's time."""
    n = len(t)
    if n <= 4 * buckets:
        return t, y
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    starts, ends = edges[:-1], edges[1:] - 1
    lows = np.minimum.reduceat(y, starts)
    highs = np.maximum.reduceat(y, starts)
    # the index of each bucket's first minimum and first maximum
    bucket = np.repeat(np.arange(buckets), np.diff(edges))
    is_low = np.flatnonzero(y == lows[bucket])
    is_high = np.flatnonzero(y == highs[bucket])
    low_at = is_low[np.unique(bucket[is_low], return_index=True)[1]]
    high_at = is_high[np.unique(bucket[is_high], return_index=True)[1]]
    keep = np.unique(np.concatenate([starts, ends, low_at, high_at]))
    return t[keep], y[keep]


def plot_equity(path: Path, t: np.ndarray, price: np.ndarray, equity: np.ndarray, capital: np.ndarray,
                buys: np.ndarray, sells: np.ndarray, title: str) -> None:
    """Price with fills marked, equity and capital committed. Uses the Figure API (no pyplot)."""
    Figure, FigureCanvasAgg = import_matplotlib()

    def dt(ns) -> np.ndarray:
        return np.asarray(ns, dtype="datetime64[ns]")

    def line(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lt, ly = envelope(t, y)
        return dt(lt), ly

    fig = Figure(figsize=(12, 7), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    ax1.plot(*line(price), lw=0.6, color="0.35", label="price")
    for pts, marker, color, label in ((buys, "^", "tab:green", "BUY fill"), (sells, "v", "tab:red", "SELL fill")):
        if len(pts):
            ax1.scatter(dt(pts[:, 0].astype(np.int64)), pts[:, 1], marker=marker, s=10, color=color,
                        label=label, zorder=3)
    ax1.set_ylabel("price ($)")
    ax1.legend(loc="upper left", fontsize=8)
    ax1.set_title(title)
    ax2.plot(*line(equity), lw=0.8, color="tab:blue", label="equity (P&L after fees)")
    ax2.plot(*line(capital), lw=0.8, color="tab:orange", label="capital committed")
    ax2.set_ylabel("$")
    ax2.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
