"""A TQQQ grid beside a SOXL grid in one live run, on one broker connection (issue 15).

The simulators (sim-tws, sim-alpaca) serve one symbol, so the broker here is a test double of a
broker of several symbols: one connection in front of a real simulated venue per symbol
(``sim_broker``'s Venue, SQLite and all), which it drives in lockstep with the ticks it streams,
as ``sim-tws --pace lockstep`` does: each fill is handed over and handled (with what it caused)
before the venue matches on, then the tick, whose handling is waited for. Everything else is the
real run: ``execute``, the engine's live loop, reconstruct, the execution journal, the reports.

Each grid's fills equal a one-strategy backtest of its own data; each reconstruct and position
check sees only its own symbol's orders and position; summary.json, status.json and `bothost
status` are per strategy and symbol.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import logging
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from bothost.cli import _load
from bothost.hookspecs import BuildEnv
from bothost.model import CommissionReport, Fill, OpenOrder, OrderUpdate, Tick
from bothost.run import RunOptions, execute
from bothost.status import render_status
from bothost_plugins.replay_feed.feed import FileFeed
from bothost_plugins.replay_feed.synthetic import write_csv
from bothost_plugins.sim_broker.plugin import SimBroker, SimBrokerConfig
from conftest import CONFIGS, run_in_process

SYMBOLS = ("TQQQ", "SOXL")
COMPARED = slice(0, 7)  # time, symbol, side, level, quantity, price, commission (ids differ)

TWO_GRIDS = """\
extends: tqqq-paper.yaml
strategies:
  - {use: tqqq_grid, id: tqqq, symbol: TQQQ, lots: tqqq_lots.csv, l0_timeout: 120s}
  - {use: tqqq_grid, id: soxl, symbol: SOXL, lots: tqqq_lots.csv, l0_timeout: 120s}
notify: []
"""


def _id(symbol: str, raw: str) -> str:
    return f"{symbol}-{raw}" if raw else raw


def _ours(symbol: str, event):
    """A venue's event with the connection's ids (each venue numbers its orders from 1)."""
    if isinstance(event, Fill):
        return dataclasses.replace(event, exec_id=_id(symbol, event.exec_id), order_id=_id(symbol, event.order_id),
                                   perm_id=_id(symbol, event.perm_id))
    if isinstance(event, OrderUpdate):
        return dataclasses.replace(event, order_id=_id(symbol, event.order_id), perm_id=_id(symbol, event.perm_id))
    if isinstance(event, CommissionReport):
        return dataclasses.replace(event, exec_id=_id(symbol, event.exec_id))
    if isinstance(event, OpenOrder):
        return dataclasses.replace(event, order_id=_id(symbol, event.order_id), perm_id=_id(symbol, event.perm_id))
    return event


class OneConnection:
    """A broker of several symbols: one connection, a real simulated venue per symbol behind it."""

    name = "one_connection"

    def __init__(self, folder: Path):
        self.venues: dict[str, SimBroker] = {}
        for symbol in SYMBOLS:
            (folder / symbol).mkdir(parents=True, exist_ok=True)
            env = BuildEnv(folder / "c.yaml", folder / symbol, "paper", logging.getLogger("test"))
            self.venues[symbol] = SimBroker(SimBrokerConfig(), env)
        self.held: list | None = None  # a venue's events while the feed makes it match
        self.waiting: dict[int, asyncio.Future] = {}
        self._emit = lambda event: None

    def bind(self, emit) -> None:
        self._emit = emit
        for symbol, venue in self.venues.items():
            venue.bind(lambda event, symbol=symbol: self._from_venue(symbol, event))

    def _from_venue(self, symbol: str, event) -> None:
        event = _ours(symbol, event)
        (self.held.append if self.held is not None else self._emit)(event)

    async def connect(self) -> None:
        for venue in self.venues.values():
            await venue.connect()

    async def snapshot(self, since_ns):
        from bothost.model import BrokerSnapshot

        parts = {s: await v.snapshot(since_ns) for s, v in self.venues.items()}
        return BrokerSnapshot(
            time_ns=max(p.time_ns for p in parts.values()),
            open_orders=tuple(_ours(s, o) for s, p in parts.items() for o in p.open_orders),
            executions=tuple(sorted((_ours(s, e) for s, p in parts.items() for e in p.executions),
                                    key=lambda e: e.time_ns)),
            positions=tuple(pos for p in parts.values() for pos in p.positions))

    def place(self, order) -> str:
        return _id(order.symbol, self.venues[order.symbol].place(order))

    def cancel(self, order_id: str) -> None:
        symbol, _, raw = order_id.partition("-")
        self.venues[symbol].cancel(raw)

    async def close(self) -> None:
        for venue in self.venues.values():
            await venue.close()

    def handled(self, event) -> None:  # hookspecs.PacedBroker: the lockstep's answer
        done = self.waiting.pop(id(event), None)
        if done is not None and not done.done():
            done.set_result(None)

    async def hand_over(self, emit, event) -> None:
        """``event`` to the engine, and wait until it and all it caused are handled."""
        done = self.waiting[id(event)] = asyncio.get_running_loop().create_future()
        emit(event)
        await asyncio.wait_for(done, 30)


class LockstepFeed:
    """Every symbol's ticks in time order; before each tick its venue matches, fill by fill."""

    name = "lockstep"

    def __init__(self, broker: OneConnection, data: dict[str, Path], part: slice = slice(None)):
        self.broker = broker
        self.part = part
        self.ticks = []
        for symbol, path in data.items():
            feed = FileFeed(path, symbol)
            feed.open()
            for chunk in feed.chunks():
                self.ticks += [(t, SYMBOLS.index(symbol), symbol, p)
                               for t, p in zip(chunk.time_ns.tolist(), chunk.price.tolist())]
        self.ticks.sort()

    async def stream(self, emit) -> None:
        broker = self.broker
        for t, _, symbol, price in self.ticks[self.part]:
            fills = broker.venues[symbol].match(t, price)
            while True:
                broker.held = []
                try:
                    fill = next(fills, None)
                finally:
                    held, broker.held = broker.held, None
                if fill is None:
                    for event in held:  # the tick's statuses after its last fill (cancels done)
                        broker._emit(event)
                    break
                # the fill first, then what the venue said meanwhile: the engine's order on a venue
                await broker.hand_over(broker._emit, _ours(symbol, fill))
                for event in held:
                    broker._emit(event)
            await broker.hand_over(emit, Tick(t, symbol, price))
        # the part has ended: so does the run (its outputs and status written)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    paths = {"TQQQ": folder / "tqqq.csv", "SOXL": folder / "soxl.csv"}
    write_csv(paths["TQQQ"], bars=400, seed=3, volatility=1.0, start_price=50.0, interval=60)
    write_csv(paths["SOXL"], bars=400, seed=9, volatility=1.2, start_price=20.0, interval=60)
    return paths


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return [r[COMPARED] for r in csv.reader(fh)]


@pytest.fixture(scope="module")
def backtests(data, tmp_path_factory) -> dict[str, list[list[str]]]:
    """Each grid alone: a one-strategy backtest of its own data."""
    out = {}
    for symbol, path in data.items():
        tmp = tmp_path_factory.mktemp(f"backtest-{symbol}")
        result = run_in_process(tmp, data=path, overrides=(f"strategies.0.symbol={symbol}", "feed.symbol=" + symbol,
                                                           "strategies.0.l0_timeout=120s"))
        assert result.status == "done"
        out[symbol] = rows(tmp / "out" / "fills.csv")
    return out


@pytest.fixture(scope="module")
def live(data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("live")
    for name in ("tqqq.yaml", "tqqq-paper.yaml", "tqqq_lots.csv"):
        shutil.copy(CONFIGS / name, folder / name)
    config = folder / "two.yaml"
    config.write_text(TWO_GRIDS)
    def section(part, made):
        kind = dataclasses.replace(part.plugin, factory=lambda settings, env: made)
        return dataclasses.replace(part, plugin=kind)

    state = folder / "state"
    # Two runs on one state folder and one account: the second starts from the orders, executions
    # and positions the first left at the broker (both symbols' lots held, both grids' SELLs open).
    for part in (slice(0, 700), slice(700, None)):
        pm, _, run = _load(config)
        broker = OneConnection(folder / "venues")
        feed = LockstepFeed(broker, data, part)
        run = dataclasses.replace(run, broker=section(run.broker, broker), feed=section(run.feed, feed))
        opts = RunOptions(state_dir=state, out_dir=state / "out", progress=False)
        result = asyncio.run(execute(run, pm, opts, Console(file=io.StringIO())))
        assert result.status == "done", result.summary
    return state


def test_each_grid_fills_exactly_as_it_does_alone(live, backtests):
    fills = rows(live / "out" / "fills.csv")
    header, body = fills[0], fills[1:]
    for symbol in SYMBOLS:
        mine = [r for r in body if r[1] == symbol]
        assert len(mine) > 10, symbol
        assert [header, *mine] == backtests[symbol], symbol


def test_the_summary_and_status_are_per_strategy_and_symbol(live, backtests):
    summary = json.loads((live / "out" / "summary.json").read_text())
    per = summary["by_strategy"]
    assert {sid: row["symbol"] for sid, row in per.items()} == {"tqqq": "TQQQ", "soxl": "SOXL"}
    for sid, symbol in (("tqqq", "TQQQ"), ("soxl", "SOXL")):
        assert per[sid]["fills"] == len(backtests[symbol]) - 1
    assert summary["fills"] == per["tqqq"]["fills"] + per["soxl"]["fills"]
    assert summary["open_position"] is None  # TQQQ and SOXL shares do not add up
    status = json.loads((live / "status.json").read_text())
    assert status["symbols"] == {"tqqq": "TQQQ", "soxl": "SOXL"}
    assert {h["symbol"] for h in status["holdings"].values()} == {"TQQQ", "SOXL"}
    shown = io.StringIO()
    render_status(Console(file=shown, width=250), live)
    text = shown.getvalue()
    assert "tqqq (TQQQ): book" in text and "soxl (SOXL): book" in text
    assert "last run, per strategy" in text


def test_each_reconstruct_and_position_check_sees_only_its_symbol(live):
    """The restart's reconstruct: each grid rebuilt its lots from its own symbol's orders, and its
    position check compared its own symbol's shares (the account holds both: a check of the
    account's total would find orphan shares, or too few)."""
    status = json.loads((live / "status.json").read_text())
    assert status["alert"] is None
    held = {}
    for sid, symbol in (("tqqq", "TQQQ"), ("soxl", "SOXL")):
        findings = status["strategies"][sid]["reconstruct"]
        check = next(f for f in findings if f.startswith("position check"))
        shares = int(check.split("broker ")[1].split(" ")[0])
        assert shares > 0 and f"broker {shares} vs lots {shares} +" in check, findings
        assert not any(f.startswith("CRITICAL") for f in findings), findings
        held[symbol] = shares
    assert held["TQQQ"] != held["SOXL"]  # two positions, each checked on its own
