"""Damaged state and host faults are the user's to fix, never internal errors, never lost data.

* A damaged or foreign state file (bot_state.json, venue.sqlite, executions.sqlite) is exit 2
  naming the file, what is wrong and the way out, and the file is left as it was; following the
  hint recovers. price_samples.npz is only a picture: a damaged one is dropped with a warning.
* A state or output folder that cannot be written is exit 2 naming it and the fix, found before
  anything runs.
* A state write that fails mid-run (a full disk, through the seam in bothost.state) is a
  critical alert (exit 3): nothing more placed or cancelled, the venue's orders left in place,
  and the same command afterwards ends with the fills of a run that never failed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from bothost import state as state_mod
from bothost.errors import InputError
from bothost.hookspecs import hookimpl
from bothost.journal import ExecutionJournal
from bothost.model import OrderStatus
from conftest import PAPER, bothost, run_in_process

# Small chunks and a checkpoint after each: a 20,000-bar replay commits ten times, so a fault
# can strike mid-run. Every run here uses the same settings (a resume must match its config).
SETTINGS = ("feed.chunk_rows=2000", "engine.checkpoint_every=1ms")
OPTS = ["--no-progress", *[a for s in SETTINGS for a in ("--set", s)]]


def run(cwd: Path, state: str, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return bothost("run", str(PAPER), "--state", state, *OPTS, *extra, cwd=cwd, env=env)


def assert_bad_input(r: subprocess.CompletedProcess, path: str) -> str:
    """Exit 2, `error: PATH: what is wrong` and a hint, never a traceback; returns the message."""
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith(f"error: {path}"), r.stderr
    assert "\n  hint: " in r.stderr and "Traceback" not in r.stderr and "internal error" not in r.stderr
    return r.stderr


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One uninterrupted run: its state folder (S) and its fills, the reference for every test."""
    root = tmp_path_factory.mktemp("reference")
    r = run(root, "S")
    assert r.returncode == 0, r.stderr
    assert (root / "S" / "out" / "fills.csv").read_bytes().count(b"\n") > 500
    return root


@pytest.fixture
def copy(finished, tmp_path) -> Path:
    """A copy of the finished run's state folder, as tmp_path/S, to damage."""
    shutil.copytree(finished / "S", tmp_path / "S")
    (tmp_path / "S" / ".lock").unlink()
    return tmp_path


def reference(finished) -> bytes:
    return (finished / "S" / "out" / "fills.csv").read_bytes()


# ------------------------------------------------------------------------- damaged state files
def _json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    data["strategies"].pop("__config__", None)  # the config check, if any, is not what this tests
    path.write_text(json.dumps(data))


def _sql(path: Path, *statements: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        for s in statements:
            db.execute(s)
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _overwrite(path: Path, offset: int, size: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * size)


DAMAGE = {
    # name: (file, how it is damaged, what the message says)
    "backup random bytes": ("bot_state.json", lambda p: p.write_bytes(os.urandom(3000) + b"\xff"), "not text"),
    "backup cut short": ("bot_state.json", lambda p: p.write_bytes(p.read_bytes()[:700]), "not valid JSON"),
    "backup not an object": ("bot_state.json", lambda p: p.write_text("[1, 2]\n"), "not a bothost backup"),
    "backup of a newer bothost": ("bot_state.json", lambda p: _json(p, lambda d: d.update(format=99)),
                                  "format 99, written by a newer bothost"),
    "backup of another symbol": ("bot_state.json",
                                 lambda p: _json(p, lambda d: d["strategies"]["tqqq_grid"].update(symbol="SPY")),
                                 "strategy 'tqqq_grid' traded SPY here, this config trades TQQQ"),
    "venue partly overwritten": ("venue.sqlite", lambda p: _overwrite(p, 8192, 20000), "malformed"),
    "venue random bytes": ("venue.sqlite", lambda p: p.write_bytes(os.urandom(200_000)), "not a database"),
    "venue empty": ("venue.sqlite", lambda p: p.write_bytes(b""), "the paper account is gone: the file is empty"),
    "venue without tables": ("venue.sqlite", lambda p: _sql(p, "DROP TABLE orders", "DROP TABLE executions",
                                                            "DROP TABLE meta"),
                             "the paper account is gone: the file has no tables"),
    "venue of another program": ("venue.sqlite", lambda p: _sql(p, "DROP TABLE orders", "DROP TABLE executions",
                                                                "DROP TABLE meta", "CREATE TABLE songs (t)"),
                                 "not a simulated venue's database: its tables are songs"),
    "venue of another symbol": ("venue.sqlite", lambda p: _sql(
        p, "UPDATE meta SET key = 'position:SPY' WHERE key = 'position:TQQQ'", "UPDATE orders SET symbol = 'SPY'"),
        "this is the paper account of SPY, but bot_state.json next to it trades TQQQ"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_or_foreign_state_file_is_bad_input_and_is_left_as_it_was(copy, case):
    name, damage, says = DAMAGE[case]
    path = copy / "S" / name
    damage(path)
    (copy / "S" / "venue.sqlite-wal").unlink(missing_ok=True)
    before = {p.name: p.read_bytes() for p in (copy / "S").iterdir() if p.is_file() and p.name != "bot_log.txt"}
    before.pop("status.json")
    r = run(copy, "S")
    text = assert_bad_input(r, f"S/{name}:")  # a JSON error adds LINE:COL
    assert says in text
    assert "--state DIR for a fresh run" in text
    if name == "venue.sqlite":
        # the simulated venue's file is the paper account: the hint says so, and how to start over
        assert "is the paper account itself" in text and "deleting venue.sqlite restarts the paper account" in text
    elif "newer" in case:
        assert "run it with the bothost that wrote it" in text and "the broker's orders are the truth" in text
    elif "symbol" not in case:
        assert "the broker's orders are the truth" in text and f"mv S/{name} S/{name}.bad" in text
    after = {p.name: p.read_bytes() for p in (copy / "S").iterdir() if p.is_file() and p.name in before}
    assert after == before  # nothing was written over what the user may still need


def test_a_damaged_execution_journal_or_a_foreign_one_is_bad_input(tmp_path):
    """A live run's executions.sqlite: checked (quick_check, its tables) before anything is written."""
    path = tmp_path / "executions.sqlite"
    _sql(path, "CREATE TABLE songs (t)")
    with pytest.raises(InputError, match="the execution journal is not one: its tables are songs") as err:
        ExecutionJournal(path)
    assert "the broker's orders are the truth" in str(err.value) and f"mv {path}" in str(err.value)
    path.unlink()
    _sql(path, "CREATE TABLE executions (n INTEGER PRIMARY KEY, exec_id TEXT)")
    with pytest.raises(InputError, match="written by another bothost version"):
        ExecutionJournal(path)
    path.write_bytes(os.urandom(50_000))
    with pytest.raises(InputError, match="execution journal is unreadable: file is not a database"):
        ExecutionJournal(path)
    path.write_bytes(b"")  # empty: a journal never written to, kept
    ExecutionJournal(path).close()


def test_a_backup_moved_aside_as_the_hint_says_resumes_to_the_same_fills(finished, stopped, tmp_path):
    """bot_state.json is only a backup: mid-run, damaged, then moved aside as the hint says, the
    replay resumes from the venue and ends with the fills of the run that never stopped."""
    shutil.copytree(stopped / "S", tmp_path / "S")
    backup = tmp_path / "S" / "bot_state.json"
    backup.write_bytes(b"\x00\x9f" * 100)
    assert "mv S/bot_state.json S/bot_state.json.bad" in assert_bad_input(run(tmp_path, "S"), "S/bot_state.json")
    backup.rename(backup.with_name("bot_state.json.bad"))
    r = run(tmp_path, "S")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "S" / "out" / "fills.csv").read_bytes() == reference(finished)


def test_a_damaged_price_picture_is_dropped_with_a_warning(copy, finished):
    picture = copy / "S" / "price_samples.npz"
    picture.write_bytes(picture.read_bytes()[:4000])  # a cut-short zip
    r = run(copy, "S")
    assert r.returncode == 0, r.stderr
    assert "WARNING" in r.stderr and "S/price_samples.npz is damaged" in r.stderr
    log = (copy / "S" / "bot_log.txt").read_text()
    assert "moved to S/price_samples.npz.bad" in log and "fills.csv and the P&L are not affected" in log
    assert (copy / "S" / "price_samples.npz.bad").exists()
    assert (copy / "S" / "out" / "fills.csv").read_bytes() == reference(finished)


# ------------------------------------------------------------------------ folders not writable
@contextlib.contextmanager
def read_only(folder: Path):
    """A folder nobody can write, root included (chmod does not stop root; an immutable folder does)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    immutable = False
    try:
        probe = folder / "probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:  # root: chmod is not enough
            probe.unlink()
            done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"this machine cannot make a folder read-only for root: {done.stderr.strip()}")
            immutable = True
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


@pytest.mark.parametrize("where", ["state in a read-only folder", "state under a file", "out in a read-only folder",
                                   "out under a file"])
def test_a_folder_that_cannot_be_written_is_found_before_anything_runs(tmp_path, where):
    (tmp_path / "file").write_text("not a folder\n")
    with read_only(tmp_path / "ro") if "read-only" in where else contextlib.nullcontext():
        target = "ro/x" if "read-only" in where else "file/x"
        if where.startswith("state"):
            r = run(tmp_path, target)
        else:
            r = run(tmp_path, "S", "--out", target)
    option = "--state" if where.startswith("state") else "--out"
    text = assert_bad_input(r, f"{target}: ")
    if "read-only" in where:
        assert "is not writable" in text and "chmod u+w ro" in text
    else:
        assert "file is a file, not a folder" in text
    assert f"{option} DIR" in text
    # found before the run: nothing replayed, nothing written in the state folder
    assert not (tmp_path / "S" / "venue.sqlite").exists() and not (tmp_path / "S" / "bot_state.json").exists()


def test_outputs_that_cannot_be_written_at_the_end_are_bad_input_and_a_rerun_writes_them(copy, finished):
    (copy / "S" / "out" / "fills.csv").unlink()
    (copy / "S" / "out" / "fills.csv").mkdir()  # the folder is writable, the file cannot be
    text = assert_bad_input(run(copy, "S"), "S/out/fills.csv: ")  # found at the end: the replay had to run
    assert "the outputs could not be written" in text and "run the same command again" in text
    (copy / "S" / "out" / "fills.csv").rmdir()
    r = run(copy, "S")
    assert r.returncode == 0, r.stderr
    assert (copy / "S" / "out" / "fills.csv").read_bytes() == reference(finished)


# ------------------------------------------------------------------------------- a full disk
def _resting(venue: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{venue}?mode=ro", uri=True)) as db:
        return db.execute("SELECT COUNT(*) FROM orders WHERE status = ?", (OrderStatus.SUBMITTED.value,)).fetchone()[0]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """A run whose disk filled mid-way (the seam: 10 state writes, then ENOSPC), as tmp/S."""
    root = tmp_path_factory.mktemp("stopped")
    root.joinpath("result.json").write_text(json.dumps(vars(run(root, "S", env={state_mod.DISK_FULL_ENV: "10"}))))
    (root / "S" / ".lock").unlink()
    return root


def test_a_full_disk_mid_run_is_a_critical_stop_and_the_same_command_then_recovers(finished, stopped, tmp_path):
    r = subprocess.CompletedProcess(**json.loads((stopped / "result.json").read_text()))
    assert r.returncode == 3, r.stdout + r.stderr
    assert "CRITICAL: cannot write the state file S/" in r.stderr and ": disk full" in r.stderr
    assert "nothing more was placed and the broker's orders were left in place" in r.stderr
    assert "df -h S" in r.stderr and "run the same command again" in r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    shutil.copytree(stopped / "S", tmp_path / "S")
    state = tmp_path / "S"
    assert _resting(state / "venue.sqlite") > 0  # the grid's orders rest at the venue, not cancelled
    json.loads((state / "bot_state.json").read_text())  # every file whole: the last checkpoint's
    again = run(tmp_path, "S")
    assert again.returncode == 0, again.stderr
    summary = json.loads((state / "out" / "summary.json").read_text())
    assert summary["resumed_after"] is not None  # it resumed mid-run, it did not start over
    assert (state / "out" / "fills.csv").read_bytes() == reference(finished)


class Watcher:
    """An observer: every order placed or cancelled at the venue, and when the alert came."""

    def __init__(self):
        self.calls: list[tuple[str, bool]] = []
        self.alert = None

    @hookimpl
    def on_start(self, ctx):
        broker = ctx.engine.broker
        place, cancel = broker.place, broker.cancel
        broker.place = lambda order: (self.calls.append(("place", self.alert is not None)), place(order))[1]
        broker.cancel = lambda oid: (self.calls.append(("cancel", self.alert is not None)), cancel(oid))[1]

    @hookimpl
    def on_alert(self, ctx, alert):
        self.alert = alert


def test_after_a_failed_state_write_nothing_more_is_placed_or_cancelled(tmp_path, monkeypatch):
    writes = []

    def disk_full_after_the_fourth_checkpoint(path):
        writes.append(path.name)
        if writes.count("venue.sqlite") > 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(state_mod, "write_fault", disk_full_after_the_fourth_checkpoint)
    watcher = Watcher()
    result = run_in_process(tmp_path, SETTINGS, observers=[watcher])
    assert result.status == "critical"
    assert watcher.alert is not None and watcher.alert.title.endswith("venue.sqlite: disk full")
    assert ("place", False) in watcher.calls  # it traded before the disk filled
    assert [c for c in watcher.calls if c[1]] == []  # and placed or cancelled nothing after
    assert "CRITICAL: cannot write the state file" in result.summary["alert"]
