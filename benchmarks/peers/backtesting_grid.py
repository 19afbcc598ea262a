"""The TQQQ grid in backtesting.py (pinned 0.6.6), written as its documentation intends: a
`Strategy` whose `next()` runs once per bar, native limit orders for Level 0 and the BUY queue,
and each lot's +1% SELL as the trade's take-profit (`tp`) contingent order.

    benchmarks/.venvs/backtesting/bin/python benchmarks/peers/backtesting_grid.py BARS.csv [--lots CSV]

Prints one JSON line: fills (BUY + SELL), buys, sells, realized P&L, and internal timings.
Semantics: see _grid_common.py (bar granularity). backtesting.py fills a limit order at the bar's
open when the open is already through the limit (price improvement), and a take-profit placed
when its entry fills waits for the next bar.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from _grid_common import (
    DEFAULT_LOTS,
    L0_BUFFER,
    L0_TIMEOUT_S,
    PROFIT_TARGET,
    QUEUE_DEPTH,
    Timer,
    commission,
    emit,
    load_lots,
    peak_rss_mb,
    round2,
    trigger_chain,
)

timer = Timer()
import backtesting  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from backtesting import Backtest, Strategy  # noqa: E402

timer.mark("import_s")


class TqqqGrid(Strategy):
    lots: list = []  # shares per level, set through Backtest.run(lots=...)
    l0_bars: int = 2  # l0_timeout expressed in bars

    def init(self):
        self.n_levels = len(self.lots)
        self.anchor = None
        self.trig = None
        self.l0 = None  # the live Level-0 Order, if any
        self.l0_age = 0
        self.queue = {}  # level -> live BUY Order
        self.seen_open = 0
        self.seen_closed = 0

    def next(self):
        trades = self.trades
        n_open = len(trades)
        n_closed = len(self.closed_trades)
        changed = n_open != self.seen_open or n_closed != self.seen_closed
        if not changed and n_open:
            return  # nothing filled: the resting orders stay as they are
        self.seen_open, self.seen_closed = n_open, n_closed

        if n_open == 0:
            if self.queue:  # R4: no lot left -> cancel the queue, next entry gets a new anchor
                for o in self.queue.values():
                    o.cancel()
                self.queue = {}
            self.anchor = None
            if self.l0 is not None:
                self.l0_age += 1
                if self.l0_age >= self.l0_bars:  # R1 timeout
                    self.l0.cancel()
                    self.l0 = None
            if self.l0 is None:
                price = round2(self.data.Close[-1] * (1 + L0_BUFFER))
                self.l0 = self.buy(size=self.lots[0], limit=price, tag=0)
                self.l0_age = 0
            return

        if self.anchor is None:  # the Level-0 BUY filled: anchor = its fill price
            self.l0 = None
            for t in trades:
                if t.tag == 0:
                    self.anchor = t.entry_price
                    break
            self.trig = trigger_chain(self.anchor, self.n_levels)
        if changed:  # R2: SELL at purchase x (1 + target); purchase may beat the limit on a gap
            bar = len(self.data) - 1
            for t in trades:
                if t.entry_bar == bar:
                    tp = round2(t.entry_price * (1 + PROFIT_TARGET))
                    if t.tp != tp:
                        t.tp = tp

        # R3: the queue is levels m+1..m+depth, reconciled by difference
        m = max(t.tag for t in trades)
        desired = range(m + 1, min(m + QUEUE_DEPTH, self.n_levels - 1) + 1)
        live = set(self.orders)
        for lv in list(self.queue):
            o = self.queue[lv]
            if o not in live:  # filled
                del self.queue[lv]
            elif lv not in desired:
                o.cancel()
                del self.queue[lv]
        for lv in desired:
            if lv not in self.queue:
                px = self.trig[lv]
                self.queue[lv] = self.buy(
                    size=self.lots[lv], limit=px, tp=round2(px * (1 + PROFIT_TARGET)), tag=lv
                )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--lots", default=str(DEFAULT_LOTS))
    ap.add_argument("--bar-seconds", type=int, default=60)
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")  # per-bar UserWarnings about same-bar contingent orders

    lots = load_lots(a.lots)
    df = pd.read_csv(a.csv)
    df.columns = [c.lower() for c in df.columns]
    index = pd.to_datetime(df["timestamp"], format="ISO8601", utc=True)
    data = pd.DataFrame(
        {
            "Open": df["open"].round(2).to_numpy(),
            "High": df["high"].round(2).to_numpy(),
            "Low": df["low"].round(2).to_numpy(),
            "Close": df["close"].round(2).to_numpy(),
            "Volume": df["volume"].to_numpy() if "volume" in df else np.zeros(len(df)),
        },
        index=pd.DatetimeIndex(index),
    )
    del df
    timer.mark("load_s")

    bt = Backtest(
        data,
        TqqqGrid,
        cash=1_000_000_000,
        commission=lambda size, price: commission(size),
        trade_on_close=False,
        hedging=False,
        exclusive_orders=False,
    )
    l0_bars = max(1, -(-L0_TIMEOUT_S // a.bar_seconds))
    stats = bt.run(lots=lots, l0_bars=l0_bars)
    timer.mark("run_s")

    strat = stats["_strategy"]
    closed = strat.closed_trades
    still_open = strat.trades
    buys = len(closed) + len(still_open)
    sells = len(closed)
    emit(
        {
            "peer": "backtesting",
            "version": backtesting.__version__,
            "bars": int(len(data)),
            "fills": buys + sells,
            "buys": buys,
            "sells": sells,
            "open_lots": len(still_open),
            "realized_pnl": round(float(sum(t.pl for t in closed)), 2),
            "timings": {**timer.phases, "total_s": timer.total()},
            "self_peak_rss_mb": peak_rss_mb(),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
