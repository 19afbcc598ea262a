"""bothost.serve's pure parts: the page's data from the bot's files (views), the files read
without a write (sources), the bind guard and the report's self-containment. No browser here
(tests/test_serve.py drives one)."""

from __future__ import annotations

import json
import os
import sqlite3
from decimal import Decimal as D
from pathlib import Path

import numpy as np
import pytest

from bothost.serve import views
from bothost.serve.commands import check_bind, needs_token
from bothost.serve.report import render_report
from bothost.serve.sources import Reader, Sources, open_readonly, parse_iso_ns, signature
from bothost.serve.sse import encode
from bothost.errors import InputError
from bothost.model import HeldLot, Holdings, PriceLevel, Side, WorkingOrder
from bothost_plugins.tqqq_grid.grid import trigger_chain as grid_chain
from bothost_plugins.tqqq_grid.plugin import describe_order_ref

from conftest import run_in_process


def describe(ref: str):
    return describe_order_ref(ref=ref)


LOTS = [{"level": 0, "quantity": 94, "purchase": "49.98", "sell_price": "50.48", "sell_order_id": "2"},
        {"level": 1, "quantity": 88, "purchase": "49.48", "sell_price": "49.97", "sell_order_id": "7"}]
QUEUE = [{"order_id": "8", "level": 2, "quantity": 82, "price": "48.99", "filled": 0},
         {"order_id": "9", "level": 3, "quantity": 77, "price": "48.50", "filled": 0}]
BOOK = {"symbol": "TQQQ", "anchor": "49.98", "lots": LOTS, "open_lots": 2, "shares": 182, "deepest_level": 1,
        "queue": QUEUE, "entry": None, "realized_pnl": "10.00", "fees": "4.00", "net_realized_pnl": "6.00",
        "grid": {"buy_step": "0.01", "profit_target": "0.01", "queue_depth": 3, "levels": 88}}


def _held(book: dict = BOOK) -> Holdings:
    """What the grid reports for BOOK (hookspecs.ReportsHoldings): lots, working BUYs, its triggers."""
    lots = [HeldLot(lot["quantity"], D(lot["purchase"]), lot["level"], f"L{lot['level']}", D(lot["sell_price"]))
            for lot in book["lots"]]
    orders = [WorkingOrder(b["order_id"], Side.BUY, b["quantity"], D(b["price"]), b["filled"], b["level"], "queue")
              for b in book["queue"]]
    levels = [PriceLevel(k, t) for k, t in enumerate(grid_chain(D(book["anchor"]), D("0.01"), 88))]
    return Holdings.of_lots(book["symbol"], lots, orders, levels)


def test_price_levels_around_the_last_price_mark_lots_and_working_orders():
    lad = views.ladder(_held(), D("49.10"), around=3)
    rows = {r["level"]: r for r in lad["rows"]}
    assert [r["level"] for r in lad["rows"]] == [0, 1, 2, 3, 4, 5]
    assert lad["next_level"] == 2  # the first trigger below 49.10 is L2's 48.99
    assert [r["price"] for r in lad["rows"]] == ["49.98", "49.48", "48.99", "48.50", "48.02", "47.54"]
    assert rows[0]["lots"] == [{"label": "L0", "quantity": 94, "price": "49.98", "exit_price": "50.48"}]
    # each order under the strategy's own label (the grid's "queue"), not a word of the host's
    assert rows[2]["orders"] == [{"label": "queue", "side": "BUY", "order_id": "8", "quantity": 82, "price": "48.99",
                                  "filled": 0}]
    assert [r["above_last"] for r in lad["rows"]] == [True, True, False, False, False, False]
    assert rows[5]["lots"] == rows[5]["orders"] == []
    assert lad["levels"] == 88
    # deep in the map: the window follows the price, clipped at the last level
    deep = views.ladder(_held(), D("1.00"), around=3)
    assert deep["rows"][-1]["level"] == 87 and len(deep["rows"]) == 6
    # no price yet: centred below the deepest lot held
    assert views.ladder(_held(), None, around=3)["rows"][0]["level"] == 0


def test_a_price_finer_than_a_cent_is_shown_with_its_own_decimals():
    """A 0.0001 pair's last price reads as it trades (49.9988), not rounded to cents; a cent
    price still shows two decimals."""
    held = Holdings("EURUSD", 0, levels=(PriceLevel(0, D("50.0000")), PriceLevel(1, D("49.9950"))))
    assert views.ladder(held, D("49.9988"))["last"] == "49.9988"
    assert views.ladder(held, D("49.9900"))["last"] == "49.99"
    view = views.position_view({}, False, [], describe, D("49.9988"))
    assert view["last_price"] == "49.9988"
    assert views.price_text("97.5") == "97.50"


def test_no_ladder_for_a_strategy_that_reports_no_levels():
    assert views.ladder(None, D("49.10")) is None
    assert views.ladder(Holdings("TQQQ", 0), D("49.10")) is None


def _fills():
    return [{"n": 1, "time_ns": 1_704_205_815_000_000_000, "side": "BUY", "quantity": 94, "price": "49.98",
             "commission": "1.00", "order_id": "1", "ref": "tqqq_grid:BUY:L0:M50.00:T1704205800000"},
            {"n": 2, "time_ns": 1_704_206_000_000_000_000, "side": "BUY", "quantity": 88, "price": "49.48",
             "commission": "1.00", "order_id": "3", "ref": "tqqq_grid:BUY:L1:A49.98"},
            {"n": 3, "time_ns": 1_704_207_000_000_000_000, "side": "SELL", "quantity": 88, "price": "49.97",
             "commission": "1.00", "order_id": "4", "ref": "tqqq_grid:SELL:L1:P49.48:A49.98:B3"}]


def test_position_is_the_summarys_when_the_run_ended():
    summary = {"status": "done", "open_position": 94, "last_price": "49.00", "open_cost": "4698.12",
               "market_value": "4606.00", "unrealized_pnl": "-92.12", "realized_pnl": "43.12", "fees": "3.00",
               "net_realized_pnl": "40.12", "total_pnl": "-52.00", "equity": "-52.00", "lowest_equity": "-60.00",
               "peak_capital_committed": "9052.36", "max_drawdown": "70.00"}
    src = Sources(None, None, status={"summary": summary, "strategies": {"g": {"book": BOOK}},
                                      "holdings": {"g": _held().as_dict()}}, status_mtime_ns=2)
    data = views.page_data(src, describe)
    assert data["position"]["source"] == "summary"
    assert all(data["position"][k] == summary[k] for k in views.POSITION_KEYS)
    assert data["summary"]["status"] == "done" and data["status"] == "done" and not data["from_backup"]


def test_position_marked_to_the_last_price_while_a_replay_runs():
    fresh = {**BOOK, "lots": [LOTS[0]], "open_lots": 1, "shares": 94, "queue": QUEUE[:1]}
    held = _held(fresh)
    # the host's own section of the backup: the strategy's records and holdings at the checkpoint
    state = {"strategies": {"__host__": {"last_event_ns": 1, "holdings": {"tqqq_grid": held.as_dict()},
                                         "records": {"tqqq_grid": {"book": fresh, "reconstruct": ["found x"]}}},
                            "tqqq_grid": {"a strategy's backup": "never read by the page"}}}
    # an older status.json (another run's) and a newer backup: the backup wins
    src = Sources(None, None, status={"summary": {"status": "done", "last_price": "1.00"},
                                      "strategies": {"tqqq_grid": {"book": BOOK, "reconstruct": ["old"]}}},
                  status_mtime_ns=1, state=state, state_mtime_ns=2, fills=_fills(), fills_source="venue.sqlite",
                  samples_last=(1_704_207_000_000_000_000, 4900))
    data = views.page_data(src, describe)
    assert data["from_backup"] and data["status"] == "running"
    src.run_alive = False  # the pid in .lock is gone: the run was killed before it wrote status.json
    assert views.page_data(src, describe)["status"] == "stopped"
    src.run_alive = None
    s = data["strategies"][0]
    # the records at the checkpoint as the strategy published them, its holdings as it reported them
    assert s["source"] == "bot_state.json" and s["records"] == {"book": fresh, "reconstruct": ["found x"]}
    assert s["holdings"] == held.as_dict() and s["symbol"] == "TQQQ"
    assert s["ladder"]["rows"][0]["lots"][0]["price"] == "49.98"
    pos = data["position"]
    # from the executions (the tags name each SELL's purchase price), not from any book
    assert pos["source"] == "computed" and pos["last_price"] == "49.00" and pos["open_position"] == 94
    assert D(pos["open_cost"]) == 94 * D("49.98") and D(pos["market_value"]) == 94 * D("49.00")
    assert D(pos["unrealized_pnl"]) == 94 * (D("49.00") - D("49.98"))
    assert D(pos["realized_pnl"]) == 88 * (D("49.97") - D("49.48")) and D(pos["fees"]) == 3
    assert D(pos["total_pnl"]) == D("40.12") + D(pos["unrealized_pnl"])
    cash = -94 * D("49.98") - 88 * D("49.48") + 88 * D("49.97") - 3
    assert D(pos["equity"]) == cash + 94 * D("49.00")
    assert [r["level"] for r in data["fills"]["recent"]] == [1, 1, 0]  # newest first, levels from the tags
    assert data["fills"]["count"] == 3 and data["fills"]["last_n"] == 3
    assert data["chart"]["t"] == [f["time_ns"] // 1_000_000 for f in _fills()] + [1_704_207_000_000]


def test_a_backup_without_the_hosts_section_shows_what_status_json_said():
    """A state folder from before the host kept its own section: the page reads no strategy's backup."""
    state = {"strategies": {"tqqq_grid": {"symbol": "TQQQ", "anchor": "1.00", "lots": []}}}
    src = Sources(None, None, status={"strategies": {"tqqq_grid": {"book": BOOK}}}, status_mtime_ns=1,
                  state=state, state_mtime_ns=2, fills=_fills(), fills_source="venue.sqlite")
    s = views.page_data(src, describe)["strategies"][0]
    assert s["source"] == "status.json" and s["records"] == {"book": BOOK}
    assert s["holdings"] is None and s["ladder"] is None


def test_a_strategy_other_than_the_grid_comes_through_in_its_own_words():
    """No levels, a SELL working under the strategy's own label, a record the host has never seen."""
    held = Holdings.of_lots("EURUSD", [HeldLot(1000, D("1.0842"))],
                            [WorkingOrder("41", Side.SELL, 1000, D("1.0900"), label="take profit")])
    records = {"spread": {"z_score": "1.8", "window": 60}, "notes": ["warmed up"]}
    src = Sources(None, None, status={"strategies": {"pairs": records}, "symbols": {"pairs": "EURUSD"},
                                      "holdings": {"pairs": held.as_dict()}}, status_mtime_ns=1)
    (s,) = views.page_data(src)["strategies"]
    assert s["id"] == "pairs" and s["symbol"] == "EURUSD" and s["records"] == records
    assert s["holdings"]["lots"] == [{"quantity": 1000, "price": "1.0842", "level": None, "label": "", "exit_price": None}]
    assert s["holdings"]["orders"] == [{"order_id": "41", "side": "SELL", "quantity": 1000, "price": "1.0900",
                                        "filled": 0, "level": None, "label": "take profit"}]
    assert s["ladder"] is None  # it trades at no levels


def test_warnings_and_alert():
    w = {"title": "tqqq_grid: out of lot map levels", "details": "all 88", "count": 2, "first": "2024-01-02T10:00:00-05:00"}
    src = Sources(None, None, status={"summary": {"warnings": [w], "alert": "S1!"}, "alert": "S1!"}, status_mtime_ns=1)
    data = views.page_data(src)
    assert data["warnings"] == [w] and data["alert"] == "S1!"
    running = Sources(None, None, state={"strategies": {"__replay__": {"warnings": [
        {"title": "t", "details": "d", "count": 1, "first_ns": 1_704_205_815_000_000_000}]}}}, state_mtime_ns=1)
    assert views.page_data(running)["warnings"] == [{"title": "t", "details": "d", "count": 1,
                                                     "first": "2024-01-02T09:30:15-05:00"}]


def test_chart_is_bounded_and_keeps_lows_and_highs():
    t = np.arange(100_000, dtype=np.int64) * 1_000_000_000
    p = (5000 + 100 * np.sin(np.arange(100_000) / 500)).astype(np.int64)
    p[54_321] = 1234  # one deep spike must survive the thinning
    chart = views.chart_series(t, p, (int(t[-1]) + 10**9, 4999), most=500)
    assert len(chart["t"]) == 1001 and min(chart["p"]) == 12.34 and chart["p"][-1] == 49.99
    assert chart["t"] == sorted(chart["t"])
    assert len(views.thin(list(range(10_000)), 100)) <= 101


def test_empty_folder_is_a_page_that_waits(tmp_path):
    data = views.page_data(Reader(tmp_path / "nothing", tmp_path / "nothing" / "out").read(), describe)
    assert not data["has_data"] and data["fills"]["count"] == 0 and data["strategies"] == []
    json.loads(encode(data))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finished")
    result = run_in_process(tmp, overrides=["feed.synthetic.bars=4000"])
    assert result.status == "done"
    return tmp


def test_a_finished_run_reads_as_status_json_says(finished):
    state, out = finished / "state", finished / "out"
    before = sorted(os.listdir(state))
    data = views.page_data(Reader(state, out).read(), describe)
    assert sorted(os.listdir(state)) == before  # no -wal, no -shm, nothing written
    status = json.loads((state / "status.json").read_text())
    book = status["strategies"]["tqqq_grid"]["book"]
    s = data["strategies"][0]
    assert s["records"] == status["strategies"]["tqqq_grid"] and s["records"]["book"] == book
    assert s["holdings"] == status["holdings"]["tqqq_grid"] and s["symbol"] == "TQQQ"
    held = Holdings.from_dict(status["holdings"]["tqqq_grid"])
    assert s["ladder"]["levels"] == len(held.levels) == 88
    shown = [lot for row in s["ladder"]["rows"] for lot in row["lots"]]
    assert shown and all(lot in [{"label": f"L{b['level']}", "quantity": b["quantity"], "price": b["purchase"],
                                  "exit_price": b["sell_price"]} for b in book["lots"]] for lot in shown)
    assert all(data["position"][k] == status["summary"][k] for k in views.POSITION_KEYS)
    assert data["fills"]["count"] == status["summary"]["fills"] == len((out / "fills.csv").read_text().splitlines()) - 1
    # the same fills from fills.csv alone (no state folder): levels and prices as written there
    alone = views.page_data(Reader(None, out).read(), describe)
    assert alone["fills"]["recent"] == data["fills"]["recent"]
    assert alone["position"] == data["position"]


def test_sqlite_read_while_the_bot_has_it_open_leaves_no_file_behind(tmp_path):
    path = tmp_path / "venue.sqlite"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x)")
    writer.execute("INSERT INTO t VALUES (1)")
    with_writer = sorted(os.listdir(tmp_path))
    reader = open_readonly(path)
    assert reader.execute("SELECT COUNT(*) FROM t").fetchone() == (1,)
    with pytest.raises(sqlite3.OperationalError):
        reader.execute("INSERT INTO t VALUES (2)")
    reader.close()
    assert sorted(os.listdir(tmp_path)) == with_writer
    writer.close()  # the bot is gone: its -wal and -shm go with it, and reading makes none
    alone = sorted(os.listdir(tmp_path))
    reader = open_readonly(path)
    assert reader.execute("SELECT COUNT(*) FROM t").fetchone() == (1,)
    reader.close()
    assert sorted(os.listdir(tmp_path)) == alone == ["venue.sqlite"]


def test_the_last_runs_pid_is_read_not_locked(tmp_path):
    from bothost.serve.sources import lock_holder_alive

    assert lock_holder_alive(tmp_path) is None
    (tmp_path / ".lock").write_text(f"{os.getpid()}\n")
    assert lock_holder_alive(tmp_path) is True
    (tmp_path / ".lock").write_text("999999999\n")
    assert lock_holder_alive(tmp_path) is False


def test_signature_changes_with_any_file(tmp_path):
    (tmp_path / "out").mkdir()
    first = signature(tmp_path, tmp_path / "out")
    (tmp_path / "out" / "fills.csv").write_text("time\n")
    assert signature(tmp_path, tmp_path / "out") != first


def test_iso_times_of_fills_csv():
    assert parse_iso_ns("2024-01-02T09:30:15-05:00") == 1_704_205_815_000_000_000
    assert parse_iso_ns("2024-01-02T09:30:15.250000-05:00") == 1_704_205_815_250_000_000


def test_the_bind_guard():
    assert not needs_token("127.0.0.1")
    for host in ("127.0.0.2", "0.0.0.0", "::", "192.168.1.5", "localhost"):
        assert needs_token(host)
        with pytest.raises(InputError, match="--token"):
            check_bind(host, None)
        check_bind(host, "T")
    check_bind("127.0.0.1", None)


def test_report_is_one_file_with_nothing_to_fetch():
    html = render_report({"has_data": False, "text": "</script><b>"}, "t")
    assert "</script><b>" not in html and "\\u003c/script>" in html
    lowered = html.lower()
    for needle in ("src=", "href=", "http:", "https:", "url(", "@import", "<link"):
        assert needle not in lowered, needle
    assert Path(views.__file__).with_name("static").joinpath("app.js").exists()
