"""``bothost new-plugin strategy|broker|feed|notifier NAME [--dir DIR]``"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..cli import _console, guarded
from ..errors import InputError
from .names import KINDS, NameRefused, check_name
from .render import package_files
from .write import TargetRefused, write_package


def _already_registered(kind: str, name: str) -> str | None:
    """The package that already registers ``kind`` ``name`` (a clash at the next start), if any."""
    from ..plugins import load_plugins
    from ..registry import PluginError

    try:
        _, registry, _ = load_plugins()
    except PluginError:
        return None  # a broken plugin elsewhere is not this command's business; bothost plugins says
    found = registry.get(kind, name)
    return found.package if found is not None else None


@click.command("new-plugin")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("name")
@click.option("--dir", "folder", type=click.Path(path_type=Path), metavar="DIR",
              help="the package's folder (default ./NAME); it must not exist yet or be empty")
@guarded
def new_plugin_command(kind: str, name: str, folder: Path | None) -> None:
    """Write a plugin package named NAME, of a kind: strategy, broker, feed or notifier.

    NAME (lowercase letters, digits, underscores) is the package's pip name, its import name and
    the `use:` name in a config. The package holds a small working plugin, its config model and
    registration, tests on bothost.testing that pass as written, and a config that runs it offline.
    """
    from .. import __version__
    from ..hookspecs import API_VERSION

    try:
        names = check_name(kind, name)
    except NameRefused as exc:
        raise InputError(f"NAME: {exc}") from None
    owner = _already_registered(kind, name)
    if owner is not None:
        raise InputError(f"NAME: a {kind} named {name!r} is already registered by package {owner!r}; "
                         "two plugins cannot register one name", hint="choose another NAME")
    target = folder if folder is not None else Path(name)
    try:
        written = write_package(target, package_files(names, API_VERSION, _lower_bound(__version__)))
    except TargetRefused as exc:
        raise InputError(f"--dir: {exc}") from None
    shown = os.path.relpath(target) if not target.is_absolute() else str(target)
    console = _console()
    console.print(f"wrote the {kind} plugin {name!r} in {shown}/ ({len(written)} files)", markup=False)
    console.print(f"next:\n  cd {shown}\n  pip install -e '.[test]'\n  pytest\n  bothost run config.yaml",
                  markup=False)


def _lower_bound(version: str) -> str:
    """``0.1.0`` -> ``0.1``: the generated package needs this bothost's API, not this exact build."""
    parts = version.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 and all(p.isdigit() for p in parts[:2]) else version
