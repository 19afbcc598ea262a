"""The one exception type the config layer raises, and the position it points at.

Every mistake a user can make in a config file ends up as a :class:`ConfigError` whose text
is ``FILE:LINE:COL: message`` (the form editors and terminals turn into a clickable link),
optionally followed by a ``  hint: ...`` line saying how to fix it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

#: The pseudo file name of values given on the command line with ``--set key.path=value``.
SET_FILE = "--set"
SET_HINT = "write --set key.path=value, for example --set strategies.0.profit_target=2%"


class Pos(NamedTuple):
    """Where something was written: file (as shown to the user), 1-based line and column."""

    file: str
    line: int
    col: int


class ConfigError(Exception):
    """A config the user must fix. ``str()`` is ``FILE:LINE:COL: message`` [+ ``\\n  hint: ...``]."""

    def __init__(
        self,
        message: str,
        path: str | Path | None = None,
        line: int | None = None,
        col: int | None = None,
        hint: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        # A file without a position still gets one: the format promises FILE:LINE:COL.
        self.line = line if line is not None else (1 if path is not None else None)
        self.col = col if col is not None else (1 if path is not None else None)
        self.hint = hint

    @classmethod
    def at(cls, pos: Pos, message: str, hint: str | None = None) -> ConfigError:
        return cls(message, path=pos.file, line=pos.line, col=pos.col, hint=hint)

    @property
    def pos(self) -> Pos | None:
        return None if self.path is None else Pos(self.path, self.line, self.col)

    def __str__(self) -> str:
        text = self.message if self.path is None else f"{self.path}:{self.line}:{self.col}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text
