"""The whole plugin contract of bothost.

A plugin is a Python module (or object) with functions marked ``@hookimpl``, published in the
``bothost`` entry-point group of its package::

    [project.entry-points.bothost]
    my_plugin = "my_package.plugin"

The host's own plugins (``plugins/``) are registered through that same group; there is no
private path for them.

There are two kinds of hooks:

* **Registration** (:func:`bothost_register`), called once on every plugin *module* when the
  host starts. A module adds the broker, feed, strategy and notifier *kinds* it provides: a name
  (what ``use:`` says in the YAML config), a pydantic config model, and a factory.
* **Events** (:func:`reconstruct`, :func:`on_tick`, :func:`on_fill`, ...), called on *instances*
  built by those factories: the strategy the event belongs to, and every notifier. The engine
  handles one event at a time, in order, so hook implementations never race each other and
  never need locks. ``ctx`` is the :class:`StrategyContext` of the strategy the event is for.

Brokers and feeds are not called through hooks; they are objects the engine owns and drives
through the small protocols at the end of this module (:class:`Broker`, :class:`Feed`,
:class:`ReplayFeed`, :class:`MatchingVenue`).

**Required and optional.** Every member of :class:`Broker`, :class:`Feed` and
:class:`ReplayFeed` is required. Everything else the host uses when an object has it is an
*optional protocol* below (``runtime_checkable``; the host tests ``isinstance(obj, Protocol)``,
never ``hasattr``): :class:`ChecksBeforeConnect`, :class:`SharesBrokerConnection`,
:class:`ReportsFeedStats` (feeds); :class:`SupervisedBroker`, :class:`PacedBroker`,
:class:`KeepsExecutions`, :class:`KeepsExecutionColumns`, :class:`MatchingVenue` (brokers);
:class:`LiveAwareSettings` (a broker's settings model); :class:`TradesSymbol`, :class:`ChoosesTicks`,
:class:`ReportsHoldings` (strategies). Implement the whole protocol or none of it.

**The API version.** A plugin module declares the version of this contract it was written for
with a module-level ``BOTHOST_API = 1`` (see :data:`API_VERSION`, also ``bothost.API_VERSION``).
The host refuses to load a module that declares another version (``PluginError`` naming the
package and both versions, exit status 2) and warns about one that declares none. The version
changes only when a change to this file would break a plugin written for the previous one.

**Commands.** A plugin package adds a ``bothost`` command through the ``bothost.commands``
entry-point group: ``my-command = "my_package.cli:command"`` names a ``click`` command
(``data.NAME`` adds ``bothost data NAME``). The host lists the names from the package metadata and
imports the module only when the command runs; it cannot replace one of the host's own
commands. Wrap the command in ``bothost.cli.guarded`` for the host's exit statuses (bad input
2, never a traceback).

**Strategy instances.** A factory's strategy is any object whose methods are ``@hookimpl``
event hooks (only those it implements are called). The host reads these attributes of it once,
when the engine is built (before the first hook):

* ``symbol: str`` (:class:`TradesSymbol`): the strategy gets the ticks of that symbol only, and
  untagged orders of that symbol are routed to it. Without it, it gets every tick and every
  untagged order.
* ``wants_every_tick: bool`` (:class:`ChoosesTicks`): the starting value of
  ``ctx.want_every_tick``. Without it the engine assumes True (the safe default: no tick is
  skipped until the strategy says it may be).
* ``holdings()`` (:class:`ReportsHoldings`): what the strategy holds, for the summary's open
  lots and position and for ``bothost status`` / ``bothost serve``.

**How an order finds its strategy.** An order placed in this process belongs to the strategy
that placed it. After a restart (reconstruct, and fills or updates of orders placed by an
earlier process) the host routes an order by its tag (``OrderRequest.ref``, the broker's order reference):
a tag that starts with ``"<strategy id>:"`` (``ctx.strategy_id`` and a colon) belongs to that
strategy; an untagged order goes to the first strategy trading its symbol; any other tag belongs
to no strategy (its fills are logged and dropped). So every order a strategy places must carry a
tag that starts with its ``ctx.strategy_id`` and a colon, and that tag must survive the round
trip through the broker (a broker adapter must report it back unchanged on open orders, fills
and updates). An order that has ended is never adopted again through its tag.

**Prices are integers in the instrument's increment.** Every integer price that crosses a
plugin boundary (``Tick.price``, a replay chunk's ``price``, :meth:`MatchingVenue.match` and
``quiet_band``) counts *units* of the symbol's price increment, an :class:`~bothost.model.Instrument`.
A config declares the instruments that are not priced in cents in a top-level mapping::

    instruments:
      EURUSD: {increment: 0.0001}   # 1.0842 is 10842 units
      SNDL: {increment: 0.0001}     # a sub-penny stock

A symbol not named there is priced in cents (``increment: 0.01``, a US stock): every config
written before ``instruments:`` existed means what it meant. The increment is any decimal step
above 0 with at most eight decimals (0.0001, 0.005, 0.25 and 5 all are). Factories are handed
the instruments (:meth:`BuildEnv.instrument`), strategies their own (``ctx.instrument``,
``ctx.price(units)``, ``ctx.units(price)``). Feeds turn data prices into units (half up);
Decimal amounts (order limits, fill prices, money) stay Decimal. **A broker refuses an order
whose limit (or aux price) is not a whole number of increments** (the simulated venue answers
REJECTED, saying so): a strategy that computes a price rounds it itself, with
``ctx.instrument.round(price)`` or ``ctx.price(ctx.units(price))``, because only it knows which
way is safe for its order.

**When a hook raises.** ``ctx.alert`` raises :class:`CriticalStop`: the run stops with exit
status 3, nothing more is placed, the broker's orders stay, ``on_stop`` is not called.
:class:`BrokerDown` escaping a hook (``ctx.place`` while the connection is lost) is logged and
the event counts as handled; the reconstruct after the reconnect puts the book right. Any
other exception is a bug in the plugin: the event loop stops at once (no further event is
dispatched), ``on_stop`` is still called on every strategy that started, the state is flushed,
the outputs and ``status.json`` are written (status "failed"), the broker is closed, and the
command exits with status 1, one line on the terminal and the traceback in ``bot_log.txt``. A
notifier's ``on_alert`` that raises is logged and never changes how the run ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, runtime_checkable

import pluggy

from . import API_VERSION as _API_VERSION
from .model import (
    Alert,
    BrokerSnapshot,
    CommissionReport,
    ConnectionEvent,
    ExecutionColumns,
    Fill,
    Holdings,
    Instrument,
    OrderRequest,
    OrderUpdate,
    Tick,
    instrument_for,
)

if TYPE_CHECKING:
    import numpy as np

    from .registry import Registry

hookspec = pluggy.HookspecMarker("bothost")
hookimpl = pluggy.HookimplMarker("bothost")

#: The version of this contract (kept in ``bothost/__init__.py``: ``bothost.API_VERSION``). A
#: plugin module says which one it was written for with a module-level ``BOTHOST_API = 1``; a
#: module that says another is refused at load.
API_VERSION: int = _API_VERSION

#: The module-level name a plugin module declares its API version with.
API_VERSION_ATTRIBUTE = "BOTHOST_API"


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------


@hookspec
def bothost_register(registry: Registry) -> None:
    """Add the kinds this plugin provides to ``registry``.

    Called once per plugin module at start-up, before the config is validated (the config's
    ``use:`` names are looked up in the registry). Call ``registry.add_broker``,
    ``add_feed``, ``add_strategy`` or ``add_notifier`` with a name, a pydantic model for that
    section of the config, and a factory ``factory(config, env) -> instance`` where ``env`` is a
    :class:`BuildEnv`. Registering a name another plugin already registered is an error that
    names both packages. The return value is ignored.
    """


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


@hookspec
def reconstruct(ctx: StrategyContext, snapshot: BrokerSnapshot) -> None:
    """Rebuild the strategy's inventory from the broker's own view.

    Called at start-up, after the broker connected and before any other event, and again after
    every reconnect. ``snapshot`` holds the open orders of all client ids (with their tags),
    the executions since the last run, and the positions. The broker is the source of truth;
    ``ctx.state`` is only a fallback. A strategy that cannot make its view agree with the broker
    calls ``ctx.alert(...)``, which stops the host without placing anything more.
    """


@hookspec
def on_start(ctx: StrategyContext) -> None:
    """Called once, after the first :func:`reconstruct` and before the first tick."""


@hookspec
def on_tick(ctx: StrategyContext, tick: Tick) -> None:
    """A market-data tick for the strategy's symbol.

    On a matching venue (the simulated one) the tick's fills have already been delivered
    through :func:`on_fill`. Unless the strategy set ``ctx.want_every_tick(True)``, the engine
    may skip ticks that cannot fill any of its orders and that no ``ctx.wake_at`` asked for:
    see :class:`StrategyContext`. Bad ticks (not finite, <= 0, crossed or stale quotes) never
    reach this hook; the engine counts and logs them.
    """


@hookspec
def on_fill(ctx: StrategyContext, fill: Fill) -> None:
    """One execution of one of the strategy's orders, in the order the broker reported them.

    ``fill.order_filled`` and ``fill.order_avg_price`` describe the whole order after this
    execution; ``fill.order_complete`` says it is fully filled. ``fill.commission`` is None when
    the broker reports it later: it then arrives through :func:`on_commission`. An execution can
    be delivered twice (a broker replaying executions after a reconnect): ``exec_id`` tells.
    """


@hookspec
def on_commission(ctx: StrategyContext, report: CommissionReport) -> None:
    """The commission of one of the strategy's executions, reported after the fill itself
    (some brokers report it separately, after the execution). Matched to the fill by ``exec_id``.
    Not called for a fill that carried its commission."""


@hookspec
def on_order_update(ctx: StrategyContext, update: OrderUpdate) -> None:
    """A status change of one of the strategy's orders (see :class:`~bothost.model.OrderStatus`):
    pending submit, pre-submitted, submitted, pending cancel, inactive, and the final ones
    (filled, cancelled, rejected).

    A cancellation arrives here, including one of a partially filled order. Each order gets at
    most one final status: a broker that reports two (a reject and then a cancel for the same
    order) has the second dropped by the engine, and an order that has ended is
    never adopted again through its tag.
    """


@hookspec
def on_timer(ctx: StrategyContext, name: str, time_ns: int) -> None:
    """A timer set with ``ctx.set_timer(name, time_ns)`` is due (host clock)."""


@hookspec
def on_connection(ctx: StrategyContext, event: ConnectionEvent) -> None:
    """The broker or feed lost or regained its connection (``event.origin`` says which).

    After the broker's LOST, the engine holds ticks and timers (a strategy is not asked to act
    while nothing can be placed; ``ctx.place`` raises :class:`BrokerDown`) until the broker's
    RESTORED *and* the :func:`reconstruct` that follows it, with a fresh snapshot (fills that
    happened while disconnected are in its executions). A feed's events only inform.
    """


@hookspec
def on_stop(ctx: StrategyContext) -> None:
    """The host is shutting down (end of data, SIGINT or SIGTERM, ``--stop-when-idle``, or a
    failure after the start: a broker that gave up, a reconnect's reconstruct that failed).
    Flush state here. Called once for every :func:`on_start`; never before it (a strategy whose
    first reconstruct failed holds nothing worth saving over its backup).

    Not called after a critical alert: then nothing more is placed and the broker's orders stay.
    """


@hookspec(firstresult=True)
def describe_order_ref(ref: str) -> dict[str, Any] | None:
    """Explain an order tag for reports and ``bothost status``, or None if it is not yours.

    Return a dict with any of: ``level`` (int), ``role`` (str), ``purchase`` (Decimal: the BUY
    price a SELL closes, so realized P&L is per lot rather than average cost), ``strategy``
    (str: the strategy id the tag names). The first plugin that recognises the tag answers.
    This is the only way the reports (fills.csv's ``level``, per-lot P&L, the status page's
    working orders) learn what a tag means: the host never parses a strategy's tags itself.
    Called on the plugin *module* (a module-level ``@hookimpl``), also when no run is going
    on (``bothost report``); keep it pure.
    """


@hookspec
def on_alert(ctx: StrategyContext | None, alert: Alert) -> None:
    """A critical alert was raised (S1). Notifiers deliver it; the host then stops with exit 3.

    Called on every notifier. ``ctx`` is the raising strategy's context, or None when the host
    itself raised it (for example, a broker that rejected the connection).
    """


# --------------------------------------------------------------------------------------------
# What hooks and factories are given
# --------------------------------------------------------------------------------------------


class StrategyContext(Protocol):
    """The narrow door from a strategy back into the host. A strategy never imports a broker."""

    #: The strategy's id (``id:`` in its config section, else its ``use:`` name): the prefix of
    #: its order tags and its section of ``bot_state.json``.
    strategy_id: str
    #: The strategy's logger (``bothost.strategy.<id>``), written to ``bot_log.txt``.
    log: logging.Logger
    #: The instrument of the strategy's symbol (:class:`TradesSymbol`): its price increment,
    #: declared under ``instruments:`` (cents when it is not). A strategy without a symbol gets
    #: a cents instrument of symbol "".
    instrument: Instrument

    def price(self, units: int) -> Decimal:
        """``units`` increments of :attr:`instrument` as a Decimal price (``tick.price`` -> 97.03)."""

    def units(self, price: Decimal) -> int:
        """``price`` in increments of :attr:`instrument`, rounded half up (exact on the grid)."""

    @property
    def now_ns(self) -> int:
        """The host clock: the time of the newest event (a tick's or an execution's data time).
        In a replay that is the data's time; live it follows the feed's and broker's times, so a
        rehearsal on 2019 data runs on 2019's clock."""

    def place(self, order: OrderRequest) -> str:
        """Send an order to the broker; returns its order id. Its fate arrives as events.
        Raises :class:`BrokerDown` while the broker's connection is lost."""

    def cancel(self, order_id: str) -> None:
        """Ask the broker to cancel an order. Its fills may still arrive until it is cancelled."""

    def want_every_tick(self, wanted: bool) -> None:
        """While True, :func:`on_tick` is called on every tick (no tick is skipped)."""

    def wake_at(self, time_ns: int) -> None:
        """Make sure :func:`on_tick` is called on the first tick at or after ``time_ns``."""

    def set_timer(self, name: str, time_ns: int) -> None:
        """Call :func:`on_timer` once the host clock reaches ``time_ns`` (replaces a same-named one)."""

    def save_state(self, state: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        """Write the strategy's backup state atomically (temp file, fsync, rename).

        Pass a callable to have it built only when the host writes the file: after every event
        live, at every checkpoint in a replay (where the simulated venue is the durable truth)."""

    def load_state(self) -> dict[str, Any] | None:
        """The last state saved, or None."""

    def alert(self, title: str, details: str, reset_steps: list[str] | tuple[str, ...] = ()) -> NoReturn:
        """Raise a critical alert (S1): log it, ring the bell, notify, place nothing more and stop
        with exit status 3. Does not return (it raises :class:`CriticalStop`)."""

    def warn(self, title: str, details: str) -> None:
        """A warning the trader should see, while the strategy runs on: logged, sent to every
        notifier (``Alert.level == "warning"``) and listed under ``warnings`` in summary.json and
        ``bothost status`` (the same title is counted, not repeated). Returns."""

    def record(self, key: str, value: Any) -> None:
        """Publish a fact for ``bothost status`` (for example the last reconstruct's findings).
        A list of mappings shows as a table, a mapping as a two-column table. ``value`` may be
        a callable, evaluated only when the status is written."""


class BrokerDown(Exception):
    """Raised by ``ctx.place`` while the broker's connection is lost (before RESTORED and its
    reconstruct). The engine logs it if a hook lets it escape; the reconstruct that follows the
    reconnect places what the book needs."""


class CriticalStop(Exception):
    """Raised by ``ctx.alert``: unwinds the handler so that nothing more is placed."""

    def __init__(self, alert: Alert):
        super().__init__(alert.title)
        self.alert = alert


@dataclass(frozen=True)
class BuildEnv:
    """What a factory is given besides its own config section."""

    config_path: Path  # the YAML file; relative file names in a section are relative to it
    state_dir: Path  # the run's state folder (created, mode 0700)
    mode: str  # "paper" or "live"
    log: logging.Logger
    #: the config's ``instruments:`` by symbol; use :meth:`instrument`, which knows the default
    instruments: Mapping[str, Instrument] = field(default_factory=dict)

    def instrument(self, symbol: str) -> Instrument:
        """``symbol``'s instrument: as declared under ``instruments:``, else priced in cents. A
        feed turns its data's prices into units of its increment; a broker its orders' limits."""
        return instrument_for(self.instruments, symbol)

    def resolve(self, name: str | Path) -> Path:
        """A file name from the config section, as a path: ``~`` expanded, relative names
        taken relative to the config file's folder."""
        path = Path(name).expanduser()
        return path if path.is_absolute() else (self.config_path.parent / path)


# --------------------------------------------------------------------------------------------
# Brokers and feeds
# --------------------------------------------------------------------------------------------

#: Every event a broker or a feed may hand to the engine.
Event = Tick | Fill | CommissionReport | OrderUpdate | ConnectionEvent

#: How a broker or a live feed hands events to the engine: ``emit(event)`` with one
#: :data:`Event`. Safe to call from the broker's callbacks in the event loop.
Emit = Callable[[Event], None]


@runtime_checkable
class Broker(Protocol):
    """A broker adapter. The engine owns one per config.

    ``place`` and ``cancel`` are synchronous submissions (they must not block on the network);
    what happens to the order comes back through ``emit`` as OrderUpdate, Fill and
    CommissionReport events, in the order the broker reports them. Tags (``OrderRequest.ref``)
    must come back unchanged on every open order, fill and update: they route orders to their
    strategy after a restart.

    Optional: :class:`SupervisedBroker` (``supervise()``), :class:`PacedBroker`
    (``handled(event)``), :class:`KeepsExecutions` (``iter_executions()``),
    :class:`KeepsExecutionColumns` (``iter_execution_columns()``), :class:`MatchingVenue` (a
    simulated venue); and its settings model should be
    :class:`LiveAwareSettings` (S2: a broker whose settings do not say whether they point at a
    live account is refused for ``mode: paper``).
    """

    def bind(self, emit: Emit) -> None:
        """Called once before ``connect``: where to send Fill, OrderUpdate, ConnectionEvent."""

    async def connect(self) -> None:
        """Connect (with the plugin's own retries). Raise ``BrokerUnavailable`` when it gives up."""

    async def snapshot(self, executions_since_ns: int | None) -> BrokerSnapshot:
        """Open orders of all clients, executions since the time given (None: all it keeps), positions."""

    def place(self, order: OrderRequest) -> str:
        """Submit an order; returns its id at once."""

    def cancel(self, order_id: str) -> None:
        """Request a cancel."""

    async def close(self) -> None:
        """Disconnect. Working orders stay at the broker."""


@runtime_checkable
class KeepsExecutions(Protocol):
    """A broker that keeps every execution itself (the simulated venue): fills.csv and the
    report are written from it. A broker without it has its executions journaled by the host
    as they arrive (``executions.sqlite``)."""

    def iter_executions(self, since_ns: int | None = None) -> Iterator[Fill]:
        """Every execution the broker keeps (those after ``since_ns`` when given), oldest first,
        streamed (fills.csv of a long replay does not fit a list comfortably)."""


@runtime_checkable
class KeepsExecutionColumns(Protocol):
    """A :class:`KeepsExecutions` broker that can also hand its executions over as columns, a
    chunk at a time: fills.csv and the summary of a replay with a million executions are then
    written without an object per execution (``bothost.fill_columns``). Same executions, same
    order, same files as :meth:`KeepsExecutions.iter_executions`."""

    def iter_execution_columns(self, chunk: int = 65536) -> Iterator[ExecutionColumns]:
        """Every execution the broker keeps, oldest first, ``chunk`` at a time as
        :class:`~bothost.model.ExecutionColumns`."""


@runtime_checkable
class MatchingVenue(Protocol):
    """A broker that matches orders itself against the feed's ticks (the simulated venue).

    The engine calls :meth:`match` for every tick it handles, before the strategy sees the tick,
    and dispatches each fill before it asks for the next one (so a cancel made while handling one
    fill is honoured for the rest of the tick). :meth:`quiet_band` lets the engine skip the ticks
    that cannot fill anything. A replay (:class:`ReplayFeed`) needs one.
    """

    def match(self, time_ns: int, price: int) -> Iterator[Fill]:
        """Match live orders against a tick at ``price`` (units of the symbol's increment: cents by
        default); yield the fills one at a time."""

    def quiet_band(self) -> tuple[int, int]:
        """``(lo, hi)`` in price units: a tick with ``lo < price < hi`` can neither fill nor trigger any
        live order. With no BUYs ``lo`` is -1; with no SELLs ``hi`` is a huge number."""

    def advance(self, time_ns: int, price: int) -> None:
        """The clock and last price moved to a tick the engine skipped (nothing could fill)."""

    def checkpoint(self) -> None:
        """Commit the venue's state (orders, executions, positions, cash, clock) durably."""

    @property
    def clock_ns(self) -> int | None:
        """Time of the last tick the venue processed (None: none yet); a replay resumes after it."""

    def iter_executions(self, since_ns: int | None = None) -> Iterator[Fill]:
        """Every execution the venue keeps, oldest first, streamed (for fills.csv)."""


@runtime_checkable
class SupervisedBroker(Protocol):
    """A broker with a connection of its own to look after (optional, beside :class:`Broker`)."""

    async def supervise(self) -> None:
        """Run for the whole live run, as a task the engine supervises beside the feed: watch
        the connection (a heartbeat for a socket that dies without a word), emit
        ``ConnectionEvent`` LOST / RESTORED, reconnect with backoff. Return or raise to end the
        run (``BrokerUnavailable``: exit status 4). Cancelled when the run ends."""


@runtime_checkable
class PacedBroker(Protocol):
    """A broker that wants to know when the engine is done with an event (optional)."""

    def handled(self, event: Tick | Fill) -> None:
        """The engine has handled ``event`` and everything it caused (every order it placed
        or cancelled was submitted). A simulator pacing a rehearsal in lockstep waits for this.
        Live runs only, and only while the broker is up."""


@runtime_checkable
class LiveAwareSettings(Protocol):
    """A broker's settings model (its pydantic config) that says whether it trades real money.
    S2: without it, the broker is refused for ``mode: paper``: nothing would prove it is paper."""

    def is_live(self) -> bool:
        """True when these settings point at a live (real money) account. Called before anything
        is built or connected; a broker that can tell only once connected checks again there."""


class BrokerUnavailable(Exception):
    """A broker or feed could not be reached after its configured retries (exit status 4)."""


@runtime_checkable
class Feed(Protocol):
    """A live market-data feed: pushes ticks through ``emit`` until cancelled.

    Optional: :class:`ChecksBeforeConnect` (``open()``), :class:`SharesBrokerConnection`
    (``attach_broker(broker)``), :class:`ReportsFeedStats` (``stats()``)."""

    async def stream(self, emit: Emit) -> None:
        """Connect and emit Tick events (and ConnectionEvent on drops) until cancelled."""


@runtime_checkable
class ChecksBeforeConnect(Protocol):
    """A feed that checks its settings or files before anything connects (optional)."""

    def open(self) -> None:
        """Check the data (a file's header, its first rows) before the broker connects: raise a
        ``bothost.errors.InputError`` (exit status 2, with file, line and a hint) for bad input,
        so that nothing is placed on a run that cannot go on."""


@runtime_checkable
class SharesBrokerConnection(Protocol):
    """A feed that takes its market data over the broker's own connection (optional)."""

    def attach_broker(self, broker: Broker) -> None:
        """Called once, before the broker connects: the broker this run trades through.
        Market data over the broker's own socket keeps fills and ticks in the order the broker sent them."""


@runtime_checkable
class ReportsFeedStats(Protocol):
    """A feed that counts what it read (optional for a live feed; every :class:`ReplayFeed` does)."""

    def stats(self) -> dict[str, Any]:
        """Counts for summary.json: any of ``source`` (a phrase naming the data), ``rows``,
        ``bad_rows``, ``bad_rows_by_reason``, ``ticks``, ``ticks_total`` and ``complete`` (a
        replay: the data's tick count and whether it was read to the end)."""


@dataclass(frozen=True, slots=True)
class TickChunk:
    """A block of replay ticks, columnar: ``time_ns`` int64 and ``price`` int64 units of the
    symbol's increment (cents by default; see :class:`~bothost.model.Instrument`)."""

    time_ns: np.ndarray
    price: np.ndarray

    def __len__(self) -> int:
        """The number of ticks in the chunk."""
        return len(self.price)


@runtime_checkable
class ReplayFeed(Protocol):
    """A feed of recorded or generated data. The engine pulls it in columnar chunks, with the
    data's time as the host clock, as fast as the machine allows. It needs a broker that is a
    :class:`MatchingVenue`."""

    #: The symbol the data is of: every tick of the replay is a tick of this symbol.
    symbol: str

    def chunks(self, after_ns: int | None = None) -> Iterator[TickChunk]:
        """Ticks in time order, only those strictly after ``after_ns`` when given (resume)."""

    def stats(self) -> dict[str, Any]:
        """Counts for the summary: at least ``rows``, ``bad_rows``, ``ticks``, ``bar_interval_s``."""


@runtime_checkable
class ReplaysSymbols(Protocol):
    """A replay feed of several symbols (optional; the built-in replay feed with
    ``data_by_symbol``). The run then builds the config's broker once per symbol (a simulated
    venue each, in ``venues/<SYMBOL>/`` of the state folder) and hands each run of one symbol's
    ticks to that symbol's venue and strategy; each symbol fills exactly as a one-symbol replay
    of its own data would."""

    #: The symbols the feed replays, one file each.
    symbols: list[str]

    def runs(self, after_ns: dict[str, int | None]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """``(symbol, times, prices)`` runs of one symbol's ticks, in time order over all symbols;
        each symbol's only after its own ``after_ns`` (a resumed replay)."""


# --------------------------------------------------------------------------------------------
# Strategies: the optional attributes and methods the host reads
# --------------------------------------------------------------------------------------------


@runtime_checkable
class TradesSymbol(Protocol):
    """A strategy that trades one symbol (optional; read once, when the engine is built)."""

    #: The symbol whose ticks the strategy gets, and whose untagged orders are routed to it.
    #: Without it the strategy gets every tick and every untagged order.
    symbol: str


@runtime_checkable
class ChoosesTicks(Protocol):
    """A strategy that says from the start whether it needs every tick (optional)."""

    #: The starting value of ``ctx.want_every_tick`` (read once, before the first hook);
    #: without it the engine hands the strategy every tick until it says otherwise.
    wants_every_tick: bool


@runtime_checkable
class ReportsHoldings(Protocol):
    """A strategy that says what it holds (optional): the summary's ``open_lots`` and, live, its
    open position and cost; ``status.json`` (``holdings``) and the ``bothost serve`` page's
    ladder (its price levels, the lots and working orders at each). The host knows nothing of a
    strategy's own records: without this, a strategy's lots are not counted, a live run's
    position is taken from the executions alone, and the page draws no ladder."""

    def holdings(self) -> Holdings:
        """What the strategy holds and has working now, and the price levels it trades at
        (:class:`~bothost.model.Holdings`). Called each time the host writes bot_state.json (every
        event live, every checkpoint in a replay) and at the end of a run: keep it cheap."""
