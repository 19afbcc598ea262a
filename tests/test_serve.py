"""`bothost serve` and report.html in a real headless Chromium (Debian's /usr/bin/chromium,
driven by playwright; `.ci/run` installs the browser when it is missing).

* the page's numbers are `bothost status`'s (and status.json's summary) for the same state;
* during a paper run, a fill the venue commits is on the page within 1 s;
* off 127.0.0.1 the server needs --token, and then every request carries it or gets 401;
* `bothost backtest --html` / `bothost report` write one self-contained report.html.

Screenshots of the page and the report go to the folder the tests print (BOTHOST_ARTIFACTS,
else the system's temp folder); docs/img/serve.png is one of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal as D
from pathlib import Path

import pytest

from conftest import PAPER, bothost

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("BOTHOST_ARTIFACTS") or tempfile.gettempdir()) / "bothost-test-artifacts" / "serve"
TOKEN = "s3cret-token"


def env() -> dict:
    return {**os.environ, "COLUMNS": "200"}


def saved(capsys, path: Path) -> None:
    with capsys.disabled():
        print(f"\n[test_serve] screenshot: {path}")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install -y chromium chromium-driver"
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900},
            bypass_csp=True)  # the page's CSP forbids eval, which wait_for_function's predicates use
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert not errors, errors


@contextlib.contextmanager
def serving(*args: str, cwd: Path):
    """`bothost serve ARGS --port 0` in a child process; yields the URL it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "bothost", "serve", *args, "--port", "0"], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        found = re.search(r"http://\S+", line)
        assert found, f"serve did not start: {line!r} {proc.poll()} {proc.stderr.read() if proc.poll() is not None else ''}"
        yield found.group(0)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def http(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, r.read(4096)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def rich_rows(text: str) -> list[list[str]]:
    """The body rows of every table `bothost status` printed, as lists of cells."""
    return [[c.strip() for c in line.strip().strip("│").split("│")] for line in text.splitlines()
            if line.strip().startswith("│")]


def table(page, name: str) -> list[dict]:
    return page.evaluate("""name => [...document.querySelectorAll(`[data-table="${name}"] tbody tr`)].map(tr =>
        Object.fromEntries([...tr.children].map(td => [td.dataset.col || "span", td.textContent])))""", name)


def key(page, name: str) -> str:
    return page.locator(f'[data-key="{name}"]').first.text_content()


# ---------------------------------------------------------------------------------- a finished run
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """`bothost run configs/tqqq-paper.yaml` to its end, in a folder of its own."""
    cwd = tmp_path_factory.mktemp("finished")
    r = bothost("run", str(PAPER), "--no-progress", cwd=cwd)
    assert r.returncode == 0, r.stderr
    return cwd


def test_page_shows_what_bothost_status_shows(finished, page, capsys):
    state = finished / "state" / "tqqq-paper"
    status = json.loads((state / "status.json").read_text())
    book, summary = status["strategies"]["tqqq_grid"]["book"], status["summary"]
    held = status["holdings"]["tqqq_grid"]
    shown = bothost("status", str(PAPER), cwd=finished)
    assert shown.returncode == 0, shown.stderr
    rows = rich_rows(shown.stdout)
    pairs = {r[0]: r[1] for r in rows if len(r) == 2}

    with serving(str(PAPER), cwd=finished) as url:  # CONFIG finds the state folder, as `bothost status`
        page.goto(url)
        page.wait_for_function("document.querySelector('[data-key=\"status\"]')?.textContent === 'done'")

        # the open lots (the grid's holdings: its label, level, purchase and exit price) and the
        # working orders under the grid's own labels: row for row, as its book says them
        lots = table(page, "lots")
        assert [(r["label"], r["level"], r["quantity"], r["price"], r["exit_price"]) for r in lots] == [
            (f"L{x['level']}", str(x["level"]), str(x["quantity"]), x["purchase"], x["sell_price"]) for x in book["lots"]]
        assert len(lots) == len(held["lots"]) > 0
        for r in lots:
            assert any({r["level"], r["quantity"], r["price"], r["exit_price"]} <= set(s) for s in rows), r
        working = table(page, "working")
        expected = ([("entry", "BUY", "0", str(book["entry"]["quantity"]), book["entry"]["price"], book["entry"]["order_id"])]
                    if book["entry"] else []) + [
            ("queue", "BUY", str(q["level"]), str(q["quantity"]), q["price"], q["order_id"]) for q in book["queue"]]
        assert [(r["label"], r["side"], r["level"], r["quantity"], r["price"], r["order_id"]) for r in working] == expected
        assert len(working) == len(held["orders"]) > 0
        for r in working:
            assert any({r["level"], r["quantity"], r["price"], r["order_id"]} <= set(s) for s in rows), r

        # the grid's records as it published them: the anchor because the grid published one (the
        # host's own cards have none), its P&L and fees; its lots with their SELL orders, folded
        assert page.locator('[data-key="position.anchor"]').count() == 0
        assert key(page, "strategy.tqqq_grid.book.anchor") == book["anchor"] == pairs["anchor"]
        for k in ("realized_pnl", "fees", "net_realized_pnl"):
            assert key(page, f"strategy.tqqq_grid.book.{k}") == book[k] == pairs[k]
        for r in table(page, "strategy.tqqq_grid.book"):  # every scalar of it, an empty list as "none"
            k = r["what"].replace(" ", "_")
            assert r["value"] == {"None": "–", "[]": "none"}.get(str(book[k]), str(book[k])), k
        assert [r["sell_order_id"] for r in table(page, "strategy.tqqq_grid.book.lots")] == [
            x["sell_order_id"] for x in book["lots"]]
        for k in ("open_position", "last_price", "open_cost", "market_value", "unrealized_pnl", "realized_pnl", "fees",
                  "net_realized_pnl", "total_pnl", "equity", "lowest_equity", "peak_capital_committed", "max_drawdown"):
            assert key(page, f"position.{k}") == str(summary[k]) == pairs[k], k
        assert key(page, "fills.count") == str(summary["fills"])
        # every scalar of the summary, as `bothost status`'s "last run" table has it
        for r in table(page, "summary"):
            k = r["what"].replace(" ", "_")
            assert r["value"] == ("–" if summary[k] is None else str(summary[k])) == pairs[k].replace("None", "–"), k

        # the last reconstruct's findings (the grid's record), and the price levels: the grid's own chain
        findings = page.locator('[data-list="strategy.tqqq_grid.reconstruct"] li').all_text_contents()
        assert findings == status["strategies"]["tqqq_grid"]["reconstruct"]
        assert all(f in shown.stdout for f in findings)
        from bothost_plugins.tqqq_grid.grid import trigger_chain

        chain = trigger_chain(D(book["anchor"]), D(book["grid"]["buy_step"]), book["grid"]["levels"])
        ladder = [r for r in table(page, "ladder") if "level" in r]
        assert len(ladder) >= 10
        for r in ladder:
            assert D(r["price"]) == chain[int(r["level"])]
        assert page.get_by_text(f"price levels ({len(ladder)} of {book['grid']['levels']}").count() == 1
        marker = page.locator("tr.lastline").text_content()
        assert marker == f"last price {summary['last_price']}"
        # the chart: the price line and a marker per fill side
        assert page.locator("[data-chart] polyline.price").count() == 1
        assert page.locator("[data-chart] path.buy").count() == page.locator("[data-chart] path.sell").count() == 1
        # nothing on the page could place an order
        assert page.locator("button, form, input").count() == 0

        for shot, full in ((ARTIFACTS / "serve.png", False), (ARTIFACTS / "serve-full.png", True)):
            page.screenshot(path=str(shot), full_page=full)
            saved(capsys, shot)

        # no token on 127.0.0.1: only requests addressed to a loopback name are answered
        assert http(url)[0] == 200
        assert http(url, {"Host": "attacker.example"})[0] == 400
        assert http(url + "static/app.js")[0] == 200
        assert http(url + "static/../status.json")[0] == 404


# ---------------------------------------------------------------------------------- a live run
class CommitWatch(threading.Thread):
    """Records when the venue commits new executions: (count, the -wal file's mtime then)."""

    def __init__(self, venue: Path, proc: subprocess.Popen):
        super().__init__(daemon=True)
        self.venue, self.wal, self.proc = venue, Path(str(venue) + "-wal"), proc
        self.seen: list[tuple[int, float]] = []

    def run(self) -> None:
        while self.proc.poll() is None:
            if self.wal.exists():
                try:
                    db = sqlite3.connect(f"file:{self.venue}?mode=ro", uri=True, timeout=0.2)
                    try:
                        count = db.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
                    finally:
                        db.close()
                    written = min(self.wal.stat().st_mtime_ns / 1e9, time.time())
                except (sqlite3.Error, OSError):
                    count = None
                if count and (not self.seen or count > self.seen[-1][0]):
                    self.seen.append((count, written))
            time.sleep(0.01)


WATCH_PAGE = """() => {
    window.__seen = [];
    const note = () => {
        const n = document.querySelector('[data-key="fills.count"]');
        const s = document.querySelector('[data-key="status"]');
        if (!n) return;
        const c = parseInt(n.textContent, 10), last = window.__seen[window.__seen.length - 1];
        if (!last || last[1] !== c) window.__seen.push([Date.now() / 1000, c, s && s.textContent]);
    };
    new MutationObserver(note).observe(document.getElementById('app'), {childList: true, subtree: true});
    note();
}"""


def test_a_new_fill_is_on_the_page_within_a_second(tmp_path, page, capsys):
    data = tmp_path / "bars.csv"
    assert bothost("data", "synth", "--out", str(data), "--bars", "80000", "--seed", "5", "--band", "40,60",
                   cwd=tmp_path).returncode == 0
    state = tmp_path / "state"
    with serving("--state", str(state), cwd=tmp_path) as url:
        page.goto(url)
        assert key(page, "status") == "no run yet"
        page.evaluate(WATCH_PAGE)
        # a replay handling every tick (--verify-skips) lasts seconds; it checkpoints (commits its
        # fills) between chunks of the file, at most every 250 ms here
        run = subprocess.Popen([sys.executable, "-m", "bothost", "run", str(PAPER), "--data", str(data), "--state",
                                str(state), "--no-progress", "--verify-skips", "--set", "engine.checkpoint_every=250ms",
                                "--set", "feed.chunk_rows=1500"],
                               cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watch = CommitWatch(state / "venue.sqlite", run)
        watch.start()
        shot = ARTIFACTS / "serve-live.png"
        try:
            page.wait_for_function("window.__seen.some(s => s[2] === 'running' && s[1] > 100)", timeout=60_000)
            lots = table(page, "lots")
            assert lots and key(page, "status") == "running"  # the lots of the run going on, from its checkpoint
            page.screenshot(path=str(shot), full_page=False)
            out, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        assert run.returncode == 0, err
        watch.join(5)
        saved(capsys, shot)
        page.wait_for_function("document.querySelector('[data-key=\"status\"]').textContent === 'done'", timeout=5000)
        fills = len((state / "out" / "fills.csv").read_text().splitlines()) - 1
        assert key(page, "fills.count") == str(fills)
        seen = page.evaluate("window.__seen")

    mid_run = [(c, t) for c, t in watch.seen if c < fills]
    assert len(mid_run) >= 3, watch.seen  # several commits while the bot ran
    delays = []
    for count, written in watch.seen:
        shown = next((t for t, c, _ in seen if c >= count), None)
        assert shown is not None, (count, seen[-5:])
        delays.append(shown - written)
    with capsys.disabled():
        print(f"\n[test_serve] {len(delays)} commits, fill on the page after: max {max(delays):.3f} s, "
              f"median {sorted(delays)[len(delays) // 2]:.3f} s")
    assert max(delays) < 1.0, delays


# ---------------------------------------------------------------------------------- the token
def test_off_127_0_0_1_every_request_needs_the_token(finished, page):
    state = finished / "state" / "tqqq-paper"
    refused = bothost("serve", "--state", str(state), "--host", "127.0.0.2", cwd=finished)
    assert refused.returncode == 2 and "--token" in refused.stderr and "127.0.0.2" in refused.stderr
    with serving("--state", str(state), "--host", "127.0.0.2", "--token", TOKEN, cwd=finished) as url:
        base = url.split("?")[0]
        assert base.startswith("http://127.0.0.2:")
        for path in ("", "api/data", "events", "static/app.js", "static/style.css", "nothing"):
            assert http(base + path)[0] == 401, path
            assert http(base + path + "?token=wrong")[0] == 401, path
            assert http(base + path, {"Authorization": "Bearer wrong"})[0] == 401, path
        for path in ("", "api/data", "static/app.js"):
            assert http(base + path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200, path
            assert http(f"{base}{path}?token={TOKEN}")[0] == 200, path
        status, body = http(f"{base}api/data", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and body.startswith(b"{")

        assert page.goto(base).status == 401
        page.goto(f"{base}?token={TOKEN}")  # the page passes the token on to its assets and its events
        page.wait_for_function("document.querySelector('[data-key=\"live\"]')?.textContent === 'live'")
        assert key(page, "status") == "done"
        assert page.locator('[data-table="lots"] tbody tr').count() > 0


# ---------------------------------------------------------------------------------- another strategy
def test_a_strategy_other_than_the_grid_shows_its_lots_and_orders_in_its_own_words(tmp_path, page):
    """A strategy the host has never heard of: one lot without a level, a SELL under its own
    label, a record of its own. The page shows them, and none of the grid's words."""
    from bothost.model import HeldLot, Holdings, Side, WorkingOrder
    from bothost.serve import views
    from bothost.serve.report import render_report
    from bothost.serve.sources import Sources

    held = Holdings.of_lots("EURUSD", [HeldLot(1000, D("1.0842"), label="long leg")],
                           [WorkingOrder("41", Side.SELL, 1000, D("1.0900"), label="take profit")])
    records = {"spread": {"z_score": "1.8", "window": 60}, "notes": ["warmed up"]}
    src = Sources(None, None, status={"strategies": {"pairs": records}, "symbols": {"pairs": "EURUSD"},
                                      "holdings": {"pairs": held.as_dict()}, "summary": {"status": "done"}},
                  status_mtime_ns=1)
    report = tmp_path / "report.html"
    report.write_text(render_report(views.page_data(src), "pairs"))
    page.goto(report.as_uri())
    page.wait_for_selector('[data-strategy="pairs"]')

    assert table(page, "lots") == [{"label": "long leg", "quantity": "1000", "price": "1.0842"}]
    assert table(page, "working") == [{"label": "take profit", "side": "SELL", "quantity": "1000", "price": "1.0900",
                                       "filled": "0", "order_id": "41"}]
    assert key(page, "strategy.pairs.spread.z_score") == "1.8" and key(page, "strategy.pairs.spread.window") == "60"
    assert page.locator('[data-list="strategy.pairs.notes"] li').all_text_contents() == ["warmed up"]
    assert page.locator('[data-table="ladder"]').count() == 0  # it trades at no price levels
    text = page.locator("body").inner_text().lower()
    assert "EURUSD" in page.locator("h1").text_content()
    for word in ("anchor", "entry", "queue", "trigger", "buy step", "grid"):
        assert word not in text, word


# ---------------------------------------------------------------------------------- report.html
def test_backtest_html_writes_one_self_contained_report(tmp_path, page, capsys):
    r = bothost("backtest", str(PAPER), "--out", "O", "--html", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "O"
    report = out / "report.html"
    assert report.exists() and (out / "fills.csv").exists()
    html = report.read_text()
    lowered = html.lower()
    for needle in ("src=", "href=", "http:", "https:", "url(", "@import", "<link", "//cdn"):
        assert needle not in lowered, needle
    summary = json.loads((out / "summary.json").read_text())

    requests: list[str] = []

    def only_the_file(route):
        requests.append(route.request.url)
        if route.request.url == report.as_uri():
            route.continue_()
        else:
            route.abort()

    page.route("**/*", only_the_file)
    page.goto(report.as_uri())
    page.wait_for_selector('[data-key="position.equity"]')
    assert requests == [report.as_uri()]  # nothing else was asked for
    for k in ("open_position", "last_price", "realized_pnl", "fees", "net_realized_pnl", "unrealized_pnl",
              "total_pnl", "equity", "max_drawdown"):
        assert key(page, f"position.{k}") == str(summary[k]), k
    assert key(page, "fills.count") == str(summary["fills"]) and key(page, "status") == "done"
    assert page.locator('[data-table="lots"] tbody tr').count() == summary["open_lots"]
    assert page.locator("[data-chart] polyline.price").count() == 1
    shot = ARTIFACTS / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    saved(capsys, shot)

    # `bothost report OUT_DIR` writes the same file again from the same outputs
    again = bothost("report", "O", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert report.read_text() == html
