"""What the peer implementations of the TQQQ grid share. Standard library only: the peers run in
their own virtual environments (benchmarks/.venvs/<peer>), without bothost installed.

Bar-granularity semantics both peers follow (the peers' libraries see bars, not ticks):
- Orders decided at bar k's close are live from bar k+1 (like bothost's tick k -> tick k+1).
- Level 0: with no open lot and no live Level-0 order, BUY LMT shares(0) at round2(close x 1.0025);
  cancelled if still unfilled after `l0_timeout` (120 s = 2 one-minute bars) and replaced at once.
- A filled BUY becomes a lot; its SELL LMT at round2(purchase x 1.01) is live from the next bar.
- Queue: levels m+1..m+queue_depth (m = deepest open level), BUY at the chained trigger
  T(0) = anchor (the Level-0 fill price), T(n) = round2(T(n-1) x 0.99).
- Commission: IB fixed, $0.005 a share with $1.00 minimum; every lot in the map is <= 200 shares,
  so it is $1.00 per fill.
"""

from __future__ import annotations

import json
import sys
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_LOTS = REPO / "configs" / "tqqq_lots.csv"

PROFIT_TARGET = 0.01
BUY_STEP = 0.01
L0_BUFFER = 0.0025
L0_TIMEOUT_S = 120
QUEUE_DEPTH = 3
FEE_PER_SHARE = 0.005
FEE_MIN = 1.0
CENT = Decimal("0.01")


def load_lots(path: str | Path = DEFAULT_LOTS) -> list[int]:
    """`level,shares` rows, levels 0..N-1, header optional, CRLF tolerated."""
    shares: dict[int, int] = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line:
            continue
        a, _, b = line.partition(",")
        try:
            shares[int(a)] = int(b)
        except ValueError:
            continue  # header
    levels = sorted(shares)
    if levels != list(range(len(levels))):
        raise ValueError(f"lot map levels are not 0..N-1: {levels[:5]}...")
    return [shares[i] for i in levels]


def round2(x: float) -> float:
    return float(Decimal(repr(float(x))).quantize(CENT, rounding=ROUND_HALF_UP))


def trigger_chain(anchor: float, n_levels: int, step: float = BUY_STEP) -> list[float]:
    """T(0) = anchor, T(n) = round2(T(n-1) x (1 - step)), with Decimal half-up rounding."""
    t = Decimal(repr(float(anchor))).quantize(CENT, rounding=ROUND_HALF_UP)
    k = Decimal(1) - Decimal(repr(step))
    out = []
    for _ in range(n_levels):
        out.append(float(t))
        t = (t * k).quantize(CENT, rounding=ROUND_HALF_UP)
    return out


def commission(qty: float) -> float:
    return max(FEE_MIN, FEE_PER_SHARE * abs(qty))


class Timer:
    """Named wall-clock phases, reported in the JSON line."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.last = self.t0
        self.phases: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round(now - self.last, 4)
        self.last = now

    def total(self) -> float:
        return round(time.perf_counter() - self.t0, 4)


def emit(result: dict) -> None:
    """The one machine-readable line the harness parses (the last line starting with '{')."""
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()


def peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
