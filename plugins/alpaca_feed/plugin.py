"""Registration: the ``alpaca_feed`` feed."""

from __future__ import annotations

from bothost.hookspecs import BuildEnv, hookimpl

from .config import AlpacaFeedConfig

BOTHOST_API = 1  # the bothost plugin API this module was written for (bothost.API_VERSION)


def make_feed(config: AlpacaFeedConfig, env: BuildEnv):
    from .feed import AlpacaFeed

    return AlpacaFeed(config, env)


@hookimpl
def bothost_register(registry) -> None:
    registry.add_feed("alpaca_feed", AlpacaFeedConfig, make_feed,
                      summary="Alpaca real-time trades, quotes or bars through alpaca-py")
