"""The bot's files, read and never written: the state folder and the output folder.

Nothing here takes the state folder's lock or opens a file for writing. JSON files and
price_samples.npz are replaced atomically by the bot, so a read sees one version or the other.
SQLite files (venue.sqlite, executions.sqlite) are opened read-only: while the bot has them open
(a ``-wal`` file beside them) as an ordinary read-only reader; once it is gone, as immutable, so
that SQLite creates no ``-wal``/``-shm`` file of its own in the bot's folder.

A :class:`Reader` keeps what it read per file (by size and mtime) and reads again only what
changed; new executions of the simulated venue are read incrementally.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

#: The files whose change means new data, relative to the state folder ("out/" to the out folder).
STATE_FILES = ("status.json", "bot_state.json", "price_samples.npz", "venue.sqlite", "venue.sqlite-wal",
               "executions.sqlite", "executions.sqlite-wal")
OUT_FILES = ("fills.csv", "summary.json")
WORKING = ("pending_submit", "pre_submitted", "submitted", "pending_cancel", "inactive")


@dataclass
class Sources:
    """What the bot's files said at one moment (all optional: a run may not have written them yet)."""

    state_dir: Path | None
    out_dir: Path | None
    status: dict | None = None  # status.json
    status_mtime_ns: int = 0
    state: dict | None = None  # bot_state.json
    state_mtime_ns: int = 0
    summary_file: dict | None = None  # out/summary.json
    samples_t: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # ns
    samples_p: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # cents
    samples_last: tuple[int, int] | None = None  # (ns, cents): the newest tick the run saw
    #: executions, oldest first: n, time_ns, side, quantity, price, commission, order_id, ref, level
    fills: list[dict] = field(default_factory=list)
    fills_source: str | None = None
    venue_meta: dict[str, str] = field(default_factory=dict)
    venue_orders: list[dict] = field(default_factory=list)  # the simulated venue's working orders
    problems: list[str] = field(default_factory=list)  # files that could not be read this time
    #: whether the process named in the state folder's ``.lock`` (the last run's pid) is alive;
    #: None when that cannot be told. The file is only read: its lock is never taken.
    run_alive: bool | None = None


def signature(state_dir: Path | None, out_dir: Path | None) -> tuple:
    """(size, mtime) of every file the page is made of: a change in any means new data."""
    paths = [state_dir / n for n in STATE_FILES] if state_dir is not None else []
    paths += [out_dir / n for n in OUT_FILES] if out_dir is not None else []
    sig = []
    for path in paths:
        try:
            st = os.stat(path)
            sig.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            sig.append(None)
    return tuple(sig)


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection that leaves the bot's folder as it found it (see the module doc)."""
    live = os.path.exists(str(path) + "-wal")
    mode = "mode=ro" if live else "immutable=1"
    return sqlite3.connect(f"file:{quote(str(path.resolve()))}?{mode}", uri=True, timeout=0.5,
                           check_same_thread=False)


def lock_holder_alive(state_dir: Path) -> bool | None:
    """Is the last run's process (the pid in ``.lock``) still there? Reads the file, no flock."""
    try:
        with open(state_dir / ".lock", "rb") as fh:
            pid = int(fh.read(32).decode("ascii", "replace").strip() or "0")
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process of that pid: alive, if not ours to signal
    except OSError:
        return None
    return True


def parse_iso_ns(text: str) -> int:
    """fills.csv's time (ISO 8601 with offset, microseconds at most) as ns since the epoch."""
    stamp = datetime.fromisoformat(text)
    seconds = int(stamp.timestamp())
    return seconds * 1_000_000_000 + stamp.microsecond * 1000


class Reader:
    """Reads a state folder and an out folder; call :meth:`read` for a fresh :class:`Sources`."""

    def __init__(self, state_dir: Path | None, out_dir: Path | None):
        self.state_dir = state_dir
        self.out_dir = out_dir
        self._json: dict[Path, tuple[tuple, Any]] = {}
        self._samples: tuple[tuple, tuple] | None = None
        self._venue_key: tuple | None = None  # (inode) of the venue file whose executions are cached
        self._venue_fills: list[dict] = []
        self._journal: tuple[tuple, list[dict]] | None = None
        self._csv: tuple[tuple, list[dict]] | None = None

    # -------------------------------------------------------------- plain files
    @staticmethod
    def _key(path: Path) -> tuple | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _read_json(self, path: Path, problems: list[str]) -> Any:
        key = self._key(path)
        if key is None:
            self._json.pop(path, None)
            return None
        hit = self._json.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        try:
            value = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name}: {exc}")
            return hit[1] if hit is not None else None  # the last good version
        self._json[path] = (key, value)
        return value

    def _read_samples(self, path: Path, problems: list[str]):
        empty = (np.empty(0, np.int64), np.empty(0, np.int64), None)
        key = self._key(path)
        if key is None:
            return empty
        if self._samples is not None and self._samples[0] == key:
            return self._samples[1]
        try:
            with np.load(path, allow_pickle=False) as data:
                t, p = np.asarray(data["t"], np.int64), np.asarray(data["p"], np.int64)
                last = data["last"] if "last" in data.files else np.empty(0, np.int64)
        except FileNotFoundError:
            return empty
        except (OSError, KeyError, ValueError) as exc:
            problems.append(f"{path.name}: {exc}")
            return self._samples[1] if self._samples is not None else empty
        value = (t, p, (int(last[0]), int(last[1])) if len(last) == 2 else None)
        self._samples = (key, value)
        return value

    # -------------------------------------------------------------- executions
    def _read_venue(self, path: Path, src: Sources) -> bool:
        """The simulated venue: executions (new ones only), its meta and working orders."""
        key = self._key(path)
        if key is None:
            return False
        if self._venue_key != key[0]:
            self._venue_key, self._venue_fills = key[0], []
        try:
            db = open_readonly(path)
        except sqlite3.Error as exc:
            src.problems.append(f"{path.name}: {exc}")
            return bool(self._venue_fills)
        try:
            have = self._venue_fills[-1]["n"] if self._venue_fills else 0
            count = db.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
            if count < len(self._venue_fills):  # not the same account any more: read it all again
                self._venue_fills, have = [], 0
            rows = db.execute("SELECT n, exec_id, order_id, time_ns, side, quantity, price, commission, ref "
                              "FROM executions WHERE n > ? ORDER BY n", (have,)).fetchall()
            self._venue_fills.extend(_fill(n, oid, t, side, qty, price, fee, ref, exec_id)
                                     for n, exec_id, oid, t, side, qty, price, fee, ref in rows)
            src.venue_meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            marks = ",".join("?" * len(WORKING))
            src.venue_orders = [
                {"order_id": str(i), "side": side, "quantity": q, "filled": f, "limit_cents": lim,
                 "order_type": ot, "aux_cents": aux, "ref": ref, "placed_ns": placed, "status": st}
                for i, side, q, f, lim, ot, aux, ref, placed, st in db.execute(
                    "SELECT id, side, quantity, filled, limit_cents, order_type, aux_cents, ref, placed_ns, status "
                    f"FROM orders WHERE status IN ({marks}) ORDER BY id", WORKING)]
        except (sqlite3.Error, ValueError) as exc:  # being written just now, or not a venue: next time
            src.problems.append(f"{path.name}: {exc}")
        finally:
            db.close()
        src.fills, src.fills_source = list(self._venue_fills), "venue.sqlite"
        return True

    def _read_journal(self, path: Path, src: Sources) -> bool:
        """A live run's executions.sqlite (ordered by time: a reconstruct may add older ones)."""
        key = (self._key(path), self._key(Path(str(path) + "-wal")))
        if key[0] is None:
            return False
        if self._journal is None or self._journal[0] != key:
            try:
                db = open_readonly(path)
                try:
                    rows = db.execute("SELECT n, exec_id, order_id, time_ns, side, quantity, price, commission, ref "
                                      "FROM executions ORDER BY time_ns, n").fetchall()
                finally:
                    db.close()
            except (sqlite3.Error, ValueError) as exc:
                src.problems.append(f"{path.name}: {exc}")
                if self._journal is None:
                    return False
            else:
                fills = [_fill(i, oid, t, side, qty, price, fee if fee is not None else "0", ref, exec_id)
                         for i, (_n, exec_id, oid, t, side, qty, price, fee, ref) in enumerate(rows, 1)]
                self._journal = (key, fills)
        src.fills, src.fills_source = list(self._journal[1]), "executions.sqlite"
        return True

    def _read_fills_csv(self, path: Path, src: Sources) -> bool:
        key = self._key(path)
        if key is None:
            return False
        if self._csv is None or self._csv[0] != key:
            try:
                with open(path, newline="") as fh:
                    rows = []
                    for i, row in enumerate(csv.DictReader(fh), 1):
                        level = row.get("level") or ""
                        rows.append({"n": i, "time_ns": parse_iso_ns(row["time"]), "time": row["time"],
                                     "side": row["side"], "quantity": int(row["quantity"]), "price": row["price"],
                                     "commission": row["commission"], "order_id": row["order_id"],
                                     "ref": row.get("order_ref", ""), "level": int(level) if level else None})
            except (OSError, KeyError, ValueError) as exc:
                src.problems.append(f"{path.name}: {exc}")
                if self._csv is None:
                    return False
            else:
                self._csv = (key, rows)
        src.fills, src.fills_source = list(self._csv[1]), "fills.csv"
        return True

    # -------------------------------------------------------------- all of it
    def read(self) -> Sources:
        src = Sources(self.state_dir, self.out_dir)
        sd, od = self.state_dir, self.out_dir
        if sd is not None:
            src.status = self._read_json(sd / "status.json", src.problems)
            src.status_mtime_ns = _mtime(sd / "status.json")
            src.state = self._read_json(sd / "bot_state.json", src.problems)
            src.state_mtime_ns = _mtime(sd / "bot_state.json")
            src.samples_t, src.samples_p, src.samples_last = self._read_samples(sd / "price_samples.npz", src.problems)
            src.run_alive = lock_holder_alive(sd)
        if od is not None:
            src.summary_file = self._read_json(od / "summary.json", src.problems)
        found = sd is not None and (self._read_venue(sd / "venue.sqlite", src)
                                    or self._read_journal(sd / "executions.sqlite", src))
        if not found and od is not None:
            self._read_fills_csv(od / "fills.csv", src)
        return src


def _fill(n, order_id, time_ns, side, quantity, price, commission, ref, exec_id=None) -> dict:
    return {"n": int(n), "time_ns": int(time_ns), "side": str(side).upper(), "quantity": int(quantity),
            "price": str(price), "commission": str(commission), "order_id": str(order_id), "ref": ref or "",
            "exec_id": exec_id}


def read_sources(state_dir: Path | None, out_dir: Path | None) -> Sources:
    return Reader(state_dir, out_dir).read()
