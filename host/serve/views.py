"""The page's data, from what the bot's files said (:class:`~.sources.Sources`). Pure: no I/O.

Where each thing comes from:

* the book (open lots with purchase and target, working orders, anchor, realized P&L, fees) and
  the last reconstruct's findings: ``status.json``, the strategies' own records, exactly what
  ``bothost status`` shows. While a replay runs it writes ``status.json`` only at its end, but
  ``bot_state.json`` (the strategies' backup) and the venue at every checkpoint: when the backup
  is the newer file, the lots, anchor and P&L come from it and the working orders from the
  simulated venue's open orders.
* the position marked to the last price (unrealized P&L, equity): ``status.json``'s summary once
  a run has ended; meanwhile computed the same way from the lots and the newest price the run
  saved (``price_samples.npz``).
* the trigger ladder: the grid's chain from the anchor, ``T(k) = round2(T(k-1) x (1 - buy_step))``,
  with ``buy_step`` and the number of levels from the book (``grid``), or from the config the
  run recorded in ``bot_state.json``.
* fills: the venue's executions (``venue.sqlite``), a live run's journal (``executions.sqlite``)
  or ``fills.csv``; the chart: ``price_samples.npz`` with the fills marked.

Money stays text as the bot wrote it (``"8088.60"``): the page shows the same characters as
``bothost status``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from bothost.model import round2
from bothost.report import iso_time, money

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
    d = dec(value)
    return None if d is None else f"{d:.2f}"


# ------------------------------------------------------------------ the grid's ladder
def trigger_chain(anchor: Decimal, buy_step: Decimal, n_levels: int) -> list[Decimal]:
    """``T(0) = anchor``, ``T(k) = round2(T(k-1) x (1 - buy_step))`` (the grid's own chain)."""
    out: list[Decimal] = []
    t, factor = anchor, Decimal(1) - buy_step
    for k in range(max(0, n_levels)):
        if k:
            t = round2(t * factor)
        out.append(t)
    return out


def grid_params(book: dict, config: dict | None) -> dict | None:
    """buy_step (a fraction), profit_target, queue_depth and levels: from the book's ``grid``,
    else from the strategy's section of the config the run recorded."""
    for source in (book.get("grid"), config):
        if isinstance(source, dict) and dec(source.get("buy_step")) is not None:
            levels = source.get("levels")
            depth = source.get("queue_depth")
            return {"buy_step": dec(source["buy_step"]), "profit_target": dec(source.get("profit_target")),
                    "queue_depth": depth if isinstance(depth, int) else None,
                    "levels": levels if isinstance(levels, int) and levels > 0 else None}
    return None


def ladder(book: dict, params: dict | None, last: Decimal | None, around: int = 6) -> dict | None:
    """The grid's levels around the last price: each trigger, the lot held there (purchase and
    target) and the BUY working there. None without an anchor or the grid's buy_step."""
    anchor = dec(book.get("anchor"))
    if anchor is None or params is None or not 0 < params["buy_step"] < 1:
        return None
    lots = [lot for lot in book.get("lots") or () if isinstance(lot, dict)]
    queue = [b for b in book.get("queue") or () if isinstance(b, dict)]
    entry = book.get("entry") if isinstance(book.get("entry"), dict) else None
    levels = known = params["levels"]
    if levels is None:  # not said: as deep as anything held or working, and a few beyond
        seen = [x.get("level") for x in (*lots, *queue) if isinstance(x.get("level"), int)]
        levels = max(seen, default=0) + (params["queue_depth"] or 0) + around + 1
    chain = trigger_chain(anchor, params["buy_step"], min(levels, 10_000))
    if last is None:
        deepest = book.get("deepest_level")
        center = deepest + 1 if isinstance(deepest, int) else 0
    else:
        center = next((k for k, t in enumerate(chain) if t < last), len(chain))
    lo = max(0, center - around)
    hi = min(len(chain), max(center + around, lo + 2 * around))
    lo = max(0, min(lo, hi - 2 * around))
    rows = []
    for k in range(lo, hi):
        rows.append({
            "level": k,
            "trigger": f"{chain[k]:.2f}" if k else str(chain[k]),
            "above_last": last is not None and chain[k] >= last,
            "lots": [{"quantity": lot.get("quantity"), "purchase": lot.get("purchase"),
                      "sell_price": lot.get("sell_price")} for lot in lots if lot.get("level") == k],
            "buys": [{"role": "queue", "order_id": b.get("order_id"), "quantity": b.get("quantity"),
                      "price": b.get("price"), "filled": b.get("filled", 0)} for b in queue if b.get("level") == k]
                    + ([{"role": "entry", "order_id": entry.get("order_id"), "quantity": entry.get("quantity"),
                         "price": entry.get("price"), "filled": entry.get("filled", 0)}] if entry and k == 0 else []),
        })
    return {"buy_step": str(params["buy_step"]), "levels": known, "last": None if last is None else f"{last:.2f}",
            "next_level": center if last is not None and center < len(chain) else None, "rows": rows}


# ------------------------------------------------------------------ the book
def _backup_book(backup: dict) -> dict:
    """The book as a strategy's backup section (bot_state.json) has it: lots, anchor, P&L."""
    lots = [lot for lot in backup.get("lots") or () if isinstance(lot, dict)]
    return {
        "symbol": backup.get("symbol"),
        "anchor": backup.get("anchor"),
        "lots": lots,
        "open_lots": len(lots),
        "shares": sum(int(lot.get("quantity") or 0) for lot in lots),
        "deepest_level": max((lot["level"] for lot in lots if isinstance(lot.get("level"), int)), default=None),
        "realized_pnl": backup.get("gross_pnl"),
        "fees": backup.get("fees"),
        "net_realized_pnl": backup.get("realized_pnl"),
        "last_event_ns": backup.get("last_event_ns"),
    }


def _venue_working(sid: str, orders: list[dict], describe: Describe | None) -> tuple[list[dict], dict | None] | None:
    """The queue and the entry of strategy ``sid`` from the simulated venue's open orders."""
    if describe is None:
        return None
    queue, entry = [], None
    for o in orders:
        info = describe(o.get("ref") or "") or {}
        if o.get("side") != "BUY" or info.get("strategy", sid) != sid:
            continue
        price = f"{Decimal(int(o['limit_cents'])) / 100:.2f}"
        if info.get("role") == "entry":
            entry = {"order_id": o["order_id"], "quantity": o["quantity"], "price": price, "filled": o["filled"],
                     "placed_ns": o.get("placed_ns")}
        elif info.get("role") == "queue":
            queue.append({"order_id": o["order_id"], "level": info.get("level"), "quantity": o["quantity"],
                          "price": price, "filled": o["filled"],
                          **({"inactive": True} if o.get("status") == "inactive" else {})})
    queue.sort(key=lambda b: (b["level"] if isinstance(b["level"], int) else -1, b["order_id"]))
    return queue, entry


def _strategy_config(src: Sources, book: dict, index: int) -> dict | None:
    """This strategy's section of the config the run recorded (bot_state.json ``__config__``)."""
    recorded = ((src.state or {}).get("strategies") or {}).get("__config__") or {}
    sections = [s for s in recorded.get("strategies") or () if isinstance(s, dict)]
    same = [s for s in sections if s.get("symbol") == book.get("symbol")]
    if len(same) == 1:
        return same[0]
    return sections[index] if index < len(sections) else None


def strategy_views(src: Sources, from_backup: bool, describe: Describe | None, last: Decimal | None) -> list[dict]:
    status_records = (src.status or {}).get("strategies") or {}
    backups = {k: v for k, v in ((src.state or {}).get("strategies") or {}).items()
               if not k.startswith("__") and isinstance(v, dict)}
    out = []
    for index, sid in enumerate(dict.fromkeys([*status_records, *backups])):
        records = status_records.get(sid) or {}
        book = dict(records.get("book") or {}) if isinstance(records.get("book"), dict) else {}
        source = "status.json"
        if from_backup and sid in backups:
            book.update(_backup_book(backups[sid]))
            source = "bot_state.json"
            working = _venue_working(sid, src.venue_orders, describe) if src.fills_source == "venue.sqlite" else None
            if working is not None:
                book["queue"], book["entry"] = working
        params = grid_params(book, _strategy_config(src, book, index))
        findings = records.get("reconstruct")
        out.append({
            "id": sid,
            "source": source,
            "book": book,
            "reconstruct": [str(f) for f in findings] if isinstance(findings, list) else [],
            "ladder": ladder(book, params, last),
            "records": {k: v for k, v in records.items() if k not in ("book", "reconstruct")},
        })
    return out


# ------------------------------------------------------------------ position and P&L
def last_price(src: Sources) -> Decimal | None:
    if src.samples_last is not None:
        return Decimal(src.samples_last[1]) / 100
    cents = src.venue_meta.get("last")
    if cents not in (None, ""):
        try:
            return Decimal(int(cents)) / 100
        except ValueError:
            pass
    summary = (src.status or {}).get("summary") or src.summary_file or {}
    return dec(summary.get("last_price"))


def position_view(summary: dict, summary_fresh: bool, strategies: list[dict], fills: list[dict],
                  last: Decimal | None) -> dict:
    """The summary's figures when a finished run wrote them; else marked to ``last`` here."""
    if summary_fresh and "last_price" in summary:
        return {"source": "summary", **{k: summary.get(k) for k in POSITION_KEYS}}
    shares, cost = 0, Decimal(0)
    realized = fees = net = Decimal(0)
    for s in strategies:
        book = s["book"]
        for lot in book.get("lots") or ():
            q, p = lot.get("quantity"), dec(lot.get("purchase"))
            if isinstance(q, int) and p is not None:
                shares, cost = shares + q, cost + q * p
        realized += dec(book.get("realized_pnl")) or 0
        fees += dec(book.get("fees")) or 0
        net += dec(book.get("net_realized_pnl")) or 0
    cash, held = Decimal(0), 0
    for f in fills:
        value = f["quantity"] * Decimal(f["price"])
        if f["side"] == "BUY":
            cash, held = cash - value, held + f["quantity"]
        else:
            cash, held = cash + value, held - f["quantity"]
        cash -= Decimal(f["commission"])
    market = None if last is None else shares * last
    unrealized = None if market is None else market - cost
    equity = None if last is None and held else cash + held * (last or 0)
    return {
        "source": "computed",
        "open_position": shares,
        "last_price": None if last is None else f"{last:.2f}",
        "open_cost": _money(cost),
        "market_value": _money(market),
        "unrealized_pnl": _money(unrealized),
        "realized_pnl": _money(realized),
        "fees": _money(fees),
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


def chart_series(t: np.ndarray, p: np.ndarray, last: tuple[int, int] | None, most: int) -> dict:
    """The price path at most ``2 x most`` points: each bucket's low and high, in time order."""
    if len(t):
        order = np.argsort(t, kind="stable")
        t, p = t[order], p[order]
    if len(t) > 2 * most:
        edges = np.linspace(0, len(t), most + 1).astype(np.int64)[:-1]
        lo, hi = np.minimum.reduceat(p, edges), np.maximum.reduceat(p, edges)
        t = np.repeat(t[edges], 2)
        p = np.column_stack([lo, hi]).ravel()
    ms = (t // 1_000_000).tolist()
    prices = (p / 100.0).round(2).tolist()
    if last is not None and (not ms or last[0] // 1_000_000 >= ms[-1]):
        ms.append(last[0] // 1_000_000)
        prices.append(round(last[1] / 100.0, 2))
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
    strategies = strategy_views(src, from_backup, describe, last)
    fills = src.fills
    buys = [[f["time_ns"] // 1_000_000, float(f["price"])] for f in fills if f["side"] == "BUY"]
    sells = [[f["time_ns"] // 1_000_000, float(f["price"])] for f in fills if f["side"] != "BUY"]
    t, p = src.samples_t, src.samples_p
    if not len(t) and fills:  # no price picture (fills.csv alone): the fills draw the line
        t = np.asarray([f["time_ns"] for f in fills], np.int64)
        p = np.asarray([round(float(f["price"]) * 100) for f in fills], np.int64)
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
        "position": position_view(summary, not from_backup, strategies, src.fills, last),
        "strategies": strategies,
        "warnings": _warnings(summary, src),
        "alert": alert,
        "fills": {"count": len(fills), "last_n": fills[-1]["n"] if fills else 0, "source": src.fills_source,
                  "recent": fill_rows(fills[::-1][:recent], describe),
                  "buys": thin(buys, markers), "sells": thin(sells, markers)},
        "chart": chart_series(t, p, src.samples_last, chart_points),
        "problems": list(src.problems),
    }
