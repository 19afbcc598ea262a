"""``bothost data fetch``: historical bars from Alpaca, written as the replay feed reads them.

The range is fetched window by window (alpaca-py pages each window with ``next_page_token``),
appended to ``FILE.partial`` with a note of how far it got (``FILE.partial.json``), so an
interrupted fetch run again goes on where it stopped. At the end the partial file becomes FILE
(CSV, or Parquet when FILE ends in .parquet). Alpaca refusing (bad keys, no subscription, rate
limits after alpaca-py's own retries) is exit 4 with Alpaca's reason; bad arguments exit 2.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import click

from bothost.errors import InputError
from bothost.hookspecs import BrokerUnavailable

HEADER = ["timestamp", "open", "high", "low", "close", "volume", "trade_count", "vwap"]
_TIMEFRAME = re.compile(r"(\d+)(Min|Hour|Day|Week|Month)")
#: Days per request window: small enough for progress and resume, big enough to be few.
_WINDOW_DAYS = {"Min": 5, "Hour": 90, "Day": 3650, "Week": 3650, "Month": 3650}


@dataclass(frozen=True)
class FetchPlan:
    symbol: str
    start: str  # ISO date
    end: str  # ISO date, inclusive
    timeframe: str
    feed: str
    adjustment: str

    def windows(self) -> list[tuple[datetime, datetime]]:
        """UTC [start, end) windows covering start 00:00 to the day after end 00:00."""
        unit = _TIMEFRAME.fullmatch(self.timeframe).group(2)
        step = timedelta(days=_WINDOW_DAYS[unit])
        lo = datetime.fromisoformat(self.start).replace(tzinfo=timezone.utc)
        hi = datetime.fromisoformat(self.end).replace(tzinfo=timezone.utc) + timedelta(days=1)
        out = []
        while lo < hi:
            out.append((lo, min(hi, lo + step)))
            lo += step
        return out


def parse_timeframe(text: str):
    """``1Min``, ``5Min``, ``1Hour``, ``1Day``... as alpaca-py's TimeFrame (bad: InputError)."""
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    m = _TIMEFRAME.fullmatch(text)
    if not m:
        raise InputError(f"--timeframe {text!r} is not a bar size",
                         hint="write it as Alpaca does: 1Min, 5Min, 15Min, 1Hour, 1Day")
    try:
        return TimeFrame(int(m.group(1)), TimeFrameUnit(m.group(2)))
    except ValueError as exc:
        raise InputError(f"--timeframe {text!r}: {exc}", hint="1-59Min, 1-23Hour, 1Day, 1Week, 1-12Month") from exc


def _iso_date(text: str, what: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise InputError(f"{what} {text!r} is not a date", hint="write it as YYYY-MM-DD") from None


def _progress_path(partial: Path) -> Path:
    return partial.with_name(partial.name + ".json")


def _resume_point(partial: Path, plan: FetchPlan) -> str | None:
    """Where an earlier run of the same fetch stopped (the end of its last whole window)."""
    note = _progress_path(partial)
    if not (partial.exists() and note.exists()):
        return None
    try:
        saved = json.loads(note.read_text())
    except (OSError, json.JSONDecodeError):
        saved = None
    if not isinstance(saved, dict) or saved.get("plan") != asdict(plan):
        raise InputError(f"{partial} is an unfinished fetch of other parameters", partial,
                         hint=f"run that fetch again to finish it, or delete {partial} and {note} to start this one")
    return saved.get("done_until")


def _client(key: str, secret: str, url: str):
    from alpaca.data.historical import StockHistoricalDataClient

    return StockHistoricalDataClient(key, secret, raw_data=True, url_override=url or None)


def _refused(exc: Exception) -> BrokerUnavailable:
    status = getattr(exc, "status_code", None)
    try:
        message = exc.message  # alpaca's APIError carries the service's own words
    except Exception:
        message = str(exc)[:300]
    hints = {401: "check ALPACA_API_KEY / ALPACA_SECRET_KEY", 403: "check the keys and the data plan (feed sip needs one)",
             422: "the request was not accepted: check the symbol, dates and timeframe",
             429: "rate limited: wait a minute and run the same command again (it resumes)"}
    return BrokerUnavailable(f"Alpaca refused the request{f' ({status})' if status else ''}: {message}"
                             + (f"; {hints[status]}" if status in hints else ""))


def fetch(plan: FetchPlan, out: Path, key: str, secret: str, url: str = "", progress=None) -> int:
    """Fetch ``plan`` into ``out``; returns the number of bars written in all. ``progress(i, n)``
    is told after each window."""
    from alpaca.data.enums import Adjustment, DataFeed
    from alpaca.data.requests import StockBarsRequest

    timeframe = parse_timeframe(plan.timeframe)
    partial = out.with_name(out.name + ".partial")
    done_until = _resume_point(partial, plan)
    if done_until is None:
        with open(partial, "w", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerow(HEADER)
    client = _client(key, secret, url)
    windows = plan.windows()
    rows_total = sum(1 for _ in open(partial)) - 1
    for i, (lo, hi) in enumerate(windows):
        if done_until is not None and hi.isoformat() <= done_until:
            if progress:
                progress(i + 1, len(windows))
            continue
        request = StockBarsRequest(symbol_or_symbols=plan.symbol, timeframe=timeframe, start=lo,
                                   end=hi - timedelta(microseconds=1), feed=DataFeed(plan.feed),
                                   adjustment=Adjustment(plan.adjustment))
        try:
            bars = client.get_stock_bars(request).get(plan.symbol, [])
        except Exception as exc:
            if type(exc).__name__ == "APIError" or exc.__class__.__module__.startswith(("requests", "urllib3")):
                raise _refused(exc) from exc
            raise
        with open(partial, "a", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            for b in bars:
                w.writerow([b["t"], repr(b["o"]), repr(b["h"]), repr(b["l"]), repr(b["c"]), b.get("v", ""),
                            b.get("n", ""), repr(b["vw"]) if b.get("vw") is not None else ""])
            fh.flush()
            os.fsync(fh.fileno())
        rows_total += len(bars)
        note = _progress_path(partial)
        note.write_text(json.dumps({"plan": asdict(plan), "done_until": hi.isoformat()}))
        if progress:
            progress(i + 1, len(windows))
    if out.suffix.lower() == ".parquet":
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        pq.write_table(pcsv.read_csv(partial), out)
        partial.unlink()
    else:
        os.replace(partial, out)
    _progress_path(partial).unlink(missing_ok=True)
    return rows_total


@click.command("fetch")
@click.argument("symbol")
@click.option("--start", required=True, metavar="YYYY-MM-DD", help="first day")
@click.option("--end", required=True, metavar="YYYY-MM-DD", help="last day (included)")
@click.option("--timeframe", default="1Min", show_default=True, help="bar size: 1Min, 5Min, 15Min, 1Hour, 1Day")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="CSV file, or .parquet")
@click.option("--feed", default="iex", show_default=True, type=click.Choice(["iex", "sip"]))
@click.option("--adjustment", default="raw", show_default=True, type=click.Choice(["raw", "split", "dividend", "all"]))
@click.option("--progress/--no-progress", default=True, help="a progress bar on a terminal")
def fetch_command(symbol, start, end, timeframe, out, feed, adjustment, progress):
    """Historical bars of SYMBOL from Alpaca (keys from ALPACA_API_KEY and ALPACA_SECRET_KEY;
    ALPACA_DATA_URL points at another data service, `bothost sim-alpaca` say), written as the
    replay feed reads them. Interrupted, the same command resumes."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bothost.cli import guarded

    @guarded
    def main():
        key, secret = os.environ.get("ALPACA_API_KEY", ""), os.environ.get("ALPACA_SECRET_KEY", "")
        if not key or not secret:
            raise InputError("ALPACA_API_KEY and ALPACA_SECRET_KEY must be set",
                             hint="export them from your Alpaca dashboard (Paper or Live > API keys)")
        first, last = _iso_date(start, "--start"), _iso_date(end, "--end")
        if last < first:
            raise InputError(f"--end {last} is before --start {first}", hint="swap them")
        parse_timeframe(timeframe)
        if not out.parent.exists():
            raise InputError(f"the folder of --out does not exist: {out.parent}", hint=f"mkdir -p {out.parent}")
        plan = FetchPlan(symbol.upper(), first, last, timeframe, feed, adjustment)
        console = Console(stderr=True)
        bar = Progress(TextColumn(f"fetch {plan.symbol} {timeframe}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("windows"), TimeElapsedColumn(), console=console, transient=True,
                       disable=not (progress and console.is_terminal))
        with bar:
            task = bar.add_task("fetch", total=len(plan.windows()))
            n = fetch(plan, out, key, secret, os.environ.get("ALPACA_DATA_URL", ""),
                      progress=lambda i, total: bar.update(task, completed=i))
        Console().print(f"wrote {n:,} bars of {plan.symbol} ({timeframe}, {first} to {last}) to {out}", markup=False)

    main()
