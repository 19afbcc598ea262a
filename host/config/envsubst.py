"""``${VAR}`` and ``${VAR:-default}`` in string values, substituted from the environment.

This runs after the ``extends:`` merge and the ``--set`` overrides, so that a paper config
overriding a live config's broker section does not need the live config's secrets. As in a
shell, ``:-`` uses the default when the variable is unset or empty. ``$${`` writes a literal
``${``. A value that is exactly one ``${...}`` (and was not quoted) is re-typed as YAML would
type it, so ``port: ${PORT:-7497}`` is an int; quote it (``"${PORT}"``) to keep a string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError
from .positions import KeyPath, SourceMap
from .yamlfile import parse_scalar

_REF = re.compile(r"\$\$\{|\$\{([^{}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def substitute(data: Any, smap: SourceMap, environ: Mapping[str, str], path: KeyPath = ()) -> Any:
    """Return ``data`` with every reference replaced (walking in document order)."""
    if isinstance(data, dict):
        return {k: substitute(v, smap, environ, path + (k,)) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute(v, smap, environ, path + (i,)) for i, v in enumerate(data)]
    if isinstance(data, str) and "${" in data:
        return _expand(data, path, smap, environ)
    return data


def _expand(text: str, path: KeyPath, smap: SourceMap, environ: Mapping[str, str]) -> Any:
    names: list[str] = []
    whole = False

    def replace(match: re.Match[str]) -> str:
        nonlocal whole
        token = match.group(0)
        if token == "$${":
            return "${"
        if match.group(1) is None:
            raise ConfigError.at(
                smap.where_value(path), f"'${{' without a matching '}}' in {text!r} (references cannot be nested)",
                hint="write ${VAR} or ${VAR:-default}; write $${ for a literal ${",
            )
        name, sep, default = match.group(1).partition(":-")
        if not _NAME.fullmatch(name):
            raise ConfigError.at(
                smap.where_value(path), f"'{token}' is not a valid variable reference",
                hint="write ${VAR} or ${VAR:-default}, where VAR is letters, digits and _",
            )
        names.append(name)
        whole = match.span() == (0, len(text))
        value = environ.get(name)
        if value is None or (sep and value == ""):
            if sep:
                return default
            raise ConfigError.at(
                smap.where_value(path), f"environment variable {name} is not set",
                hint=f"export {name}=... or write ${{{name}:-default}}",
            )
        return value

    result = _REF.sub(replace, text)
    if not names:
        return result
    smap.update(path, env=tuple(names))
    entry = smap.get(path)
    if whole and not (entry and entry.quoted):
        return parse_scalar(result)
    return result
