"""The execution journal: every execution of the bot's orders since its state began.

A simulated venue keeps its own executions (and fills.csv is written from them). A real broker
only reports what one connection asked for (IB: the executions of the current day), so a live
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


class ExecutionJournal:
    def __init__(self, path: Path):
        self.path = path
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # private from the first byte
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            problem = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise sqlite3.DatabaseError(problem)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"the execution journal is unreadable: {exc}", path,
                             hint=f"move it aside (mv {path} {path}.bad); the broker still has its "
                                  "recent executions, but fills.csv will start afresh") from exc

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
        self.db.close()
