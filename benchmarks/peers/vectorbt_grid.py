"""The TQQQ grid in vectorbt (pinned 1.2.0) on its fast path: `Portfolio.from_order_func` with a
Numba flexible order function (several orders per bar), the grid's state machine compiled with
`@njit(cache=True)`, vectorbt doing execution, cash and position accounting.

    benchmarks/.venvs/vectorbt/bin/python benchmarks/peers/vectorbt_grid.py BARS.csv [--lots CSV]

Set NUMBA_CACHE_DIR to a fresh folder for a cold (JIT-compiling) run; run again with the same
folder for a warm one. vectorbt's own `flex_simulate_nb` is not cached by vectorbt (it is
specialised on the order function), so a warm run still compiles that one function.

Prints one JSON line: fills (BUY + SELL), buys, sells, fees, realized P&L, internal timings.
Semantics: see _grid_common.py (bar granularity). Within a bar, resting orders fill on the
path open -> low -> high -> close when close >= open (BUYs first), open -> high -> low -> close
otherwise (SELLs first); a limit already crossed at the open fills at the open, like
backtesting.py; orders made by this bar's fills are live from the next bar.
"""

from __future__ import annotations

import argparse
import sys
import time

from _grid_common import (
    BUY_STEP,
    DEFAULT_LOTS,
    FEE_MIN,
    FEE_PER_SHARE,
    L0_BUFFER,
    L0_TIMEOUT_S,
    PROFIT_TARGET,
    QUEUE_DEPTH,
    Timer,
    emit,
    load_lots,
    peak_rss_mb,
)

timer = Timer()
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import vectorbt as vbt  # noqa: E402
from numba import njit  # noqa: E402
from vectorbt.portfolio import nb as pnb  # noqa: E402
from vectorbt.portfolio.enums import Direction, SizeType  # noqa: E402

timer.mark("import_s")

# st_i slots
N_OPEN, L0_LIVE, L0_AGE, NPEND, BUYS, SELLS, FULL_BARS = 0, 1, 2, 3, 4, 5, 6
# st_f slots
L0_PRICE, ANCHOR, PNL = 0, 1, 2


@njit(cache=True)
def round2_nb(x):
    # half-up to cents; the epsilon absorbs binary noise such as 1.005 -> 1.00499999...
    return np.floor(x * 100.0 + 0.5 + 1e-7) / 100.0


@njit(cache=True)
def fee_nb(qty):
    f = FEE_PER_SHARE * abs(qty)
    return f if f > FEE_MIN else FEE_MIN


@njit(cache=True)
def step_bar_nb(o, h, l, cl, lots, prm, st_i, st_f, lot_open, sell_live, lot_buy, lot_sell,
                trig, q_live, pend_size, pend_price, pend_fee):
    """Match this bar against the orders live at its start, update the grid, queue the fills
    (pend_*) for vectorbt to execute, and place the orders that will be live from next bar."""
    n_levels = lots.shape[0]
    buffer, target, step, l0_bars, depth = prm[0], prm[1], prm[2], int(prm[3]), int(prm[4])
    npend = 0
    buys_first = cl >= o
    for phase in range(2):
        do_buys = (phase == 0) == buys_first
        if do_buys:
            if st_i[L0_LIVE] == 1 and l <= st_f[L0_PRICE]:
                px = o if o < st_f[L0_PRICE] else st_f[L0_PRICE]
                st_i[L0_LIVE] = 0
                st_f[ANCHOR] = px
                t = round2_nb(px)
                for lv in range(n_levels):
                    trig[lv] = t
                    t = round2_nb(t * (1.0 - step))
                lot_open[0] = True
                lot_buy[0] = px
                lot_sell[0] = round2_nb(px * (1.0 + target))
                st_i[N_OPEN] += 1
                st_i[BUYS] += 1
                pend_size[npend] = lots[0]
                pend_price[npend] = px
                pend_fee[npend] = fee_nb(lots[0])
                npend += 1
            for lv in range(n_levels):  # highest limit first
                if q_live[lv] and l <= trig[lv]:
                    px = o if o < trig[lv] else trig[lv]
                    q_live[lv] = False
                    lot_open[lv] = True
                    lot_buy[lv] = px
                    lot_sell[lv] = round2_nb(px * (1.0 + target))
                    st_i[N_OPEN] += 1
                    st_i[BUYS] += 1
                    pend_size[npend] = lots[lv]
                    pend_price[npend] = px
                    pend_fee[npend] = fee_nb(lots[lv])
                    npend += 1
        else:
            for lv in range(n_levels - 1, -1, -1):  # lowest limit first
                if sell_live[lv] and h >= lot_sell[lv]:
                    px = o if o > lot_sell[lv] else lot_sell[lv]
                    sell_live[lv] = False
                    lot_open[lv] = False
                    st_i[N_OPEN] -= 1
                    st_i[SELLS] += 1
                    st_f[PNL] += lots[lv] * (px - lot_buy[lv]) - 2.0 * fee_nb(lots[lv])  # net of both fees
                    pend_size[npend] = -lots[lv]
                    pend_price[npend] = px
                    pend_fee[npend] = fee_nb(lots[lv])
                    npend += 1
    st_i[NPEND] = npend

    # decisions at the bar's close, live from the next bar
    if st_i[N_OPEN] == 0:
        if npend > 0:  # R4: flat again -> cancel the queue; the next entry gets a new anchor
            for lv in range(n_levels):
                q_live[lv] = False
        if st_i[L0_LIVE] == 1:
            st_i[L0_AGE] += 1
            if st_i[L0_AGE] >= l0_bars:  # R1 timeout: cancel, and replace below
                st_i[L0_LIVE] = 0
        if st_i[L0_LIVE] == 0:
            st_i[L0_LIVE] = 1
            st_i[L0_AGE] = 0
            st_f[L0_PRICE] = round2_nb(cl * (1.0 + buffer))
    elif npend > 0:
        m = 0
        for lv in range(n_levels):
            sell_live[lv] = lot_open[lv]  # R2: each new lot's SELL goes live
            if lot_open[lv]:
                m = lv
        for lv in range(n_levels):  # R3: queue = m+1 .. m+depth
            q_live[lv] = m < lv <= m + depth
    if st_i[N_OPEN] == n_levels:
        st_i[FULL_BARS] += 1  # diagnostic: the grid is full, nothing below can fill
    return npend


@njit(cache=True)
def grid_flex_order_func_nb(c, open_, high, low, lots, prm, st_i, st_f, lot_open, sell_live,
                            lot_buy, lot_sell, trig, q_live, pend_size, pend_price, pend_fee):
    i = c.i
    if c.call_idx == 0:
        step_bar_nb(open_[i], high[i], low[i], c.close[i, 0], lots, prm, st_i, st_f, lot_open,
                    sell_live, lot_buy, lot_sell, trig, q_live, pend_size, pend_price, pend_fee)
    k = c.call_idx
    if k < st_i[NPEND]:
        return 0, pnb.order_nb(
            size=pend_size[k],
            price=pend_price[k],
            size_type=SizeType.Amount,
            direction=Direction.LongOnly,
            fixed_fees=pend_fee[k],
        )
    return -1, pnb.order_nothing_nb()


def simulate(close, open_, high, low, lots, l0_bars):
    n = lots.shape[0]
    prm = np.array([L0_BUFFER, PROFIT_TARGET, BUY_STEP, l0_bars, QUEUE_DEPTH], dtype=np.float64)
    st_i = np.zeros(7, dtype=np.int64)
    st_f = np.zeros(3, dtype=np.float64)
    lot_open = np.zeros(n, dtype=np.bool_)
    sell_live = np.zeros(n, dtype=np.bool_)
    lot_buy = np.zeros(n, dtype=np.float64)
    lot_sell = np.zeros(n, dtype=np.float64)
    trig = np.zeros(n, dtype=np.float64)
    q_live = np.zeros(n, dtype=np.bool_)
    pend_size = np.zeros(2 * n + 2, dtype=np.float64)
    pend_price = np.zeros(2 * n + 2, dtype=np.float64)
    pend_fee = np.zeros(2 * n + 2, dtype=np.float64)
    pf = vbt.Portfolio.from_order_func(
        close,
        grid_flex_order_func_nb,
        open_, high, low, lots, prm, st_i, st_f, lot_open, sell_live, lot_buy, lot_sell, trig,
        q_live, pend_size, pend_price, pend_fee,
        flexible=True,
        init_cash=1e9,
        max_orders=len(close) * 2,
        max_logs=0,
        freq="1min",
    )
    return pf, st_i, st_f


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--lots", default=str(DEFAULT_LOTS))
    ap.add_argument("--bar-seconds", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=1,
                    help="simulate N times in this process; the JSON adds loop_s for calls 2..N")
    ap.add_argument("--stats", action="store_true", help="also compute final cash and value (slower)")
    a = ap.parse_args(argv)

    lots = np.asarray(load_lots(a.lots), dtype=np.float64)
    df = pd.read_csv(a.csv)
    df.columns = [c.lower() for c in df.columns]
    index = pd.DatetimeIndex(pd.to_datetime(df["timestamp"], format="ISO8601", utc=True))
    close = pd.Series(df["close"].round(2).to_numpy(), index=index, name="TQQQ")
    open_ = np.ascontiguousarray(df["open"].round(2).to_numpy(dtype=np.float64))
    high = np.ascontiguousarray(df["high"].round(2).to_numpy(dtype=np.float64))
    low = np.ascontiguousarray(df["low"].round(2).to_numpy(dtype=np.float64))
    del df
    timer.mark("load_s")

    l0_bars = max(1, -(-L0_TIMEOUT_S // a.bar_seconds))
    pf, st_i, st_f = simulate(close, open_, high, low, lots, l0_bars)
    timer.mark("simulate_s")
    # --repeat: the same simulation again in this process, JIT already done: the compiled loop alone
    loop_s = []
    for _ in range(a.repeat - 1):
        t = time.perf_counter()
        pf, st_i, st_f = simulate(close, open_, high, low, lots, l0_bars)
        loop_s.append(round(time.perf_counter() - t, 4))
    if loop_s:
        timer.mark("repeat_s")

    # fills and fees straight from vectorbt's order records; portfolio metrics only with --stats
    # (their first call JIT-compiles functions vectorbt does not cache: seconds, at any size)
    records = pf.orders.values
    fills = int(len(records))
    fees = float(records["fees"].sum())
    stats = {}
    if a.stats:
        stats = {"final_cash": round(float(pf.cash().iloc[-1]), 2),
                 "final_value": round(float(pf.final_value()), 2)}
    timer.mark("post_s")

    emit(
        {
            "peer": "vectorbt",
            "version": vbt.__version__,
            "bars": int(len(close)),
            "fills": fills,
            "buys": int(st_i[BUYS]),
            "sells": int(st_i[SELLS]),
            "open_lots": int(st_i[N_OPEN]),
            "realized_pnl": round(float(st_f[PNL]), 2),
            "fees": round(fees, 2),
            **stats,
            "bars_full_grid_pct": round(100.0 * st_i[FULL_BARS] / max(1, len(close)), 1),
            "timings": {**timer.phases, "total_s": timer.total()},
            "loop_s": loop_s,
            "self_peak_rss_mb": peak_rss_mb(),
        }
    )
    if fills != st_i[BUYS] + st_i[SELLS]:
        print(f"warning: vectorbt booked {fills} orders, the grid made {st_i[BUYS] + st_i[SELLS]}",
              file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
