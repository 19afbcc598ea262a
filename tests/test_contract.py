"""The plugin contract as the host keeps it: optional members are protocols the host checks with
isinstance, the host reads no strategy's own records (what a strategy holds comes through
``ReportsHoldings``; the run's clock is the host's own section of bot_state.json), a state
folder written before the host kept its own section still resumes to the same fills, and the
CLI finds plugin commands in the packages' metadata without importing any plugin.
"""

from __future__ import annotations

import csv
import json
import typing
from decimal import Decimal as D
from pathlib import Path

import pytest

from bothost import hookspecs
from bothost.model import CommissionReport, ConnectionEvent, Fill, HeldLot, Holdings, OrderUpdate, Tick
from bothost.run import EXECUTIONS_LOOKBACK_NS, HOST_SECTION, _executions_since
from conftest import run_in_process, write_bars

@pytest.fixture(autouse=True)
def only_bothosts_plugins(monkeypatch):
    """These runs are of bothost's own plugins: a package another test is installing into the
    venv meanwhile (half there, failing to import) is not theirs to trip on."""
    import bothost.plugins as plugins

    everything = plugins._entry_points
    monkeypatch.setattr(plugins, "_entry_points",
                        lambda: [ep for ep in everything() if ep.dist is not None and ep.dist.name == "bothost"])


OPTIONAL = (hookspecs.ChecksBeforeConnect, hookspecs.SharesBrokerConnection, hookspecs.ReportsFeedStats,
            hookspecs.SupervisedBroker, hookspecs.PacedBroker, hookspecs.KeepsExecutions, hookspecs.MatchingVenue,
            hookspecs.LiveAwareSettings, hookspecs.TradesSymbol, hookspecs.ChoosesTicks, hookspecs.ReportsHoldings)


def test_emit_takes_exactly_the_events_the_engine_dispatches():
    assert set(typing.get_args(hookspecs.Event)) == {Tick, Fill, CommissionReport, OrderUpdate, ConnectionEvent}
    assert typing.get_args(hookspecs.Emit)[0] == [hookspecs.Event]


@pytest.mark.parametrize("protocol", OPTIONAL, ids=lambda p: p.__name__)
def test_each_optional_member_is_a_checkable_protocol_the_host_tests_with_isinstance(protocol):
    assert getattr(protocol, "_is_runtime_protocol", False), f"{protocol.__name__} is not runtime_checkable"
    assert protocol.__doc__
    # an object with nothing on it is none of them: the host never assumes an optional member
    assert not isinstance(object(), protocol)


def test_the_host_probes_no_optional_member_by_name():
    """hasattr/getattr on a plugin's object would be a member the contract does not name."""
    host = Path(hookspecs.__file__).parent
    for name in ("run.py", "engine.py", "context.py"):
        text = (host / name).read_text()
        for member in ("open", "attach_broker", "stats", "iter_executions", "supervise", "handled", "is_live",
                       "symbol", "wants_every_tick", "last_event_ns", "open_lots"):
            for probe in (f'hasattr(feed, "{member}")', f'hasattr(broker, "{member}")', f'"{member}", None)'):
                assert probe not in text, f"{name} probes {member!r}: {probe}"


def test_the_built_in_brokers_and_feeds_are_the_protocols_they_implement(tmp_path):
    from bothost.hookspecs import BuildEnv
    from bothost_plugins.ib_broker.config import IbBrokerConfig
    from bothost_plugins.sim_broker.plugin import SimBrokerConfig, make_sim_broker

    env = BuildEnv(config_path=tmp_path / "c.yaml", state_dir=tmp_path, mode="paper", log=__import__("logging").getLogger())
    venue = make_sim_broker(SimBrokerConfig(), env)
    assert isinstance(venue, hookspecs.Broker) and isinstance(venue, hookspecs.MatchingVenue)
    assert isinstance(venue, hookspecs.KeepsExecutions) and not isinstance(venue, hookspecs.SupervisedBroker)
    assert isinstance(SimBrokerConfig(), hookspecs.LiveAwareSettings)
    assert isinstance(IbBrokerConfig(), hookspecs.LiveAwareSettings)


def test_holdings_add_up_their_lots_and_survive_the_json_round_trip():
    h = Holdings.of_lots("TQQQ", [HeldLot(94, D("100.00"), 0, "L0"), HeldLot(97, D("97.03"), 1, "L1")])
    assert h.shares == 191 and h.open_cost == D("18811.91")
    again = Holdings.from_dict(json.loads(json.dumps(h.as_dict())))
    assert again == h
    assert Holdings.from_dict({"lots": "not mine"}) is None


def test_the_next_start_asks_executions_from_the_hosts_own_clock():
    assert _executions_since({"last_event_ns": 10**18}) == 10**18 - EXECUTIONS_LOOKBACK_NS
    # a backup written before the host kept its clock: ask for everything the broker keeps
    assert _executions_since(None) is None
    assert _executions_since({}) is None


# ----------------------------------------------------------------------------- runs

def _path(i: int) -> float:
    """A range-bound walk that buys and sells a few lots (not a straight line)."""
    return 50 + 1.5 * ((i % 40) - 20 if (i // 40) % 2 else 20 - (i % 40)) / 20


def _days(tmp_path: Path) -> tuple[Path, Path]:
    first = write_bars(tmp_path / "day1.csv", [_path(i) for i in range(240)])
    second = write_bars(tmp_path / "day2.csv", [_path(i) for i in range(240, 480)], start="2024-01-03T09:30:00-05:00")
    return first, second


def _fills(out: Path) -> list[list[str]]:
    with open(out / "fills.csv", newline="") as fh:
        return list(csv.reader(fh))


def test_a_run_counts_lots_from_the_strategys_holdings_and_keeps_its_own_clock(tmp_path):
    first, _ = _days(tmp_path)
    result = run_in_process(tmp_path, data=first, state=tmp_path / "S", out=tmp_path / "S" / "out")
    assert result.status == "done"
    saved = json.loads((tmp_path / "S" / "bot_state.json").read_text())["strategies"]
    status = json.loads((tmp_path / "S" / "status.json").read_text())
    held = Holdings.from_dict(status["holdings"]["tqqq_grid"])
    assert held is not None and held.lots, "the path should leave lots open"
    assert result.summary["open_lots"] == len(held.lots) == status["strategies"]["tqqq_grid"]["book"]["open_lots"]
    assert held.shares == status["strategies"]["tqqq_grid"]["book"]["shares"] == result.summary["open_position"]
    assert str(held.open_cost.quantize(D("0.01"))) == result.summary["open_cost"]
    assert saved[HOST_SECTION]["last_event_ns"] > 0
    assert Holdings.from_dict(saved[HOST_SECTION]["holdings"]["tqqq_grid"]) == held


def test_a_state_folder_from_before_the_hosts_own_section_resumes_to_the_same_fills(tmp_path):
    first, second = _days(tmp_path)
    for name in ("old", "new"):
        assert run_in_process(tmp_path, data=first, state=tmp_path / name, out=tmp_path / name / "out").status == "done"
    # what an earlier bothost left: no host section in the backup, no holdings in status.json
    backup = tmp_path / "old" / "bot_state.json"
    data = json.loads(backup.read_text())
    del data["strategies"][HOST_SECTION]
    backup.write_text(json.dumps(data))
    status = tmp_path / "old" / "status.json"
    written = json.loads(status.read_text())
    del written["holdings"]
    status.write_text(json.dumps(written))

    results = {name: run_in_process(tmp_path, data=second, state=tmp_path / name, out=tmp_path / name / "out")
               for name in ("old", "new")}
    assert results["old"].status == results["new"].status == "done"
    assert _fills(tmp_path / "old" / "out") == _fills(tmp_path / "new" / "out")
    assert len(_fills(tmp_path / "old" / "out")) > 2, "the second day should trade"
    for key in ("open_lots", "open_position", "realized_pnl", "fees", "ticks"):
        assert results["old"].summary[key] == results["new"].summary[key], key
    assert json.loads(backup.read_text())["strategies"][HOST_SECTION]["last_event_ns"] > 0


# ----------------------------------------------------------------------------- commands

def test_plugin_commands_come_from_the_metadata_and_the_cli_imports_no_plugin():
    from bothost.cli import plugin_commands

    top, data = plugin_commands(), plugin_commands("data.")
    assert {"sim-tws", "sim-alpaca", "sim"} <= set(top) and "data.synth" not in top
    assert {"synth", "fetch"} <= set(data)
    cli_source = (Path(hookspecs.__file__).parent / "cli.py").read_text()
    assert "bothost_plugins" not in cli_source


def test_data_synth_runs_as_the_replay_feeds_command(tmp_path):
    from click.testing import CliRunner

    from bothost.cli import cli

    out = tmp_path / "bars.csv"
    r = CliRunner().invoke(cli, ["data", "synth", "--out", str(out), "--bars", "30", "--band", "40,60"])
    assert r.exit_code == 0, r.output
    assert "wrote 30 bars" in r.output and len(out.read_text().splitlines()) == 31
    r = CliRunner().invoke(cli, ["data", "synth", "--out", str(out), "--band", "60"])
    assert r.exit_code == 2 and "LOW,HIGH" in r.output


def test_the_grid_reports_its_book_in_the_hosts_words(tmp_path):
    """Lots (purchase, level, their SELL's price), working BUYs and the trigger ladder, as its book has them."""
    from bothost_plugins.tqqq_grid.grid import trigger_chain

    first, _ = _days(tmp_path)
    run_in_process(tmp_path, data=first, state=tmp_path / "S", out=tmp_path / "S" / "out")
    status = json.loads((tmp_path / "S" / "status.json").read_text())
    book = status["strategies"]["tqqq_grid"]["book"]
    held = Holdings.from_dict(status["holdings"]["tqqq_grid"])
    assert [(lot.level, lot.quantity, lot.price, lot.exit_price) for lot in held.lots] == \
        [(b["level"], b["quantity"], D(b["purchase"]), D(b["sell_price"])) for b in book["lots"]]
    queue = [(o.order_id, o.level, o.quantity, o.price) for o in held.orders if o.label == "queue"]
    assert queue == [(b["order_id"], b["level"], b["quantity"], D(b["price"])) for b in book["queue"]]
    assert [lv.price for lv in held.levels] == list(trigger_chain(D(book["anchor"]), D(book["grid"]["buy_step"]),
                                                                  book["grid"]["levels"]))


def test_a_hook_that_raises_stops_the_run_as_hookspecs_says(tmp_path):
    """Any exception but CriticalStop and BrokerDown: no further event, on_stop still called,
    state flushed, outputs and status.json written as 'failed', the exception passed on (exit 1)."""
    from bothost.hookspecs import hookimpl

    class Buggy:
        def __init__(self) -> None:
            self.ticks, self.stopped = 0, 0

        @hookimpl
        def on_tick(self, ctx, tick) -> None:
            self.ticks += 1
            if self.ticks == 50:
                raise RuntimeError("a bug in a plugin")

        @hookimpl
        def on_stop(self, ctx) -> None:
            self.stopped += 1

    buggy = Buggy()
    first, _ = _days(tmp_path)
    with pytest.raises(RuntimeError, match="a bug in a plugin"):
        run_in_process(tmp_path, data=first, observers=[buggy], state=tmp_path / "S", out=tmp_path / "S" / "out",
                       overrides=["engine.skip_quiet_ticks=false"])
    assert buggy.ticks == 50 and buggy.stopped == 1
    status = json.loads((tmp_path / "S" / "status.json").read_text())
    assert status["summary"]["status"] == "failed" and "a bug in a plugin" in status["summary"]["error"]
    assert (tmp_path / "S" / "out" / "fills.csv").exists()
    assert json.loads((tmp_path / "S" / "bot_state.json").read_text())["strategies"][HOST_SECTION]["last_event_ns"] > 0


def test_a_notifier_failing_on_the_critical_alert_does_not_change_how_the_run_ends(tmp_path):
    from bothost.hookspecs import hookimpl

    class AlertsAndFails:
        told = 0

        @hookimpl
        def on_tick(self, ctx, tick) -> None:
            ctx.alert("something is wrong", "found by a test")

        @hookimpl
        def on_alert(self, ctx, alert) -> None:
            self.told += 1
            raise ConnectionError("the phone is off")

    observer = AlertsAndFails()
    first, _ = _days(tmp_path)
    result = run_in_process(tmp_path, data=first, observers=[observer], state=tmp_path / "S", out=tmp_path / "S" / "out")
    assert result.status == "critical" and observer.told == 1  # exit 3, not an internal error
    assert "something is wrong" in json.loads((tmp_path / "S" / "status.json").read_text())["alert"]
