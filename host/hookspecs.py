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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pluggy

from .model import (
    Alert,
    BrokerSnapshot,
    ConnectionEvent,
    Fill,
    OrderRequest,
    OrderUpdate,
    Tick,
)

if TYPE_CHECKING:
    import numpy as np

    from .registry import Registry

hookspec = pluggy.HookspecMarker("bothost")
hookimpl = pluggy.HookimplMarker("bothost")


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
    execution; ``fill.order_complete`` says it is fully filled.
    """


@hookspec
def on_order_update(ctx: StrategyContext, update: OrderUpdate) -> None:
    """A status change of one of the strategy's orders: submitted, cancelled, rejected, filled.

    A cancellation arrives here, including one of a partially filled order.
    """


@hookspec
def on_timer(ctx: StrategyContext, name: str, time_ns: int) -> None:
    """A timer set with ``ctx.set_timer(name, time_ns)`` is due (host clock)."""


@hookspec
def on_connection(ctx: StrategyContext, event: ConnectionEvent) -> None:
    """The broker or feed lost or regained its connection.

    After a RESTORED event the engine calls :func:`reconstruct` again with a fresh snapshot
    (fills that happened while disconnected are in its executions).
    """


@hookspec
def on_stop(ctx: StrategyContext) -> None:
    """The host is shutting down cleanly (end of data, SIGINT or SIGTERM). Flush state here.

    Not called after a critical alert: then nothing more is placed and the broker's orders stay.
    """


@hookspec(firstresult=True)
def describe_order_ref(ref: str) -> dict[str, Any] | None:
    """Explain an order tag for reports and ``bothost status``, or None if it is not yours.

    Return a dict with any of: ``level`` (int), ``role`` (str), ``purchase`` (Decimal: the BUY
    price a SELL closes, so realized P&L is per lot rather than average cost). The first plugin
    that recognises the tag answers.
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

    strategy_id: str
    log: logging.Logger

    @property
    def now_ns(self) -> int:
        """The host clock: the data's time in a replay, the wall clock live."""

    def place(self, order: OrderRequest) -> str:
        """Send an order to the broker; returns its order id. Its fate arrives as events."""

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

    def alert(self, title: str, details: str, reset_steps: list[str] | tuple[str, ...] = ()) -> None:
        """Raise a critical alert (S1): log it, ring the bell, notify, place nothing more and stop
        with exit status 3. Does not return (it raises :class:`CriticalStop`)."""

    def record(self, key: str, value: Any) -> None:
        """Publish a fact for ``bothost status`` (for example the last reconstruct's findings).
        A list of mappings shows as a table, a mapping as a two-column table. ``value`` may be
        a callable, evaluated only when the status is written."""


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

    def resolve(self, name: str | Path) -> Path:
        path = Path(name).expanduser()
        return path if path.is_absolute() else (self.config_path.parent / path)


# --------------------------------------------------------------------------------------------
# Brokers and feeds
# --------------------------------------------------------------------------------------------

#: How a broker or a live feed hands events to the engine: ``emit(event)`` with a Tick, Fill,
#: OrderUpdate or ConnectionEvent. Safe to call from the broker's callbacks in the event loop.
Emit = Callable[[object], None]


@runtime_checkable
class Broker(Protocol):
    """A broker adapter. The engine owns one per config.

    ``place`` and ``cancel`` are synchronous submissions (they must not block on the network);
    what happens to the order comes back through ``emit`` as OrderUpdate and Fill events, in the
    order the broker reports them.
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
class MatchingVenue(Protocol):
    """A broker that matches orders itself against the feed's ticks (the simulated venue).

    The engine calls :meth:`match` for every tick it handles, before the strategy sees the tick,
    and dispatches each fill before it asks for the next one (so a cancel made while handling one
    fill is honoured for the rest of the tick). :meth:`quiet_band` lets the engine skip the ticks
    that cannot fill anything.
    """

    def match(self, time_ns: int, price: int) -> Iterator[Fill]:
        """Match live orders against a tick at ``price`` cents; yield the fills one at a time."""

    def quiet_band(self) -> tuple[int, int]:
        """``(lo, hi)`` in cents: a tick with ``lo < price < hi`` can neither fill nor trigger any
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


class BrokerUnavailable(Exception):
    """A broker or feed could not be reached after its configured retries (exit status 4)."""


@runtime_checkable
class Feed(Protocol):
    """A live market-data feed: pushes ticks through ``emit`` until cancelled."""

    async def stream(self, emit: Emit) -> None:
        """Connect and emit Tick events (and ConnectionEvent on drops) until cancelled."""


@dataclass(frozen=True, slots=True)
class TickChunk:
    """A block of replay ticks, columnar: ``time_ns`` int64 and ``price`` int64 cents."""

    time_ns: np.ndarray
    price: np.ndarray

    def __len__(self) -> int:
        return len(self.price)


@runtime_checkable
class ReplayFeed(Protocol):
    """A feed of recorded or generated data. The engine pulls it in columnar chunks, with the
    data's time as the host clock, as fast as the machine allows."""

    symbol: str

    def chunks(self, after_ns: int | None = None) -> Iterator[TickChunk]:
        """Ticks in time order, only those strictly after ``after_ns`` when given (resume)."""

    def stats(self) -> dict[str, Any]:
        """Counts for the summary: at least ``rows``, ``bad_rows``, ``ticks``, ``bar_interval_s``."""
