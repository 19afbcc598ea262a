"""The ``fills_csv`` notifier: appends every fill of every strategy to a CSV file, as it happens.

A notifier is an *observer*: the engine calls every notifier's hooks beside the hooks of the
strategy an event belongs to, so this one's ``on_fill`` hears each strategy's executions and its
``on_commission`` the commissions a broker reports after the fill (IB does). It never places or
cancels anything.

Rows are flushed one by one, so a crash loses nothing written. An execution is written once:
a broker may deliver one again after a reconnect, and a restarted run reads the exec ids
already in the file before it appends.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, ConfigDict, Field

from bothost.hookspecs import BuildEnv, hookimpl
from bothost.model import CommissionReport, Fill

#: The bothost plugin API this module was written for.
BOTHOST_API = 1

#: How many executions are remembered to tell one delivered again (a broker replays the recent
#: ones after a reconnect): bounded, so a long replay's millions of fills do not grow the process.
REMEMBERED = 100_000

COLUMNS = ("event", "time_ns", "strategy", "exec_id", "order_id", "symbol", "side", "quantity", "price",
           "commission", "ref")

log = logging.getLogger("fills_csv")


class FillsCsvConfig(BaseModel):
    """``notify: - use: fills_csv`` in a config."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field("fills_log.csv", min_length=1,
                      description="the CSV appended to; a relative name is in the run's state folder")


def fill_row(fill: Fill, strategy: str) -> dict[str, str]:
    """The row of one execution (pure). An empty commission comes later as its own row."""
    return {"event": "fill", "time_ns": str(fill.time_ns), "strategy": strategy, "exec_id": fill.exec_id,
            "order_id": fill.order_id, "symbol": fill.symbol, "side": fill.side.value,
            "quantity": str(fill.quantity), "price": str(fill.price),
            "commission": "" if fill.commission is None else str(fill.commission), "ref": fill.ref}


def commission_row(report: CommissionReport, strategy: str) -> dict[str, str]:
    return {**dict.fromkeys(COLUMNS, ""), "event": "commission", "time_ns": str(report.time_ns),
            "strategy": strategy, "exec_id": report.exec_id, "commission": str(report.commission)}


def make_notifier(config: FillsCsvConfig, env: BuildEnv) -> FillsCsv:
    path = Path(config.file).expanduser()
    return FillsCsv(path if path.is_absolute() else env.state_dir / path)


class FillsCsv:
    def __init__(self, path: Path):
        self.path = path
        # The newest (event, exec_id) pairs written, oldest first (a dict keeps insertion order).
        self.written: dict[tuple[str, str], None] = {}
        self._out: TextIO | None = None
        self._writer: csv.DictWriter | None = None
        if path.exists():  # a restarted run appends to what the last one wrote
            with path.open(newline="", encoding="utf-8") as rows:
                for row in csv.DictReader(rows):
                    if row.get("exec_id"):
                        self._remember((row["event"], row["exec_id"]))

    def _remember(self, key: tuple[str, str]) -> None:
        self.written[key] = None
        if len(self.written) > REMEMBERED:
            del self.written[next(iter(self.written))]

    @hookimpl
    def on_fill(self, ctx, fill: Fill) -> None:
        self._append(fill_row(fill, ctx.strategy_id))

    @hookimpl
    def on_commission(self, ctx, report: CommissionReport) -> None:
        self._append(commission_row(report, ctx.strategy_id))

    @hookimpl
    def on_stop(self, ctx) -> None:
        if self._out is not None:
            self._out.close()
            self._out = self._writer = None

    def _append(self, row: dict[str, str]) -> None:
        key = (row["event"], row["exec_id"])
        if key in self.written:
            return  # delivered again (a reconnect, a restart): written once
        try:
            if self._writer is None:
                new = not self.path.exists() or self.path.stat().st_size == 0
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._out = self.path.open("a", newline="", encoding="utf-8")
                self._writer = csv.DictWriter(self._out, COLUMNS)
                if new:
                    self._writer.writeheader()
            self._writer.writerow(row)
            self._out.flush()  # row by row: a crash loses nothing written
        except OSError as exc:  # an observer must never stop the bot: the broker keeps the executions
            log.error("fills_csv: could not append to %s: %s", self.path, exc)
            return
        self._remember(key)


@hookimpl
def bothost_register(registry) -> None:
    registry.add_notifier("fills_csv", FillsCsvConfig, make_notifier,
                          summary="append every fill and late commission to a CSV file")
