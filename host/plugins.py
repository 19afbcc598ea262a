"""The plugin manager: every plugin, built-in or third-party, comes from the ``bothost`` group."""

from __future__ import annotations

import difflib
import importlib.metadata as md
import inspect
import logging
from dataclasses import dataclass, field

import pluggy

from . import hookspecs
from .registry import PluginError, Registry

ENTRY_POINT_GROUP = "bothost"

log = logging.getLogger("bothost.plugins")

#: Every hook name a plugin may implement (the ``@hookspec`` functions of ``hookspecs``).
HOOK_NAMES = frozenset(name for name, obj in vars(hookspecs).items()
                       if callable(obj) and hasattr(obj, "bothost_spec"))


@dataclass(frozen=True)
class LoadedPlugin:
    """One entry point of the ``bothost`` group, imported and registered."""

    name: str  # the entry point's name
    package: str  # the distribution that published it
    version: str  # that distribution's version
    module: object
    #: the ``BOTHOST_API`` the module declares, None when it declares none
    api_version: int | None = None
    #: the hooks it implements: module-level functions and methods of the classes it defines
    hooks: tuple[str, ...] = field(default=())

    @property
    def module_name(self) -> str:
        """The plugin module's import name (``my_package.plugin``)."""
        return str(getattr(self.module, "__name__", "?"))


def _entry_points() -> list[md.EntryPoint]:
    return sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def make_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("bothost")
    pm.add_hookspecs(hookspecs)
    return pm


def declared_api_version(module: object, plugin: str, package: str) -> int | None:
    """The module's ``BOTHOST_API``; PluginError when it names a version this host does not speak."""
    declared = getattr(module, hookspecs.API_VERSION_ATTRIBUTE, None)
    if declared is None:
        return None
    if type(declared) is not int or declared != hookspecs.API_VERSION:
        raise PluginError(
            f"plugin {plugin!r} from package {package!r} was written for bothost plugin API "
            f"{declared!r}, but this bothost speaks API {hookspecs.API_VERSION}. Install a version of "
            f"{package!r} made for API {hookspecs.API_VERSION}, or a bothost that speaks API {declared!r}.")
    return declared


def implemented_hooks(module: object) -> dict[str, str]:
    """Every ``@hookimpl`` of a plugin module, ``{where: hook name}``: its module-level functions
    and the methods of the classes it defines (the instances its factories build, whose hooks
    pluggy sees only when a run registers them)."""
    found: dict[str, str] = {}
    marker = "bothost_impl"
    own = getattr(module, "__name__", None)
    for name, obj in sorted(vars(module).items()):
        if inspect.isfunction(obj) and hasattr(obj, marker):
            found[name] = _hook_name(obj, name)
        elif inspect.isclass(obj) and getattr(obj, "__module__", None) == own:
            for attr, member in sorted(vars(obj).items()):
                function = getattr(member, "__func__", member)
                if callable(function) and hasattr(function, marker):
                    found[f"{name}.{attr}"] = _hook_name(function, attr)
    return found


def _hook_name(function: object, default: str) -> str:
    opts = getattr(function, "bothost_impl", None) or {}
    return opts.get("specname") or default


def check_hook_names(module: object, plugin: str, package: str) -> tuple[str, ...]:
    """The hooks the module implements, sorted; PluginError naming the nearest hook for a
    misspelt one (pluggy would silently never call it)."""
    hooks = implemented_hooks(module)
    for where, hook in hooks.items():
        if hook not in HOOK_NAMES:
            near = difflib.get_close_matches(hook, sorted(HOOK_NAMES), n=1, cutoff=0.6)
            fix = f"did you mean {near[0]!r}?" if near else f"the hooks are: {', '.join(sorted(HOOK_NAMES))}"
            raise PluginError(
                f"plugin {plugin!r} from package {package!r}: {where} is marked @hookimpl but bothost has "
                f"no hook {hook!r} ({fix}). Rename it (see bothost.hookspecs).")
    return tuple(sorted(set(hooks.values())))


def load_plugins(pm: pluggy.PluginManager | None = None) -> tuple[pluggy.PluginManager, Registry, list[LoadedPlugin]]:
    """Import every entry point of the ``bothost`` group and let each register its kinds.

    A plugin that fails to import, declares another API version (``BOTHOST_API``), marks a
    function with a hook name bothost does not have, or registers a name twice raises
    :class:`PluginError` naming its package: a broken third-party package must not look like a
    bothost bug. A module that declares no API version loads with a warning.
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
        api_version = declared_api_version(module, ep.name, package)
        if api_version is None:
            log.warning("plugin %r from package %r does not say which bothost plugin API it was written for; "
                        "add `%s = %d` to %s", ep.name, package, hookspecs.API_VERSION_ATTRIBUTE,
                        hookspecs.API_VERSION, ep.value)
        hooks = check_hook_names(module, ep.name, package)
        try:
            pm.register(module, name=f"{ENTRY_POINT_GROUP}:{ep.name}")
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"plugin {ep.name!r} from package {package!r} is invalid: {exc}") from exc
        registry.current_package = (package, version)
        registry.current_module = str(getattr(module, "__name__", ep.value))
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
        loaded.append(LoadedPlugin(ep.name, package, version, module, api_version, hooks))
    registry.current_package = ("?", "?")
    registry.current_module = ""
    return pm, registry, loaded
