"""Files a run keeps in its state folder: atomic JSON, private modes, and what happens when they
are damaged or cannot be written.

The JSON backup (``bot_state.json``) is only a fallback: reconstruct trusts the broker. It is
still written so that it is never half-written: temp file in the same folder, fsync, rename,
fsync of the folder. A crash at any point leaves either the old file or the new one.

Damage is bad input (exit 2) naming the file, what is wrong and the way out; a folder that
cannot be written is found before the run starts (exit 2). A write that fails during a run (a
full disk) is the run's critical alert (exit 3): nothing more is placed, the broker's orders are
left in place, and the files on disk stay at the last complete checkpoint, from which the same
command resumes once there is room again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .errors import InputError

log = logging.getLogger("bothost.state")

FILE_MODE = 0o600
DIR_MODE = 0o700

#: The layout of bot_state.json this host writes (a top-level ``format``; files without it are 1).
STATE_FORMAT = 1

#: The recovery every damaged state file shares.
FRESH_RUN = ("move the state folder aside (`bothost run --fresh` does it, deleting nothing) or pass "
             "--state DIR for a fresh run")


# ------------------------------------------------------------------------ folders we can write
def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "disk full"
    return exc.strerror or str(exc)


def _folder_error(path: Path, what: str, option: str, exc: OSError) -> InputError:
    """A folder the run cannot use: the path, the reason and the fix."""
    # The first part of the path that exists and is not a folder (a path whose parent is a file)
    for part in [path, *path.parents]:
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                return InputError(f"the {what} cannot be created: {part} is a file, not a folder", path,
                                  hint=f"pass {option} DIR with a folder you can write, or move the file {part} aside")
            break
    if exc.errno == errno.ENOSPC:
        hint = f"free space on the disk that holds it (df -h {part}), or pass {option} DIR on another disk"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = f"make it writable (chmod u+w {part}), or pass {option} DIR with a folder you can write"
    else:
        hint = f"pass {option} DIR with a folder you can write"
    return InputError(f"the {what} is not writable: {_reason(exc)}", path, hint=hint)


def _probe(folder: Path) -> None:
    """Create and remove a file in ``folder``: the only test of writability that holds for root,
    read-only mounts, immutable folders and full disks alike."""
    probe = folder / f".bothost-write-test-{os.getpid()}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.write(fd, b"ok\n")
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            probe.unlink()


def ensure_state_dir(path: Path) -> Path:
    """The state folder, created if need be and proved writable (exit 2 naming it otherwise)."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        _probe(path)
    except OSError as exc:
        raise _folder_error(path, "state folder", "--state", exc) from None
    return path


def check_out_dir(path: Path) -> None:
    """The output folder must be a folder this run can write, or be creatable: checked before the
    run starts (nothing is created here: a run refused later writes no outputs)."""
    target = path
    while not (target.exists() or target.is_symlink()) and target != target.parent:
        target = target.parent
    try:
        if not target.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target))
        _probe(target)
    except OSError as exc:
        raise _folder_error(path, "output folder", "--out", exc) from None


class StateLock:
    """An exclusive lock on a state folder for the life of a run (released when closed or when
    the process dies, however)."""

    def __init__(self, fd: int, path: Path | None = None):
        self.fd = fd
        self.path = path

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            if self.path is not None:
                _watched.pop(_key(self.path), None)  # the run that watched its writes is over


def lock_state_dir(path: Path) -> StateLock:
    """Take the state folder for this run, or refuse (bad input: exit 2) naming the run using it."""
    import fcntl

    lock_path = path / ".lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise _folder_error(path, "state folder", "--state", exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        finally:
            os.close(fd)
        raise InputError(f"the state folder {path} is in use by another bothost run (pid {holder})", path,
                         hint="stop that run first, or give this one its own folder with --state DIR") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return StateLock(fd, path)


# ------------------------------------------------------------------ writes that fail in a run
#: Test seam for a failing disk: called with the file's path before every state write (the JSON
#: files, price_samples.npz, the simulated venue's checkpoints); an OSError it raises is handled
#: exactly as the disk's own would be.
write_fault: Callable[[Path], None] | None = None

#: The same seam for a whole process (a test runs the real command): ``N`` lets the first N state
#: writes through and fails every later one with ENOSPC.
DISK_FULL_ENV = "BOTHOST_TEST_DISK_FULL_AFTER"
_env_fault: tuple[str, list[int]] | None = None


def _fault(path: Path) -> None:
    global _env_fault
    if write_fault is not None:
        write_fault(path)
    value = os.environ.get(DISK_FULL_ENV)
    if not value:
        return
    if _env_fault is None or _env_fault[0] != value:
        _env_fault = (value, [int(value)])
    left = _env_fault[1]
    if left[0] <= 0:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    left[0] -= 1


class _Watch:
    def __init__(self, engine):
        self.engine = engine
        self.skipped: set[Path] = set()  # files not written while the run stops (said once each)


_watched: dict[str, _Watch] = {}


def _key(folder: Path) -> str:
    return os.path.realpath(folder)


def watch_state_writes(state_dir: Path, engine) -> None:
    """For the life of the run (its lock): a state write in ``state_dir`` that fails is the run's
    critical alert, raised on ``engine`` (S1: nothing more is placed, exit 3)."""
    _watched[_key(state_dir)] = _Watch(engine)


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    return getattr(exc, "sqlite_errorcode", None) == 13 or "disk is full" in str(exc)  # SQLITE_FULL


def state_write(path: Path, write: Callable[[], Any]) -> Any:
    """Every write to the state folder goes through here: the test seam, then a failure handled
    as a run must handle it. With no run watching the folder the error goes to the caller
    unchanged. In a run, the first failure raises the critical alert (and CriticalStop, which
    unwinds the run before anything more is placed); once the run is stopping on an alert, a later
    write that fails is logged and skipped (None), so that the stop itself (outputs, status,
    closing the broker) completes. The file on disk then stays as it was: whole, at its last write."""
    path = Path(path)
    try:
        _fault(path)
        return write()
    except (OSError, sqlite3.DatabaseError) as exc:
        watch = _watched.get(_key(path.parent))
        if watch is None:
            raise
        _failed(watch, path, exc)
        return None


def _failed(watch: _Watch, path: Path, exc: BaseException) -> None:
    engine = watch.engine
    reason = "disk full" if is_disk_full(exc) else (exc.strerror if isinstance(exc, OSError) and exc.strerror
                                                     else str(exc))
    if engine.alert is not None:
        if path not in watch.skipped:
            watch.skipped.add(path)
            log.error("%s was not written (%s): the run is stopping on its alert", path, reason)
        return
    from .hookspecs import CriticalStop
    from .model import Alert

    folder = path.parent
    alert = Alert(
        f"cannot write the state file {path}: {reason}",
        f"Writing {path} failed ({type(exc).__name__}: {exc}). The run stopped there: nothing more "
        "was placed and the broker's orders were left in place. Every state file is written whole "
        "or not at all, so the state folder holds the last complete checkpoint.",
        (f"free space on the disk that holds {folder} (df -h {folder})" if reason == "disk full"
         else f"make {folder} writable again",
         "run the same command again: it resumes from the last checkpoint and rebuilds from the "
         "broker's orders"),
        source="host", time_ns=getattr(engine, "now_ns", 0))
    engine.raise_alert(alert, None)
    raise CriticalStop(alert) from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    state_write(path, lambda: _atomic_write_bytes(path, data))


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _replace(src: Path, dst: Path) -> None:
    # A seam of its own so a test can simulate a crash between the write and the rename.
    os.replace(src, dst)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode() + b"\n")


# ------------------------------------------------------------------------- damaged state files
BACKUP_HINT = ("it is only a backup: move it aside (mv {path} {path}.bad) and run again, or " + FRESH_RUN +
               "; the broker's orders are the truth, so the bot rebuilds from them (with the simulated "
               "venue, venue.sqlite is the paper account and is kept)")


def _damaged(path: Path, message: str, line: int | None = None, col: int | None = None) -> InputError:
    return InputError(message, path, line, col=col, hint=BACKUP_HINT.format(path=path))


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, None if absent. A corrupt file is bad input naming the file and fix."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _damaged(path, f"state file cannot be read: {_reason(exc)}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _damaged(path, f"state file is damaged: not text (byte 0x{raw[exc.start]:02x} at offset "
                             f"{exc.start} is not UTF-8)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _damaged(path, f"state file is not valid JSON ({exc.msg})", exc.lineno, exc.colno) from None


def drop_damaged_picture(path: Path) -> None:
    """``price_samples.npz`` is only the picture of the run so far (equity.png): one that cannot
    be read is moved aside with a warning, never a reason to stop. The fills and the P&L come from
    the venue and do not depend on it."""
    if not path.exists():
        return
    try:
        import numpy as np

        with np.load(path) as data:
            t, p = data["t"], data["p"]
            if t.shape != p.shape or t.ndim != 1:
                raise ValueError("times and prices differ in length")
            if "last" in data.files:
                data["last"]
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with a picture, it is only a picture
        aside = path.with_name(path.name + ".bad")
        try:
            os.replace(path, aside)
        except OSError:
            aside = None
            with contextlib.suppress(OSError):
                path.unlink()
        log.warning("%s is damaged (%s: %s) and was %s: equity.png will show only what this run sees; "
                    "fills.csv and the P&L are not affected", path, type(exc).__name__, exc,
                    f"moved to {aside}" if aside else "dropped")


class StateStore:
    """``bot_state.json``: one JSON object with a section per strategy id.

    Writes are coalesced: ``put`` marks a section dirty, ``flush`` writes the file once. The
    engine flushes after every event live, and at every venue checkpoint in a replay (where the
    simulated venue is the durable truth and an fsync per fill would dominate the run).
    """

    def __init__(self, path: Path):
        self.path = path
        self._data: dict[str, Any] | None = None
        self._dirty = False

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            loaded = read_json(self.path)
            self._data = self._checked(loaded) if loaded is not None else {}
        return self._data

    def _checked(self, data: Any) -> dict[str, Any]:
        """A backup this host wrote, or bad input saying what it is instead."""
        if not isinstance(data, dict):
            raise _damaged(self.path, f"state file is not a bothost backup: a JSON {type(data).__name__}, "
                                      "not an object")
        fmt = data.get("format", 1)
        if not isinstance(fmt, int) or isinstance(fmt, bool):
            raise _damaged(self.path, f"state file is damaged: its format is {fmt!r}, not a number")
        if fmt != STATE_FORMAT:
            raise InputError(
                f"state file is format {fmt}, written by {'a newer' if fmt > STATE_FORMAT else 'an older'} "
                f"bothost; this one reads format {STATE_FORMAT}", self.path,
                hint="run it with the bothost that wrote it, or " + FRESH_RUN
                     + "; the broker's orders are the truth, so the bot rebuilds from them")
        sections = data.get("strategies", {})
        if not isinstance(sections, dict):
            raise _damaged(self.path, "state file is not a bothost backup: `strategies` is not an object")
        for name, section in sections.items():
            if not isinstance(section, dict):
                raise _damaged(self.path, f"state file is damaged: the section {name!r} is not an object")
        return data

    def check(self, strategies: Iterable[tuple[str, str | None]]) -> None:
        """Before anything runs: the backup must be readable and be these strategies' (a
        strategy's section that names another symbol belongs to another config's run)."""
        sections = self._load().get("strategies", {})
        for sid, symbol in strategies:
            saved = sections.get(sid)
            theirs = saved.get("symbol") if isinstance(saved, dict) else None
            if isinstance(theirs, str) and symbol is not None and theirs != symbol:
                raise InputError(
                    f"state file belongs to another run: strategy {sid!r} traded {theirs} here, this config "
                    f"trades {symbol}", self.path,
                    hint=f"run the config that trades {theirs} with this folder, or " + FRESH_RUN
                         + f" of {symbol} (with the simulated venue, venue.sqlite next to it is the "
                           f"{theirs} paper account)")

    def get(self, section: str) -> dict[str, Any] | None:
        value = self._load().get("strategies", {}).get(section)
        return value() if callable(value) else value

    def put(self, section: str, value: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        """``value`` may be a callable: it is called only when the file is written."""
        self._load().setdefault("strategies", {})[section] = value
        self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            data = self._load()
            data["format"] = STATE_FORMAT
            sections = data.setdefault("strategies", {})
            for key, value in sections.items():
                if callable(value):
                    sections[key] = value()
            atomic_write_json(self.path, data)
            self._dirty = False
