"""Errors a user can act on, and the exit status each one gives.

A plugin raises a subclass of :class:`InputError` for a bad file of its own (a lot map, a data
file): the CLI prints it without a traceback and exits 2, exactly as for a bad config.
"""

from __future__ import annotations

from pathlib import Path

# Exit statuses: a contract (documented in the README) that scripts and supervisors rely on.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_CRITICAL = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130


class InputError(Exception):
    """Bad input a user must fix: prints ``FILE:LINE: message`` and a hint, exit status 2."""

    exit_status = EXIT_BAD_INPUT

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 hint: str | None = None, col: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.col = col
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
                if self.col is not None:
                    where += f":{self.col}"
            where += ": "
        text = where + self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text
