"""IB identities of the simulated venue's orders and executions, persisted next to the venue.

The venue (:mod:`bothost_plugins.sim_broker.venue`) knows orders by its own integer id and
executions as ``E<n>``. TWS clients know an order by (clientId, orderId) and an account-wide
permId, and an execution by an IB-style execId. This module keeps that mapping, and what IB adds
(status text, account, Inactive/held orders, seeded foreign orders and non-stock positions), in
tables of the venue's own SQLite file, written through a second connection.

Crash safety without a shared transaction: every change is committed here first and then in the
venue (``Exchange.commit``), and nothing is told to a client before both commits. A kill between
the two leaves rows here that the venue never committed; :meth:`IdentityStore.load` drops them
(legs whose venue id is at or above the venue's ``next_order_id``, executions whose number is at
or above ``next_exec_id``) and recomputes what depends on them (filled quantity, status, the
order's current leg).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS sim_tws_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sim_tws_orders (
    perm_id INTEGER PRIMARY KEY, client_id INTEGER NOT NULL, order_id INTEGER NOT NULL,
    account TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, quantity INTEGER NOT NULL,
    order_type TEXT NOT NULL, limit_price TEXT NOT NULL, aux_price TEXT, tif TEXT NOT NULL,
    outside_rth INTEGER NOT NULL, ref TEXT NOT NULL, status TEXT NOT NULL, placed_ns INTEGER NOT NULL,
    done_ns INTEGER, seeded INTEGER NOT NULL, why TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sim_tws_orders_client ON sim_tws_orders (client_id, order_id);
CREATE TABLE IF NOT EXISTS sim_tws_legs (venue_id INTEGER PRIMARY KEY, perm_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sim_tws_execs (
    n INTEGER PRIMARY KEY, venue_exec TEXT NOT NULL, exec_id TEXT NOT NULL, perm_id INTEGER NOT NULL,
    cum_qty INTEGER NOT NULL, avg_price TEXT NOT NULL, realized TEXT
);
CREATE TABLE IF NOT EXISTS sim_tws_positions (
    con_id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, sec_type TEXT NOT NULL, expiry TEXT NOT NULL,
    strike REAL NOT NULL, right_ TEXT NOT NULL, multiplier TEXT NOT NULL, exchange TEXT NOT NULL,
    currency TEXT NOT NULL, local_symbol TEXT NOT NULL, trading_class TEXT NOT NULL,
    quantity TEXT NOT NULL, avg_cost TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sim_tws_clients (
    client_id INTEGER PRIMARY KEY, max_order_id INTEGER NOT NULL, mark_tick INTEGER, mark_phase TEXT
);
"""

WORKING = frozenset({"PreSubmitted", "Submitted"})
DONE = frozenset({"Filled", "Cancelled", "ApiCancelled"})


@dataclass(slots=True, eq=False)
class IbOrder:
    perm_id: int
    client_id: int
    order_id: int
    account: str
    symbol: str
    side: str  # BUY / SELL
    quantity: int
    order_type: str  # LMT / LIT
    limit: Decimal
    aux: Decimal | None
    tif: str
    outside_rth: bool
    ref: str
    status: str  # IB status text
    placed_ns: int
    done_ns: int | None = None
    seeded: bool = False
    why: str = ""
    venue_id: int | None = None  # the current leg at the venue (None: never reached it)
    filled: int = 0
    value: int = 0  # cents, Σ quantity x price
    last_fill: int = 0  # cents

    @property
    def working(self) -> bool:
        return self.status in WORKING

    def avg_text(self) -> str:
        if not self.filled:
            return "0"
        return _avg_text(self.value, self.filled)


def _avg_text(value_cents: int, qty: int) -> str:
    if value_cents % qty == 0:
        c = value_cents // qty
        return f"{c // 100}.{c % 100:02d}"
    return format((Decimal(value_cents) / qty / 100).quantize(Decimal("0.000001")).normalize(), "f")


@dataclass(slots=True)
class ExecRecord:
    n: int  # the venue's execution number (E<n>)
    exec_id: str
    perm_id: int
    order_id: int
    client_id: int
    time_ns: int
    symbol: str
    side: str  # BUY / SELL
    shares: int
    price: Decimal
    commission: Decimal
    cum_qty: int
    avg_price: str
    ref: str
    realized: Decimal | None


@dataclass(slots=True)
class SeededPosition:
    con_id: int
    symbol: str
    sec_type: str
    expiry: str
    strike: float
    right: str
    multiplier: str
    exchange: str
    currency: str
    local_symbol: str
    trading_class: str
    quantity: Decimal
    avg_cost: Decimal


def exec_id_for(n: int) -> str:
    """IB-style execution id, stable for the venue's execution number n."""
    return f"0000e1b2.{0x65a1b2c3 + n:08x}.01.01"


class IdentityStore:
    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.dirty_orders: dict[int, IbOrder] = {}
        self.new_legs: list[tuple[int, int]] = []
        self.new_execs: list[ExecRecord] = []
        self.dirty_clients: dict[int, tuple[int, int | None, str | None]] = {}
        self.dirty_meta: dict[str, str] = {}
        self.dirty_positions: dict[int, SeededPosition | None] = {}

    # ------------------------------------------------------------------ reading
    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM sim_tws_meta"))

    def load(self, next_order_id: int, next_exec_id: int, venue_status: dict[int, str]):
        """Everything, consistent with the venue's committed state (see the module doc).

        ``venue_status``: venue order id -> 'submitted'/'filled'/'cancelled' from the venue's
        orders table. Returns (orders by perm id, leg -> perm id, exec rows by n, clients,
        seeded positions).
        """
        db = self.db
        db.execute("BEGIN")
        db.execute("DELETE FROM sim_tws_legs WHERE venue_id >= ?", (next_order_id,))
        db.execute("DELETE FROM sim_tws_execs WHERE n >= ?", (next_exec_id,))
        db.execute("COMMIT")
        orders: dict[int, IbOrder] = {}
        for row in db.execute(
                "SELECT perm_id, client_id, order_id, account, symbol, side, quantity, order_type, limit_price, "
                "aux_price, tif, outside_rth, ref, status, placed_ns, done_ns, seeded, why FROM sim_tws_orders"):
            (perm, cid, oid, acct, sym, side, qty, otype, limit, aux, tif, rth, ref, status, placed, done,
             seeded, why) = row
            orders[perm] = IbOrder(perm, cid, oid, acct, sym, side, qty, otype, Decimal(limit),
                                   None if aux is None else Decimal(aux), tif, bool(rth), ref, status, placed,
                                   done, bool(seeded), why)
        legs: dict[int, int] = {}
        for venue_id, perm in db.execute("SELECT venue_id, perm_id FROM sim_tws_legs ORDER BY venue_id"):
            legs[venue_id] = perm
            o = orders.get(perm)
            if o is not None:
                o.venue_id = venue_id  # ascending: the last one is the current leg
        execs = {n: (vx, xid, perm, cum, avg, None if realized is None else Decimal(realized))
                 for n, vx, xid, perm, cum, avg, realized in db.execute(
                     "SELECT n, venue_exec, exec_id, perm_id, cum_qty, avg_price, realized FROM sim_tws_execs")}
        clients = {cid: (mx, tick, phase) for cid, mx, tick, phase in db.execute(
            "SELECT client_id, max_order_id, mark_tick, mark_phase FROM sim_tws_clients")}
        positions = [SeededPosition(cid, sym, st, exp, strike, right, mult, exch, cur, loc, tc, Decimal(q), Decimal(a))
                     for cid, sym, st, exp, strike, right, mult, exch, cur, loc, tc, q, a in db.execute(
                         "SELECT con_id, symbol, sec_type, expiry, strike, right_, multiplier, exchange, currency, "
                         "local_symbol, trading_class, quantity, avg_cost FROM sim_tws_positions")]
        # orders that lost their only leg (placed, committed here, never in the venue): gone
        for perm, o in list(orders.items()):
            if o.venue_id is None and o.status in WORKING | {"Filled"}:
                del orders[perm]
                self.db.execute("DELETE FROM sim_tws_orders WHERE perm_id = ?", (perm,))
            elif o.venue_id is not None and o.status not in ("PendingSubmit",):
                vs = venue_status.get(o.venue_id)
                if vs == "submitted" and o.status not in WORKING:
                    o.status = "Submitted"  # its cancel/fill was never committed in the venue
                    o.done_ns = None
                elif vs == "filled" and o.status != "Filled":
                    o.status = "Filled"
                elif vs == "cancelled" and o.status in WORKING:
                    o.status = "Cancelled"
        return orders, legs, execs, clients, positions

    # ------------------------------------------------------------------ writing
    def commit(self) -> None:
        if not (self.dirty_orders or self.new_legs or self.new_execs or self.dirty_clients or self.dirty_meta
                or self.dirty_positions):
            return
        db = self.db
        db.execute("BEGIN")
        try:
            if self.dirty_orders:
                db.executemany(
                    "INSERT OR REPLACE INTO sim_tws_orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(o.perm_id, o.client_id, o.order_id, o.account, o.symbol, o.side, o.quantity, o.order_type,
                      str(o.limit), None if o.aux is None else str(o.aux), o.tif, int(o.outside_rth), o.ref,
                      o.status, o.placed_ns, o.done_ns, int(o.seeded), o.why) for o in self.dirty_orders.values()])
            if self.new_legs:
                db.executemany("INSERT OR REPLACE INTO sim_tws_legs VALUES (?, ?)", self.new_legs)
            if self.new_execs:
                db.executemany(
                    "INSERT OR REPLACE INTO sim_tws_execs VALUES (?,?,?,?,?,?,?)",
                    [(e.n, f"E{e.n}", e.exec_id, e.perm_id, e.cum_qty, e.avg_price,
                      None if e.realized is None else str(e.realized)) for e in self.new_execs])
            if self.dirty_clients:
                db.executemany("INSERT OR REPLACE INTO sim_tws_clients VALUES (?, ?, ?, ?)",
                               [(cid, *v) for cid, v in self.dirty_clients.items()])
            if self.dirty_positions:
                for con_id, p in self.dirty_positions.items():
                    if p is None:
                        db.execute("DELETE FROM sim_tws_positions WHERE con_id = ?", (con_id,))
                    else:
                        db.execute("INSERT OR REPLACE INTO sim_tws_positions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                   (p.con_id, p.symbol, p.sec_type, p.expiry, p.strike, p.right, p.multiplier,
                                    p.exchange, p.currency, p.local_symbol, p.trading_class, str(p.quantity),
                                    str(p.avg_cost)))
            if self.dirty_meta:
                db.executemany("INSERT OR REPLACE INTO sim_tws_meta VALUES (?, ?)", self.dirty_meta.items())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.dirty_orders.clear()
        self.new_legs.clear()
        self.new_execs.clear()
        self.dirty_clients.clear()
        self.dirty_meta.clear()
        self.dirty_positions.clear()

    def write_cursor(self, value: str) -> None:
        """The replay cursor alone, in one cheap autocommitted statement (every tick)."""
        self.db.execute("INSERT OR REPLACE INTO sim_tws_meta VALUES ('cursor', ?)", (value,))

    def close(self) -> None:
        self.db.close()
