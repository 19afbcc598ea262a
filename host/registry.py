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

#: A kind's factory: ``factory(settings, env) -> instance``, where ``settings`` is the validated
#: config section (an instance of the kind's model) and ``env`` a ``hookspecs.BuildEnv``.
Factory = Callable[[Any, Any], Any]


class PluginError(Exception):
    """A plugin could not be loaded or registered something wrong. Names the package."""


@dataclass(frozen=True)
class Kind:
    """One name a config's ``use:`` can say, and what builds it."""

    kind: str  # broker | feed | strategy | notifier
    name: str  # what `use:` says
    model: type[BaseModel]  # the config section's pydantic model
    factory: Factory
    package: str  # the distribution that registered it
    version: str  # that distribution's version
    summary: str = ""  # one line for `bothost plugins`
    module: str = ""  # the plugin module that registered it


class Registry:
    """The kinds every plugin registered, by (kind, name). Given to ``bothost_register``."""

    def __init__(self) -> None:
        self._kinds: dict[tuple[str, str], Kind] = {}
        # Set by the plugin manager while one plugin registers, so entries carry their package.
        self.current_package = ("?", "?")
        self.current_module = ""

    def _add(self, kind: str, name: str, model: type[BaseModel], factory: Factory, summary: str) -> None:
        package, version = self.current_package
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise PluginError(f"plugin package {package!r}: the model of {kind} {name!r} must be a pydantic BaseModel")
        if not callable(factory):
            raise PluginError(f"plugin package {package!r}: the factory of {kind} {name!r} must be callable "
                              "(factory(settings, env) -> instance)")
        key = (kind, name)
        if key in self._kinds:
            first = self._kinds[key]
            raise PluginError(
                f"{kind} name {name!r} is registered twice: by package {first.package!r} and by "
                f"package {package!r}. Uninstall one of them (pip uninstall ...)."
            )
        self._kinds[key] = Kind(kind, name, model, factory, package, version, summary, self.current_module)

    def add_broker(self, name: str, model: type[BaseModel], factory: Factory, summary: str = "") -> None:
        """Register a broker kind: ``broker: {use: name, ...}``; the factory returns a ``hookspecs.Broker``."""
        self._add("broker", name, model, factory, summary)

    def add_feed(self, name: str, model: type[BaseModel], factory: Factory, summary: str = "") -> None:
        """Register a feed kind: ``feed: {use: name, ...}``; the factory returns a ``hookspecs.Feed``
        or a ``hookspecs.ReplayFeed``."""
        self._add("feed", name, model, factory, summary)

    def add_strategy(self, name: str, model: type[BaseModel], factory: Factory, summary: str = "") -> None:
        """Register a strategy kind: an entry of ``strategies:``; the factory returns an object with
        ``@hookimpl`` event hooks (see the module docstring of ``hookspecs``)."""
        self._add("strategy", name, model, factory, summary)

    def add_notifier(self, name: str, model: type[BaseModel], factory: Factory, summary: str = "") -> None:
        """Register a notifier kind: an entry of ``notify:``; the factory returns an object with an
        ``on_alert`` hook (and any other event hook it wants to observe)."""
        self._add("notifier", name, model, factory, summary)

    def get(self, kind: str, name: str) -> Kind | None:
        """The kind a ``use:`` name means, or None."""
        return self._kinds.get((kind, name))

    def names(self, kind: str) -> list[str]:
        """Every name registered for ``kind``, sorted."""
        return sorted(n for k, n in self._kinds if k == kind)

    def nearest(self, kind: str, name: str) -> str | None:
        """The registered name a misspelt one most likely meant, or None."""
        # A high bar: suggesting the paper venue for a misspelt live broker would be worse than nothing.
        match = difflib.get_close_matches(name, self.names(kind), n=1, cutoff=0.75)
        return match[0] if match else None

    def all(self) -> list[Kind]:
        """Every kind, by kind (broker, feed, strategy, notifier) and name."""
        return sorted(self._kinds.values(), key=lambda k: (KINDS.index(k.kind), k.name))
