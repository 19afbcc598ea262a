"""The registry of kinds: what each ``use:`` name in a config means.

Plugins fill it from their ``bothost_register`` hook; the config validator and the run look
names up in it. It records which package registered each name so that errors can say so.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

KINDS = ("broker", "feed", "strategy", "notifier")


class PluginError(Exception):
    """A plugin could not be loaded or registered something wrong. Names the package."""


@dataclass(frozen=True)
class Kind:
    kind: str  # broker | feed | strategy | notifier
    name: str  # what `use:` says
    model: type[BaseModel]
    factory: Callable[..., Any]
    package: str
    version: str
    summary: str = ""


class Registry:
    def __init__(self) -> None:
        self._kinds: dict[tuple[str, str], Kind] = {}
        # Set by the plugin manager while one plugin registers, so entries carry their package.
        self.current_package = ("?", "?")

    def _add(self, kind: str, name: str, model: type[BaseModel], factory, summary: str) -> None:
        package, version = self.current_package
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise PluginError(f"plugin package {package!r}: the model of {kind} {name!r} must be a pydantic BaseModel")
        key = (kind, name)
        if key in self._kinds:
            first = self._kinds[key]
            raise PluginError(
                f"{kind} name {name!r} is registered twice: by package {first.package!r} and by "
                f"package {package!r}. Uninstall one of them (pip uninstall ...)."
            )
        self._kinds[key] = Kind(kind, name, model, factory, package, version, summary)

    def add_broker(self, name: str, model: type[BaseModel], factory, summary: str = "") -> None:
        self._add("broker", name, model, factory, summary)

    def add_feed(self, name: str, model: type[BaseModel], factory, summary: str = "") -> None:
        self._add("feed", name, model, factory, summary)

    def add_strategy(self, name: str, model: type[BaseModel], factory, summary: str = "") -> None:
        self._add("strategy", name, model, factory, summary)

    def add_notifier(self, name: str, model: type[BaseModel], factory, summary: str = "") -> None:
        self._add("notifier", name, model, factory, summary)

    def get(self, kind: str, name: str) -> Kind | None:
        return self._kinds.get((kind, name))

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self._kinds if k == kind)

    def nearest(self, kind: str, name: str) -> str | None:
        # A high bar: suggesting the paper venue for a misspelt live broker would be worse than nothing.
        match = difflib.get_close_matches(name, self.names(kind), n=1, cutoff=0.75)
        return match[0] if match else None

    def all(self) -> list[Kind]:
        return sorted(self._kinds.values(), key=lambda k: (KINDS.index(k.kind), k.name))
