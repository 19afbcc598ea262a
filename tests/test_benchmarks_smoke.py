"""The benchmark harness's own helpers (benchmarks/benchlib.py, benchmarks/synth_gbm.py,
benchmarks/peers/_grid_common.py). The benchmark itself is not run here: CI runs
`python benchmarks/run.py --smoke` separately."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
# append, never insert: benchmarks/profile.py must not shadow the standard library's `profile`
for p in (BENCH, BENCH / "peers"):
    if str(p) not in sys.path:
        sys.path.append(str(p))

import _grid_common as gc  # noqa: E402
import benchlib as bl  # noqa: E402

PY = sys.executable


# ---------------------------------------------------------------------------- measuring children


def test_peak_rss_of_a_child_that_allocates_100mb():
    code = "b = b'x' * (100 * 2**20)\nimport time; time.sleep(0.3)"
    r = bl.measure([PY, "-c", code], timeout=60)
    assert r.ok, r.stderr
    assert r.peak_rss_mb is not None
    best = r.best_rss_mb()
    assert 90 <= best <= 300, r.to_dict()
    # the kernel's figure is never below the truth (it may sit at this process's RSS: the floor)
    assert r.peak_rss_mb >= 90
    # the poller saw it too
    assert r.polled_peak_rss_mb is None or 60 <= r.polled_peak_rss_mb <= 300


def test_small_child_is_flagged_when_it_sits_at_the_floor():
    r = bl.measure([PY, "-c", "pass"], timeout=60)
    assert r.ok
    assert r.rss_floor_mb > 0
    # a tiny child either measures small or is flagged as reading the harness's own RSS
    assert r.peak_rss_mb <= max(60.0, r.rss_floor_mb * 1.10 + 8)
    assert r.best_rss_mb() < 60  # the figure the tables show: small, whatever the parent's size


def test_measure_reports_exit_status_missing_command_and_timeout(tmp_path):
    assert bl.measure([PY, "-c", "import sys; sys.exit(3)"], timeout=30).rc == 3
    missing = bl.measure([str(tmp_path / "no-such-program")], timeout=30)
    assert missing.rc == 127 and not missing.ok and "FileNotFoundError" in missing.stderr
    slow = bl.measure([PY, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert slow.timed_out and not slow.ok and slow.wall_s < 10


def test_measure_captures_output_and_wall_time():
    r = bl.measure([PY, "-c", "import time; time.sleep(0.2); print('{\"a\": 1}')"], timeout=30)
    assert r.ok and r.wall_s >= 0.2
    assert bl.last_json_line(r.stdout) == {"a": 1}
    d = r.to_dict()
    assert set(d) >= {"cmd", "rc", "wall_s", "peak_rss_mb", "rss_floor_mb", "timed_out"}


def test_repeat_startup_takes_the_median():
    rec = bl.repeat_startup([PY, "-c", "pass"], 3)
    assert rec["status"] == "ok" and rec["runs"] == 3
    assert rec["min_s"] <= rec["median_s"] <= rec["max_s"]
    bad = bl.repeat_startup([PY, "-c", "import sys; sys.exit(2)"], 2)
    assert bad["status"] == "failed" and bad["rcs"] == [2, 2]


# ---------------------------------------------------------------------------- parsing


def test_last_json_line_takes_the_last_object():
    text = "log line\n{\"x\": 1}\nmore\n{\"x\": 2}\n"
    assert bl.last_json_line(text) == {"x": 2}
    assert bl.last_json_line("nothing here") is None
    assert bl.last_json_line(json.dumps({"a": {"b": 1}}, indent=2)) == {"a": {"b": 1}}


@pytest.mark.parametrize(
    "summary, ticks, fills",
    [
        ({"ticks": 400, "fills": 12}, 400, 12),
        ({"ticks_processed": 400, "buy_fills": 7, "sell_fills": 5}, 400, 12),
        ({"ticks": 400, "fills": {"buy": 7, "sell": 5}}, 400, 12),
        ({"counts": {"ticks": 400, "fills": 3}}, 400, 3),
        ({}, None, None),
        (None, None, None),
    ],
)
def test_parse_summary_tolerates_layouts(summary, ticks, fills):
    p = bl.parse_summary(summary)
    assert p["ticks"] == ticks and p["fills"] == fills


def test_count_data_lines(tmp_path):
    f = tmp_path / "fills.csv"
    f.write_text("time,side\n1,BUY\n2,SELL\n")
    assert bl.count_data_lines(f) == 2
    f.write_text("time,side\n1,BUY\n2,SELL")  # no final newline
    assert bl.count_data_lines(f) == 2
    f.write_text("time,side\n")
    assert bl.count_data_lines(f) == 0
    assert bl.count_data_lines(tmp_path / "absent.csv") is None


def test_find_stat_flattens_latency_json():
    stats = bl.find_stat({"tick_to_order": {"p50_us": 12.5, "p99_us": 40, "max_us": 90, "n": 1000}},
                         ("p50", "p99", "max"))
    assert stats == {"tick_to_order.p50_us": 12.5, "tick_to_order.p99_us": 40, "tick_to_order.max_us": 90}


def test_fit_cost_per_fill():
    fit = bl.fit_cost_per_fill([(1000, 2.0), (3000, 4.0)])
    assert fit["per_fill_us"] == pytest.approx(1000.0)
    assert fit["base_s"] == pytest.approx(1.0)
    assert bl.fit_cost_per_fill([(1000, 2.0)]) is None


def test_nearest_version():
    assert bl.nearest_version("1.2.0", ["1.1.0", "1.2.0", "1.3.0"]) == "1.2.0"
    assert bl.nearest_version("1.2.0", ["1.1.0", "1.3.0"]) == "1.1.0"
    assert bl.nearest_version("0.6.6", ["0.7.0", "1.0"]) == "0.7.0"
    assert bl.nearest_version("1.0", []) is None


# ---------------------------------------------------------------------------- bothost run, faked


FAKE_BOTHOST = """
import json, sys, pathlib
args = sys.argv[1:]
if args[0] != "backtest":
    sys.exit(2)
out = pathlib.Path(args[args.index("--out") + 1])
out.mkdir(parents=True)
(out / "summary.json").write_text(json.dumps({"ticks": 400, "buy_fills": 2, "sell_fills": 1}))
(out / "fills.csv").write_text("time,symbol,side\\n1,TQQQ,BUY\\n2,TQQQ,BUY\\n3,TQQQ,SELL\\n")
"""


def test_run_bothost_backtest_reads_summary_and_fills(tmp_path, monkeypatch):
    fake = tmp_path / "fake_bothost.py"
    fake.write_text(FAKE_BOTHOST)
    monkeypatch.setattr(bl, "bothost_exe", lambda: [PY, str(fake)])
    data = tmp_path / "bars.csv"
    data.write_text("timestamp,open,high,low,close\n")
    rec = bl.run_bothost_backtest(data, config=tmp_path / "c.yaml", bars=100, timeout=60)
    assert rec["status"] == "ok", rec
    assert rec["ticks"] == 400 and rec["fills"] == 3 and rec["buys"] == 2 and rec["sells"] == 1
    assert rec["ticks_per_s"] > 0 and rec["bars_per_s"] > 0
    assert rec["notes"] == [] or all("floor" in n for n in rec["notes"])


def test_run_bothost_backtest_reports_a_missing_command(tmp_path, monkeypatch):
    monkeypatch.setattr(bl, "bothost_exe", lambda: [PY, "-c", "import sys; sys.exit('No such command backtest')"])
    rec = bl.run_bothost_backtest(tmp_path / "bars.csv", bars=100, timeout=60)
    assert rec["status"] == "failed" and "No such command" in rec["error"]


# ---------------------------------------------------------------------------- rendering


def _fake_results():
    return {
        "bothost": [
            {"system": "bothost", "bars": 1_000_000, "status": "ok", "wall_s": 5.0, "ticks": 4_000_000,
             "ticks_per_s": 800_000.0, "bars_per_s": 200_000.0, "rss_mb": 95.0, "fills": 1234, "notes": []},
            {"system": "bothost", "bars": 10_000_000, "status": "failed", "error": "Error: No such command 'backtest'."},
        ],
        "peers": [
            {"system": "vectorbt", "version": "1.2.0", "mode": "warm", "bars": 1_000_000, "status": "ok",
             "wall_s": 10.0, "rss_mb": 500.0, "fills": 1200, "internal": {"import_s": 3.0, "total_s": 9.0}},
        ],
        "peer_envs": [{"package": "vectorbt", "pin": "1.2.0", "version": "1.2.0", "note": None}],
        "startup": [{"label": "bothost --help", "runs": 10, "status": "ok", "median_s": 0.3, "min_s": 0.2,
                     "max_s": 0.4, "peak_rss_mb": 40.0}],
        "cost_vs_work": {"runs": [{"vol": 0.2, "bars": 1_000_000, "status": "ok", "wall_s": 4.0, "fills": 100},
                                  {"vol": 1.2, "bars": 1_000_000, "status": "ok", "wall_s": 6.0, "fills": 5000}],
                         "fit": {"base_s": 3.9, "per_fill_us": 400.0, "points": 2}},
        "latency": {"status": "absent"},
    }


def test_render_shows_every_section():
    from rich.console import Console

    con = Console(record=True, width=220, file=io.StringIO())
    for r in bl.render(_fake_results()):
        con.print(r)
    text = con.export_text()
    for needle in ("1. bothost backtest", "800,000", "No such command", "2. peers", "2.00×", "warm",
                   "bar granularity", "3. start-up", "0.300", "4. cost against work", "400.0 µs",
                   "latency", "absent"):
        assert needle in text, needle


def test_render_flags_a_fit_without_spread_in_fills():
    from rich.console import Console

    res = {"cost_vs_work": {"runs": [{"vol": 0.2, "status": "ok", "wall_s": 4.2, "fills": 4000},
                                     {"vol": 1.2, "status": "ok", "wall_s": 3.9, "fills": 6300}],
                            "fit": {"base_s": 4.9, "per_fill_us": -150.0, "points": 2}}}
    con = Console(record=True, width=250, file=io.StringIO())
    for r in bl.render(res):
        con.print(r)
    assert "not meaningful" in con.export_text()


def test_write_json_is_atomic_and_round_trips(tmp_path):
    out = tmp_path / "results" / "latest.json"
    bl.write_json(_fake_results(), out)
    assert json.loads(out.read_text())["bothost"][0]["fills"] == 1234
    assert not list(out.parent.glob("*.tmp"))


def test_run_py_smoke_arguments():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bothost_bench_run", BENCH / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    a = run.parse_args(["--smoke"])
    assert a.sizes == [100_000] and not a.peers
    assert "peers" not in a.sections and "work" not in a.sections and a.startup_runs == 3
    a = run.parse_args(["--sizes", "1000,2000", "--no-peers"])
    assert a.sizes == [1000, 2000] and "peers" not in a.sections and a.startup_runs == 10


# ---------------------------------------------------------------------------- data and grid


def test_local_gbm_writer(tmp_path):
    import synth_gbm

    out = synth_gbm.write_gbm_csv(tmp_path / "b.csv", 1000, seed=1, vol=0.6)
    lines = out.read_text().splitlines()
    assert lines[0] == "timestamp,open,high,low,close,volume"
    assert len(lines) == 1001
    assert lines[1].startswith("2015-01-02T09:30:00-05:00,50.0000,")
    rows = [ln.split(",") for ln in lines[1:]]
    assert all(float(h) >= float(lo) for _, _, h, lo, _, _ in rows)
    assert rows[390][0].startswith("2015-01-05T09:30:00-05:00")  # next weekday's open
    again = synth_gbm.write_gbm_csv(tmp_path / "c.csv", 1000, seed=1, vol=0.6)
    assert again.read_bytes() == out.read_bytes()


def test_dataset_generation_falls_back_to_local(tmp_path):
    ds = bl.generate_dataset(500, seed=3, vol=0.6, generator="local", data_dir=tmp_path)
    assert ds["status"] == "generated" and ds["generator"] == "local"
    assert bl.count_data_lines(Path(ds["path"])) == 500
    again = bl.generate_dataset(500, seed=3, vol=0.6, generator="local", data_dir=tmp_path)
    assert again["status"] == "cached" and again["path"] == ds["path"]


def test_grid_common_prices_and_lots():
    assert gc.trigger_chain(100.0, 4) == [100.0, 99.0, 98.01, 97.03]
    assert gc.round2(1.005) == 1.01 and gc.round2(2.675) == 2.68
    lots = gc.load_lots(REPO / "configs" / "tqqq_lots.csv")
    assert len(lots) == 88 and sum(lots) == 1478
    assert gc.commission(94) == 1.0 and gc.commission(400) == 2.0


def test_find_option_matches_whole_names_only():
    help_text = "  --out PATH\n  --volatility FLOAT  annualised\n  --seed INTEGER\n"
    assert bl.find_option(help_text, ("--vol", "--volatility")) == "--volatility"
    assert bl.find_option(help_text, ("--sigma",)) is None
