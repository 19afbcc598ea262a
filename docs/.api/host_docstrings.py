"""A griffe extension for the docs build: the host's docstring conventions, as mkdocstrings needs them.

* An attribute documented by ``#:`` comment lines right above it (the Sphinx convention the
  host's modules use: ``#: The strategy's id ...`` over ``strategy_id: str``) gets those lines
  as its docstring; griffe itself only reads a string literal below an attribute.
* A reStructuredText literal-block marker (a line ending ``::`` above an indented block) ends
  with one colon: Markdown shows the indented block as code already.
* Sphinx roles become cross-references (below).

The host's docstrings say :func:`on_fill` and :class:`~bothost.model.OrderStatus` (the roles an
IDE and ``help()`` readers know). mkdocstrings would print those roles as they are; this turns
each into a link to the object on the reference pages: ``:func:`on_fill``` -> ``[`on_fill`][on_fill]``,
resolved in the docstring's own scope (``scoped_crossrefs``), so a name the pages do not render
is a broken link and fails ``mkdocs build --strict``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe

LITERAL_MARKER = re.compile(r"(?<=\S)::$", re.MULTILINE)
ROLE = re.compile(r":(?:func|class|meth|attr|data|exc|obj|mod):`(~?)([A-Za-z_][\w.]*)(\(\))?`")


def link(match: re.Match) -> str:
    short, target, _call = match.groups()
    shown = target.rsplit(".", 1)[-1] if short else target
    return f"[`{shown}`][{target}]"


def comment_docstring(lines: list[str], lineno: int) -> str | None:
    """The ``#:`` comment lines directly above line ``lineno`` (1-based), as text, or None."""
    found: list[str] = []
    i = lineno - 2
    while i >= 0 and lines[i].strip().startswith("#:"):
        found.append(lines[i].strip()[2:].strip())
        i -= 1
    return "\n".join(reversed(found)) if found else None


class HostDocstrings(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.is_attribute and obj.docstring is None and obj.lineno and isinstance(obj.filepath, Path):
            text = comment_docstring(obj.filepath.read_text(encoding="utf-8").splitlines(), obj.lineno)
            if text:
                obj.docstring = griffe.Docstring(text, lineno=obj.lineno - 1, parent=obj)
        if obj.docstring is not None:
            text = LITERAL_MARKER.sub(":", obj.docstring.value)
            obj.docstring.value = ROLE.sub(link, text)
