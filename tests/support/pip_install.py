"""pip into the test venv, for the tests that install packages as a user would (examples/,
`bothost new-plugin` output) and must uninstall them so no other test sees them."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
from collections.abc import Iterable


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=300)


def installed(name: str) -> bool:
    try:
        md.distribution(name)
    except md.PackageNotFoundError:
        return False
    return True


def uninstall(names: Iterable[str]) -> None:
    present = [n for n in names if installed(n)]
    if present:
        done = pip("uninstall", "-y", *present)
        assert done.returncode == 0, done.stderr
