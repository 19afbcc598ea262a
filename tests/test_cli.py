"""End to end: the ``bothost`` command as a user runs it, in a real subprocess.

Every command runs with its working directory in a temporary folder, so state folders and
outputs never land in the repository. Data is small (a few thousand synthetic bars, or a CSV
of a few hundred rows written here) so that each test takes a few seconds at most, except the
SIGINT test, which needs a run long enough to be interrupted.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PAPER = CONFIGS / "tqqq-paper.yaml"
LIVE = CONFIGS / "tqqq.yaml"
FILLS_HEADER = "time,symbol,side,level,quantity,price,commission,order_id,order_ref"
SUMMARY_KEYS = {"ticks", "fills", "bad_rows_skipped", "realized_pnl", "fees", "open_lots",
                "peak_capital_committed", "max_drawdown", "wall_time_s", "ticks_per_second"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BARS = 3000  # synthetic bars for the paper runs: 12,000 ticks, a hundred-odd fills
SECRETS = {"ALPACA_API_KEY": "AKSECRET123", "ALPACA_SECRET_KEY": "verysecret"}


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def bothost(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bothost", *map(str, args)], cwd=cwd,
                          env=env or base_env(), capture_output=True, text=True, timeout=timeout)


def output(r: subprocess.CompletedProcess) -> str:
    return r.stdout + r.stderr


def assert_bad_input(r: subprocess.CompletedProcess) -> str:
    text = output(r)
    assert r.returncode == 2, text
    assert "Traceback" not in text, text
    return text


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------- basics


def test_help_lists_the_commands(tmp_path):
    r = bothost(tmp_path, "--help")
    assert r.returncode == 0, output(r)
    for command in ("run", "backtest", "validate", "status", "plugins", "config", "data"):
        assert re.search(rf"^\s+{command}\s", r.stdout, re.M), r.stdout
    assert "Exit statuses" in r.stdout


def test_version(tmp_path):
    r = bothost(tmp_path, "--version")
    assert r.returncode == 0, output(r)
    assert r.stdout.strip() == "bothost, version 0.1.0"


def test_plugins_lists_the_builtins(tmp_path):
    r = bothost(tmp_path, "plugins")
    assert r.returncode == 0, output(r)
    for kind, name in (("broker", "sim_broker"), ("feed", "replay_feed"), ("strategy", "tqqq_grid"),
                       ("notifier", "bell"), ("notifier", "apprise")):
        assert re.search(rf"│ {kind}\s+│ {name}\s+│ bothost\s+│ 0\.1\.0\s+│", r.stdout), r.stdout


# ----------------------------------------------------------------------------- validate / config show


def test_validate_the_paper_config(tmp_path):
    r = bothost(tmp_path, "validate", PAPER)
    assert r.returncode == 0, output(r)
    assert "ok" in r.stdout and "sim_broker" in r.stdout and "tqqq_grid" in r.stdout
    assert list(tmp_path.iterdir()) == []  # validating writes nothing


def test_validate_the_live_config_without_its_env_vars_names_the_missing_variable(tmp_path):
    # The ${ALPACA_API_KEY} substitution fails while loading, before any plugin is looked up.
    r = bothost(tmp_path, "validate", LIVE)
    text = assert_bad_input(r)
    assert "tqqq.yaml" in text
    assert "ALPACA_API_KEY" in text and "not set" in text


def test_validate_the_live_config_with_its_secrets(tmp_path):
    r = bothost(tmp_path, "validate", LIVE, env=base_env(**SECRETS))
    assert r.returncode == 0, output(r)
    assert "broker ib_broker, feed alpaca_feed" in r.stdout
    assert "AKSECRET123" not in output(r) and "verysecret" not in output(r)


def test_the_live_config_validates_with_the_ib_feed(tmp_path):
    r = bothost(tmp_path, "validate", LIVE, "--set", "feed={use: ib_feed}", env=base_env(**SECRETS))
    assert r.returncode == 0, output(r)
    assert "broker ib_broker, feed ib_feed" in r.stdout


def test_a_live_port_without_mode_live_is_refused_before_anything_is_sent(tmp_path):
    """S2: 7496 (TWS live) without `mode: live` is bad input, found before any connection."""
    import socket

    listener = socket.socket()
    for port in (7496, 4001):  # TWS live, Gateway live: listen there, as TWS would
        try:
            listener.bind(("127.0.0.1", port))
            break
        except OSError:
            continue
    else:
        raise AssertionError("neither live port is free on 127.0.0.1 for this test")
    with listener:
        listener.listen()
        listener.settimeout(0.5)
        r = bothost(tmp_path, "run", LIVE, "--set", "feed={use: ib_feed}", "--set", f"broker.port={port}",
                    env=base_env(**SECRETS))
        text = assert_bad_input(r)
        assert "LIVE account" in text and "mode: live" in text
        with pytest.raises(socket.timeout):
            listener.accept()


def test_config_show_masks_secrets(tmp_path):
    r = bothost(tmp_path, "config", "show", LIVE, env=base_env(**SECRETS))
    assert r.returncode == 0, output(r)
    assert "AKSECRET123" not in output(r) and "verysecret" not in output(r)
    assert re.search(r"^\s+key: '\*\*\*'$", r.stdout, re.M), r.stdout
    assert re.search(r"^\s+secret: '\*\*\*'$", r.stdout, re.M), r.stdout
    # what is not a secret is shown as it is
    assert "use: ib_broker" in r.stdout and "client_id: 101" in r.stdout and "port: 7497" in r.stdout


def test_config_show_of_the_paper_config_swaps_the_whole_broker_section(tmp_path):
    # No ALPACA_* in the environment: the paper config replaces the feed that needs them.
    r = bothost(tmp_path, "config", "show", PAPER)
    assert r.returncode == 0, output(r)
    assert "use: sim_broker" in r.stdout and "use: replay_feed" in r.stdout
    for gone in ("client_id", "ib_broker", "7497", "alpaca_feed", "key:", "extends"):
        assert gone not in r.stdout, r.stdout
    assert "symbol: TQQQ" in r.stdout  # the strategies come from the base file


@pytest.mark.parametrize("command", [("validate",), ("config", "show"), ("run",)])
def test_a_bad_set_is_bad_input_mentioning_set(tmp_path, command):
    r = bothost(tmp_path, *command, PAPER, "--set", "nonsense")
    text = assert_bad_input(r)
    assert "--set" in text and "nonsense" in text
    assert not (tmp_path / "state").exists()


# ----------------------------------------------------------------------------- a paper run


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    """One paper run, `bothost status` after it, then the same command again (a resume of a
    finished run). Everything is captured as it was at each step."""
    cwd = tmp_path_factory.mktemp("paper")
    cmd = ("run", PAPER, "--state", "S", "--out", "O", "--set", f"feed.synthetic.bars={BARS}")
    out, state = cwd / "O", cwd / "S"
    res = {"cwd": cwd}
    res["status_before"] = bothost(cwd, "status", PAPER, "--state", "S")
    res["first"] = bothost(cwd, *cmd)
    res["fills_bytes"] = (out / "fills.csv").read_bytes() if (out / "fills.csv").exists() else None
    res["summary"] = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    res["status"] = bothost(cwd, "status", PAPER, "--state", "S")
    res["second"] = bothost(cwd, *cmd)
    res["status_after_resume"] = bothost(cwd, "status", PAPER, "--state", "S")
    res["out"], res["state"] = out, state
    return res


def test_run_exits_0_and_prints_a_summary_table(paper):
    r = paper["first"]
    assert r.returncode == 0, output(r)
    assert "Traceback" not in output(r)
    s = paper["summary"]
    m = re.search(r"│ fills\s+│\s+(\d+) │", r.stdout)
    assert m, r.stdout
    assert int(m.group(1)) == s["fills"] > 0
    assert re.search(rf"│ ticks\s+│\s+{4 * BARS} │", r.stdout), r.stdout


def test_run_writes_fills_csv(paper):
    assert paper["first"].returncode == 0, output(paper["first"])
    lines = paper["fills_bytes"].decode().splitlines()
    assert lines[0] == FILLS_HEADER
    rows = list(csv.DictReader(lines))
    assert len(rows) == paper["summary"]["fills"]
    assert {r["side"] for r in rows} == {"BUY", "SELL"}
    assert {r["symbol"] for r in rows} == {"TQQQ"}
    assert all(r["order_ref"].startswith("tqqq_grid:") and r["level"].isdigit() for r in rows)


def test_run_writes_summary_json(paper):
    s = paper["summary"]
    assert s is not None, output(paper["first"])
    assert SUMMARY_KEYS <= set(s), sorted(SUMMARY_KEYS - set(s))
    assert s["status"] == "done"
    assert s["ticks"] == 4 * BARS
    assert s["bad_rows_skipped"] == 0
    assert s["fills"] == s["buy_fills"] + s["sell_fills"] > 0


def test_run_draws_equity_png(paper):
    assert paper["first"].returncode == 0, output(paper["first"])
    png = paper["out"] / "equity.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert png.stat().st_size > 1000


def test_run_keeps_its_state_private(paper):
    assert paper["first"].returncode == 0, output(paper["first"])
    state = paper["state"]
    assert mode(state) == 0o700
    for name in ("bot_log.txt", "bot_state.json"):
        assert (state / name).exists(), name
        assert mode(state / name) == 0o600, (name, oct(mode(state / name)))
    assert "run starting" in (state / "bot_log.txt").read_text()
    assert "tqqq_grid" in json.loads((state / "bot_state.json").read_text())["strategies"]


def test_running_a_finished_run_again_resumes_it_and_changes_no_fill(paper):
    r = paper["second"]
    assert r.returncode == 0, output(r)
    assert (paper["out"] / "fills.csv").read_bytes() == paper["fills_bytes"]
    again = json.loads((paper["out"] / "summary.json").read_text())
    # Nothing was left to replay; the summary still describes the whole run, not an empty tail.
    assert again["resumed_after"] is not None and paper["summary"]["resumed_after"] is None
    for key in ("ticks", "orders_placed", "max_drawdown", "peak_capital_committed"):
        assert again[key] == paper["summary"][key], key
    assert again["fills"] == paper["summary"]["fills"]
    assert again["realized_pnl"] == paper["summary"]["realized_pnl"]


def test_status_before_any_run_is_bad_input_with_a_hint(paper):
    r = paper["status_before"]
    text = assert_bad_input(r)
    assert "no run" in text and "hint" in text and "bothost run" in text


def test_status_after_a_run_shows_the_open_lots_and_the_last_reconstruct(paper):
    r = paper["status"]
    assert r.returncode == 0, output(r)
    open_lots = paper["summary"]["open_lots"]
    assert open_lots > 0
    header = next(line for line in r.stdout.splitlines() if "level" in line and "quantity" in line)
    assert "purchase" in header
    assert "reconstruct" in r.stdout and "position check" in r.stdout
    # The resume's reconstruct rebuilt every open lot from the broker, and says so.
    after = paper["status_after_resume"]
    assert after.returncode == 0, output(after)
    lot_lines = re.findall(r"^\s+lot L\d+: \d+ sh bought @", after.stdout, re.M)
    assert len(lot_lines) == open_lots, after.stdout


# ----------------------------------------------------------------------------- backtest on a CSV


def write_bars(path: Path) -> int:
    """~300 one-minute bars that fall 6% and then rise 10%, plus one bad row of each kind.
    Returns the number of bad rows."""
    t0 = dt.datetime(2024, 3, 4, 9, 30)

    def close(i: int) -> float:
        return 50 * (1 - 0.06 * i / 119) if i < 120 else 47 * (1 + 0.10 * (i - 120) / 179)

    def ts(i: int, seconds: int = 0) -> str:
        return (t0 + dt.timedelta(minutes=i, seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")

    good = []
    for i in range(300):
        c, o = close(i), close(max(i - 1, 0))
        good.append(f"{ts(i)},{o:.2f},{max(o, c) + 0.02:.2f},{min(o, c) - 0.02:.2f},{c:.2f},1000")
    bad = {
        50: f"{ts(50, 30)},49.10,49.20,49.00,nan,1000",  # not finite
        80: f"{ts(80, 30)},0,0,0,0,1000",  # zero price
        110: f"{ts(110, 30)},-47.00,-46.90,-47.10,-47.00,1000",  # negative price
        150: f"{ts(150, 30)},47.40,47.30,47.50,47.40,1000",  # crossed: high < low
        200: good[200],  # duplicate timestamp
        250: good[100],  # out of order
    }
    lines = ["timestamp,open,high,low,close,volume"]
    for i, row in enumerate(good):
        lines.append(row)
        if i in bad:
            lines.append(bad[i])
    path.write_text("\n".join(lines) + "\n")
    return len(bad)


def test_backtest_on_a_csv_skips_and_counts_bad_rows(tmp_path):
    data = tmp_path / "bars.csv"
    n_bad = write_bars(data)
    r = bothost(tmp_path, "backtest", PAPER, "--data", data, "--out", "O")
    assert r.returncode == 0, output(r)
    s = json.loads((tmp_path / "O" / "summary.json").read_text())
    assert s["bad_rows_skipped"] == n_bad == 6
    assert s["bad_rows_by_reason"] == {"unparseable": 0, "not_finite": 1, "not_positive": 2,
                                       "high_below_low": 1, "not_after_previous": 2}
    assert s["ticks"] == 4 * 300  # every good bar, none of the bad ones
    assert s["feed"] == str(data)
    rows = csv_rows(tmp_path / "O" / "fills.csv")
    assert len(rows) == s["fills"] > 0
    assert {r["side"] for r in rows} == {"BUY", "SELL"}  # the fall buys, the rise sells
    # the fills are on this file's day and prices, not on synthetic data
    assert all(r["time"].startswith("2024-03-04T") for r in rows), rows
    assert all(46.0 <= float(r["price"]) <= 52.0 for r in rows), rows


def _png(path: Path) -> None:
    path.write_bytes(PNG_SIGNATURE + bytes(range(56)))


def _no_price_columns(path: Path) -> None:
    path.write_text("timestamp,volume\n2024-03-04 09:30:00,100\n2024-03-04 09:31:00,200\n")


@pytest.mark.parametrize("command", ["backtest", "run"])
@pytest.mark.parametrize("make, name, message", [
    (_png, "data.csv", "PNG"),
    (_no_price_columns, "volumes.csv", "no price columns"),
    (None, "missing.csv", "not found"),
], ids=["png", "no-price-columns", "missing"])
def test_a_bad_data_file_is_bad_input_naming_the_file(tmp_path, command, make, name, message):
    data = tmp_path / name
    if make is not None:
        make(data)
    r = bothost(tmp_path, command, PAPER, "--data", data, "--out", "O", "--state", "S")
    text = assert_bad_input(r)
    assert name in text and message in text
    assert not (tmp_path / "O" / "fills.csv").exists()


# ----------------------------------------------------------------------------- a corrupt backup


def test_a_corrupt_bot_state_json_is_bad_input_that_says_how_to_fix_it(tmp_path):
    cmd = ("run", PAPER, "--state", "S", "--out", "O", "--set", "feed.synthetic.bars=2000")
    first = bothost(tmp_path, *cmd)
    assert first.returncode == 0, output(first)
    fills = (tmp_path / "O" / "fills.csv").read_bytes()
    (tmp_path / "S" / "bot_state.json").write_text('{"strategies": {')

    r = bothost(tmp_path, *cmd)
    text = assert_bad_input(r)
    assert "bot_state.json" in text and "not valid JSON" in text
    m = re.search(r"\(mv (\S+) (\S+)\)", text)
    assert m, text

    # Following the hint works: the state is rebuilt from the (simulated) broker.
    os.rename(tmp_path / m.group(1), tmp_path / m.group(2))
    r = bothost(tmp_path, *cmd)
    assert r.returncode == 0, output(r)
    assert (tmp_path / "O" / "fills.csv").read_bytes() == fills
    state = json.loads((tmp_path / "S" / "bot_state.json").read_text())
    assert "tqqq_grid" in state["strategies"]


def test_a_corrupt_bot_state_json_before_any_run_is_bad_input(tmp_path):
    (tmp_path / "S").mkdir(mode=0o700)
    (tmp_path / "S" / "bot_state.json").write_text('{"strategies": {')
    r = bothost(tmp_path, "run", PAPER, "--state", "S", "--out", "O", "--set", "feed.synthetic.bars=2000")
    text = assert_bad_input(r)
    assert "bot_state.json" in text and "mv " in text
    assert not (tmp_path / "O").exists()


# ----------------------------------------------------------------------------- SIGINT


def test_sigint_stops_cleanly_with_130_and_the_same_command_resumes(tmp_path):
    bars = 3_000_000
    cmd = [sys.executable, "-m", "bothost", "run", str(PAPER), "--state", "S", "--out", "O",
           "--set", f"feed.synthetic.bars={bars}"]
    # Its own process group, signalled as a whole: what Ctrl-C in a terminal does.
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=base_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = tmp_path / "S" / "bot_log.txt"
    try:
        deadline = time.monotonic() + 30
        while not (log.exists() and "run starting" in log.read_text()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        time.sleep(1.5)  # well into the replay
        assert proc.poll() is None, "the run ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert (tmp_path / "S" / "bot_state.json").exists()
    first = json.loads((tmp_path / "O" / "summary.json").read_text())
    assert first["status"] == "interrupted"
    assert 0 < first["ticks"] < 4 * bars
    fills_at_stop = (tmp_path / "O" / "fills.csv").read_text()

    r = bothost(tmp_path, "run", PAPER, "--state", "S", "--out", "O", "--set", f"feed.synthetic.bars={bars}")
    assert r.returncode == 0, output(r)
    second = json.loads((tmp_path / "O" / "summary.json").read_text())
    assert second["status"] == "done"
    # it went on where it stopped (no tick replayed twice, none lost); the count covers the whole run
    assert second["resumed_after"] is not None
    assert second["ticks"] == 4 * bars
    fills_now = (tmp_path / "O" / "fills.csv").read_text()
    assert fills_now.startswith(fills_at_stop)
    assert len(fills_now) > len(fills_at_stop)


def test_backtest_of_the_live_config_needs_none_of_its_secrets(tmp_path):
    """`backtest` swaps the live broker and feed for the simulated ones before ${VAR} is read,
    so the IB + Alpaca config backtests with no Alpaca keys in the environment."""
    data = tmp_path / "bars.csv"
    rows = ["timestamp,open,high,low,close"] + [
        f"2024-01-02T{9 + (i // 60):02d}:{i % 60:02d}:00-05:00,{p:.2f},{p + 0.2:.2f},{p - 0.6:.2f},{p - 0.4:.2f}"
        for i, p in enumerate([50 - 0.3 * (i % 10) for i in range(60)])]
    data.write_text("\n".join(rows) + "\n")
    env = {k: v for k, v in base_env().items() if not k.startswith("ALPACA_")}
    r = subprocess.run([sys.executable, "-m", "bothost", "backtest", str(LIVE), "--data", str(data), "--out", "O"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, output(r)
    assert (tmp_path / "O" / "fills.csv").read_text().count("\n") > 2
    r = subprocess.run([sys.executable, "-m", "bothost", "run", str(LIVE)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "ALPACA_API_KEY" in r.stderr  # a live run still needs them


def test_data_synth_refuses_bars_past_2262_and_a_zero_interval_as_bad_input(tmp_path):
    # 100,000 daily bars from 2024 overflow the nanosecond clock: it was an internal error (exit 1)
    from click.testing import CliRunner

    from bothost.cli import cli

    out = tmp_path / "d.csv"
    res = CliRunner().invoke(cli, ["data", "synth", "--out", str(out), "--bars", "100000", "--interval", "86400"])
    assert res.exit_code == 2 and "past the year 2262" in res.output and not out.exists()
    res = CliRunner().invoke(cli, ["data", "synth", "--out", str(out), "--bars", "10", "--interval", "0"])
    assert res.exit_code == 2 and "at least 1 second" in res.output
    res = CliRunner().invoke(cli, ["data", "synth", "--out", str(out), "--bars", "300", "--interval", "86400"])
    assert res.exit_code == 0 and len(out.read_text().splitlines()) == 301
