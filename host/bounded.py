"""A dict of the most recent entries: what the engine and a strategy's book remember about ended
orders and booked executions, bounded so that a long run does not grow without end."""

from __future__ import annotations

import itertools
from typing import Any


class Recent(dict):
    """Keeps at least the newest ``keep`` entries (by when they were remembered); at twice that
    the older half is dropped at once: one plain insert per event, not an ordered dict's
    bookkeeping on every one."""

    def __init__(self, keep: int):
        super().__init__()
        self.keep = keep

    def remember(self, key: Any, value: Any = None) -> None:
        self.pop(key, None)  # remembered again: it is the newest now
        self[key] = value
        if len(self) >= 2 * self.keep:
            for old in list(itertools.islice(self, len(self) - self.keep)):
                del self[old]
