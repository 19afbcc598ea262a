"""``bothost status``: what a run left in its state folder, as readable tables.

Strategies publish facts with ``ctx.record(key, value)``; the engine writes them to
``status.json``. A list of mappings becomes a table, a mapping a two-column table, anything
else a line: the host needs to know nothing about any strategy to show it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .errors import InputError
from .run import read_status


def _table(title: str, value: Any) -> Table | str:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns = list(dict.fromkeys(k for row in value for k in row))
        table = Table(title=title)
        for col in columns:
            table.add_column(str(col))
        for row in value:
            table.add_row(*(str(row.get(c, "")) for c in columns))
        return table
    if isinstance(value, dict):
        table = Table(title=title, show_header=False)
        table.add_column("what")
        table.add_column("value")
        for k, v in value.items():
            if isinstance(v, (list, dict)) and v:
                continue  # shown as its own table
            table.add_row(str(k), str(v))
        return table
    if isinstance(value, list):
        return f"{title}: none" if not value else f"{title}:\n  " + "\n  ".join(map(str, value))
    return f"{title}: {value}"


def _render(console: Console, title: str, value: Any) -> None:
    console.print(_table(title, value))
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (list, dict)) and v:
                _render(console, f"{title} / {k}", v)


def render_status(console: Console, state_dir: Path) -> None:
    status = read_status(state_dir)
    if status is None:
        raise InputError("no run has written a status here yet", state_dir,
                         hint="run the bot first (bothost run CONFIG), or pass --state DIR")
    console.print(f"state folder: {state_dir}  (written {status.get('written_at', '?')})", markup=False)
    symbols = status.get("symbols") or {}
    for sid, records in (status.get("strategies") or {}).items():
        # several strategies, each on its own symbol: the symbol beside the strategy's name
        name = f"{sid} ({symbols[sid]})" if len(symbols) > 1 and symbols.get(sid) else sid
        for key, value in records.items():
            _render(console, f"{name}: {key}", value)
    summary = status.get("summary") or {}
    _render(console, "last run", {k: v for k, v in summary.items() if k not in ("alert", "by_strategy")})
    by_strategy = summary.get("by_strategy")
    if isinstance(by_strategy, dict) and by_strategy:
        # one row per strategy and symbol; the run's table above has the totals
        _render(console, "last run, per strategy",
                [{"strategy": sid, **row} for sid, row in by_strategy.items() if isinstance(row, dict)])
    if status.get("alert"):
        console.print(f"[bold red]last alert[/]\n{status['alert']}")
