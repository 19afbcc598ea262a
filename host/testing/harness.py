"""Drive one strategy through scripted ticks on the real engine and the real simulated venue.

:class:`StrategyHarness` builds what a paper run builds, minus the config file and the feed:
the :class:`~bothost.engine.Engine`, the ``sim_broker`` venue in a folder of the test's
(``venue.sqlite``, ``bot_state.json``), and the strategy. Each :meth:`~StrategyHarness.tick` is
handled as a replay hands the engine a tick it must handle: due timers, the venue's fills (each
dispatched with its consequences before the next), then ``on_tick``. The harness only watches:
what the strategy placed and cancelled, what it was told, the alerts and warnings it raised.

A critical alert (``ctx.alert``) ends the harness as it ends a run: the ``CriticalStop`` is
caught and recorded in :attr:`~StrategyHarness.alerts`, nothing more is handled, the venue's
orders stay as they are.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..engine import Engine
from ..hookspecs import BuildEnv, CriticalStop, hookimpl
from ..model import CENT, Alert, CommissionReport, Fill, Instrument, OpenOrder, OrderRequest, OrderUpdate, Tick
from ..plugins import make_manager
from ..replay import ReplayDriver
from ..state import StateStore
from .venues import DEFAULT_START_NS, DEFAULT_STEP_NS, Price, PriceFeed, sim_venue, to_ns, to_units

log = logging.getLogger("bothost.testing")


class HarnessStopped(RuntimeError):
    """The harness cannot handle more events: it was stopped, or a critical alert ended it."""


class StrategyConfigError(ValueError):
    """``StrategyHarness.from_config`` was given a kind that is not installed, or a section its
    model refuses; the message names the kind and what to fix."""


@dataclass(eq=False)  # registered with pluggy: hashed by identity
class Seen:
    """What the strategy was told, in order (an observer plugin: it hears every event)."""

    fills: list[Fill] = field(default_factory=list)
    updates: list[OrderUpdate] = field(default_factory=list)
    commissions: list[CommissionReport] = field(default_factory=list)
    ticks: int = 0

    @hookimpl(tryfirst=True)  # recorded before the strategy acts on it
    def on_fill(self, ctx, fill):
        self.fills.append(fill)

    @hookimpl(tryfirst=True)
    def on_order_update(self, ctx, update):
        self.updates.append(update)

    @hookimpl(tryfirst=True)
    def on_commission(self, ctx, report):
        self.commissions.append(report)

    @hookimpl(tryfirst=True)
    def on_tick(self, ctx, tick):
        self.ticks += 1


class StrategyHarness:
    """One strategy on the real engine over the simulated venue, in ``folder``.

    ``strategy``: the strategy instance (its hooks are called as in a run). ``venue``: settings
    of the ``sim_broker`` venue (``{"partial_fill_shares": 5, "broker_like": True}``...), or a
    venue made with :func:`~bothost.testing.sim_venue`. ``strategy_id`` names the strategy (its
    order tags start with ``"<strategy_id>:"``; default its class's ``name`` or ``"strategy"``).
    ``symbol``: the ticks' symbol (default the strategy's ``symbol`` attribute, else ``"TQQQ"``).
    ``increment``: its price increment (``"0.0001"``: an FX or crypto pair, a sub-penny stock),
    as ``instruments:`` declares one; the ticks' prices, the venue and ``ctx.instrument`` use it
    (default cents).
    ``live_state_flush``: the state file is written after every event, as live (default), or
    only at :meth:`stop` and :meth:`restart`, as a replay between checkpoints.
    """

    def __init__(self, strategy: object, folder: Path | str, *, venue: dict[str, Any] | object | None = None,
                 strategy_id: str | None = None, symbol: str | None = None, observers: Iterable[object] = (),
                 start: int | str | None = None, step_s: float = DEFAULT_STEP_NS / 1e9,
                 live_state_flush: bool = True, pm=None, increment: Decimal | str | None = None,
                 _remake: Callable[[], object] | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.strategy = strategy
        self.strategy_id = strategy_id or getattr(strategy, "name", None) or "strategy"
        self.symbol = symbol or getattr(strategy, "symbol", None) or "TQQQ"
        #: the symbol's instrument: prices given in dollars become units of its ``increment``
        #: (cents by default), as a config's ``instruments:`` would declare it
        self.instrument = Instrument(self.symbol, CENT if increment is None else Decimal(str(increment)))
        instruments = {self.symbol: self.instrument}
        self._venue_settings = dict(venue) if isinstance(venue, dict) else _settings_of(venue)
        self.broker = venue if venue is not None and not isinstance(venue, dict) else sim_venue(
            self.folder, instruments=instruments, **self._venue_settings)
        if getattr(self.broker, "venue", True) is None and callable(getattr(self.broker, "open", None)):
            self.broker.open()  # opened before it is watched: an opened venue hands out its own methods
        self._remake = _remake or _pristine_copy(strategy)
        self._observers = tuple(observers)
        self._pm_factory = pm if callable(pm) else None  # called again at each restart
        self.step_ns = int(step_s * 1e9)
        if self.step_ns <= 0:
            raise ValueError("step_s must be positive: ticks go forward in time")
        self._next_ns = DEFAULT_START_NS if start is None else to_ns(start)
        self.live_state_flush = live_state_flush
        self.seen = Seen()
        self.placed: list[OrderRequest] = []  # every order the strategy sent, in order
        self.placed_ids: list[str] = []  # ... and the id the venue gave each
        self.cancels: list[str] = []  # order ids the strategy asked to cancel, in order
        self.alerts: list[Alert] = []  # critical alerts (ctx.alert): the first one ended the harness
        self.warnings: list[Alert] = []  # every ctx.warn, repeats included
        self.started = False
        self.stopped = False
        pm = pm() if callable(pm) else (pm or make_manager())
        pm.register(self.seen)
        for observer in self._observers:
            pm.register(observer)
        self.pm = pm
        self.state = StateStore(self.folder / "bot_state.json")
        self.engine = Engine(pm=pm, broker=self.broker, strategies=[(self.strategy_id, strategy)], state=self.state,
                             live_state_flush=live_state_flush, instruments=instruments)
        self.ctx = self.engine.contexts[0]
        self._watch()

    @classmethod
    def from_config(cls, kind: str, section: dict[str, Any] | None, folder: Path | str, *,
                    config_dir: Path | str | None = None, **options: Any) -> StrategyHarness:
        """The strategy an installed plugin registers as ``kind``, built from ``section`` (what
        the config's ``strategies:`` entry would say, without ``use:``) after its own model
        validated it, exactly as a run builds it. Relative file names in the section are read
        from ``config_dir`` (default: the current folder), as from the config file's folder."""
        from ..plugins import load_plugins

        pm, registry, _ = load_plugins()
        found = registry.get("strategy", kind)
        if found is None:
            near = registry.nearest("strategy", kind)
            names = ", ".join(registry.names("strategy")) or "none"
            raise StrategyConfigError(
                f"no strategy kind {kind!r} is installed" + (f" (did you mean {near!r}?)" if near else "")
                + f"; installed: {names}. Install the package that registers it (pip install -e .)")
        settings = _validated(found, section or {})
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        base = Path(config_dir) if config_dir is not None else Path.cwd()
        env = BuildEnv(base.resolve() / "harness.yaml", folder, "paper", logging.getLogger("bothost.testing"))

        def make() -> object:
            return found.factory(settings, env)

        options.setdefault("strategy_id", kind)
        managers = iter([pm])  # the run's plugin manager: every installed plugin's module hooks

        def manager():
            return next(managers, None) or load_plugins()[0]  # a restart registers them all again

        return cls(make(), folder, pm=manager, _remake=make, **options)

    # ------------------------------------------------------------------ watching (nothing changed)
    def _watch(self) -> None:
        engine, broker = self.engine, self.broker
        place, cancel, warn, raise_alert = broker.place, broker.cancel, engine.warn, engine.raise_alert

        def placing(request: OrderRequest) -> str:
            order_id = place(request)
            self.placed.append(request)
            self.placed_ids.append(order_id)
            return order_id

        def cancelling(order_id: str) -> None:
            self.cancels.append(order_id)
            cancel(order_id)

        def warning(alert: Alert, ctx=None) -> None:
            self.warnings.append(alert)
            warn(alert, ctx)

        def alerting(alert: Alert, ctx=None) -> None:
            if engine.alert is None:
                self.alerts.append(alert)
            raise_alert(alert, ctx)

        broker.place, broker.cancel = placing, cancelling
        engine.warn, engine.raise_alert = warning, alerting

    # ------------------------------------------------------------------ driving
    def start(self) -> StrategyHarness:
        """Connect the venue, reconstruct from its snapshot (and ``bot_state.json``), then
        ``on_start``: as a run starts. Idempotent."""
        if self.started:
            return self
        self._check_running()
        self.started = True
        asyncio.run(self.broker.connect())
        self._guarded(lambda: asyncio.run(self.engine.reconstruct(None)))
        if self.engine.alert is None:
            self._guarded(self.engine.start)
        return self

    def tick(self, price: Price, at: int | str | None = None) -> None:
        """One tick at ``price`` dollars (``"101.25"``): due timers, the venue's fills, then
        ``on_tick``. ``at``: its time (ns since the epoch, or ISO 8601); default one step after
        the previous tick. Raises :class:`HarnessStopped` after a critical alert or stop()."""
        if not self.started:
            self.start()
        self._check_running()
        time_ns = self._next_ns if at is None else to_ns(at)
        last = self.engine.now_ns
        if time_ns < last:
            raise ValueError(f"tick at {time_ns} is before the host clock ({last}): ticks go forward in time")
        units = to_units(price, self.instrument.increment)
        self._next_ns = time_ns + self.step_ns
        self._guarded(lambda: self.engine.handle_tick(time_ns, units, Tick(time_ns, self.symbol, units)))
        self._deliver()

    def ticks(self, prices: Iterable[Price], at: int | str | None = None) -> None:
        """Several ticks, one step apart (from ``at`` when given). Stops at a critical alert."""
        for i, price in enumerate(prices):
            if self.alerts:
                return
            self.tick(price, at if i == 0 else None)

    def replay(self, prices: Iterable[Price] | Path | str, *, verify_skips: bool = False) -> None:
        """Prices (or a data file) through the real :class:`~bothost.replay.ReplayDriver`, as
        ``bothost backtest`` runs them: ticks that provably change nothing may be skipped (all
        are handled, and proved quiet, with ``verify_skips``)."""
        from .venues import replay_feed

        if not self.started:
            self.start()
        self._check_running()
        if isinstance(prices, (str, Path)):
            feed = replay_feed(prices, self.symbol, increment=self.instrument.increment)
        else:
            feed = PriceFeed(list(prices), self.symbol, start_ns=max(self._next_ns, self.engine.now_ns + 1),
                             step_ns=self.step_ns, increment=self.instrument.increment)
        driver = ReplayDriver(self.engine, feed, verify_skips=verify_skips)
        self._guarded(lambda: asyncio.run(driver.run()))
        if self.engine.now_ns >= self._next_ns:
            self._next_ns = self.engine.now_ns + self.step_ns

    def restart(self, *, clean: bool = False, strategy: object | None = None) -> StrategyHarness:
        """The same folder (venue account, ``bot_state.json``) with a fresh strategy instance,
        started: it reconstructs from the venue's orders and executions. ``clean``: ``on_stop``
        first (a SIGTERM); default a stop between two events (a kill after the state was
        written). ``strategy``: the new instance (default: a copy of this one as it was
        before it started, or the plugin's factory for :meth:`from_config`)."""
        if clean and not self.stopped and not self.alerts:
            self.stop()
        else:
            self._close()
        fresh = strategy if strategy is not None else self._remake()
        again = type(self)(fresh, self.folder, venue=self._venue_settings, strategy_id=self.strategy_id,
                           symbol=self.symbol, observers=self._observers, start=self._next_ns,
                           step_s=self.step_ns / 1e9, live_state_flush=self.live_state_flush,
                           pm=self._pm_factory, increment=self.instrument.increment, _remake=self._remake)
        return again.start()

    def stop(self) -> None:
        """``on_stop`` (not after a critical alert: then nothing more is done), the state
        written, the venue committed and closed. Idempotent."""
        if self.stopped:
            return
        if self.started and not self.alerts:
            self._guarded(self.engine.stop)
        self._close()

    def _close(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        try:
            self.engine.flush_state()
        finally:
            asyncio.run(self.broker.close())

    def __enter__(self) -> StrategyHarness:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _guarded(self, step: Callable[[], object]) -> None:
        try:
            step()
        except CriticalStop as stop:
            if not self.alerts:
                self.alerts.append(stop.alert)
            log.info("harness ended by a critical alert: %s", stop.alert.title)

    def _deliver(self) -> None:
        """Events the venue emitted outside any event (none today): handled in arrival order."""
        inbox, engine = self.engine.inbox, self.engine

        def next_event() -> None:
            engine.dispatch(inbox.popleft())
            engine.drain()

        while inbox and not self.alerts:
            self._guarded(next_event)

    def _check_running(self) -> None:
        if self.stopped:
            raise HarnessStopped("the harness was stopped; use restart() for a new run on the same folder")
        if self.alerts:
            raise HarnessStopped(f"the harness ended on a critical alert: {self.alerts[0].title}")

    # ------------------------------------------------------------------ views
    @property
    def alert(self) -> Alert | None:
        """The critical alert that ended the harness, or None."""
        return self.alerts[0] if self.alerts else None

    @property
    def open_orders(self) -> list[OpenOrder]:
        """The orders working at the venue (any status not final), in the order placed."""
        return list(self.broker.venue.open_orders()) if self.broker.venue is not None else []

    @property
    def fills(self) -> list[Fill]:
        """Every execution of the venue's account, oldest first (this run's and earlier ones'),
        with its commission."""
        if self.broker.venue is None:
            return []
        return list(self.broker.iter_executions())

    @property
    def position(self) -> int:
        """Shares of the symbol held at the venue."""
        venue = self.broker.venue
        return 0 if venue is None else venue.position.get(self.symbol, 0)

    @property
    def now_ns(self) -> int:
        """The host clock (the newest event's time)."""
        return self.engine.now_ns

    @property
    def saved_state(self) -> dict[str, Any] | None:
        """What the strategy last saved with ``ctx.save_state`` (as written to bot_state.json)."""
        return self.state.get(self.strategy_id)

    @property
    def recorded(self) -> dict[str, Any]:
        """What the strategy published with ``ctx.record`` (what ``bothost status`` shows)."""
        return self.ctx.recorded()


def _validated(kind, section: dict[str, Any]):
    from pydantic import ValidationError

    section = {k: v for k, v in section.items() if k not in ("use", "id")}
    try:
        return kind.model.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(section)'}: {e['msg']}"
                             for e in exc.errors())
        raise StrategyConfigError(f"strategy {kind.name!r} (package {kind.package}): {problems}") from None


def _settings_of(venue: object) -> dict[str, Any]:
    """A venue instance's settings, so that a restart opens the same account the same way."""
    config = getattr(venue, "config", None)
    return config.model_dump() if hasattr(config, "model_dump") else {}


def _pristine_copy(strategy: object) -> Callable[[], object]:
    """A maker of fresh instances for restart(): copies of the strategy as it was before it ran."""
    try:
        pristine = copy.deepcopy(strategy)
    except Exception as exc:  # an instance holding a lock, a socket...: the test must say
        reason = f"{type(exc).__name__}: {exc}"

        def cannot() -> object:
            raise HarnessStopped(f"restart() cannot copy the strategy ({reason}); pass "
                                 "restart(strategy=<a fresh instance>)")
        return cannot
    return lambda: copy.deepcopy(pristine)
