"""SIGINT and SIGTERM, whenever they come, are a clean stop (README, exit statuses: 130 after a
clean shutdown, state flushed, outputs written; the same command resumes).

Each case runs the real `bothost run` entry point in a child process that sends the signal to
itself at one exact point of the run (the nth time the run reaches a given function: the
strategy's reconstruct, a fill, the venue's checkpoint commit, the backup's atomic write,
fills.csv...), so the signal lands there every time instead of wherever a timer happens to
fall. Then the run must have stopped cleanly (exit 130, no traceback, summary.json and
status.json saying "interrupted") and the same command, run again, must end with exactly the
fills of a run that was never interrupted. A signal while the outputs are being written (the
run's work is done) lets them be finished. Also: Ctrl-C while the command is still starting
(importing, loading, connecting to a broker that does not answer) is one word and exit 130,
never a traceback or click's "Aborted!"; `bothost status CONFIG | head -1` exits 0 quietly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CONFIGS, PAPER, bothost

BARS = 8000  # 32,000 ticks: a few hundred fills; with small chunks, a checkpoint after each one
FAST = ["--set", "engine.checkpoint_every=1ms", "--set", "feed.chunk_rows=1024"]

# Sends SIG to this process the NTH time the run reaches POINT, then runs `bothost ARGS`.
PROBE = r'''
import os, signal, sys
point, signame, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
sig = getattr(signal, signame)
args = sys.argv[sys.argv.index("--") + 1:]
import bothost.cli as cli, bothost.engine as engine, bothost.report as report, bothost.run as run
import bothost.state as state
from bothost_plugins.sim_broker import plugin as sim, store
seen = [0]
def during(obj, name, only=lambda *a, **k: True):
    orig = getattr(obj, name)
    def wrapper(*a, **k):
        if only(*a, **k):
            seen[0] += 1
            if seen[0] == nth:
                os.write(2, f"[probe: {signame} during {point}]\n".encode())
                os.kill(os.getpid(), sig)
        return orig(*a, **k)
    setattr(obj, name, wrapper)
{
    "connect": lambda: during(sim.SimBroker, "open"),  # the venue read back from venue.sqlite
    "snapshot": lambda: during(sim.SimBroker, "snapshot"),  # what reconstruct awaits from the broker
    "reconstruct": lambda: during(engine.Engine, "call", lambda self, ctx, hook, **kw: hook == "reconstruct"),
    "fill": lambda: during(engine.Engine, "_on_fill"),
    "checkpoint": lambda: during(store.VenueStore, "checkpoint"),  # the venue's commit
    "state write": lambda: during(state, "_replace" if hasattr(state, "_replace") else "atomic_write_bytes",
                                  lambda src, *a, **k: "bot_state" in str(src)),  # the backup's atomic write
    "fills.csv": lambda: during(run, "write_fills_columns"),  # a replay's fills.csv (the row path's is report.write_fills)
    "summary.json": lambda: during(report, "write_summary"),
    "equity.png": lambda: during(run, "_finish_plot"),
}[point]()
sys.argv = ["bothost", *args]
cli.main()
'''

SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]


def cases(*pairs):
    return [pytest.param(what, sig, id=f"{what}-{sig.name}") for what, sig in pairs]


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("signals") / "bars.csv"
    r = bothost("data", "synth", "--bars", str(BARS), "--seed", "5", "--volatility", "0.9", "--out", str(path),
                cwd=path.parent)
    assert r.returncode == 0, r.stderr
    return path


@pytest.fixture(scope="module")
def reference(bars) -> bytes:
    state = bars.parent / "reference"
    r = bothost("run", str(PAPER), "--data", str(bars), "--state", str(state), "--no-progress", *FAST, cwd=bars.parent)
    assert r.returncode == 0, r.stderr
    fills = (state / "out" / "fills.csv").read_bytes()
    assert fills.count(b"\n") > 100
    return fills


def run_args(bars: Path, state: Path) -> list[str]:
    return ["run", str(PAPER), "--data", str(bars), "--state", str(state), "--no-progress", *FAST]


def signalled(point: str, sig: signal.Signals, nth: int, bars: Path, state: Path) -> subprocess.CompletedProcess:
    """`bothost run` that sends itself SIG the NTH time it reaches POINT."""
    r = subprocess.run([sys.executable, "-c", PROBE, point, sig.name, str(nth), "--", *run_args(bars, state)],
                       cwd=bars.parent, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "COLUMNS": "200"})
    assert f"[probe: {sig.name} during {point}]" in r.stderr, f"the run never reached {point}: {r.stderr}"
    return r


def resume(bars: Path, state: Path) -> subprocess.CompletedProcess:
    r = bothost(*run_args(bars, state), cwd=bars.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def outputs(state: Path) -> tuple[dict, dict]:
    summary = json.loads((state / "out" / "summary.json").read_text())
    status = json.loads((state / "status.json").read_text())
    return summary, status


def assert_clean_stop(r: subprocess.CompletedProcess, state: Path) -> dict:
    text = r.stdout + r.stderr
    assert r.returncode == 130, text
    assert "Traceback" not in text and "Aborted" not in text, text
    summary, status = outputs(state)
    assert summary["status"] == "interrupted", summary
    assert status["summary"]["status"] == "interrupted", status["summary"]
    assert "fills" in summary and "wall_time_s" in summary, summary  # the whole summary, not a stub
    assert (state / "out" / "fills.csv").exists() and (state / "bot_state.json").exists()
    return summary


# ----------------------------------------------------------------------------- while reconstructing


@pytest.mark.parametrize(("point", "sig"), cases(("connect", signal.SIGTERM), ("snapshot", signal.SIGINT),
                                                  ("reconstruct", signal.SIGINT), ("reconstruct", signal.SIGTERM)))
def test_a_signal_while_starting_lets_the_reconstruct_finish_then_stops_cleanly(bars, reference, tmp_path, point, sig):
    state = tmp_path / "S"
    r = signalled(point, sig, 1, bars, state)
    summary = assert_clean_stop(r, state)
    assert summary["reconstructs"] == 1
    assert "stops cleanly once its reconstruct is done" in r.stderr or "finishing the current event" in r.stderr
    resume(bars, state)
    assert (state / "out" / "fills.csv").read_bytes() == reference


# ----------------------------------------------------------------------------- while trading


@pytest.mark.parametrize("sig", SIGNALS)
def test_a_signal_during_a_fill_stops_cleanly_and_a_signal_in_the_next_reconstruct_too(bars, reference, tmp_path, sig):
    state = tmp_path / "S"
    r = signalled("fill", sig, 150, bars, state)
    first = assert_clean_stop(r, state)
    assert 150 <= first["fills"] < reference.count(b"\n") - 1
    fills_at_stop = (state / "out" / "fills.csv").read_bytes()
    assert reference.startswith(fills_at_stop)  # what it wrote is the unkilled run's, so far

    # the restart is interrupted too, in its reconstruct of the resumed state
    r = signalled("reconstruct", sig, 1, bars, state)
    second = assert_clean_stop(r, state)
    assert second["resumed_after"] is not None and second["fills"] >= first["fills"]

    last = resume(bars, state)
    final, _ = outputs(state)
    assert final["status"] == "done" and final["resumed_after"] is not None, last.stdout
    assert (state / "out" / "fills.csv").read_bytes() == reference


@pytest.mark.parametrize(("point", "sig"), cases(("checkpoint", signal.SIGINT), ("state write", signal.SIGTERM)))
def test_a_signal_during_a_checkpoint_write_stops_cleanly(bars, reference, tmp_path, point, sig):
    state = tmp_path / "S"
    r = signalled(point, sig, 4, bars, state)  # well into the replay (the first is reconstruct's)
    summary = assert_clean_stop(r, state)
    assert summary["ticks"] < 4 * BARS
    resume(bars, state)
    assert (state / "out" / "fills.csv").read_bytes() == reference


# ----------------------------------------------------------------------------- while finishing


@pytest.mark.parametrize(("point", "sig"), cases(("fills.csv", signal.SIGINT), ("equity.png", signal.SIGTERM),
                                                  ("summary.json", signal.SIGTERM)))
def test_a_signal_while_the_outputs_are_written_lets_them_be_finished(bars, reference, tmp_path, point, sig):
    # The replay is over: the outputs are finished (not dropped, as they were), status.json is
    # written, and the exit status says how the run ended (done).
    state = tmp_path / "S"
    r = signalled(point, sig, 1, bars, state)
    text = r.stdout + r.stderr
    assert r.returncode == 0, text
    assert "Traceback" not in text and "interrupted" not in r.stdout, text
    summary, status = outputs(state)
    assert summary["status"] == "done" and status["summary"]["status"] == "done"
    assert summary["ticks"] == 4 * BARS
    assert (state / "out" / "fills.csv").read_bytes() == reference
    assert (state / "out" / "equity.png").stat().st_size > 0
    resume(bars, state)  # and the same command again changes nothing
    assert (state / "out" / "fills.csv").read_bytes() == reference


# ----------------------------------------------------------------------------- while the command starts

# The `bothost` command itself (its argv[0] says so), with SIG sent while module MODULE imports.
DURING_IMPORT = r'''
import importlib.abc, os, signal, sys
module, sig = sys.argv[1], getattr(signal, sys.argv[2])
class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == module:
            sys.meta_path.remove(self)
            os.write(2, b"[probe: signal while importing]\n")
            os.kill(os.getpid(), sig)
        return None
sys.meta_path.insert(0, Hook())
sys.argv = ["bothost", *sys.argv[3:]]
from bothost.cli import main
main()
'''


@pytest.mark.parametrize(("module", "sig"), cases(("click", signal.SIGINT), ("bothost.config", signal.SIGINT),
                                                   ("bothost.config", signal.SIGTERM), ("bothost.plugins", signal.SIGTERM),
                                                   ("bothost.run", signal.SIGINT)))
def test_ctrl_c_while_the_command_is_still_loading_is_exit_130_without_a_traceback(tmp_path, module, sig):
    # click: while bothost.cli itself imports; bothost.config: the first import inside the
    # command (it used to end in click's "Aborted!" and exit 1); bothost.plugins: loading the
    # plugins; bothost.run: the run's own modules, before the run has started.
    r = subprocess.run([sys.executable, "-c", DURING_IMPORT, module, sig.name, "run", str(PAPER), "--state",
                        str(tmp_path / "S"), "--no-progress"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert "[probe: signal while importing]" in r.stderr
    text = r.stdout + r.stderr
    assert r.returncode == 130, text
    assert "Traceback" not in text and "Aborted" not in text, text
    assert not (tmp_path / "S" / "venue.sqlite").exists()  # nothing was started


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once this socket is closed


@pytest.mark.parametrize("sig", SIGNALS)
def test_ctrl_c_while_connecting_to_a_broker_that_does_not_answer(tmp_path, sig):
    # A start-up waiting on its broker is not waited for: cut short within the grace period,
    # status.json says interrupted, exit 130, one word on the terminal.
    env = {**os.environ, "IB_PORT": str(_closed_port()), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "bothost", "run", str(CONFIGS / "tqqq-ib.yaml"), "--state", str(tmp_path / "S"),
           "--set", "broker.connect_retries=20"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "S" / "bot_log.txt"
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and "connection attempt 1" in log.read_text()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never tried to connect"
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert took < 15, f"the interrupted start-up took {took:.1f} s to stop"
    status = json.loads((tmp_path / "S" / "status.json").read_text())
    assert status["summary"]["status"] == "interrupted"


# ----------------------------------------------------------------------------- a reader that leaves


@pytest.fixture(scope="module")
def finished_state(bars, reference) -> Path:
    return bars.parent / "reference"


def test_status_piped_into_head_exits_0_quietly(finished_state):
    cmd = [sys.executable, "-m", "bothost", "status", str(PAPER), "--state", str(finished_state)]
    # `| head -1`: the reader takes one line and goes
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "200"})
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.wait(timeout=60)
    assert first.startswith(b"state folder:")
    assert proc.returncode == 0, stderr
    assert stderr == b""
    # a reader already gone before the first line
    for args in (["status", str(PAPER), "--state", str(finished_state)], ["plugins"], ["config", "show", str(PAPER)]):
        r, w = os.pipe()
        os.close(r)
        done = subprocess.run([sys.executable, "-m", "bothost", *args], stdout=w, stderr=subprocess.PIPE, timeout=60)
        os.close(w)
        assert done.returncode == 0 and done.stderr == b"", (args, done.stderr)


def test_a_real_error_keeps_its_exit_status_when_the_reader_has_left(tmp_path):
    r, w = os.pipe()
    os.close(r)
    done = subprocess.run([sys.executable, "-m", "bothost", "status", str(PAPER), "--state", str(tmp_path / "none")],
                          stdout=w, stderr=subprocess.PIPE, timeout=60)
    os.close(w)
    assert done.returncode == 2, done.stderr
    assert b"no run has written a status here yet" in done.stderr
