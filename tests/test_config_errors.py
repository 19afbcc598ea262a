"""The bad-config suite: every mistake a user can make gives `FILE:LINE:COL: message`.

Each case is checked twice:

* directly, through ``load`` + ``validate`` with a toy registry whose kinds have the same
  names and keys as the built-in plugins (so the config layer is verified on its own);
* through the real CLI, ``python -m bothost validate FILE``, with the real plugins: exit
  status 2, the file name and ``:LINE:`` of the offending line in the output, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from bothost.config import ConfigError, Duration, Percent, PositivePercent, load, validate
from bothost.registry import Registry

UNSET = "BOTHOST_TEST_SURELY_UNSET_PASSWORD"

GOOD = """\
mode: paper
broker: {use: sim_broker}
feed: {use: replay_feed, synthetic: {seed: 1, bars: 1000}}
strategies:
  - use: tqqq_grid
    profit_target: 1%
"""


# --- a toy registry with the built-in plugins' names and keys --------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SimBroker(_Model):
    commission_per_share: Decimal = Field(Decimal("0.005"), ge=0)
    database: str = "venue.sqlite"


class Synthetic(_Model):
    seed: int = 1
    bars: int = 1000


class ReplayFeed(_Model):
    synthetic: Synthetic | None = None
    file: str | None = None


class Grid(_Model):
    symbol: str = "XYZ"
    lots: str = "lots.csv"
    profit_target: PositivePercent = "1%"
    buy_step: PositivePercent = "1%"
    l0_buffer: Percent = "0.25%"
    l0_timeout: Duration = "120s"
    queue_depth: int = Field(3, ge=0)
    entry_order: Literal["limit_if_touched", "limit"] = "limit_if_touched"
    outside_rth: bool = True
    on_orphan_shares: Literal["alert", "adopt"] = "alert"


class Bell(_Model):
    pass


class Apprise(_Model):
    urls: list[str] = Field(min_length=1)
    title_prefix: str = "bothost"


def toy_registry() -> Registry:
    registry = Registry()
    registry.add_broker("sim_broker", SimBroker, lambda config, env: None)
    registry.add_feed("replay_feed", ReplayFeed, lambda config, env: None)
    registry.add_strategy("tqqq_grid", Grid, lambda config, env: None)
    registry.add_notifier("bell", Bell, lambda config, env: None)
    registry.add_notifier("apprise", Apprise, lambda config, env: None)
    return registry


# --- the cases -------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    files: dict[str, str | bytes]  # the first one is the file validated
    line: int  # 1-based line of the offending text
    message: str  # a fragment of the message
    hint: str | None = None  # a fragment of the hint
    where: str | None = None  # the file the error points at (default: the first one)
    overrides: tuple[str, ...] = ()
    col: int | None = None

    @property
    def main(self) -> str:
        return next(iter(self.files))


def with_strategy_lines(*lines: str) -> str:
    return GOOD + "".join(f"    {line}\n" for line in lines)


CASES = [
    Case("yaml-syntax", {"c.yaml": GOOD.replace("{use: sim_broker}", "{use: sim_broker")}, 3,
         "invalid YAML"),
    Case("tab-indentation", {"c.yaml": GOOD.replace("    profit_target", "\tprofit_target")}, 6,
         "tab", hint="YAML indents with spaces, not tabs", col=1),
    Case("unknown-plugin", {"c.yaml": GOOD.replace("sim_broker", "sim_brokr")}, 2,
         "no broker plugin named 'sim_brokr' is installed", hint="did you mean 'sim_broker'?", col=15),
    Case("unknown-key-typo", {"c.yaml": with_strategy_lines("queue_dept: 3")}, 7,
         "unknown key 'queue_dept' in strategy 'tqqq_grid'", hint="did you mean 'queue_depth'?", col=5),
    Case("wrong-type", {"c.yaml": GOOD.replace("seed: 1", "seed: abc")}, 3,
         "synthetic.seed in feed 'replay_feed': expected a whole number (got 'abc')"),
    Case("negative-percentage", {"c.yaml": GOOD.replace("1%", "-1%")}, 6,
         "must be greater than 0%", col=20),
    Case("zero-percentage", {"c.yaml": GOOD.replace("1%", "0%")}, 6, "must be greater than 0%"),
    Case("percentage-without-sign", {"c.yaml": GOOD.replace("1%", "0.01")}, 6,
         "profit_target", hint="write a percentage such as 1%"),
    Case("unknown-unit", {"c.yaml": GOOD + "engine:\n  checkpoint_every: 5x\n"}, 8,
         "unknown duration unit 'x'", hint="500ms"),
    Case("missing-required-field", {"c.yaml": GOOD + "notify:\n  - use: bell\n  - use: apprise\n    title_prefix: bot\n"}, 9,
         "missing required key 'urls' in notifier 'apprise'", col=5),
    Case("missing-env-var", {"c.yaml": GOOD.replace("{use: sim_broker}", "{use: sim_broker, password: '${%s}'}" % UNSET)}, 2,
         f"environment variable {UNSET} is not set", hint=f"export {UNSET}=... or write ${{{UNSET}:-default}}"),
    Case("extends-cycle", {"a.yaml": "extends: b.yaml\n" + GOOD, "b.yaml": "mode: paper\nextends: a.yaml\n"}, 2,
         "extends cycle: ", where="b.yaml"),
    Case("extends-missing-file", {"c.yaml": "# paper settings\nextends: live.yaml\nmode: paper\n"}, 2,
         "live.yaml does not exist", col=10),
    Case("duplicate-key", {"c.yaml": GOOD + "mode: live\n"}, 7, "duplicate key 'mode'", col=1),
    Case("empty-file", {"c.yaml": ""}, 1, "the file is empty", col=1),
    Case("comments-only-file", {"c.yaml": "# nothing here yet\n\n"}, 1, "the file is empty"),
    Case("not-a-mapping", {"c.yaml": "- use: sim_broker\n- use: replay_feed\n"}, 1, "must be a mapping"),
    Case("bad-set-path", {"c.yaml": GOOD}, 1, "index 3 is past its end", where="--set",
         hint="--set strategies.0.profit_target=2%", overrides=("strategies.3.profit_target=2%",)),
    Case("bad-set-no-equals", {"c.yaml": GOOD}, 1, "no '='", where="--set", overrides=("mode",)),
    Case("bad-set-value", {"c.yaml": GOOD}, 1, "must be greater than 0%", where="--set",
         overrides=("strategies.0.profit_target=0%",)),
    Case("unknown-top-level-key", {"c.yaml": GOOD + "strategy:\n  - use: tqqq_grid\n"}, 7,
         "unknown top-level key 'strategy'", hint="did you mean 'strategies'?"),
    Case("bad-mode", {"c.yaml": GOOD.replace("mode: paper", "mode: lve")}, 1, "expected 'paper' or 'live'"),
    Case("section-without-use", {"c.yaml": GOOD.replace("{use: sim_broker}", "{cash: 5}")}, 2,
         "has no 'use:' key", hint="sim_broker"),
    Case("duplicate-strategy-id", {"c.yaml": GOOD + "  - use: tqqq_grid\n    profit_target: 2%\n"}, 7,
         "two strategies have the id 'tqqq_grid'"),
    Case("not-utf8", {"c.yaml": GOOD.encode() + b"# caf\xe9\n"}, 7, "not UTF-8"),
    Case("error-in-base-file",
         {"paper.yaml": "extends: base/live.yaml\nmode: paper\n",
          "base/live.yaml": GOOD.replace("seed: 1", "seed: 1.5")},
         3, "expected a whole number", where="base/live.yaml"),
]


def write_case(case: Case, root: Path) -> Path:
    for name, text in case.files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text, encoding="utf-8")
    return root / case.main


def expected_file(case: Case, root: Path) -> str:
    return case.where if case.where == "--set" else str(root / (case.where or case.main))


def test_there_are_enough_cases():
    assert len(CASES) >= 17


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_direct(case: Case, tmp_path: Path):
    path = write_case(case, tmp_path)
    environ = {k: v for k, v in os.environ.items() if k != UNSET}
    with pytest.raises(ConfigError) as info:
        validate(load(path, case.overrides, environ=environ), toy_registry())
    err = info.value
    assert err.path == expected_file(case, tmp_path)
    assert err.line == case.line, str(err)
    if case.col is not None:
        assert err.col == case.col, str(err)
    assert case.message in err.message
    if case.hint:
        assert err.hint and case.hint in err.hint, str(err)
    first, *rest = str(err).split("\n")
    assert first == f"{err.path}:{err.line}:{err.col}: {err.message}"
    assert rest == ([f"  hint: {err.hint}"] if err.hint else [])


def test_the_good_config_is_valid(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    run = validate(load(path, environ={}), toy_registry())
    assert [s.use for s in run.strategies] == ["tqqq_grid"]


# --- through the real CLI --------------------------------------------------------------------


def run_cli(path: Path, overrides: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "bothost", "validate", str(path)]
    for override in overrides:
        args += ["--set", override]
    env = {k: v for k, v in os.environ.items() if k != UNSET}
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "300"  # a wide terminal, so that no message is wrapped
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=path.parent, timeout=120)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cli(case: Case, tmp_path: Path):
    path = write_case(case, tmp_path)
    proc = run_cli(path, case.overrides)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    shown = "--set" if case.where == "--set" else Path(case.where or case.main).name
    assert f"{shown}:{case.line}:" in output, output


def test_cli_accepts_the_good_config(tmp_path: Path):
    import shutil

    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    proc = run_cli(path)
    # validate builds the strategies too: the lot map the config names must exist beside it
    assert proc.returncode == 2 and "tqqq_lots.csv" in proc.stderr and "not found" in proc.stderr
    shutil.copy(Path(__file__).parents[1] / "configs" / "tqqq_lots.csv", tmp_path)
    proc = run_cli(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
