"""The host's broker contract for a broker that answers late (IB), on the real engine.

Commission after the fill, the statuses an asynchronous broker reports, one final status per
order, the gate while the broker is down, broker and feed connection events told apart,
snapshot timeouts, stop-when-idle, stock-only positions and the fail-closed live guard. The
grid runs against the simulated venue told to behave like IB (acks and cancels a tick late,
commission reports after fills, 201 rejects followed by Cancelled, Inactive orders).
"""

from __future__ import annotations

import asyncio
import json
import os
import logging
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from bothost.engine import Engine
from bothost.errors import InputError
from bothost.hookspecs import BrokerDown, BrokerUnavailable, BuildEnv, hookimpl
from bothost.model import (
    BrokerSnapshot,
    ConnectionEvent,
    ConnectionState,
    Fill,
    OpenOrder,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Position,
    Side,
    Tick,
)
from bothost.plugins import make_manager
from bothost.state import StateStore
from bothost_plugins.sim_broker.plugin import SimBroker, SimBrokerConfig
from conftest import run_in_process
from test_grid_replay import InvariantChecker

D = Decimal
GRID = ["feed.synthetic.bars=4000", "feed.synthetic.volatility=1.0", "feed.synthetic.seed=3"]


def _fills(out: Path) -> list[str]:
    return (out / "fills.csv").read_text().splitlines()


def _status(state: Path) -> dict:
    return json.loads((state / "status.json").read_text())


# ------------------------------------------------------------------ the grid against a late broker
def test_commission_reported_after_the_fill_gives_the_same_fills_and_fees(tmp_path):
    """IB sends commissionReport after execDetails: the fill is booked at once, its fee when
    the report comes. Fills and the book's fees equal a venue that charges with the fill."""
    at_once = run_in_process(tmp_path / "a", GRID, out=tmp_path / "a" / "out")
    later = run_in_process(tmp_path / "b", GRID + ["broker.commission_later=true"], out=tmp_path / "b" / "out")
    assert at_once.status == later.status == "done"
    assert _fills(tmp_path / "a" / "out") == _fills(tmp_path / "b" / "out")
    book_a = _status(tmp_path / "a" / "state")["strategies"]["tqqq_grid"]["book"]
    book_b = _status(tmp_path / "b" / "state")["strategies"]["tqqq_grid"]["book"]
    assert D(book_b["fees"]) == D(book_a["fees"]) > 0
    assert book_b["net_realized_pnl"] == book_a["net_realized_pnl"]
    state = json.loads((tmp_path / "b" / "state" / "bot_state.json").read_text())
    assert state["strategies"]["tqqq_grid"]["fee_pending"] == []  # every report arrived and was booked


@pytest.mark.parametrize("partial", [None, 5])
def test_invariants_hold_against_a_broker_that_acks_and_cancels_a_tick_late(tmp_path, partial):
    """Late acks, cancels pending for a tick (a fill can race the cancel), commission later:
    I1-I4 after every handled tick, and the run ends cleanly."""
    checker = InvariantChecker()
    overrides = GRID + ["broker.broker_like=true"]
    if partial:
        overrides.append(f"broker.partial_fill_shares={partial}")
    result = run_in_process(tmp_path, overrides, observers=[checker])
    assert result.status == "done", result.summary
    assert result.summary["fills"] > 50 and checker.checked > 100
    assert checker.max_lots >= 3


class FinalStatuses:
    """Counts the final statuses the strategy was shown, per order."""

    def __init__(self):
        self.finals: dict[str, list[str]] = {}
        self.updates: list[OrderUpdate] = []

    @hookimpl
    def on_order_update(self, ctx, update):
        self.updates.append(update)
        if update.status.is_final:
            self.finals.setdefault(update.order_id, []).append(update.status.value)


def test_a_201_reject_then_cancelled_reaches_the_strategy_once(tmp_path, caplog):
    """IB rejects with error 201 and then reports Cancelled for the same order. The grid sees
    one final status, drops the BUY, does not halt, and the order is never re-adopted."""
    seen = FinalStatuses()
    checker = InvariantChecker()
    with caplog.at_level(logging.INFO, "bothost.engine"):
        result = run_in_process(tmp_path, GRID + ["broker.reject_refs=[':BUY:L2:']"], observers=[seen, checker])
    assert result.status == "done", result.summary
    rejected = [u for u in seen.updates if u.status is OrderStatus.REJECTED]
    assert rejected and all(u.code == 201 for u in rejected)
    for update in rejected:
        assert seen.finals[update.order_id] == ["rejected"]  # the Cancelled that followed was dropped
    assert "later status cancelled ignored" in caplog.text


def test_an_inactive_sell_keeps_its_lot_and_does_not_halt(tmp_path, caplog):
    """IB parks an order it cannot work as Inactive; it may resume. A parked SELL is still the
    lot's one SELL: no halt (unlike a rejected SELL), no second SELL, and the status says so."""
    result = run_in_process(tmp_path, GRID + ["broker.inactive_refs=[':SELL:L1:']"])
    assert result.status == "done", result.summary
    book = _status(tmp_path / "state")["strategies"]["tqqq_grid"]["book"]
    parked = [lot for lot in book["lots"] if lot.get("sell_inactive")]
    assert parked and all(lot["level"] == 1 for lot in parked)
    assert sum(1 for lot in book["lots"] if lot["level"] == 1) == 1  # never a second SELL for it
    assert "is Inactive at the broker" in caplog.text


# ------------------------------------------------------------------ the engine's side of it
class Recorder:
    symbol = "XYZ"
    wants_every_tick = True

    def __init__(self, place_on_tick: bool = True):
        self.seen: list = []
        self.place_on_tick = place_on_tick
        self.placed: list[str] = []
        self.refused: list[str] = []

    @hookimpl
    def reconstruct(self, ctx, snapshot):
        self.seen.append(("reconstruct",))

    @hookimpl
    def on_tick(self, ctx, tick):
        self.seen.append(("tick", tick.time_ns))
        if self.place_on_tick:
            try:
                self.placed.append(ctx.place(OrderRequest("XYZ", Side.BUY, 1, D("1.00"), ref=f"rec:{tick.time_ns}")))
            except BrokerDown as exc:
                self.refused.append(str(exc))

    @hookimpl
    def on_fill(self, ctx, fill):
        self.seen.append(("fill", fill.exec_id, fill.commission))

    @hookimpl
    def on_commission(self, ctx, report):
        self.seen.append(("commission", report.exec_id, report.commission))

    @hookimpl
    def on_order_update(self, ctx, update):
        self.seen.append(("update", update.order_id, update.status.value))

    @hookimpl
    def on_connection(self, ctx, event):
        self.seen.append(("connection", event.origin, event.state.value))


def _engine(tmp_path: Path, strategy, **config) -> Engine:
    env = BuildEnv(tmp_path / "c.yaml", tmp_path, "paper", logging.getLogger("t"))
    broker = SimBroker(SimBrokerConfig(**config), env)
    broker.open()
    return Engine(pm=make_manager(), broker=broker, strategies=[("rec", strategy)],
                  state=StateStore(tmp_path / "bot_state.json"), snapshot_timeout_s=0.2, snapshot_retries=1)


class Script:
    """A live feed that plays a script: ticks through the feed's door, broker connection
    events through the broker's door (as a broker plugin's callbacks would)."""

    def __init__(self, engine: Engine, steps):
        self.engine, self.steps = engine, steps

    async def stream(self, emit):
        for step in self.steps:
            if isinstance(step, tuple):
                door, state = step
                event = ConnectionEvent(0, door, state, "scripted")
                (self.engine.emit_broker if door == "broker" else emit)(event)
            else:
                emit(Tick(step, "XYZ", 10_000))
            await asyncio.sleep(0)


def _run_live(engine: Engine, steps, **kw) -> None:
    async def main():
        await engine.reconstruct()
        engine.start()
        await engine.run_live(Script(engine, steps), **kw)

    asyncio.run(main())


LOST, RESTORED = ConnectionState.LOST, ConnectionState.RESTORED


def test_while_the_broker_is_down_no_tick_reaches_a_strategy_and_nothing_is_placed(tmp_path):
    rec = Recorder()
    engine = _engine(tmp_path, rec)
    _run_live(engine, [1_000, ("broker", LOST), 2_000, 3_000, ("broker", RESTORED), 4_000])
    kinds = [e for e in rec.seen if e[0] in ("tick", "reconstruct", "connection")]
    assert kinds == [("reconstruct",), ("tick", 1_000), ("connection", "broker", "lost"),
                     ("connection", "broker", "restored"), ("reconstruct",), ("tick", 4_000)]
    assert engine.counters.held_ticks == 2 and len(rec.placed) == 2 and rec.refused == []
    assert engine.counters.reconstructs == 2


def test_place_through_a_dead_socket_raises_broker_down(tmp_path, caplog):
    """A hook that places while the broker is down gets BrokerDown; one that lets it escape
    has it logged, and the run goes on (the reconstruct after RESTORED places what is needed)."""

    class PlacesOnLost(Recorder):
        @hookimpl
        def on_connection(self, ctx, event):
            if event.state is LOST:
                ctx.place(OrderRequest("XYZ", Side.BUY, 1, D("1.00"), ref="x"))

    strategy = PlacesOnLost(place_on_tick=False)
    engine = _engine(tmp_path, strategy)
    with caplog.at_level(logging.WARNING, "bothost.engine"):
        _run_live(engine, [1_000, ("broker", LOST), ("broker", RESTORED), 2_000])
    assert engine.counters.orders_placed == 0
    assert "not placed while the broker is down" in caplog.text
    assert ("tick", 2_000) in strategy.seen


def test_a_feed_reconnect_does_not_force_a_broker_reconstruct(tmp_path):
    rec = Recorder(place_on_tick=False)
    engine = _engine(tmp_path, rec)
    _run_live(engine, [1_000, ("feed", LOST), ("feed", RESTORED), 2_000])
    assert engine.counters.reconstructs == 1
    assert ("connection", "feed", "lost") in rec.seen and engine.counters.held_ticks == 0
    assert [e for e in rec.seen if e[0] == "tick"] == [("tick", 1_000), ("tick", 2_000)]


def test_commission_report_reaches_the_owner_after_its_fill(tmp_path):
    rec = Recorder(place_on_tick=False)
    engine = _engine(tmp_path, rec, commission_later=True)
    asyncio.run(engine.reconstruct())
    engine.handle_tick(1_000, 10_000, Tick(1_000, "XYZ", 10_000))
    ctx = engine.contexts[0]
    ctx.place(OrderRequest("XYZ", Side.BUY, 10, D("100.00"), ref="r"))
    engine.handle_tick(2_000, 9_990, Tick(2_000, "XYZ", 9_990))
    fills = [e for e in rec.seen if e[0] in ("fill", "commission")]
    assert fills == [("fill", "E1", None), ("commission", "E1", D("1.00"))]
    assert [e for e in rec.seen if e[0] == "update"][-1][2] == "filled"


def test_a_second_final_status_is_dropped_and_the_order_not_readopted(tmp_path):
    rec = Recorder(place_on_tick=False)
    engine = _engine(tmp_path, rec)
    asyncio.run(engine.reconstruct())
    oid = engine.contexts[0].place(OrderRequest("XYZ", Side.BUY, 1, D("1.00"), ref="rec:tagged"))
    for status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
        engine.dispatch(OrderUpdate(oid, 5, status, "XYZ", Side.BUY, 1, 0, "rec:tagged", code=201))
    assert [e for e in rec.seen if e[0] == "update"] == [("update", oid, "rejected")]
    assert oid not in engine.owner


def test_snapshot_that_never_answers_is_retried_then_exit_4_with_status_written(tmp_path, monkeypatch):
    async def hang(self, since):
        await asyncio.sleep(3600)

    closed = []
    real_close = SimBroker.close

    async def close(self):
        closed.append(True)
        await real_close(self)

    monkeypatch.setattr(SimBroker, "snapshot", hang)
    monkeypatch.setattr(SimBroker, "close", close)
    with pytest.raises(BrokerUnavailable, match="after 2 attempts"):
        run_in_process(tmp_path, ["engine.snapshot_timeout=200ms", "engine.snapshot_retries=1"])
    assert closed == [True]
    status = _status(tmp_path / "state")
    assert status["summary"]["status"] == "failed" and "after 2 attempts" in status["summary"]["error"]


def test_stop_when_idle_ends_a_live_run_cleanly(tmp_path):
    class Quiet:
        async def stream(self, emit):
            emit(Tick(1_000, "XYZ", 10_000))
            await asyncio.sleep(3600)

    rec = Recorder(place_on_tick=False)
    engine = _engine(tmp_path, rec)

    async def main():
        await engine.reconstruct()
        engine.start()
        await engine.run_live(Quiet(), stop_when_idle_s=0.3)

    asyncio.run(asyncio.wait_for(main(), 10))
    assert engine.idle_stopped and not engine.stopping and ("tick", 1_000) in rec.seen


# ------------------------------------------------------------------ snapshot semantics
def test_only_stock_positions_count_as_shares():
    snap = BrokerSnapshot(0, positions=(Position("TQQQ", 94, D("50")), Position("TQQQ", 10, D("3"), sec_type="OPT")))
    assert snap.position("TQQQ") == 94


def test_pending_cancel_is_not_live_and_inactive_is():
    base = dict(order_id="1", symbol="TQQQ", side=Side.BUY, quantity=10, filled=0, limit=D("1"))
    assert not OpenOrder(**base, status=OrderStatus.PENDING_CANCEL).live
    assert OpenOrder(**base, status=OrderStatus.INACTIVE).live
    assert OpenOrder(**base, perm_id="9001").stable_id == "9001" and OpenOrder(**base).stable_id == "1"


def test_live_guard_fails_closed_for_a_broker_that_does_not_say(tmp_path):
    from bothost.cli import _load
    from bothost.run import live_guard
    from conftest import PAPER

    _, _, run = _load(PAPER)
    live_guard(run, run.broker.settings)  # the simulated venue says it is not live
    with pytest.raises(InputError, match="does not say whether it trades a live account"):
        live_guard(run, SimpleNamespace())
    with pytest.raises(InputError, match="LIVE account"):
        live_guard(run, SimpleNamespace(is_live=lambda: True))


def test_a_failure_after_the_start_still_ends_in_on_stop_close_and_status(tmp_path, monkeypatch):
    """A reconnect's reconstruct that fails (here: the broker gives up mid-run) must not lose the
    book: on_stop saves it, the broker is closed, status.json says how the run ended."""
    from bothost.replay import ReplayDriver

    async def gives_up(self):
        raise BrokerUnavailable("the broker's snapshot failed after 4 attempts (scripted)")

    stops, closed = [], []

    class SeesStop:
        @hookimpl
        def on_stop(self, ctx):
            stops.append(ctx.strategy_id)

    real_close = SimBroker.close

    async def close(self):
        closed.append(True)
        await real_close(self)

    monkeypatch.setattr(ReplayDriver, "run", gives_up)
    monkeypatch.setattr(SimBroker, "close", close)
    with pytest.raises(BrokerUnavailable):
        run_in_process(tmp_path, observers=[SeesStop()])
    assert stops == ["tqqq_grid"] and closed == [True]
    summary = _status(tmp_path / "state")["summary"]
    assert summary["status"] == "failed" and "after 4 attempts" in summary["error"]
    # it had started, so its outputs are written too (a live run that traded keeps its fills.csv)
    assert (tmp_path / "out" / "fills.csv").exists() and (tmp_path / "out" / "summary.json").exists()
    state = json.loads((tmp_path / "state" / "bot_state.json").read_text())
    assert state["strategies"]["tqqq_grid"]["anchor"] is None  # saved (nothing was bought yet)


def test_idle_time_during_a_broker_outage_does_not_end_the_run(tmp_path):
    """--stop-when-idle means the data ended, not that the broker is away: while it is down the
    run waits (the broker's own supervisor gives up, exit 4, if it never comes back)."""

    class Outage:
        def __init__(self, engine):
            self.engine = engine

        async def stream(self, emit):
            emit(Tick(1_000, "XYZ", 10_000))
            await asyncio.sleep(0.05)
            self.engine.emit_broker(ConnectionEvent(0, "broker", LOST, "socket closed"))
            await asyncio.sleep(1.0)  # longer than the idle limit, with the broker down
            self.engine.emit_broker(ConnectionEvent(0, "broker", RESTORED, "back"))
            await asyncio.sleep(0.05)
            emit(Tick(2_000, "XYZ", 10_000))
            await asyncio.sleep(3600)

    rec = Recorder(place_on_tick=False)
    engine = _engine(tmp_path, rec)

    async def main():
        await engine.reconstruct()
        engine.start()
        await engine.run_live(Outage(engine), stop_when_idle_s=0.4)

    asyncio.run(asyncio.wait_for(main(), 10))
    assert engine.idle_stopped and ("tick", 2_000) in rec.seen  # it waited out the outage


def test_a_reconnect_reads_executions_from_the_start_ups_window(tmp_path):
    """An order still in the client's send queue when the socket died never reached the broker:
    the fill it answered may be long before the loss, so a reconnect reads as far back as the
    start-up did (not a few minutes of data time, which a fast rehearsal crosses in ms)."""
    engine = _engine(tmp_path, Recorder(place_on_tick=False))
    asyncio.run(engine.reconstruct(since_ns=5_000))
    engine.now_ns = 10**15
    engine.dispatch(ConnectionEvent(0, "broker", LOST, "x", origin="broker"))
    assert engine.reconnect_since_ns() == 5_000
    (tmp_path / "b").mkdir()
    engine2 = _engine(tmp_path / "b", Recorder(place_on_tick=False))
    asyncio.run(engine2.reconstruct(None))
    engine2.dispatch(ConnectionEvent(0, "broker", LOST, "x", origin="broker"))
    assert engine2.reconnect_since_ns() is None  # everything the broker keeps


def test_a_second_run_on_the_same_state_folder_is_refused(tmp_path):
    from bothost.state import lock_state_dir
    from conftest import PAPER, bothost

    state = tmp_path / "state"
    state.mkdir()
    lock = lock_state_dir(state)
    try:
        r = bothost("run", str(PAPER), "--state", str(state), "--no-progress", cwd=tmp_path)
    finally:
        lock.close()
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"is in use by another bothost run (pid {os.getpid()})" in r.stderr and "--state" in r.stderr
    assert not (state / "venue.sqlite").exists()  # nothing was touched
    again = bothost("run", str(PAPER), "--state", str(state), "--no-progress", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # the lock went with its holder


def test_a_damaged_execution_journal_is_bad_input_with_the_way_out(tmp_path):
    from bothost.journal import ExecutionJournal

    path = tmp_path / "executions.sqlite"
    j = ExecutionJournal(path)
    for i in range(400):
        j.add(Fill(f"e{i}", str(i), i, "TQQQ", Side.BUY, 1, D("1.00"), D("1.00"), "r", 1, 1, D("1.00")))
    j.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    j.close()
    data = bytearray(path.read_bytes())
    for page in range(2, len(data) // 4096):
        data[page * 4096 + 100: page * 4096 + 164] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="execution journal is unreadable") as err:
        ExecutionJournal(path)
    assert "mv " in str(err.value)


def test_ib_refuses_to_trade_through_a_closed_socket_as_broker_down(tmp_path):
    from bothost_plugins.ib_broker.broker import IbBroker
    from bothost_plugins.ib_broker.config import IbBrokerConfig

    broker = IbBroker(IbBrokerConfig(), BuildEnv(tmp_path / "c.yaml", tmp_path, "paper", logging.getLogger("t")))
    broker.ib = SimpleNamespace(isConnected=lambda: False)
    with pytest.raises(BrokerDown, match="socket is closed"):
        broker.place(OrderRequest("TQQQ", Side.BUY, 1, D("1.00"), ref="x"))
    with pytest.raises(BrokerDown):
        broker.cancel("7")
