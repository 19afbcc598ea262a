"""``run_backtest``: a config through ``bothost backtest``, in this process.

The command itself runs (click, the config loader and validator, the live guard, host/run.py,
the outputs), so the exit status and the messages are the ones a user gets; only the process
is the test's own.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BacktestResult:
    """What ``bothost backtest`` left: its exit status (0 done, 2 bad input, 3 critical alert,
    ...), ``summary.json`` as a dict (empty when none was written), the ``fills.csv`` path
    (None when none was written), the output folder and everything the command printed."""

    exit_code: int
    summary: dict[str, Any]
    fills: Path | None
    out_dir: Path
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def fill_rows(self) -> list[dict[str, str]]:
        """fills.csv's rows as dicts (column name -> text)."""
        import csv

        if self.fills is None:
            return []
        with open(self.fills, newline="") as fh:
            return list(csv.DictReader(fh))


def run_backtest(config_path: Path | str, data: Path | str | None = None, out_dir: Path | str | None = None,
                 *, overrides: tuple[str, ...] | list[str] = (), verify_skips: bool = False) -> BacktestResult:
    """``bothost backtest CONFIG [--data DATA] --out OUT_DIR [--set K=V]...`` in this process.

    ``out_dir`` defaults to a new temporary folder (never the current folder); the backtest's
    state is ``OUT_DIR/state`` and is wiped first, as the command does."""
    from click.testing import CliRunner

    from ..cli import cli

    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="bothost-backtest-"))
    args = ["backtest", str(config_path), "--out", str(out), "--no-progress"]
    if data is not None:
        args += ["--data", str(data)]
    for override in overrides:
        args += ["--set", override]
    if verify_skips:
        args.append("--verify-skips")
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
    finally:
        # The command set up logging onto its (now closed) terminal and the run's log file.
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
    summary_file = out / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    fills = out / "fills.csv"
    return BacktestResult(result.exit_code, summary, fills if fills.exists() else None, out, result.output)
