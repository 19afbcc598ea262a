"""The plugin manager: every plugin, built-in or third-party, comes from the ``bothost`` group."""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass

import pluggy

from . import hookspecs
from .registry import PluginError, Registry

ENTRY_POINT_GROUP = "bothost"


@dataclass(frozen=True)
class LoadedPlugin:
    name: str
    package: str
    version: str
    module: object


def _entry_points() -> list[md.EntryPoint]:
    return sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def make_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("bothost")
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(pm: pluggy.PluginManager | None = None) -> tuple[pluggy.PluginManager, Registry, list[LoadedPlugin]]:
    """Import every entry point of the ``bothost`` group and let each register its kinds.

    A plugin that fails to import, or that registers a name twice, raises :class:`PluginError`
    naming its package: a broken third-party package must not look like a bothost bug.
    """
    pm = pm or make_manager()
    registry = Registry()
    loaded: list[LoadedPlugin] = []
    for ep in _entry_points():
        package = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        try:
            module = ep.load()
        except Exception as exc:  # any import-time failure of someone else's code
            raise PluginError(
                f"plugin {ep.name!r} from package {package!r} failed to import ({ep.value}): "
                f"{type(exc).__name__}: {exc}. Fix or uninstall that package."
            ) from exc
        if pm.is_registered(module):
            continue
        try:
            pm.register(module, name=f"{ENTRY_POINT_GROUP}:{ep.name}")
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"plugin {ep.name!r} from package {package!r} is invalid: {exc}") from exc
        registry.current_package = (package, version)
        try:
            # Called module by module (not as one broadcast) so each entry is stamped with the
            # package that registered it.
            impls = [i for i in pm.hook.bothost_register.get_hookimpls() if i.plugin is module]
            for impl in impls:
                impl.function(registry=registry)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {ep.name!r} from package {package!r} failed in bothost_register: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        loaded.append(LoadedPlugin(ep.name, package, version, module))
    registry.current_package = ("?", "?")
    return pm, registry, loaded
