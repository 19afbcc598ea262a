"""The TWS-protocol server: sessions, the handshake, request dispatch, and the :class:`SimTws` API.

``SimTws`` is what tests and the CLI drive::

    sim = SimTws(data=path, state_dir=tmp, pace="lockstep", port=0)
    await sim.start()            # listening on 127.0.0.1:sim.port
    ...                          # ib_insync / ib_async clients connect to it
    await sim.stop()

It binds loopback only unless ``allow_remote=True``. :class:`SimTwsThread` runs one in a
background thread with its own event loop (for a bot under test in the same process but another
loop, or a synchronous test).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from bothost_plugins.sim_broker.venue import Commission

from . import codec
from .codec import In, Misaligned
from .exchange import LOCKSTEP, NEW_YORK, NS, TICK_SIZE_SHARES, Exchange, parse_pace
from .faults import Fault, parse_fault
from .wire import MessageReader, ProtocolError, cents_text, frame, parse_version_range

log = logging.getLogger("bothost.sim_tws")

MAX_WRITE_BUFFER = 64 * 1024 * 1024  # a client that stops reading is disconnected (as TWS does)
TBT_CODES = {"Last": 1, "AllLast": 2}


class Session(asyncio.Protocol):
    """One client connection."""

    def __init__(self, sim: SimTws):
        self.sim = sim
        self.reader = MessageReader()
        self.transport: asyncio.Transport | None = None
        self.state = "version"
        self.client_id: int = -1
        self.ready = False
        self.closed = False
        self.hello = False
        self.mkt: dict[int, bool] = {}  # streaming reqMktData subscriptions (reqId -> True)
        self.tbt: dict[int, int] = {}  # tick-by-tick subscriptions: reqId -> 1 (Last) / 2 (AllLast)
        self.positions_sub = False
        self.account_sub = False
        self.md_type = 1
        self.orders_since_tick = False
        self.peer = ""

    # ------------------------------------------------------------------ properties
    @property
    def exchange(self) -> Exchange:
        return self.sim.exchange

    @property
    def has_md(self) -> bool:
        return bool(self.mkt or self.tbt)

    @property
    def is_pacer(self) -> bool:
        """It sent HELLO and gets the symbol's market data (here, or through another door: the
        combined simulator's Alpaca stream). With none, a lockstep replay pauses."""
        if not (self.hello and self.ready):
            return False
        if self.mkt or self.tbt:
            return True
        ex = self.sim.exchange
        return ex is not None and ex.external_md()

    @property
    def paces(self) -> bool:
        """Its acks are awaited for what it was sent: a pacer, or (with another door) any HELLO
        client, also while its other connection is reconnecting."""
        if not (self.hello and self.ready):
            return False
        if self.mkt or self.tbt:
            return True
        ex = self.sim.exchange
        return ex is not None and bool(ex.md_sinks)

    # ------------------------------------------------------------------ transport
    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.sim.sessions.add(self)

    def connection_lost(self, exc) -> None:
        self._gone()

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.reader.feed(data)
        except ProtocolError as exc:
            log.warning("sim-tws: %s from %s; closing", exc, self.peer)
            self.close()
            return
        for fields in messages:
            if self.closed:
                return
            try:
                self.handle(fields)
            except Exception:  # never let one bad request take the session (or the server) down
                log.exception("sim-tws: error handling %s from client %s", fields[:3], self.client_id)

    def send(self, data: bytes) -> None:
        t = self.transport
        if t is None or self.closed:
            return
        t.write(data)
        if t.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("sim-tws: client %s does not read its messages; disconnecting it", self.client_id)
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self._gone()

    def _gone(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.sim.sessions.discard(self)
        if self.ready:
            self.ready = False
            self.exchange.session_closed(self)
            log.info("sim-tws: client %s disconnected", self.client_id)

    def drop_subscriptions(self) -> None:
        self.mkt.clear()
        self.tbt.clear()

    # ------------------------------------------------------------------ market data out
    def deliver_tick(self, t: int, p: int) -> None:
        sec = str(t // NS)
        price = cents_text(p)
        parts = []
        for req_id, code in self.tbt.items():
            # specialConditions carries the exact data time, "ns=<nanoseconds>" (TWS's field is free text)
            parts.append(frame(f"99\x00{req_id}\x00{code}\x00{sec}\x00{price}\x00{TICK_SIZE_SHARES}\x000\x00\x00"
                               f"ns={t}\x00".encode()))
        for req_id in self.mkt:
            parts.append(frame(f"1\x006\x00{req_id}\x004\x00{price}\x00{TICK_SIZE_SHARES}\x000\x00".encode()))
            parts.append(frame(f"2\x006\x00{req_id}\x005\x00{TICK_SIZE_SHARES}\x00".encode()))
            parts.append(frame(f"46\x006\x00{req_id}\x0045\x00{sec}\x00".encode()))
        if parts:
            self.send(b"".join(parts))

    # ------------------------------------------------------------------ requests in
    def handle(self, fields: list[str]) -> None:
        if self.sim.exchange is None:  # stopping or restarting
            return
        if self.state == "version":
            try:
                self._handshake(fields[0] if fields else "")
            except ProtocolError as exc:
                log.warning("sim-tws: %s from %s; closing", exc, self.peer)
                self.close()
            return
        if not fields:
            return
        try:
            msg_id = int(fields[0])
        except ValueError:
            log.warning("sim-tws: message with a non-numeric id %r from client %s ignored", fields[0], self.client_id)
            self.exchange.counters["unknown_messages"] += 1
            return
        if self.state == "startapi":
            if msg_id == In.START_API:
                self._start_api(fields)
            else:
                log.warning("sim-tws: message %s before startApi ignored", msg_id)
            return
        handler = _HANDLERS.get(msg_id)
        if handler is None:
            self.exchange.counters["unknown_messages"] += 1
            log.info("sim-tws: client %s sent message id %s, which the simulator does not serve; ignored",
                     self.client_id, msg_id)
            return
        handler(self, fields)

    def _handshake(self, text: str) -> None:
        lo, hi = parse_version_range(text)
        if not lo <= codec.SERVER_VERSION <= hi:
            log.warning("sim-tws: client %s supports versions %s..%s, not %s; closing",
                        self.peer, lo, hi, codec.SERVER_VERSION)
            self.close()
            return
        when = datetime.fromtimestamp(self.exchange.clock_ns() // NS, NEW_YORK)
        self.send(frame(f"{codec.SERVER_VERSION}\x00{when.strftime('%Y%m%d %H:%M:%S %Z')}\x00".encode()))
        self.state = "startapi"

    def _start_api(self, fields: list[str]) -> None:
        try:
            cid = int(fields[2])
        except (IndexError, ValueError):
            self.close()
            return
        self.client_id = cid
        other = self.exchange.sessions.get(cid)
        if other is not None and other.ready and not other.closed:
            self.send(codec.error(-1, 326, "Unable to connect as the client id is already in use. "
                                           "Retry with a unique client id."))
            log.info("sim-tws: client id %s already in use; refusing %s", cid, self.peer)
            self.transport.close()
            self.closed = True
            self.sim.sessions.discard(self)
            return
        self.state = "ready"
        self.ready = True
        ex = self.exchange
        ex.session_ready(self)
        self.send(codec.managed_accounts(ex.account) + codec.next_valid_id(ex.next_order_id(cid))
                  + codec.error(-1, 2104, "Market data farm connection is OK:usfarm")
                  + codec.error(-1, 2106, "HMDS data farm connection is OK:ushmds")
                  + codec.error(-1, 2158, "Sec-def data farm connection is OK:secdefnj"))
        if ex.lost:
            self.send(codec.error(-1, 1100, "Connectivity between IB and Trader Workstation has been lost."))
        log.info("sim-tws: client %s connected from %s", cid, self.peer)

    # each handler: (session, fields)
    def _req_mkt_data(self, fields):
        req = codec.decode_req_mkt_data(fields)
        ex = self.exchange
        if not ex.is_our_contract(req.contract):
            self.send(codec.error(req.reqId, 200, "No security definition has been found for the request"))
            return
        last = ex.last_cents()
        if req.snapshot or req.regulatorySnapshot:
            out = [codec.market_data_type(req.reqId, 1)]
            if last is not None:
                out.append(codec.tick_price(req.reqId, codec.LAST, cents_text(last), TICK_SIZE_SHARES))
                out.append(codec.tick_size(req.reqId, codec.LAST_SIZE, TICK_SIZE_SHARES))
                out.append(codec.tick_string(req.reqId, codec.LAST_TIMESTAMP, str(ex.clock_ns() // NS)))
            out.append(codec.tick_snapshot_end(req.reqId))
            self.send(b"".join(out))
            return
        self.mkt[req.reqId] = True
        out = [codec.market_data_type(req.reqId, self._reported_md_type())]
        if last is not None and not self.hello:
            # the current values, as TWS sends them on subscribing (not to a lockstep pacer: it
            # would see the last tick twice)
            out.append(codec.tick_price(req.reqId, codec.LAST, cents_text(last), TICK_SIZE_SHARES))
            out.append(codec.tick_size(req.reqId, codec.LAST_SIZE, TICK_SIZE_SHARES))
        self.send(b"".join(out))
        ex.subscribed(self)

    def _reported_md_type(self) -> int:
        # the simulator always "has" live data: 1 (live) for types 1 and 3, 2 (frozen) for 2 and 4
        # once the data has ended
        if self.md_type in (2, 4) and self.exchange.finished:
            return 2
        return 1

    def _cancel_mkt_data(self, fields):
        req_id = int(fields[2])
        self.mkt.pop(req_id, None)
        self.exchange.pacer_changed(self)

    def _place_order(self, fields):
        try:
            req = codec.decode_place_order(fields)
        except Misaligned as exc:
            self.exchange.counters["misaligned"] += 1
            order_id = int(fields[1]) if len(fields) > 1 and fields[1].lstrip("-").isdigit() else -1
            log.error("sim-tws: placeOrder from client %s misaligned (%s)", self.client_id, exc)
            self.send(codec.error(order_id, 320, f"Error reading request: placeOrder: {exc}"))
            return
        self.exchange.place_order(self, req)

    def _cancel_order(self, fields):
        self.exchange.cancel_order(self, int(fields[2]))

    def _req_open_orders(self, fields):
        self.exchange.send_open_orders(self, all_clients=False)

    def _req_all_open_orders(self, fields):
        self.exchange.send_open_orders(self, all_clients=True)

    def _req_account_updates(self, fields):
        subscribe = fields[2] not in ("", "0")
        account = fields[3] if len(fields) > 3 else ""
        if subscribe:
            self.account_sub = True
            if account in ("", self.exchange.account):
                self.exchange.send_account(self)
            else:
                self.send(codec.account_download_end(account))
        else:
            self.account_sub = False

    def _req_executions(self, fields):
        req_id, f = codec.decode_req_executions(fields)
        self.exchange.send_executions(self, req_id, f)

    def _req_ids(self, fields):
        self.send(codec.next_valid_id(self.exchange.next_order_id(self.client_id)))

    def _req_contract_details(self, fields):
        self.exchange.send_contract_details(self, codec.decode_req_contract_details(fields))

    def _req_auto_open_orders(self, fields):
        log.info("sim-tws: client %s: reqAutoOpenOrders(%s) accepted", self.client_id, fields[2:3])

    def _req_managed_accts(self, fields):
        self.send(codec.managed_accounts(self.exchange.account))

    def _req_current_time(self, fields):
        self.send(codec.current_time(self.exchange.clock_ns() // NS))

    def _req_global_cancel(self, fields):
        self.exchange.global_cancel(self)

    def _req_market_data_type(self, fields):
        self.md_type = int(fields[2] or 1)
        reported = self._reported_md_type()
        self.send(b"".join(codec.market_data_type(r, reported) for r in self.mkt))

    def _req_positions(self, fields):
        self.positions_sub = True
        self.exchange.send_positions(self)

    def _cancel_positions(self, fields):
        self.positions_sub = False

    def _req_account_summary(self, fields):
        self.exchange.send_account_summary(self, int(fields[2]), fields[4] if len(fields) > 4 else "")

    def _req_positions_multi(self, fields):
        self.exchange.send_positions_multi(self, int(fields[2]))

    def _req_account_updates_multi(self, fields):
        self.exchange.send_account_multi(self, int(fields[2]), fields[3] if len(fields) > 3 else "")

    def _req_tick_by_tick(self, fields):
        req = codec.decode_req_tick_by_tick(fields)
        ex = self.exchange
        if not ex.is_our_contract(req.contract):
            self.send(codec.error(req.reqId, 200, "No security definition has been found for the request"))
            return
        code = TBT_CODES.get(req.tickType)
        if code is None:
            self.send(codec.error(req.reqId, 10189, f"Failed to request tick-by-tick data: the simulator replays "
                                                    f"trades only ('Last', 'AllLast'), not {req.tickType!r}"))
            return
        self.tbt[req.reqId] = code
        ex.subscribed(self)

    def _cancel_tick_by_tick(self, fields):
        self.tbt.pop(int(fields[1]), None)
        self.exchange.pacer_changed(self)

    def _req_completed_orders(self, fields):
        self.exchange.send_completed_orders(self)

    def _ignore(self, fields):
        pass

    def _hello(self, fields):
        self.hello = True
        log.info("sim-tws: client %s speaks the lockstep extension", self.client_id)
        self.exchange.wake()

    def _ack(self, fields):
        if len(fields) >= 4:
            self.exchange.ack(self, fields[2], fields[3])


_HANDLERS = {
    In.REQ_MKT_DATA: Session._req_mkt_data,
    In.CANCEL_MKT_DATA: Session._cancel_mkt_data,
    In.PLACE_ORDER: Session._place_order,
    In.CANCEL_ORDER: Session._cancel_order,
    In.REQ_OPEN_ORDERS: Session._req_open_orders,
    In.REQ_ACCOUNT_DATA: Session._req_account_updates,
    In.REQ_EXECUTIONS: Session._req_executions,
    In.REQ_IDS: Session._req_ids,
    In.REQ_CONTRACT_DATA: Session._req_contract_details,
    In.REQ_AUTO_OPEN_ORDERS: Session._req_auto_open_orders,
    In.REQ_ALL_OPEN_ORDERS: Session._req_all_open_orders,
    In.REQ_MANAGED_ACCTS: Session._req_managed_accts,
    In.REQ_CURRENT_TIME: Session._req_current_time,
    In.REQ_GLOBAL_CANCEL: Session._req_global_cancel,
    In.REQ_MARKET_DATA_TYPE: Session._req_market_data_type,
    In.REQ_POSITIONS: Session._req_positions,
    In.REQ_ACCOUNT_SUMMARY: Session._req_account_summary,
    In.CANCEL_ACCOUNT_SUMMARY: Session._ignore,
    In.CANCEL_POSITIONS: Session._cancel_positions,
    In.REQ_POSITIONS_MULTI: Session._req_positions_multi,
    In.CANCEL_POSITIONS_MULTI: Session._ignore,
    In.REQ_ACCOUNT_UPDATES_MULTI: Session._req_account_updates_multi,
    In.CANCEL_ACCOUNT_UPDATES_MULTI: Session._ignore,
    In.REQ_TICK_BY_TICK_DATA: Session._req_tick_by_tick,
    In.CANCEL_TICK_BY_TICK_DATA: Session._cancel_tick_by_tick,
    In.REQ_COMPLETED_ORDERS: Session._req_completed_orders,
    In.BOTHOST_HELLO: Session._hello,
    In.BOTHOST_ACK: Session._ack,
}


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse anything but loopback unless asked (the simulator takes orders from anyone who connects)."""
    if allow_remote:
        return
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"refusing to listen on {host}: the simulator binds loopback only "
                     f"(127.0.0.1, ::1) unless remote access is allowed explicitly")


class SimTws:
    """A TWS-protocol simulator over the bothost simulated venue.

    Parameters: ``data`` (the replay file), ``state_dir`` (the venue and the IB identities; kept
    across restarts; a temporary folder if None), ``pace`` (``lockstep``, ``realtime`` or ``xN``),
    ``host``/``port`` (0 picks a free port: read ``sim.port`` after ``start()``), ``symbol``,
    ``account``, ``faults`` (specs, see :mod:`.faults`), ``master_client_id`` (also gets every
    client's openOrder/orderStatus), ``partial_fill_shares``, ``commission`` (a sim_broker
    ``Commission``), ``cash`` (starting cash), ``exec_days`` (reqExecutions reaches back this many
    data days; None: all), ``allow_remote``, ``on_progress`` (callable taking a progress line),
    ``max_gap_s`` (realtime: longest wall-clock wait for a data gap).
    """

    def __init__(self, data: Path | str, state_dir: Path | str | None = None, *, pace: str = LOCKSTEP,
                 host: str = "127.0.0.1", port: int = 0, symbol: str = "TQQQ", account: str = "DU1234567",
                 faults=(), master_client_id: int | None = None, partial_fill_shares: int | None = None,
                 commission: Commission | None = None, cash: Decimal | int | str = Decimal("1000000"),
                 exec_days: int | None = None, allow_remote: bool = False, on_progress=None,
                 progress_every_s: float = 10.0, max_gap_s: float = 5.0):
        check_host(host, allow_remote)
        parse_pace(pace)
        self.data = Path(data)
        self._tmp = None
        if state_dir is None:
            import tempfile
            self._tmp = tempfile.TemporaryDirectory(prefix="sim-tws-")
            state_dir = self._tmp.name
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port
        self.options = dict(data=self.data, state_dir=self.state_dir, symbol=symbol, account=account, pace=pace,
                            partial_fill_shares=partial_fill_shares, commission=commission, cash=Decimal(cash),
                            master_client_id=master_client_id, exec_days=exec_days, on_progress=on_progress,
                            progress_every_s=progress_every_s, max_gap_s=max_gap_s)
        self.faults: list[Fault] = [f if isinstance(f, Fault) else parse_fault(f) for f in faults]
        self.exchange: Exchange | None = None
        self.sessions: set[Session] = set()
        self._server: asyncio.base_events.Server | None = None
        self._run_task: asyncio.Task | None = None
        self._restarting: asyncio.Task | None = None
        self.restarts = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> SimTws:
        self._open_exchange()
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(lambda: Session(self), self.host, self.port, reuse_address=True)
        except BaseException:
            self.exchange.close()
            self.exchange = None
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        self._run_task = loop.create_task(self.exchange.run(), name="sim-tws replay")
        return self

    def _open_exchange(self) -> None:
        ex = Exchange(faults=self.faults, **self.options)
        ex.open()
        ex.on_scheduled_fault = self._scheduled_fault
        self.exchange = ex

    async def stop(self) -> None:
        """Close every connection and the listening socket; commit the state."""
        if self._restarting is not None and self._restarting is not asyncio.current_task():
            await asyncio.gather(self._restarting, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            self._server = None
        await self._stop_exchange()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def _stop_exchange(self) -> None:
        ex = self.exchange
        if ex is None:
            return
        ex.stopping = True
        ex.wake()
        for s in list(self.sessions):
            s.close()
        if self._run_task is not None:
            if self._run_task is not asyncio.current_task():
                try:
                    await asyncio.wait_for(asyncio.shield(self._run_task), 5)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    self._run_task.cancel()
                    await asyncio.gather(self._run_task, return_exceptions=True)
            self._run_task = None
        ex.close()
        self.exchange = None

    async def restart(self) -> None:
        """A simulator restart: connections closed, everything reloaded from the state folder,
        listening again on the same port."""
        server, self._server = self._server, None
        if server is not None:
            server.close()  # no new connections from here on
        await self._stop_exchange()
        if server is not None:
            try:
                await asyncio.wait_for(server.wait_closed(), 5)
            except asyncio.TimeoutError:  # pragma: no cover - a connection that will not close
                pass
        self._open_exchange()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Session(self), self.host, self.port, reuse_address=True)
        self._run_task = loop.create_task(self.exchange.run(), name="sim-tws replay")
        self.restarts += 1
        log.info("sim-tws: restarted from %s", self.state_dir)

    def _scheduled_fault(self, f: Fault):
        if f.kind == "drop":
            self.drop_connections()
        elif f.kind == "restart":
            self._restarting = asyncio.get_running_loop().create_task(self.restart())

    async def __aenter__(self) -> SimTws:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ------------------------------------------------------------------ faults and control
    def add_fault(self, spec: str | Fault) -> Fault:
        f = spec if isinstance(spec, Fault) else parse_fault(spec)
        self.faults.append(f)
        self.exchange.add_fault(f)
        return f

    def drop_connections(self) -> None:
        """Close every client connection now (state kept)."""
        for s in list(self.sessions):
            s.close()

    def lose_connectivity(self) -> None:
        """Error 1100 to every client; orders are refused until restored (lockstep: replay paused)."""
        self.exchange.connectivity_lost()

    def restore_connectivity(self, data_kept: bool = True) -> None:
        """Error 1102 (data kept) or 1101 (data lost: market data subscriptions are dropped)."""
        self.exchange.connectivity_restored(data_kept)

    async def advance(self, ticks: int) -> None:
        """Let the venue run ``ticks`` ticks on its own (no pacer needed, no acks awaited)."""
        await self.exchange.advance(ticks)

    def pause(self) -> None:
        self.exchange.paused = True

    def resume(self) -> None:
        self.exchange.paused = False
        self.exchange.wake()

    async def wait_finished(self, timeout: float | None = None) -> None:
        """Wait until the replay has reached the end of the data."""
        async def _w():
            while not (self.exchange and self.exchange.finished):
                await asyncio.sleep(0.01)
        await asyncio.wait_for(_w(), timeout)

    def seed_order(self, side: str, quantity: int, limit, **kw):
        """A foreign/legacy order from another client id (default 7), working at the venue."""
        return self.exchange.seed_order(side, quantity, Decimal(str(limit)), **kw)

    def seed_position(self, **kw):
        """A non-stock position (default: 1 TQQQ call), reported in positions and the portfolio."""
        return self.exchange.seed_position(**kw)

    def make_inactive(self, client_id: int, order_id: int, why: str = "") -> None:
        o = self.exchange.by_client[(client_id, order_id)]
        self.exchange.make_inactive(o, why)

    # ------------------------------------------------------------------ views
    @property
    def clock_ns(self) -> int:
        return self.exchange.clock_ns()

    @property
    def tick_index(self) -> int:
        return self.exchange.tick_index

    @property
    def finished(self) -> bool:
        return bool(self.exchange and self.exchange.finished)

    def executions(self):
        return list(self.exchange.execs)

    def open_orders(self):
        return [o for o in self.exchange.orders.values() if o.working or o.status in ("PendingSubmit", "Inactive")]


class SimTwsThread:
    """A :class:`SimTws` running in a background thread with its own event loop.

    ``with SimTwsThread(data=..., state_dir=...) as sim: ... sim.port ...``; ``sim.call(fn, *args)``
    runs ``fn(sim.sim, *args)`` (or awaits it if it is a coroutine function) on the simulator's loop.
    """

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.sim: SimTws | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    @property
    def port(self) -> int:
        return self.sim.port

    def start(self) -> SimTwsThread:
        self._thread = threading.Thread(target=self._main, name="sim-tws", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        async def main():
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                self.sim = SimTws(**self.kwargs)
                await self.sim.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            await self._stop.wait()
            await self.sim.stop()
        asyncio.run(main())

    def call(self, fn, *args, timeout: float = 30):
        async def run():
            r = fn(self.sim, *args)
            if asyncio.iscoroutine(r):
                r = await r
            return r
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)

    def __enter__(self) -> SimTwsThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["SimTws", "SimTwsThread", "Session", "check_host"]
