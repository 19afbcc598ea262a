"""examples/: plugin packages outside bothost, installed and run exactly as a user would.

The examples are copied to a temporary folder, installed into this venv with pip (editable,
--no-deps) for this module only and uninstalled at its end, so no other test sees them; each
runs through a real ``bothost run`` of its own config, offline (the simulated venue and
synthetic data), and passes its own tests.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from support.pip_install import pip, uninstall

# They install packages into this venv, which every bothost run (any test's) would load.
pytestmark = pytest.mark.installs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PACKAGES = ("ma_cross", "fills_csv")


def bothost(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bothost", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "250"})


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """A copy of examples/, both packages installed from it (pip install --no-deps -e)."""
    uninstall(PACKAGES)  # left by an interrupted earlier run
    root = tmp_path_factory.mktemp("examples") / "examples"
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "state", "out"))
    installed = pip("install", "--no-deps", "--no-build-isolation",
                    *[a for name in PACKAGES for a in ("-e", str(root / name))])
    assert installed.returncode == 0, installed.stderr
    try:
        yield root
    finally:
        uninstall(PACKAGES)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_each_example_is_a_package_of_its_own():
    for name in PACKAGES:
        folder = EXAMPLES / name
        for part in ("pyproject.toml", "README.md", "config.yaml", f"{name}/plugin.py", f"tests/test_{name}.py"):
            assert (folder / part).is_file(), f"examples/{name}/{part}"
        assert f'[project.entry-points.bothost]\n{name} = "{name}.plugin"' in (folder / "pyproject.toml").read_text()
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
                           str(EXAMPLES.parent / "pyproject.toml"), str(EXAMPLES)], capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_bothost_plugins_lists_them_beside_the_built_ins(examples):
    listed = bothost("plugins", cwd=examples)
    assert listed.returncode == 0, listed.stderr
    rows = [line.replace("│", " ").replace("-", "_").split()[:4] for line in listed.stdout.splitlines()]
    assert ["strategy", "ma_cross", "ma_cross", "0.1.0"] in rows, listed.stdout
    assert ["notifier", "fills_csv", "fills_csv", "0.1.0"] in rows, listed.stdout
    for builtin in (["broker", "sim_broker", "bothost"], ["strategy", "tqqq_grid", "bothost"]):
        assert builtin in [r[:3] for r in rows]


def test_ma_cross_runs_its_config(examples):
    folder = examples / "ma_cross"
    run = bothost("run", "config.yaml", "--no-progress", cwd=folder)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = folder / "state" / "config" / "out"
    fills = read_csv(out / "fills.csv")
    assert fills and {f["order_ref"] for f in fills} == {"ma_cross:buy", "ma_cross:sell"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "done" and summary["round_trips"] > 0


def test_fills_csv_writes_every_fill_of_the_run(examples):
    folder = examples / "fills_csv"
    run = bothost("run", "config.yaml", "--no-progress", cwd=folder)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    state = folder / "state" / "config"
    venue = read_csv(state / "out" / "fills.csv")  # the venue's own executions, written by the host
    logged = read_csv(state / "fills_log.csv")  # what the notifier heard, as it happened
    heard = [r for r in logged if r["event"] == "fill"]
    assert len(venue) > 5 and len(heard) == len(venue)
    assert [(r["side"], r["quantity"], Decimal(r["price"]), r["ref"]) for r in heard] == [
        (v["side"], v["quantity"], Decimal(v["price"]), v["order_ref"]) for v in venue]
    # The config's venue reports commissions after their fills: each came as its own row.
    commissions = {r["exec_id"]: Decimal(r["commission"]) for r in logged if r["event"] == "commission"}
    assert [commissions[r["exec_id"]] for r in heard] == [Decimal(v["commission"]) for v in venue]


def test_their_own_tests_pass(examples):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *[str(examples / name / "tests") for name in PACKAGES]],
                          cwd=examples, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "8 passed" in done.stdout.splitlines()[-1], done.stdout[-500:]
