"""sim_tws: a TWS-protocol server over the bothost simulated venue.

Real ``ib_insync`` 0.9.86 and ``ib_async`` 2.1.0 clients connect to it as to TWS (server version
176, loopback only) and trade against ``sim_broker.venue.Venue`` on ticks replayed from a data
file exactly as ``bothost backtest`` replays it. See ``docs/sim-tws.md``.

The names below are imported lazily, so that importing ``bothost_plugins.sim_tws.cli`` (to mount
the ``bothost sim-tws`` command) stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SERVER_VERSION": ".codec",
    "Fault": ".faults",
    "FaultSyntaxError": ".faults",
    "parse_fault": ".faults",
    "SimTws": ".server",
    "SimTwsThread": ".server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
