"""Bad input never shows a traceback: a short draw of the fuzz campaign, and one regression test
for each defect the campaign found.

``benchmarks/fuzz_campaign.py`` is the big draw (10,000 configs, 1,000 data files); here the same
hypothesis strategies run a short, seeded draw through the real CLI in this process: every
command ends with exit 0 (the input was in fact valid) or exit 2 with ``FILE:LINE[:COL]:
message`` and a hint, and a run never starts (no state or output folder) on a bad config.

The regression tests drive ``bothost`` as a user does (the CLI in-process through click's
CliRunner, a few as real subprocesses) and assert what the user sees.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "benchmarks") not in sys.path:
    sys.path.append(str(REPO / "benchmarks"))  # append: benchmarks/profile.py must not shadow `profile`

import fuzz_campaign as fc  # noqa: E402

from conftest import bothost  # noqa: E402

CONFIGS = REPO / "configs"
PAPER = CONFIGS / "tqqq-paper.yaml"
POSITION = re.compile(r"^error: (?P<file>.+?):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<msg>.+)$")


# ============================================================================================
# The short draw
# ============================================================================================


def test_a_short_fuzz_draw_never_shows_a_traceback_and_never_starts_on_a_bad_config(tmp_path):
    """The campaign's own command with a short draw (it drives the CLI in its process; run as a
    child here, away from pytest's deep stack, where CPython 3.11 thrashes its frame chunks)."""
    out = tmp_path / "fuzz.json"
    started = time.perf_counter()
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "fuzz_campaign.py"), "--configs", "300",
                        "--data", "100", "--seed", "20240102", "--subprocess", "2", "--backtest-every", "3",
                        "--out", str(out), "--show-failures", "10"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600)
    took = time.perf_counter() - started
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["failures"] == 0
    assert result["configs"]["mutations_tried"] == 300 and result["data_files"]["mutations_tried"] == 100
    # both answers were seen: the draw is neither all valid nor all broken
    for key, command in (("configs", "validate"), ("data_files", "backtest --data")):
        statuses = result[key]["exit_statuses"][command]
        assert set(statuses) == {"0", "2"}, statuses
    assert result["subprocess_checks"]["run"] == 2 and not result["subprocess_checks"]["failures"]
    assert "config mutations: 300 tried" in r.stdout and "failures in all: 0" in r.stdout
    assert took < 120, f"the short draw took {took:.0f} s"


# ============================================================================================
# Helpers
# ============================================================================================


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    r = fc.Runner(tmp_path_factory.mktemp("fuzz-runner"))
    yield r
    r.close()


def _case(tmp_path: Path, **files: str | bytes) -> Path:
    """A folder with the shipped configs and lot map, plus ``files`` (name -> text)."""
    for name in ("tqqq.yaml", "tqqq-paper.yaml", "tqqq_lots.csv"):
        (tmp_path / name).write_bytes((CONFIGS / name).read_bytes())
    for name, content in files.items():
        path = tmp_path / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return tmp_path


def _bad(res: fc.Result) -> re.Match:
    """Exit 2, one `error: FILE:LINE[:COL]: message` line and a hint, no traceback."""
    text = res.stdout + res.stderr
    assert res.exit == 2, text
    assert "Traceback" not in text and "internal error" not in text, text
    first = res.stderr.strip().split("\n")[0]
    m = POSITION.match(first)
    assert m, first
    assert "\n  hint: " in res.stderr, res.stderr
    return m


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def _backtest(runner, folder: Path, data: str, config: Path = PAPER) -> fc.Result:
    return runner.invoke(["backtest", str(config), "--data", data, "--out", "OUT", "--no-progress"], folder)


# ============================================================================================
# Known defect 1: a data file with no usable row
# ============================================================================================


def test_a_header_only_data_file_is_exit_2_no_data_rows_naming_the_file(runner, tmp_path):
    """It used to exit 0 with "done", 0 ticks, and claim an equity.png it never wrote."""
    (tmp_path / "bars.csv").write_text("timestamp,open,high,low,close,volume\n")
    res = _backtest(runner, tmp_path, "bars.csv")
    m = _bad(res)
    assert m["file"].endswith("bars.csv") and m["line"] == "1"
    assert m["msg"].startswith("no data rows")
    assert "equity.png" not in res.stdout and "done" not in res.stdout
    assert not (tmp_path / "OUT").exists()  # found while the config was checked: nothing started
    # the same as a real command, as a user runs it
    r = bothost("backtest", str(PAPER), "--data", "bars.csv", "--out", "OUT2", cwd=tmp_path)
    assert r.returncode == 2 and "no data rows" in r.stderr and "bars.csv:1:" in r.stderr, r.stderr
    assert not (tmp_path / "OUT2").exists()


@pytest.mark.parametrize("name, text, how_many, why", [
    ("bars.csv", "timestamp,open,high,low,close\n2024-01-02T09:30:00-05:00,nan,1,1,1\n"
                 "2024-01-02T09:31:00-05:00,1,0.5,1,1\nnot a time,1,2,1,1\n2024-01-02T09:32:00-05:00,-1,1,1,1\n",
     "all 4 rows", ["1 unreadable", "1 with a NaN or infinite price", "1 with high below low",
                    "1 with a price of 0 or less"]),
    ("ticks.csv", "timestamp,price\n2024-01-02T14:30:00Z,0\n2024-01-02T14:30:01Z,inf\n",
     "all 2 rows", ["1 with a price of 0 or less", "1 with a NaN or infinite price"]),
    ("quotes.csv", "timestamp,bid,ask\n\n2024-01-02T14:30:00Z,10.5,10.4\n",
     "the only row", ["1 with ask below bid"]),
])
def test_a_data_file_whose_every_row_is_bad_says_how_many_were_skipped_and_why(runner, tmp_path, name, text,
                                                                                how_many, why):
    (tmp_path / name).write_text(text)
    res = _backtest(runner, tmp_path, name)
    m = _bad(res)
    assert m["file"].endswith(name) and m["msg"].startswith(f"no data rows: {how_many} ")
    first_row = next(i for i, line in enumerate(text.split("\n")[1:], 2) if line.strip())
    assert int(m["line"]) == first_row
    for words in why:
        assert words in m["msg"], m["msg"]
    assert not (tmp_path / "OUT").exists()


def test_a_parquet_file_with_no_rows_is_exit_2(runner, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"timestamp": pa.array([], pa.timestamp("ns", "UTC")),
                             "price": pa.array([], pa.float64())}), tmp_path / "t.parquet")
    m = _bad(_backtest(runner, tmp_path, "t.parquet"))
    assert m["file"].endswith("t.parquet") and "no data rows" in m["msg"]


def test_one_good_row_among_bad_ones_is_a_run(runner, tmp_path):
    (tmp_path / "bars.csv").write_text("timestamp,open,high,low,close\n2024-01-02T09:30:00-05:00,nan,1,1,1\n"
                                       "2024-01-02T09:31:00-05:00,50,50.5,49.5,50.1\n")
    res = _backtest(runner, tmp_path, "bars.csv")
    assert res.exit == 0, res.stderr
    summary = json.loads((tmp_path / "OUT" / "summary.json").read_text())
    assert summary["ticks"] == 4 and summary["bad_rows_skipped"] == 1
    assert (tmp_path / "OUT" / "equity.png").exists()


# ============================================================================================
# Known defect 2: a missing file named in the config names the config line that named it
# ============================================================================================


def test_a_missing_lot_map_is_reported_at_the_config_line_that_names_it(runner, tmp_path):
    folder = _case(tmp_path)
    live = folder / "tqqq.yaml"
    live.write_text(live.read_text().replace("lots: tqqq_lots.csv", "lots: nosuch.csv"))
    line = _line_of(live, "lots: nosuch.csv")
    col = live.read_text().splitlines()[line - 1].index("nosuch.csv") + 1
    for command in (["validate", "tqqq-paper.yaml"], ["run", "tqqq-paper.yaml", "--state", "S", "--out", "O"],
                    ["backtest", "tqqq-paper.yaml", "--out", "B"]):
        res = runner.invoke(command, folder)
        _bad(res)
        assert res.stderr.startswith(f"error: tqqq.yaml:{line}:{col}: lots: no such file nosuch.csv\n"), res.stderr
        assert str(folder / "nosuch.csv") in res.stderr  # the hint says where it looked
        for made in ("S", "O", "B"):
            assert not (folder / made).exists(), f"{command[0]} wrote {made}/ on a bad config"


def test_a_missing_default_lot_map_points_at_the_strategy_section(runner, tmp_path):
    folder = _case(tmp_path)
    (folder / "tqqq_lots.csv").unlink()
    live = folder / "tqqq.yaml"
    live.write_text(live.read_text().replace("    lots: tqqq_lots.csv           # level,shares; relative to this file\n", ""))
    m = _bad(runner.invoke(["validate", "tqqq-paper.yaml"], folder))
    assert m["file"] == "tqqq.yaml" and int(m["line"]) == _line_of(live, "- use: tqqq_grid")
    assert m["msg"] == "lots: no such file tqqq_lots.csv (the default)"


def test_a_missing_file_from_set_is_reported_at_set(runner, tmp_path):
    folder = _case(tmp_path)
    res = runner.invoke(["validate", "tqqq-paper.yaml", "--set", "strategies.0.lots=nosuch.csv"], folder)
    _bad(res)
    assert res.stderr.startswith("error: --set:1:1: lots: no such file nosuch.csv\n")
    assert "current folder" in res.stderr


def test_a_missing_data_file_in_the_config_is_reported_at_its_line(runner, tmp_path):
    folder = _case(tmp_path)
    paper = folder / "tqqq-paper.yaml"
    paper.write_text(paper.read_text().replace("synthetic: {seed: 7, bars: 20000}", "data: nosuch.csv"))
    res = runner.invoke(["run", "tqqq-paper.yaml", "--state", "S"], folder)
    m = _bad(res)
    assert (m["file"], int(m["line"])) == ("tqqq-paper.yaml", _line_of(paper, "data: nosuch.csv"))
    assert m["msg"] == "data: no such file nosuch.csv"
    assert not (folder / "S").exists()


def test_a_data_file_named_in_a_base_config_is_relative_to_that_base(runner, tmp_path):
    """`data:` is `ConfigPath | None`: it was resolved against the extending file, not the base."""
    folder = _case(tmp_path)
    (folder / "base").mkdir()
    (folder / "base" / "bars.csv").write_text("timestamp,price\n2024-01-02T14:30:00Z,50.00\n")
    (folder / "base" / "base.yaml").write_text(
        "broker: {use: sim_broker}\nfeed: {use: replay_feed, data: bars.csv}\n"
        "strategies: [{use: tqqq_grid, lots: ../tqqq_lots.csv}]\n")
    (folder / "top.yaml").write_text("extends: base/base.yaml\n")
    res = runner.invoke(["run", "top.yaml", "--state", "S", "--out", "O", "--no-progress"], folder)
    assert res.exit == 0, res.stderr
    assert json.loads((folder / "O" / "summary.json").read_text())["feed"] == str(folder / "base" / "bars.csv")


def test_a_bad_data_file_named_by_the_config_is_found_before_a_run_starts(runner, tmp_path):
    folder = _case(tmp_path, **{"bars.csv": "when,price\n1,2\n"})
    paper = folder / "tqqq-paper.yaml"
    paper.write_text(paper.read_text().replace("synthetic: {seed: 7, bars: 20000}", "data: bars.csv"))
    res = runner.invoke(["run", "tqqq-paper.yaml", "--state", "S"], folder)
    m = _bad(res)
    assert m["file"].endswith("bars.csv") and "no time column" in m["msg"]
    assert not (folder / "S").exists()
    assert runner.invoke(["validate", "tqqq-paper.yaml"], folder).exit == 2  # validate looks too


def test_a_bad_lot_map_is_found_before_a_run_starts(runner, tmp_path):
    folder = _case(tmp_path, **{"tqqq_lots.csv": "0,5\n2,3\n"})
    res = runner.invoke(["run", "tqqq-paper.yaml", "--state", "S"], folder)
    assert res.exit == 2 and "tqqq_lots.csv:2: level 1 is missing" in res.stderr, res.stderr
    assert not (folder / "S").exists()


# ============================================================================================
# Defects the campaign found: configs
# ============================================================================================


@pytest.mark.parametrize("text, fragment", [
    ("mode: paper\nbroker: {use: sim_broker\n", "close the [ or {"),
    ("mode: paper\nbroker:\n  use: sim_broker\n use: x\n", "indentation"),
    ("mode: paper\nbroker: use: sim_broker\n", "quote the value"),
    ("mode: paper\nbroker: @x\n", "quote a value that starts with @"),
    ("mode: paper\nbroker: *nope\n", "anchor"),
    ("mode: paper\n---\nmode: live\n", "one YAML document"),
    ("mode: 'paper\n", "close the quote"),
    ("mode: !!float x\n", "remove the !!tag"),
    ("mode: paper\x07\n", "control character"),
    ("", "start with lines such as"),
    ("null\n", "start with lines such as"),
])
def test_every_yaml_mistake_has_a_position_and_a_hint(runner, tmp_path, text, fragment):
    (tmp_path / "c.yaml").write_text(text)
    res = runner.invoke(["validate", "c.yaml"], tmp_path)
    m = _bad(res)
    assert m["file"] == "c.yaml" and fragment in res.stderr, res.stderr


def test_an_anchor_defined_twice_prints_no_library_warning(runner, tmp_path):
    """ruamel's ReusedAnchorWarning went to stderr above the error (or above nothing at all)."""
    (tmp_path / "c.yaml").write_text(PAPER.read_text() + "a: &x [1]\nb: &x [2]\nc: *x\n")
    (tmp_path / "tqqq.yaml").write_bytes((CONFIGS / "tqqq.yaml").read_bytes())
    res = runner.invoke(["config", "show", "c.yaml"], tmp_path)
    assert res.exit == 0 and res.stderr == "", res.stderr
    assert "c:\n  - 2\n" in res.stdout  # the later anchor counts, as YAML says
    r = bothost("validate", "c.yaml", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: c.yaml:"), r.stderr  # unknown key 'a', nothing above it


def test_a_control_character_is_reported_where_it_is(runner, tmp_path):
    (tmp_path / "c.yaml").write_text("mode: paper\nbroker:\n  use: sim\x00broker\n")
    m = _bad(runner.invoke(["validate", "c.yaml"], tmp_path))
    assert (m["line"], m["col"]) == ("3", "11") and "U+0000" in m["msg"]


@pytest.mark.parametrize("encoding, words", [("utf-16", "UTF-16 text"), ("utf-32", "UTF-32 text"),
                                             ("latin-1", "not UTF-8 text (byte 0xe9)")])
def test_a_config_in_another_encoding_says_which_and_how_to_convert_it(runner, tmp_path, encoding, words):
    (tmp_path / "c.yaml").write_bytes("mode: paper # café\n".encode(encoding))
    res = runner.invoke(["validate", "c.yaml"], tmp_path)
    m = _bad(res)
    assert words in m["msg"] and "iconv" in res.stderr


def test_an_alias_bomb_is_refused_at_once(runner, tmp_path):
    """`a1: [*a0 x4]` ... 30 levels: 4**30 values once expanded (it used to eat all memory)."""
    (tmp_path / "c.yaml").write_text("mode: paper\n" + fc.billion_laughs(30))
    started = time.perf_counter()
    res = runner.invoke(["config", "show", "c.yaml"], tmp_path)
    m = _bad(res)
    assert "expands to more than 100,000 values" in m["msg"]
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("text", [fc.deep_nesting(3000, flow=True), fc.deep_nesting(500, flow=False)])
def test_runaway_nesting_is_bad_input(runner, tmp_path, text):
    (tmp_path / "c.yaml").write_text("mode: paper\n" + text)
    m = _bad(runner.invoke(["validate", "c.yaml"], tmp_path))
    assert "nested" in m["msg"]


@pytest.mark.parametrize("override, words", [
    ("broker=[&a [*a]]", "refers to itself"),
    ("broker=" + "[" * 2000 + "]" * 2000, "nested"),
    ("broker=[!!float x]", "cannot be read"),
    ("broker=[!!binary AAAA]", "unsupported"),
    ("strategies.²=1", "index it with a number"),
    ("a" + ".a" * 100 + "=1", "more than 64 components"),
])
def test_odd_set_values_are_bad_input_at_set(runner, tmp_path, override, words):
    res = runner.invoke(["validate", str(PAPER), "--set", override], tmp_path)
    m = _bad(res)
    assert m["file"] == "--set" and words in m["msg"], m["msg"]


def test_an_extends_name_too_long_for_the_file_system_is_bad_input(runner, tmp_path):
    (tmp_path / "c.yaml").write_text("extends: " + "a" * 300 + ".yaml\n")
    m = _bad(runner.invoke(["validate", "c.yaml"], tmp_path))
    assert (m["file"], m["line"]) == ("c.yaml", "1") and "extends:" in m["msg"]


def test_a_hex_key_is_shown_as_the_number_it_is_and_a_boolean_key_is_refused(runner, tmp_path):
    (tmp_path / "c.yaml").write_text("mode: paper\n0x1F: 1\n")
    res = runner.invoke(["config", "show", "c.yaml"], tmp_path)
    assert res.exit == 0 and "31: 1" in res.stdout, res.stdout + res.stderr
    (tmp_path / "d.yaml").write_text("mode: paper\ntrue: 1\n")
    m = _bad(runner.invoke(["config", "show", "d.yaml"], tmp_path))
    assert (m["line"], m["col"]) == ("2", "1") and "not true" in m["msg"]


def test_a_wrong_use_or_id_never_prints_the_secrets_under_it(runner, tmp_path):
    folder = _case(tmp_path)
    live = folder / "tqqq.yaml"
    live.write_text(live.read_text().replace("  - use: tqqq_grid\n", "  - use: {key: '${ALPACA_API_KEY}'}\n"))
    res = runner.invoke(["validate", "tqqq.yaml"], folder)
    m = _bad(res)
    assert "not a mapping" in m["msg"]
    assert fc.SECRET_VALUES["ALPACA_API_KEY"] not in res.stdout + res.stderr
    res = runner.invoke(["validate", "tqqq.yaml", "--set", "feed.key=[1]", "--set", "strategies.0.use=tqqq_grid"], folder)
    assert fc.SECRET_VALUES["ALPACA_API_KEY"] not in res.stdout + res.stderr


def test_a_live_port_without_mode_live_is_refused_before_any_state_folder(runner, tmp_path):
    folder = _case(tmp_path)
    res = runner.invoke(["run", "tqqq.yaml", "--set", "feed={use: ib_feed}", "--state", "S"], folder,
                        {"IB_PORT": "7496"})
    m = _bad(res)
    assert "LIVE account" in m["msg"] and "mode: live" in res.stderr
    assert (m["file"], int(m["line"])) == ("tqqq.yaml", _line_of(folder / "tqqq.yaml", "broker:"))
    assert not (folder / "S").exists()


@pytest.mark.parametrize("state_dir, words", [("tqqq.yaml", "is a file"), ("tqqq.yaml/x", "which is a file")])
def test_a_state_dir_that_cannot_be_a_folder_is_bad_input_at_its_line(runner, tmp_path, state_dir, words):
    folder = _case(tmp_path)
    paper = folder / "tqqq-paper.yaml"
    paper.write_text(paper.read_text() + f"state_dir: {state_dir}\n")
    m = _bad(runner.invoke(["validate", "tqqq-paper.yaml"], folder))
    assert (m["file"], int(m["line"])) == ("tqqq-paper.yaml", _line_of(paper, "state_dir:"))
    assert words in m["msg"]


@pytest.mark.parametrize("override, words", [
    ("engine.snapshot_timeout=0s", "longer than 0s"),  # was exit 4 "unreachable" for the simulated venue
    ("strategies.0.profit_target=99999999999999999999999999%", "at most 1000%"),  # was an SQLite OverflowError
    ("strategies.0.l0_buffer=99999999999999999999999%", "at most 1000%"),
    ("broker.commission_per_share=99999999999999999999999999999", "must be at most 1000000"),  # was decimal.InvalidOperation
    ("broker.database=" + "a" * 300, "at most 200"),  # was OSError: File name too long
    ("broker.database=''", "plain file name"),
    ("broker.inactive_refs=['*']", "not a regular expression"),  # was re.error at the first order
])
def test_values_a_run_could_not_survive_are_refused_by_validation(runner, tmp_path, override, words):
    (tmp_path / "tiny.csv").write_bytes(runner.tiny.read_bytes())
    res = runner.invoke(["backtest", str(PAPER), "--data", "tiny.csv", "--out", "OUT", "--set", override], tmp_path)
    m = _bad(res)
    assert m["file"] == "--set" and words in m["msg"], m["msg"]
    assert not (tmp_path / "OUT").exists()


@pytest.mark.parametrize("override, words", [
    ("feed.chunk_rows=9223372036854775808", "at most 100000000"),  # was an OverflowError in the reader
    ("feed.synthetic.seed=-1", "at least 0"),  # was numpy's ValueError
    ("feed.synthetic.interval=100000000000", "at most 31622400"),  # was an OverflowError
    ("feed.synthetic={bars: 10000000000, interval: 3600}", "past the year 2262"),
    ("feed.synthetic.start_price=1e300", "at most 1000000"),
])
def test_replay_feed_settings_a_replay_could_not_survive_are_refused(runner, tmp_path, override, words):
    res = runner.invoke(["backtest", str(PAPER), "--out", "OUT", "--set", override], tmp_path)
    m = _bad(res)
    assert m["file"] == "--set" and words in m["msg"], m["msg"]
    assert not (tmp_path / "OUT").exists()


def test_strategies_that_are_not_a_list_are_bad_input_for_backtest(runner, tmp_path):
    """`bothost backtest` looks for the first strategy's symbol: it used to crash on `strategies: 5`."""
    folder = _case(tmp_path)
    live = folder / "tqqq.yaml"
    text = live.read_text()
    live.write_text(text[: text.index("strategies:")] + "strategies: 5\n")
    res = runner.invoke(["backtest", "tqqq.yaml", "--data", str(runner.tiny), "--out", "OUT"], folder)
    m = _bad(res)
    assert m["msg"].startswith("strategies: expected a list")


# ============================================================================================
# Defects the campaign found: data files
# ============================================================================================


def test_a_short_line_with_latin1_bytes_is_one_skipped_row_not_a_broken_file(runner, tmp_path):
    """Arrow decodes a line with the wrong number of fields for its skip handler, failed on a
    Latin-1 byte, printed "Exception ignored ..." and gave the whole file up."""
    text = "timestamp,price\n2024-01-02T14:30:00Z,50.00\n".encode() + "# prix en €\n".encode("cp1252") + \
        b"2024-01-02T14:30:01Z,50.01\n"
    (tmp_path / "ticks.csv").write_bytes(text)
    res = _backtest(runner, tmp_path, "ticks.csv")
    assert res.exit == 0, res.stderr
    assert "Exception ignored" not in res.stderr and "Traceback" not in res.stderr
    summary = json.loads((tmp_path / "OUT" / "summary.json").read_text())
    assert summary["ticks"] == 2 and summary["bad_rows_by_reason"]["unparseable"] == 1


@pytest.mark.parametrize("content, line, col, words", [
    ("timestamp,price\n2024-01-02T14:30:00Z,50\n".encode("utf-16"), 1, None, "UTF-16 text"),
    ("timestamp,price\n2024-01-02T14:30:00Z,50\n".encode("utf-16-le"), 1, None, "UTF-16 text"),
    (b"timestamp,price\n2024-01-02T14:30:00Z,5\x000\n", 2, 23, "binary data"),
    ("timestämp,price\n".encode("latin-1") + b"2024-01-02T14:30:00Z,50\n", 1, 7, "not UTF-8 text (byte 0xe4)"),
    (b"PAR1" + bytes(64), 1, None, "not a readable Parquet file"),
    (b"", 1, None, "the file is empty"),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), 1, None, "PNG image"),
])
def test_a_file_that_is_not_data_is_reported_with_a_line(runner, tmp_path, content, line, col, words):
    (tmp_path / "data.csv").write_bytes(content)
    m = _bad(_backtest(runner, tmp_path, "data.csv"))
    assert m["file"].endswith("data.csv") and int(m["line"]) == line and words in m["msg"], m.group(0)
    if col is not None:
        assert int(m["col"]) == col
    assert not (tmp_path / "OUT").exists()


def test_a_file_with_old_mac_line_ends_is_read(runner, tmp_path):
    (tmp_path / "cr.csv").write_bytes(b"timestamp,price\r2024-01-02T14:30:00Z,50.00\r2024-01-02T14:30:01Z,50.01\r")
    res = _backtest(runner, tmp_path, "cr.csv")
    assert res.exit == 0, res.stderr
    assert json.loads((tmp_path / "OUT" / "summary.json").read_text())["ticks"] == 2
