"""A griffe extension for the docs build: the host's docstring conventions, as mkdocstrings needs them.

* An attribute documented by ``#:`` comment lines right above it (the Sphinx convention the
  host's modules use: ``#: The strategy's id ...`` over ``strategy_id: str``) gets those lines
  as its docstring; griffe itself only reads a string literal below an attribute.
* A reStructuredText literal-block marker (a line ending ``::`` above an indented block) ends
  with one colon: Markdown shows the indented block as code already.
* Sphinx roles (``:func:`on_fill```, ``:class:`~bothost.model.OrderStatus```) become links to the
  object on the reference pages when it is in a module the manual renders (the ``linked``
  option), else plain code: a docstring may name an internal helper without breaking the build.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import griffe

LITERAL_MARKER = re.compile(r"(?<=\S)::$", re.MULTILINE)
ROLE = re.compile(r":(?:func|class|meth|attr|data|exc|obj|mod):`(~?)([A-Za-z_][\w.]*)(?:\(\))?`")


def comment_docstring(lines: list[str], lineno: int) -> str | None:
    """The ``#:`` comment lines directly above line ``lineno`` (1-based), as text, or None."""
    found: list[str] = []
    i = lineno - 2
    while i >= 0 and lines[i].strip().startswith("#:"):
        found.append(lines[i].strip()[2:].strip())
        i -= 1
    return "\n".join(reversed(found)) if found else None


def resolve(obj: griffe.Object, name: str) -> str | None:
    """The full path ``name`` means in ``obj``'s docstring, or None."""
    if name.startswith("bothost."):
        return name
    first, _, rest = name.partition(".")
    try:
        path = obj.resolve(first)
    except Exception:  # griffe's NameResolutionError, or an alias it cannot follow
        return None
    return f"{path}.{rest}" if rest else path


def objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from objects(member)


class HostDocstrings(griffe.Extension):
    def __init__(self, linked: list[str] | None = None) -> None:
        super().__init__()
        self.linked = tuple(linked or ())

    def _is_rendered(self, path: str) -> bool:
        return any(path == p or path.startswith(p + ".") for p in self.linked)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        sources: dict[Path, list[str]] = {}
        for obj in objects(pkg):
            if obj.is_attribute and obj.docstring is None and obj.lineno and isinstance(obj.filepath, Path):
                if obj.filepath not in sources:
                    sources[obj.filepath] = obj.filepath.read_text(encoding="utf-8").splitlines()
                text = comment_docstring(sources[obj.filepath], obj.lineno)
                if text:
                    obj.docstring = griffe.Docstring(text, lineno=obj.lineno - 1, parent=obj)
            if obj.docstring is not None:
                text = LITERAL_MARKER.sub(":", obj.docstring.value)
                obj.docstring.value = ROLE.sub(lambda m, o=obj: self._link(o, m), text)

    def _link(self, obj: griffe.Object, match: re.Match) -> str:
        short, name = match.groups()
        shown = name.rsplit(".", 1)[-1] if short else name
        path = resolve(obj, name)
        if path is not None and self._is_rendered(path):
            return f"[`{shown}`][{path}]"
        return f"`{shown}`"
