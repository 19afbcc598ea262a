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
    """A replay data file that cannot be read. ``str()`` is ``FILE:LINE[:COL]: message`` (line 1
    for what concerns the whole file, and for Parquet; no line only for a file that is not
    there), followed by ``\\n  hint: ...``."""

    def __init__(self, message: str, path: str | Path, line: int | None = None, hint: str | None = None,
                 col: int | None = None):
        super().__init__(message, path, line, hint=hint, col=col)

    def __reduce__(self):  # picklable with its arguments
        return (self.__class__, (self.message, self.path, self.line, self.hint, self.col))
