"""SQLite persistence of the simulated venue: orders, executions, positions, cash and clock.

The venue is committed in batches (a checkpoint), always between two ticks. Because a replay is
deterministic, a run killed at any moment and resumed from its last checkpoint reproduces the run
that was never killed, order ids included (I5).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from decimal import Decimal
from pathlib import Path

from bothost.errors import InputError
from bothost.state import state_write
from bothost.model import CENT, ExecutionColumns, Fill, OrderStatus, OrderType, Side

from .venue import SimOrder, Venue

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    quantity INTEGER NOT NULL, filled INTEGER NOT NULL, limit_cents INTEGER NOT NULL,
    order_type TEXT NOT NULL, aux_cents INTEGER, ref TEXT NOT NULL, placed_ns INTEGER NOT NULL,
    status TEXT NOT NULL, triggered INTEGER NOT NULL, fresh INTEGER NOT NULL,
    value_cents INTEGER NOT NULL, tif TEXT NOT NULL, outside_rth INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    n INTEGER PRIMARY KEY, exec_id TEXT NOT NULL, order_id TEXT NOT NULL, time_ns INTEGER NOT NULL,
    symbol TEXT NOT NULL, side TEXT NOT NULL, quantity INTEGER NOT NULL, price TEXT NOT NULL,
    commission TEXT NOT NULL, ref TEXT NOT NULL, order_quantity INTEGER NOT NULL,
    order_filled INTEGER NOT NULL, order_avg TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_time ON executions (time_ns);
"""


def _hint(path: Path) -> str:
    folder = path.parent
    return (f"{path.name} is the paper account itself (its orders, executions, cash and clock): restore it "
            f"from a copy if you have one, or start the paper account over: move the state folder aside "
            f"(mv {folder} {folder}.bad, or bothost run --fresh) or pass --state DIR for a fresh run "
            f"(deleting {path.name} restarts the paper account from nothing)")


#: Errors a damaged file can raise while it is read: SQLite's own, and values that do not parse.
_UNREADABLE = (sqlite3.DatabaseError, ValueError, KeyError, TypeError, ArithmeticError)


class _DecimalMemo(dict):
    """Decimal(text), parsed once per distinct text (bounded)."""

    def __missing__(self, text: str) -> Decimal:
        value = Decimal(text)
        if len(self) < 65536:
            self[text] = value
        return value


#: an execution's columns, in Fill's field order
_SELECT_EXECUTIONS = ("SELECT exec_id, order_id, time_ns, symbol, side, quantity, price, commission, ref, "
                      "order_quantity, order_filled, order_avg FROM executions")


# Rows are bound with exact built-in types only: sqlite3 stores a str enum as its text and a bool
# as 0/1 either way, but for any other type it first looks for an adapter (a failed __conform__
# lookup, an exception raised and cleared, per value). Six such values per order row were two
# thirds of a checkpoint's cost on a replay with many fills. The stored bytes are the same.
def _order_rows(orders):
    """The orders rows, in the table's column order."""
    return [(o.id, o.seq, o.symbol, o.side._value_, o.quantity, o.filled, o.limit, o.order_type._value_, o.aux,
             o.ref, o.placed_ns, o.status._value_, 1 if o.triggered else 0, 1 if o.fresh else 0, o.value, o.tif,
             1 if o.outside_rth else 0) for o in orders]


def _execution_rows(fills):
    """The executions rows (without ``n``, which SQLite numbers)."""
    return [(f.exec_id, f.order_id, f.time_ns, f.symbol, f.side._value_, f.quantity, str(f.price),
             str(f.commission), f.ref, f.order_quantity, f.order_filled, str(f.order_avg_price)) for f in fills]


class VenueStore:
    """The paper account's file. Opening it checks it (PRAGMA quick_check, the venue's tables, the
    schema version, an account in it when the folder has run before): anything else is bad input
    (exit 2) naming the file, what is wrong and the way out, and the file is left untouched."""

    def __init__(self, path: Path):
        self.path = path
        self.refused = False  # the file could not be read: it must not be written either
        existed = path.exists()
        empty = existed and path.stat().st_size == 0
        if not existed:
            # Private from the first byte: the venue file holds the account's whole history.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.db = None
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
            # Everything is checked, reading only, before anything is written to a file that existed.
            tables = set() if not existed or empty else self._inspect()
            meta = self._meta() if "meta" in tables else {}
            version = meta.get("schema")
            if version not in (None, SCHEMA_VERSION):
                raise InputError(f"venue database schema {version!r} is not {SCHEMA_VERSION!r}: it was written by "
                                 "another bothost version", path, hint=_hint(path))
            # No account in it, in a folder that has run before: the paper account is gone. A new
            # one started silently would resume the bot on an account that never traded.
            if existed and "next_order_id" not in meta and self._backup_exists():
                what = ("the file is empty (0 bytes)" if empty else "the file has no tables" if not tables
                        else "nothing was ever checkpointed in the file")
                raise InputError(f"the paper account is gone: {what}, but {self._backup.name} next to it says "
                                 "this folder has traded", path, hint=_hint(path))
            if "next_order_id" in meta:
                self._check_symbols(meta)
            # WAL + NORMAL: durable against a killed process (the case I5 is about), cheap commits.
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            # SQLite copies the WAL into the file (and syncs) every 1000 pages by default: on a
            # replay with many fills that was most of the store's time, the same pages copied
            # over and over. Copied every 50,000 pages (200 MB) and at close instead; each commit
            # is as durable as before (WAL, synchronous=NORMAL), and the WAL is cut back to 64 MB.
            self.db.execute("PRAGMA wal_autocheckpoint=50000")
            self.db.execute("PRAGMA journal_size_limit=67108864")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._refuse()
            raise InputError(f"the simulated venue's database is unreadable: {exc}", path, hint=_hint(path)) from None
        except InputError:
            self._refuse()
            raise

    @property
    def _backup(self) -> Path:
        return self.path.parent / "bot_state.json"

    def _backup_exists(self) -> bool:
        try:
            return self._backup.stat().st_size > 0
        except OSError:
            return False

    def _inspect(self) -> set[str]:
        """Read-only checks of a file that existed, before anything writes to it."""
        problem = self.db.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed ({problem})")
        tables = {name for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        ours = {"meta", "orders", "executions"}
        if tables and not tables & ours:
            raise InputError("not a simulated venue's database: its tables are "
                             f"{', '.join(sorted(tables))}, none of the venue's", self.path, hint=_hint(self.path))
        if tables and "meta" not in tables:
            raise InputError("the simulated venue's database is damaged: its meta table is missing", self.path,
                             hint=_hint(self.path))
        return tables

    def _check_symbols(self, meta: dict[str, str]) -> None:
        """An account of other symbols than the backup beside it: the two come from different runs."""
        try:
            backup = json.loads(self._backup.read_bytes())
            saved = {s["symbol"] for s in backup["strategies"].values()
                     if isinstance(s, dict) and isinstance(s.get("symbol"), str)}
        except Exception:  # noqa: BLE001 - no readable backup: the host says what is wrong with it
            return
        held = {key[9:] for key in meta if key.startswith("position:")}
        held |= {s for (s,) in self.db.execute("SELECT DISTINCT symbol FROM orders WHERE status IN (?, ?, ?)",
                                                (OrderStatus.SUBMITTED.value, OrderStatus.PENDING_CANCEL.value,
                                                 OrderStatus.INACTIVE.value))}
        if saved and held and not saved & held:
            raise InputError(f"this is the paper account of {', '.join(sorted(held))}, but "
                             f"{self._backup.name} next to it trades {', '.join(sorted(saved))}: they come from "
                             "different runs", self.path, hint=_hint(self.path))

    def _refuse(self) -> None:
        self.refused = True
        if self.db is not None:
            self.db.close()
            self.db = None

    def _meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta"))

    def load(self, venue: Venue) -> bool:
        """Fill ``venue`` from the last checkpoint. False when the store is empty (a new account,
        which is checkpointed at once: from here on the file always holds an account)."""
        try:
            loaded = self._load(venue)
        except _UNREADABLE as exc:
            self._refuse()
            raise InputError(f"the paper account in {self.path.name} is damaged: {type(exc).__name__}: {exc}",
                             self.path, hint=_hint(self.path)) from None
        if not loaded:
            self.checkpoint(venue)
        return loaded

    def _load(self, venue: Venue) -> bool:
        meta = self._meta()
        if "next_order_id" not in meta:
            return False
        venue.next_order_id = int(meta["next_order_id"])
        venue.next_exec_id = int(meta["next_exec_id"])
        venue.clock_ns = int(meta["clock_ns"]) if meta.get("clock_ns") else None
        venue.last = int(meta["last"]) if meta.get("last") else None
        venue.cash = int(meta["cash"])
        venue.fees = Decimal(meta["fees"])
        for key, value in meta.items():
            if key.startswith("position:"):
                venue.position[key[9:]] = int(value)
            elif key.startswith("cost:"):
                venue.cost[key[5:]] = int(value)
        rows = self.db.execute(
            "SELECT id, seq, symbol, side, quantity, filled, limit_cents, order_type, aux_cents, ref, "
            "placed_ns, triggered, fresh, value_cents, tif, outside_rth, status FROM orders "
            "WHERE status IN (?, ?, ?) ORDER BY seq",
            (OrderStatus.SUBMITTED.value, OrderStatus.PENDING_CANCEL.value, OrderStatus.INACTIVE.value),
        )
        for (oid, seq, symbol, side, qty, filled, limit, otype, aux, ref, placed, trig, fresh, value, tif, rth,
             status) in rows:
            order = SimOrder.__new__(SimOrder)
            order.id, order.seq, order.symbol, order.side = oid, seq, symbol, Side(side)
            order.quantity, order.filled, order.limit, order.order_type = qty, filled, limit, OrderType(otype)
            order.aux, order.ref, order.placed_ns, order.status = aux, ref, placed, OrderStatus(status)
            order.triggered, order.fresh, order.value = bool(trig), bool(fresh), value
            order.tif, order.outside_rth = tif, bool(rth)
            order.increment = venue.increments.get(symbol, CENT)  # the units limit_cents counts
            if order.status is OrderStatus.INACTIVE:
                venue.orders[order.id] = order  # parked: listed, never matched
                continue
            venue.add(order)
            if order.status is OrderStatus.PENDING_CANCEL:
                venue.cancelling.append(order)
            if order.fresh:
                venue.arriving.append(order)  # placed on the last tick before the checkpoint
        return True

    def iter_executions(self, since_ns: int | None = None):
        """Checkpointed executions, oldest first, those after ``since_ns`` when given."""
        sql = _SELECT_EXECUTIONS
        cursor = (self.db.execute(sql + " ORDER BY n") if since_ns is None
                  else self.db.execute(sql + " WHERE time_ns > ? ORDER BY n", (since_ns,)))
        # A run repeats a few hundred prices and commissions: each text is parsed once.
        dec = _DecimalMemo()
        sides = {s.value: s for s in Side}
        while rows := cursor.fetchmany(4096):
            for exec_id, order_id, time_ns, symbol, side, qty, price, commission, ref, oq, of, avg in rows:
                side_ = sides.get(side) or Side(side)
                yield Fill(exec_id, order_id, time_ns, symbol, side_, qty, dec[price], dec[commission],
                           ref, oq, of, dec[avg])

    def iter_execution_columns(self, chunk: int = 65536):
        """The checkpointed executions, oldest first, ``chunk`` at a time as columns (no object
        per execution: fills.csv of a long replay reads a million of them)."""
        cursor = self.db.execute(_SELECT_EXECUTIONS + " ORDER BY n")
        dec = _DecimalMemo()
        sides = {s.value: s for s in Side}
        while rows := cursor.fetchmany(chunk):
            (exec_id, order_id, time_ns, symbol, side, qty, price, commission, ref, oq, of,
             avg) = zip(*rows)
            yield ExecutionColumns(exec_id, order_id, time_ns, symbol,
                                   [sides.get(v) or Side(v) for v in side], qty,
                                   [dec[v] for v in price], [dec[v] for v in commission], ref, oq, of,
                                   [dec[v] for v in avg])

    @staticmethod
    def _fill(row) -> Fill:
        exec_id, order_id, time_ns, symbol, side, qty, price, commission, ref, oq, of, avg = row
        return Fill(exec_id, order_id, time_ns, symbol, Side(side), qty, Decimal(price), Decimal(commission),
                    ref, oq, of, Decimal(avg))

    def checkpoint(self, venue: Venue) -> None:
        """Write what changed since the last checkpoint, in one transaction. A failure (a full
        disk) leaves the file at the previous checkpoint; in a run it is the run's critical alert
        (see ``bothost.state.state_write``)."""
        if self.refused:
            return  # never write over a file that could not be read: it may be all the user has
        state_write(self.path, lambda: self._checkpoint(venue))

    def _checkpoint(self, venue: Venue) -> None:
        db = self.db
        db.execute("BEGIN")
        try:
            if venue.dirty_orders:
                db.executemany("INSERT OR REPLACE INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                               _order_rows(venue.dirty_orders.values()))
            if venue.unsaved:
                db.executemany(
                    "INSERT INTO executions (exec_id, order_id, time_ns, symbol, side, quantity, price, "
                    "commission, ref, order_quantity, order_filled, order_avg) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    _execution_rows(venue.unsaved),
                )
            meta = {
                "schema": SCHEMA_VERSION,
                "next_order_id": str(venue.next_order_id),
                "next_exec_id": str(venue.next_exec_id),
                "clock_ns": "" if venue.clock_ns is None else str(venue.clock_ns),
                "last": "" if venue.last is None else str(venue.last),
                "cash": str(venue.cash),
                "fees": str(venue.fees),
            }
            meta.update({f"position:{s}": str(q) for s, q in venue.position.items()})
            meta.update({f"cost:{s}": str(c) for s, c in venue.cost.items()})
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already (SQLITE_FULL)
                db.execute("ROLLBACK")
            raise
        venue.dirty_orders.clear()
        venue.unsaved.clear()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
