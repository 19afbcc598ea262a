"""Logging: the full record in the state folder's ``bot_log.txt``, a concise view on the terminal."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

LOG_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"


def setup_logging(log_file: Path | None, console: Console, verbose: bool = False) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_bothost", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    term = RichHandler(console=console, show_path=False, show_time=False, markup=False,
                       level=logging.INFO if verbose else logging.WARNING)
    term._bothost = True
    root.addHandler(term)
    if log_file is not None:
        if not log_file.exists():
            os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT, 0o600))
        fh = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        fh.setFormatter(logging.Formatter(LOG_FORMAT))
        fh.setLevel(logging.DEBUG if verbose else logging.INFO)
        fh._bothost = True
        root.addHandler(fh)
