"""Reading one YAML file into plain data plus the position of every key and item.

ruamel.yaml's round-trip loader is used because it keeps line and column numbers; its
commented types are converted to plain dicts, lists and scalars at once, so nothing past this
module ever sees a ruamel type. Every failure becomes a :class:`ConfigError` at a position.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarstring import ScalarString

from .errors import ConfigError, Pos
from .positions import Entry, KeyPath, SourceMap

TAB_HINT = "YAML indents with spaces, not tabs"


def read_yaml(path: Path, display: str) -> tuple[dict[str, Any], SourceMap]:
    """Load ``path`` (shown to the user as ``display``); the top level must be a mapping."""
    text = _read_text(path, display)
    yaml = YAML(typ="rt")
    # Quoted scalars come back as their own types, so that `"${PORT}"` can stay a string.
    yaml.preserve_quotes = True
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        raise _syntax_error(exc, text, display) from None
    except (YAMLError, RecursionError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot parse the YAML: {exc}", display, 1, 1) from None

    if doc is None:
        if _has_content(text):
            raise ConfigError("the document is null; expected a mapping of settings (key: value lines)", display)
        raise ConfigError("the file is empty", display, 1, 1)
    if not isinstance(doc, CommentedMap):
        line, col = _node_pos(doc)
        raise ConfigError(
            f"the top level of a config must be a mapping of settings (key: value lines), not {_kind(doc)}",
            display,
            line,
            col,
            hint="start with lines such as `mode: paper` and `broker: {use: <name>}`",
        )
    smap = SourceMap()
    top = Pos(display, 1, 1)
    smap.set((), Entry(top, top))
    try:
        data = _plain(doc, (), smap, display, set())
    except RecursionError:
        raise ConfigError("the document is nested too deeply", display, 1, 1) from None
    return data, smap


def _read_text(path: Path, display: str) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such file", display, 1, 1) from None
    except IsADirectoryError:
        raise ConfigError("this is a directory, not a config file", display, 1, 1) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", display, 1, 1) from None
    except ValueError as exc:  # e.g. a NUL byte in the file name
        raise ConfigError(f"cannot read the file: {exc}", display, 1, 1) from None
    try:
        return raw.decode("utf-8-sig")  # -sig: a BOM written by some editors is not content
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x})", display, line, col,
            hint="save the file as UTF-8",
        ) from None


def _has_content(text: str) -> bool:
    return any(ln.strip() and not ln.lstrip().startswith("#") for ln in text.splitlines())


def _syntax_error(exc: MarkedYAMLError, text: str, display: str) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    indent = here[: len(here) - len(here.lstrip(" \t"))]
    if "\t" in indent or "'\\t'" in problem:
        return ConfigError("a tab character is used for indentation", display, line, col, hint=TAB_HINT)
    if isinstance(exc, DuplicateKeyError):
        # ruamel says 'found duplicate key "a" with value "3" (original value: "1")'.
        key = problem.split('"')[1] if problem.count('"') >= 2 else "?"
        return ConfigError(
            f"duplicate key '{key}' (a key may appear only once in a mapping)", display, line, col,
            hint=f"remove one of the '{key}:' lines, or merge them",
        )
    message = f"invalid YAML: {problem}"
    if exc.context and exc.context_mark and exc.problem:
        message += f" ({exc.context} started at line {exc.context_mark.line + 1})"
    hint = None
    if "${" in here and "flow" in (exc.context or "") + problem:
        # `{use: x, token: ${T}}`: inside [ ] or { } the braces of ${...} are YAML syntax.
        hint = "inside [ ] or { }, quote a value that contains ${...}: '${VAR}'"
    return ConfigError(message, display, line, col, hint=hint)


def _node_pos(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        return lc.line + 1, lc.col + 1
    return 1, 1


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a single string"
    return f"a single value ({value!r})"


def _at(display: str, lc_pair: Any, fallback: Pos) -> Pos:
    if not lc_pair or lc_pair[0] is None:
        return fallback
    return Pos(display, lc_pair[0] + 1, lc_pair[1] + 1)


def _plain(node: Any, path: KeyPath, smap: SourceMap, display: str, active: set[int]) -> Any:
    """Convert a ruamel node to plain Python data, recording positions under ``path``."""
    if isinstance(node, (CommentedMap, CommentedSeq)):
        if id(node) in active:  # `&a [*a]`: an alias that contains itself
            raise ConfigError.at(smap.where(path), "an alias refers to itself (recursive anchor)")
        active = active | {id(node)}
    here = smap.where(path)
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            try:
                kpos = _at(display, node.lc.key(key), here)
                vpos = _at(display, node.lc.value(key), kpos)
            except (KeyError, TypeError, IndexError):  # a key that came in through `<<: *anchor`
                kpos = vpos = here
            if isinstance(key, ScalarString):
                key = str(key)
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise ConfigError.at(kpos, f"a key must be a plain name, not {key!r}", hint="write the key as a word, e.g. `name: value`")
            sub = path + (key,)
            smap.set(sub, Entry(kpos, vpos, quoted=isinstance(value, ScalarString)))
            out[key] = _plain(value, sub, smap, display, active)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            try:
                ipos = _at(display, node.lc.item(index), here)
            except (KeyError, TypeError, IndexError):
                ipos = here
            sub = path + (index,)
            smap.set(sub, Entry(ipos, ipos, quoted=isinstance(value, ScalarString)))
            items.append(_plain(value, sub, smap, display, active))
        return items
    return plain_scalar(node, smap.where_value(path))


def plain_scalar(value: Any, pos: Pos | None) -> Any:
    """A ruamel scalar as the plain Python value it stands for."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, ScalarString):
        return str(value)
    if isinstance(value, (bool, ScalarBoolean)):
        return bool(value)
    if isinstance(value, int):  # ScalarInt, HexInt, ...
        return int(value)
    if isinstance(value, float):  # ScalarFloat
        return float(value)
    if isinstance(value, dt.datetime):
        return dt.datetime.fromisoformat(value.isoformat())  # drops ruamel's TimeStamp subclass
    if isinstance(value, dt.date):
        return value
    tag = getattr(getattr(value, "tag", None), "value", None)
    message = f"unsupported YAML value {value!r}" + (f" (tag {tag})" if tag else "")
    raise ConfigError.at(pos or Pos("?", 1, 1), message, hint="config values are plain strings, numbers, true/false, lists and mappings")


def parse_scalar(text: str) -> Any:
    """``text`` typed as YAML would type it as a plain scalar (``7497`` -> int, ``true`` -> bool).

    Anything that would not be a scalar (``a: b``, a comment, invalid YAML) stays the string
    it was: a value substituted from the environment must never turn into a structure.
    """
    if text == "":
        return None
    try:
        value = YAML(typ="safe", pure=True).load(text)  # a fresh loader: they are not re-entrant
    except (YAMLError, ValueError, TypeError, RecursionError):
        return text
    if isinstance(value, (dict, list)):
        return text
    if value is None and text.strip() not in ("~", "null", "Null", "NULL"):
        return text  # e.g. "#abc" is a comment to YAML, but a value here
    return value
