"""The bridge between TWS sessions and the simulated venue: orders, executions, pacing, faults.

One :class:`Exchange` per simulator run. It owns the venue (``sim_broker.venue.Venue``, used as it
is), its SQLite store (``VenueStore``) plus the IB identities next to it (:mod:`.identities`), the
replay of the data file (``replay_feed.FileFeed``: the same ticks as a backtest of that file), the
pacing (lockstep / realtime / xN) and the faults. Sessions (``server.Session``) call it for every
request; it answers through them.

The order of events per tick is the venue's (sim-venue.md): the venue's lazy ``match`` generator
draws one fill at a time; each fill goes to the owning client (execDetails, commissionReport,
openOrder/orderStatus) and, in lockstep, the next fill is drawn only after the owner acked it;
then the tick itself goes to every subscriber and, in lockstep, the next tick waits for every
pacer's ack. Client requests are applied to the venue as they arrive, so an order placed while
tick k is handled is live from tick k+1 and "marketable on arrival" is judged at tick k's price.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from bothost.model import OrderRequest, OrderStatus, OrderType, OrderUpdate, Side
from bothost_plugins.replay_feed.feed import FileFeed
from bothost_plugins.sim_broker.store import VenueStore
from bothost_plugins.sim_broker.venue import Commission, Venue

from . import codec
from .codec import ExecFilter, ExecView, Instrument, OrderView, PlaceOrderReq
from .faults import Fault
from .identities import DONE, ExecRecord, IbOrder, IdentityStore, SeededPosition, exec_id_for
from .wire import UNSET_DOUBLE_TEXT, cents_text

if TYPE_CHECKING:
    from .server import Session

log = logging.getLogger("bothost.sim_tws")

NS = 1_000_000_000
NEW_YORK = ZoneInfo("America/New_York")
TICK_SIZE_SHARES = "100"  # the replay data carries no trade sizes: every tick is a round lot
LOCKSTEP, REALTIME = "lockstep", "realtime"
VENUE_DB = "venue.sqlite"


def parse_pace(text: str) -> tuple[str, float]:
    """'lockstep' -> ('lockstep', 0); 'realtime' -> ('realtime', 1.0); 'x10' -> ('realtime', 10.0)."""
    t = text.strip().lower()
    if t == LOCKSTEP:
        return LOCKSTEP, 0.0
    if t == REALTIME:
        return REALTIME, 1.0
    if t.startswith("x"):
        try:
            speed = float(t[1:])
        except ValueError:
            speed = 0.0
        if speed > 0:
            return REALTIME, speed
    raise ValueError(f"pace must be lockstep, realtime or xSPEED (e.g. x10), got {text!r}")


def con_id_for(symbol: str) -> int:
    """A stable contract id per symbol (same in every run and on every machine)."""
    return 100_000_000 + zlib.crc32(symbol.upper().encode()) % 800_000_000


def ib_time_text(time_ns: int) -> str:
    """IB's execution time text: ``20240102 09:30:15 America/New_York`` (what parseIBDatetime reads)."""
    dt = datetime.fromtimestamp(time_ns // NS, NEW_YORK)
    return dt.strftime("%Y%m%d %H:%M:%S") + " America/New_York"


def parse_filter_time(text: str) -> int | None:
    """An ExecutionFilter time as ns: ``yyyymmdd hh:mm:ss`` (New York, TWS's zone here),
    ``yyyymmdd hh:mm:ss ZONE``, ``yyyymmdd-hh:mm:ss`` (UTC). None if empty; ValueError if bad."""
    t = text.strip()
    if not t:
        return None
    if len(t) >= 17 and t[8] == "-":
        dt = datetime.strptime(t[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=timezone.utc)
    else:
        parts = t.split()
        if len(parts) < 2:
            dt = datetime.strptime(parts[0], "%Y%m%d").replace(tzinfo=NEW_YORK)
        else:
            dt = datetime.strptime(parts[0] + " " + parts[1], "%Y%m%d %H:%M:%S")
            zone = ZoneInfo(parts[2]) if len(parts) > 2 else NEW_YORK
            dt = dt.replace(tzinfo=zone)
    return int(dt.timestamp()) * NS


@dataclass(slots=True)
class _Wait:
    kind: str  # 'exec' / 'tick'
    key: object  # exec id, or the tick's time_ns
    clients: set


class Exchange:
    def __init__(self, *, data: Path, state_dir: Path, symbol: str = "TQQQ", account: str = "DU1234567",
                 pace: str = LOCKSTEP, partial_fill_shares: int | None = None,
                 commission: Commission | None = None, cash: Decimal = Decimal("1000000"),
                 master_client_id: int | None = None, exec_days: int | None = None,
                 max_gap_s: float = 5.0, faults: list[Fault] = (),
                 on_progress: Callable[[str], None] | None = None, progress_every_s: float = 10.0):
        self.data = Path(data)
        self.state_dir = Path(state_dir)
        self.symbol = symbol.upper()
        self.account = account
        self.pace, self.speed = parse_pace(pace)
        self.pace_text = pace.strip().lower()
        self.partial_fill_shares = partial_fill_shares
        self.commission = commission or Commission()
        self.start_cash = Decimal(cash)
        self.master_client_id = master_client_id
        self.exec_days = exec_days
        self.max_gap_s = max_gap_s
        self.on_progress = on_progress
        self.progress_every_s = progress_every_s
        self.instrument = Instrument(con_id_for(self.symbol), self.symbol, longName=f"{self.symbol} (simulated)")

        self.sessions: dict[int, Session] = {}
        self.feed: FileFeed | None = None
        self.venue: Venue | None = None
        self.store: VenueStore | None = None
        self.ids: IdentityStore | None = None
        self.orders: dict[int, IbOrder] = {}
        self.by_client: dict[tuple[int, int], IbOrder] = {}
        self.by_leg: dict[int, IbOrder] = {}
        self.execs: list[ExecRecord] = []
        self.exec_by_id: dict[str, ExecRecord] = {}
        self.clients: dict[int, list] = {}  # cid -> [max_order_id, mark_tick, mark_phase]
        self.positions_seeded: dict[int, SeededPosition] = {}
        self.next_perm = 1_000_000_001
        self.realized = Decimal(0)

        # replay state
        self.ticks_total: int | None = None
        self.first_ns: int | None = None
        self.tick_index = -1  # index of the tick being (or last) handled
        self.cur_t: int | None = None
        self.cur_p: int | None = None
        self.phase = "idle"  # 'fills' / 'data' / 'idle'
        self.finished = False
        self.stopping = False
        self.paused = False
        self.lost = False
        self.loss_advances = False
        self.started = self.pace == LOCKSTEP  # realtime waits for the first subscription
        self.free_ticks = 0
        self.waiting: _Wait | None = None
        self.owed: dict[int, int] = {}  # client id -> tick index it may not have handled
        self._wake: asyncio.Event | None = None
        self._advance_waiters: list[tuple[int, asyncio.Future]] = []
        self._updates: list[OrderUpdate] = []
        self._suppress_cancel: set[int] = set()
        self._lit_waiting: set[int] = set()
        self._delayed: list[IbOrder] = []
        self._held_cancels: list[tuple[int, int]] = []  # (client id, order id) while connectivity is lost
        self._resume: tuple | None = None
        self._last_full = 0.0
        self.fills = 0
        self.counters = {"misaligned": 0, "unknown_messages": 0, "ticks_sent": 0, "acks": 0}
        #: other market-data front doors on the same replay (the combined simulator's Alpaca stream,
        #: ``sim_alpaca``): each has ``has_subscribers()``, ``deliver_tick(idx, t, p)`` and
        #: ``resend_tick(idx, t, p, conn=None, fresh=False)``. With one, a pacer is a HELLO client
        #: while the door has a subscriber, and every HELLO client's acks are awaited (see
        #: docs/sim-alpaca.md). Empty (plain sim-tws): nothing changes.
        self.md_sinks: list = []

        # faults
        self.fault_list: list[Fault] = []
        self.on_scheduled_fault: Callable[[Fault], object] | None = None  # set by the server
        for f in faults:
            self.add_fault(f)

    # ================================================================== lifecycle
    def open(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.feed = FileFeed(self.data, self.symbol).open()
        stats = self.feed.stats()
        self.ticks_total = stats.get("ticks_total")
        self.first_ns = stats.get("first_ns")
        if self.first_ns is None:  # a tick or quote file: its first time is known once read
            for chunk in FileFeed(self.data, self.symbol).chunks():
                if len(chunk.time_ns):
                    self.first_ns = int(chunk.time_ns[0])
                    break
        self.venue = Venue(self._updates.append, self.commission, self.partial_fill_shares)
        path = self.state_dir / VENUE_DB
        self.store = VenueStore(path)
        self.store.load(self.venue)
        self.ids = IdentityStore(path)
        self._load_identities()
        self._wake = asyncio.Event()

    def _load_identities(self) -> None:
        venue = self.venue
        status = dict(self.store.db.execute("SELECT id, status FROM orders"))
        orders, legs, exec_rows, clients, positions = self.ids.load(venue.next_order_id, venue.next_exec_id, status)
        meta = self.ids.meta()
        self.next_perm = int(meta.get("next_perm", self.next_perm))
        self.orders = orders
        self.by_client = {(o.client_id, o.order_id): o for o in orders.values()}
        self.by_leg = {}
        for venue_id, perm in legs.items():
            o = orders.get(perm)
            if o is not None:
                self.by_leg[venue_id] = o
        # venue orders that have no identity (a state folder written by a plain bothost run):
        # show them as client 0's (manual TWS orders), with their venue id as order id
        for sim in venue.orders.values():
            if sim.id not in self.by_leg:
                o = self._new_identity(0, sim.id, sim.side.value, sim.quantity, sim.order_type.value,
                                       Decimal(sim.limit).scaleb(-2),
                                       None if sim.aux is None else Decimal(sim.aux).scaleb(-2),
                                       sim.tif, sim.outside_rth, sim.ref, sim.placed_ns, seeded=True)
                self._attach_leg(o, sim.id)
        for o in self.orders.values():
            o.filled = o.value = o.last_fill = 0
        self.clients = {cid: list(v) for cid, v in clients.items()}
        self.positions_seeded = {p.con_id: p for p in positions}
        self.execs = []
        self.exec_by_id = {}
        self.realized = Decimal(0)
        for fill in self.store.iter_executions():
            n = int(fill.exec_id[1:])
            row = exec_rows.get(n)
            o = self.by_leg.get(int(fill.order_id))
            if o is None:  # an execution of an order we never knew: a manual order of client 0
                o = self._new_identity(0, int(fill.order_id), fill.side.value, fill.order_quantity, "LMT",
                                       fill.price, None, "GTC", True, fill.ref, fill.time_ns, seeded=True)
                o.status = "Filled" if fill.order_complete else "Cancelled"
                self._attach_leg(o, int(fill.order_id))
            cents = int(fill.price * 100)
            o.filled += fill.quantity
            o.value += fill.quantity * cents
            o.last_fill = cents
            if row is None:
                row = (fill.exec_id, exec_id_for(n), o.perm_id, o.filled, o.avg_text(), None)
                self.ids.new_execs.append(ExecRecord(n, row[1], o.perm_id, o.order_id, o.client_id, fill.time_ns,
                                                     fill.symbol, fill.side.value, fill.quantity, fill.price,
                                                     fill.commission, o.filled, row[4], fill.ref, None))
            commission = fill.commission if fill.commission is not None else self.commission(fill.quantity)
            rec = ExecRecord(n, row[1], o.perm_id, o.order_id, o.client_id, fill.time_ns, fill.symbol,
                             fill.side.value, fill.quantity, fill.price, commission, row[3], row[4],
                             fill.ref, row[5])
            self.execs.append(rec)
            self.exec_by_id[rec.exec_id] = rec
            if rec.realized is not None:
                self.realized += rec.realized
        self.fills = len(self.execs)
        self._lit_waiting = {sim.id for sim in venue.orders.values() if not sim.triggered}
        for o in self.orders.values():
            if o.working and o.venue_id in venue.orders:
                o.status = self._working_status(o)
        cursor = meta.get("cursor")
        if cursor:
            phase, idx, t, p = cursor.split(":")
            self._resume = (phase, int(idx), int(t), int(p))
            self.tick_index, self.cur_t, self.cur_p = int(idx), int(t), int(p)
            if phase == "data" and (venue.clock_ns is None or venue.clock_ns < int(t)):
                # quiet ticks since the venue's last checkpoint changed nothing but its clock
                venue.advance(int(t), int(p))
        elif venue.clock_ns is not None:
            self.cur_t, self.cur_p = venue.clock_ns, venue.last
        if meta.get("finished") == "1":
            self.finished = True
        for f in self.fault_list:
            if meta.get(f"fired:{f}") == "1":
                f.fired = True
        self.ids.commit()

    def close(self) -> None:
        if self.store is not None:
            try:
                self.commit()
            finally:
                self.ids.close()
                self.store.close()
                self.store = None
                self.ids = None

    def commit(self, venue: bool = True) -> None:
        """Identities first, then the venue (see identities.py for why this order)."""
        self.ids.commit()
        if venue:
            self.store.checkpoint(self.venue)

    # ================================================================== identities
    def _new_identity(self, client_id: int, order_id: int, side: str, quantity: int, order_type: str,
                      limit: Decimal, aux: Decimal | None, tif: str, outside_rth: bool, ref: str,
                      placed_ns: int, status: str = "Submitted", seeded: bool = False,
                      account: str | None = None) -> IbOrder:
        perm = self.next_perm
        self.next_perm += 1
        self.ids.dirty_meta["next_perm"] = str(self.next_perm)
        o = IbOrder(perm, client_id, order_id, account or self.account, self.symbol, side, quantity, order_type,
                    limit, aux, tif or "DAY", outside_rth, ref, status, placed_ns, seeded=seeded)
        self.orders[perm] = o
        self.by_client[(client_id, order_id)] = o
        self.ids.dirty_orders[perm] = o
        c = self.clients.setdefault(client_id, [0, None, None])
        if order_id > c[0]:
            c[0] = order_id
            self.ids.dirty_clients[client_id] = tuple(c)
        return o

    def _attach_leg(self, o: IbOrder, venue_id: int) -> None:
        o.venue_id = venue_id
        self.by_leg[venue_id] = o
        self.ids.new_legs.append((venue_id, o.perm_id))

    def _working_status(self, o: IbOrder) -> str:
        sim = self.venue.orders.get(o.venue_id) if o.venue_id is not None else None
        if sim is not None and not sim.triggered:
            return "PreSubmitted"
        return "Submitted"

    def _dirty(self, o: IbOrder) -> None:
        self.ids.dirty_orders[o.perm_id] = o

    def next_order_id(self, client_id: int) -> int:
        c = self.clients.get(client_id)
        return (c[0] + 1) if c else 1

    def _mark_order_message(self, session: Session) -> None:
        """The client sent an order message: in lockstep that means it handled the last tick sent to it."""
        session.orders_since_tick = True
        c = self.clients.setdefault(session.client_id, [0, None, None])
        c[1], c[2] = self.tick_index, self.phase
        self.ids.dirty_clients[session.client_id] = tuple(c)

    # ================================================================== views
    def view(self, o: IbOrder, status: str | None = None) -> OrderView:
        return OrderView(
            order_id=o.order_id, client_id=o.client_id, perm_id=o.perm_id, action=o.side, quantity=o.quantity,
            order_type=o.order_type, limit=_dec_text(o.limit), aux=_dec_text(o.aux) if o.aux is not None else "",
            tif=o.tif, account=o.account, ref=o.ref, outside_rth=o.outside_rth, status=status or o.status,
            filled=o.filled, avg_price=o.avg_text(), last_fill_price=cents_text(o.last_fill) if o.last_fill else "0",
            why_held=o.why, completed_time=ib_time_text(o.done_ns) if o.done_ns else "",
            completed_status=o.status,
        )

    def exec_view(self, e: ExecRecord) -> ExecView:
        return ExecView(
            exec_id=e.exec_id, order_id=e.order_id, client_id=e.client_id, perm_id=e.perm_id,
            time_text=ib_time_text(e.time_ns), account=self.account, side="BOT" if e.side == "BUY" else "SLD",
            shares=e.shares, price=_dec_text(e.price), cum_qty=e.cum_qty, avg_price=e.avg_price, ref=e.ref,
            commission=_dec_text(e.commission),
            realized=UNSET_DOUBLE_TEXT if e.realized is None else _dec_text(e.realized),
        )

    def clock_ns(self) -> int:
        """The simulator's clock: the data time of the current (last) tick."""
        if self.cur_t is not None:
            return self.cur_t
        if self.venue is not None and self.venue.clock_ns is not None:
            return self.venue.clock_ns
        return self.first_ns or time.time_ns()

    def last_cents(self) -> int | None:
        return self.venue.last if self.venue.last is not None else self.cur_p

    # ================================================================== fan-out
    def _recipients(self, client_id: int) -> list[Session]:
        out = []
        s = self.sessions.get(client_id)
        if s is not None and s.ready:
            out.append(s)
        m = self.master_client_id
        if m is not None and m != client_id:
            s = self.sessions.get(m)
            if s is not None and s.ready:
                out.append(s)
        return out

    def _send_order_state(self, o: IbOrder, open_order: bool = True) -> None:
        v = self.view(o)
        msgs = (codec.open_order(v, self.instrument) + codec.order_status(v)) if open_order else codec.order_status(v)
        for s in self._recipients(o.client_id):
            s.send(msgs)

    # ================================================================== orders in
    def place_order(self, session: Session, req: PlaceOrderReq) -> None:
        cid = session.client_id
        self._mark_order_message(session)
        existing = self.by_client.get((cid, req.orderId))
        if req.orderId <= 0:
            session.send(codec.error(req.orderId, 103, "Duplicate order id"))
            return
        c = req.contract
        if (c.symbol.upper() != self.symbol and c.conId != self.instrument.conId) or \
                c.secType not in ("", "STK") or c.currency not in ("", "USD"):
            session.send(codec.error(req.orderId, 200, "No security definition has been found for the request"))
            return
        if existing is not None and existing.status != "PendingSubmit" and not existing.working \
                and existing.status != "Inactive":
            session.send(codec.error(req.orderId, 103, "Duplicate order id"))
            return
        side = "SELL" if req.action.upper() in ("SELL", "SSHORT") else "BUY" if req.action.upper() == "BUY" else ""
        limit = codec.decimal_or_none(req.lmtPrice)
        aux = codec.decimal_or_none(req.auxPrice)
        qty = _quantity(req.totalQuantity)
        problem = ""
        if not side:
            problem = f"action {req.action!r} is not BUY or SELL"
        elif req.orderType not in ("LMT", "LIT"):
            problem = f"the simulator accepts LMT and LIT orders only, not {req.orderType!r}"
        elif qty is None or qty <= 0:
            problem = f"quantity {req.totalQuantity!r} is not a positive whole number of shares"
        elif limit is None:
            problem = "a limit price is required"
        elif _cents(limit) is None:
            problem = f"limit price {limit} is not a positive whole number of cents"
        elif req.orderType == "LIT" and aux is not None and _cents(aux) is None:
            problem = f"aux price {aux} is not a positive whole number of cents"
        elif req.account and req.account != self.account:
            problem = f"account {req.account} is not managed by this session ({self.account})"
        if req.whatIf:
            self._what_if(session, req, side, qty, limit, aux, problem)
            return
        if existing is not None:
            self._modify(session, existing, req, side, qty, limit, aux, problem)
            return
        now = self.clock_ns()
        if req.orderType == "LIT" and aux is None:
            aux = limit
        o = self._new_identity(cid, req.orderId, side or "BUY", qty or 0, req.orderType, limit or Decimal(0),
                               aux if req.orderType == "LIT" else None, (req.tif or "DAY").upper(), req.outsideRth,
                               req.orderRef, now, status="PendingSubmit", account=req.account or self.account)
        if problem:
            return self._reject(o, problem)
        if self.lost:
            return self._reject(o, "Connectivity between IB and Trader Workstation has been lost.")
        fault = self._order_fault("reject201", o.ref)
        if fault is not None:
            return self._reject(o, "simulated rejection (fault)", code=fault.code)
        fault = self._order_fault("inactive", o.ref)
        if fault is not None:
            o.status, o.why = "Inactive", ""
            self.commit()
            self._send_order_state(o)
            return
        if not req.transmit:
            o.status = "PendingSubmit"  # held in TWS: not at the venue until transmitted
            self.commit()
            self._send_order_state(o)
            return
        self._to_venue(o)

    def _to_venue(self, o: IbOrder, delay: bool | None = None) -> None:
        remaining = o.quantity - o.filled
        vid = self.venue.place(OrderRequest(
            symbol=o.symbol, side=Side(o.side), quantity=remaining, limit=o.limit,
            order_type=OrderType(o.order_type), aux=o.aux, tif=o.tif, outside_rth=o.outside_rth, ref=o.ref))
        rejected = [u for u in self._updates if u.status is OrderStatus.REJECTED and u.order_id == vid]
        self._updates[:] = [u for u in self._updates if u.order_id != vid or u.status is not OrderStatus.REJECTED]
        if rejected:
            return self._reject(o, rejected[0].message)
        vid = int(vid)
        self._attach_leg(o, vid)
        sim = self.venue.orders[vid]
        if not sim.triggered:
            self._lit_waiting.add(vid)
        o.status = self._working_status(o)
        self._dirty(o)
        self.commit()
        if delay is None:
            delay = self._order_fault("delay-acks", o.ref) is not None
        if delay:
            self._delayed.append(o)
        else:
            self._send_order_state(o)

    def _reject(self, o: IbOrder, why: str, code: int = 201) -> None:
        o.status, o.done_ns = "Cancelled", self.clock_ns()
        self._dirty(o)
        self.commit()
        for s in self._recipients(o.client_id):
            s.send(codec.error(o.order_id, code, f"Order rejected - reason:{why}"))
        self._send_order_state(o, open_order=False)

    def _what_if(self, session: Session, req, side, qty, limit, aux, problem) -> None:
        if problem:
            session.send(codec.error(req.orderId, 201, f"Order rejected - reason:{problem}"))
            return
        o = IbOrder(0, session.client_id, req.orderId, self.account, self.symbol, side, qty, req.orderType,
                    limit, aux, req.tif or "DAY", req.outsideRth, req.orderRef, "PreSubmitted", self.clock_ns())
        v = self.view(o)
        v.what_if = True
        v.commission = _dec_text(self.commission(qty))
        session.send(codec.open_order(v, self.instrument))

    def _modify(self, session, o: IbOrder, req: PlaceOrderReq, side, qty, limit, aux, problem) -> None:
        if not problem and side != o.side:
            problem = "an order's side cannot be modified"
        if not problem and qty <= o.filled:
            problem = f"quantity {qty} is not above the {o.filled} shares already filled"
        if problem:
            session.send(codec.error(o.order_id, 321, f"Error validating request:-'bW' : cause - {problem}"))
            return
        if self.lost:
            session.send(codec.error(o.order_id, 321, "Error validating request: connectivity between IB and "
                                                      "Trader Workstation has been lost"))
            return
        new_aux = (aux if aux is not None else limit) if req.orderType == "LIT" else None
        same_book = (qty == o.quantity and limit == o.limit and new_aux == o.aux and req.orderType == o.order_type)
        o.ref, o.outside_rth = req.orderRef, req.outsideRth
        o.tif = (req.tif or o.tif).upper()
        sim = self.venue.orders.get(o.venue_id) if o.venue_id is not None else None
        if o.status == "PendingSubmit" or o.status == "Inactive" or sim is None:
            o.quantity, o.limit, o.aux, o.order_type = qty, limit, new_aux, req.orderType
            self._dirty(o)
            if req.transmit and not self.lost:
                self._to_venue(o)
            else:
                self.commit()
                self._send_order_state(o)
            return
        if same_book:
            # nothing the book sorts by changed: the order keeps its place (and its liveness)
            sim.ref, sim.outside_rth, sim.tif = o.ref, o.outside_rth, o.tif
            self.venue.dirty_orders[sim.id] = sim
            self._dirty(o)
            self.commit()
            self._send_order_state(o)
            return
        # price, quantity or type changed: cancel and replace (the new order is live from the
        # next tick and loses its time priority, like any order placed now)
        self._suppress_cancel.add(sim.id)
        self.venue.cancel(str(sim.id))
        self._drain_updates()
        self._lit_waiting.discard(sim.id)
        o.quantity, o.limit, o.aux, o.order_type = qty, limit, new_aux, req.orderType
        self._dirty(o)
        self._to_venue(o, delay=False)

    def cancel_order(self, session: Session, order_id: int) -> None:
        self._mark_order_message(session)
        o = self.by_client.get((session.client_id, order_id))
        if o is None:
            session.send(codec.error(order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found."))
            return
        if self.lost and o.working:
            self._held_cancels.append((session.client_id, order_id))
            return
        self._cancel(o)

    def _cancel(self, o: IbOrder, reason: str = "") -> bool:
        if o.status in DONE:
            for s in self._recipients(o.client_id):
                s.send(codec.error(o.order_id, 10148, f"OrderId {o.order_id} that needs to be cancelled cannot "
                                                      f"be cancelled, state: {o.status}."))
            return False
        if o.venue_id is not None and o.venue_id in self.venue.orders:
            self._suppress_cancel.add(o.venue_id)
            self.venue.cancel(str(o.venue_id))
            self._drain_updates()
            self._lit_waiting.discard(o.venue_id)
        o.status, o.done_ns = "Cancelled", self.clock_ns()
        self._dirty(o)
        self.commit()
        self._send_order_state(o, open_order=False)
        for s in self._recipients(o.client_id):
            s.send(codec.error(o.order_id, 202, f"Order Canceled - reason:{reason}"))
        return True

    def global_cancel(self, session: Session) -> None:
        self._mark_order_message(session)
        for o in sorted(self.orders.values(), key=lambda x: x.perm_id):
            if o.working or o.status in ("PendingSubmit", "Inactive"):
                self._cancel(o)

    def make_inactive(self, o: IbOrder, why: str = "") -> None:
        """Fault: a working order becomes Inactive (off the venue, still listed as open)."""
        if o.venue_id is not None and o.venue_id in self.venue.orders:
            self._suppress_cancel.add(o.venue_id)
            self.venue.cancel(str(o.venue_id))
            self._drain_updates()
            self._lit_waiting.discard(o.venue_id)
        o.status, o.why = "Inactive", why
        self._dirty(o)
        self.commit()
        self._send_order_state(o)

    def _order_fault(self, kind: str, ref: str) -> Fault | None:
        for f in self.fault_list:
            if f.kind == kind and (f.count is None or f.count > 0) and f.matches_ref(ref):
                f.use()
                return f
        return None

    def _drain_updates(self) -> None:
        """Venue OrderUpdates that we did not cause ourselves (fills are handled with their Fill)."""
        updates, self._updates[:] = list(self._updates), []
        for u in updates:
            vid = int(u.order_id)
            if u.status is OrderStatus.CANCELLED:
                if vid in self._suppress_cancel:
                    self._suppress_cancel.discard(vid)
                    continue
                o = self.by_leg.get(vid)
                if o is not None and o.working:
                    o.status, o.done_ns = "Cancelled", u.time_ns
                    self._dirty(o)
                    self._send_order_state(o, open_order=False)

    # ================================================================== fills
    def _record_fill(self, fill, held: int, cost: int) -> ExecRecord:
        o = self.by_leg[int(fill.order_id)]
        cents = int(fill.price * 100)
        o.filled += fill.quantity
        o.value += fill.quantity * cents
        o.last_fill = cents
        commission = fill.commission if fill.commission is not None else self.commission(fill.quantity)
        realized = None
        if fill.side is Side.SELL and held > 0:
            avg = Decimal(cost) / held
            realized = ((Decimal(cents) - avg) * fill.quantity / 100 - commission).quantize(Decimal("0.000001"))
            self.realized += realized
        n = int(fill.exec_id[1:])
        rec = ExecRecord(n, exec_id_for(n), o.perm_id, o.order_id, o.client_id, fill.time_ns, fill.symbol,
                         fill.side.value, fill.quantity, fill.price, commission, o.filled, o.avg_text(),
                         fill.ref, realized)
        self.execs.append(rec)
        self.exec_by_id[rec.exec_id] = rec
        self.ids.new_execs.append(rec)
        complete = False
        for u in self._updates:
            if u.status is OrderStatus.FILLED and int(u.order_id) == o.venue_id:
                complete = True
        self._updates[:] = [u for u in self._updates if u.status is not OrderStatus.FILLED]
        if complete and o.filled >= o.quantity:
            o.status, o.done_ns = "Filled", fill.time_ns
            self._lit_waiting.discard(o.venue_id)
        self._dirty(o)
        self.fills += 1
        return rec

    def _send_fill(self, rec: ExecRecord) -> set[int]:
        """execDetails + commissionReport, then the order's new state, to the owner (and master)."""
        if self.lost:
            return set()
        o = self.orders[rec.perm_id]
        ev = self.exec_view(rec)
        msg = codec.exec_details(-1, ev, self.instrument) + codec.commission_report(ev)
        if self._duplicate(rec):
            msg = msg + msg
        v = self.view(o)
        msg += (codec.open_order(v, self.instrument) + codec.order_status(v)) if o.status == "Filled" \
            else codec.order_status(v)
        got = set()
        for s in self._recipients(o.client_id):
            s.send(msg)
            if s.paces:
                got.add(s.client_id)
        self._after_fill_updates()
        return got

    def _duplicate(self, rec: ExecRecord) -> bool:
        for f in self.fault_list:
            if f.kind == "duplicate-exec" and (f.count is None or f.count > 0):
                if f.all or f.next or f.exec_n == len(self.execs):
                    f.use()
                    return True
        return False

    def _repeat_open_orders(self) -> bool:
        for f in self.fault_list:
            if f.kind == "repeat-open-orders" and (f.count is None or f.count > 0):
                f.use()
                return True
        return False

    def _after_fill_updates(self) -> None:
        """Position and portfolio subscribers hear about the new position (as TWS pushes them)."""
        for s in self.sessions.values():
            if not s.ready:
                continue
            if s.positions_sub:
                self.send_positions(s, end=False, only_symbol=True)
            if s.account_sub:
                self.send_account(s, full=False)

    # ================================================================== requests
    def send_open_orders(self, session: Session, all_clients: bool) -> None:
        cid = session.client_id
        repeat = 2 if self._repeat_open_orders() else 1
        out = []
        for o in sorted(self.orders.values(), key=lambda x: x.perm_id):
            if not (o.working or o.status in ("PendingSubmit", "Inactive")):
                continue
            if all_clients or o.client_id == cid or cid == self.master_client_id:
                v = self.view(o)
                out.extend([codec.open_order(v, self.instrument) + codec.order_status(v)] * repeat)
        out.append(codec.open_order_end())
        session.send(b"".join(out))

    def send_completed_orders(self, session: Session) -> None:
        day = _ny_date(self.clock_ns())
        out = []
        for o in sorted(self.orders.values(), key=lambda x: x.done_ns or 0):
            if o.status in DONE and o.done_ns is not None and _ny_date(o.done_ns) == day:
                out.append(codec.completed_order(self.view(o), self.instrument))
        out.append(codec.completed_orders_end())
        session.send(b"".join(out))

    def send_executions(self, session: Session, req_id: int, f: ExecFilter) -> None:
        try:
            since = parse_filter_time(f.time)
        except (ValueError, KeyError) as exc:
            session.send(codec.error(req_id, 321, f"Error validating request: bad execution filter time "
                                                  f"{f.time!r}: {exc}"))
            session.send(codec.exec_details_end(req_id))
            return
        if self.exec_days:
            day0 = datetime.fromtimestamp(self.clock_ns() // NS, NEW_YORK).replace(hour=0, minute=0, second=0)
            start = int(day0.timestamp()) * NS - (self.exec_days - 1) * 86_400 * NS
            since = start if since is None else max(since, start)
        side = {"BUY": "BUY", "BOT": "BUY", "SELL": "SELL", "SLD": "SELL"}.get(f.side.upper(), "") if f.side else ""
        out = []
        if (not f.acctCode or f.acctCode == self.account) and f.secType.upper() in ("", "STK") and \
                f.exchange.upper() in ("", "SMART", "ISLAND"):
            for e in self.execs:
                if f.clientId and e.client_id != f.clientId:
                    continue
                if since is not None and e.time_ns - e.time_ns % NS < since:
                    continue
                if f.symbol and f.symbol.upper() != e.symbol:
                    continue
                if side and e.side != side:
                    continue
                ev = self.exec_view(e)
                out.append(codec.exec_details(req_id, ev, self.instrument) + codec.commission_report(ev))
        out.append(codec.exec_details_end(req_id))
        session.send(b"".join(out))

    def _stock_position(self) -> tuple[int, Decimal]:
        for p in self.venue.positions():
            if p.symbol == self.symbol:
                return p.quantity, p.avg_cost
        return 0, Decimal(0)

    def _seeded_instrument(self, p: SeededPosition) -> Instrument:
        return Instrument(p.con_id, p.symbol, p.sec_type, p.expiry, p.strike, p.right, p.multiplier, p.exchange,
                          "", p.currency, p.local_symbol, p.trading_class)

    def send_positions(self, session: Session, end: bool = True, only_symbol: bool = False) -> None:
        qty, avg = self._stock_position()
        out = [codec.position(self.account, self.instrument, qty, _dec_text(avg))]
        if not only_symbol:
            for p in self.positions_seeded.values():
                out.append(codec.position(self.account, self._seeded_instrument(p), _dec_text(p.quantity),
                                          _dec_text(p.avg_cost)))
        if end:
            out.append(codec.position_end())
        session.send(b"".join(out))

    def account_values(self) -> list[tuple[str, str, str]]:
        venue = self.venue
        cash = self.start_cash + Decimal(venue.cash) / 100 - venue.fees
        qty, avg = self._stock_position()
        last = self.last_cents()
        stock_value = Decimal(qty * (last or 0)) / 100
        other = sum((p.quantity * p.avg_cost for p in self.positions_seeded.values()), Decimal(0))
        gross = abs(stock_value) + abs(other)
        net = cash + stock_value + other
        unrealized = stock_value - qty * avg if qty else Decimal(0)
        excess = net - gross / 4
        m = lambda d: format(Decimal(d).quantize(Decimal("0.01")), "f")  # noqa: E731
        return [
            ("AccountCode", self.account, ""),
            ("AccountType", "INDIVIDUAL", ""),
            ("AccountReady", "true", ""),
            ("BothostPace", self.pace_text, ""),
            ("Currency", "USD", "USD"),
            ("NetLiquidation", m(net), "USD"),
            ("TotalCashValue", m(cash), "USD"),
            ("CashBalance", m(cash), "USD"),
            ("SettledCash", m(cash), "USD"),
            ("EquityWithLoanValue", m(net), "USD"),
            ("GrossPositionValue", m(gross), "USD"),
            ("StockMarketValue", m(stock_value), "USD"),
            ("MaintMarginReq", m(gross / 4), "USD"),
            ("InitMarginReq", m(gross / 4), "USD"),
            ("AvailableFunds", m(excess), "USD"),
            ("ExcessLiquidity", m(excess), "USD"),
            ("BuyingPower", m(max(Decimal(0), excess * 4)), "USD"),
            ("RealizedPnL", m(self.realized), "USD"),
            ("UnrealizedPnL", m(unrealized), "USD"),
        ]

    def send_account(self, session: Session, full: bool = True) -> None:
        acct = self.account
        values = self.account_values()
        if not full:
            values = [v for v in values if v[0] in ("NetLiquidation", "TotalCashValue", "CashBalance",
                                                    "GrossPositionValue", "AvailableFunds", "BuyingPower",
                                                    "RealizedPnL", "UnrealizedPnL")]
        out = [codec.account_value(k, v, cur, acct) for k, v, cur in values]
        qty, avg = self._stock_position()
        last = self.last_cents() or 0
        mv = Decimal(qty * last) / 100
        out.append(codec.portfolio_value(self.instrument, qty, cents_text(last), _dec_text(mv), _dec_text(avg),
                                         _dec_text((mv - qty * avg).quantize(Decimal("0.01"))),
                                         _dec_text(self.realized.quantize(Decimal("0.01"))), acct))
        if full:
            for p in self.positions_seeded.values():
                mult = Decimal(p.multiplier or 1)
                value = p.quantity * p.avg_cost
                out.append(codec.portfolio_value(self._seeded_instrument(p), _dec_text(p.quantity),
                                                 _dec_text(p.avg_cost / mult), _dec_text(value), _dec_text(p.avg_cost),
                                                 "0", "0", acct))
            out.append(codec.account_update_time(datetime.fromtimestamp(self.clock_ns() // NS, NEW_YORK)
                                                 .strftime("%H:%M")))
            out.append(codec.account_download_end(acct))
        session.send(b"".join(out))

    def send_account_multi(self, session: Session, req_id: int, account: str) -> None:
        out = []
        if account in ("", "All", self.account):
            out = [codec.account_update_multi(req_id, self.account, "", k, v, cur) for k, v, cur in self.account_values()]
        out.append(codec.account_update_multi_end(req_id))
        session.send(b"".join(out))

    def send_positions_multi(self, session: Session, req_id: int) -> None:
        qty, avg = self._stock_position()
        out = [codec.position_multi(req_id, self.account, self.instrument, qty, _dec_text(avg))]
        for p in self.positions_seeded.values():
            out.append(codec.position_multi(req_id, self.account, self._seeded_instrument(p), _dec_text(p.quantity),
                                            _dec_text(p.avg_cost)))
        out.append(codec.position_multi_end(req_id))
        session.send(b"".join(out))

    def send_account_summary(self, session: Session, req_id: int, tags: str) -> None:
        want = {t for t in tags.split(",") if t}
        out = [codec.account_summary(req_id, self.account, k, v, cur) for k, v, cur in self.account_values()
               if not want or k in want or "$LEDGER:ALL" in want and k in ("TotalCashValue", "NetLiquidation")]
        out.append(codec.account_summary_end(req_id))
        session.send(b"".join(out))

    def send_contract_details(self, session: Session, req) -> None:
        c = req.contract
        ok = (c.conId == self.instrument.conId or (not c.conId and c.symbol.upper() == self.symbol)) and \
            c.secType.upper() in ("", "STK") and c.currency.upper() in ("", "USD") and \
            (not c.symbol or c.symbol.upper() == self.symbol)
        if not ok:
            session.send(codec.error(req.reqId, 200, "No security definition has been found for the request"))
            return
        session.send(codec.contract_data(req.reqId, self.instrument) + codec.contract_data_end(req.reqId))

    def is_our_contract(self, c) -> bool:
        return (c.conId == self.instrument.conId or (not c.conId and c.symbol.upper() == self.symbol)) and \
            c.secType.upper() in ("", "STK")

    # ================================================================== seeding
    def seed_order(self, side: str, quantity: int, limit: Decimal, *, client_id: int = 7, order_id: int | None = None,
                   ref: str = "", order_type: str = "LMT", aux: Decimal | None = None, tif: str = "GTC",
                   outside_rth: bool = True) -> IbOrder:
        """A foreign (e.g. legacy) order placed by another client, working at the venue."""
        if order_id is None:
            order_id = self.next_order_id(client_id)
        o = self._new_identity(client_id, order_id, side.upper(), int(quantity), order_type.upper(), Decimal(limit),
                               None if aux is None else Decimal(aux), tif.upper(), outside_rth, ref,
                               self.clock_ns(), status="PendingSubmit", seeded=True)
        self._to_venue(o, delay=False)
        return o

    def seed_position(self, *, symbol: str = "TQQQ", sec_type: str = "OPT", quantity: Decimal | int = 1,
                      avg_cost: Decimal | float = Decimal("100"), expiry: str = "20250117", strike: float = 50.0,
                      right: str = "C", multiplier: str = "100", exchange: str = "SMART",
                      currency: str = "USD") -> SeededPosition:
        """A position the venue does not trade (an option, say): reported in positions and the portfolio."""
        local = f"{symbol:<6}{expiry[2:]}{right[:1]}{int(round(strike * 1000)):08d}" if sec_type == "OPT" else symbol
        p = SeededPosition(con_id_for(local), symbol.upper(), sec_type.upper(), expiry, float(strike), right.upper(),
                           multiplier, exchange, currency, local, symbol.upper(), Decimal(quantity),
                           Decimal(str(avg_cost)))
        self.positions_seeded[p.con_id] = p
        self.ids.dirty_positions[p.con_id] = p
        self.commit()
        return p

    # ================================================================== faults
    def add_fault(self, f: Fault) -> None:
        if f.kind == "partial":
            self.partial_fill_shares = f.shares
            if self.venue is not None:
                self.venue.partial_fill_shares = f.shares
            return
        self.fault_list.append(f)

    def _due_faults(self, idx: int, t: int) -> list[Fault]:
        due = []
        for f in self.fault_list:
            if f.fired:
                continue
            if (f.tick is not None and idx >= f.tick) or (f.time_ns is not None and t >= f.time_ns):
                f.fired = True
                self.ids.dirty_meta[f"fired:{f}"] = "1"  # a restart must not fire it again
                due.append(f)
        if due:
            self.ids.commit()
        return due

    def _restore_scheduled(self) -> bool:
        """Is a restore (1101/1102) scheduled at a later tick? Then a loss lets the replay run on."""
        return any(not f.fired and f.kind in ("1101", "1102") and (f.tick is not None or f.time_ns is not None)
                   for f in self.fault_list)

    def connectivity_lost(self) -> None:
        if self.lost:
            return
        self.lost = True
        # realtime: the market does not wait. lockstep: the venue trades on through the loss only
        # when a restore is scheduled at a later tick (deterministic); otherwise the replay pauses
        self.loss_advances = self.pace == REALTIME or self._restore_scheduled()
        for s in list(self.sessions.values()):
            if s.ready:
                s.send(codec.error(-1, 1100, "Connectivity between IB and Trader Workstation has been lost."))
        self.wake()

    def connectivity_restored(self, data_kept: bool) -> None:
        if not self.lost:
            return
        self.lost = False
        self.loss_advances = False
        code = 1102 if data_kept else 1101
        text = ("Connectivity between IB and Trader Workstation has been restored - data maintained."
                if data_kept else "Connectivity between IB and Trader Workstation has been restored - data lost.")
        for s in list(self.sessions.values()):
            if s.ready:
                if not data_kept:
                    s.drop_subscriptions()
                s.send(codec.error(-1, code, text))
        held, self._held_cancels = self._held_cancels, []
        for cid, oid in held:
            o = self.by_client.get((cid, oid))
            if o is not None:
                self._cancel(o)
        self.wake()

    # ================================================================== sessions
    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def session_ready(self, session: Session) -> None:
        self.sessions[session.client_id] = session
        self.wake()

    def session_closed(self, session: Session) -> None:
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        w = self.waiting
        cid = session.client_id
        if w is not None and cid in w.clients:
            w.clients.discard(cid)
            if w.kind == "tick" and not session.orders_since_tick and session.hello:
                self.owed[cid] = self.tick_index  # may not have handled it: re-send when it is back
        self.wake()

    def pacer_changed(self, session: Session) -> None:
        """A client dropped its last market data subscription: it paces nothing any more (an ack
        it still owes is not waited for)."""
        w = self.waiting
        if w is not None and not session.paces and session.client_id in w.clients:
            w.clients.discard(session.client_id)
        self.wake()

    def subscribed(self, session: Session) -> None:
        if self.pace == REALTIME and not self.started:
            self.started = True
        self.wake()

    def ack(self, session: Session, kind: str, key: str) -> None:
        self.counters["acks"] += 1
        w = self.waiting
        if w is None or w.kind != kind:
            return
        cid = session.client_id
        if cid not in w.clients:
            return
        if kind == "exec":
            if key != w.key:
                return
        else:
            try:
                k = int(key)
            except ValueError:
                return
            # whole seconds are enough from a client that only has them (TWS market data); a tick that
            # reached the client through another door (Alpaca: exact ns) is acked exactly
            exact = self.md_sinks and not session.has_md
            if k < (w.key if exact else w.key - w.key % NS):
                return
        w.clients.discard(cid)
        if not w.clients:
            self.wake()

    def external_md(self) -> bool:
        """Has another market-data door (the Alpaca stream) a subscriber to the symbol?"""
        for sink in self.md_sinks:
            if sink.has_subscribers():
                return True
        return False

    def external_subscribed(self, sink, conn) -> None:
        """A client of another door subscribed to the symbol. If tick k's ack is outstanding and a
        pacer may not have handled it (no order message since it went out), it gets tick k again
        (a feed drops a trade it already handled: same time, same id)."""
        if self.pace == REALTIME and not self.started:
            self.started = True
        w = self.waiting
        if w is not None and w.kind == "tick" and w.clients and self.phase == "data" and self.cur_t is not None:
            if any(c not in self.sessions or not self.sessions[c].orders_since_tick for c in w.clients):
                sink.resend_tick(self.tick_index, self.cur_t, self.cur_p, conn)
        self.wake()

    def pacers(self) -> list[Session]:
        return [s for s in self.sessions.values() if s.is_pacer]

    def _has_pacer(self) -> bool:
        for s in self.sessions.values():
            if s.is_pacer:
                return True
        return False

    # ================================================================== the replay
    def _iter_ticks(self, after_ns: int | None) -> Iterator[tuple[int, int, int]]:
        idx = 0
        for chunk in self.feed.chunks():
            times, prices = chunk.time_ns, chunk.price
            n = len(times)
            if n == 0:
                continue
            start = 0
            if after_ns is not None:
                if int(times[-1]) <= after_ns:
                    idx += n
                    continue
                start = int(np.searchsorted(times, after_ns, side="right"))
                after_ns = None
            tl, pl = times.tolist(), prices.tolist()
            for i in range(start, n):
                yield idx + i, tl[i], pl[i]
            idx += n

    async def _wait(self, timeout: float | None = None) -> None:
        ev = self._wake
        if timeout is None:
            await ev.wait()
        else:
            try:
                await asyncio.wait_for(ev.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        ev.clear()

    async def _await_acks(self, kind: str, key, clients: set[int]) -> None:
        if not clients:
            return
        self.waiting = w = _Wait(kind, key, set(clients))
        try:
            while w.clients and not self.stopping:
                await self._wait()
        finally:
            self.waiting = None

    async def _gate(self) -> bool:
        """Wait until the replay may handle its next step. Returns True for a free (unpaced) step."""
        while True:
            if self.stopping:
                raise _Stop
            if self.lost:
                if self.loss_advances:
                    return True
            elif self.paused:
                pass
            elif self.free_ticks > 0:
                return True
            elif self.pace == LOCKSTEP:
                if self._has_pacer():
                    if self.owed and await self._settle_owed():
                        continue
                    return False
            elif self.started:
                return True
            await self._wait()

    async def _settle_owed(self) -> bool:
        """A pacer came back owing the last tick it was sent: send it that tick again and wait for its ack."""
        did = False
        for cid, idx in list(self.owed.items()):
            if idx != self.tick_index or self.phase != "data":
                del self.owed[cid]
                continue
            s = self.sessions.get(cid)
            if s is None or not s.is_pacer:
                continue
            del self.owed[cid]
            if s.orders_since_tick:
                continue
            s.deliver_tick(self.cur_t, self.cur_p)
            for sink in self.md_sinks:  # a new trade id: its feed may have seen the first one
                sink.resend_tick(self.tick_index, self.cur_t, self.cur_p, fresh=True)
            did = True
            await self._await_acks("tick", self.cur_t, {cid})
        return did

    async def run(self) -> None:
        """The replay: ticks in order, each matched, reported, and (lockstep) acknowledged."""
        try:
            after = None
            if self._resume is not None:
                phase, idx, t, p = self._resume
                self._resume = None
                if phase == "fills":
                    await self._tick(idx, t, p, rematch=True)
                else:
                    # resumed in tick idx's data phase: clients that sent orders after it count as
                    # having handled it, the others are owed it (see docs/sim-tws.md)
                    self.tick_index, self.cur_t, self.cur_p, self.phase = idx, t, p, "data"
                    for cid, (_mx, mtick, mphase) in self.clients.items():
                        if not (mtick == idx and mphase == "data"):
                            self.owed[cid] = idx
                after = t
            elif self.venue.clock_ns is not None:
                after = self.venue.clock_ns
            if not self.finished:
                wall0 = time.monotonic()
                last_progress = wall0
                rt_anchor: tuple[float, int] | None = None
                for idx, t, p in self._iter_ticks(after):
                    if self.pace == REALTIME and not self.free_ticks:
                        rt_anchor = await self._realtime_wait(t, rt_anchor)
                    await self._tick(idx, t, p)
                    now = time.monotonic()
                    if self.on_progress is not None and now - last_progress >= self.progress_every_s:
                        last_progress = now
                        self.on_progress(self.progress_line())
                self.finished = True
                self.phase = "idle"
                self.ids.dirty_meta["finished"] = "1"
                self.commit()
                if self.on_progress is not None:
                    self.on_progress(self.progress_line() + " (data ended; still serving)")
            for _, fut in self._advance_waiters:
                if not fut.done():
                    fut.set_result(None)
            self._advance_waiters.clear()
        except _Stop:
            pass

    def progress_line(self) -> str:
        when = datetime.fromtimestamp(self.clock_ns() // NS, NEW_YORK).strftime("%Y-%m-%d %H:%M:%S")
        total = f"/{self.ticks_total:,}" if self.ticks_total else ""
        return (f"sim-tws: tick {self.tick_index + 1:,}{total} at {when}, {self.fills:,} fills, "
                f"{len(self.sessions)} client(s), {len(self.pacers())} pacer(s)")

    async def _realtime_wait(self, t: int, anchor: tuple[float, int] | None):
        while not self.started or self.paused or (self.lost and not self.loss_advances):
            if self.stopping:
                raise _Stop
            await self._wait()
            anchor = None
        now = time.monotonic()
        if anchor is None:
            return now, t
        wall0, t0 = anchor
        due = wall0 + (t - t0) / NS / self.speed
        if due - now > self.max_gap_s:  # nights and weekends: no hours of silence
            wall0 = now + self.max_gap_s - (t - t0) / NS / self.speed
            due = now + self.max_gap_s
        while (delay := due - time.monotonic()) > 0:
            if self.stopping:
                raise _Stop
            await self._wait(delay)
            if self.paused:
                return await self._realtime_wait(t, None)
        return wall0, t0

    async def _scheduled(self, f: Fault) -> None:
        if f.kind == "1100":
            self.connectivity_lost()
            if not self.loss_advances:
                for g in self.fault_list:
                    if not g.fired and g.kind in ("1101", "1102") and g.after_s is not None:
                        g.fired = True
                        asyncio.get_running_loop().call_later(g.after_s, self.connectivity_restored, g.kind == "1102")
                        break
        elif f.kind in ("1101", "1102"):
            self.connectivity_restored(f.kind == "1102")
        elif f.kind == "away":
            self._drop_all()
            self.free_ticks += f.ticks
        elif f.kind == "drop":
            self._drop_all()
        elif f.kind == "restart":
            self.commit()
            if self.on_scheduled_fault is not None:
                self.on_scheduled_fault(f)
            raise _Stop

    def _drop_all(self) -> None:
        for s in list(self.sessions.values()):
            s.close()

    async def _tick(self, idx: int, t: int, p: int, rematch: bool = False) -> None:
        venue = self.venue
        free = await self._gate()
        if not rematch:
            due = self._due_faults(idx, t)
            if due:  # scheduled faults fire when tick idx is about to be handled
                for f in due:
                    await self._scheduled(f)
                free = await self._gate()
        if free and self.free_ticks > 0:
            self.free_ticks -= 1
        self.tick_index, self.cur_t, self.cur_p = idx, t, p
        self.phase = "fills"
        lockstep = self.pace == LOCKSTEP and not free
        hidden = []
        saved_arriving = None
        if rematch:
            # resumed in the middle of this tick's fills: orders placed while it was handled are
            # not part of its crossed set (they are live from the next tick), and an order already
            # (partly) filled on this tick does not fill on it again
            filled_now = {self.orders[e.perm_id].venue_id for e in self.execs if e.time_ns == t}
            hidden = [o for o in venue.orders.values()
                      if (o.placed_ns == t or o.id in filled_now) and o.status is OrderStatus.SUBMITTED]
            for o in hidden:
                o.status = OrderStatus.REJECTED
            saved_arriving, venue.arriving = venue.arriving, []
        gen = venue.match(t, p)
        try:
            await self._fills(gen, idx, t, p, self._lit_waiting, lockstep, saved_arriving)
        finally:
            for o in hidden:
                if o.status is OrderStatus.REJECTED and o.id in venue.orders:
                    o.status = OrderStatus.SUBMITTED
        self.phase = "data"
        self._write_cursor("data")
        if lockstep:
            free = await self._gate()
            lockstep = not free
        got = self._send_tick(t, p)
        if self._delayed:
            delayed, self._delayed = self._delayed, []
            for o in delayed:
                self._send_order_state(o)
        if lockstep and got:
            await self._await_acks("tick", t, got)
        if self._advance_waiters:
            done = [(n, f) for n, f in self._advance_waiters if n <= idx]
            for _, f in done:
                if not f.done():
                    f.set_result(None)
            self._advance_waiters[:] = [(n, f) for n, f in self._advance_waiters if n > idx]

    async def _fills(self, gen, idx: int, t: int, p: int, lit: set, lockstep: bool, saved_arriving) -> None:
        """Draw the tick's fills one at a time; each is reported (and, lockstep, acked) before the next."""
        venue = self.venue
        sym = self.symbol
        first = True
        while True:
            if not first and lockstep:
                free = await self._gate()
                lockstep = not free
            held = venue.position.get(sym, 0)
            cost = venue.cost.get(sym, 0)
            fill = next(gen, None)
            if first:
                first = False
                if saved_arriving is not None:
                    venue.arriving[:0] = saved_arriving
                if lit:
                    for vid in [v for v in lit if v in venue.orders and venue.orders[v].triggered]:
                        lit.discard(vid)
                        o = self.by_leg.get(vid)
                        if o is not None and o.working:
                            o.status = "Submitted"
                            self._dirty(o)
                            self._send_order_state(o, open_order=False)
            if fill is None:
                break
            rec = self._record_fill(fill, held, cost)
            self.ids.dirty_meta["cursor"] = f"fills:{idx}:{t}:{p}"
            self.commit()
            got = self._send_fill(rec)
            if lockstep and got:
                await self._await_acks("exec", rec.exec_id, got)

    def _write_cursor(self, phase: str) -> None:
        """Persist where the replay is. Cheap when nothing else changed (one autocommitted row);
        the venue itself is checkpointed when it has changes, and its clock every 2 s."""
        text = f"{phase}:{self.tick_index}:{self.cur_t}:{self.cur_p}"
        venue = self.venue
        ids = self.ids
        now = time.monotonic()
        if venue.dirty_orders or venue.unsaved or now - self._last_full >= 2.0:
            ids.dirty_meta["cursor"] = text
            self.commit()
            self._last_full = now
        elif ids.dirty_orders or ids.new_execs or ids.dirty_meta or ids.dirty_clients or ids.dirty_positions:
            ids.dirty_meta["cursor"] = text
            ids.commit()
        else:
            ids.write_cursor(text)

    def _send_tick(self, t: int, p: int) -> set[int]:
        for sink in self.md_sinks:  # Alpaca is not cut off from the market when TWS is (1100)
            sink.deliver_tick(self.tick_index, t, p)
        if self.lost:
            return set()
        got = set()
        for s in list(self.sessions.values()):
            if s.ready and s.has_md:
                s.orders_since_tick = False
                s.deliver_tick(t, p)
                if s.is_pacer:
                    got.add(s.client_id)
            elif self.md_sinks and s.ready and s.hello:
                # it gets its ticks through the other door (even one reconnecting just now: it
                # is sent the tick again when it subscribes, see external_subscribed)
                s.orders_since_tick = False
                got.add(s.client_id)
        self.counters["ticks_sent"] += 1
        return got

    async def advance(self, n: int) -> None:
        """Let the venue run n ticks unpaced (no pacer needed, no acks awaited)."""
        if n <= 0 or self.finished:
            return
        target = self.tick_index + n
        fut = asyncio.get_running_loop().create_future()
        self._advance_waiters.append((target, fut))
        self.free_ticks += n
        self.wake()
        await fut


class _Stop(Exception):
    pass


def _dec_text(d) -> str:
    if d is None:
        return ""
    if isinstance(d, Decimal):
        return format(d.normalize(), "f") if d == d.to_integral_value() else format(d, "f")
    return str(d)


def _cents(d: Decimal) -> int | None:
    if not d.is_finite() or d <= 0:
        return None
    c = d * 100
    return int(c) if c == c.to_integral_value() else None


def _quantity(text: str) -> int | None:
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite() or d != d.to_integral_value():
        return None
    return int(d)


def _ny_date(ns: int):
    return datetime.fromtimestamp(ns // NS, NEW_YORK).date()
