"""Fallback generator of synthetic one-minute bars (geometric Brownian motion, seeded).

The benchmark prefers the project's own generator (`bothost data synth`, or
`bothost_plugins.replay_feed.synthetic.write_csv`); this file is used only when neither is
available, or when asked for with `run.py --generator local`. It needs numpy and pandas only.

Output: `timestamp,open,high,low,close,volume`, ISO timestamps with the New York offset
(`2015-01-02T09:30:00-05:00`), regular-session minutes 09:30..15:59 on weekdays (no holiday
calendar), so every timestamp is unambiguous across DST changes and the bar interval is one
minute. Annual volatility is scaled over 252 x 390 one-minute bars; the open of a bar is the
previous close (no overnight gap); high and low add a half-bar excursion beyond open/close.

    python benchmarks/synth_gbm.py --bars 1000000 --seed 42 --vol 0.6 --out bars.csv
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

BARS_PER_DAY = 390  # 09:30 .. 15:59
BARS_PER_YEAR = 252 * BARS_PER_DAY
START_DAY = "2015-01-02"  # a Friday
CHUNK = 500_000


def _day_offsets(days: np.ndarray) -> np.ndarray:
    """UTC offset string of New York at noon of each day (datetime64[D])."""
    import pandas as pd

    noon = pd.DatetimeIndex(days.astype("datetime64[ns]")) + pd.Timedelta(hours=12)
    local = noon.tz_localize("America/New_York")
    off_min = (local.tz_localize(None) - local.tz_convert("UTC").tz_localize(None)) // pd.Timedelta(minutes=1)
    off_min = np.asarray(off_min, dtype=np.int64)
    sign = np.where(off_min < 0, "-", "+")
    a = np.abs(off_min)
    return np.array([f"{s}{h:02d}:{m:02d}" for s, h, m in zip(sign, a // 60, a % 60)])


def write_gbm_csv(
    path: str | os.PathLike,
    bars: int,
    seed: int = 42,
    vol: float = 0.6,
    start_price: float = 50.0,
    drift: float = 0.0,
) -> Path:
    """Write `bars` one-minute GBM bars to `path` (atomically: temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sigma = vol / np.sqrt(BARS_PER_YEAR)
    mu = drift / BARS_PER_YEAR - 0.5 * sigma * sigma
    tmp = path.with_name(path.name + ".tmp")
    last_close = float(start_price)
    with open(tmp, "w", newline="\n") as fh:
        fh.write("timestamp,open,high,low,close,volume\n")
        for lo in range(0, bars, CHUNK):
            n = min(CHUNK, bars - lo)
            idx = np.arange(lo, lo + n, dtype=np.int64)
            day_no = idx // BARS_PER_DAY
            minute = idx % BARS_PER_DAY
            days = np.busday_offset(np.datetime64(START_DAY), day_no, roll="forward")
            local = days.astype("datetime64[s]") + np.timedelta64(9 * 3600 + 30 * 60, "s") + minute.astype("timedelta64[m]")
            ts = np.datetime_as_string(local, unit="s")
            udays, inv = np.unique(days, return_inverse=True)
            offs = _day_offsets(udays)[inv]
            ts = np.char.add(ts, offs)

            r = mu + sigma * rng.standard_normal(n)
            close = last_close * np.exp(np.cumsum(r))
            open_ = np.empty(n)
            open_[0] = last_close
            open_[1:] = close[:-1]
            last_close = float(close[-1])
            ext_hi = np.exp(np.abs(rng.standard_normal(n)) * sigma * 0.5)
            ext_lo = np.exp(-np.abs(rng.standard_normal(n)) * sigma * 0.5)
            high = np.maximum(open_, close) * ext_hi
            low = np.minimum(open_, close) * ext_lo
            volume = rng.integers(100, 5000, n)
            lines = [
                f"{t},{o:.4f},{h:.4f},{l:.4f},{c:.4f},{v}\n"
                for t, o, h, l, c, v in zip(ts.tolist(), open_.tolist(), high.tolist(), low.tolist(), close.tolist(), volume.tolist())
            ]
            fh.writelines(lines)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--vol", type=float, default=0.6, help="annual volatility (0.6 = 60%%)")
    ap.add_argument("--start-price", type=float, default=50.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    write_gbm_csv(a.out, a.bars, seed=a.seed, vol=a.vol, start_price=a.start_price)
    return 0


if __name__ == "__main__":
    sys.exit(main())
