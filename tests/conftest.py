"""Shared helpers: run the real CLI as a subprocess, or the real run in-process with observers."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# No per-example deadline: CI machines are shared and slow at times; a property either holds
# or it does not, however long an example takes.
settings.register_profile("bothost", deadline=None)
settings.load_profile("bothost")

REPO = Path(__file__).resolve().parents[1]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test that pip-installs packages must not run beside others (pytest -n): every bothost
    run loads every installed plugin, and another worker's would see them half installed."""
    if "installs" in item.keywords and os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.fail("this test installs packages into the venv: run it alone, as the README's test command does "
                    "(pytest -m installs, without -n)", pytrace=False)
CONFIGS = REPO / "configs"
PAPER = CONFIGS / "tqqq-paper.yaml"


def bothost(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``bothost ARGS`` in a child process, as a user would run it."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bothost", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_in_process(tmp_path: Path, overrides=(), data: Path | None = None, observers=(),
                   verify_skips: bool = False, state: Path | None = None, out: Path | None = None,
                   config: Path = PAPER, stop_when_idle_s: float | None = None):
    """The same run as `bothost run CONFIG`, in this process, with extra observer plugins."""
    from rich.console import Console

    from bothost.cli import _data_patch, _load
    from bothost.run import RunOptions, execute

    pm, _, run = _load(config, tuple(overrides), _data_patch(data, backtest=False))
    for observer in observers:
        pm.register(observer)
    opts = RunOptions(state_dir=state or tmp_path / "state", out_dir=out or tmp_path / "out",
                      verify_skips=verify_skips, progress=False, stop_when_idle_s=stop_when_idle_s)
    return asyncio.run(execute(run, pm, opts, Console(file=io.StringIO())))


def write_bars(path: Path, closes, start="2024-01-02T09:30:00-05:00", step_s: int = 60, spread=0.10) -> Path:
    """A bars CSV whose closes follow ``closes`` (high/low a little around open and close)."""
    from datetime import datetime, timedelta

    t0 = datetime.fromisoformat(start)
    lines = ["timestamp,open,high,low,close,volume"]
    prev = closes[0]
    for i, close in enumerate(closes):
        o, c = prev, close
        lines.append(f"{(t0 + timedelta(seconds=i * step_s)).isoformat()},{o:.2f},{max(o, c) + spread:.2f},"
                     f"{min(o, c) - spread:.2f},{c:.2f},1000")
        prev = close
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def repo() -> Path:
    return REPO
