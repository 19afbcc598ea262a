"""``validate()``: check a loaded config against the host model and each plugin's model.

All problems are collected first and the one written first is reported (the file the user
named before its bases, then by line), so fixing errors top to bottom works as expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..registry import Kind, Registry
from .explain import Problem, explain
from .loader import RawConfig
from .models import SECTION_KINDS, EngineSettings, HostConfig
from .errors import SET_FILE
from .positions import KeyPath
from .units import FileNameMarker

#: Strategy ids become file and folder names (state, logs), so they are kept plain.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Section:
    """One plugin section: ``use:`` resolved to a registered kind, settings validated."""

    kind: str  # broker | feed | strategy | notifier
    use: str
    id: str  # a strategy's `id:` (default: its `use:` name); the `use:` name for other kinds
    plugin: Kind
    settings: BaseModel
    path: tuple  # key path in the config, e.g. ("strategies", 0)


@dataclass(frozen=True)
class RunConfig:
    path: Path
    mode: str
    state_dir: Path | None
    broker: Section
    feed: Section
    strategies: list[Section]
    notify: list[Section]
    engine: EngineSettings
    data: dict[str, Any] = field(repr=False)
    sources: Any = field(default=None, repr=False, compare=False)

    def where(self, keypath: tuple) -> Any:
        """Where a key was written (a ``Pos``), for errors found after validation."""
        return self.sources.where(tuple(keypath)) if self.sources is not None else None


def validate(raw: RawConfig, registry: Registry) -> RunConfig:
    """Return the checked :class:`RunConfig`, or raise the first ``ConfigError``."""
    problems: list[Problem] = []
    data = raw.data
    fallback = raw.where(())

    host: HostConfig | None = None
    try:
        host = HostConfig.model_validate(data)
    except ValidationError as exc:
        problems += explain(exc, model=HostConfig, data=data, base=(), sources=raw.sources, fallback=fallback)

    sections: dict[KeyPath, Section] = {}
    for key, kind in SECTION_KINDS.items():
        value = data.get(key)
        if key in ("strategies", "notify"):
            items = [((key, i), v) for i, v in enumerate(value)] if isinstance(value, list) else []
        else:
            items = [((key,), value)] if key in data else []
        for path, section in items:
            if isinstance(section, dict):  # other shapes were reported by the host model
                built = _section(kind, path, section, raw, registry, problems)
                if built is not None:
                    sections[path] = built

    strategies = [s for p, s in sections.items() if p[0] == "strategies"]
    _check_unique_ids(strategies, raw, problems)

    if problems:
        first = min(problems, key=lambda p: (raw.file_rank(p.pos.file), p.pos.line, p.pos.col))
        raise first.error()
    assert host is not None  # no problems means the host model validated

    state_dir = None
    if host.state_dir:
        state_dir = Path(host.state_dir).expanduser()
        if not state_dir.is_absolute():
            state_dir = raw.path.parent / state_dir
    return RunConfig(
        path=raw.path,
        mode=host.mode,
        state_dir=state_dir,
        broker=sections[("broker",)],
        feed=sections[("feed",)],
        strategies=strategies,
        notify=[s for p, s in sections.items() if p[0] == "notify"],
        engine=host.engine,
        data=data,
        sources=raw.sources,
    )


def _section(kind: str, path: KeyPath, section: dict[str, Any], raw: RawConfig,
             registry: Registry, problems: list[Problem]) -> Section | None:
    names = registry.names(kind)
    installed = f"installed {kind} plugins: {', '.join(names)}" if names else f"no {kind} plugins are installed"
    shown = _shown(path)
    use = section.get("use")
    if use is None:
        problems.append(Problem(raw.where(path), f"{shown} has no 'use:' key naming its {kind} plugin",
                                f"add `use: <name>`; {installed}"))
        return None
    if not isinstance(use, str):
        problems.append(Problem(raw.where_value(path + ("use",)), f"use: in {shown} must be a plugin name, not {use!r}", installed))
        return None
    plugin = registry.get(kind, use)
    if plugin is None:
        near = registry.nearest(kind, use)
        hint = installed + (f"; did you mean '{near}'?" if near else "")
        problems.append(Problem(raw.where_value(path + ("use",)), f"no {kind} plugin named '{use}' is installed", hint))
        return None

    reserved = {"use"}
    ident = use
    if kind == "strategy":
        reserved.add("id")
        if "id" in section:
            ident = section["id"]
            if not isinstance(ident, str) or not _ID.fullmatch(ident):
                problems.append(Problem(
                    raw.where_value(path + ("id",)), f"id: in {shown} must be a plain name, not {ident!r}",
                    "use letters, digits, '_', '-' and '.', starting with a letter or digit (it names files)",
                ))
                return None

    label = f"{kind} '{ident}'"
    settings_in = {k: v for k, v in section.items() if k not in reserved}
    try:
        settings = plugin.model.model_validate(settings_in)
    except ValidationError as exc:
        problems += explain(exc, model=plugin.model, data=settings_in, base=path, sources=raw.sources,
                            fallback=raw.where(path), label=label)
        return None
    except Exception as exc:  # a bug in the plugin's own validators, not in the user's file
        problems.append(Problem(
            raw.where(path),
            f"{kind} plugin '{use}' (package {plugin.package!r}) failed while checking its settings: "
            f"{type(exc).__name__}: {exc}",
            "this is a bug in that plugin; report it to its authors",
        ))
        return None
    return Section(kind=kind, use=use, id=ident, plugin=plugin, settings=_resolve_files(settings, path, raw),
                   path=path)


def _resolve_files(settings: BaseModel, path: KeyPath, raw: RawConfig) -> BaseModel:
    """Make each ``ConfigPath`` field absolute, relative to the file that wrote it."""
    updates = {}
    for name, info in type(settings).model_fields.items():
        if not any(isinstance(m, FileNameMarker) for m in info.metadata):
            continue
        value = getattr(settings, name)
        if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
            continue
        pos = raw.where(path + (name,))
        base = Path.cwd() if pos.file == SET_FILE else Path(pos.file).resolve().parent
        updates[name] = str(base / Path(value).expanduser())
    return settings.model_copy(update=updates) if updates else settings


def _shown(path: KeyPath) -> str:
    if len(path) == 1:
        return f"the {path[0]} section"
    return f"{path[0]} item {path[1] + 1}"


def _check_unique_ids(strategies: list[Section], raw: RawConfig, problems: list[Problem]) -> None:
    first: dict[str, Section] = {}
    for section in strategies:
        if section.id in first:
            where = raw.where(first[section.id].path)
            id_path = section.path + ("id",)
            pos = raw.where_value(id_path) if id_path in raw.sources else raw.where(section.path)
            problems.append(Problem(
                pos,
                f"two strategies have the id '{section.id}' (the first is at {where.file}:{where.line})",
                "give each strategy its own `id: <name>` (the id defaults to the use: name)",
            ))
        else:
            first[section.id] = section
