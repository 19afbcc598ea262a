"""Pydantic validation errors, rephrased for the person editing the YAML file.

Each error becomes a :class:`Problem` with the position the source map gives for the value's
key path, a message in plain words that names the key and (for wrong values) what was
expected and what was given, and a hint (a near-miss key name, the unit syntax, ...).
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from .errors import ConfigError, Pos
from .masking import is_secret
from .positions import KeyPath, SourceMap
from .units import UnitDoc


@dataclass(frozen=True)
class Problem:
    pos: Pos
    message: str
    hint: str | None = None

    def error(self) -> ConfigError:
        return ConfigError.at(self.pos, self.message, self.hint)


# Pydantic error type -> plain words (formatted with the error's ctx).
_WORDS = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "decimal_parsing": "expected a number",
    "decimal_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "dict_type": "expected a mapping (indented key: value lines)",
    "model_type": "expected a mapping (indented key: value lines)",
    "model_attributes_type": "expected a mapping (indented key: value lines)",
    "mapping_type": "expected a mapping (indented key: value lines)",
    "list_type": "expected a list (lines starting with '- ')",
    "tuple_type": "expected a list (lines starting with '- ')",
    "set_type": "expected a list (lines starting with '- ')",
    "literal_error": "expected {expected}",
    "enum": "expected {expected}",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "multiple_of": "must be a multiple of {multiple_of}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_short": "must be at least {min_length} character(s) long",
    "string_too_long": "must be at most {max_length} character(s) long",
    "string_pattern_mismatch": "must match the pattern {pattern}",
    "none_required": "must be empty",
    "path_type": "expected a file path",
    "date_parsing": "expected a date such as 2024-01-31",
    "date_from_datetime_parsing": "expected a date such as 2024-01-31",
    "datetime_parsing": "expected a date and time such as 2024-01-31 09:30:00",
    "datetime_from_date_parsing": "expected a date and time such as 2024-01-31 09:30:00",
    "time_parsing": "expected a time such as 09:30",
}


def explain(
    exc: ValidationError,
    *,
    model: type[BaseModel],
    data: Any,
    base: KeyPath,
    sources: SourceMap,
    fallback: Pos,
    label: str | None = None,
) -> list[Problem]:
    """One :class:`Problem` per error of ``exc`` (raised validating ``data`` with ``model``).

    ``base`` is the key path of ``data`` in the whole config; ``label`` names the section
    (``"strategy 'grid'"``), or None for the host's own top level.
    """
    errors = exc.errors(include_url=False)
    unknown = {_walk(data, e["loc"])[0] for e in errors if e["type"] == "extra_forbidden"}
    problems = []
    for err in errors:
        loc = tuple(err["loc"])
        path, _ = _walk(data, loc)
        full = base + path
        kind = err["type"]
        if kind == "missing":
            name = str(loc[-1])
            if path and path[-1] == loc[-1]:
                path = path[:-1]
            parent = _model_at(model, loc[:-1])
            # A missing key that a typo'd unknown key stands for is the same mistake, reported
            # once (as the unknown key, which points at the line to fix).
            if parent and any(_nearest(str(u[-1]), _keys(parent)) == name for u in unknown if u[:-1] == path):
                continue
            full = base + path
            where = f" under {_dotted(path)}" if path else ""
            in_label = f" in {label}" if label else ""
            desc = _describe(_field_at(model, loc))
            problems.append(Problem(
                sources.where(full) or fallback,
                f"missing required key '{name}'{where}{in_label}",
                f"add `{name}: ...`" + (f" ({desc})" if desc else ""),
            ))
        elif kind == "extra_forbidden":
            name = str(path[-1]) if path else str(loc[-1])
            parent = _model_at(model, loc[:-1])
            keys = _keys(parent) if parent else []
            near = _nearest(name, keys)
            if near:
                hint = f"did you mean '{near}'?"
            elif keys:
                hint = "valid keys: " + ", ".join(keys)
            else:
                hint = "this takes no settings: remove the key"
            where = "top-level key" if not label and len(full) == 1 else "key"
            in_label = f" in {label}" if label else ("" if len(full) == 1 else f" under {_dotted(full[:-1])}")
            problems.append(Problem(sources.where(full) or fallback, f"unknown {where} '{name}'{in_label}", hint))
        else:
            problems.append(_value_problem(err, model, loc, path, full, sources, fallback, label))
    return problems


def _value_problem(err, model, loc, path, full, sources: SourceMap, fallback: Pos, label) -> Problem:
    ctx = err.get("ctx") or {}
    words = _WORDS.get(err["type"])
    if words:
        try:
            what = words.format(**ctx)
        except (KeyError, IndexError, ValueError):
            what = words
    else:
        what = _plain_msg(err["msg"])
    subject = _dotted(path) if path else None
    if label:
        head = f"{subject} in {label}" if subject else label
    else:
        head = _dotted(full) or "the config"
    got = _got(err.get("input"), err["type"])
    if any(is_secret(p) for p in full if isinstance(p, str)) and got.startswith(" (got ") and not got.startswith(
            (" (got nothing", " (got a ", " (got an ")):
        got = " (the value is not shown: it is a secret)"
    hints = []
    if ctx.get("hint"):
        hints.append(str(ctx["hint"]))
    else:
        # Name the expected type when the message did not already say it (e.g. `int | None`
        # says more than pydantic's "expected a whole number"; a Literal already lists its
        # choices; a range error is not about the type).
        desc = _describe(_field_at(model, loc))
        if desc and desc not in what and (words is None or what.startswith("expected")) and err["type"] not in ("literal_error", "enum"):
            hints.append(f"{subject or 'this'} takes {desc}")
    if not hints:
        desc = _describe(_field_at(model, loc))
        if isinstance(err.get("input"), (dict, list)) and err["type"] not in _STRUCTURE_TYPES:
            hints.append("write a single value here, not a " + ("mapping" if isinstance(err.get("input"), dict) else "list"))
        else:
            hints.append(_TYPE_HINTS.get(err["type"]) or (f"{subject or 'this'} takes {desc}" if desc else _ANY_HINT))
    entry = sources.get(full)
    if entry and entry.env:
        names = ", ".join("${" + n + "}" for n in entry.env)
        extra = f"the value came from {names}"
        if err["type"] == "string_type":
            extra += f'; quote it ("{names}") to keep it as text'
        hints.append(extra)
    return Problem(sources.where_value(full) or fallback, f"{head}: {what}{got}", "; ".join(hints) or None)


#: The hint for an error whose message already says what was expected.
_TYPE_HINTS = {
    "dict_type": "write it as indented `key: value` lines under its key, or as {key: value, ...}",
    "model_type": "write it as indented `key: value` lines under its key, or as {key: value, ...}",
    "model_attributes_type": "write it as indented `key: value` lines under its key, or as {key: value, ...}",
    "mapping_type": "write it as indented `key: value` lines under its key, or as {key: value, ...}",
    "list_type": "write one `- item` line per item under its key, or [item, ...]",
    "tuple_type": "write one `- item` line per item under its key, or [item, ...]",
    "set_type": "write one `- item` line per item under its key, or [item, ...]",
    "literal_error": "write one of the values listed (spelled and cased exactly so)",
    "enum": "write one of the values listed (spelled and cased exactly so)",
    "string_type": "quote the value to make it text: 'value'",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "too_short": "add items, or remove the key to use the default",
    "too_long": "remove items",
    "none_required": "remove the value",
}
_ANY_HINT = "fix the value, or remove the key to use the default"
_STRUCTURE_TYPES = {"dict_type", "model_type", "model_attributes_type", "mapping_type", "list_type", "tuple_type",
                    "set_type", "too_short", "too_long"}


def _plain_msg(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if msg.startswith("Input should be"):
        msg = "should be" + msg[len("Input should be"):]
    return msg


def _got(value: Any, kind: str) -> str:
    if kind in ("missing", "extra_forbidden"):
        return ""
    if value is None:
        return " (got nothing)"
    if isinstance(value, dict):
        return " (got a mapping)"
    if isinstance(value, list):
        return " (got an empty list)" if not value else " (got a list)"
    if isinstance(value, bool):
        return f" (got {str(value).lower()})"
    if isinstance(value, str):
        return f" (got {value!r})"
    if isinstance(value, (int, float)):
        return f" (got {value})"
    return ""


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path)


def _walk(data: Any, loc: tuple) -> tuple[KeyPath, Any]:
    """The part of a pydantic ``loc`` that exists in ``data`` (drops union tags and '[key]')."""
    path: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and not isinstance(part, int) and str(part) not in ("[key]",) and _is_key_like(part, node):
            path.append(part)  # a missing or extra key: keep its name, stop walking
            return tuple(path), None
        else:
            continue
        path.append(part)
    return tuple(path), node


def _is_key_like(part: Any, node: dict) -> bool:
    # Union members show up in loc as tags such as 'function-plain[...]' or 'int'; those are
    # not keys the user wrote. A real field name is an identifier-like string.
    return isinstance(part, str) and part.replace("_", "a").replace("-", "a").isalnum() and part not in _TYPE_TAGS


_TYPE_TAGS = {"str", "int", "float", "bool", "none", "list", "dict", "decimal", "tuple", "set", "lax-or-strict"}


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _nearest(name: str, keys: list[str]) -> str | None:
    match = difflib.get_close_matches(name, keys, n=1, cutoff=0.6)
    return match[0] if match else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _field_in(model: type[BaseModel], name: Any) -> FieldInfo | None:
    if not isinstance(name, str):
        return None
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias):
            return info
    return None


def _field_at(model: type[BaseModel], loc: tuple) -> FieldInfo | None:
    current: type[BaseModel] | None = model
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        if current is None:
            return None
        found = _field_in(current, part)
        if found is None:
            continue  # a union tag
        info = found
        models = _models_in(found.annotation)
        current = models[0] if models else None
    return info


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    current = model
    for part in loc:
        if isinstance(part, int):
            continue
        found = _field_in(current, part)
        if found is None:
            continue
        models = _models_in(found.annotation)
        if not models:
            return None
        current = models[0]
    return current


def _describe(info: FieldInfo | None) -> str | None:
    if info is None:
        return None
    for meta in info.metadata:
        if isinstance(meta, UnitDoc):
            return meta.text
    return describe_type(info.annotation)


_SIMPLE = {
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    str: "text",
}


def describe_type(annotation: Any) -> str | None:
    """Plain words for a type annotation (``int | None`` -> "a whole number, or nothing")."""
    import decimal
    import pathlib

    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    if annotation is decimal.Decimal:
        return "a number"
    if isinstance(annotation, type) and issubclass(annotation, pathlib.PurePath):
        return "a file path"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a mapping of settings"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        for meta in args[1:]:
            if isinstance(meta, UnitDoc):
                return meta.text
        return describe_type(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [describe_type(a) for a in args if a is not type(None)]
        if any(p is None for p in parts):
            return None
        text = " or ".join(parts)
        return text + (", or nothing" if type(None) in args else "")
    if origin in (list, tuple, set, frozenset):
        return "a list"
    if origin is dict:
        return "a mapping"
    return None
