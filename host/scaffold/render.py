"""The files of a new plugin package, filled from the templates (pure: names in, texts out).

Templates are package data under ``templates/``: ``common/`` for every kind, ``<kind>/`` for one
kind's plugin module, tests, config and the "make it yours" paragraph of its README. A template
says ``{{key}}`` where a value goes; a key the renderer does not know is a bug in the template,
caught here rather than shipped to an author.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from .names import PluginNames

_TOKEN = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")

#: One line of what each kind is (the package's description and README).
SUMMARIES = {
    "strategy": "buys a dip below the recent high and sells each lot at a target above its purchase",
    "broker": "an in-memory paper broker, the skeleton of an adapter for a broker's API",
    "feed": "market data from a CSV file of ticks, or a seeded random walk",
    "notifier": "appends every alert to a JSON-lines file",
}

#: Where each template goes in the package (``{name}``: the plugin's name), per kind.
_COMMON = {
    "pyproject.toml": "pyproject.toml",
    "README.md": "README.md",
    "__init__.py": "{name}/__init__.py",
}
_OWN = {
    "plugin.py": "{name}/plugin.py",
    "test_plugin.py": "tests/test_{name}.py",
    "config.yaml": "config.yaml",
}
#: A kind's own modules beside plugin.py.
_EXTRA = {"broker": {"paper.py": "{name}/paper.py"}}
#: Kinds whose demo config runs the TQQQ grid, which needs a lot map beside the config.
_NEEDS_LOTS = {"broker", "feed", "notifier"}


@dataclass(frozen=True)
class PackageFile:
    path: str  # relative to the package folder, with "/" separators
    text: str


def fill(template: str, values: dict[str, str], where: str = "template") -> str:
    """``template`` with every ``{{key}}`` replaced by ``values[key]``; KeyError for an unknown key."""

    def value(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"{where}: no value for {{{{{key}}}}}")
        return values[key]

    return _TOKEN.sub(value, template)


def _template(kind_folder: str, name: str) -> str:
    return (resources.files(__package__) / "templates" / kind_folder / f"{name}.tmpl").read_text(encoding="utf-8")


def package_files(names: PluginNames, api_version: int, bothost_version: str) -> list[PackageFile]:
    """Every file of the package for ``names`` (a plugin of ``names.kind``), in writing order."""
    values = {
        "name": names.name,
        "class_name": names.class_name,
        "kind": names.kind,
        "summary": SUMMARIES[names.kind],
        "api_version": str(api_version),
        "bothost_version": bothost_version,
    }
    values["adapt"] = fill(_template(names.kind, "adapt.md"), values, f"{names.kind}/adapt.md").strip()
    own = {**_OWN, **_EXTRA.get(names.kind, {})}
    plan = [("common", t, p) for t, p in _COMMON.items()] + [(names.kind, t, p) for t, p in own.items()]
    if names.kind in _NEEDS_LOTS:
        plan.append(("common", "lots.csv", "lots.csv"))
    files = []
    for folder, template, path in plan:
        text = fill(_template(folder, template), values, f"{folder}/{template}")
        files.append(PackageFile(path.format(name=names.name), text))
    return files
