"""Unit tests of the config DSL: extends, ${VAR}, --set, units, masking, positions, validate()."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from bothost.config import (
    ConfigError,
    Duration,
    NonNegativePercent,
    Percent,
    PositivePercent,
    dump_yaml,
    load,
    mask,
    validate,
)
from bothost.registry import Registry


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    """1-based number of the line of ``path`` containing ``needle`` (tests must not guess)."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


# --- toy plugins -----------------------------------------------------------------------------


class BrokerModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = 4002
    password: str | None = None


class FeedModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = "XYZ"
    bars: int = 100


class GridModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str
    profit_target: PositivePercent
    buy_step: Percent = Decimal("0.01")
    timeout: Duration = dt.timedelta(seconds=30)
    lots: list[int] = [1]


class HookModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    token: str | None = None


def factory(config, env):  # never called by validate()
    raise AssertionError("validate() must not build plugins")


def toy_registry() -> Registry:
    registry = Registry()
    registry.add_broker("toy_broker", BrokerModel, factory)
    registry.add_broker("other_broker", BrokerModel, factory)
    registry.add_feed("toy_feed", FeedModel, factory)
    registry.add_strategy("toy_grid", GridModel, factory)
    registry.add_notifier("webhook", HookModel, factory)
    return registry


VALID = """\
mode: live
state_dir: state/run1
broker:
  use: toy_broker
  port: 4001
feed: {use: toy_feed, symbol: ABC}
strategies:
  - use: toy_grid
    symbol: ABC
    profit_target: 1.5%
    timeout: 2m
  - use: toy_grid
    id: second
    symbol: DEF
    profit_target: 0.25%
    lots: [1, 2, 3]
notify:
  - use: webhook
    url: http://127.0.0.1:9/hook
engine:
  checkpoint_every: 500ms
  stale_after: 1h
"""


# --- validate() ------------------------------------------------------------------------------


def test_a_valid_config_becomes_a_run_config(tmp_path: Path):
    path = write(tmp_path / "conf" / "live.yaml", VALID)
    run = validate(load(path, environ={}), toy_registry())

    assert run.path == path
    assert run.mode == "live"
    assert run.state_dir == tmp_path / "conf" / "state" / "run1"  # relative to the config file
    assert (run.broker.kind, run.broker.use, run.broker.id, run.broker.path) == ("broker", "toy_broker", "toy_broker", ("broker",))
    assert run.broker.plugin.model is BrokerModel
    assert run.broker.settings == BrokerModel(port=4001)
    assert run.feed.settings.symbol == "ABC"
    assert [s.id for s in run.strategies] == ["toy_grid", "second"]  # the id defaults to the use: name
    assert [s.path for s in run.strategies] == [("strategies", 0), ("strategies", 1)]
    first, second = (s.settings for s in run.strategies)
    assert first.profit_target == Decimal("0.015") and first.timeout == dt.timedelta(minutes=2)
    assert second.profit_target == Decimal("0.0025") and second.lots == [1, 2, 3]
    assert "id" not in second.model_dump()  # id is the host's key, not passed to the plugin
    assert [(n.kind, n.use) for n in run.notify] == [("notifier", "webhook")]
    assert run.engine.checkpoint_every == dt.timedelta(milliseconds=500)
    assert run.engine.stale_after == dt.timedelta(hours=1)
    assert run.engine.skip_quiet_ticks is True and run.engine.progress is True
    assert run.data["strategies"][1]["lots"] == [1, 2, 3]


def test_host_defaults(tmp_path: Path):
    path = write(tmp_path / "c.yaml", "broker: {use: toy_broker}\nfeed: {use: toy_feed}\n"
                 "strategies:\n  - {use: toy_grid, symbol: A, profit_target: 1%}\nnotify:\nengine:\n")
    run = validate(load(path, environ={}), toy_registry())
    assert run.mode == "paper"
    assert run.state_dir is None
    assert run.notify == []
    assert run.engine.checkpoint_every == dt.timedelta(seconds=2)
    assert run.engine.stale_after is None


def test_unknown_plugin_lists_installed_names_and_nearest(tmp_path: Path):
    path = write(tmp_path / "c.yaml", VALID.replace("use: toy_broker", "use: toy_brokr"))
    with pytest.raises(ConfigError) as info:
        validate(load(path, environ={}), toy_registry())
    err = info.value
    assert err.message == "no broker plugin named 'toy_brokr' is installed"
    assert "other_broker, toy_broker" in err.hint and "did you mean 'toy_broker'?" in err.hint
    assert (err.line, err.col) == (4, 8)  # the value after `use: `


def test_unknown_key_points_at_that_key(tmp_path: Path):
    path = write(tmp_path / "c.yaml", VALID.replace("    timeout: 2m", "    timeot: 2m"))
    with pytest.raises(ConfigError) as info:
        validate(load(path, environ={}), toy_registry())
    assert info.value.message == "unknown key 'timeot' in strategy 'toy_grid'"
    assert info.value.hint == "did you mean 'timeout'?"
    assert (info.value.line, info.value.col) == (line_of(path, "timeot"), 5)


def test_a_typo_in_a_required_key_is_reported_as_the_typo(tmp_path: Path):
    path = write(tmp_path / "c.yaml", VALID.replace("profit_target: 0.25%", "profit_targt: 0.25%"))
    with pytest.raises(ConfigError) as info:
        validate(load(path, environ={}), toy_registry())
    assert "unknown key 'profit_targt' in strategy 'second'" in info.value.message
    assert info.value.hint == "did you mean 'profit_target'?"


def test_missing_required_key_is_reported_at_the_section(tmp_path: Path):
    path = write(tmp_path / "c.yaml", VALID.replace("    symbol: DEF\n", ""))
    with pytest.raises(ConfigError) as info:
        validate(load(path, environ={}), toy_registry())
    assert info.value.message == "missing required key 'symbol' in strategy 'second'"
    assert info.value.line == line_of(path, "id: second") - 1  # the `- use: toy_grid` line


def test_the_first_error_in_the_file_is_reported(tmp_path: Path):
    text = VALID.replace("port: 4001", "port: many").replace("lots: [1, 2, 3]", "lots: lots")
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError) as info:
        validate(load(path, environ={}), toy_registry())
    assert info.value.line == line_of(path, "port: many")
    assert "port in broker 'toy_broker': expected a whole number (got 'many')" == info.value.message
    # Fixing the first one reveals the next.
    write(path, text.replace("port: many", "port: 1"))
    with pytest.raises(ConfigError) as info:
        validate(load(path, environ={}), toy_registry())
    assert info.value.line == line_of(path, "lots: lots")


def test_a_wrong_type_names_the_expected_type(tmp_path: Path):
    path = write(tmp_path / "c.yaml", VALID.replace("url: http://127.0.0.1:9/hook", "url: [a, b]"))
    with pytest.raises(ConfigError) as info:
        validate(load(path, environ={}), toy_registry())
    assert info.value.message == "url in notifier 'webhook': expected text (got a list)"


def test_errors_in_the_named_file_come_before_errors_in_its_base(tmp_path: Path):
    write(tmp_path / "base.yaml", VALID.replace("port: 4001", "port: many"))
    top = write(tmp_path / "top.yaml", "extends: base.yaml\n\n\n\nmode: paper\nfeed: {bars: lots}\n")
    with pytest.raises(ConfigError) as info:
        validate(load(top, environ={}), toy_registry())
    assert (info.value.path, info.value.line) == (str(top), 6)
    write(top, "extends: base.yaml\n")
    with pytest.raises(ConfigError) as info:
        validate(load(top, environ={}), toy_registry())
    assert (info.value.path, info.value.line) == (str(tmp_path / "base.yaml"), 5)


def test_duplicate_strategy_ids(tmp_path: Path):
    path = write(tmp_path / "c.yaml", VALID.replace("id: second", "id: toy_grid"))
    with pytest.raises(ConfigError) as info:
        validate(load(path, environ={}), toy_registry())
    assert "two strategies have the id 'toy_grid'" in info.value.message
    assert info.value.line == line_of(path, "id: toy_grid")


def test_a_buggy_plugin_validator_is_a_config_error_naming_the_plugin(tmp_path: Path):
    from pydantic import field_validator

    class Buggy(BaseModel):
        x: int = 0

        @field_validator("x")
        @classmethod
        def boom(cls, value):
            raise KeyError("oops")

    registry = toy_registry()
    registry.add_notifier("buggy", Buggy, factory)
    path = write(tmp_path / "c.yaml", VALID.replace("notify:\n", "notify:\n  - use: buggy\n    x: 1\n"))
    with pytest.raises(ConfigError) as info:
        validate(load(path, environ={}), registry)
    assert "notifier plugin 'buggy'" in info.value.message and "KeyError" in info.value.message


# --- extends ---------------------------------------------------------------------------------


def three_levels(root: Path) -> tuple[Path, Path, Path]:
    grand = write(root / "common" / "grand.yaml", """\
mode: live
broker:
  use: toy_broker
  host: 127.0.0.1
  port: 4001
  password: ${BROKER_PASSWORD}
feed: {use: toy_feed, symbol: ABC, bars: 10}
strategies:
  - {use: toy_grid, symbol: ABC, profit_target: 1%}
  - {use: toy_grid, id: b, symbol: ABC, profit_target: 2%}
engine:
  checkpoint_every: 5s
  progress: false
""")
    base = write(root / "common" / "base.yaml", """\
extends: grand.yaml
feed:
  bars: 20
engine:
  progress: true
""")
    top = write(root / "paper.yaml", """\
extends: common/base.yaml
mode: paper
broker:
  password: not-secret
  port: 4002
strategies:
  - {use: toy_grid, symbol: XYZ, profit_target: 3%}
""")
    return grand, base, top


def test_extends_deep_merges_three_levels(tmp_path: Path):
    grand, base, top = three_levels(tmp_path)
    raw = load(top, environ={})
    assert raw.data == {
        "mode": "paper",
        "broker": {"use": "toy_broker", "host": "127.0.0.1", "port": 4002, "password": "not-secret"},
        "feed": {"use": "toy_feed", "symbol": "ABC", "bars": 20},
        # a list is replaced whole, not merged item by item
        "strategies": [{"use": "toy_grid", "symbol": "XYZ", "profit_target": "3%"}],
        "engine": {"checkpoint_every": "5s", "progress": True},
    }
    assert "extends" not in raw.data
    assert [p.name for p in raw.files] == ["paper.yaml", "base.yaml", "grand.yaml"]
    run = validate(raw, toy_registry())
    assert run.engine.checkpoint_every == dt.timedelta(seconds=5)
    assert [s.settings.profit_target for s in run.strategies] == [Decimal("0.03")]


def test_positions_point_into_the_file_that_wrote_the_value(tmp_path: Path):
    grand, base, top = three_levels(tmp_path)
    raw = load(top, environ={})
    assert raw.where(("broker", "host")) == (str(grand), line_of(grand, "host:"), 3)
    assert raw.where(("feed", "bars")) == (str(base), line_of(base, "bars:"), 3)
    assert raw.where(("broker", "port")) == (str(top), line_of(top, "port:"), 3)
    assert raw.where(("engine", "checkpoint_every")) == (str(grand), line_of(grand, "checkpoint_every"), 3)
    assert raw.where(("strategies", 0))[0] == str(top)


def test_a_validation_error_in_a_base_file_points_into_the_base(tmp_path: Path):
    grand, base, top = three_levels(tmp_path)
    write(grand, grand.read_text().replace("checkpoint_every: 5s", "checkpoint_every: 5 parsecs"))
    with pytest.raises(ConfigError) as info:
        validate(load(top, environ={}), toy_registry())
    err = info.value
    assert (err.path, err.line) == (str(grand), line_of(grand, "parsecs"))
    assert "unknown duration unit 'parsecs'" in err.message


def test_extends_paths_are_relative_to_the_extending_file(tmp_path: Path, monkeypatch):
    grand, base, top = three_levels(tmp_path)
    monkeypatch.chdir(tmp_path / "common")  # the working directory must not matter
    assert load(top, environ={}).data["feed"]["bars"] == 20


def test_extends_cycle_shows_the_chain(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: c.yaml\n")
    write(tmp_path / "c.yaml", "mode: paper\nextends: a.yaml\n")
    with pytest.raises(ConfigError) as info:
        load("a.yaml", environ={})
    assert str(info.value).startswith("c.yaml:2:10: extends cycle: a.yaml -> b.yaml -> c.yaml -> a.yaml")


# --- ${VAR} ----------------------------------------------------------------------------------


def test_env_substitution(tmp_path: Path):
    path = write(tmp_path / "c.yaml", """\
a: ${NAME}
b: ${UNSET_ONE:-fallback}
c: ${NAME:-fallback}
d: ${EMPTY:-was empty}
url: http://${HOST}:${PORT:-80}/x
port: ${PORT:-7497}
ratio: ${RATIO}
flag: ${FLAG:-true}
quoted: "${PORT:-7497}"
pct: ${PCT:-1%}
literal: $${NAME}
list:
  - ${NAME}
  - x${NAME}
""")
    env = {"NAME": "alice", "EMPTY": "", "HOST": "127.0.0.1", "RATIO": "0.5"}
    data = load(path, environ=env).data
    assert data == {
        "a": "alice",
        "b": "fallback",
        "c": "alice",
        "d": "was empty",  # like a shell, :- also covers a variable set to ""
        "url": "http://127.0.0.1:80/x",
        "port": 7497,  # the whole value: re-typed as YAML would
        "ratio": 0.5,
        "flag": True,
        "quoted": "7497",  # quoted in the file: stays a string
        "pct": "1%",
        "literal": "${NAME}",
        "list": ["alice", "xalice"],
    }
    assert load(path, environ={**env, "PORT": "4002"}).data["port"] == 4002


def test_missing_variable_points_at_the_value(tmp_path: Path):
    path = write(tmp_path / "c.yaml", "mode: paper\nbroker:\n  use: x\n  password: ${SECRET_PW}\n")
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    assert str(info.value) == (
        f"{path}:4:13: environment variable SECRET_PW is not set\n"
        "  hint: export SECRET_PW=... or write ${SECRET_PW:-default}"
    )


def test_env_is_substituted_after_the_merge(tmp_path: Path):
    # The paper config replaces the value that needs the live secret: no secret needed.
    grand, base, top = three_levels(tmp_path)
    assert load(top, environ={}).data["broker"]["password"] == "not-secret"
    # Without the override, the missing variable is reported where it is written.
    write(top, top.read_text().replace("  password: not-secret\n", ""))
    with pytest.raises(ConfigError) as info:
        load(top, environ={})
    assert (info.value.path, info.value.line) == (str(grand), line_of(grand, "BROKER_PASSWORD"))
    assert load(top, environ={"BROKER_PASSWORD": "s3"}).data["broker"]["password"] == "s3"


def test_a_substituted_number_for_a_text_field_hints_at_quoting(tmp_path: Path):
    path = write(tmp_path / "c.yaml", VALID.replace("url: http://127.0.0.1:9/hook", "url: u\n    token: ${HOOK_TOKEN}"))
    with pytest.raises(ConfigError) as info:
        validate(load(path, environ={"HOOK_TOKEN": "12345"}), toy_registry())
    assert "expected text (" in info.value.message
    assert "12345" not in str(info.value)  # a token's value is never printed, not even a wrong one
    assert '"${HOOK_TOKEN}"' in info.value.hint


@pytest.mark.parametrize("text", ["${}", "${1X}", "${A", "${A:-${B}}"])
def test_malformed_references(tmp_path: Path, text: str):
    path = write(tmp_path / "c.yaml", f"x: a\nv: '{text}'\n")
    with pytest.raises(ConfigError) as info:
        load(path, environ={"A": "1", "B": "2"})
    assert info.value.line == 2 and "${VAR:-default}" in info.value.hint


# --- --set -----------------------------------------------------------------------------------


def test_set_overrides(tmp_path: Path):
    path = write(tmp_path / "c.yaml", VALID)
    raw = load(path, [
        "strategies.0.profit_target=2%",
        "broker.port=4003",
        "engine.progress=false",
        "feed.symbol='123'",
        "strategies.1.lots=[5, 6]",
        "notify.0.token=${HOOK_TOKEN}",
        "new.deep.key=1.5",
    ], environ={"HOOK_TOKEN": "abc"})
    assert raw.data["strategies"][0]["profit_target"] == "2%"
    assert raw.data["broker"]["port"] == 4003
    assert raw.data["engine"]["progress"] is False
    assert raw.data["feed"]["symbol"] == "123"  # quoted: kept as a string
    assert raw.data["strategies"][1]["lots"] == [5, 6]
    assert raw.data["notify"][0]["token"] == "abc"  # ${VAR} works in --set values too
    assert raw.data["new"] == {"deep": {"key": 1.5}}
    assert raw.where(("broker", "port")) == ("--set", 1, 1)
    assert raw.where(("broker", "host"))[0] == str(path)  # untouched siblings keep their place


def test_set_creates_a_section_that_was_empty(tmp_path: Path):
    path = write(tmp_path / "c.yaml", "mode: paper\nengine:\n")
    assert load(path, ["engine.progress=false"], environ={}).data["engine"] == {"progress": False}


def test_errors_in_set_values_point_at_set(tmp_path: Path):
    path = write(tmp_path / "c.yaml", VALID)
    with pytest.raises(ConfigError) as info:
        validate(load(path, ["strategies.1.profit_target=-1%"], environ={}), toy_registry())
    assert str(info.value).startswith("--set:1:1: profit_target in strategy 'second': must be greater than 0%")


@pytest.mark.parametrize(("override", "problem"), [
    ("mode", "no '='"),
    ("=paper", "key path before '=' is empty"),
    ("strategies..symbol=x", "empty component"),
    ("strategies.2.symbol=x", "strategies has 2 items, so index 2 is past its end"),
    ("strategies.first.symbol=x", "strategies is a list"),
    ("mode.x=1", "mode is a single value ('live')"),
    ("broker.port.x=1", "broker.port is a single value (4001)"),
    ("notify=[1, 2", "not valid YAML"),
])
def test_malformed_set(tmp_path: Path, override: str, problem: str):
    path = write(tmp_path / "c.yaml", VALID)
    with pytest.raises(ConfigError) as info:
        load(path, [override], environ={})
    text = str(info.value)
    assert text.startswith("--set:1:1: ") and problem in text
    assert text.endswith("\n  hint: write --set key.path=value, for example --set strategies.0.profit_target=2%")


# --- units -----------------------------------------------------------------------------------


class Units(BaseModel):
    pct: Percent = Decimal(0)
    pos: PositivePercent = Decimal("0.01")
    dur: Duration = dt.timedelta(0)
    maybe: Duration | None = None


@pytest.mark.parametrize(("text", "fraction"), [
    ("1%", "0.01"),
    ("0.25%", "0.0025"),
    ("0.1%", "0.001"),  # float would give 0.0010000000000000000208...
    ("100%", "1"),
    ("-2.5%", "-0.025"),
    (" 1.5 % ", "0.015"),
    (".5%", "0.005"),
    ("0.000001%", "0.00000001"),
])
def test_percent(text: str, fraction: str):
    value = Units(pct=text).pct
    assert isinstance(value, Decimal)
    assert value == Decimal(fraction)  # exact: a float detour would be off in the 18th digit


def test_percent_is_exact_where_float_is_not():
    assert Units(pct="0.1%").pct * 3 == Decimal("0.003")
    assert Decimal(0.1) / 100 * 3 != Decimal("0.003")


@pytest.mark.parametrize("bare", [0.01, 1, "0.01", "-3"])
def test_percent_needs_a_percent_sign(bare):
    with pytest.raises(ValidationError) as info:
        Units(pct=bare)
    assert info.value.errors()[0]["ctx"]["hint"] == "write a percentage such as 1%"


@pytest.mark.parametrize("bad", ["1 percent", "%", "1%%", "abc", "nan%", True, None, [1], Decimal("NaN")])
def test_percent_rejects_garbage(bad):
    with pytest.raises(ValidationError):
        Units(pct=bad)


@pytest.mark.parametrize("bad", ["0%", "-1%", "-0.0001%"])
def test_positive_percent(bad):
    with pytest.raises(ValidationError) as info:
        Units(pos=bad)
    assert info.value.errors()[0]["msg"] == "must be greater than 0%"
    assert Units(pos="0.0001%").pos == Decimal("0.000001")


def test_non_negative_percent():
    class M(BaseModel):
        buffer: NonNegativePercent

    assert M(buffer="0%").buffer == 0 and M(buffer="0.25%").buffer == Decimal("0.0025")
    with pytest.raises(ValidationError) as info:
        M(buffer="-0.5%")
    assert info.value.errors()[0]["msg"] == "must be 0% or more"


@pytest.mark.parametrize(("text", "expected"), [
    ("120s", dt.timedelta(seconds=120)),
    ("2m", dt.timedelta(minutes=2)),
    ("1h", dt.timedelta(hours=1)),
    ("1d", dt.timedelta(days=1)),
    ("500ms", dt.timedelta(milliseconds=500)),
    ("1.5s", dt.timedelta(seconds=1, milliseconds=500)),
    ("0.1s", dt.timedelta(microseconds=100_000)),
    ("1h30m", dt.timedelta(minutes=90)),
    ("1m 0.5s", dt.timedelta(seconds=60.5)),
    ("0s", dt.timedelta(0)),
    (30, dt.timedelta(seconds=30)),  # a bare number means seconds
    (1.5, dt.timedelta(seconds=1.5)),
    ("45", dt.timedelta(seconds=45)),
    (dt.timedelta(seconds=3), dt.timedelta(seconds=3)),
])
def test_duration(text, expected):
    assert Units(dur=text).dur == expected


@pytest.mark.parametrize(("bad", "words"), [
    ("-5s", "cannot be negative"),
    (-1, "cannot be negative"),
    ("5x", "unknown duration unit 'x'; the units are ms (milliseconds), s (seconds), m (minutes), h (hours), d (days)"),
    ("5 minutes", "unknown duration unit 'minutes'"),
    ("abc", "expected a duration"),
    ("s", "expected a duration"),
    (True, "expected a duration"),
    ("", "expected a duration"),
])
def test_duration_errors(bad, words):
    with pytest.raises(ValidationError) as info:
        Units(dur=bad)
    assert words in info.value.errors()[0]["msg"]


def test_optional_duration():
    assert Units(maybe=None).maybe is None
    assert Units(maybe="2s").maybe == dt.timedelta(seconds=2)


def test_units_serialize_as_written():
    dumped = Units(pct="0.25%", pos="1%", dur="1.5s").model_dump(mode="json")
    assert dumped["pct"] == "0.25%" and dumped["pos"] == "1%" and dumped["dur"] == "1.5s"
    assert Units(pct="0.25%").model_dump()["pct"] == Decimal("0.0025")


# --- masking and dump_yaml -------------------------------------------------------------------


def test_mask():
    data = {
        "broker": {"use": "x", "password": "hunter2", "api_key": "k", "API_SECRET": "s", "client_id": 7},
        "notify": [{"use": "hook", "token": "t", "auth_token": 12345, "key": "k2", "url": "u"}],
        "empty": {"password": None, "token": ""},
        "keys": ["a"], "monkey": "banana", "token_count": 3, "secretary": "x",
    }
    masked = mask(data)
    assert masked == {
        "broker": {"use": "x", "password": "***", "api_key": "***", "API_SECRET": "***", "client_id": 7},
        "notify": [{"use": "hook", "token": "***", "auth_token": "***", "key": "***", "url": "***"}],  # a URL holds its token
        "empty": {"password": None, "token": ""},  # a missing secret stays visibly missing
        "keys": ["a"], "monkey": "banana", "token_count": 3, "secretary": "x",
    }
    assert data["broker"]["password"] == "hunter2"  # a copy: the original is untouched


def test_config_show_output(tmp_path: Path):
    path = write(tmp_path / "c.yaml", VALID.replace("port: 4001", "port: 4001\n  password: ${PW}"))
    text = dump_yaml(mask(load(path, environ={"PW": "hunter2"}).data))
    assert "hunter2" not in text
    assert "password: '***'" in text
    assert text.index("mode:") < text.index("broker:") < text.index("strategies:")  # file order
    assert "strategies:\n  - use: toy_grid\n    symbol: ABC\n    profit_target: 1.5%\n" in text
    assert load(write(tmp_path / "shown.yaml", text), environ={}).data == mask(load(path, environ={"PW": "x"}).data)


# --- reading files ---------------------------------------------------------------------------


def test_config_error_format():
    err = ConfigError("bad thing", path="x.yaml", line=3, col=7, hint="do this")
    assert str(err) == "x.yaml:3:7: bad thing\n  hint: do this"
    assert str(ConfigError("bad", path="x.yaml")) == "x.yaml:1:1: bad"


def test_plain_types_only(tmp_path: Path):
    path = write(tmp_path / "c.yaml", "a: &x {b: 1.5, c: [1, 'q', 0x10]}\nd: *x\ne: 2024-01-31\n")
    data = load(path, environ={}).data
    assert data["a"] == data["d"] == {"b": 1.5, "c": [1, "q", 16]}

    def types(value):
        if isinstance(value, dict):
            return {type(value)} | set().union(*(types(v) for v in value.values()))
        if isinstance(value, list):
            return {type(value)} | set().union(*(types(v) for v in value))
        return {type(value)}

    assert types(data) <= {dict, list, str, int, float, dt.date}


def test_unquoted_reference_in_a_flow_mapping_gets_a_hint(tmp_path: Path):
    path = write(tmp_path / "c.yaml", "mode: paper\nbroker: {use: x, token: ${T}}\n")
    with pytest.raises(ConfigError) as info:
        load(path, environ={"T": "t"})
    assert info.value.line == 2 and "quote a value that contains ${...}" in info.value.hint
    write(path, "mode: paper\nbroker: {use: x, token: '${T}'}\n")
    assert load(path, environ={"T": "t"}).data["broker"]["token"] == "t"


def test_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "nope.yaml", environ={})
    assert str(info.value).startswith(f"{tmp_path / 'nope.yaml'}:1:1: no such file\n  hint: ")
