"""sim_alpaca: Alpaca's market data service (stock stream and historical bars) on replayed data.

The real ``alpaca-py`` 0.44 clients (``StockDataStream``, ``StockHistoricalDataClient``) cannot tell
it from ``stream.data.alpaca.markets`` / ``data.alpaca.markets``; behind it is the same replay of a
data file that ``bothost backtest`` makes (``replay_feed.FileFeed``). ``CombinedSim`` puts it in
front of the TWS simulator's venue: one replay clock, both protocols. See ``docs/sim-alpaca.md``.

Names are imported lazily, so that mounting the CLI commands stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SimAlpaca": ".server",
    "SimAlpacaThread": ".server",
    "CombinedSim": ".combined",
    "AlpacaFault": ".faults",
    "parse_fault": ".faults",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
