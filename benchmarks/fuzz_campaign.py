"""Fuzz campaign: mutated configs and garbage data files through the real CLI, in-process.

The question it answers (issue "trustworthy under faults and bad input"): whatever a user feeds
`bothost validate`, `bothost config show` and `bothost backtest --data F`, does the command end
with exit 0 (the input was in fact valid) or exit 2 with ``FILE:LINE[:COL]: message`` and a
``hint:`` line, never a traceback or an internal error (exit 1), and does a run never start
(no state or output folder written) on a config that is bad?

    python benchmarks/fuzz_campaign.py                       # 10,000 configs + 1,000 data files
    python benchmarks/fuzz_campaign.py --configs 300 --data 100 --seed 1
    python benchmarks/fuzz_campaign.py --show-failures 20

Inputs come from hypothesis strategies (``config_cases()``, ``data_cases()``):

* configs start from ``configs/tqqq-paper.yaml`` and ``configs/tqqq.yaml`` (and the lot map
  beside them) and are mutated: keys dropped or renamed, values of the wrong type, bad units
  ("1%%", "-3s"), huge numbers, unicode, YAML syntax damage, other encodings, bad ``extends:``,
  bad ``${ENV}`` references and environment values, bad ``--set`` overrides;
* data files are random bytes, huge lines, UTF-16 / latin-1 text, mixed time zones, BOMs, CRLF,
  header-only files, missing columns, NaN/inf/negative prices, time going backwards, Parquet
  files that are not Parquet, and valid bar/tick/quote files (CSV and Parquet) whose exact
  tick count is known.

Every case runs through ``bothost.cli:cli`` with click's CliRunner in this process (a handful
again as subprocesses, to check that the in-process answers are the real ones). The figures
go to stdout and ``benchmarks/results/fuzz_campaign.json``. Exit status 0 when no case failed,
1 otherwise. ``tests/test_fuzz_inputs.py`` runs a short draw of the same strategies in CI.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
RESULTS = REPO / "benchmarks" / "results" / "fuzz_campaign.json"

PAPER_NAME, LIVE_NAME, LOTS_NAME = "tqqq-paper.yaml", "tqqq.yaml", "tqqq_lots.csv"
PAPER_TEXT = (CONFIGS / PAPER_NAME).read_text()
LIVE_TEXT = (CONFIGS / LIVE_NAME).read_text()
LOTS_TEXT = (CONFIGS / LOTS_NAME).read_text()

#: The environment every case starts from: the live config's secrets are set (so that it
#: validates), IB_* and ALPACA_DATA_URL are unset (their defaults apply).
SECRET_VALUES = {"ALPACA_API_KEY": "AKFUZZKEY0123456789", "ALPACA_SECRET_KEY": "SKFUZZSECRET0123456789"}
BASE_ENV: dict[str, str | None] = {**SECRET_VALUES, "IB_HOST": None, "IB_PORT": None, "IB_CLIENT_ID": None,
                                   "ALPACA_DATA_URL": None, "FUZZ_EMPTY": "", "FUZZ_TEXT": "hello"}
SECRET_KEY_RE = re.compile(r"(key|secret|password|token|url|urls)$", re.I)

#: `error: FILE:LINE[:COL]: message` (FILE may itself hold colons only in the --set pseudo name).
POSITION_RE = re.compile(r"^(?:error|plugin error): (?P<file>.+?):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<msg>.+)$")


# ============================================================================================
# Cases
# ============================================================================================


@dataclass
class ConfigCase:
    family: str
    ops: list[str]
    files: dict[str, bytes]  # written into a fresh folder
    main: str  # the file the commands are given
    overrides: tuple[str, ...] = ()
    env: dict[str, str | None] = field(default_factory=dict)

    def key(self) -> str:
        h = hashlib.sha1()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + self.files[name] + b"\0")
        h.update(repr((self.main, self.overrides, sorted(self.env.items()))).encode())
        return h.hexdigest()


@dataclass
class DataCase:
    family: str
    ops: list[str]
    name: str  # the file's name (its extension matters to nobody but the user)
    content: bytes
    valid: bool | None = None  # True: the file is usable; False: no row can be; None: unknown
    ticks: int | None = None  # the exact tick count of a usable file
    bad: int = 0  # and its exact count of bad rows

    def key(self) -> str:
        return hashlib.sha1(self.name.encode() + b"\0" + self.content).hexdigest()


# --------------------------------------------------------------------------------------------
# Config mutations
# --------------------------------------------------------------------------------------------


def _yaml_rt():
    """Round-trip YAML: a mutated file keeps its comments, quotes and layout elsewhere (so a
    quoted "${VAR:-}" stays text, as in the shipped files)."""
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.allow_unicode = True
    y.width = 4096
    return y


_PARSED: dict[str, Any] = {}


def _load(text: str) -> Any:
    """Parsed YAML (a fresh copy), or None when the text is no longer YAML (an earlier mutation
    broke it). The shipped files are parsed once: ruamel's round-trip parser is most of a draw."""
    if text in (PAPER_TEXT, LIVE_TEXT):
        if text not in _PARSED:
            _PARSED[text] = _yaml_rt().load(text)
        return copy.deepcopy(_PARSED[text])
    try:
        return _yaml_rt().load(text)
    except Exception:
        return None


def _dump(data: Any) -> str:
    buf = io.StringIO()
    _yaml_rt().dump(data, buf)
    return buf.getvalue()




def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append(prefix + (i,))
            out += _paths(v, prefix + (i,))
    return out


def _get(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


def _parent(node: Any, path: tuple) -> tuple[Any, Any]:
    return _get(node, path[:-1]), path[-1]


WEIRD_TEXT = [
    "", " ", "x", "TQQQ\u200b", "\U0001f4a5", "ümlaut", "日本語", "\u202eevil", "a" * 5000, "\t", "\n", "\\",
    "null", "~", "yes", "no", "on", "0x1F", "0o17", "1_000", ".inf", ".nan", "-.inf", "1e400", "1e-400",
    "'quoted'", '"dq"', "#comment", "- item", "a: b", "{a: 1}", "[1, 2]", "&anchor", "*alias", "!tag",
    "%", "@", "`", "|", ">", "?", "${IB_PORT}", "$${X}", "C:\\path\\file.csv", "../../etc/passwd", "/dev/null",
    "/", ".", "..", "~", "nosuch.csv", "tqqq.yaml", "\x00", "\x7f", "\ufeff", "\u2028",
]
BAD_PERCENT = ["1%%", "%", "1", "0.01", "1 %", " 1% ", "+1%", "-1%", "0%", "-0%", "100%", "1000%", "1e3%",
               "1e400%", "1E-400%", "99999999999999999999999999%", "1.5.5%", "１%", "1٫5%", "½%", "inf%",
               "nan%", "1%2", "%1", "1‰", "1 percent", ".%", "0.%", ".5%", "1,5%", "0x10%", "1_0%"]
BAD_DURATION = ["-3s", "3", "-0s", "0s", "0", "3ss", "s", "1h30", "1h30m", "3m2", "1µs", "1us", "1e400s",
                "99999999999999999999d", "1e3s", "1.5.5s", "１s", "2 s", "2S", "2sec", "+2s", "--2s", "1d-1s",
                ".5s", "5.s", "1w", "inf", "nan", "-inf", "1e-400s", "0.0000001ms", "9" * 40 + "ms", "P1D"]
HUGE_NUMBERS = [10**19, -(10**19), 10**400, 2**63, 2**63 - 1, -(2**63), 2**64, 1e308, -1e308, float("inf"),
                float("-inf"), float("nan"), 1e-320, -0.0, 0, -1, 1, 0.5, 65536, 65535, 99999]
WRONG_TYPES: list[Any] = [None, True, False, [], {}, [1, 2], {"a": 1}, [[[]]], {"use": "x"}, "x", 0, 1.5,
                          [None], {"": None}]
PLUGIN_NAMES = ["sim_broker", "replay_feed", "tqqq_grid", "bell", "apprise", "ib_broker", "ib_feed", "alpaca_feed",
                "sim_brokr", "tqqq-grid", "TQQQ_GRID", "", " ", "nosuch", "sim_broker ", "bothost", "None"]
KEY_TYPOS = ["profit_targt", "buystep", "Lots", "lots ", "l0_timout", "queue-depth", "prot", "hots", "usee",
             "symbl", "engine2", "strategy", "notfy", "brokers", "mode ", "Mode", "MODE", "ｍode", "state-dir",
             "extends ", "Extends", "extend", "1", "true", "null", "key with spaces", "ключ", "🔑"]
NEW_KEYS: list[tuple[tuple, Any]] = [
    ((), {"unknown_top": 1}), (("engine",), {"skip_quiet_ticks": "maybe"}), (("engine",), {"checkpoint_every": "-3s"}),
    (("engine",), {"stale_after": "1%%"}), (("engine",), {"snapshot_retries": -1}), (("engine",), {"progress": "yes"}),
    (("engine",), {"snapshot_timeout": 10**400}), (("engine",), {"snapshot_retries": 10**400}),
    (("engine",), {"bogus": 1}), ((), {"state_dir": "/dev/null/x"}), ((), {"state_dir": ""}),
    ((), {"state_dir": 12}), ((), {"mode": "live"}), ((), {"mode": "LIVE"}), ((), {"mode": None}),
    ((), {"notify": [{"use": "apprise"}]}), ((), {"notify": [{"use": "apprise", "urls": []}]}),
    ((), {"notify": [{"use": "apprise", "urls": ["not a url"]}]}), ((), {"notify": "bell"}),
    ((), {"notify": [{"use": "bell", "x": 1}]}), ((), {"notify": [None]}), ((), {"notify": [{"use": "bell"}] * 3}),
    ((), {"strategies": []}), ((), {"strategies": {}}), ((), {"strategies": None}), ((), {"strategies": "tqqq_grid"}),
    ((), {"strategies": [{"use": "tqqq_grid"}, {"use": "tqqq_grid"}]}),
    ((), {"strategies": [{"use": "tqqq_grid", "id": "a"}, {"use": "tqqq_grid", "id": "a"}]}),
    ((), {"strategies": [{"use": "tqqq_grid", "id": "../x"}]}), ((), {"strategies": [{"use": "tqqq_grid", "id": 3}]}),
    ((), {"strategies": [{"use": "tqqq_grid", "lots": "nosuch.csv"}]}),
    ((), {"strategies": [{"use": "tqqq_grid", "lots": "tqqq.yaml"}]}),
    ((), {"strategies": [{"use": "tqqq_grid", "lots": "."}]}),
    ((), {"strategies": [{"use": "tqqq_grid", "lots": ""}]}),
    ((), {"strategies": [{"use": "tqqq_grid", "lots": "bad_lots.csv"}]}),
    ((), {"strategies": [{"use": "tqqq_grid", "lots": "/dev/null"}]}),
    ((), {"feed": {"use": "replay_feed", "data": "nosuch.csv"}}),
    ((), {"feed": {"use": "replay_feed", "data": "garbage.csv"}}),
    ((), {"feed": {"use": "replay_feed", "data": "header_only.csv"}}),
    ((), {"feed": {"use": "replay_feed", "data": "."}}),
    ((), {"feed": {"use": "replay_feed", "data": "tiny.csv", "synthetic": {"seed": 1}}}),
    ((), {"feed": {"use": "replay_feed", "synthetic": {"bars": 0}}}),
    ((), {"feed": {"use": "replay_feed", "synthetic": {"bars": 10**400}}}),
    ((), {"feed": {"use": "replay_feed", "synthetic": {"interval": "-3s"}}}),
    ((), {"feed": {"use": "replay_feed", "synthetic": {"interval": "500ms"}}}),
    ((), {"feed": {"use": "replay_feed", "synthetic": {"volatility": "1%%"}}}),
    ((), {"feed": {"use": "replay_feed", "synthetic": {"seed": -1}}}),
    ((), {"feed": {"use": "replay_feed", "chunk_rows": 0}}),
    ((), {"broker": {"use": "sim_broker", "partial_fill_shares": -1}}),
    ((), {"broker": {"use": "sim_broker", "partial_fill_shares": 10**400}}),
    ((), {"broker": {"use": "ib_broker", "port": 7496}}), ((), {"broker": {"use": "ib_broker", "port": 4001}}),
    ((), {"broker": {"use": "ib_broker", "port": "x"}}), ((), {"broker": {"use": "ib_broker", "port": 10**6}}),
    ((), {"broker": {"use": "ib_broker", "connect_timeout": "-3s"}}),
    ((), {"broker": {"use": "ib_broker", "client_library": "ib_fake"}}),
    ((), {"broker": {"use": "ib_broker", "reconnect_for": "1e400s"}}),
    ((), {"extends": "nosuch.yaml"}), ((), {"extends": PAPER_NAME}), ((), {"extends": LIVE_NAME}),
]

#: Values a model may well accept that push a run to its limits (what a run does with them is
#: under test: exit 0 or a clear exit 2, never an internal error).
EXTREMES: dict[tuple, list[Any]] = {
    ("strategies", 0, "profit_target"): ["99999999999999999999999999%", "1000000%", "0.0000000001%", "100%", "1000%"],
    ("strategies", 0, "buy_step"): ["99.9999%", "0.0001%", "50%", "99.5%"],
    ("strategies", 0, "l0_buffer"): ["99999999999%", "0%", "99999999999999999999999%", "100%"],
    ("strategies", 0, "l0_timeout"): ["0.000001s", "99999999d", "1ms", "0.5s"],
    ("strategies", 0, "queue_depth"): [0, 10**21, 88, 1000, 2**63],
    ("strategies", 0, "symbol"): ["\U0001f4a5", "a" * 300, "tqqq", " X ", "SPY"],
    ("strategies", 0, "lots"): ["bad_lots.csv", "garbage.csv", "header_only.csv", LIVE_NAME, "sub/base.yaml"],
    ("strategies", 0, "entry_order"): ["limit"],
    ("strategies", 0, "on_orphan_shares"): ["adopt"],
    ("strategies", 0, "id"): ["a" * 300, "grid.1", "-x", "x" * 5],
    ("feed", "chunk_rows"): [1, 10**12, 2**63, 3],
    ("feed", "symbol"): ["SPY", "\U0001f4a5", "a" * 300],
    ("feed", "synthetic"): [{"bars": 10**12}, {"interval": "1ms"}, {"volatility": 1e308}, {"start_price": 1e-300},
                            {"drift": -1e308}, {"seed": 2**200}, {"seed": -1}, {"interval": 10**11},
                            {"interval": "366d"}, {"interval": "1d"}, {"volatility": "1000%"}, {"start_price": 0.01},
                            {"bars": 1}, {"seed": 0, "volatility": 0}],
    ("broker", "partial_fill_shares"): [1, 10**21, 0, -1],
    ("broker", "commission_per_share"): ["99999999999", 1e308, "1e400", 0, "0.0000001"],
    ("broker", "commission_min"): ["99999999999", 1e308, 0],
    ("broker", "database"): ["", "/dev/null", "../x.sqlite", ".", "sub/dir/venue.sqlite", "a" * 300, "x\x00"],
    ("broker", "duplicate_execs"): [1, 10**20],
    ("broker", "disconnect_at_execs"): [[0], [-1], [10**20]],  # ([1] is its purpose: exit 4 on the first fill)
    ("broker", "reject_refs"): [["tqqq_grid"], [""], ["["]],
    ("broker", "inactive_refs"): [["tqqq_grid"], [""], ["*"]],
    ("broker", "broker_like"): [True],
    ("broker", "execs_after_status"): [True],
    ("engine", "checkpoint_every"): ["0s", "1ms", "99999999d"],
    ("engine", "stale_after"): ["0s", "1ms", "99999999d"],
    ("engine", "snapshot_timeout"): ["0s", "1ms", "99999999d"],
    ("engine", "snapshot_retries"): [0, 10**20],
    ("engine", "skip_quiet_ticks"): [False],
    ("engine", "progress"): [False],
    ("state_dir",): ["/dev/null", "/dev/null/x", "tqqq.yaml", "tqqq.yaml/x", "", "~nosuchuser/x", "a" * 5000],
    ("mode",): ["live"],
}

SET_PATHS = ["mode", "state_dir", "broker", "broker.use", "broker.port", "broker.host", "broker.client_id",
             "feed", "feed.use", "feed.data", "feed.synthetic", "feed.synthetic.bars", "feed.synthetic.seed",
             "feed.synthetic.interval", "feed.key", "strategies", "strategies.0", "strategies.0.profit_target",
             "strategies.0.buy_step", "strategies.0.lots", "strategies.0.l0_timeout", "strategies.0.queue_depth",
             "strategies.0.use", "strategies.0.id", "strategies.1.symbol", "strategies.x", "strategies.-1",
             "strategies.0.profit_target.x", "notify", "notify.0", "notify.0.use", "engine", "engine.checkpoint_every",
             "engine.stale_after", "engine.snapshot_retries", "engine.nope", "extends", "", ".", "a..b", "mode.x",
             "strategies.99", "strategies.00", "strategies.0.", " mode ", "mode\u200b", "ümlaut", "broker.port.0"]
SET_VALUES = ["", "x", "1%", "2%", "1%%", "-3s", "120s", "0", "-1", "3", "1e400", str(10**40), "true", "null", "~",
              "[", "]", "{", "}", "[1, 2]", "{use: sim_broker}", "{use: nosuch}", "{use: ib_broker, port: 7496}",
              "[{use: tqqq_grid}]", "[]", "{}", "'quoted'", '"1%"', "'", '"', "${IB_PORT}", "${NOSUCH}", "${",
              "${}", "${1X}", "$${X}", "live", "paper", "nosuch.csv", "tqqq.yaml", "\U0001f4a5", "a: b", "- x",
              "&a [*a]", "!!python/object:os.system", "1\n2", "\x00", "{a: [1, {b: ]}", "=", "==", "%", "@x"]

ENV_REFS = ["${IB_PORT}", "${IB_PORT:-7497}", "${IB_PORT:-}", "${NOSUCH}", "${NOSUCH:-x}", "${NOSUCH:-1%}",
            "${NOSUCH:-${IB_PORT}}", "${", "${}", "${ }", "${1X}", "${X-Y}", "${X:=1}", "$${X}", "$${", "$X",
            "${X", "${X}}", "${{X}}", "${FUZZ_EMPTY}", "${FUZZ_EMPTY:-3}", "${FUZZ_TEXT}", "pre${FUZZ_TEXT}post",
            "${ALPACA_API_KEY}", "${ALPACA_SECRET_KEY}", "${\u00fc}", "${X:-a:b}", "${X:-[1,2]}", "${X:-{a: 1}}",
            "${X:-}}", "${X:-#c}", "${IB_HOST}${IB_PORT}", "${X:--3s}", "${PATH}"]
ENV_VALUES = ["", " ", "abc", "7496", "4001", "-1", "0", "99999999999999999999", "[1, 2]", "{a: 1}", "7497 # c",
              "0x1d49", "1e3", "\u0667\u0664\u0669\u0667", "true", "null", "~", "7497\n", " 7497", "a: b",
              "http://", "not a url", "ftp://x", "http://[::1", "http://127.0.0.1:1", "${IB_PORT}", "$${X}",
              "\U0001f4a5", "x" * 10000, "'7497'", "1%", "-3s", "- a", "&a", "*a", "!!binary x", "|", ">"]
ENV_NAMES = ["IB_HOST", "IB_PORT", "IB_CLIENT_ID", "ALPACA_API_KEY", "ALPACA_SECRET_KEY", "ALPACA_DATA_URL",
             "FUZZ_TEXT", "FUZZ_EMPTY"]

TEXT_INSERTS = [":", ": ", "{", "}", "[", "]", "-", "- ", "\t", " ", "  ", "\n", "&a ", "*a", "!", "!!str ",
                "!!python/object/apply:os.system ['true']", "%YAML 1.1\n", "---\n", "...\n", "'", '"', "#", "|", ">",
                "\x00", "\xff", "\ufeff", "\r", "\u2028", "<<: *x\n", "? ", ",", "@", "`", "\\", "%", "\x1b[31m",
                "\u00a0", "\u3000", "key: value\n", "- - -\n", "a: &a [*a]\n", "{{{{{{{{{{", "[[[[[[[[[[",
                "!!binary |\n  AAAA\n", "!!timestamp x", "!!float x", "!!int x", "!!bool x", "!!null x",
                "!!set {a, b}", "!!omap [a: 1]", "=", "$", "${", "}}"]


def billion_laughs(depth: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol"]']
    for i in range(1, depth):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 4)}]")
    return "\n".join(lines) + "\n"


def deep_nesting(depth: int, flow: bool) -> str:
    if flow:
        return "x: " + "[" * depth + "]" * depth + "\n"
    return "".join(" " * i + f"k{i}:\n" for i in range(depth)) + " " * depth + "v: 1\n"


@st.composite
def text_damage(draw, text: str) -> tuple[str | bytes, list[str]]:
    """1-4 edits at the character level; sometimes the result is re-encoded to bytes."""
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "dup_line", "drop_line", "swap_lines", "indent", "dedent",
                                   "truncate", "tabify", "replace_char", "join_lines", "append"]))
        lines = text.split("\n")
        pos = draw(st.integers(0, max(0, len(text))))
        li = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "insert":
            s = draw(st.sampled_from(TEXT_INSERTS) | st.text(min_size=1, max_size=8))
            text = text[:pos] + s + text[pos:]
            op += f"@{pos}:{s!r}"
        elif op == "delete":
            n = draw(st.integers(1, 20))
            text = text[:pos] + text[pos + n:]
            op += f"@{pos}+{n}"
        elif op == "dup_line":
            lines.insert(li, lines[li])
            text = "\n".join(lines)
        elif op == "drop_line":
            del lines[li]
            text = "\n".join(lines)
        elif op == "swap_lines":
            lj = draw(st.integers(0, max(0, len(lines) - 1)))
            lines[li], lines[lj] = lines[lj], lines[li]
            text = "\n".join(lines)
        elif op == "indent":
            lines[li] = " " * draw(st.integers(1, 5)) + lines[li]
            text = "\n".join(lines)
        elif op == "dedent":
            lines[li] = lines[li].lstrip(" ")
            text = "\n".join(lines)
        elif op == "truncate":
            text = text[:pos]
        elif op == "tabify":
            lines[li] = re.sub(r"^( +)", lambda m: "\t" * max(1, len(m.group(1)) // 2), lines[li])
            text = "\n".join(lines)
        elif op == "replace_char":
            if text:
                p = min(pos, len(text) - 1)
                text = text[:p] + draw(st.characters()) + text[p + 1:]
        elif op == "join_lines":
            if li + 1 < len(lines):
                lines[li:li + 2] = [lines[li] + " " + lines[li + 1]]
                text = "\n".join(lines)
        elif op == "append":
            extra = draw(st.sampled_from([billion_laughs(draw(st.integers(2, 40))),
                                          deep_nesting(draw(st.integers(10, 3000)), draw(st.booleans())),
                                          "extra: [1, 2\n", "broker: {use: sim_broker}\n", "mode: live\n",
                                          "? [a]\n: b\n", "<<: {mode: live}\n", "!!set {a}\n", "x: !!binary AAAA\n",
                                          "x: 2024-01-02\n", "x: 2024-01-02T09:30:00Z\n", "x: 12:30:00\n",
                                          "%TAG ! tag:x,2024:\n", "--- !map\n", "x: !custom 1\n"]))
            text = text + ("\n" if not text.endswith("\n") else "") + extra
            op += f":{extra[:30]!r}"
        ops.append(op)
    return text, ops


ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252", "crlf",
             "cr", "nul-tail", "invalid-byte"]


def encode_as(text: str, how: str) -> bytes:
    if how == "crlf":
        return text.replace("\n", "\r\n").encode()
    if how == "cr":
        return text.replace("\n", "\r").encode()
    if how == "nul-tail":
        return text.encode() + b"\x00\x00"
    if how == "invalid-byte":
        b = text.encode()
        return b[: len(b) // 2] + b"\xc3\x28" + b[len(b) // 2:]
    return text.encode(how, errors="replace")


@st.composite
def data_mutation(draw, data: Any) -> list[str]:
    """One structural mutation of parsed config data, in place; returns what it did."""
    paths = _paths(data)
    kind = draw(st.sampled_from(["drop", "rename", "wrong_type", "unit", "huge", "unicode", "use", "add",
                                 "env_ref", "swap", "nest", "listify"]))
    if kind == "add" or not paths:
        where, extra = copy.deepcopy(draw(st.sampled_from(NEW_KEYS)))  # never the shared original
        node = data
        for p in where:
            if not isinstance(node, dict):
                break
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                break
        else:
            node.update(extra)
        return [f"add {where}:{extra!r}"[:120]]
    path = draw(st.sampled_from(paths))
    parent, last = _parent(data, path)
    if kind == "drop":
        del parent[last]
    elif kind == "rename":
        if isinstance(parent, dict):
            new = draw(st.sampled_from(KEY_TYPOS) | st.text(min_size=0, max_size=12))
            value = parent.pop(last)
            parent[new] = value
            return [f"rename {path} -> {new!r}"]
        parent[last] = draw(st.sampled_from(WEIRD_TEXT))
    elif kind == "wrong_type":
        parent[last] = copy.deepcopy(draw(st.sampled_from(WRONG_TYPES)))
    elif kind == "unit":
        parent[last] = draw(st.sampled_from(BAD_PERCENT + BAD_DURATION))
    elif kind == "huge":
        parent[last] = draw(st.sampled_from(HUGE_NUMBERS) | st.integers() | st.floats())
    elif kind == "unicode":
        parent[last] = draw(st.sampled_from(WEIRD_TEXT) | st.text(max_size=30))
    elif kind == "use":
        node = _get(data, path)
        target = node if isinstance(node, dict) else parent if isinstance(parent, dict) else None
        if target is not None:
            target["use"] = draw(st.sampled_from(PLUGIN_NAMES))
    elif kind == "env_ref":
        parent[last] = draw(st.sampled_from(ENV_REFS))
    elif kind == "swap":
        other = draw(st.sampled_from(paths))
        try:
            value = _get(data, other)
        except (KeyError, IndexError, TypeError):
            value = None
        parent[last] = copy.deepcopy(value)
        return [f"swap {path} <- {other}"]
    elif kind == "nest":
        parent[last] = {"nested": parent[last]}
    elif kind == "listify":
        parent[last] = [parent[last]]
    return [f"{kind} {path}" + (f" = {parent[last]!r}"[:80] if kind not in ("drop",) and last in (
        parent if isinstance(parent, dict) else range(len(parent))) else "")]


EXTENDS_VALUES = ["nosuch.yaml", PAPER_NAME, LIVE_NAME, ".", "..", "", " ", "/", "/dev/null", LOTS_NAME,
                  "garbage.csv", "sub", "sub/base.yaml", "${IB_HOST}.yaml", "${NOSUCH}", "~/nosuch.yaml",
                  "tqqq.yaml\x00", "loop_a.yaml", "bad_base.yaml", "utf16_base.yaml", "list_base.yaml", 3, True,
                  None, [LIVE_NAME], {"file": LIVE_NAME}, "TQQQ.YAML", "tqqq.yml", "./tqqq.yaml", "tqqq.yaml ",
                  "a" * 300 + ".yaml", "\U0001f4a5.yaml"]

#: Extra files a case folder always has (what the mutations may point at).
EXTRA_FILES: dict[str, bytes] = {
    "garbage.csv": bytes(range(256)) * 3,
    "header_only.csv": b"timestamp,open,high,low,close,volume\n",
    "bad_lots.csv": b"0,5\n2,3\n",
    "loop_a.yaml": b"extends: loop_b.yaml\nmode: paper\n",
    "loop_b.yaml": b"extends: loop_a.yaml\n",
    "bad_base.yaml": b"mode: paper\nbroker: {use: sim_broker\n",
    "utf16_base.yaml": "mode: paper\n".encode("utf-16"),
    "list_base.yaml": b"- mode: paper\n",
    "sub/base.yaml": LIVE_TEXT.replace("lots: tqqq_lots.csv", "lots: ../tqqq_lots.csv").encode(),
}


@st.composite
def config_cases(draw) -> ConfigCase:
    """One mutated copy of the shipped configs, with maybe --set overrides and an odd environment."""
    main = draw(st.sampled_from([PAPER_NAME, LIVE_NAME]))
    texts: dict[str, str | bytes] = {PAPER_NAME: PAPER_TEXT, LIVE_NAME: LIVE_TEXT}
    env: dict[str, str | None] = {}
    overrides: list[str] = []
    ops: list[str] = []
    families = draw(st.lists(st.sampled_from(["yaml_text", "data", "extends", "env_ref", "env_value", "set",
                                              "encoding", "data", "extreme", "extreme"]), min_size=1, max_size=3))
    for family in families:
        target = main if main == LIVE_NAME else draw(st.sampled_from([PAPER_NAME, PAPER_NAME, LIVE_NAME]))
        current = texts[target]
        if isinstance(current, bytes):
            continue  # already re-encoded: leave it so
        if family == "yaml_text":
            new, done = draw(text_damage(current))
            texts[target] = new
            ops += [f"{target}: {d}" for d in done]
        elif family == "data":
            data = _load(current)
            if not isinstance(data, dict):
                continue
            for _ in range(draw(st.integers(1, 3))):
                ops += [f"{target}: {d}" for d in draw(data_mutation(data))]
            try:
                texts[target] = _dump(data)
            except Exception as exc:  # a value the dumper cannot write: keep the op as text
                texts[target] = current
                ops.append(f"(not dumpable: {type(exc).__name__})")
        elif family == "extends":
            value = draw(st.sampled_from(EXTENDS_VALUES))
            data = _load(current)
            if isinstance(data, dict):
                data["extends"] = value
                texts[target] = _dump(data)
                ops.append(f"{target}: extends = {value!r}")
        elif family == "env_ref":
            lines = current.split("\n")
            candidates = [i for i, ln in enumerate(lines) if re.match(r"^\s*[\w-]+: \S", ln)]
            if candidates:
                i = draw(st.sampled_from(candidates))
                ref = draw(st.sampled_from(ENV_REFS))
                key = lines[i].split(":", 1)[0]
                quoted = draw(st.booleans())
                lines[i] = f"{key}: " + (json.dumps(ref) if quoted else ref)
                texts[target] = "\n".join(lines)
                ops.append(f"{target}: line {i + 1} = {lines[i].strip()!r}")
        elif family == "env_value":
            for _ in range(draw(st.integers(1, 3))):
                name = draw(st.sampled_from(ENV_NAMES))
                value = draw(st.sampled_from(ENV_VALUES) | st.none() | st.text(max_size=20))
                if value is not None:  # what an environment can hold: no NUL, encodable
                    value = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
                env[name] = value
                ops.append(f"env {name}={value!r}"[:100])
        elif family == "set":
            for _ in range(draw(st.integers(1, 3))):
                text = draw(st.sampled_from([
                    f"{draw(st.sampled_from(SET_PATHS))}={draw(st.sampled_from(SET_VALUES))}",
                    draw(st.sampled_from(SET_PATHS)),
                    draw(st.text(max_size=30)),
                ]))
                overrides.append(text)
                ops.append(f"--set {text!r}"[:100])
        elif family == "extreme":
            data = _load(current)
            if not isinstance(data, dict):
                continue
            for _ in range(draw(st.integers(1, 2))):
                path = draw(st.sampled_from(sorted(EXTREMES, key=repr)))
                value = copy.deepcopy(draw(st.sampled_from(EXTREMES[path])))
                node = data
                for part in path[:-1]:
                    child = node.get(part) if isinstance(node, dict) else node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None
                    if child is None and isinstance(node, dict):
                        child = node[part] = {}
                    node = child
                if isinstance(node, dict):
                    node[path[-1]] = value
                    ops.append(f"{target}: {'.'.join(map(str, path))} = {value!r}"[:120])
            texts[target] = _dump(data)
        elif family == "encoding":
            how = draw(st.sampled_from(ENCODINGS))
            texts[target] = encode_as(current, how)
            ops.append(f"{target}: encoded {how}")
    files = {name: (t if isinstance(t, bytes) else t.encode("utf-8", errors="surrogatepass")) for name, t in texts.items()}
    files[LOTS_NAME] = LOTS_TEXT.encode()
    files.update(EXTRA_FILES)
    return ConfigCase("+".join(sorted(set(families))), ops, files, main, tuple(overrides), env)


# --------------------------------------------------------------------------------------------
# Data files
# --------------------------------------------------------------------------------------------

T0 = 1_704_205_800  # 2024-01-02T14:30:00Z (09:30 New York)
OFFSETS = ["Z", "+00:00", "-05:00", "-04:00", "+01:00", "+0530", "-0800", "+14:00", "-12:00", "+01"]


def _iso(ts: int, form: str) -> str:
    from datetime import UTC, datetime, timedelta, timezone

    t = datetime.fromtimestamp(ts, UTC)
    if form == "naive":  # New York wall time
        from zoneinfo import ZoneInfo

        return t.astimezone(ZoneInfo("America/New_York")).replace(tzinfo=None).isoformat()
    if form == "epoch":
        return str(ts)
    if form == "space":
        return t.strftime("%Y-%m-%d %H:%M:%S") + "+00:00"
    if form == "Z":
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    sign = 1 if form[0] == "+" else -1
    body = form[1:].replace(":", "")
    hours, minutes = int(body[:2]), int(body[2:4] or 0)
    tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    return t.astimezone(tz).isoformat()


@dataclass
class Rows:
    kind: str  # bars | ticks | quotes
    header: list[str]
    rows: list[list[str]]
    times: list[int]


@st.composite
def valid_rows(draw) -> Rows:
    kind = draw(st.sampled_from(["bars", "ticks", "quotes"]))
    n = draw(st.integers(1, 40))
    step = draw(st.sampled_from([1, 15, 60, 300, 3600, 86400]))
    form = draw(st.sampled_from(["Z", "-05:00", "naive", "space", "+01:00"]))
    # naive New York times: keep clear of the DST change (a day of January is)
    price = draw(st.integers(100, 100_000))  # cents
    times, rows = [], []
    t = T0 + draw(st.integers(0, 3600))
    for _ in range(n):
        t += step * draw(st.integers(1, 3))
        times.append(t)
        ts = _iso(t, form)
        move = draw(st.integers(-200, 200))
        o, c = price, max(1, price + move)
        hi, lo = max(o, c) + draw(st.integers(0, 50)), max(1, min(o, c) - draw(st.integers(0, 50)))
        price = c
        cents = lambda v: f"{v // 100}.{v % 100:02d}"  # noqa: E731
        if kind == "bars":
            rows.append([ts, cents(o), cents(hi), cents(lo), cents(c), str(draw(st.integers(0, 10**6)))])
        elif kind == "ticks":
            rows.append([ts, cents(c), str(draw(st.integers(1, 1000)))])
        else:
            spread = draw(st.integers(0, 20))
            rows.append([ts, cents(c), cents(c + spread)])
    header = {"bars": ["timestamp", "open", "high", "low", "close", "volume"], "ticks": ["timestamp", "price", "size"],
              "quotes": ["timestamp", "bid", "ask"]}[kind]
    if draw(st.booleans()):
        header = [h.upper() if draw(st.booleans()) else h for h in header]
    return Rows(kind, header, rows, times)


def _csv(header: list[str], rows: list[list[str]], newline: str = "\n") -> str:
    return newline.join([",".join(header)] + [",".join(r) for r in rows]) + newline


BAD_PRICES = ["nan", "NaN", "inf", "-inf", "Infinity", "-1", "-0.01", "0", "0.00", "0.004", "1e300", "1e13",
              "", " ", "n/a", "1,5", "１２", "0x10", "1e", "--1", "1.2.3", "\U0001f4a5", "\u0661\u0662", "1e-400",
              "9" * 400, "+", ".", "1 2", '"1"', "'1'"]
BAD_TIMES = ["", "x", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-01-02T25:00:00Z", "2024-01-02T09:60:00Z",
             "2024-01-02T23:59:60Z", "10000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "1677-01-01T00:00:00Z",
             "2262-06-01T00:00:00Z", "2024-01-02T09:30:00+25:00", "2024-01-02T09:30:00+05:61", "2024/01/02 09:30",
             "02.01.2024", "1704205800", "1704205800000", "2024-01-02T09:30:00.1234567890123Z", "2024-W01-2",
             "2024-01-02T09:30:00 EST", "2024-01-02T09:30:00ZZ", "２０２４-01-02", "2024-03-10T02:30:00",
             "2024-11-03T01:30:00", "T09:30", "2024-01-02T", "-2024-01-02", "2024-1-2", "\x00", "2024-01-02T09:30:00\u200b"]


@st.composite
def row_damage(draw, rows: Rows) -> tuple[Rows, list[str]]:
    ops = []
    for _ in range(draw(st.integers(1, 6))):
        if not rows.rows:
            break
        i = draw(st.integers(0, len(rows.rows) - 1))
        row = rows.rows[i]
        op = draw(st.sampled_from(["bad_price", "bad_time", "backwards", "duplicate_time", "drop_cell", "extra_cell",
                                   "empty_row", "other_tz", "high_below_low", "crossed", "huge_field", "quote",
                                   "semicolon", "dup_row", "swap_rows"]))
        if op == "bad_price" and len(row) > 1:
            row[draw(st.integers(1, min(len(row) - 1, 4)))] = draw(st.sampled_from(BAD_PRICES))
        elif op == "bad_time":
            row[0] = draw(st.sampled_from(BAD_TIMES))
        elif op == "backwards" and i > 0:
            row[0] = _iso(rows.times[i - 1] - draw(st.integers(1, 10**6)), "Z")
        elif op == "duplicate_time" and i > 0:
            row[0] = rows.rows[i - 1][0]
        elif op == "drop_cell" and len(row) > 1:
            del row[draw(st.integers(0, len(row) - 1))]
        elif op == "extra_cell":
            row.append(draw(st.sampled_from(["1", "", "x", "1.5"])))
        elif op == "empty_row":
            rows.rows[i] = [""]
        elif op == "other_tz":
            row[0] = _iso(rows.times[i], draw(st.sampled_from(OFFSETS + ["naive", "epoch", "space"])))
        elif op == "high_below_low" and rows.kind == "bars" and len(row) >= 4:
            row[2], row[3] = row[3], row[2] + "1"
        elif op == "crossed" and rows.kind == "quotes" and len(row) >= 3:
            row[1], row[2] = row[2] + "1", row[1]
        elif op == "huge_field":
            row[-1] = "9" * draw(st.sampled_from([1000, 70_000, 1_100_000]))
        elif op == "quote":
            row[draw(st.integers(0, len(row) - 1))] = draw(st.sampled_from(['"1.5', '"', '"a""b"', "'x", '"2024-01-02\n"']))
        elif op == "semicolon":
            rows.rows[i] = [";".join(row)]
        elif op == "dup_row":
            rows.rows.insert(i, list(row))
            rows.times.insert(i, rows.times[i])
        elif op == "swap_rows" and i > 0:
            rows.rows[i - 1], rows.rows[i] = rows.rows[i], rows.rows[i - 1]
        ops.append(f"{op}@{i}")
    return rows, ops


@st.composite
def file_damage(draw, rows: Rows) -> tuple[bytes, str, list[str]]:
    """A whole-file mutation of valid rows: encoding, header, line ends, truncation."""
    op = draw(st.sampled_from(["header_only", "drop_column", "rename_column", "dup_column", "no_header", "crlf", "cr",
                               "utf16", "utf16le", "utf16be", "utf32", "latin1", "bom", "bom_twice", "nul", "truncate",
                               "long_header", "many_columns", "blank_lines", "zero_width", "tabs", "only_newlines",
                               "header_spaces", "date_time_split"]))
    header, body = list(rows.header), [list(r) for r in rows.rows]
    text = _csv(header, body)
    name = "data.csv"
    if op == "header_only":
        text = ",".join(header) + draw(st.sampled_from(["\n", "\r\n", "", "\n\n\n", "\n \n"]))
    elif op == "drop_column":
        j = draw(st.integers(0, len(header) - 1))
        text = _csv(header[:j] + header[j + 1:], [r[:j] + r[j + 1:] for r in body])
    elif op == "rename_column":
        j = draw(st.integers(0, len(header) - 1))
        header[j] = draw(st.sampled_from(["", "Close ", "clöse", "Timestamp\u200b", "px", "last", "t", "DATE"]))
        text = _csv(header, body)
    elif op == "dup_column":
        j = draw(st.integers(0, len(header) - 1))
        text = _csv(header + [header[j]], [r + [r[j]] for r in body])
    elif op == "no_header":
        text = _csv(body[0] if body else [], body[1:])
    elif op == "crlf":
        text = _csv(header, body, "\r\n")
    elif op == "cr":
        text = _csv(header, body, "\r")
    elif op == "zero_width":
        text = "\u200b" + text
    elif op == "tabs":
        text = text.replace(",", "\t")
    elif op == "only_newlines":
        text = "\n" * draw(st.integers(1, 100))
    elif op == "header_spaces":
        text = _csv([f" {h} " for h in header], body)
    elif op == "blank_lines":
        text = text.replace("\n", "\n\n")
    elif op == "long_header":
        text = _csv(header + ["x" * 70_000], [r + ["1"] for r in body])
    elif op == "many_columns":
        text = _csv(header + [f"c{k}" for k in range(2000)], [r + ["0"] * 2000 for r in body])
    elif op == "date_time_split":
        new_header = ["date", "time"] + header[1:]
        new_body = []
        for r in body:
            d, _, t = r[0].replace(" ", "T").partition("T")
            new_body.append([d, t] + r[1:])
        text = _csv(new_header, new_body)
    encodings = {"utf16": "utf-16", "utf16le": "utf-16-le", "utf16be": "utf-16-be", "utf32": "utf-32"}
    if op in encodings:
        data = text.encode(encodings[op])
    elif op == "latin1":
        data = text.replace("timestamp", "timestämp" if draw(st.booleans()) else "timestamp").encode("latin-1") + \
            "\n# prix en €\n".encode("cp1252")
    elif op == "bom":
        data = b"\xef\xbb\xbf" + text.encode()
    elif op == "bom_twice":
        data = b"\xef\xbb\xbf\xef\xbb\xbf" + text.encode()
    elif op == "nul":
        b = text.encode()
        k = draw(st.integers(0, len(b)))
        data = b[:k] + b"\x00" + b[k:]
    elif op == "truncate":
        b = text.encode()
        data = b[: draw(st.integers(0, len(b)))]
    else:
        data = text.encode()
    return data, name, [op]


def _parquet_bytes(table) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@st.composite
def parquet_case(draw) -> DataCase:
    import pyarrow as pa

    rows = draw(valid_rows())
    op = draw(st.sampled_from(["valid", "valid", "text_times", "naive_times", "zero_rows", "nulls", "nan_prices",
                               "int_times", "bool_prices", "list_prices", "truncated", "flipped", "par1_garbage",
                               "csv_named_parquet", "parquet_named_csv", "no_time", "struct_column"]))
    from datetime import UTC, datetime

    n = len(rows.rows)
    times = [datetime.fromtimestamp(t, UTC) for t in rows.times]
    cols: dict[str, Any] = {}
    ts_type = pa.timestamp("ns", "UTC")
    if op == "naive_times":
        ts_type = pa.timestamp("ns")
    if op == "text_times":
        cols["timestamp"] = pa.array([r[0] for r in rows.rows], pa.string())
    elif op == "int_times":
        cols["timestamp"] = pa.array(rows.times, pa.int64())
    elif op != "no_time":
        cols["timestamp"] = pa.array(times, ts_type)
    names = [h.lower() for h in rows.header[1:]]
    for j, name in enumerate(names):
        values = [float(r[j + 1]) for r in rows.rows]
        if op == "nulls" and j == 0:
            cols[name] = pa.array([None if k % 2 else v for k, v in enumerate(values)], pa.float64())
        elif op == "nan_prices" and j == 0:
            cols[name] = pa.array([float("nan")] * n, pa.float64())
        elif op == "bool_prices" and j == 0:
            cols[name] = pa.array([True] * n, pa.bool_())
        elif op == "list_prices" and j == 0:
            cols[name] = pa.array([[v] for v in values], pa.list_(pa.float64()))
        elif op == "struct_column" and j == 0:
            cols[name] = pa.array([{"v": v} for v in values])
        else:
            cols[name] = pa.array(values, pa.float64())
    table = pa.table(cols)
    if op == "zero_rows":
        table = table.slice(0, 0)
    data = _parquet_bytes(table)
    name = "data.parquet"
    valid = None
    ticks = None
    if op in ("valid", "naive_times"):
        valid = True
    if op in ("zero_rows", "nan_prices", "bool_prices", "list_prices", "struct_column", "no_time", "int_times",
              "par1_garbage"):
        valid = False
    if op == "truncated":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
        valid = False
    elif op == "flipped":
        k = draw(st.integers(0, len(data) - 1))
        data = data[:k] + bytes([data[k] ^ 0xFF]) + data[k + 1:]
    elif op == "par1_garbage":
        data = b"PAR1" + draw(st.binary(max_size=2000))
    elif op == "csv_named_parquet":
        data = _csv(rows.header, rows.rows).encode()
        valid = None
    elif op == "parquet_named_csv":
        name = "data.csv"
    if valid:
        ticks = 4 * n if rows.kind == "bars" else n
    return DataCase("parquet", [op, rows.kind], name, data, valid, ticks)


BIG_DAMAGES = {  # each makes exactly its own row bad (rows between damaged ones stay good)
    "nan": lambda r, prev: r[:4] + ["nan"] + r[5:],
    "empty": lambda r, prev: r[:2] + [""] + r[3:],
    "garbage_time": lambda r, prev: ["not a time"] + r[1:],
    "negative": lambda r, prev: r[:1] + ["-1.00"] + r[2:],
    "same_time": lambda r, prev: [prev[0]] + r[1:],
    "high_below_low": lambda r, prev: r[:2] + ["0.01"] + r[3:],
    "inf": lambda r, prev: r[:3] + ["inf"] + r[4:],
}


@st.composite
def big_case(draw) -> DataCase:
    """Enough bars to span several chunks and Arrow blocks, with row damage deep in the file
    (where the fast typed read gives up and the pass goes on as text): the exact counts are known."""
    n = draw(st.integers(66_000, 150_000))
    k = draw(st.integers(0, 6))
    spots = sorted(set(draw(st.lists(st.integers(1, n // 2 - 1), min_size=k, max_size=k))))
    spots = [2 * x for x in spots]  # never two neighbours
    kinds = [draw(st.sampled_from(sorted(BIG_DAMAGES))) for _ in spots]
    form = draw(st.sampled_from(["Z", "-05:00", "naive"]))
    import numpy as np

    utc = (np.int64(T0) + 60 * np.arange(n, dtype=np.int64)).astype("datetime64[s]")
    if form == "Z":
        stamps = np.char.add(np.datetime_as_string(utc), "Z")
    elif form == "naive":  # New York wall time: EST, then EDT from 2024-03-10 07:00 UTC (02:00 -> 03:00)
        edt = utc >= np.datetime64("2024-03-10T07:00:00")
        stamps = np.datetime_as_string(utc - np.where(edt, 4, 5).astype("timedelta64[h]"))
    else:
        stamps = np.char.add(np.datetime_as_string(utc - np.timedelta64(5, "h")), "-05:00")
    i = np.arange(n)
    c = 5000 + np.abs((i // 7) % 400 - 200)  # a slow saw between $50 and $52: a few fills, not a flood
    money = lambda v: np.char.add(np.char.add((v // 100).astype(str), "."), np.char.zfill((v % 100).astype(str), 2))  # noqa: E731
    columns = [stamps.tolist(), money(c).tolist(), money(c + 20).tolist(), money(c - 20).tolist(), money(c).tolist()]
    rows = [list(r) + ["100"] for r in zip(*columns)]
    damage = dict(zip(spots, kinds))
    for at, kind in damage.items():
        rows[at] = BIG_DAMAGES[kind](rows[at], rows[at - 1])
    lines = ["timestamp,open,high,low,close,volume"] + [",".join(r) for r in rows]
    good = n - len(spots)
    return DataCase("big", [f"{n} bars", form] + [f"{kind}@{i}" for i, kind in damage.items()], "big.csv",
                    ("\n".join(lines) + "\n").encode(), True, 4 * good, bad=len(spots))


@st.composite
def mixed_zone_case(draw) -> DataCase:
    """Rows that name their instants in different time zones (and naive New York time): valid."""
    rows = draw(valid_rows())
    for row, t in zip(rows.rows, rows.times):
        row[0] = _iso(t, draw(st.sampled_from(OFFSETS + ["naive", "space"])))
    ticks = 4 * len(rows.rows) if rows.kind == "bars" else len(rows.rows)
    return DataCase("mixed_zones", [rows.kind], "zones.csv", _csv(rows.header, rows.rows).encode(), True, ticks)


@st.composite
def data_cases(draw) -> DataCase:
    family = draw(st.sampled_from(["random_bytes", "random_text", "valid", "rows", "rows", "file", "file", "parquet",
                                   "all_bad", "magic", "mixed_zones", "big", "rows", "file"]))
    if family == "big":
        return draw(big_case())
    if family == "mixed_zones":
        return draw(mixed_zone_case())
    if family == "random_bytes":
        return DataCase(family, [], "data.csv", draw(st.binary(max_size=4096)))
    if family == "random_text":
        lines = draw(st.lists(st.text(max_size=60), max_size=30))
        enc = draw(st.sampled_from(["utf-8", "utf-16", "latin-1"]))
        return DataCase(family, [enc], "data.csv", "\n".join(lines).encode(enc, errors="replace"))
    if family == "magic":
        magic = draw(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"%PDF-1.4", b"PK\x03\x04",
                                      b"\x1f\x8b\x08", b"BZh9", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"SQLite format 3\x00",
                                      b"ARROW1", b"\x7fELF", b"\xd0\xcf\x11\xe0", b"PAR1", b"\xef\xbb\xbf", b"\xff\xfe",
                                      b"\xfe\xff"]))
        return DataCase(family, [repr(magic)], "data.csv", magic + draw(st.binary(max_size=512)), valid=False)
    if family == "parquet":
        return draw(parquet_case())
    rows = draw(valid_rows())
    if family == "valid":
        ticks = 4 * len(rows.rows) if rows.kind == "bars" else len(rows.rows)
        newline = draw(st.sampled_from(["\n", "\r\n"]))
        bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
        return DataCase(family, [rows.kind], "data.csv", bom + _csv(rows.header, rows.rows, newline).encode(), True, ticks)
    if family == "all_bad":
        bad = draw(st.sampled_from(["nan", "-1", "0", "x", "inf"]))
        body = [[r[0]] + [bad] * (len(r) - 1) for r in rows.rows]
        return DataCase(family, [rows.kind, bad], "data.csv", _csv(rows.header, body).encode(), valid=False)
    if family == "rows":
        rows, ops = draw(row_damage(rows))
        return DataCase(family, [rows.kind] + ops, "data.csv", _csv(rows.header, rows.rows).encode())
    data, name, ops = draw(file_damage(rows))
    valid = False if ops[0] in ("header_only", "only_newlines", "utf16", "utf16le", "utf16be", "utf32") else None
    return DataCase(family, [rows.kind] + ops, name, data, valid)


# ============================================================================================
# Running a case
# ============================================================================================


class Hang(BaseException):
    """A command ran longer than its time limit (raised by SIGALRM; not an Exception, so the
    CLI's own handler does not turn it into an internal error)."""


class _TracebackCatcher(logging.FileHandler):
    """Stands first among the root logger's file handlers, so the CLI's internal-error handler
    writes the traceback here (and not into ~/.bothost-error.log)."""

    def __init__(self):
        logging.Handler.__init__(self)
        self.baseFilename = "<fuzz campaign>"
        self.stream = None
        self.records: list[str] = []

    def emit(self, record):
        self.records.append(record.getMessage())

    def close(self):
        pass


@dataclass
class Result:
    command: str
    exit: int | str
    stdout: str
    stderr: str
    traceback: str | None = None
    seconds: float = 0.0


class Runner:
    """Runs the CLI in this process (CliRunner) in a scratch folder."""

    def __init__(self, root: Path, limit_s: float = 120.0, real_plots: bool = False):
        from click.testing import CliRunner

        import bothost.run as host_run

        self.root = root
        self.limit_s = limit_s
        self.cli_runner = CliRunner()
        self.catcher = _TracebackCatcher()
        self.tiny = root / "tiny.csv"
        self.tiny.write_text("timestamp,open,high,low,close,volume\n" + "".join(
            f"2024-01-02T09:{30 + i:02d}:00-05:00,50.{i:02d},50.90,49.10,50.{i + 1:02d},100\n" for i in range(12)))
        # The run's equity.png is drawn in this process instead of a worker process per run,
        # and (unless real_plots) as a stand-in file: matplotlib is not what is under test here,
        # and drawing costs two thirds of a small backtest. Whether a run claims a picture it
        # never wrote is still seen: the stand-in is written only where the run draws.
        self._worker = host_run.PlotWorker
        host_run.PlotWorker = _NoPlotWorker
        self._plot = host_run.plot.plot_equity
        if not real_plots:
            host_run.plot.plot_equity = _stand_in_plot
        # The installed plugins do not change during a campaign: their entry points (reading
        # every package's metadata: half of a `validate`) are listed once.
        import bothost.plugins as host_plugins

        self._entry_points = host_plugins._entry_points
        listed = [_EntryPoint(ep) for ep in host_plugins._entry_points()]
        host_plugins._entry_points = lambda: list(listed)
        # A warning a library prints on the terminal is seen every time, not once a process
        # (what a user of the command sees); deprecation notices are not for the user.
        self._filters = list(warnings.filters)
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        self.counter = 0

    def close(self) -> None:
        warnings.filters[:] = self._filters
        import bothost.plugins as host_plugins
        import bothost.run as host_run

        host_run.PlotWorker = self._worker
        host_run.plot.plot_equity = self._plot
        host_plugins._entry_points = self._entry_points
        root = logging.getLogger()
        if self.catcher in root.handlers:
            root.removeHandler(self.catcher)

    def folder(self) -> Path:
        self.counter += 1
        path = self.root / f"case{self.counter:06d}"
        path.mkdir()
        return path

    def invoke(self, args: list[str], cwd: Path, env: dict[str, str | None] | None = None,
               limit_s: float | None = None) -> Result:
        from bothost.cli import cli

        root = logging.getLogger()
        if self.catcher in root.handlers:
            root.removeHandler(self.catcher)
        root.handlers.insert(0, self.catcher)
        self.catcher.records.clear()
        old = os.getcwd()
        os.chdir(cwd)
        start = time.perf_counter()

        def on_alarm(signum, frame):
            raise Hang()

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, limit_s or self.limit_s)
        try:
            res = self.cli_runner.invoke(cli, args, env={**BASE_ENV, **(env or {})}, catch_exceptions=True,
                                         prog_name="bothost")
            code: int | str = res.exit_code
            out, err = res.stdout, res.stderr
            tb = None
            if res.exception is not None and not isinstance(res.exception, SystemExit):
                import traceback

                code = "exception"
                tb = "".join(traceback.format_exception(res.exception))
        except Hang:
            code, out, err, tb = "hang", "", "", f"over {limit_s or self.limit_s} s"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            os.chdir(old)
            for h in list(root.handlers):
                if getattr(h, "_bothost", False):  # the run's log file: closed, as a process exit would
                    root.removeHandler(h)
                    h.close()
        if code == 1 and self.catcher.records:
            tb = "\n".join(self.catcher.records)
        return Result(args[0] if args[0] != "config" else "config show", code, out, err, tb,
                      time.perf_counter() - start)


class _EntryPoint:
    """An entry point with its distribution's name and version read once."""

    def __init__(self, ep):
        self.name, self.value, self._ep = ep.name, ep.value, ep
        self.dist = type("Dist", (), {"name": ep.dist.name, "version": ep.dist.version})() if ep.dist else None

    def load(self):
        return self._ep.load()


def _stand_in_plot(path, *args, **kwargs) -> None:
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n(stand-in: the fuzz campaign does not draw)")


class _NoPlotWorker:
    def __init__(self):
        pass

    def submit(self, *args, **kwargs) -> bool:
        return False

    def wait(self, timeout: float = 0) -> str:
        return "no worker"

    def close(self) -> None:
        pass


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _decoded_lines(path: Path) -> list[list[str]] | None:
    """The file's lines, as counted two ways: by \\n, \\r\\n and a lone \\r (CSV, YAML 1.2), and
    also by \\x85, \\u2028 and \\u2029 (which ruamel's reader counts as line breaks too)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return [re.split(r"\r\n|\n|\r", text), re.split(r"\r\n|\n|\r|\x85|\u2028|\u2029", text)]


def check_position(res: Result, cwd: Path, allowed_files: set[str] | None = None) -> list[str]:
    """The error's first line names a file, a line (and maybe a column) that exist, and a hint follows."""
    problems = []
    first = res.stderr.strip("\n").split("\n", 1)[0] if res.stderr.strip() else ""
    m = POSITION_RE.match(first)
    if not m:
        return [f"{res.command}: exit 2 without FILE:LINE[:COL]: {first[:200]!r}"]
    if "\n  hint: " not in res.stderr:
        problems.append(f"{res.command}: exit 2 without a hint: {first[:200]!r}")
    name, line = m.group("file"), int(m.group("line"))
    col = int(m.group("col")) if m.group("col") else None
    if name == "--set":
        return problems
    path = Path(name) if Path(name).is_absolute() else cwd / name
    if allowed_files is not None and str(path.resolve()) not in allowed_files and name not in allowed_files:
        problems.append(f"{res.command}: the error names {name!r}, which is not an input of this case")
    if path.is_dir() or not path.exists():
        if line != 1 or (col or 1) != 1:
            problems.append(f"{res.command}: {name}:{line} points into a file that does not exist")
        return problems
    ways = _decoded_lines(path)
    if ways is not None:
        fits = [lines for lines in ways if 1 <= line <= len(lines)
                and (col is None or 1 <= col <= len(lines[line - 1]) + 1)]
        if not fits:
            lines = ways[0]
            if not 1 <= line <= max(len(w) for w in ways):
                problems.append(f"{res.command}: line {line} is past the end of {name} ({len(lines)} lines): "
                                f"{first[:160]!r}")
            else:
                problems.append(f"{res.command}: column {col} is past the end of {name}:{line}: {first[:160]!r}")
    return problems


def check_common(res: Result) -> list[str]:
    problems = []
    text = res.stdout + res.stderr
    if res.exit not in (0, 2):
        detail = (res.traceback or res.stderr or res.stdout).strip().splitlines()
        problems.append(f"{res.command}: exit {res.exit}: " + " | ".join(detail[-3:])[:400])
    if "Traceback (most recent call last)" in text:
        problems.append(f"{res.command}: a traceback on the terminal")
    warned = re.search(r"^.*\b\w+Warning: .*$", text, re.M)
    if warned:
        problems.append(f"{res.command}: a library's warning on the terminal: {warned.group(0)[:160]!r}")
    return problems


def _secrets_reachable_only_through_secret_keys(case: ConfigCase) -> bool:
    """True when the case leaves the secrets in secret-named keys only (so none may be printed)."""
    if any("ALPACA_" in o for o in case.overrides) or any(k.startswith("ALPACA_") for k in case.env):
        return False
    for name, content in case.files.items():
        if not name.endswith(".yaml"):
            continue
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = content.decode("latin-1")
        for line in re.split(r"\r\n|\n|\r", text):
            if "${ALPACA_API_KEY" in line or "${ALPACA_SECRET_KEY" in line:
                m = re.match(r"^\s*(?:-\s*)?([\w-]+)\s*:", line)
                if not m or not SECRET_KEY_RE.search(m.group(1)) or line.count("${") > 1 or "{" in line.split(":", 1)[0]:
                    return False
                if line.count(":") > 1 and "${ALPACA" not in line.split(":", 1)[1].strip()[:12]:
                    return False
    return True


@dataclass
class Outcome:
    statuses: dict[str, dict[str, int]] = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    failures: list[dict] = field(default_factory=list)
    tried: int = 0
    distinct: set = field(default_factory=set)
    seconds: float = 0.0
    by_family: dict[str, collections.Counter] = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    messages: collections.Counter = field(default_factory=collections.Counter)
    command_seconds: collections.Counter = field(default_factory=collections.Counter)


def _message_shape(stderr: str) -> str:
    first = stderr.strip("\n").split("\n", 1)[0]
    m = POSITION_RE.match(first)
    msg = m.group("msg") if m else first
    msg = re.sub(r"'[^']*'|\"[^\"]*\"|\([^)]*\)|\d+", "_", msg)
    return msg[:70]


def run_config_case(runner: Runner, case: ConfigCase, outcome: Outcome, backtest: bool = True) -> list[str]:
    folder = runner.folder()
    _write_files(folder, case.files)
    allowed = {str((folder / n).resolve()) for n in case.files} | {"--set"}
    # and any file the case names by an absolute path (`lots: /dev/null`)
    named = b"\n".join(case.files.values()).decode("utf-8", "replace") + "\n".join(case.overrides)
    allowed |= set(re.findall(r"(?<![\w.])/[^\s'\",\]}]+", named))
    sets = [a for o in case.overrides for a in ("--set", o)]
    problems: list[str] = []
    results = {}

    res = runner.invoke(["validate", case.main, *sets], folder, case.env, limit_s=30)
    results["validate"] = res
    problems += check_common(res)
    if res.exit == 2:
        problems += check_position(res, folder, allowed)
    res = runner.invoke(["config", "show", case.main, *sets], folder, case.env, limit_s=30)
    results["config show"] = res
    problems += check_common(res)
    if res.exit == 2:
        problems += check_position(res, folder, allowed)
    if backtest:
        out = folder / "OUT"
        # A third of the paper configs replay their own synthetic data (a few hundred bars, so
        # that a mutated `bars:` cannot make it long); the rest a tiny bar file.
        if case.main == PAPER_NAME and int(case.key()[:8], 16) % 3 == 0:
            data = ["--set", "feed.synthetic.bars=300"]
        else:
            data = ["--data", str(runner.tiny)]
        res = runner.invoke(["backtest", case.main, *sets, *data, "--out", "OUT", "--no-progress"],
                            folder, case.env, limit_s=120)
        results["backtest"] = res
        problems += check_common(res)
        if res.exit == 2:
            problems += check_position(res, folder, allowed | {str(runner.tiny)})
            if out.exists():
                problems.append(f"backtest: exit 2 but it wrote {sorted(p.name for p in out.rglob('*'))[:6]}: "
                                f"{res.stderr.strip().splitlines()[0][:160] if res.stderr.strip() else ''}")
        elif res.exit == 0:
            problems += check_outputs(res, out)
    if results["validate"].exit == 2:
        # `run` on a config `validate` refused: it must refuse it too, before any state folder
        state = folder / "STATE"
        res = runner.invoke(["run", case.main, *sets, "--state", "STATE", "--out", "RUNOUT", "--no-progress"],
                            folder, case.env, limit_s=60)
        results["run"] = res
        problems += check_common(res)
        if res.exit == 2:
            problems += check_position(res, folder, allowed)
            if state.exists() or (folder / "RUNOUT").exists():
                problems.append(f"run: exit 2 but it wrote {sorted(p.name for p in state.rglob('*'))[:6]}: "
                                f"{res.stderr.strip().splitlines()[0][:160] if res.stderr.strip() else ''}")
        elif res.exit == 0:
            problems.append("run: exit 0 on a config validate refused")
    if _secrets_reachable_only_through_secret_keys(case):
        for name, r in results.items():
            for value in SECRET_VALUES.values():
                if value in r.stdout + r.stderr:
                    problems.append(f"{name}: printed a secret's value")
    for name, r in results.items():
        outcome.command_seconds[name] += r.seconds
        outcome.statuses[name][str(r.exit)] += 1
        outcome.by_family[case.family][f"{name}:{r.exit}"] += 1
        if r.exit == 2:
            outcome.messages[f"{name}: {_message_shape(r.stderr)}"] += 1
    if problems:
        outcome.failures.append({"kind": "config", "family": case.family, "main": case.main, "ops": case.ops,
                                 "overrides": list(case.overrides), "env": case.env, "problems": problems,
                                 "stderr": {n: r.stderr[-600:] for n, r in results.items() if r.exit != 0},
                                 "traceback": {n: r.traceback[-1500:] for n, r in results.items() if r.traceback},
                                 "folder": str(folder)})
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return problems


def check_outputs(res: Result, out: Path) -> list[str]:
    problems = []
    m = re.search(r"outputs: (\S+)/fills\.csv, (.+)$", res.stdout, re.M)
    if m:
        for name in ["fills.csv"] + [s.strip() for s in m.group(2).split(",")]:
            if not (out / name).exists():
                problems.append(f"{res.command}: says it wrote {name}, which is not there")
    summary = out / "summary.json"
    if not summary.exists():
        problems.append(f"{res.command}: exit 0 without summary.json")
        return problems
    s = json.loads(summary.read_text())
    if not isinstance(s.get("ticks"), int) or s["ticks"] <= 0:
        problems.append(f"{res.command}: exit 0 after {s.get('ticks')} ticks")
    by = s.get("bad_rows_by_reason") or {}
    if isinstance(by, dict) and sum(by.values()) != s.get("bad_rows_skipped"):
        problems.append(f"{res.command}: bad_rows_skipped {s.get('bad_rows_skipped')} != sum by reason {by}")
    return problems


def run_data_case(runner: Runner, case: DataCase, outcome: Outcome) -> list[str]:
    folder = runner.folder()
    path = folder / case.name
    path.write_bytes(case.content)
    out = folder / "OUT"
    res = runner.invoke(["backtest", str(CONFIGS / PAPER_NAME), "--data", case.name, "--out", "OUT", "--no-progress"],
                        folder, limit_s=120)
    problems = check_common(res)
    if res.exit == 2:
        problems += check_position(res, folder, {str(path.resolve())})
        first = res.stderr.strip().split("\n", 1)[0]
        if case.name not in first:
            problems.append(f"backtest: the error does not name the data file: {first[:160]!r}")
        if case.valid:
            problems.append(f"backtest: a valid file was refused: {first[:200]!r}")
        if (out / "fills.csv").exists() or (out / "summary.json").exists():
            problems.append("backtest: exit 2 but it wrote outputs")
    elif res.exit == 0:
        problems += check_outputs(res, out)
        if case.valid is False:
            problems.append("backtest: a file with no usable row was accepted (exit 0)")
        if case.ticks is not None and (out / "summary.json").exists():
            s = json.loads((out / "summary.json").read_text())
            if s.get("ticks") != case.ticks or s.get("bad_rows_skipped") != case.bad:
                problems.append(f"backtest: {s.get('ticks')} ticks and {s.get('bad_rows_skipped')} bad rows; "
                                f"expected {case.ticks} and {case.bad}")
    outcome.command_seconds["backtest --data"] += res.seconds
    outcome.statuses["backtest --data"][str(res.exit)] += 1
    outcome.by_family[case.family][f"backtest:{res.exit}"] += 1
    if res.exit == 2:
        outcome.messages[f"data: {_message_shape(res.stderr)}"] += 1
    if problems:
        outcome.failures.append({"kind": "data", "family": case.family, "ops": case.ops, "name": case.name,
                                 "head": case.content[:200].decode("latin-1"), "size": len(case.content),
                                 "problems": problems, "stderr": res.stderr[-600:],
                                 "traceback": (res.traceback or "")[-1500:], "folder": str(folder)})
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return problems


# ============================================================================================
# Subprocess spot checks: the in-process answers are the real command's
# ============================================================================================


def subprocess_check(runner: Runner, args: list[str], cwd: Path, env: dict[str, str | None]) -> list[str]:
    inproc = runner.invoke(args, cwd, env)
    full_env = {k: v for k, v in os.environ.items()}
    for k, v in {**BASE_ENV, **env}.items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = v
    full_env["COLUMNS"] = "200"
    try:
        proc = subprocess.run([sys.executable, "-m", "bothost", *args], cwd=cwd, env=full_env, capture_output=True,
                              text=True, timeout=300)
    except (subprocess.TimeoutExpired, ValueError) as exc:
        return [f"subprocess {args[:2]}: {type(exc).__name__}"]
    problems = []
    if proc.returncode != inproc.exit:
        problems.append(f"subprocess {args[0]}: exit {proc.returncode}, in-process {inproc.exit}")
    first_sub = proc.stderr.strip().split("\n", 1)[0]
    first_in = inproc.stderr.strip().split("\n", 1)[0]
    if proc.returncode == 2 and first_sub != first_in:
        problems.append(f"subprocess {args[0]}: says {first_sub[:120]!r}, in-process {first_in[:120]!r}")
    if "Traceback" in proc.stderr + proc.stdout:
        problems.append(f"subprocess {args[0]}: a traceback")
    return problems


# ============================================================================================
# The campaign
# ============================================================================================


def campaign(n_configs: int, n_data: int, seed: int, workdir: Path, n_subprocess: int = 6,
             backtest_every: int = 1, progress: bool = True, derandomize: bool = False,
             real_plots: bool = False) -> dict:
    runner = Runner(workdir, real_plots=real_plots)
    configs, data = Outcome(), Outcome()
    spot: list[str] = []
    spot_configs: list[ConfigCase] = []
    spot_data: list[DataCase] = []
    try:
        start = time.perf_counter()
        profile = dict(database=None, deadline=None, phases=[Phase.generate], derandomize=derandomize,
                       suppress_health_check=list(HealthCheck), report_multiple_bugs=False)

        @settings(max_examples=max(1, n_configs), **profile)
        @given(config_cases())
        def draw_configs(case: ConfigCase) -> None:
            configs.tried += 1
            configs.distinct.add(case.key())
            run_config_case(runner, case, configs, backtest=configs.tried % backtest_every == 0)
            if len(spot_configs) < n_subprocess // 2 and configs.tried % 97 == 3:
                spot_configs.append(case)
            if progress and configs.tried % 250 == 0:
                print(f"  configs {configs.tried:,}/{n_configs:,}, failures {len(configs.failures)}, "
                      f"{time.perf_counter() - start:.0f} s", flush=True)

        @settings(max_examples=max(1, n_data), **profile)
        @given(data_cases())
        def draw_data(case: DataCase) -> None:
            data.tried += 1
            data.distinct.add(case.key())
            run_data_case(runner, case, data)
            if len(spot_data) < n_subprocess - n_subprocess // 2 and data.tried % 53 == 5:
                spot_data.append(case)
            if progress and data.tried % 100 == 0:
                print(f"  data files {data.tried:,}/{n_data:,}, failures {len(data.failures)}, "
                      f"{time.perf_counter() - mark:.0f} s", flush=True)

        if n_configs:
            hypothesis_seed(seed)(draw_configs)()
        configs.seconds = time.perf_counter() - start
        mark = time.perf_counter()
        if n_data:
            hypothesis_seed(seed)(draw_data)()
        data.seconds = time.perf_counter() - mark
        mark = time.perf_counter()
        for case in spot_configs:
            folder = runner.folder()
            _write_files(folder, case.files)
            spot += subprocess_check(runner, ["validate", case.main, *[a for o in case.overrides for a in ("--set", o)]],
                                     folder, case.env)
        for case in spot_data:
            folder = runner.folder()
            (folder / case.name).write_bytes(case.content)
            spot += subprocess_check(runner, ["backtest", str(CONFIGS / PAPER_NAME), "--data", case.name, "--out",
                                              "OUT", "--no-progress"], folder, {})
        spot_seconds = time.perf_counter() - mark
    finally:
        runner.close()
    return {
        "seed": seed,
        "configs": _figures(configs),
        "data_files": _figures(data),
        "subprocess_checks": {"run": len(spot_configs) + len(spot_data), "failures": spot, "seconds": round(spot_seconds, 1)},
        "failures": len(configs.failures) + len(data.failures) + len(spot),
    }


def _figures(o: Outcome) -> dict:
    return {
        "mutations_tried": o.tried,
        "distinct": len(o.distinct),
        "seconds": round(o.seconds, 1),
        "exit_statuses": {cmd: dict(sorted(c.items())) for cmd, c in o.statuses.items()},
        "command_seconds": {cmd: round(v, 1) for cmd, v in o.command_seconds.items()},
        "by_family": {f: dict(sorted(c.items())) for f, c in sorted(o.by_family.items())},
        "top_messages": dict(o.messages.most_common(40)),
        "failures": len(o.failures),
        "failure_samples": o.failures[:50],
    }


def print_figures(result: dict, show: int = 5) -> None:
    for key, title in (("configs", "config mutations"), ("data_files", "data files")):
        f = result[key]
        print(f"{title}: {f['mutations_tried']:,} tried ({f['distinct']:,} distinct) in {f['seconds']} s; "
              f"failures: {f['failures']}")
        for cmd, counts in f["exit_statuses"].items():
            print(f"  {cmd:<16} " + ", ".join(f"exit {k}: {v:,}" for k, v in counts.items()))
        for sample in f["failure_samples"][:show]:
            print("  FAIL", sample["family"], sample.get("ops"), "\n       " + "\n       ".join(sample["problems"][:4]))
            for tb in (sample.get("traceback") or {}).values() if isinstance(sample.get("traceback"), dict) else [sample.get("traceback")]:
                if tb:
                    print("       " + tb.strip().splitlines()[-1][:200])
    s = result["subprocess_checks"]
    print(f"subprocess spot checks: {s['run']} run, {len(s['failures'])} disagree")
    for p in s["failures"][:show]:
        print("  FAIL", p)
    print(f"failures in all: {result['failures']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", type=int, default=10_000, help="config mutations to try (default 10,000)")
    ap.add_argument("--data", type=int, default=1_000, help="data files to try (default 1,000)")
    ap.add_argument("--seed", type=int, default=20240102)
    ap.add_argument("--subprocess", type=int, default=8, help="cases run again as real subprocesses")
    ap.add_argument("--backtest-every", type=int, default=1, help="run backtest on every Nth config case (default 1)")
    ap.add_argument("--real-plots", action="store_true", help="draw each run's equity.png (slower)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--keep", type=Path, help="keep the failing cases' folders under this folder")
    ap.add_argument("--show-failures", type=int, default=5)
    args = ap.parse_args(argv)
    for noisy in ("bothost", "bothost.run", "bothost.strategy"):
        logging.getLogger(noisy).propagate = True
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = Path(tempfile.mkdtemp(prefix="fuzz-", dir=args.keep))
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bothost-fuzz-")))
        print(f"fuzz campaign: {args.configs:,} config mutations, {args.data:,} data files, seed {args.seed}")
        started = time.perf_counter()
        result = campaign(args.configs, args.data, args.seed, workdir, args.subprocess, args.backtest_every,
                          real_plots=args.real_plots)
        result["wall_s"] = round(time.perf_counter() - started, 1)
    print_figures(result, args.show_failures)
    print(f"wall {result['wall_s']} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0 if result["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
