"""``validate()``: check a loaded config against the host model and each plugin's model.

All problems are collected first and the one written first is reported (the file the user
named before its bases, then by line), so fixing errors top to bottom works as expected.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ..errors import InputError
from ..registry import Kind, Registry
from .explain import Problem, explain
from .loader import RawConfig
from .models import SECTION_KINDS, EngineSettings, HostConfig
from .errors import SET_FILE, ConfigError
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
    #: ``instruments:`` by symbol (model.Instrument); a symbol not in it is priced in cents
    instruments: dict[str, Any] = field(default_factory=dict)

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
    _check_one_strategy_per_symbol(strategies, raw, problems)
    if ("feed",) in sections:
        sections[("feed",)] = _feed_streams_the_strategies(sections[("feed",)], strategies, raw, problems)
    if host is not None:
        _check_state_dir(host.state_dir, raw, problems)

    if problems:
        first = min(problems, key=lambda p: (raw.file_rank(p.pos.file), p.pos.line, p.pos.col))
        raise first.error()
    assert host is not None  # no problems means the host model validated
    # Only a config whose every key is right gets its files looked at, and the live guard.
    for section in sections.values():
        _check_files(section, raw)
    if ("broker",) in sections:
        _check_live(host.mode, sections[("broker",)], raw)

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
        instruments=host.instrument_map(),
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
        problems.append(Problem(raw.where_value(path + ("use",)),
                                f"use: in {shown} must be a plugin name, not {_brief(use)}", installed))
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
                    raw.where_value(path + ("id",)), f"id: in {shown} must be a plain name, not {_brief(ident)}",
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


def _file_marker(info: FieldInfo) -> FileNameMarker | None:
    """The field's FileNameMarker, also inside ``Optional[...]`` / a union (``data: ConfigPath | None``)."""
    for meta in info.metadata:
        if isinstance(meta, FileNameMarker):
            return meta
    stack = [info.annotation]
    while stack:
        annotation = stack.pop()
        if typing.get_origin(annotation) is typing.Annotated:
            found = [m for m in typing.get_args(annotation)[1:] if isinstance(m, FileNameMarker)]
            if found:
                return found[0]
        stack.extend(typing.get_args(annotation))
    return None


def _resolve_files(settings: BaseModel, path: KeyPath, raw: RawConfig) -> BaseModel:
    """Make each ``ConfigPath`` field absolute, relative to the file that wrote it."""
    updates = {}
    for name, info in type(settings).model_fields.items():
        if _file_marker(info) is None:
            continue
        value = getattr(settings, name)
        if isinstance(value, dict):  # a file per key: each relative to the file that wrote it
            resolved = {k: _resolved(v, path + (name, k), raw) for k, v in value.items()}
            if resolved != value:
                updates[name] = resolved
            continue
        if _resolved(value, path + (name,), raw) != value:
            updates[name] = _resolved(value, path + (name,), raw)
    return settings.model_copy(update=updates) if updates else settings


def _resolved(value: Any, keypath: tuple, raw: RawConfig) -> Any:
    """A relative file name made absolute, relative to the file that wrote it (else as given)."""
    if not isinstance(value, str) or not value or "\0" in value:
        return value
    expanded = Path(value).expanduser()
    if expanded.is_absolute():
        return value
    pos = raw.where(keypath)
    base = Path.cwd() if pos.file == SET_FILE else Path(pos.file).resolve().parent
    return str(base / expanded)


def _check_files(section: Section, raw: RawConfig) -> None:
    """Each file a section names exists (else the error points at the line that names it), and
    passes its plugin's quick check (which raises its own InputError, at the file's own line)."""
    settings = section.settings
    for field_name, info in type(settings).model_fields.items():
        marker = _file_marker(info)
        named = getattr(settings, field_name)
        if marker is None:
            continue
        # one file (`data: bars.csv`), or a file per key (`data_by_symbol: {SYM: sym.csv}`)
        files = ([(field_name, section.path + (field_name,), named)] if isinstance(named, str) else
                 [(str(k), section.path + (field_name, k), v) for k, v in named.items() if isinstance(v, str)]
                 if isinstance(named, dict) else [])
        for name, keypath, value in files:
            _check_file(section, raw, marker, info, name, keypath, value)


def _check_file(section: Section, raw: RawConfig, marker: FileNameMarker, info: FieldInfo, name: str,
                keypath: tuple, value: str) -> None:
    """One file a section names (``name`` as the config writes it, at ``keypath``)."""
    written = keypath in raw.sources
    if not value.strip():
        if written:  # `lots: ""`: the config's own folder would be read as the file
            raise ConfigError.at(raw.where_value(keypath), f"{name}: the file name is empty",
                                 hint=f"name a file, or remove `{name}:` to use the default")
        return
    shown = raw.data
    for part in keypath:
        shown = shown.get(part) if isinstance(shown, dict) else shown[part] if isinstance(shown, list) else None
    if not written and shown is not None:
        # Put there by the command itself (`--data FILE`): no config line names it; the
        # plugin's check names the file.
        pass
    else:
        pos = raw.where_value(keypath) if written else raw.where(section.path)
        given = shown if isinstance(shown, str) else info.default
        relative = ("the current folder (it came from --set)" if pos.file == SET_FILE
                    else "the config file that names it")
        problem = None
        try:
            path = Path(value)
            if "\0" in value:
                problem = "is not a file name (it holds a NUL character)"
            elif path.is_dir():
                problem = "is a folder, not a file"
            elif not path.exists():
                problem = "no such file"
        except (OSError, ValueError) as exc:
            problem = f"cannot be looked at ({exc})"
        if problem is not None:
            default = "" if written else " (the default)"
            what = f"{name}: no such file {given}" if problem == "no such file" else f"{name}: {given} {problem}"
            hint = (f"looked for {value}, which was not found; a file name in a config is relative to {relative}"
                    if problem == "no such file" else f"name a file; a file name in a config is relative to {relative}")
            if not written:
                hint += f"; write `{name}: FILE` in {_shown(section.path)} to name another"
            raise ConfigError.at(pos, what + default, hint=hint)
    if marker.check is None:
        return
    try:
        marker.check(Path(value))
    except InputError:
        raise
    except Exception as exc:  # a bug in the plugin's check, not in the user's file
        raise ConfigError.at(
            raw.where_value(keypath) if written else raw.where(section.path),
            f"{section.kind} plugin '{section.use}' (package {section.plugin.package!r}) failed while checking "
            f"the file {value}: {type(exc).__name__}: {exc}",
            hint="this is a bug in that plugin; report it to its authors") from exc


def _check_live(mode: str, broker: Section, raw: RawConfig) -> None:
    """S2, on the settings alone, before a run makes its state folder: a broker section that
    points at a live account needs `mode: live` (the run checks again, with the broker that
    cannot say at all; a broker that can only tell once connected checks there)."""
    if mode == "live":
        return
    pos = raw.where(broker.path)
    from ..hookspecs import LiveAwareSettings

    if not isinstance(broker.settings, LiveAwareSettings):
        return  # a plugin that cannot say: the run refuses it (run.live_guard), before connecting
    try:
        live = broker.settings.is_live()
    except Exception as exc:
        raise ConfigError.at(
            pos, f"broker plugin '{broker.use}' (package {broker.plugin.package!r}) failed while saying whether "
            f"it trades a live account: {type(exc).__name__}: {exc}",
            hint="this is a bug in that plugin; report it to its authors") from exc
    if live:
        raise ConfigError.at(
            pos, "this broker section points at a LIVE account, but the config does not say `mode: live`",
            hint="paper trading is the default; add `mode: live` at the top of the config to trade real money")


def _check_state_dir(state_dir: str | None, raw: RawConfig, problems: list[Problem]) -> None:
    """A state folder that can never be made (a file is in the way, a NUL in the name)."""
    if not state_dir:
        return
    pos = raw.where_value(("state_dir",))
    hint = "name a folder (relative to the config file), or remove state_dir: to use state/<config name>/"
    if "\0" in state_dir:
        problems.append(Problem(pos, "state_dir: not a folder name (it holds a NUL character)", hint))
        return
    try:
        path = Path(state_dir).expanduser()
        if not path.is_absolute():
            path = raw.path.parent / path
        for part in [path, *path.parents]:
            if part.exists():
                if not part.is_dir():
                    what = "is a file" if part == path else f"is inside {part}, which is a file"
                    problems.append(Problem(pos, f"state_dir: {state_dir} {what}, not a folder", hint))
                return
    except (OSError, ValueError, RuntimeError) as exc:
        problems.append(Problem(pos, f"state_dir: {state_dir!r} cannot be used ({exc})", hint))


def _brief(value: Any) -> str:
    """A wrong value for a message: a scalar as written, a structure only by its kind (it may
    hold secrets substituted from the environment, which are never printed)."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


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


def strategy_symbol(section: Section) -> str | None:
    """The symbol a strategy section trades: its settings' ``symbol`` (hookspecs.TradesSymbol
    reads the same from the built strategy), or None for one that names no single symbol."""
    symbol = getattr(section.settings, "symbol", None)
    return symbol.upper() if isinstance(symbol, str) and symbol else None


def _symbol_pos(section: Section, raw: RawConfig):
    keypath = section.path + ("symbol",)
    return raw.where_value(keypath) if keypath in raw.sources else raw.where(section.path)


def _check_one_strategy_per_symbol(strategies: list[Section], raw: RawConfig, problems: list[Problem]) -> None:
    """Two strategies on one symbol would share the broker's position of it, which is the
    account's: neither could tell its shares from the other's (the position check, orphan
    shares), so the second is refused at its own line."""
    first: dict[str, Section] = {}
    for section in strategies:
        symbol = strategy_symbol(section)
        if symbol is None:
            continue
        if symbol not in first:
            first[symbol] = section
            continue
        other = first[symbol]
        where = raw.where(other.path)
        problems.append(Problem(
            _symbol_pos(section, raw),
            f"strategies '{other.id}' and '{section.id}' both trade {symbol} (the first at {where.file}:"
            f"{where.line}): the broker's position in {symbol} is the whole account's, so neither could tell "
            "its shares from the other's",
            f"give each strategy its own symbol, or run the second {symbol} strategy in another account "
            "(its own config and broker connection)",
        ))


def _feed_streams_the_strategies(feed: Section, strategies: list[Section], raw: RawConfig,
                                 problems: list[Problem]) -> Section:
    """A feed whose settings have ``symbols`` (a list) streams every strategy's symbol by default:
    written neither ``symbols:`` nor ``symbol:``, it gets the strategies' symbols, in their order.
    Written, each strategy's symbol must be among them (else that strategy would never get a tick)."""
    fields = type(feed.settings).model_fields
    if "symbols" not in fields:
        return feed
    wanted = list(dict.fromkeys(s for s in map(strategy_symbol, strategies) if s is not None))
    written = [k for k in ("symbols", "symbol") if feed.path + (k,) in raw.sources]
    if not written:
        if not wanted:
            return feed
        return dataclasses.replace(feed, settings=feed.settings.model_copy(update={"symbols": wanted}))
    given = getattr(feed.settings, "symbols", None) or []
    if not given and isinstance(getattr(feed.settings, "symbol", None), str):
        given = [feed.settings.symbol]
    streamed = {str(s).upper() for s in given}
    for section in strategies:
        symbol = strategy_symbol(section)
        if symbol is not None and symbol not in streamed:
            problems.append(Problem(
                raw.where_value(feed.path + (written[0],)),
                f"strategy '{section.id}' trades {symbol}, but the feed streams only {', '.join(sorted(streamed))}",
                f"add {symbol} to the feed's `symbols:`, or remove `{written[0]}:` to stream every strategy's symbol",
            ))
    return feed
