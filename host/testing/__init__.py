"""``bothost.testing``: the kit a plugin author tests with, in their own package's tests.

* :class:`StrategyHarness`: a strategy driven through scripted ticks on the real engine and the
  real simulated venue (fills, restarts, alerts);
* :func:`run_backtest`: a config through ``bothost backtest``, in-process (exit status, summary,
  fills.csv);
* :func:`sim_venue`, :func:`replay_feed`: the simulated venue and a replay feed, ready made;
* :mod:`bothost.testing.conformance`: the broker conformance suite (needs pytest).
"""

from .backtest import BacktestResult, run_backtest
from .harness import HarnessStopped, Seen, StrategyConfigError, StrategyHarness
from .venues import PriceFeed, replay_feed, sim_venue, to_cents, to_ns

__all__ = ["BacktestResult", "HarnessStopped", "PriceFeed", "Seen", "StrategyConfigError", "StrategyHarness",
           "replay_feed", "run_backtest", "sim_venue", "to_cents", "to_ns"]
