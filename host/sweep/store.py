"""Each finished cell's figures, kept as it arrives: ``OUT/cells/<key>.json``.

Written atomically (temp file, fsync, rename), so a sweep killed at any moment leaves whole
files only; a file that cannot be read or names another key counts as not finished. A rerun
of the sweep runs only the cells without a file; cells of another sweep in the same folder (a
range since extended, say) are reused where their keys match.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

#: The statuses worth keeping: the run finished (a critical alert stop is the run's own outcome).
KEPT = ("done", "critical")


class CellStore:
    def __init__(self, out_dir: Path):
        self.dir = out_dir / "cells"

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            record = json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("key") != key or record.get("status") not in KEPT:
            return None
        return record

    def put(self, record: dict, about: dict | None = None) -> None:
        """Keep a finished cell (``about``: its parameters and data file, for a person reading it)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.path(record["key"])
        tmp = final.with_suffix(f".tmp-{os.getpid()}")
        with open(tmp, "w") as fh:
            json.dump({**record, **(about or {})}, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
