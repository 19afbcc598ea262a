"""The execution journal: every execution of the bot's orders since its state began.

A simulated venue keeps its own executions (and fills.csv is written from them). A real broker
only reports what one connection asked for (often just the current day's executions), so a live
run keeps each execution in the state folder as it arrives, and adds the ones a reconstruct
finds (fills while the bot was down or disconnected). fills.csv of a live run is written from
here, so it spans every restart, not only what one process saw.

Executions are keyed by ``exec_id`` (unique account-wide): one seen twice is stored once. A
commission reported after its fill fills in the row's commission when it arrives.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from .errors import InputError
from .model import Fill, Side

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    n INTEGER PRIMARY KEY, exec_id TEXT NOT NULL UNIQUE, order_id TEXT NOT NULL, perm_id TEXT NOT NULL,
    time_ns INTEGER NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, quantity INTEGER NOT NULL,
    price TEXT NOT NULL, commission TEXT, ref TEXT NOT NULL, order_quantity INTEGER NOT NULL,
    order_filled INTEGER NOT NULL, order_avg TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS commissions (exec_id TEXT PRIMARY KEY, commission TEXT NOT NULL);
"""


COLUMNS = ("n", "exec_id", "order_id", "perm_id", "time_ns", "symbol", "side", "quantity", "price", "commission",
           "ref", "order_quantity", "order_filled", "order_avg")


def _hint(path: Path) -> str:
    return (f"move it aside (mv {path} {path}.bad) and run again, or move the state folder aside or pass "
            "--state DIR for a fresh run; the broker's orders are the truth, so a live bot rebuilds from "
            "them (the broker still has its recent executions, but fills.csv will start afresh)")


class ExecutionJournal:
    """Opening the journal checks it (PRAGMA quick_check, its tables) before anything writes to
    it: a damaged or foreign file is bad input (exit 2) naming the file and the way out."""

    def __init__(self, path: Path):
        self.path = path
        existed = path.exists() and path.stat().st_size > 0
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # private from the first byte
        self.db = None
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
            if existed:
                problem = self.db.execute("PRAGMA quick_check").fetchone()[0]
                if problem != "ok":
                    raise sqlite3.DatabaseError(f"database disk image is malformed ({problem})")
                self._check_tables()
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise InputError(f"the execution journal is unreadable: {exc}", path, hint=_hint(path)) from None
        except InputError:
            self.close()
            raise

    def _check_tables(self) -> None:
        tables = {name for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return  # an empty database: a journal that was never written to
        if "executions" not in tables:
            raise InputError(f"the execution journal is not one: its tables are {', '.join(sorted(tables))}, "
                             "not bothost's", self.path, hint=_hint(self.path))
        columns = tuple(row[1] for row in self.db.execute("PRAGMA table_info(executions)"))
        if columns != COLUMNS:
            raise InputError("the execution journal was written by another bothost version (its executions "
                             f"table has the columns {', '.join(columns)})", self.path, hint=_hint(self.path))

    def add(self, fill: Fill) -> bool:
        """Keep ``fill``; False if it was already kept (its commission is filled in if it was
        missing)."""
        commission = None if fill.commission is None else str(fill.commission)
        if commission is None:
            # a commission that arrived before its fill (rare, but nothing is lost)
            row = self.db.execute("SELECT commission FROM commissions WHERE exec_id = ?", (fill.exec_id,)).fetchone()
            commission = row[0] if row else None
        cur = self.db.execute(
            "INSERT OR IGNORE INTO executions (exec_id, order_id, perm_id, time_ns, symbol, side, quantity, price, "
            "commission, ref, order_quantity, order_filled, order_avg) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (fill.exec_id, fill.order_id, fill.perm_id, fill.time_ns, fill.symbol, fill.side.value, fill.quantity,
             str(fill.price), commission, fill.ref, fill.order_quantity, fill.order_filled,
             str(fill.order_avg_price)))
        if cur.rowcount == 0 and commission is not None:
            self.db.execute("UPDATE executions SET commission = ? WHERE exec_id = ? AND commission IS NULL",
                            (commission, fill.exec_id))
        return cur.rowcount > 0

    def set_commission(self, exec_id: str, commission: Decimal) -> None:
        cur = self.db.execute("UPDATE executions SET commission = ? WHERE exec_id = ?", (str(commission), exec_id))
        if cur.rowcount == 0:
            self.db.execute("INSERT OR REPLACE INTO commissions VALUES (?, ?)", (exec_id, str(commission)))

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM executions").fetchone()[0]

    def iter_executions(self, since_ns: int | None = None) -> Iterator[Fill]:
        """Oldest first (by execution time, then arrival). A commission never reported reads 0."""
        sql = ("SELECT exec_id, order_id, perm_id, time_ns, symbol, side, quantity, price, commission, ref, "
               "order_quantity, order_filled, order_avg FROM executions")
        args: tuple = ()
        if since_ns is not None:
            sql += " WHERE time_ns > ?"
            args = (since_ns,)
        for (exec_id, order_id, perm_id, time_ns, symbol, side, qty, price, commission, ref, oq, of,
             avg) in self.db.execute(sql + " ORDER BY time_ns, n", args):
            yield Fill(exec_id, order_id, time_ns, symbol, Side(side), qty, Decimal(price),
                       Decimal(commission) if commission is not None else Decimal(0), ref, oq, of,
                       Decimal(avg), perm_id)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
