"""Secrets never leak: Alpaca keys, notifier URLs (they carry their service's token) and the
like appear in no log, state file, summary, status, error message or `bothost config show`.

Each test runs bothost as a user does (a child process, with its own HOME), with distinctive
secret values, then reads back EVERY file the run wrote (the state and output folders walked
whole: SQLite databases and their WAL, the price samples' npz members, the plot) and the
terminal output, looking for the secrets as they are, URL-encoded and as the hex a debug log
of a binary frame would show:

(a) a paper run whose apprise notifier URL holds a token, made to raise a critical alert (a
    rejected SELL) so the notifier really sends (to a local endpoint), and again with the
    endpoint gone (the delivery fails and is logged), verbose;
(b) the live config, `configs/tqqq.yaml`, against `bothost sim` with the keys in the
    environment, verbose, then `bothost status`;
(c) the bad-keys path (402: exit 4) against `bothost sim --key`, `bothost data fetch` refused
    (401), and `bothost config show` / `bothost validate` with secrets in the config, on the
    command line and in the mistakes they report.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from bothost_plugins.replay_feed.synthetic import write_csv
from conftest import CONFIGS, PAPER

KEY = "AKLEAKCANARY7Q3ZW1"
SECRET = "sEcReT-canary-9X2-do-not-print"
TOKEN = "tok3n-CANARY-4f9a"
PATH_TOKEN = "hookpathCANARY88"
LIVE = CONFIGS / "tqqq.yaml"


def _forms(secret: str) -> dict[str, bytes]:
    raw = secret.encode()
    return {"as is": raw, "url-encoded": quote(secret, safe="").encode(), "form-encoded": quote_plus(secret).encode(),
            "hex": raw.hex().encode(), "spaced hex": raw.hex(" ").encode(), "base64": base64.b64encode(raw)[:-2]}


def _blobs(path: Path):
    """The bytes of a file, and of each member when it is a zip (an npz)."""
    data = path.read_bytes()
    yield str(path), data
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                yield f"{path}!{name}", z.read(name)


def leaks(secrets, folders=(), texts: dict[str, str] | None = None) -> list[str]:
    """Where any of ``secrets`` shows, in any form, in the files under ``folders`` or ``texts``."""
    found = []
    blobs = [(name, text.encode()) for name, text in (texts or {}).items()]
    scanned = 0
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                blobs.extend(_blobs(path))
                scanned += 1
    for secret in secrets:
        for form, needle in _forms(secret).items():
            for name, data in blobs:
                if needle in data or (form == "hex" and needle.upper() in data):
                    found.append(f"{secret!r} ({form}) in {name}")
    return found


def _env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "IB_", "ALERT_"))}
    return {**env, "HOME": str(home), "COLUMNS": "200", **extra}


def _run(args, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bothost", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _terminal(r: subprocess.CompletedProcess, name: str) -> dict[str, str]:
    return {f"{name} stdout": r.stdout, f"{name} stderr": r.stderr}


# ------------------------------------------------------------------ (a) a notifier URL with a token
class _Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Hook.received.append((self.path, self.headers.get("Authorization", ""), body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def hook():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _notify_config(tmp: Path) -> Path:
    config = tmp / "paper-notify.yaml"
    config.write_text(f"extends: {PAPER}\n"
                      "feed: {use: replay_feed, synthetic: {seed: 7, bars: 3000, volatility: 1.0}}\n"
                      "broker: {use: sim_broker, reject_refs: [':SELL:L1:']}\n"  # a critical alert, for sure
                      "notify:\n  - use: bell\n  - use: apprise\n    urls: [\"${ALERT_URL}\"]\n")
    return config


@pytest.mark.parametrize("endpoint", ["up", "down"])
def test_a_notifier_url_with_a_token_is_in_no_file_and_no_output(tmp_path, hook, endpoint):
    port = hook.server_address[1]
    if endpoint == "down":
        hook.shutdown()
        hook.server_close()  # the delivery fails: apprise and bothost log the failure
    url = f"json://bot:{TOKEN}@127.0.0.1:{port}/{PATH_TOKEN}"
    config = _notify_config(tmp_path)
    env = _env(tmp_path / "home", ALERT_URL=url)
    (tmp_path / "home").mkdir()
    state, out = tmp_path / "state", tmp_path / "out"
    r = _run(["run", str(config), "--state", str(state), "--out", str(out), "--no-progress", "-v"], tmp_path, env)
    assert r.returncode == 3, r.stdout + r.stderr  # S1: the rejected SELL
    if endpoint == "up":
        assert _Hook.received and _Hook.received[0][0] == f"/{PATH_TOKEN}"  # really sent, to the URL
    else:
        assert "apprise could not deliver" in (state / "bot_log.txt").read_text()
    shown = _run(["status", str(config), "--state", str(state)], tmp_path, env)
    assert shown.returncode == 0, shown.stderr
    conf = _run(["config", "show", str(config)], tmp_path, env)
    assert conf.returncode == 0 and "urls" in conf.stdout, conf.stderr
    texts = {**_terminal(r, "run"), **_terminal(shown, "status"), **_terminal(conf, "config show")}
    found = leaks([TOKEN, PATH_TOKEN, url], [state, out, tmp_path / "home"], texts)
    assert not found, "\n".join(found)


# ------------------------------------------------------------------ (b) the live config against `bothost sim`
@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "bars.csv"
    write_csv(path, bars=600, seed=11, volatility=1.0, start_price=50.0, interval=60)
    return path


class Sim:
    """`bothost sim` in its own process, both ports chosen by the system."""

    def __init__(self, data: Path, state: Path, *args: str):
        cmd = [sys.executable, "-m", "bothost", "sim", "--data", str(data), "--tws-port", "0", "--alpaca-port", "0",
               "--pace", "lockstep", "--state", str(state), "--no-progress", *args]
        self.proc = subprocess.Popen(cmd, cwd=state.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"sim listening: TWS 127\.0\.0\.1:(\d+), Alpaca (http://127\.0\.0\.1:\d+) ", line)
        assert m, line + self.proc.stderr.read()
        self.tws_port, self.alpaca_url = int(m.group(1)), m.group(2)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)


def test_the_live_config_against_bothost_sim_keeps_the_keys_to_itself(tmp_path, bars):
    home = tmp_path / "home"
    home.mkdir()
    sim = Sim(bars, tmp_path / "sim")
    try:
        env = _env(home, IB_PORT=str(sim.tws_port), ALPACA_DATA_URL=sim.alpaca_url, ALPACA_API_KEY=KEY,
                   ALPACA_SECRET_KEY=SECRET)
        state = tmp_path / "bot"
        r = _run(["run", str(LIVE), "--state", str(state), "--no-progress", "-v", "--stop-when-idle", "8"], tmp_path, env)
        assert r.returncode == 0, r.stdout + r.stderr
        summary = json.loads((state / "out" / "summary.json").read_text())
        assert summary["fills"] > 10  # it traded, on Alpaca's ticks
    finally:
        sim.stop()
    shown = _run(["status", str(LIVE), "--state", str(state)], tmp_path, env)
    conf = _run(["config", "show", str(LIVE)], tmp_path, env)
    valid = _run(["validate", str(LIVE)], tmp_path, env)
    assert shown.returncode == 0 and conf.returncode == 0 and valid.returncode == 0, shown.stderr + conf.stderr
    assert "key: '***'" in conf.stdout or "key: ***" in conf.stdout, conf.stdout
    texts = {**_terminal(r, "run"), **_terminal(shown, "status"), **_terminal(conf, "config show"),
             **_terminal(valid, "validate")}
    found = leaks([KEY, SECRET], [state, home], texts)
    assert not found, "\n".join(found)


# ------------------------------------------------------------------ (c) bad keys, config show and validate errors
def test_bad_keys_402_end_the_run_without_printing_them(tmp_path, bars):
    home = tmp_path / "home"
    home.mkdir()
    sim = Sim(bars, tmp_path / "sim", "--key", "AKTHEGOODONE:the-good-secret")
    try:
        env = _env(home, IB_PORT=str(sim.tws_port), ALPACA_DATA_URL=sim.alpaca_url, ALPACA_API_KEY=KEY,
                   ALPACA_SECRET_KEY=SECRET)
        state = tmp_path / "bot"
        r = _run(["run", str(LIVE), "--state", str(state), "--no-progress", "-v"], tmp_path, env, timeout=120)
        fetch = _run(["data", "fetch", "TQQQ", "--start", "2024-01-01", "--end", "2024-01-05", "--out",
                      str(tmp_path / "fetched.csv")], tmp_path, env, timeout=120)
    finally:
        sim.stop()
    assert r.returncode == 4 and "402" in r.stderr, r.stdout + r.stderr
    assert fetch.returncode == 4, fetch.stdout + fetch.stderr
    texts = {**_terminal(r, "run"), **_terminal(fetch, "fetch")}
    found = leaks([KEY, SECRET], [state, home] + ([tmp_path / "fetched.csv"] if (tmp_path / "fetched.csv").exists()
                                                   else []), texts)
    assert not found, "\n".join(found)


# Mistakes whose report could quote a secret: each (--set arguments, env, what the report must say).
MISTAKES = [
    # a secret of the wrong type (pydantic would quote the input)
    (["--set", f"feed.key=[{KEY}]"], {}, "feed"),
    (["--set", f"feed.secret={{s: {SECRET}}}"], {}, "feed"),
    # a notifier's urls as one string, not a list
    (["--set", "notify.0.use=apprise", "--set", "notify.0.urls=${ALERT_URL}"],
     {"ALERT_URL": f"json://u:{TOKEN}@127.0.0.1/{PATH_TOKEN}"}, "urls"),
    # a misspelt secret key (validate names the nearest valid key, never the value; config show
    # prints what the file says, masked by key name, and `secrett` is not a secret's name)
    (["--set", f"feed.secrett={SECRET}"], {}, "did you mean 'secret'"),
    (["--set", f"notify=[{{use: apprise, url: 'json://u:{TOKEN}@127.0.0.1/{PATH_TOKEN}'}}]"], {}, "urls"),
    # a --set whose value is not valid YAML (the error used to quote the whole argument)
    (["--set", f"feed.key=[{KEY}"], {}, "--set"),
    (["--set", f"notify.0.urls=[json://u:{TOKEN}@127.0.0.1/{PATH_TOKEN}"], {}, "--set"),
    (["--set", f"feed={{use: alpaca_feed, key: {KEY}, secret: {SECRET}"], {}, "--set"),
    # a --set under a secret's value (the error used to show the value it is under)
    (["--set", f"feed.key={KEY}", "--set", "feed.key.sub=1"], {}, "--set"),
    # a broker key where none is expected, with a secret value
    (["--set", f"broker.password={SECRET}"], {}, "password"),
]


@pytest.mark.parametrize("args, extra_env, says", MISTAKES, ids=[f"mistake{i}" for i in range(len(MISTAKES))])
def test_validate_and_config_show_errors_never_quote_a_secret(tmp_path, args, extra_env, says):
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home, ALPACA_API_KEY=KEY, ALPACA_SECRET_KEY=SECRET, **extra_env)
    texts = {}
    valid = _run(["validate", str(LIVE), *args], tmp_path, env, timeout=60)
    assert valid.returncode == 2 and says in valid.stderr, (valid.stdout, valid.stderr)
    shown = _run(["config", "show", str(LIVE), *args], tmp_path, env, timeout=60)  # merges; a section's
    assert shown.returncode in (0, 2), shown.stderr                          # model is validate's business
    texts.update({**_terminal(valid, "validate"), **_terminal(shown, "config show")})
    if "secrett" in " ".join(args):
        texts.pop("config show stdout")  # see MISTAKES: by design, the unknown key's value is shown
    found = leaks([KEY, SECRET, TOKEN, PATH_TOKEN], [home], texts)
    assert not found, "\n".join(found) + "\n" + "\n".join(texts.values())


def test_a_secret_written_into_the_file_is_masked_in_config_show_and_in_errors(tmp_path):
    """Secrets typed into the YAML itself (not from the environment), and a file with a
    mistake on a secret's own line: the message points at it without quoting it."""
    home = tmp_path / "home"
    home.mkdir()
    good = tmp_path / "inline.yaml"
    good.write_text(f"extends: {LIVE}\nfeed:\n  use: alpaca_feed\n  key: {KEY}\n  secret: \"{SECRET}\"\n"
                    f"notify:\n  - use: apprise\n    urls:\n      - json://u:{TOKEN}@127.0.0.1/{PATH_TOKEN}\n")
    conf = _run(["config", "show", str(good)], tmp_path, _env(home))
    assert conf.returncode == 0, conf.stderr
    bad = tmp_path / "broken.yaml"
    bad.write_text(f"extends: {LIVE}\nfeed:\n  use: alpaca_feed\n  key: {KEY}\n  secret: \"{SECRET}\n  feed: iex\n")
    broken = _run(["validate", str(bad)], tmp_path, _env(home))
    assert broken.returncode == 2 and "broken.yaml:" in broken.stderr, broken.stderr
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(f"extends: {LIVE}\nfeed:\n  use: alpaca_feed\n  key: [{KEY}]\n  secret: {{x: {SECRET}}}\n")
    typed = _run(["validate", str(wrong)], tmp_path, _env(home))
    assert typed.returncode == 2 and "key" in typed.stderr, typed.stderr
    texts = {**_terminal(conf, "config show"), **_terminal(broken, "validate broken"),
             **_terminal(typed, "validate wrong")}
    found = leaks([KEY, SECRET, TOKEN, PATH_TOKEN], [home], texts)
    assert not found, "\n".join(found) + "\n" + "\n".join(texts.values())
