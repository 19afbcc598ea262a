"""NAME -> every name a generated plugin package uses, or the reason NAME cannot be one.

One NAME is the distribution's name (``pip install``), the import package's name and the
``use:`` name in a config, so the author has one word to remember. Hence the strict rule:
lowercase letters, digits and underscores, a letter first (a Python identifier that is also a
valid, already normalised distribution name).
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import sys
from dataclasses import dataclass

KINDS = ("strategy", "broker", "feed", "notifier")

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
#: Names that would shadow or be shadowed by something every bothost install has.
_TAKEN = {"bothost", "bothost_plugins", "tests", "test", "pluggy", "pydantic", "click"}
MAX_LENGTH = 60


class NameRefused(ValueError):
    """NAME cannot be a plugin package's name; the message says why and what would do."""


@dataclass(frozen=True)
class PluginNames:
    kind: str  # strategy | broker | feed | notifier
    name: str  # the `use:` name, the import package and the distribution, all one word
    class_name: str  # CamelCase of name: the plugin's main class

    @property
    def distribution(self) -> str:
        return self.name  # already normalised (PEP 503: lowercase, `_` is as good as `-`)


def suggestion(text: str) -> str:
    """A name close to ``text`` that the rule accepts (``My-Dip Buyer`` -> ``my_dip_buyer``)."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    name = re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = "my_" + name if name else "my_plugin"
    return name[:MAX_LENGTH].rstrip("_")


def check_name(kind: str, text: str) -> PluginNames:
    """The names for NAME ``text``, or :class:`NameRefused` saying why not."""
    if kind not in KINDS:
        raise NameRefused(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    if not _NAME.match(text):
        raise NameRefused(
            f"{text!r} cannot name a plugin package: use lowercase letters, digits and underscores, "
            f"starting with a letter (it is the import name, the pip name and the `use:` name); "
            f"for example {suggestion(text)!r}")
    if len(text) > MAX_LENGTH:
        raise NameRefused(f"{text!r} is {len(text)} characters long; at most {MAX_LENGTH}")
    if keyword.iskeyword(text) or keyword.issoftkeyword(text):
        raise NameRefused(f"{text!r} is a Python keyword and cannot be imported; for example {text + '_plugin'!r}")
    if text in sys.stdlib_module_names:
        raise NameRefused(f"{text!r} is a module of Python's standard library, which your package would "
                          f"shadow; for example {'my_' + text!r}")
    if text in _TAKEN:
        raise NameRefused(f"{text!r} is already a module every bothost install has, which your package "
                          f"would shadow or be shadowed by; for example {'my_' + text!r}")
    if importlib.util.find_spec(text) is not None:
        raise NameRefused(f"a module named {text!r} is already installed in this Python; "
                          f"choose another name (or `pip uninstall` the old package first)")
    class_name = "".join(part.capitalize() for part in text.split("_") if part)
    return PluginNames(kind=kind, name=text, class_name=class_name)
