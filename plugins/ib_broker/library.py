"""Which TWS API client the plugin drives: ib_insync (the design card's choice) or ib_async,
its maintained fork with the same API. Imported only when a broker is built."""

from __future__ import annotations

import importlib
from types import ModuleType

LIBRARIES = ("ib_insync", "ib_async")


def load(name: str) -> ModuleType:
    """The client library's top-level module (``IB``, ``Stock``, ``Order``, ``ExecutionFilter``)."""
    if name not in LIBRARIES:
        raise ValueError(f"client_library must be one of {', '.join(LIBRARIES)}, not {name!r}")
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        from bothost.errors import InputError

        raise InputError(f"client_library {name!r} is not installed ({exc})",
                         hint=f"pip install {name.replace('_', '-')}, or choose the other client library") from exc
