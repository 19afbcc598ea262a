"""``bothost sweep``: the --param grammar (properties), then sweeps through a real Dask
scheduler and two workers started here on 127.0.0.1 (``python -m dask scheduler``/``worker``,
random ports, one thread each, no dashboard): a row equals `bothost backtest` of its values,
the table is the same on a LocalCluster of one worker, a worker SIGKILLed mid-sweep loses and
doubles nothing, an interrupted sweep resumes with only the missing cells, and bad input is
exit 2 (or 4 for a scheduler that does not answer) before any cell runs.

Data: two files of 3,000 synthetic range-bound bars; 12 cells of a fraction of a second each.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, strategies as st

from bothost.sweep.grammar import GrammarError, fmt_decimal, parse_param, parse_values

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "configs" / "tqqq-paper.yaml"
PNG = b"\x89PNG\r\n\x1a\n"
PARAMS = ("--param", "strategies.0.profit_target=0.5%:1.5%:0.5%", "--param", "strategies.0.buy_step=0.5%,1%")
CELLS = 12  # 3 x 2 values x 2 data files
MONEY = ("realized_pnl", "fees", "unrealized_pnl", "total_pnl", "lowest_equity", "max_drawdown",
         "peak_capital_committed")


def env() -> dict:
    return {**os.environ, "COLUMNS": "200"}


def bothost(cwd: Path, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bothost", *map(str, args)], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def sweep_popen(cwd: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bothost", "sweep", str(PAPER), *map(str, args)], cwd=cwd,
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def table(out: Path):
    import pandas as pd

    return pd.read_parquet(out / "sweep.parquet")


def same_table(a, b) -> None:
    """Equal in everything but the time each cell took."""
    import pandas as pd

    pd.testing.assert_frame_equal(a.drop(columns=["wall_time_s"]), b.drop(columns=["wall_time_s"]))


# --- the grammar -----------------------------------------------------------------------------

def test_ranges_lists_and_their_mix():
    p = parse_param("strategies.0.profit_target=0.5%:2%:0.25%")
    assert p.path == "strategies.0.profit_target"
    assert p.values == ("0.5%", "0.75%", "1%", "1.25%", "1.5%", "1.75%", "2%")
    assert p.override(2) == "strategies.0.profit_target=1%"
    assert parse_values("0.5%,1%,1.5%") == ("0.5%", "1%", "1.5%")
    assert parse_values("1%:2%:0.5%, 3%") == ("1%", "1.5%", "2%", "3%")
    assert parse_values("2:6:2") == ("2", "4", "6")
    assert parse_values("30s:90s:30s") == ("30s", "60s", "90s")
    assert parse_values("0.1%:0.35%:0.1%") == ("0.1%", "0.2%", "0.3%")  # the stop need not be on the grid
    assert parse_values("1%:1%:1%") == ("1%",)
    assert parse_values("limit_if_touched,limit") == ("limit_if_touched", "limit")
    assert parse_values("'09:30','10:00'") == ("'09:30'", "'10:00'")  # quoted: kept whole, for --set


@pytest.mark.parametrize("text, says", [
    ("strategies.0.profit_target", "no '='"),
    ("=1%", "key path before '=' is empty"),
    ("strategies..x=1%", "odd component"),
    ("x=", "no values"),
    ("x=1%,,2%", "empty value"),
    ("x=2%:1%:0.5%", "no values"),
    ("x=1%:2%", "has 2 parts"),
    ("x=1%:2%:0.5%:1%", "has 4 parts"),
    ("x=1%:2%:0%", "above zero"),
    ("x=1%:2%:-1%", "above zero"),
    ("x=1%:2s:1%", "mixes units"),
    ("x=a:b:c", "not a number"),
    ("x=1%,1.0%", "listed twice"),
    ("x='1%", "not closed"),
    ("x=0%:100%:0.001%", "more than 10,000"),
])
def test_bad_params_say_why(text, says):
    with pytest.raises(GrammarError) as caught:
        parse_param(text)
    assert says in caught.value.message
    assert caught.value.hint


decimals = st.builds(lambda n, k: Decimal(n).scaleb(-k), st.integers(-100_000, 100_000), st.integers(0, 3))
steps = st.builds(lambda n, k: Decimal(n).scaleb(-k), st.integers(1, 10_000), st.integers(0, 3))


@given(start=decimals, step=steps, n=st.integers(0, 60), extra=st.integers(0, 99),
       unit=st.sampled_from(["", "%", "s", "ms", "m"]))
def test_a_range_is_exact_and_includes_its_stop(start, step, n, extra, unit):
    stop = start + n * step + step * extra / 100  # on the grid when extra == 0, else between two points
    text = f"{fmt_decimal(start)}{unit}:{fmt_decimal(stop)}{unit}:{fmt_decimal(step)}{unit}"
    values = parse_values(text)
    assert len(values) == n + 1
    numbers = [Decimal(v[: len(v) - len(unit)]) for v in values]
    assert numbers == [start + i * step for i in range(n + 1)]  # exact decimal arithmetic, never float
    assert numbers[-1] <= stop < numbers[-1] + step
    for v in values:
        assert v.endswith(unit) and "E" not in v.upper().replace(unit.upper(), "")
        body = v[: len(v) - len(unit)]
        assert not ("." in body and body.endswith("0")), v  # 0.75, not 0.750


@given(st.lists(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.%]{0,8}", fullmatch=True), min_size=1, max_size=8, unique=True))
def test_a_list_is_its_items_in_order(items):
    assert parse_values(",".join(items)) == tuple(items)
    assert parse_param("strategies.0.entry_order=" + " , ".join(items)).values == tuple(items)


@given(st.text(max_size=40))
def test_any_text_is_a_param_or_a_grammar_error(text):
    try:
        p = parse_param(text)
    except GrammarError as exc:
        assert exc.message
    else:
        assert p.values and all(v.strip() == v and v for v in p.values)
        assert len(set(p.values)) == len(p.values)


# --- a real Dask scheduler and workers -------------------------------------------------------

def _start_worker(address: str, root: Path, name: str) -> subprocess.Popen:
    (root / name).mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1", "--no-dashboard", "--no-nanny",
         "--host", "127.0.0.1", "--name", name, "--local-directory", str(root / name), "--death-timeout", "60"],
        cwd=root, stdout=open(root / f"{name}.log", "w"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    from distributed import Client

    root = tmp_path_factory.mktemp("dask")
    info = root / "scheduler.json"
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(info), "--idle-timeout", "600s"],
        cwd=root, stdout=open(root / "scheduler.log", "w"), stderr=subprocess.STDOUT)
    procs = [scheduler]
    client = None
    try:
        deadline = time.monotonic() + 60
        while not info.exists() or not info.read_text().strip():
            assert scheduler.poll() is None and time.monotonic() < deadline, (root / "scheduler.log").read_text()
            time.sleep(0.05)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        workers = [_start_worker(address, root, name) for name in ("w1", "w2")]
        procs += workers
        client = Client(address, timeout=30, set_as_default=False)
        client.wait_for_workers(2, timeout=60)
        yield SimpleNamespace(address=address, client=client, root=root, workers=workers, procs=procs)
    finally:
        if client is not None:
            client.close()
        for p in procs:  # only the processes this fixture started, by their own handles
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sweepdata") / "data"
    folder.mkdir()
    for name, seed in (("a.csv", 3), ("b.csv", 4)):
        r = bothost(folder, "data", "synth", "--bars", 3000, "--seed", seed, "--band", "30,80", "--out", folder / name)
        assert r.returncode == 0, r.stderr
    return folder


@pytest.fixture(scope="module")
def reference(dask_cluster, data, tmp_path_factory):
    """The sweep through the scheduler and its two workers."""
    cwd = tmp_path_factory.mktemp("sweep-ref")
    out = cwd / "out"
    r = bothost(cwd, "sweep", PAPER, "--data", data, *PARAMS, "--scheduler", dask_cluster.address, "--out", out,
                "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    return SimpleNamespace(out=out, result=r, table=table(out))


def test_sweep_through_a_dask_scheduler(reference, dask_cluster, data):
    t = reference.table
    assert len(t) == CELLS
    assert list(t.columns) == ["strategies.0.profit_target", "strategies.0.buy_step", "data", "status", "fills",
                               "round_trips", "realized_pnl", "fees", "net_realized_pnl", "unrealized_pnl",
                               "total_pnl", "lowest_equity", "max_drawdown", "peak_capital_committed",
                               "wall_time_s", "error", "cell"]
    # the plan's order: data file, then each parameter's values as given
    assert list(t["data"]) == [str(data / "a.csv")] * 6 + [str(data / "b.csv")] * 6
    assert list(t["strategies.0.profit_target"][:6]) == ["0.5%", "0.5%", "1%", "1%", "1.5%", "1.5%"]
    assert list(t["strategies.0.buy_step"][:6]) == ["0.5%", "1%"] * 3
    assert set(t["status"]) == {"done"} and t["error"].isna().all()
    assert (t["fills"] > 0).all() and (t["wall_time_s"] > 0).all()
    assert t["cell"].is_unique
    for col in MONEY:
        assert all(round(v, 2) == v for v in t[col])
    assert (t["total_pnl"] - (t["realized_pnl"] - t["fees"] + t["unrealized_pnl"])).abs().max() < 0.011
    assert t["fills"].nunique() > 3  # the values reached the strategy
    heatmap = reference.out / "heatmap-strategies.0.profit_target--strategies.0.buy_step.png"
    assert heatmap.read_bytes()[:8] == PNG
    assert len(list((reference.out / "cells").glob("*.json"))) == CELLS
    text = reference.result.stdout
    assert f"{CELLS} cells ({CELLS} run now on 2 workers, 0 from earlier results, 0 failed)" in text
    assert "best 10 of 12 cells by total_pnl" in text
    # every cell ran on one of the two dask workers started above
    pids = {json.loads(p.read_text())["worker"].rsplit(":", 1)[1] for p in (reference.out / "cells").glob("*.json")}
    assert pids == {str(w.pid) for w in dask_cluster.workers}


def test_a_row_is_the_backtest_of_its_values(reference, data, tmp_path):
    row = reference.table.iloc[8]  # b.csv, profit_target 1%, buy_step 0.5%
    assert (row["data"], row["strategies.0.profit_target"], row["strategies.0.buy_step"]) == (
        str(data / "b.csv"), "1%", "0.5%")
    r = bothost(tmp_path, "backtest", PAPER, "--data", data / "b.csv", "--set", "strategies.0.profit_target=1%",
                "--set", "strategies.0.buy_step=0.5%", "--out", tmp_path / "bt", "--no-progress")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "bt" / "summary.json").read_text())
    cell = json.loads((reference.out / "cells" / f"{row['cell']}.json").read_text())
    assert cell["fills"] == summary["fills"] == row["fills"]
    assert cell["round_trips"] == summary["round_trips"] == row["round_trips"]
    for col in MONEY:
        assert cell[col] == summary[col], col  # the exact decimal strings
        assert row[col] == float(summary[col]), col


def test_a_local_cluster_gives_the_same_table(reference, data, tmp_path):
    # one worker, one of the two files: the same rows as the two workers' sweep of the folder
    r = bothost(tmp_path, "sweep", PAPER, "--data", data / "a.csv", *PARAMS, "--workers", 1,
                "--out", tmp_path / "local", "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"({CELLS // 2} run now on 1 worker," in r.stdout
    same_table(table(tmp_path / "local"), reference.table.iloc[: CELLS // 2])


def _wait(predicate, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_worker_killed_mid_sweep_loses_and_doubles_nothing(dask_cluster, reference, data, tmp_path):
    client = dask_cluster.client
    victim = _start_worker(dask_cluster.address, dask_cluster.root, "victim")
    dask_cluster.procs.append(victim)
    client.wait_for_workers(3, timeout=60)
    address = next(a for a, w in client.scheduler_info(n_workers=-1)["workers"].items() if w["name"] == "victim")
    out = tmp_path / "out"
    sweep = sweep_popen(tmp_path, "--data", data, *PARAMS, "--scheduler", dask_cluster.address, "--out", out,
                        "--no-progress")
    busy: list = []

    def victim_busy() -> bool:
        assert sweep.poll() is None, sweep.communicate()
        busy[:] = client.processing(workers=[address]).get(address, [])
        return bool(busy)

    _wait(victim_busy, "the victim worker to get a cell")
    os.kill(victim.pid, signal.SIGKILL)  # mid-cell: it holds a task the scheduler gave it
    victim.wait(timeout=10)
    stdout, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 0, stdout + stderr
    assert f"{CELLS} cells ({CELLS} run now" in stdout and "0 failed" in stdout
    t = table(out)
    same_table(t, reference.table)  # nothing lost, nothing doubled, the same figures
    kept = list((out / "cells").glob("*.json"))
    assert len(kept) == CELLS and {p.stem for p in kept} == set(t["cell"])
    # the cells the victim held were run again, by a survivor
    survivors = {str(w.pid) for w in dask_cluster.workers}
    for key in busy:
        cell = next(k for k in t["cell"] if key.startswith(f"bothost-cell-{k[:24]}-"))
        assert json.loads((out / "cells" / f"{cell}.json").read_text())["worker"].rsplit(":", 1)[1] in survivors


def test_an_interrupted_sweep_runs_only_the_missing_cells(dask_cluster, reference, data, tmp_path):
    out = tmp_path / "out"
    sweep = sweep_popen(tmp_path, "--data", data, *PARAMS, "--scheduler", dask_cluster.address, "--out", out,
                        "--no-progress")
    _wait(lambda: sweep.poll() is None and any((out / "cells").glob("*.json")), "a first finished cell")
    sweep.send_signal(signal.SIGINT)
    stdout, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, stdout + stderr
    kept = sorted((out / "cells").glob("*.json"))
    assert f"interrupted: {len(kept)} of {CELLS} cells are kept" in stderr
    assert 0 < len(kept) < CELLS
    assert not (out / "sweep.parquet").exists()
    # a cell file cut short (a kill mid-write cannot make one: they are renamed into place) counts as missing
    kept[0].write_text('{"key": ')
    untouched = {p: p.stat().st_mtime_ns for p in kept[1:]}
    r = bothost(tmp_path, "sweep", PAPER, "--data", data, *PARAMS, "--scheduler", dask_cluster.address,
                "--out", out, "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    again = CELLS - len(kept) + 1
    assert f"{CELLS} cells ({again} run now on 2 workers, {len(kept) - 1} from earlier results, 0 failed)" in r.stdout
    assert all(p.stat().st_mtime_ns == m for p, m in untouched.items())
    same_table(table(out), reference.table)
    # and once more: nothing left to run, so no scheduler is needed (this one is not there)
    from click.testing import CliRunner

    from bothost.cli import cli

    result = CliRunner().invoke(cli, ["sweep", str(PAPER), "--data", str(data), *PARAMS, "--scheduler",
                                      "tcp://127.0.0.1:9", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0 and f"(0 run now, {CELLS} from earlier results" in result.output, result.output
    same_table(table(out), reference.table)


# --- bad input: before any cell runs ---------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (("--param", "strategies.0.profit_targt=0.5%:1%:0.5%"), "unknown key 'profit_targt'"),
    (("--param", "strategies.0.profit_target=0.5%,abc"), "--param strategies.0.profit_target=abc"),
    (("--param", "strategies.4.profit_target=1%"), "past its end"),
    (("--param", "strategies.0.profit_target=2%:1%:0.5%"), "has no values"),
    (("--param", "strategies.0.profit_target=1%:2%"), "has 2 parts"),
    (("--param", "strategies.0.profit_target=1%:2s:1%"), "mixes units"),
    (("--param", "x=1", "--param", "x=2"), "given twice"),
    (("--param", "strategies.0.buy_step=1%", "--set", "strategies.0.buy_step=2%"), "both --set and --param"),
    (("--param", "strategies.0.buy_step=1%", "--workers", "2", "--scheduler", "tcp://127.0.0.1:9"), "--workers"),
    (("--param", "strategies.0.buy_step=1%", "--scheduler", "127.0.0.1"), "missing port number"),
])
def test_bad_input_is_exit_2_before_any_cell(args, says, data, tmp_path):
    from click.testing import CliRunner

    from bothost.cli import cli

    result = CliRunner().invoke(cli, ["sweep", str(PAPER), "--data", str(data), "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "cells").exists()


@pytest.mark.parametrize("name, says", [("missing.csv", "no such file"), ("empty", "holds no"),
                                         ("bad.csv", "bad.csv")])
def test_a_bad_data_file_is_exit_2(name, says, tmp_path):
    from click.testing import CliRunner

    from bothost.cli import cli

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello\n")
    (tmp_path / "bad.csv").write_text("when,what\n1,2\n")
    result = CliRunner().invoke(cli, ["sweep", str(PAPER), "--data", str(tmp_path / name), "--param",
                                      "strategies.0.buy_step=1%,2%", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "cells").exists()


def test_a_scheduler_that_does_not_answer_is_exit_4(data, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    r = bothost(tmp_path, "sweep", PAPER, "--data", data, "--param", "strategies.0.buy_step=1%,2%",
                "--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "2", "--out", tmp_path / "out")
    assert r.returncode == 4, r.stdout + r.stderr
    assert f"the Dask scheduler at tcp://127.0.0.1:{port} did not answer within 2 s" in r.stderr
    assert "Traceback" not in r.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "out" / "cells").exists()


def test_a_cell_folder_left_by_a_dead_worker_is_cleared(tmp_path, monkeypatch):
    from bothost.sweep.cell import CELL_PREFIX, clear_dead_cells, scratch_dir

    monkeypatch.setenv("BOTHOST_SWEEP_TMP", str(tmp_path))
    assert scratch_dir() == str(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f"{CELL_PREFIX}{dead.pid}-x1").mkdir()
    (tmp_path / f"{CELL_PREFIX}{dead.pid}-x1" / "venue.sqlite").write_bytes(b"x")
    (tmp_path / f"{CELL_PREFIX}{os.getpid()}-x2").mkdir()
    assert clear_dead_cells() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{CELL_PREFIX}{os.getpid()}-x2"]
