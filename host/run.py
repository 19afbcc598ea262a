"""One run, start to finish: build the plugins a config names, reconstruct, run, report.

The same path serves ``bothost run`` (live, paper, or a resumable replay) and
``bothost backtest`` (a fresh replay on the simulated venue).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
from decimal import Decimal
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import fingerprint, plot, report
from .engine import Engine
from .hookcall import first_result
from .fill_columns import NotColumnar, write_fills_columns
from .plot_worker import PlotWorker
from .errors import InputError
from .hookspecs import (BuildEnv, ChecksBeforeConnect, CriticalStop, KeepsExecutionColumns, KeepsExecutions,
                        LiveAwareSettings, MatchingVenue, ReplayFeed, ReplaysSymbols, ReportsFeedStats, ReportsHoldings,
                        SharesBrokerConnection, TradesSymbol, hookimpl)
from .journal import ExecutionJournal
from .model import CENT, Holdings
from .multi_replay import MultiSymbolReplayDriver, VenuesBySymbol
from .replay import ReplayDriver, replay_gc
from .state import (StateStore, atomic_write_json, check_out_dir, drop_damaged_picture, ensure_state_dir,
                    is_disk_full, lock_state_dir, state_write, watch_state_writes)

log = logging.getLogger("bothost.run")

#: How far back (host clock) a restart asks the broker for executions when a backup exists.
EXECUTIONS_LOOKBACK_NS = 7 * 24 * 3600 * 1_000_000_000


@dataclass
class RunOptions:
    state_dir: Path
    out_dir: Path | None
    verify_skips: bool = False
    progress: bool = True
    title: str = ""
    verbose: bool = False
    plot_in_worker: bool = False  # draw equity.png in a process started with the run (else in-process)
    stop_when_idle_s: float | None = None  # live: end cleanly after this long without market data


@dataclass
class RunResult:
    status: str  # done | critical | interrupted
    summary: dict[str, Any]


def build(section, env: BuildEnv):
    return section.plugin.factory(section.settings, env)


def live_guard(run, broker_settings) -> None:
    """S2: a broker section that points at a live account needs `mode: live`.

    Fails closed: a broker whose settings do not say whether they point at a live account (no
    ``is_live()``) is refused for `mode: paper`, since nothing then proves it is paper. A broker
    that can only tell once connected (by the account it reports) checks again there, before it sends
    anything that could trade."""
    if run.mode == "live":
        return
    pos = run.where(("broker",))
    where = (getattr(pos, "file", run.path), getattr(pos, "line", None))
    if not isinstance(broker_settings, LiveAwareSettings):
        raise InputError(
            f"broker {run.broker.use!r} does not say whether it trades a live account, so `mode: paper` "
            "cannot be guaranteed", *where, col=getattr(pos, "col", None),
            hint="its plugin must give its settings model an is_live() method (see hookspecs.Broker); "
                 "or, if it does trade real money, say `mode: live` at the top of the config")
    if broker_settings.is_live():
        raise InputError(
            "this broker section points at a LIVE account, but the config does not say `mode: live`",
            *where, col=getattr(pos, "col", None),
            hint="paper trading is the default; add `mode: live` at the top of the config to trade real money",
        )


def check_pairing(run, broker, feed) -> None:
    """A replay needs a venue that matches orders itself: a real broker never sees replayed prices."""
    if isinstance(feed, ReplayFeed) and not isinstance(broker, MatchingVenue):
        pos = run.where(("feed",))
        raise InputError(
            f"feed {run.feed.use!r} replays recorded data, but broker {run.broker.use!r} does not match "
            "orders itself, so no order could ever fill", getattr(pos, "file", run.path),
            getattr(pos, "line", None), col=getattr(pos, "col", None),
            hint="replay with a simulated broker (`broker: {use: sim_broker}`, or `bothost backtest`), "
                 "or use a live feed with this broker")


def traded_symbols(strategies) -> list[str]:
    """The symbols the built strategies trade (hookspecs.TradesSymbol), in config order."""
    return list(dict.fromkeys(instance.symbol for _, instance in strategies if isinstance(instance, TradesSymbol)))


class LastPrices:
    """The last price of each symbol, when the strategies trade several: each strategy's position
    is marked to its own symbol's price (the run's price picture mixes them, so it is not drawn)."""

    NAME = "host:last_prices"

    def __init__(self) -> None:
        self.units: dict[str, int] = {}

    @hookimpl
    def on_tick(self, tick) -> None:
        self.units[tick.symbol] = tick.price


def _venue_per_symbol(run, env: BuildEnv, feed) -> VenuesBySymbol:
    """The config's broker built once per symbol of the replay, each in ``venues/<SYMBOL>/``."""
    venues = {}
    for symbol in feed.symbols:
        folder = ensure_state_dir(env.state_dir / "venues" / symbol)
        venue = build(run.broker, dataclasses.replace(env, state_dir=folder))
        if not isinstance(venue, MatchingVenue):
            check_pairing(run, venue, feed)  # a real broker never sees replayed prices: the pairing's error
        venues[symbol] = venue
    return VenuesBySymbol(venues)


def check_one_venue_symbol(run, broker, strategies) -> None:
    """The simulated venue matches the ticks of one symbol against all its orders: strategies on
    several symbols need a venue each (a replay with a file per symbol), a real broker (one
    connection, a book per symbol), or a run each."""
    if isinstance(broker, VenuesBySymbol):
        for section, (sid, instance) in zip(run.strategies, strategies):
            symbol = instance.symbol if isinstance(instance, TradesSymbol) else None
            if symbol is not None and symbol not in broker.by_symbol:
                pos = run.where(section.path + ("symbol",))
                raise InputError(
                    f"strategy {sid!r} trades {symbol}, but the replay has data of {', '.join(broker.by_symbol)} only",
                    getattr(pos, "file", run.path), getattr(pos, "line", None), col=getattr(pos, "col", None),
                    hint=f"add `{symbol}: FILE` to the feed's data_by_symbol")
        return
    if not isinstance(broker, MatchingVenue):
        return
    first: dict[str, str] = {}
    for section, (sid, instance) in zip(run.strategies, strategies):
        symbol = instance.symbol if isinstance(instance, TradesSymbol) else None
        if symbol is None or symbol in first:
            continue
        if first:
            pos = run.where(section.path + ("symbol",))
            other_symbol, other_id = next(iter(first.items()))
            raise InputError(
                f"strategy {sid!r} trades {symbol} beside {other_id!r} on {other_symbol}, but broker "
                f"{run.broker.use!r} is a simulated venue, which matches one symbol's prices against every order: "
                "a paper run of several symbols on live data, or a replay of one file, is not supported",
                getattr(pos, "file", run.path), getattr(pos, "line", None), col=getattr(pos, "col", None),
                hint="replay a file per symbol (`feed: {use: replay_feed, data_by_symbol: {AAA: aaa.csv, "
                     "BBB: bbb.csv}}`), backtest each strategy on its own, or trade several symbols live on one "
                     "connection with a real broker (ib_broker)")
        first[symbol] = sid


async def execute(run, pm, opts: RunOptions, console: Console) -> RunResult:
    started = time.perf_counter()
    # Folders that cannot be written are found now, not after the replay (exit 2, the fix named).
    state_dir = ensure_state_dir(opts.state_dir)
    if opts.out_dir is not None:
        check_out_dir(opts.out_dir)
    lock = lock_state_dir(state_dir)  # one run per state folder: two would book every fill twice
    try:
        with _stop_on_signals():  # SIGINT/SIGTERM from here on: a clean stop, whenever they come
            return await _execute_locked(run, pm, opts, console, started, state_dir)
    finally:
        lock.close()


async def _execute_locked(run, pm, opts: RunOptions, console: Console, started: float, state_dir: Path) -> RunResult:
    env = BuildEnv(config_path=Path(run.path), state_dir=state_dir, mode=run.mode, log=log,
                   instruments=run.instruments)
    live_guard(run, run.broker.settings)
    broker = build(run.broker, env)
    feed = build(run.feed, env)
    if isinstance(feed, ReplaysSymbols):
        broker = _venue_per_symbol(run, env, feed)  # the replay of several symbols (multi_replay.py)
    check_pairing(run, broker, feed)
    strategies = [(s.id, build(s, env)) for s in run.strategies]
    check_one_venue_symbol(run, broker, strategies)
    if len(traded_symbols(strategies)) > 1:  # before the engine resolves its hook callers
        pm.register(LastPrices(), name=LastPrices.NAME)
    for i, section in enumerate(run.notify):
        pm.register(build(section, env), name=f"notifier:{i}:{section.use}")
    # Only a run that will draw equity.png starts the worker (it imports matplotlib on the
    # other core while the run runs); a live run against a real broker does not.
    worker = PlotWorker() if opts.plot_in_worker and opts.out_dir and isinstance(broker, KeepsExecutions) else None
    try:
        return await _execute(run, pm, opts, console, started, state_dir, broker, feed, strategies, worker)
    finally:
        if worker is not None:
            worker.close()


async def _execute(run, pm, opts: RunOptions, console: Console, started: float, state_dir: Path,
                   broker, feed, strategies, worker) -> RunResult:
    if isinstance(feed, ChecksBeforeConnect):
        feed.open()  # bad data is bad input: fail before anything is placed
    if isinstance(feed, SharesBrokerConnection):
        feed.attach_broker(broker)  # a feed that shares the broker's connection (its market data)
    replay = isinstance(feed, ReplayFeed)
    if replay and not opts.verbose:
        # Every fill of a replay is in fills.csv; a line per fill in the log would only slow it.
        logging.getLogger("bothost.strategy").setLevel(logging.WARNING)
    state = StateStore(state_dir / "bot_state.json")
    # A resume must continue the same run: a config that now says otherwise is refused (exit 2).
    made_with = fingerprint.result_config(run, replay)
    fingerprint.check_resume(state.get(fingerprint.SECTION), made_with, state_dir / "bot_state.json", live=not replay)
    state.put(fingerprint.SECTION, made_with)
    # The host's own record of the run (its clock, what the strategies hold), never a strategy's:
    # read before it is replaced by the live one, which is built each time the file is written.
    executions_since = _executions_since(state.get(HOST_SECTION))
    # A simulated venue keeps its own executions; a real broker's are journaled as they arrive.
    journal = None if isinstance(broker, MatchingVenue) else ExecutionJournal(state_dir / "executions.sqlite")
    engine = Engine(pm=pm, broker=broker, strategies=strategies, state=state,
                    live_state_flush=not replay,
                    stale_after_ns=None if run.engine.stale_after is None
                    else int(run.engine.stale_after.total_seconds() * 1e9),
                    journal=journal, snapshot_timeout_s=run.engine.snapshot_timeout.total_seconds(),
                    snapshot_retries=run.engine.snapshot_retries, instruments=run.instruments)
    state.put(HOST_SECTION, lambda: _host_section(engine))
    # A state write that fails from here on (a full disk) is the run's critical alert (exit 3).
    watch_state_writes(state_dir, engine)
    # Damaged or foreign state is bad input (exit 2) before anything runs; a damaged picture is dropped.
    state.check([(ctx.strategy_id, ctx.symbol) for ctx in engine.contexts])
    drop_damaged_picture(state_dir / "price_samples.npz")
    log.info("run starting: config %s, state %s, broker %s, feed %s, strategies %s",
             run.path, state_dir, run.broker.use, run.feed.use, [s.id for s in run.strategies])
    sampler = report.PriceSampler()
    live_samples = None
    if not replay:
        # A live run's price picture and counters carry across restarts, as a replay's do.
        _restore_progress(state, engine, sampler, state_dir, None)
        live_samples = report.LiveSampler(sampler)
        engine.on_live_sample = live_samples.add
    phases: dict[str, float] = {"prepare": time.perf_counter() - started}
    try:
        status = await _drive(run, opts, console, engine, broker, feed, state, state_dir, executions_since,
                              sampler, phases, replay, live_samples)
    except BaseException as exc:
        # Whatever went wrong (a broker that never answered or gave up, a reconstruct that
        # failed, an internal error, Ctrl-C while starting): the strategies save what they hold,
        # a run that traded still writes its outputs, the broker is closed and status.json
        # says how the run ended. Nothing more is placed.
        _stop_on_signals.finishing()  # a signal now must not cut this short
        engine.stopping = True
        _stop_after_failure(engine)
        interrupted = isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError))
        summary: dict = {"status": "interrupted" if interrupted else "failed",
                         "error": None if interrupted else f"{type(exc).__name__}: {exc}"}
        if live_samples is not None:
            live_samples.flush()
        if engine.started:
            try:
                summary = {**await _outputs(run, pm, engine, broker, feed, sampler, opts, started,
                                            summary["status"], phases, worker), "error": summary["error"]}
            except Exception:
                log.exception("writing the outputs after a failure failed too")
        try:
            _write_status(state_dir, engine, summary)
        except Exception:
            log.exception("writing status.json after a failure failed too")
        await _close(broker)
        if journal is not None:
            journal.close()
        if _stop_on_signals.absorbed(exc):
            return RunResult("interrupted", summary)  # a stop a signal asked for: exit 130, not an error
        raise
    if live_samples is not None:
        live_samples.flush()
    if status == "critical" and engine.venue is not None:
        engine.venue.checkpoint()
    outputs_failed = None
    try:
        summary = await _outputs(run, pm, engine, broker, feed, sampler, opts, started, status, phases, worker)
    except OSError as exc:  # a full disk, say: the state holds everything, and a rerun writes them again
        outputs_failed = exc
        (log.error if status == "critical" else log.info)("the outputs were not written: %s", exc)
        summary = {"status": status, "error": f"outputs not written: {exc}"}
        if engine.alert is not None:
            summary["alert"] = engine.alert.render()
    _write_status(state_dir, engine, summary)
    await _close(broker)
    if journal is not None:
        journal.close()
    if outputs_failed is not None and status != "critical":
        exc = outputs_failed
        reason = "disk full" if is_disk_full(exc) else exc.strerror or str(exc)
        raise InputError(f"the outputs could not be written: {reason}",
                         exc.filename2 or exc.filename or opts.out_dir,
                         hint="make room or fix the output folder, then run the same command again: the outputs "
                              "are written again from the state") from exc
    log.info("run %s: %s ticks, %s fills, wall %ss", status, summary.get("ticks"), summary.get("fills", "-"),
             summary.get("wall_time_s"))
    return RunResult(status, summary)


async def _drive(run, opts: RunOptions, console: Console, engine: Engine, broker, feed, state: StateStore,
                 state_dir: Path, executions_since: int | None, sampler, phases: dict, replay: bool,
                 live_samples=None) -> str:
    """Connect, reconstruct, run until the data ends or a stop; returns the run's status."""
    status = "done"
    driver = None
    try:
        mark = time.perf_counter()
        await broker.connect()
        if replay and engine.venue.clock_ns is not None:  # a resumed replay: carry the first part on
            _restore_progress(state, engine, sampler, state_dir, engine.venue.clock_ns)
            phases["resumed_after_ns"] = engine.venue.clock_ns
        await engine.reconstruct(executions_since)
        engine.start()
        phases["reconstruct"] = time.perf_counter() - mark
        mark = time.perf_counter()
        if replay:
            options = dict(skip_quiet_ticks=run.engine.skip_quiet_ticks, verify_skips=opts.verify_skips,
                           checkpoint_every_s=run.engine.checkpoint_every.total_seconds(), on_sample=sampler,
                           on_checkpoint=lambda: _save_progress(state, engine, sampler, state_dir))
            if isinstance(feed, ReplaysSymbols):  # several symbols: a separate loop, a venue each
                last = engine.pm.get_plugin(LastPrices.NAME)
                driver = MultiSymbolReplayDriver(engine, feed, broker, None if last is None else last.units,
                                                 **options)
            else:
                driver = ReplayDriver(engine, feed, **options)
            with _progress(console, opts.progress and run.engine.progress, feed) as advance:
                driver.on_progress = advance
                with _stop_on_signals(lambda: setattr(driver, "interrupted", True)), replay_gc():
                    await driver.run()
            if driver.interrupted:
                status = "interrupted"
            elif not engine.stopping:
                # A replay that ran to the end saw every tick of the data, whatever the restarts:
                # take the count from the data, not from progress saved beside the venue's
                # checkpoint (a kill between the two commits would leave it one checkpoint behind).
                stats = feed.stats() if isinstance(feed, ReportsFeedStats) else {}
                if stats.get("complete") and isinstance(stats.get("ticks_total"), int):
                    engine.counters.ticks = stats["ticks_total"]
        else:
            def checkpoint() -> None:
                live_samples.flush()
                _save_progress(state, engine, sampler, state_dir)
                engine.flush_state()
                _write_status(state_dir, engine, _live_summary(engine, "running"))

            with _stop_on_signals(engine.request_stop):
                await engine.run_live(feed, run.engine.checkpoint_every.total_seconds(),
                                      stop_when_idle_s=opts.stop_when_idle_s, on_checkpoint=checkpoint)
            if engine.alert is None and engine.stopping:
                status = "interrupted"
        phases["run"] = time.perf_counter() - mark
        if engine.alert is not None:
            raise CriticalStop(engine.alert)
        engine.stop()
    except CriticalStop:
        status = "critical"  # S1: nothing more placed, the broker's orders left in place
    return status


def _stop_after_failure(engine: Engine) -> None:
    """on_stop and a state flush after a failure, never hiding the failure itself. Only for
    strategies that started: one whose first reconstruct failed holds nothing worth saving, and
    saving its empty book would overwrite the backup the next start falls back on."""
    if engine.alert is not None or not engine.started:
        return  # S1: a critical stop places and saves nothing more
    try:
        engine.stop()
    except Exception:
        log.exception("on_stop after a failure failed too")


def _live_summary(engine: Engine, status: str) -> dict:
    c = engine.counters
    return {"status": status, "ticks": c.ticks, "ticks_handled": c.handled_ticks, "bad_ticks": c.bad_ticks,
            "held_ticks": c.held_ticks, "fills": c.fills, "orders_placed": c.orders_placed,
            "reconstructs": c.reconstructs, "broker_up": engine.broker_up}


PROGRESS_SECTION = "__replay__"  # the host's own section in bot_state.json
PROGRESS_COUNTERS = ("ticks", "handled_ticks", "bad_ticks", "orders_placed", "orders_cancelled")


def _save_progress(state: StateStore, engine: Engine, sampler, state_dir: Path) -> None:
    """At each checkpoint: what a resumed replay needs to report the whole run, not its tail."""
    state.put(PROGRESS_SECTION, {**{k: getattr(engine.counters, k) for k in PROGRESS_COUNTERS},
                                 "warnings": list(engine.warnings.values())})
    picture = state_dir / "price_samples.npz"
    state_write(picture, lambda: sampler.save(picture))  # a full disk: the run's critical alert


def _restore_progress(state: StateStore, engine: Engine, sampler, state_dir: Path, upto_ns: int | None) -> None:
    """``upto_ns``: the resumed venue's clock (later samples are from a part it lost), or None
    (live: everything kept belongs to the run)."""
    saved = state.get(PROGRESS_SECTION) or {}
    for key in PROGRESS_COUNTERS:
        if isinstance(saved.get(key), int):
            setattr(engine.counters, key, saved[key])
    for w in saved.get("warnings") or ():
        if isinstance(w, dict) and isinstance(w.get("title"), str):
            engine.warnings.setdefault(w["title"], dict(w))
    sampler.load(state_dir / "price_samples.npz", upto_ns if upto_ns is not None else (1 << 63) - 1)


HOST_SECTION = "__host__"  # the host's record of the run in bot_state.json: its clock, the holdings


def _host_section(engine: Engine) -> dict[str, Any]:
    """Built each time bot_state.json is written: the host clock at the last event (where the next
    start asks the broker's executions from), what each strategy says it holds, and what it
    published with ``ctx.record``: a replay writes status.json only at its end, so ``bothost
    serve`` reads a running replay's from here."""
    out = {"last_event_ns": engine.now_ns,
           "holdings": {sid: h.as_dict() for sid, h in _holdings(engine).items()},
           "records": {ctx.strategy_id: ctx.recorded() for ctx in engine.contexts}}
    increments = _increments(engine)
    if increments:
        out["increments"] = increments
    return out


def _increments(engine: Engine) -> dict[str, str]:
    """The strategies' symbols priced in another increment than cents, for ``bothost serve``: the
    price picture and the venue's last price count units of it. Empty for cents (the files then
    read as they always did)."""
    return {ctx.symbol: str(ctx.instrument.increment) for ctx in engine.contexts
            if ctx.symbol is not None and ctx.instrument.increment != CENT}


def _executions_since(saved: dict | None) -> int | None:
    """Executions since the last run's last event (the host clock it saved), with a margin; all
    the broker keeps when it saved none: no backup, or a backup written before the host kept its
    own clock (the strategies' reconstruct sorts out executions it has already booked)."""
    seen = (saved or {}).get("last_event_ns")
    return seen - EXECUTIONS_LOOKBACK_NS if type(seen) is int and seen > 0 else None


def _holdings(engine: Engine) -> dict[str, Holdings]:
    """What each strategy that reports its holdings (hookspecs.ReportsHoldings) holds now."""
    return {ctx.strategy_id: ctx.instance.holdings() for ctx in engine.contexts
            if isinstance(ctx.instance, ReportsHoldings)}


async def _close(broker) -> None:
    try:
        await broker.close()
    except Exception:  # closing must never hide the run's own outcome
        log.exception("broker close failed")


async def _outputs(run, pm, engine: Engine, broker, feed, sampler, opts, started, status, phases, worker) -> dict:
    c = engine.counters
    feed_stats = feed.stats() if isinstance(feed, ReportsFeedStats) else {}
    summary: dict[str, Any] = {
        "status": status,
        "config": str(run.path),
        "feed": feed_stats.get("source", run.feed.use),
        "ticks": c.ticks,
        "ticks_handled": c.handled_ticks,
        "bad_rows_skipped": feed_stats.get("bad_rows", 0),
        "bad_rows_by_reason": feed_stats.get("bad_rows_by_reason", {}),
        "bad_ticks": c.bad_ticks,
        "orders_placed": c.orders_placed,
        "reconstructs": c.reconstructs,
    }
    if c.held_ticks:
        summary["held_ticks"] = c.held_ticks
    out = opts.out_dir
    # fills.csv from the simulated venue's executions, or from a live run's journal of them
    executions = broker if isinstance(broker, KeepsExecutions) else engine.journal
    if out is not None and executions is not None:
        out.mkdir(parents=True, exist_ok=True)
        describe = first_result(pm.hook.describe_order_ref, "ref")
        opts.title = opts.title or str(run.path)
        mark = time.perf_counter()
        # One read of the executions writes fills.csv and collects the summary's stats: as
        # columns where the broker offers them and the money is whole cents, else fill by fill.
        stats = None
        sample_t, sample_p = sampler.arrays()
        if isinstance(executions, KeepsExecutionColumns):
            try:  # kept at the picture's sample times, not per fill: memory stays flat
                stats = write_fills_columns(out / "fills.csv", executions.iter_execution_columns(16384), describe,
                                            np.sort(sample_t, kind="stable"))
            except NotColumnar as exc:
                log.debug("fills.csv fill by fill: %s", exc)
        if stats is None:
            stats = report.write_fills(out / "fills.csv", executions.iter_executions(None), describe=describe)
        t, p, equity, capital = report.equity_curve(stats, sample_t, sample_p, _picture_increment(engine))
        last_prices = pm.get_plugin(LastPrices.NAME)
        if last_prices is not None:
            t = t[:0]  # the price picture interleaves the symbols' prices: no equity.png of it
        # The plot worker draws while this process writes summary.json: two cores, two jobs.
        plotting = len(t) > 0 and _submit_plot(worker, opts, out, t, p, equity, capital, stats)
        phases["fills_csv"] = time.perf_counter() - mark
        open_lots = sum(len(h.lots) for h in _holdings(engine).values())
        summary.update({
            "fills": stats.buy_fills + stats.sell_fills,
            "buy_fills": stats.buy_fills,
            "sell_fills": stats.sell_fills,
            "round_trips": stats.round_trips,
            "realized_pnl": str(report.money(stats.realized_pnl)),
            "fees": str(report.money(stats.fees)),
            "net_realized_pnl": str(report.money(stats.realized_pnl - stats.fees)),
            "open_lots": open_lots,
            "open_position": stats.last_position,
            "peak_capital_committed": str(report.money(stats.peak_capital)),
            "max_drawdown": str(report.money(Decimal(repr(round(report.max_drawdown(equity), 2))))),
        })
        if engine.journal_failed:
            summary["journal_failed"] = True
        open_cost = stats.open_cost
        if engine.journal is not None or engine.journal_failed:
            # Live: the journal holds this state folder's executions, which need not start from
            # an empty account; the position is the one the strategies hold now.
            held = _held_by_strategies(engine)
            if held is not None:
                summary["open_position"], open_cost = held
        marked = _marked(summary["open_position"], open_cost, sampler.last, stats, equity,
                         _picture_increment(engine))
        by_strategy = None
        if last_prices is not None:
            by_strategy = _by_strategy(engine, executions, describe, last_prices.units)
            summary["open_position"] = None  # shares of different symbols do not add up
            summary["max_drawdown"] = None  # ... nor do their prices make one equity curve
            marked = _marked_totals(by_strategy, stats)
        keys = list(summary)
        at = keys.index("open_position") + 1
        summary = {**{k: summary[k] for k in keys[:at]}, **marked, **{k: summary[k] for k in keys[at:]}}
        if by_strategy is not None:
            summary["by_strategy"] = by_strategy
        mark = time.perf_counter()
        if len(t):
            _finish_plot(worker, opts, out, plotting, t, p, equity, capital, stats)
        phases["plot_wait"] = time.perf_counter() - mark
        wall = time.perf_counter() - started
        summary["wall_time_s"] = round(wall, 3)
        summary["ticks_per_second"] = round(c.ticks / wall) if wall > 0 else None
        resumed = phases.pop("resumed_after_ns", None)
        summary["resumed_after"] = None if resumed is None else report.iso_time(int(resumed))
        summary["phases_s"] = {k: round(v, 3) for k, v in phases.items()}
        if engine.warnings:
            summary["warnings"] = _warnings(engine)
        report.write_summary(out / "summary.json", summary)
    else:
        wall = time.perf_counter() - started
        summary["wall_time_s"] = round(wall, 3)
        if engine.warnings:
            summary["warnings"] = _warnings(engine)
    if engine.alert is not None:
        summary["alert"] = engine.alert.render()
    return summary


def _by_strategy(engine: Engine, executions, describe, last_units: dict[str, int]) -> dict[str, dict]:
    """Each strategy's own part of the run, from its symbol's executions (one strategy per
    symbol: validate refuses two), its position marked to its own symbol's last price."""
    held = _holdings(engine)
    live = engine.journal is not None or engine.journal_failed
    fmt = lambda v: None if v is None else str(report.money(v))  # noqa: E731
    out: dict[str, dict] = {}
    for ctx in engine.contexts:
        if ctx.symbol is None:
            continue
        stats = report.collect_fills((e for e in executions.iter_executions(None) if e.symbol == ctx.symbol),
                                     describe)
        holding = held.get(ctx.strategy_id)
        shares, open_cost = stats.last_position, stats.open_cost
        if live and holding is not None:  # the journal need not start from an empty account
            shares, open_cost = holding.shares, holding.open_cost
        last = last_units.get(ctx.symbol)
        mark = report.Mark.of(shares, open_cost, last, ctx.instrument.increment)  # its own symbol's price units
        net = stats.realized_pnl - stats.fees
        out[ctx.strategy_id] = {
            "symbol": ctx.symbol,
            "fills": stats.buy_fills + stats.sell_fills,
            "buy_fills": stats.buy_fills,
            "sell_fills": stats.sell_fills,
            "round_trips": stats.round_trips,
            "realized_pnl": fmt(stats.realized_pnl),
            "fees": fmt(stats.fees),
            "net_realized_pnl": fmt(net),
            "open_lots": None if holding is None else len(holding.lots),
            "open_position": shares,
            "last_price": fmt(mark.last_price),
            "open_cost": fmt(mark.open_cost),
            "market_value": fmt(mark.market_value),
            "unrealized_pnl": fmt(mark.unrealized_pnl),
            "total_pnl": fmt(None if mark.unrealized_pnl is None else net + mark.unrealized_pnl),
        }
    return out


def _marked_totals(by_strategy: dict[str, dict], stats) -> dict:
    """The top-level marks of a run on several symbols: sums where they add up (money), no
    single last price or equity curve (their prices are different instruments')."""
    def total(key: str) -> str | None:
        values = [row[key] for row in by_strategy.values()]
        return None if not values or None in values else str(report.money(sum(map(Decimal, values))))

    unrealized = total("unrealized_pnl")
    net = stats.realized_pnl - stats.fees
    return {"last_price": None, "open_cost": total("open_cost"), "market_value": total("market_value"),
            "unrealized_pnl": unrealized,
            "total_pnl": None if unrealized is None else str(report.money(net + Decimal(unrealized))),
            "equity": None, "lowest_equity": None}


def _warnings(engine: Engine) -> list[dict]:
    """The strategies' warnings for summary.json: title, newest details, how often, first time."""
    out = []
    for w in engine.warnings.values():
        first = w.get("first_ns")
        out.append({"title": w["title"], "details": w["details"], "count": w["count"],
                    "first": report.iso_time(first) if isinstance(first, int) and first > 0 else None})
    return out


def _held_by_strategies(engine: Engine) -> tuple[int, Decimal] | None:
    """Shares and their cost from what the strategies say they hold (hookspecs.ReportsHoldings),
    or None when one of them does not say."""
    held = _holdings(engine)
    if len(held) < len(engine.contexts):
        return None
    return sum(h.shares for h in held.values()), sum((h.open_cost for h in held.values()), Decimal(0))


def _picture_increment(engine: Engine) -> Decimal:
    """The increment the price picture's integers count: the strategies' instrument (a replay
    has one symbol), cents when they have none or trade several."""
    increments = {ctx.instrument.increment for ctx in engine.contexts if ctx.symbol is not None}
    return increments.pop() if len(increments) == 1 else CENT


def _marked(shares: int, open_cost: Decimal, last: tuple[int, int] | None, stats, curve,
            increment: Decimal = CENT) -> dict:
    """Unrealized and total P&L beside the realized: a grid deep in its levels has booked only
    its winners, and the summary must not read as a profit while the shares are under water.

    ``equity`` is the executions' cash (after fees, from zero) plus the shares they leave at the
    last price; ``lowest_equity`` the lowest it was on the way (the price picture's lows)."""
    mark = report.Mark.of(shares, open_cost, None if last is None else last[1], increment)
    net = stats.realized_pnl - stats.fees
    held = stats.last_position
    cash = stats.cash_exact
    equity = None if last is None and held else cash + held * (mark.last_price if last else 0)
    seen = [Decimal(repr(round(float(curve.min()), 2)))] if len(curve) else []
    if equity is not None:
        seen.append(equity)
    lowest = min(seen, default=None)
    fmt = lambda v: None if v is None else str(report.money(v))  # noqa: E731
    return {
        "last_price": fmt(mark.last_price),
        "open_cost": fmt(mark.open_cost),
        "market_value": fmt(mark.market_value),
        "unrealized_pnl": fmt(mark.unrealized_pnl),
        "total_pnl": fmt(None if mark.unrealized_pnl is None else net + mark.unrealized_pnl),
        "equity": fmt(equity),
        "lowest_equity": fmt(lowest),
    }


def _plot_args(t, p, equity, capital, stats, title: str) -> dict:
    return dict(t=t, price=p, equity=equity, capital=capital, buys=plot.fill_points(stats.buys),
                sells=plot.fill_points(stats.sells), title=title)


def _submit_plot(worker, opts, out: Path, t, p, equity, capital, stats) -> bool:
    args = _plot_args(t, p, equity, capital, stats, opts.title)
    return worker is not None and worker.submit(out / ".equity-job.npz", path=str(out / "equity.png"), **args)


def _finish_plot(worker, opts, out: Path, submitted: bool, t, p, equity, capital, stats) -> None:
    if submitted:
        problem = worker.wait()
        if problem is None:
            return
        log.warning("plot worker: %s; drawing in-process", problem)
    plot.plot_equity(out / "equity.png", **_plot_args(t, p, equity, capital, stats, opts.title))


def _write_status(state_dir: Path, engine: Engine, summary: dict) -> None:
    """What `bothost status` shows: each strategy's records, the run's counters, any alert."""
    atomic_write_json(state_dir / "status.json", {
        "strategies": {ctx.strategy_id: ctx.recorded() for ctx in engine.contexts},
        "symbols": {ctx.strategy_id: ctx.symbol for ctx in engine.contexts},
        # the host's words for what each strategy holds (hookspecs.ReportsHoldings)
        "holdings": {sid: h.as_dict() for sid, h in _holdings(engine).items()},
        "summary": summary,
        "alert": engine.alert.render() if engine.alert else None,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **({"increments": increments} if (increments := _increments(engine)) else {}),
    })


_RUN_SIGNALS: contextvars.ContextVar = contextvars.ContextVar("bothost_run_signals", default=None)


class _stop_on_signals:
    """SIGINT and SIGTERM ask for a clean stop, whenever they come (exit 130: on_stop, state
    flushed, outputs and status.json written; the same command resumes).

    ``execute`` holds one for the whole run: the handlers live on the event loop, so a signal is
    never an exception raised in the middle of a write. Inside it, ``with
    _stop_on_signals(request_stop)`` says what a stop means while the bot trades (a replay stops
    after its current chunk, a live run after the current event); a stop asked for earlier, while
    connecting or reconstructing, is passed on the moment the run names it, so the reconstruct
    finishes and the run stops cleanly at its first step. Only a start-up still not done
    ``STARTUP_GRACE_S`` after the signal (a broker that does not answer), or a second signal, is
    cut short (cancelled: status.json says interrupted). Once the bot has stopped trading (its
    outputs, status.json, closing the broker) a signal changes nothing: the outputs are
    finished and the exit status says how the run ended; a third signal stops at once.
    """

    STARTUP_GRACE_S = 2.0

    def __init__(self, request_stop=None):
        self.request_stop = request_stop
        self.outer: _stop_on_signals | None = None

    # the run-wide instance, from anywhere in the run's task
    @staticmethod
    def finishing() -> None:
        """The bot has stopped trading: from here a signal no longer cuts anything short."""
        run = _RUN_SIGNALS.get()
        if run is not None:
            run.phase = "finishing"

    @staticmethod
    def absorbed(exc: BaseException) -> bool:
        """True when ``exc`` is the interruption a signal asked for (it is then a clean stop,
        not an error); a cancellation of the start-up is taken back from the task."""
        run = _RUN_SIGNALS.get()
        if run is None or not run.requested or not isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
            return False
        if isinstance(exc, asyncio.CancelledError):
            if not run.cancelled:
                return False  # someone else cancelled the run: theirs to handle
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
        return True

    def __enter__(self):
        run = _RUN_SIGNALS.get()
        if run is not None:  # inside a run: name what a stop means now
            self.outer, self.previous = run, run.target
            run.target = self.request_stop
            if run.requested and self.request_stop is not None:
                self.request_stop()
            return self
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.target = self.request_stop
        self.phase = "running"
        self.requested = 0
        self.cancelled = False
        self.saved: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous = signal.getsignal(sig)
                self.loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread: signals are not ours to handle
            self.saved[sig] = previous
        self.token = _RUN_SIGNALS.set(self)
        return self

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        self.requested += 1
        if self.phase == "finishing":
            if self.requested >= 3:
                log.warning("%s again: stopping at once, the outputs may be incomplete", name)
                self._restore()
                signal.raise_signal(sig)
            else:
                log.warning("%s: the bot has stopped trading; finishing its outputs first", name)
            return
        if self.target is not None:
            log.warning("stop requested (%s): finishing the current event, then shutting down cleanly", name)
            self.target()
        elif self.requested == 1:
            log.warning("stop requested (%s) while starting: the bot stops cleanly once its reconstruct is done", name)
            self.loop.call_later(self.STARTUP_GRACE_S, self._cut_start_short)
        else:
            self._cut_start_short()

    def _cut_start_short(self) -> None:
        if self.target is None and self.phase != "finishing" and self.task is not None and not self.task.done():
            log.warning("the start-up is not done: stopping it now")
            self.cancelled = True
            self.task.cancel()

    def _restore(self) -> None:
        for sig, previous in self.saved.items():
            try:
                self.loop.remove_signal_handler(sig)
                if previous is not None:
                    signal.signal(sig, previous)  # the handler from before the run (asyncio.run's, the CLI's)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        self.saved = {}

    def __exit__(self, *exc):
        if self.outer is not None:
            self.outer.target = self.previous
            self.outer.phase = "finishing"  # the bot has stopped trading
            return False
        self._restore()
        _RUN_SIGNALS.reset(self.token)
        return False


class _progress:
    """A rich progress bar over the replay's ticks (a no-op when not wanted or not a terminal)."""

    def __init__(self, console: Console, enabled: bool, feed):
        self.enabled = enabled
        total = None
        if isinstance(feed, ReportsFeedStats):
            total = feed.stats().get("ticks_total")
        self.total = total
        self.progress = Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("ticks"), TimeElapsedColumn(), console=console,
                                 transient=True, disable=not enabled)

    def __enter__(self):
        self.progress.__enter__()
        task = self.progress.add_task("replay", total=self.total)
        return lambda n: self.progress.advance(task, n)

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)


def read_status(state_dir: Path) -> dict | None:
    path = state_dir / "status.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise InputError(f"status file is not valid JSON ({exc.msg})", path, exc.lineno,
                         hint="it is rewritten by every run; run the bot again") from exc
