"""``IbBroker``: the host's Broker over one TWS API connection (ib_insync or ib_async).

Where does an IB message go? The client library decodes it and fires its event; the handlers
here turn it into the host's values and hand them to the engine through ``emit``, in the order
the socket delivered them:

* ``execDetailsEvent`` -> :class:`~bothost.model.Fill` (commission None: it comes later)
* ``commissionReportEvent`` -> :class:`~bothost.model.CommissionReport`
* ``orderStatusEvent`` -> :class:`~bothost.model.OrderUpdate` (a Cancelled that IB caused with
  a 201 is reported as REJECTED with its code and reason)
* ``errorEvent`` 1100 / 1101 / 1102, a closed socket, a silent socket (heartbeat) ->
  :class:`~bothost.model.ConnectionEvent` LOST / RESTORED; the rest become log lines (``codes``)

``supervise`` is the reconnect loop the engine runs beside the feed; ``snapshot`` reads open
orders of all clients, positions and executions, again if an execution landed in between.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

from bothost.errors import InputError
from bothost.hookspecs import BrokerDown, BrokerUnavailable, BuildEnv, Emit
from bothost.model import (
    BrokerSnapshot,
    ConnectionEvent,
    ConnectionState,
    Fill,
    OrderRequest,
    OrderStatus,
    Tick,
)

from . import codes, convert, library, lockstep
from .config import IbBrokerConfig
from .connection import backoff_s, in_nightly_reset

log = logging.getLogger("bothost.ib_broker")

SOURCE = "ib_broker"
#: Codes with which IB kills an order it would not accept (a Cancelled status follows). 202 is
#: the echo of a cancel, not a reject.
REJECT_CODES = frozenset({103, 110, 200, 201, 203})
#: Snapshot attempts when executions keep landing while it is taken.
SNAPSHOT_ATTEMPTS = 3


def _seconds(d) -> float:
    return d.total_seconds()


class IbBroker:
    """One TWS connection with a fixed client id. See the module docstring for the event flow."""

    name = SOURCE

    def __init__(self, config: IbBrokerConfig, env: BuildEnv):
        self.config = config
        self.mode = env.mode
        self.lib = None
        self.ib = None
        self.account = config.account
        self.pace = ""  # what a simulator advertises ('' for TWS)
        self.clock_ns = 0  # the latest time the broker or the data told (data time in a rehearsal)
        self._emit: Emit = lambda event: None
        self._trades: dict[str, object] = {}  # our order id -> the library's Trade (for cancels)
        self._contracts: dict[str, object] = {}  # symbol -> qualified contract
        self._exec_ids: collections.OrderedDict = collections.OrderedDict()  # fills already emitted
        self._last_status: dict[str, tuple] = {}
        self._live_execs = 0  # counts live executions: a snapshot taken while one lands is redone
        self._client_id_in_use = False
        self._socket_up = False
        self._lost_since: float | None = None  # monotonic time of the LOST in effect
        self._closing = False
        self._disconnected: asyncio.Event | None = None
        self._tick_listeners: dict[str, Callable] = {}  # symbol -> feed callback(time_s, price, size, special)
        self._restore_listeners: list[Callable[[bool], None]] = []  # feed: resubscribe (data lost?)
        self._data_error_listeners: list[Callable[[int, int, str], None]] = []

    # ------------------------------------------------------------------ Broker
    def bind(self, emit: Emit) -> None:
        self._emit = emit

    async def connect(self) -> None:
        """Connect (with retries), then check the account (S2) before anything can be placed."""
        self.lib = library.load(self.config.client_library)
        # Every TWS message is logged by this plugin in a trader's words (codes.py); the client
        # library's own lines ("Error 202" for our own cancel, say) would only alarm.
        logging.getLogger(self.config.client_library).setLevel(logging.CRITICAL)
        self.ib = self.lib.IB()
        self._hook()
        self._disconnected = asyncio.Event()
        attempts = self.config.connect_retries + 1
        problem = ""
        for attempt in range(1, attempts + 1):
            try:
                await self._connect_once()
                break
            except (OSError, ConnectionError, TimeoutError, asyncio.TimeoutError) as exc:
                problem = self._why(exc)
                log.warning("TWS connection attempt %d of %d failed: %s", attempt, attempts, problem)
                self.ib.disconnect()
                if attempt < attempts:
                    await asyncio.sleep(backoff_s(attempt))
        else:
            raise BrokerUnavailable(
                f"cannot connect to TWS / IB Gateway at {self.config.host}:{self.config.port} as client "
                f"{self.config.client_id} after {attempts} attempts: {problem}. Is it running, with the API "
                f"enabled on that port (TWS: Configure > API > Settings)?")
        self._check_account()
        now = await self._server_time_ns()
        self.clock_ns = max(self.clock_ns, now)
        log.info("connected to %s:%s as client %s, account %s%s", self.config.host, self.config.port,
                 self.config.client_id, self.account, f", simulator pace {self.pace}" if self.pace else "")

    def _why(self, exc: BaseException) -> str:
        if self._client_id_in_use:
            return (f"client id {self.config.client_id} is already in use (another bot, or a second copy of this "
                    f"one, is connected with it)")
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            return f"no answer within {_seconds(self.config.connect_timeout):g}s"
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def _connect_once(self) -> None:
        self._client_id_in_use = False
        self._id_refused = asyncio.Event()
        connecting = asyncio.ensure_future(self.ib.connectAsync(
            self.config.host, self.config.port, clientId=self.config.client_id,
            timeout=_seconds(self.config.connect_timeout), account=self.config.account))
        refused = asyncio.ensure_future(self._id_refused.wait())
        try:
            # TWS answers a client id in use with 326 at once: no need to wait out the timeout
            await asyncio.wait({connecting, refused}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            refused.cancel()
        if not connecting.done():
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
            raise ConnectionError("client id in use")
        connecting.result()
        if self._client_id_in_use or not self.ib.isConnected():
            raise ConnectionError("TWS closed the connection")
        self._socket_up = True
        self._disconnected.clear()
        self.pace = lockstep.advertised_pace(self.ib.accountValues())
        if self.pace == "lockstep":
            # The client paces its requests to TWS's 50 a second; a simulator in lockstep waits for
            # an ack per tick, so that throttle would be the rehearsal's speed. Real TWS keeps it.
            self.ib.client.MaxRequests = 0
            self.ib.client.send(lockstep.HELLO, lockstep.VERSION)
        for trade in self.ib.trades():
            key = self._key(trade.order.clientId, trade.order.orderId, trade.order.permId)
            self._trades[key] = trade

    def _check_account(self) -> None:
        """S2, once TWS has said which accounts it manages: a live (non-DU) account needs
        `mode: live`. Checked before the first order; the connection is closed if refused."""
        accounts = [a for a in self.ib.managedAccounts() if a]
        if self.account and self.account not in accounts:
            self._closing = True
            self.ib.disconnect()
            raise InputError(f"TWS manages accounts {', '.join(accounts) or '(none)'}, not {self.account!r}",
                             hint="fix broker.account, or leave it empty to trade the only account")
        if not self.account:
            if len(accounts) != 1:
                self._closing = True
                self.ib.disconnect()
                raise InputError(f"TWS manages {len(accounts)} accounts ({', '.join(accounts)}): say which to trade",
                                 hint="set broker.account to one of them")
            self.account = accounts[0]
        if not convert.is_paper_account(self.account) and self.mode != "live":
            self._closing = True
            self.ib.disconnect()
            raise InputError(
                f"account {self.account} is a LIVE account (paper accounts start with DU), but the config "
                "does not say `mode: live`; nothing was placed",
                hint="paper trading is the default; add `mode: live` at the top of the config to trade real money")

    async def _server_time_ns(self) -> int:
        try:
            when = await asyncio.wait_for(self.ib.reqCurrentTimeAsync(), _seconds(self.config.heartbeat_timeout))
        except (TimeoutError, asyncio.TimeoutError, ConnectionError):
            return time.time_ns()
        return convert.time_ns(when)

    def contract(self, symbol: str):
        """The stock on SMART in USD: qualified (with its conId) once ``qualify`` has run."""
        known = self._contracts.get(symbol)
        return known if known is not None else self.lib.Stock(symbol, "SMART", "USD")

    async def qualify(self, symbol: str) -> None:
        contract = self.lib.Stock(symbol, "SMART", "USD")
        try:
            qualified = await asyncio.wait_for(self.ib.qualifyContractsAsync(contract),
                                               _seconds(self.config.heartbeat_timeout))
        except (TimeoutError, asyncio.TimeoutError, ConnectionError):
            qualified = []
        if qualified:
            self._contracts[symbol] = qualified[0]
        else:
            log.warning("IB did not confirm the contract of %s (SMART, USD); using it unqualified", symbol)

    def _require_socket(self, what: str) -> None:
        # The engine closes its gate when it handles the LOST; an event queued before it may
        # still try to trade: that is the broker being down, not an internal error.
        if not self._socket_up or not self.ib.isConnected():
            raise BrokerDown(f"{what}: the TWS socket is closed")

    def place(self, order: OrderRequest) -> str:
        self._require_socket(f"not placed: {order.side.value} {order.quantity} {order.symbol} ({order.ref})")
        contract = self.contract(order.symbol)
        ib_order = self.lib.Order(**convert.ib_order_fields(order), account=self.account)
        try:
            trade = self.ib.placeOrder(contract, ib_order)
        except ConnectionError as exc:
            raise BrokerDown(f"not placed: {order.ref}: {exc}") from exc
        key = str(trade.order.orderId)
        self._trades[key] = trade
        return key

    def cancel(self, order_id: str) -> None:
        self._require_socket(f"cancel of order {order_id} not sent")
        trade = self._trades.get(order_id)
        try:
            if trade is not None:
                self.ib.cancelOrder(trade.order)
            elif order_id.isdigit():
                self.ib.cancelOrder(self.lib.Order(orderId=int(order_id), clientId=self.config.client_id))
            else:
                log.warning("order %s belongs to another client: IB lets only its own client cancel it", order_id)
        except ConnectionError as exc:
            raise BrokerDown(f"cancel of order {order_id} not sent: {exc}") from exc

    async def snapshot(self, executions_since_ns: int | None) -> BrokerSnapshot:
        """Open orders of every client, positions and executions, from three requests. An
        execution that lands between them would make the position disagree with the orders
        (a false S1): the snapshot is then taken again."""
        ib = self.ib
        flt = self.lib.ExecutionFilter()
        if executions_since_ns is None:
            executions_since_ns = self.clock_ns - int(_seconds(self.config.executions_lookback) * 1e9)
        if executions_since_ns > 0:
            flt.time = datetime.fromtimestamp(executions_since_ns / 1e9, timezone.utc).strftime("%Y%m%d-%H:%M:%S")
        for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
            seen = self._live_execs
            trades = await ib.reqAllOpenOrdersAsync()
            positions = await ib.reqPositionsAsync()
            fills = await ib.reqExecutionsAsync(flt)
            now = await self._server_time_ns()
            if self._live_execs == seen:
                break
            log.info("an execution arrived while the snapshot was being read: reading it again (%d)", attempt)
        own = self.config.client_id
        # One entry per order: TWS sends an order's openOrder again when it changes, and one that
        # arrives while the request is open is in its answer too (the same Trade, listed twice).
        # Counted twice, its filled shares would be a false "fewer shares than the lots" (S1).
        stock = list({self._key(t.order.clientId, t.order.orderId, t.order.permId): t
                      for t in trades if t.contract.secType == "STK"}.values())
        quantities = {self._key(t.order.clientId, t.order.orderId, t.order.permId): int(t.order.totalQuantity)
                      for t in list(stock) + [t for t in ib.trades() if t.contract.secType == "STK"]}
        # The client keeps one Fill per execution, and the commission report that follows a
        # replayed execution updates that one, not the copy in the request's result.
        kept = {f.execution.execId: f for f in ib.fills()}
        executions = []
        for f in fills:
            if f.contract.secType != "STK":
                continue  # an option on TQQQ is not TQQQ shares
            f = kept.get(f.execution.execId, f)
            key = self._key(f.execution.clientId, f.execution.orderId, f.execution.permId)
            executions.append(convert.fill(f, own, quantities.get(key), with_commission=True))
        executions.sort(key=lambda e: e.time_ns)
        self.clock_ns = max(self.clock_ns, now)
        return BrokerSnapshot(
            time_ns=max(now, self.clock_ns),
            open_orders=tuple(convert.open_order(t, own) for t in stock),
            executions=tuple(executions),
            positions=tuple(convert.position(p) for p in positions if not self.account or p.account == self.account),
            client_id=own,
        )

    async def close(self) -> None:
        self._closing = True
        if self.ib is not None:
            self.ib.disconnect()

    # ------------------------------------------------------------------ supervision
    async def supervise(self) -> None:
        """Heartbeat, reconnect with backoff, LOST/RESTORED. Gives up (exit 4) after
        ``reconnect_for`` without TWS, not counting IB's nightly reset window."""
        beat = _seconds(self.config.heartbeat)
        missed = 0
        while True:
            if self._socket_up:
                # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow the cancel that
                # ends the run when it arrives as the wait finishes, and the run would never end.
                waiter = asyncio.ensure_future(self._disconnected.wait())
                try:
                    done, _ = await asyncio.wait({waiter}, timeout=beat)
                finally:
                    waiter.cancel()
                if not done:
                    if await self._heartbeat():
                        missed = 0
                    else:
                        missed += 1
                        log.warning("TWS did not answer the heartbeat (%d in a row)", missed)
                        if missed >= 2:
                            log.error("the TWS socket is silent: treating it as dead and reconnecting")
                            self.ib.disconnect()  # fires disconnectedEvent: LOST
                            missed = 0
                self._check_outage()
                continue
            await self._reconnect()

    async def _heartbeat(self) -> bool:
        try:
            await asyncio.wait_for(self.ib.reqCurrentTimeAsync(), _seconds(self.config.heartbeat_timeout))
            return True
        except (TimeoutError, asyncio.TimeoutError, ConnectionError):
            return False

    def _check_outage(self) -> None:
        if self._lost_since is None or in_nightly_reset(time.time_ns()):
            return
        if time.monotonic() - self._lost_since > _seconds(self.config.reconnect_for):
            raise BrokerUnavailable(f"TWS has been without IB's servers for over "
                                    f"{_seconds(self.config.reconnect_for):g}s (1100 and no 1101/1102)")

    async def _reconnect(self) -> None:
        attempt = 0
        started = time.monotonic()
        while not self._socket_up:
            attempt += 1
            await asyncio.sleep(backoff_s(attempt))
            try:
                self.ib.disconnect()
                await self._connect_once()
            except (OSError, ConnectionError, TimeoutError, asyncio.TimeoutError) as exc:
                nightly = in_nightly_reset(time.time_ns())
                log.warning("reconnect attempt %d failed: %s%s", attempt, self._why(exc),
                            " (IB's nightly reset: retrying as long as it lasts)" if nightly else "")
                if nightly:
                    started = time.monotonic()
                elif time.monotonic() - started > _seconds(self.config.reconnect_for):
                    raise BrokerUnavailable(
                        f"TWS at {self.config.host}:{self.config.port} unreachable for over "
                        f"{_seconds(self.config.reconnect_for):g}s: {self._why(exc)}") from exc
                continue
        log.warning("reconnected to TWS after %d attempt(s)", attempt)
        self._restored("reconnected to TWS", data_lost=True)

    def _lost(self, message: str) -> None:
        if self._lost_since is None:
            self._lost_since = time.monotonic()
            self._emit(ConnectionEvent(self._now_ns(), SOURCE, ConnectionState.LOST, message))

    def _restored(self, message: str, data_lost: bool) -> None:
        if self._lost_since is not None:
            self._lost_since = None
            self._emit(ConnectionEvent(self._now_ns(), SOURCE, ConnectionState.RESTORED, message))
        for listener in list(self._restore_listeners):
            listener(data_lost)

    # ------------------------------------------------------------------ the library's events
    def _hook(self) -> None:
        ib = self.ib
        ib.orderStatusEvent += self._on_status
        ib.execDetailsEvent += self._on_exec
        ib.commissionReportEvent += self._on_commission
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        # Both client libraries stamp tick-by-tick trades with the wall clock and drop the data
        # time the message carries: read it here, as the message is decoded (which also keeps
        # ticks in the socket's order relative to executions).
        wrapper = ib.wrapper
        original = wrapper.tickByTickAllLast

        def tick_by_tick_all_last(reqId, tickType, time_s, price, size, attrib, exchange, special):
            original(reqId, tickType, time_s, price, size, attrib, exchange, special)
            ticker = wrapper.reqId2Ticker.get(reqId)
            listener = self._tick_listeners.get(ticker.contract.symbol) if ticker is not None else None
            if listener is not None:
                listener(time_s, price, size, special)

        wrapper.tickByTickAllLast = tick_by_tick_all_last

    def _key(self, client_id: int, order_id: int, perm_id: int) -> str:
        return convert.order_key(client_id, order_id, perm_id, self.config.client_id)

    def _now_ns(self) -> int:
        return self.clock_ns or time.time_ns()

    def _on_status(self, trade) -> None:
        if trade.contract.secType not in ("STK", ""):
            return
        self._commissions_held_back(trade)
        o, st = trade.order, trade.orderStatus
        key = self._key(o.clientId, o.orderId, o.permId)
        state = (st.status, st.filled)
        if self._last_status.get(key) == state:
            return  # the library re-reports an unchanged status when other fields move
        self._last_status[key] = state
        if len(self._last_status) > 8192:
            self._last_status.pop(next(iter(self._last_status)))
        override, code, message = None, 0, ""
        if st.status in ("Cancelled", "ApiCancelled") and trade.log and trade.log[-1].errorCode:
            code, message = trade.log[-1].errorCode, trade.log[-1].message
            if code in REJECT_CODES:
                override = OrderStatus.REJECTED
        elif st.status == "Inactive" and trade.log:
            message = trade.log[-1].message
        self._emit(convert.update(trade, self.config.client_id, self._now_ns(), message, code, override))

    def _on_exec(self, trade, ib_fill) -> None:
        if ib_fill.contract.secType != "STK":
            return
        exec_id = ib_fill.execution.execId
        if exec_id in self._exec_ids:
            log.info("execution %s reported again: ignored", exec_id)
            return
        self._exec_ids[exec_id] = True
        if len(self._exec_ids) > 65536:
            self._exec_ids.popitem(last=False)
        self._live_execs += 1
        fill = convert.fill(ib_fill, self.config.client_id, int(trade.order.totalQuantity))
        self.clock_ns = max(self.clock_ns, fill.time_ns)
        self._emit(fill)

    def _commissions_held_back(self, trade) -> None:
        """Commissions the library kept to itself: it emits commissionReportEvent only for an
        order it knows by permId, so the report of an execution that came before its order's
        ack (TWS acking late) was stored on the fill and never announced. The ack is here now."""
        for f in trade.fills:
            exec_id = f.execution.execId
            if self._exec_ids.get(exec_id) is True:  # the fill went out, its commission did not
                event = convert.commission(f.commissionReport, self._now_ns())
                if event is not None:
                    self._exec_ids[exec_id] = "commission"
                    self._emit(event)

    def _on_commission(self, trade, ib_fill, report) -> None:
        event = convert.commission(report, self._now_ns())
        if event is None or self._exec_ids.get(event.exec_id) == "commission":
            return  # reqExecutions replays the reports of executions already reported
        if event.exec_id in self._exec_ids:
            self._exec_ids[event.exec_id] = "commission"
        self._emit(event)

    def _on_error(self, req_id: int, code: int, message: str, contract=None) -> None:
        what = codes.describe(code)
        text = f"IB {code}: {message} ({what.meaning})"
        if what.action == codes.LOST:
            log.warning("%s", text)
            self._lost(f"{code}: {what.meaning}")
        elif what.action in (codes.RESTORED, codes.RESTORED_DATA_LOST):
            log.warning("%s", text)
            self._restored(f"{code}: {what.meaning}", data_lost=what.action == codes.RESTORED_DATA_LOST)
        elif what.action == codes.CLIENT_ID_IN_USE:
            self._client_id_in_use = True
            refused = getattr(self, "_id_refused", None)
            if refused is not None:
                refused.set()
            log.error("%s", text)
        elif what.action == codes.MARKET_DATA:
            log.error("%s", text)
            for listener in list(self._data_error_listeners):
                listener(req_id, code, message)
        elif what.action == codes.ORDER_REJECTED:
            log.warning("order %s: %s", req_id, text)
        elif what.action == codes.INFO:
            log.info("%s", text)
        else:
            log.info("order %s: %s", req_id, text) if req_id > 0 else log.warning("%s", text)

    def _on_disconnected(self) -> None:
        self._socket_up = False
        if self._disconnected is not None:
            self._disconnected.set()
        if not self._closing:
            log.warning("the TWS socket closed")
            self._lost("the TWS socket closed")

    # ------------------------------------------------------------------ the engine's acks
    def handled(self, event: Tick | Fill) -> None:
        """After each handled tick or fill: the clock follows the data; a lockstep simulator
        is told it may go on (see ``lockstep``)."""
        if type(event) is Tick:
            if event.time_ns > self.clock_ns:
                self.clock_ns = event.time_ns
            kind, key = "tick", str(event.time_ns)
        else:
            kind, key = "exec", event.exec_id
        if self.pace == "lockstep" and self._socket_up:
            self.ib.client.send(lockstep.ACK, lockstep.VERSION, kind, key)

    # ------------------------------------------------------------------ for the feed
    def subscribe_trades(self, symbol: str, on_trade: Callable, on_restored: Callable[[bool], None],
                         on_data_error: Callable[[int, int, str], None]) -> None:
        self._tick_listeners[symbol] = on_trade
        self._restore_listeners.append(on_restored)
        self._data_error_listeners.append(on_data_error)
