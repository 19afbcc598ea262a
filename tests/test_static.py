"""Lint and type checks, inside `pytest` (the README's test command) so that CI runs them too.

``ruff check`` lints the host, the plugins, the tests and the benchmarks with the rules in pyproject's ``[tool.ruff]``;
``mypy`` type-checks the public contract a plugin author builds on (the files in
``[tool.mypy]``, strictly). Each runs as the command a developer would type, and a failure
shows its whole output (both are in the ``test`` extra: ``pip install -e '.[test]'``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_ruff_finds_nothing_in_the_host_the_plugins_the_tests_and_the_benchmarks():
    r = _run("ruff", "check", "--no-cache", "host", "plugins", "tests", "benchmarks")
    assert r.returncode == 0, f"ruff check host plugins tests benchmarks:\n{r.stdout}{r.stderr}"


def test_mypy_accepts_the_public_contract(tmp_path):
    # a cache of its own: nothing written into the repository, and no stale cache to trust
    r = _run("mypy", "--cache-dir", str(tmp_path / "mypy-cache"))
    assert r.returncode == 0, f"mypy (files from pyproject's [tool.mypy]):\n{r.stdout}{r.stderr}"
    assert "Success" in r.stdout, r.stdout


def test_the_package_says_it_is_typed():
    """PEP 561: without py.typed a plugin author's checker ignores every annotation of bothost."""
    assert (REPO / "host" / "py.typed").is_file()
    text = (REPO / "pyproject.toml").read_text()
    assert '"py.typed"' in text, "py.typed must be package data, or a wheel leaves it out"
