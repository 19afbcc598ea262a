"""Several strategies in one config, each on its own symbol, one broker connection (issue 15).

`bothost validate` refuses two strategies on one symbol (the broker's position is the
account's); a live feed streams every strategy's symbol; a replay of several symbols is refused
with what to do instead; reports are per strategy and symbol.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bothost.cli import cli
from conftest import CONFIGS

TWO_GRIDS = """\
extends: tqqq.yaml
strategies:
  - use: tqqq_grid
    id: tqqq
    symbol: TQQQ
    lots: tqqq_lots.csv
  - use: tqqq_grid
    id: soxl
    symbol: {second}
    lots: tqqq_lots.csv
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("tqqq.yaml", "tqqq-ib.yaml", "tqqq-paper.yaml", "tqqq_lots.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    return tmp_path


def invoke(*args: str, env: dict | None = None):
    base = {"ALPACA_API_KEY": "AKTEST", "ALPACA_SECRET_KEY": "secret", "COLUMNS": "200"}
    return CliRunner().invoke(cli, list(args), env={**base, **(env or {})}, catch_exceptions=False)


def test_two_strategies_on_one_symbol_are_refused_at_the_second_ones_symbol_line(folder):
    config = folder / "two.yaml"
    config.write_text(TWO_GRIDS.format(second="tqqq"))
    res = invoke("validate", str(config))
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert f"{config}:9:" in text  # `symbol: tqqq` of the second strategy
    assert "strategies 'tqqq' and 'soxl' both trade TQQQ" in text
    assert "position in TQQQ is the whole account's" in text
    assert "give each strategy its own symbol" in text
    assert "Traceback" not in res.output


def test_two_strategies_on_two_symbols_validate_and_the_feed_streams_both(folder, monkeypatch):
    from bothost.cli import _load

    config = folder / "two.yaml"
    config.write_text(TWO_GRIDS.format(second="SOXL"))
    res = invoke("validate", str(config))
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("ALPACA_API_KEY", "AKTEST")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "secret")
    _, _, run = _load(config)
    assert run.feed.settings.streamed() == ["TQQQ", "SOXL"]  # the strategies' symbols, by default
    config.write_text(TWO_GRIDS.format(second="SOXL").replace("extends: tqqq.yaml\n",
                                                               "extends: tqqq-ib.yaml\n"))
    # tqqq-ib.yaml writes `symbol: TQQQ`: a feed told its symbol must stream every strategy's
    res = invoke("validate", str(config))
    assert res.exit_code == 2, res.output
    assert "strategy 'soxl' trades SOXL, but the feed streams only TQQQ" in " ".join(res.output.split())
