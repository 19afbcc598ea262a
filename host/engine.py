"""The engine: one ordered stream of events, each handled to the end before the next.

Ticks, fills, order updates, timers and connection changes all go through :meth:`Engine.dispatch`
(live) or the replay driver (``replay.py``), one at a time. There is no lock anywhere: a strategy's
cancel and a fill of the same order can never interleave, because nothing else runs while a hook
runs. Where does a fill go? ``Engine.dispatch`` -> ``_on_fill`` -> the owning strategy's
``on_fill`` hook (and every observer's).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import heapq
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from .bounded import Recent
from .context import HostContext
from .hookcall import direct_caller
from .hookspecs import (Broker, BrokerDown, BrokerUnavailable, CriticalStop, MatchingVenue, PacedBroker,
                        SupervisedBroker, TradesSymbol)
from .journal import ExecutionJournal
from .model import (
    Alert,
    BrokerSnapshot,
    CommissionReport,
    ConnectionEvent,
    ConnectionState,
    Fill,
    Instrument,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Tick,
    instrument_for,
)
from .state import StateStore
from .timers import TimerDue, Timers

log = logging.getLogger("bothost.engine")

HOOKS = ("reconstruct", "on_start", "on_tick", "on_fill", "on_commission", "on_order_update", "on_timer",
         "on_connection", "on_stop")
#: How many ended orders (and executions awaiting a commission) the engine remembers.
REMEMBER = 8192
_FINAL = frozenset(s for s in OrderStatus if s.is_final)
#: After a reconnect, executions are asked for from this long before the connection was lost.
RECONNECT_MARGIN_NS = 10 * 60 * 1_000_000_000


FIRST_TICK_GRACE_S = 30.0  # --stop-when-idle before any tick: connecting is not the end of the data
WARN_AGAIN_NS = 3600 * 1_000_000_000  # a strategy's same warning is told again after an hour (host clock)


@dataclass
class Counters:
    ticks: int = 0  # ticks the feed delivered
    handled_ticks: int = 0  # ticks the engine handled (the rest were provably quiet)
    bad_ticks: int = 0
    fills: int = 0
    held_ticks: int = 0  # ticks that arrived while the broker was down (not handed to strategies)
    orders_placed: int = 0
    orders_cancelled: int = 0
    reconstructs: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class Engine:
    def __init__(self, *, pm: pluggy.PluginManager, broker: Broker, strategies: list[tuple[str, object]],
                 state: StateStore, live_state_flush: bool = True, stale_after_ns: int | None = None,
                 journal: ExecutionJournal | None = None, snapshot_timeout_s: float = 30.0,
                 snapshot_retries: int = 3, instruments: Mapping[str, Instrument] | None = None):
        self.pm = pm
        self.broker = broker
        self.venue: MatchingVenue | None = broker if isinstance(broker, MatchingVenue) else None
        self.state = state
        self.timers = Timers()
        self.counters = Counters()
        self.now_ns = 0
        self.stale_after_ns = stale_after_ns
        self.live_state_flush = live_state_flush
        self.pending: collections.deque = collections.deque()  # consequences of the current event
        self.inbox: collections.deque = collections.deque()  # events from outside, in arrival order
        self._busy = 0
        self.reconstruct_due = False
        #: False from the broker's LOST until RESTORED and its reconstruct are done: no ticks or
        #: timers reach a strategy meanwhile, and ``place`` raises BrokerDown.
        self.broker_up = True
        self._lost_at_ns: int | None = None
        self.journal = journal
        self.journal_failed = False
        self.snapshot_timeout_s = snapshot_timeout_s
        self.snapshot_retries = snapshot_retries
        self.finished: Recent = Recent(REMEMBER)  # order id -> (owner ctx, final status) of ended orders
        self.exec_owner: Recent = Recent(REMEMBER)  # exec id -> ctx, for commissions reported later
        self.on_live_sample = None  # callable(time_ns, price) for a live run's price picture
        self.idle_stopped = False
        self.started = False  # on_start ran: on_stop is owed at the end, whatever ends the run
        self.alert: Alert | None = None
        self.warnings: dict[str, dict] = {}  # a strategy's warnings by title (ctx.warn), for the summary
        self.stopping = False
        self._state_dirty = False
        self._wakeup: asyncio.Event | None = None
        self._last_tick_ns: dict[str, int] = {}
        self.contexts: list[HostContext] = []
        for sid, instance in strategies:
            symbol = instance.symbol if isinstance(instance, TradesSymbol) else None  # None: every symbol
            instrument = instrument_for(instruments or {}, symbol) if symbol is not None else None
            self.contexts.append(HostContext(self, sid, symbol, instance, instrument))
            pm.register(instance, name=f"strategy:{sid}")
        self.owner: dict[str, HostContext] = {}
        # Each strategy's hooks reach that strategy and every observer, never another strategy.
        # Resolved once, here: plugins registered later (after the engine is built) are not called.
        self.callers: dict[int, Any] = {}
        for ctx in self.contexts:
            others = [c.instance for c in self.contexts if c is not ctx]
            self.callers[id(ctx)] = {h: direct_caller(pm.subset_hook_caller(h, others)) for h in HOOKS}
        broker.bind(self.emit_broker)

    # -------------------------------------------------------------------- orders out
    def place(self, ctx: HostContext, order: OrderRequest) -> str:
        if self.stopping:
            raise CriticalStop(self.alert) if self.alert else RuntimeError("the host is stopping")
        if not self.broker_up:
            raise BrokerDown(f"not placed while the broker is down: {order.side.value} {order.quantity} "
                             f"{order.symbol} @ {order.limit} ({order.ref})")
        order_id = self.broker.place(order)
        self.owner[order_id] = ctx
        self.counters.orders_placed += 1
        return order_id

    def cancel(self, ctx: HostContext, order_id: str) -> None:
        if self.stopping and self.alert:
            raise CriticalStop(self.alert)  # S1: the broker's orders stay as they are
        if not self.broker_up:
            raise BrokerDown(f"cancel of order {order_id} not sent while the broker is down")
        self.counters.orders_cancelled += 1
        self.broker.cancel(order_id)

    # -------------------------------------------------------------------- events in
    def emit(self, event: object) -> None:
        """Where brokers and feeds hand events in. Queued; handled in order, one at a time.

        An event emitted while an event is being handled (a simulated venue's cancel
        confirmation, say) is a consequence of it and is handled right after it; one arriving
        from outside (a live feed's tick) waits its turn in the inbox.
        """
        if self._busy:
            self.pending.append(event)
        else:
            self.inbox.append(event)
            if self._wakeup is not None:
                self._wakeup.set()

    def emit_broker(self, event: object) -> None:
        """The broker's door: its connection events are marked as the broker's."""
        if type(event) is ConnectionEvent and event.origin != "broker":
            event = dataclasses.replace(event, origin="broker")
        if self._busy:  # self.emit, inlined: a venue's order updates arrive while a fill is handled
            self.pending.append(event)
            return
        self.emit(event)

    def emit_feed(self, event: object) -> None:
        """The feed's door: its connection events only inform (no reconstruct, no gate)."""
        if type(event) is ConnectionEvent and event.origin != "feed":
            event = dataclasses.replace(event, origin="feed")
        self.emit(event)

    def drain(self) -> None:
        pending = self.pending
        while pending:
            self.dispatch(pending.popleft())

    def dispatch(self, event: object) -> None:
        self._busy += 1
        try:
            self._dispatch(event)
        except BrokerDown as exc:
            # The connection dropped while this event was handled; the reconstruct after the
            # reconnect places what the book needs.
            log.warning("%s", exc)
        finally:
            self._busy -= 1

    def _dispatch(self, event: object) -> None:
        kind = type(event)
        if kind is OrderUpdate:  # the most frequent consequence of a fill (its order's status)
            self._on_order_update(event)
        elif isinstance(event, Tick):
            self.on_live_tick(event)
        elif isinstance(event, Fill):
            self._on_fill(event)
        elif isinstance(event, OrderUpdate):
            self._on_order_update(event)
        elif isinstance(event, CommissionReport):
            self._on_commission(event)
        elif isinstance(event, TimerDue):
            self.call(event.ctx, "on_timer", name=event.name, time_ns=event.time_ns)
        elif isinstance(event, ConnectionEvent):
            self._on_connection(event)
        else:
            log.warning("ignored an event of unknown type %r", type(event).__name__)

    def call(self, ctx: HostContext, hook: str, **kwargs) -> None:
        self._busy += 1
        try:
            self.callers[id(ctx)][hook](ctx=ctx, **kwargs)
        finally:
            self._busy -= 1

    def owner_of(self, order_id: str, ref: str, symbol: str) -> HostContext | None:
        ctx = self.owner.get(order_id)
        if ctx is None:
            ended = self.finished.get(order_id)
            if ended is not None:
                return ended[0]  # a late execution of an order that has ended: never re-adopted
            # An order from before a restart: its tag names the strategy; an untagged (legacy)
            # order goes to the strategy trading its symbol.
            ctx = next((c for c in self.contexts if ref.startswith(c.tag_prefix)), None)
            if ctx is None and not ref:
                ctx = next((c for c in self.contexts if c.symbol in (None, symbol)), None)
            if ctx is not None:
                self.owner[order_id] = ctx
        return ctx

    def _on_fill(self, fill: Fill) -> None:
        self.counters.fills += 1
        if fill.time_ns > self.now_ns:
            self.now_ns = fill.time_ns
        ctx = self.owner_of(fill.order_id, fill.ref, fill.symbol)
        if ctx is None:
            log.warning("fill of an order no strategy owns: %s", fill)
            return
        if fill.commission is None:
            self.exec_owner.remember(fill.exec_id, ctx)
        self._busy += 1  # self.call(ctx, "on_fill", fill=fill), inlined: once per fill
        try:
            self.callers[id(ctx)]["on_fill"](ctx=ctx, fill=fill)
        finally:
            self._busy -= 1
        if self.journal is not None:  # after the strategy booked it: a journal failure costs only the file
            self._journal("add", fill)
        self.state_changed()

    def _journal(self, method: str, *args) -> None:
        if self.journal is None:
            return
        try:
            getattr(self.journal, method)(*args)
        except Exception as exc:  # the broker keeps the executions; the bot trades on
            log.error("the execution journal failed (%s: %s): fills.csv of this run will be incomplete; "
                      "the broker still has every execution", type(exc).__name__, exc)
            self.journal_failed = True
            self.journal = None

    def _on_commission(self, report: CommissionReport) -> None:
        self._journal("set_commission", report.exec_id, report.commission)
        ctx = self.exec_owner.pop(report.exec_id, None)
        if ctx is None:
            log.debug("commission of an execution no strategy waits for: %s", report)
            return
        self.call(ctx, "on_commission", report=report)
        self.state_changed()

    def _on_order_update(self, update: OrderUpdate) -> None:
        oid = update.order_id
        ended = self.finished.get(oid)
        if ended is not None:
            # A broker may report a reject and then a cancel for one order: the order ended with the
            # first; the second must not reach the strategy, nor re-adopt the order by its tag.
            log.info("order %s already ended (%s): later status %s ignored", oid, ended[1].value, update.status.value)
            return
        status = update.status
        ctx = self.owner.get(oid) or self.owner_of(oid, update.ref, update.symbol)
        if status in _FINAL:
            self.owner.pop(oid, None)
            self.finished.remember(oid, (ctx, status))
        if status is OrderStatus.REJECTED:
            log.warning("order %s rejected: %s", oid, update.message)
        elif status is OrderStatus.INACTIVE:
            log.warning("order %s (%s) is inactive at the broker: %s", oid, update.ref, update.message or "no reason given")
        if ctx is not None:
            self._busy += 1  # self.call(ctx, "on_order_update", update=update), inlined
            try:
                self.callers[id(ctx)]["on_order_update"](ctx=ctx, update=update)
            finally:
                self._busy -= 1
            self.state_changed()

    def _on_connection(self, event: ConnectionEvent) -> None:
        log.warning("%s connection %s %s", event.source, event.state.value, event.message)
        broker = event.origin != "feed"
        if not broker and event.state is ConnectionState.LOST:
            # A feed gone quiet or away: the strategies hear it (the grid holds new Level-0
            # entries) and so does the trader.
            self.notify(Alert(f"market data: {event.source} {event.state.value}", event.message or "no reason given",
                              source=event.source, time_ns=self.now_ns, level="warning"))
        if broker and event.state is ConnectionState.LOST and self.broker_up:
            self.broker_up = False  # the gate: nothing is placed through a dead socket
            self._lost_at_ns = self.now_ns
        for ctx in self.contexts:
            self.call(ctx, "on_connection", event=event)
        if broker and event.state is ConnectionState.RESTORED:
            # Fills during the outage are in the snapshot's executions (Reconstruct 1). The live
            # loop runs it next, in line: no other event is handled until it is done, and the
            # gate opens only when it has succeeded.
            self.broker_up = False
            self.reconstruct_due = True

    def valid_tick(self, tick: Tick) -> str:
        """Why a live tick must not move a strategy (S3), or ''."""
        if type(tick.price) is not int or tick.price <= 0:
            return "price not a positive number"
        if tick.bid is not None and tick.ask is not None and (tick.bid <= 0 or tick.ask < tick.bid):
            return "crossed or non-positive quote"
        last = self._last_tick_ns.get(tick.symbol)
        if last is not None and tick.time_ns < last:
            return "time went backwards"
        # Stale: older than the host clock (the newest event's data time) by more than
        # stale_after. Judged against the data's own clock, not the wall's, so a rehearsal on
        # 2019 data is not all stale; a feed that goes quiet is the feed's and the live loop's
        # watch (gaps between arrivals).
        if self.stale_after_ns is not None and self.now_ns - tick.time_ns > self.stale_after_ns:
            return "stale"
        return ""

    def on_live_tick(self, tick: Tick) -> None:
        self.counters.ticks += 1
        if not self.broker_up:
            # The gate (broker down): a tick must not make a strategy place through a dead socket.
            held = self.counters.held_ticks = self.counters.held_ticks + 1
            if held == 1 or held % 1000 == 0:
                log.warning("broker down: %d ticks not handed to the strategies so far", held)
            return
        reason = self.valid_tick(tick)
        if reason:
            self.counters.bad_ticks += 1
            n = self.counters.by_reason[reason] = self.counters.by_reason.get(reason, 0) + 1
            if n <= 10 or n % 1000 == 0:
                log.warning("bad tick ignored (%s, %d so far): %s", reason, n, tick)
            return
        self._last_tick_ns[tick.symbol] = tick.time_ns
        if self.on_live_sample is not None:
            self.on_live_sample(tick.time_ns, tick.price)
        self.handle_tick(tick.time_ns, tick.price, tick)

    def handle_tick(self, time_ns: int, price: int, tick: Tick | None = None, symbol: str | None = None) -> None:
        """One tick, in the order sim-venue.md fixes: timers, the venue's fills, then on_tick."""
        self._busy += 1
        try:
            self._handle_tick(time_ns, price, tick, symbol)
        finally:
            self._busy -= 1

    def _handle_tick(self, time_ns: int, price: int, tick: Tick | None, symbol: str | None) -> None:
        if time_ns > self.now_ns:
            self.now_ns = time_ns
        self.counters.handled_ticks += 1
        if self.timers.heap:
            for due in self.timers.pop_due(time_ns):
                self.dispatch(due)
        pending = self.pending
        if self.venue is not None:
            for fill in self.venue.match(time_ns, price):
                self._on_fill(fill)
                if pending:
                    self.drain()  # cancels/updates caused by that fill, before the next fill
        if pending:
            self.drain()
        if tick is None:
            tick = Tick(time_ns, symbol, price)
        for ctx in self.contexts:
            if ctx.symbol is None or ctx.symbol == tick.symbol:
                wakes = ctx.wakes
                while wakes and wakes[0] <= time_ns:
                    heapq.heappop(wakes)
                self.call(ctx, "on_tick", tick=tick)
                if pending:
                    self.drain()

    # -------------------------------------------------------------------- lifecycle
    async def snapshot(self, since_ns: int | None) -> BrokerSnapshot:
        """The broker's snapshot, with a timeout and retries (a broker that answers late)."""
        attempts = self.snapshot_retries + 1
        problem = ""
        for attempt in range(1, attempts + 1):
            try:
                return await asyncio.wait_for(self.broker.snapshot(since_ns), self.snapshot_timeout_s)
            except TimeoutError:
                problem = f"no answer within {self.snapshot_timeout_s:g}s"
            except (ConnectionError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            log.warning("broker snapshot failed (attempt %d of %d): %s", attempt, attempts, problem)
            if attempt < attempts:
                await asyncio.sleep(min(5.0, 0.5 * attempt))
        raise BrokerUnavailable(f"the broker did not give its orders, executions and positions "
                                f"after {attempts} attempts ({problem})")

    async def reconstruct(self, since_ns: int | None = None) -> None:
        if self.counters.reconstructs == 0:
            self._startup_since_ns = since_ns
        snapshot = await self.snapshot(since_ns)
        self.counters.reconstructs += 1
        self.now_ns = max(self.now_ns, snapshot.time_ns)
        for order in snapshot.open_orders:
            self.owner_of(order.order_id, order.ref, order.symbol)
        if self.journal is not None:
            # Executions this process never saw (the bot was down or disconnected): kept too, so
            # fills.csv spans every restart. Only the strategies' own (tagged, or orders they own).
            for e in snapshot.executions:
                if e.order_id in self.owner or any(e.ref.startswith(c.tag_prefix) for c in self.contexts):
                    self._journal("add", e)
        self.broker_up = True  # the strategies may act again: their reconstruct runs now
        for ctx in self.contexts:
            self.call(ctx, "reconstruct", snapshot=snapshot)
            self.drain()
        self._lost_at_ns = None
        self.state_changed()

    def reconnect_since_ns(self) -> int | None:
        """Executions a reconnect's reconstruct asks for: the start-up's window, so that a fill
        from before the loss whose consequence never reached the broker (an order still in the
        client's send queue when the socket died) is found too; None: all the broker keeps."""
        since = getattr(self, "_startup_since_ns", None)
        if since is None or self._lost_at_ns is None:
            return since
        return min(since, max(0, self._lost_at_ns - RECONNECT_MARGIN_NS))

    def start(self) -> None:
        self.started = True
        for ctx in self.contexts:
            self.call(ctx, "on_start")
            self.drain()

    def stop(self) -> None:
        for ctx in self.contexts:
            self.call(ctx, "on_stop")
        self.drain()
        self.flush_state()

    def state_changed(self) -> None:
        self._state_dirty = True
        if self.live_state_flush:
            self.flush_state()

    def flush_state(self) -> None:
        if self._state_dirty:
            self.state.flush()
            self._state_dirty = False

    def notify(self, alert: Alert, ctx: HostContext | None = None) -> None:
        """A warning for the notifiers (log, apprise...); the host runs on."""
        log.warning("%s", alert.render())
        try:
            self.pm.hook.on_alert(ctx=ctx, alert=alert)
        except Exception:  # a notifier failing must not stop a running bot
            log.exception("a notifier failed on a warning")

    def warn(self, alert: Alert, ctx: HostContext | None = None) -> None:
        """A strategy's warning: notified, and kept for the summary (by title: first time, count)."""
        seen = self.warnings.get(alert.title)
        if seen is None:
            seen = self.warnings[alert.title] = {"title": alert.title, "details": alert.details, "count": 0,
                                                 "first_ns": alert.time_ns, "told_ns": None}
        seen["count"] += 1
        seen["details"] = alert.details  # the newest
        # Told once, then (live) again at most once per hour of the host clock: the same warning,
        # a grid re-buying its last level all afternoon, must not flood a phone or the terminal.
        # Every one is counted for the summary.
        told = seen.get("told_ns")
        if told is not None and (not self.live_state_flush or alert.time_ns - told < WARN_AGAIN_NS):
            return  # a replay tells it once: the summary has the count
        seen["told_ns"] = alert.time_ns
        if self.live_state_flush:  # live: the notifiers too; a replay only logs it (no pushes from a backtest)
            self.notify(alert, ctx)
        else:
            log.warning("%s", alert.render())

    def raise_alert(self, alert: Alert, ctx: HostContext | None) -> None:
        """S1: record the alert and tell every notifier. The caller then raises CriticalStop."""
        if self.alert is not None:
            return
        self.alert = alert
        self.stopping = True
        log.critical(alert.render())
        try:
            self.pm.hook.on_alert(ctx=ctx, alert=alert)
        except Exception:  # a notifier failing must not turn the S1 stop (exit 3) into an internal error
            log.exception("a notifier failed on the critical alert")

    def request_stop(self) -> None:
        """A clean stop (SIGINT/SIGTERM): the current event finishes, then the live loop ends."""
        self.stopping = True
        if self._wakeup is not None:
            self._wakeup.set()

    def _clock_for_timers(self, since_event_s: float) -> int:
        """Live timers run on the host clock, which follows the events' data time and runs on
        at the wall's pace between events."""
        return self.now_ns + int(since_event_s * 1e9)

    async def run_live(self, feed, checkpoint_every_s: float = 2.0, stop_when_idle_s: float | None = None,
                       on_checkpoint=None) -> None:
        """Live (or paper on live data): events from the broker's and feed's callbacks, in order.

        The feed's ``stream`` and the broker's ``supervise`` (when it has one) run as tasks the
        loop watches: one that fails ends the run with its error; a feed that ends ends the run.
        ``stop_when_idle_s``: end cleanly after that long (wall) without a tick.
        """
        self._wakeup = asyncio.Event()
        loop = asyncio.get_running_loop()
        last_checkpoint = last_tick = last_event = time.monotonic()
        ticked = False  # this process has had a tick (--stop-when-idle's grace until then)
        tasks = {"feed": loop.create_task(feed.stream(self.emit_feed))}
        if isinstance(self.broker, SupervisedBroker):
            tasks["broker"] = loop.create_task(self.broker.supervise())
        for task in tasks.values():
            task.add_done_callback(lambda _: self._wakeup.set())
        handled = self.broker.handled if isinstance(self.broker, PacedBroker) else None
        try:
            while not self.stopping:
                timeout = checkpoint_every_s
                timer_at = self.timers.next_time()
                if timer_at is not None and self.broker_up:
                    since = time.monotonic() - last_event
                    timeout = min(timeout, max(0.0, (timer_at - self._clock_for_timers(since)) / 1e9))
                idle_limit = None
                if stop_when_idle_s is not None:
                    # Until the first tick, connecting (a feed's handshake, a loaded machine) is
                    # not "no more data": wait at least FIRST_TICK_GRACE_S for it.
                    idle_limit = stop_when_idle_s if ticked else max(stop_when_idle_s, FIRST_TICK_GRACE_S)
                    timeout = min(timeout, max(0.0, idle_limit - (time.monotonic() - last_tick)))
                if not self.inbox:
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), timeout)
                    except TimeoutError:
                        pass
                self._wakeup.clear()
                if self.broker_up and self.timers.heap:
                    clock = self._clock_for_timers(time.monotonic() - last_event)
                    for due in self.timers.pop_due(clock):
                        self.now_ns = max(self.now_ns, due.time_ns)
                        self.inbox.append(due)
                inbox = self.inbox
                while inbox and not self.stopping:
                    event = inbox.popleft()
                    self.dispatch(event)
                    self.drain()
                    if self.reconstruct_due:
                        self.reconstruct_due = False
                        # events arriving meanwhile wait in the inbox
                        await self.reconstruct(self.reconnect_since_ns())
                    kind = type(event)
                    if kind is Tick or kind is Fill:
                        last_event = time.monotonic()
                        if kind is Tick:
                            last_tick = last_event
                            ticked = True
                        if handled is not None and self.broker_up:
                            handled(event)
                    if len(inbox) > 64:
                        await asyncio.sleep(0)  # a burst: let the sockets be read meanwhile
                if time.monotonic() - last_checkpoint >= checkpoint_every_s:
                    if self.venue is not None:
                        self.venue.checkpoint()  # a simulated venue on live data is durable too
                    if on_checkpoint is not None:
                        on_checkpoint()
                    last_checkpoint = time.monotonic()
                for name, task in tasks.items():
                    if task.done():
                        task.result()  # re-raise a failure; a clean end of the feed ends the run
                        if name == "feed":
                            return
                        raise BrokerUnavailable("the broker's connection supervisor ended")
                if not self.broker_up:
                    last_tick = time.monotonic()  # an outage is not the end of the data
                if stop_when_idle_s is not None:
                    idle_limit = stop_when_idle_s if ticked else max(stop_when_idle_s, FIRST_TICK_GRACE_S)
                if idle_limit is not None and time.monotonic() - last_tick >= idle_limit:
                    log.info("no market data for %gs: stopping (--stop-when-idle)", stop_when_idle_s)
                    self.idle_stopped = True
                    return
        finally:
            for task in tasks.values():
                task.cancel()
            # Bounded: a plugin task that ignores its cancel must not keep the run from ending.
            done, stuck = await asyncio.wait(tasks.values(), timeout=5)
            for task in stuck:
                log.error("the %s task did not stop within 5 s of being cancelled",
                          next(n for n, t in tasks.items() if t is task))
