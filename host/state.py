"""Files a run keeps in its state folder: atomic JSON, private modes.

The JSON backup (``bot_state.json``) is only a fallback: reconstruct trusts the broker. It is
still written so that it is never half-written: temp file in the same folder, fsync, rename,
fsync of the folder. A crash at any point leaves either the old file or the new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from collections.abc import Callable
from typing import Any

from .errors import InputError

FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_state_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    return path


class StateLock:
    """An exclusive lock on a state folder for the life of a run (released when closed or when
    the process dies, however)."""

    def __init__(self, fd: int):
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def lock_state_dir(path: Path) -> StateLock:
    """Take the state folder for this run, or refuse (bad input: exit 2) naming the run using it."""
    import fcntl

    lock_path = path / ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
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
    return StateLock(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
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


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, None if absent. A corrupt file is bad input naming the file and fix."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"state file is not valid JSON ({exc.msg})", path, exc.lineno, col=exc.colno,
            hint=f"it is only a backup: move it aside (mv {path} {path}.bad) and start again; "
                 "the bot rebuilds its state from the broker",
        ) from exc


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
            self._data = loaded if isinstance(loaded, dict) else {}
        return self._data

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
            sections = data.setdefault("strategies", {})
            for key, value in sections.items():
                if callable(value):
                    sections[key] = value()
            atomic_write_json(self.path, data)
            self._dirty = False
