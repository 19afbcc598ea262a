"""The source map: for every key path of the merged config, where it was written.

A key path is a tuple of mapping keys (str) and list indexes (int), e.g.
``("strategies", 0, "profit_target")``. The map survives ``extends:`` merges and ``--set``
overrides, so an error found late (by pydantic, by ``${VAR}`` substitution) still points at
the file and line the user has to edit, even when that is a base file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from .errors import Pos

KeyPath = tuple[Any, ...]


@dataclass(frozen=True)
class Entry:
    pos: Pos  # the key of a mapping entry, or the start of a list item
    value: Pos  # the value itself (differs from `pos` for `key: value` on one line)
    quoted: bool = False  # written as a quoted or block string: never re-typed after ${VAR}
    env: tuple[str, ...] = ()  # variables substituted into this value (for hints)


def _under(path: KeyPath, prefix: KeyPath) -> bool:
    return path[: len(prefix)] == prefix


class SourceMap:
    def __init__(self, entries: dict[KeyPath, Entry] | None = None):
        self._entries: dict[KeyPath, Entry] = dict(entries or {})

    def copy(self) -> SourceMap:
        return SourceMap(self._entries)

    def __contains__(self, path: KeyPath) -> bool:
        return tuple(path) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: KeyPath) -> Entry | None:
        return self._entries.get(tuple(path))

    def set(self, path: KeyPath, entry: Entry) -> None:
        self._entries[tuple(path)] = entry

    def update(self, path: KeyPath, **changes: Any) -> None:
        path = tuple(path)
        if path in self._entries:
            self._entries[path] = replace(self._entries[path], **changes)

    def drop(self, prefix: KeyPath) -> None:
        """Forget ``prefix`` and everything under it (the value there was replaced)."""
        prefix = tuple(prefix)
        for path in [p for p in self._entries if _under(p, prefix)]:
            del self._entries[path]

    def graft(self, other: SourceMap, prefix: KeyPath) -> None:
        """Take ``other``'s entries for ``prefix`` and everything under it."""
        prefix = tuple(prefix)
        for path, entry in other._entries.items():
            if _under(path, prefix):
                self._entries[path] = entry

    def mark(self, prefix: KeyPath, value: Any, pos: Pos) -> None:
        """Record ``value`` (and all of its children) as written at ``pos``."""
        for path in _paths(tuple(prefix), value):
            self._entries[path] = Entry(pos, pos)

    def _nearest(self, path: KeyPath) -> Entry | None:
        # A path that was never written (a default, a pydantic union tag) is reported at the
        # closest enclosing thing that was.
        path = tuple(path)
        while path not in self._entries and path:
            path = path[:-1]
        return self._entries.get(path)

    def where(self, path: KeyPath) -> Pos | None:
        entry = self._nearest(path)
        return entry.pos if entry else None

    def where_value(self, path: KeyPath) -> Pos | None:
        entry = self._nearest(path)
        return entry.value if entry else None

    def files(self) -> list[str]:
        """The files that contributed, in the order their entries were recorded."""
        return list(dict.fromkeys(e.pos.file for e in self._entries.values()))

    def items(self) -> Iterable[tuple[KeyPath, Entry]]:
        return self._entries.items()


def _paths(prefix: KeyPath, value: Any):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(prefix + (key,), child)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(prefix + (index,), child)
