"""The page's data, from what the bot's files said (:class:`~.sources.Sources`). Pure: no I/O.

The host knows no strategy's vocabulary; where each thing comes from:

* each strategy's records (what it published with ``ctx.record``, passed through as published:
  the page shows them the way ``bothost status`` does, keys and all) and what it holds
  (``hookspecs.ReportsHoldings``: its lots, its working orders with its own label for each, its
  price levels): ``status.json``. While a replay runs it writes ``status.json`` only at its end,
  but ``bot_state.json`` at every checkpoint: when that is the newer file, both come from the
  host's own section of it (``__host__``), never from a strategy's backup.
* the position and P&L: ``status.json``'s summary once a run has ended; meanwhile computed the
  way the summary is, from the executions and ``describe_order_ref`` (a SELL's tag names its
  lot's purchase price), marked to the newest price the run saved (``price_samples.npz``).
* the price levels: the strategy's levels with its lots and working orders at each level.
* fills: the venue's executions (``venue.sqlite``), a live run's journal (``executions.sqlite``)
  or ``fills.csv``, levels through ``describe_order_ref``; the chart: ``price_samples.npz``
  with the fills marked.

Money stays text as the bot wrote it (``"8088.60"``): the page shows the same characters as
``bothost status``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from bothost.model import CENT, Holdings, units_to_price
from bothost.report import fill_price_text, iso_time, money

from .sources import Sources

Describe = Callable[[str], "dict | None"]

#: The position figures, in the order the page shows them (as summary.json names them).
POSITION_KEYS = ("open_position", "last_price", "open_cost", "market_value", "unrealized_pnl", "realized_pnl",
                 "fees", "net_realized_pnl", "total_pnl", "equity", "lowest_equity", "peak_capital_committed",
                 "max_drawdown")


def dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value).strip().rstrip("%"))
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite():
        return None
    return d / 100 if str(value).strip().endswith("%") else d


def _money(value: Decimal | None) -> str | None:
    return None if value is None else money(value)


def price_text(value: Any) -> str | None:
    """A price as fills.csv writes it: two decimals on the cent grid, else every decimal it has
    (a 0.0001 instrument's 49.9988 is not 50.00)."""
    d = dec(value)
    return None if d is None else fill_price_text(d)


# ------------------------------------------------------------------ the price levels
def ladder(held: Holdings | None, last: Decimal | None, around: int = 6) -> dict | None:
    """The strategy's price levels around the last price: each level's price, the lots held
    there (purchase and exit price) and the orders working there, each with the strategy's own
    label. None for a strategy that reports no levels."""
    if held is None or not held.levels:
        return None
    chain = sorted(held.levels, key=lambda lv: lv.level)
    if last is None:
        deepest = max((lot.level for lot in held.lots if lot.level is not None), default=None)
        center = next((i for i, lv in enumerate(chain) if lv.level > deepest), len(chain)) if deepest is not None else 0
    else:
        center = next((i for i, lv in enumerate(chain) if lv.price < last), len(chain))
    lo = max(0, center - around)
    hi = min(len(chain), max(center + around, lo + 2 * around))
    lo = max(0, min(lo, hi - 2 * around))
    rows = []
    for lv in chain[lo:hi]:
        rows.append({
            "level": lv.level,
            "price": str(lv.price),
            "above_last": last is not None and lv.price >= last,
            "lots": [{"label": lot.label, "quantity": lot.quantity, "price": str(lot.price),
                      "exit_price": None if lot.exit_price is None else str(lot.exit_price)}
                     for lot in held.lots if lot.level == lv.level],
            "orders": [{"label": o.label, "side": o.side.value, "order_id": o.order_id, "quantity": o.quantity,
                        "price": str(o.price), "filled": o.filled} for o in held.orders if o.level == lv.level],
        })
    return {"levels": len(chain), "last": price_text(last),
            "next_level": chain[center].level if last is not None and center < len(chain) else None, "rows": rows}


# ------------------------------------------------------------------ the strategies
def _host_section(src: Sources) -> dict:
    """The host's own section of bot_state.json (its clock, holdings and the strategies' records)."""
    section = ((src.state or {}).get("strategies") or {}).get("__host__")
    return section if isinstance(section, dict) else {}


def strategy_views(src: Sources, from_backup: bool, last: Decimal | None) -> list[dict]:
    """Per strategy: its symbol, what it holds (``Holdings.as_dict``, None for a strategy that
    reports none), its price levels around ``last`` and its records exactly as it published them."""
    host = _host_section(src) if from_backup else {}
    status = src.status or {}

    def mapping(value: Any) -> dict:
        return value if isinstance(value, dict) else {}

    status_records, host_records = mapping(status.get("strategies")), mapping(host.get("records"))
    holdings = mapping(host.get("holdings")) if "holdings" in host else mapping(status.get("holdings"))
    symbols = mapping(status.get("symbols"))
    out = []
    for sid in dict.fromkeys([*status_records, *host_records, *holdings]):
        fresh = isinstance(host_records.get(sid), dict)
        held = Holdings.from_dict(holdings.get(sid))
        symbol = held.symbol if held is not None and held.symbol else symbols.get(sid)
        out.append({
            "id": sid,
            "source": "bot_state.json" if fresh else "status.json",
            "symbol": symbol if isinstance(symbol, str) and symbol else None,
            "holdings": None if held is None else held.as_dict(),
            "ladder": ladder(held, last),
            "records": dict(host_records[sid] if fresh else mapping(status_records.get(sid))),
        })
    return out


# ------------------------------------------------------------------ position and P&L
def price_increment(src: Sources) -> Decimal:
    """The increment the folder's integer prices count (the price picture, the venue's last
    price): the run's one declared instrument (``increments`` in ``__host__`` or status.json),
    else cents."""
    host = ((src.state or {}).get("strategies") or {}).get("__host__") or {}
    for found in (host.get("increments") if isinstance(host, dict) else None, (src.status or {}).get("increments")):
        if isinstance(found, dict) and len(set(found.values())) == 1:
            try:
                return Decimal(str(next(iter(found.values()))))
            except InvalidOperation:
                pass
    return CENT


def _units_price(units: int, increment: Decimal) -> Decimal:
    return Decimal(units) / 100 if increment == CENT else units_to_price(units, increment)


def last_price(src: Sources) -> Decimal | None:
    increment = price_increment(src)
    if src.samples_last is not None:
        return _units_price(src.samples_last[1], increment)
    cents = src.venue_meta.get("last")
    if cents not in (None, ""):
        try:
            return _units_price(int(cents), increment)
        except ValueError:
            pass
    summary = (src.status or {}).get("summary") or src.summary_file or {}
    return dec(summary.get("last_price"))


def fills_position(fills: list[dict], describe: Describe | None) -> dict[str, Any]:
    """Shares, their cost, realized P&L (per lot: a SELL's tag names its purchase price through
    ``describe_order_ref``, else the average cost), fees and cash, from the executions: the
    summary's own definitions (``report.collect_fills``), for a run that has not written one."""
    shares, cost, cash, realized, fees = 0, Decimal(0), Decimal(0), Decimal(0), Decimal(0)
    cache: dict[str, Decimal | None] = {}
    for f in fills:
        q, price, commission = f["quantity"], Decimal(f["price"]), Decimal(f["commission"])
        fees += commission
        cash -= commission
        if f["side"] == "BUY":
            shares, cost, cash = shares + q, cost + q * price, cash - q * price
            continue
        ref = f.get("ref") or ""
        if ref not in cache:
            info = (describe(ref) if describe is not None and ref else None) or {}
            cache[ref] = None if info.get("purchase") is None else Decimal(info["purchase"])
        purchase = cache[ref]
        if purchase is None:
            purchase = cost / shares if shares else price
        realized += q * (price - purchase)
        if shares:
            cost -= q * purchase
        shares, cash = shares - q, cash + q * price
    return {"shares": shares, "cost": cost, "cash": cash, "realized": realized, "fees": fees}


def position_view(summary: dict, summary_fresh: bool, fills: list[dict], describe: Describe | None,
                  last: Decimal | None) -> dict:
    """The summary's figures when a finished run wrote them; else marked to ``last`` here."""
    if summary_fresh and "last_price" in summary:
        return {"source": "summary", **{k: summary.get(k) for k in POSITION_KEYS}}
    pos = fills_position(fills, describe)
    shares, cost, net = pos["shares"], pos["cost"], pos["realized"] - pos["fees"]
    market = None if last is None else shares * last
    unrealized = None if market is None else market - cost
    equity = None if last is None and shares else pos["cash"] + shares * (last or 0)
    return {
        "source": "computed",
        "open_position": shares,
        "last_price": price_text(last),
        "open_cost": _money(cost),
        "market_value": _money(market),
        "unrealized_pnl": _money(unrealized),
        "realized_pnl": _money(pos["realized"]),
        "fees": _money(pos["fees"]),
        "net_realized_pnl": _money(net),
        "total_pnl": _money(None if unrealized is None else net + unrealized),
        "equity": _money(equity) if fills else None,
        "lowest_equity": None,
        "peak_capital_committed": None,
        "max_drawdown": None,
    }


# ------------------------------------------------------------------ fills and the chart
def fill_rows(fills: list[dict], describe: Describe | None) -> list[dict]:
    """Fills as the page's table shows them (call it with the few that are shown)."""
    rows, cache = [], {}
    for f in fills:
        level = f.get("level")
        if "level" not in f and describe is not None and f.get("ref"):
            if f["ref"] not in cache:
                cache[f["ref"]] = describe(f["ref"]) or {}
            level = cache[f["ref"]].get("level")
        rows.append({"n": f["n"], "time": f.get("time") or iso_time(f["time_ns"]), "side": f["side"], "level": level,
                     "quantity": f["quantity"], "price": price_text(f["price"]),
                     "commission": money(Decimal(f["commission"])), "order_id": f["order_id"]})
    return rows


def thin(points: list, most: int) -> list:
    step = max(1, -(-len(points) // most))
    kept = points[::step]
    if points and kept[-1] is not points[-1]:
        kept.append(points[-1])
    return kept


def chart_series(t: np.ndarray, p: np.ndarray, last: tuple[int, int] | None, most: int,
                 increment: Decimal = CENT) -> dict:
    """The price path at most ``2 x most`` points: each bucket's low and high, in time order.
    ``p`` counts units of ``increment`` (cents by default)."""
    if len(t):
        order = np.argsort(t, kind="stable")
        t, p = t[order], p[order]
    if len(t) > 2 * most:
        edges = np.linspace(0, len(t), most + 1).astype(np.int64)[:-1]
        lo, hi = np.minimum.reduceat(p, edges), np.maximum.reduceat(p, edges)
        t = np.repeat(t[edges], 2)
        p = np.column_stack([lo, hi]).ravel()
    ms = (t // 1_000_000).tolist()
    if increment == CENT:
        prices = (p / 100.0).round(2).tolist()
    else:
        decimals = max(0, -increment.as_tuple().exponent)  # type: ignore[operator]
        prices = (p * float(increment)).round(decimals).tolist()
    if last is not None and (not ms or last[0] // 1_000_000 >= ms[-1]):
        ms.append(last[0] // 1_000_000)
        prices.append(round(last[1] / 100.0, 2) if increment == CENT else float(units_to_price(last[1], increment)))
    return {"t": ms, "p": prices}


# ------------------------------------------------------------------ the page
def _warnings(summary: dict, src: Sources) -> list[dict]:
    found = summary.get("warnings")
    if not isinstance(found, list):
        progress = ((src.state or {}).get("strategies") or {}).get("__replay__") or {}
        found = []
        for w in progress.get("warnings") or ():
            if isinstance(w, dict) and "title" in w:
                first = w.get("first_ns")
                found.append({"title": w["title"], "details": w.get("details", ""), "count": w.get("count", 1),
                              "first": iso_time(first) if isinstance(first, int) and first > 0 else None})
    return [w for w in found if isinstance(w, dict)]


def page_data(src: Sources, describe: Describe | None = None, recent: int = 50, chart_points: int = 1200,
              markers: int = 2000) -> dict:
    """Everything the page shows, as JSON-ready values."""
    status = src.status or {}
    # A replay rewrites its backup (and the venue) at every checkpoint, status.json only at its
    # end: a backup newer than status.json is a run going on now.
    from_backup = src.state is not None and src.state_mtime_ns > src.status_mtime_ns
    summary = status.get("summary") if isinstance(status.get("summary"), dict) else (src.summary_file or {})
    last = last_price(src)
    increment = price_increment(src)
    strategies = strategy_views(src, from_backup, last)
    fills = src.fills
    buys = [[f["time_ns"] // 1_000_000, float(f["price"])] for f in fills if f["side"] == "BUY"]
    sells = [[f["time_ns"] // 1_000_000, float(f["price"])] for f in fills if f["side"] != "BUY"]
    t, p = src.samples_t, src.samples_p
    if not len(t) and fills:  # no price picture (fills.csv alone): the fills draw the line
        t = np.asarray([f["time_ns"] for f in fills], np.int64)
        per = 100.0 if increment == CENT else 1 / float(increment)
        p = np.asarray([round(float(f["price"]) * per) for f in fills], np.int64)
    # a backup newer than status.json whose run is gone: it stopped without a word (killed)
    run_status = ("stopped" if src.run_alive is False else "running") if from_backup else summary.get("status")
    alert = status.get("alert") or summary.get("alert")
    return {
        "state_dir": None if src.state_dir is None else str(src.state_dir),
        "out_dir": None if src.out_dir is None else str(src.out_dir),
        "written_at": status.get("written_at"),
        "status": run_status,
        "from_backup": from_backup,
        "has_data": bool(status or src.state or fills or summary),
        "summary": {k: v for k, v in summary.items() if not isinstance(v, (dict, list)) and k != "alert"},
        "summary_fresh": not from_backup,
        "position": position_view(summary, not from_backup, src.fills, describe, last),
        "strategies": strategies,
        "warnings": _warnings(summary, src),
        "alert": alert,
        "fills": {"count": len(fills), "last_n": fills[-1]["n"] if fills else 0, "source": src.fills_source,
                  "recent": fill_rows(fills[::-1][:recent], describe),
                  "buys": thin(buys, markers), "sells": thin(sells, markers)},
        "chart": chart_series(t, p, src.samples_last, chart_points, increment),
        "problems": list(src.problems),
    }
