"""``--set key.path=value`` overrides from the command line.

Applied after the ``extends:`` merge and before ``${VAR}`` substitution (so a value given on
the command line may itself use ``${VAR}``). Integer path components index lists; missing
mapping keys are created. The value is typed as a YAML scalar (``2%`` stays a string for the
unit parser, ``3`` becomes an int); ``[...]`` and ``{...}`` are read as YAML flow collections.
Errors are reported with the pseudo file name ``--set``, line 1, column 1.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .errors import SET_FILE, SET_HINT, ConfigError, Pos
from .masking import is_secret
from .positions import KeyPath, SourceMap
from .yamlfile import _RUNAWAY, MAX_DEPTH, MAX_VALUES, parse_scalar

SET_POS = Pos(SET_FILE, 1, 1)


def _fail(text: str, problem: str) -> ConfigError:
    if _holds_secret(text):
        # Never echo a secret: the value (and what a parser quoted of it, in the parentheses
        # or the reprs of the problem) is left out; the key path and the kind of mistake stay.
        path, eq, _ = text.partition("=")
        names = {p.strip() for p in path.split(".")}
        text = f"{path.strip()}=***" if eq else "***"
        problem = re.sub(r"'([^']*)'|\"([^\"]*)\"",
                         lambda m: m.group(0) if (q := m.group(1) or m.group(2) or "") in names
                         or not re.search(r"\w", q) else "'***'", problem)
        problem = re.sub(r"\s*\(.*\)", "", problem, flags=re.S)
    if len(text) > 100:  # a runaway value is shown by its ends
        text = text[:60] + "..." + text[-20:]
    return ConfigError.at(SET_POS, f"cannot apply {text!r}: {problem}", hint=SET_HINT)


def _holds_secret(text: str) -> bool:
    """Does ``--set PATH=VALUE`` set a secret (a secret key in the path, or a secret-named key
    inside a flow-collection value such as ``feed={use: x, key: ...}``)?"""
    path, eq, value = text.partition("=")
    if not eq:  # `--set feed.key:VALUE`: no '=', the value may be anywhere in it
        return any(is_secret(word) for word in re.split(r"[^A-Za-z_]+", text) if word)
    if not value.strip():
        return False
    if any(is_secret(part.strip()) for part in path.split(".")):
        return True
    return any(is_secret(name) for name in re.findall(r"([A-Za-z_][\w-]*)\s*:", value))


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.0=value`` into its raw path components and its typed value."""
    if "=" not in text:
        raise _fail(text, "there is no '=' between the key path and the value")
    path_text, value_text = text.split("=", 1)
    path_text = path_text.strip()
    if not path_text:
        raise _fail(text, "the key path before '=' is empty")
    parts = path_text.split(".")
    if any(not p.strip() for p in parts):
        raise _fail(text, f"the key path {path_text!r} has an empty component")
    if len(parts) > MAX_DEPTH:
        raise _fail(text, f"the key path has more than {MAX_DEPTH} components")
    return [p.strip() for p in parts], _parse_value(text, value_text.strip())


def _parse_value(text: str, value_text: str) -> Any:
    if value_text[:1] in ("[", "{"):
        if _RUNAWAY.search(value_text):
            raise _fail(text, f"the value is nested more than {MAX_DEPTH} levels deep")
        try:
            loaded = YAML(typ="safe", pure=True).load(value_text)
        except YAMLError as exc:
            raise _fail(text, f"the value is not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
        except RecursionError:
            raise _fail(text, f"the value is nested more than {MAX_DEPTH} levels deep") from None
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. [!!float x]
            raise _fail(text, f"the value cannot be read ({exc})") from None
        return _plain(loaded, text, set(), [MAX_VALUES], 0)
    if len(value_text) >= 2 and value_text[0] == value_text[-1] and value_text[0] in "'\"":
        return value_text[1:-1]  # quoted: kept as a string, never re-typed
    return parse_scalar(value_text)


def _plain(value: Any, text: str, active: set[int], budget: list[int], depth: int) -> Any:
    """A copy in plain types, as a config file's values are (see yamlfile): aliases that contain
    themselves, runaway nesting or expansion, and tagged oddities (!!binary, !!set) are refused."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _fail(text, f"the value expands to more than {MAX_VALUES:,} values")
    if depth > MAX_DEPTH:
        raise _fail(text, f"the value is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, (dict, list)):
        if id(value) in active:
            raise _fail(text, "an alias refers to itself (recursive anchor)")
        active = active | {id(value)}
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise _fail(text, f"a key must be a plain name, not {k!r}")
                out[k] = _plain(v, text, active, budget, depth + 1)
            return out
        return [_plain(v, text, active, budget, depth + 1) for v in value]
    if value is None or isinstance(value, (str, int, float, bool, dt.date)):
        return value
    raise _fail(text, f"unsupported YAML value {value!r}"[:200])


def apply_overrides(data: dict[str, Any], smap: SourceMap, overrides: Sequence[str]) -> None:
    """Apply each override in order to ``data`` in place, recording ``--set`` as the position."""
    for text in overrides:
        parts, value = parse_override(text)
        path = _set(data, parts, value, text, smap)
        smap.drop(path)
        smap.mark(path, value, SET_POS)
        quoted = isinstance(value, str) and text.split("=", 1)[1].strip()[:1] in ("'", '"')
        smap.update(path, quoted=quoted)


def _set(data: dict[str, Any], parts: list[str], value: Any, text: str, smap: SourceMap) -> KeyPath:
    node: Any = data
    path: KeyPath = ()
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not (part.isascii() and part.isdigit()):
                raise _fail(text, f"{'.'.join(parts[:depth]) or 'the config'} is a list; index it with a number, e.g. {'.'.join(parts[:depth] + ['0'])}")
            index = int(part)
            if index >= len(node):
                count = f"{len(node)} item" + ("" if len(node) == 1 else "s")
                raise _fail(text, f"{'.'.join(parts[:depth])} has {count}, so index {index} is past its end")
            key: Any = index
        elif isinstance(node, dict):
            key = part
        else:
            raise _fail(text, f"{'.'.join(parts[:depth])} is a single value ({node!r}), it has no key {part!r}")
        path = path + (key,)
        if last:
            node[key] = value
        else:
            child = node.get(key) if isinstance(node, dict) else node[key]
            if child is None:  # missing or empty (`engine:`): create the mapping on the way
                child = {}
                node[key] = child
                smap.drop(path)
                smap.mark(path, child, SET_POS)
            node = child
    return path
