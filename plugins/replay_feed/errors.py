"""The one error the replay feed raises: a data file it cannot use at all.

Bad *rows* are never errors (they are skipped and counted, see ``reader.py``); a ``DataError``
means the whole file is unusable: it does not exist, it is neither CSV nor Parquet, or its
header lacks a time column or the price columns. It is an :class:`bothost.errors.InputError`,
so the CLI prints it without a traceback and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path

from bothost.errors import InputError


class DataError(InputError):
    """A replay data file that cannot be read. ``str()`` is ``FILE:LINE: message`` (or
    ``FILE: message`` when no line applies), followed by ``\\n  hint: ...`` when there is a hint."""

    def __init__(self, message: str, path: str | Path, line: int | None = None, hint: str | None = None):
        super().__init__(message, path, line, hint=hint)

    def __reduce__(self):  # picklable with its arguments
        return (self.__class__, (self.message, self.path, self.line, self.hint))
