"""Registration: the ``ib_broker`` broker and the ``ib_feed`` feed."""

from __future__ import annotations

from bothost.hookspecs import BuildEnv, hookimpl

from .config import IbBrokerConfig, IbFeedConfig

BOTHOST_API = 1  # the bothost plugin API this module was written for (bothost.API_VERSION)


def make_broker(config: IbBrokerConfig, env: BuildEnv):
    from .broker import IbBroker  # the client library loads only when a broker is built

    return IbBroker(config, env)


def make_feed(config: IbFeedConfig, env: BuildEnv):
    from .feed import IbFeed

    return IbFeed(config, env)


@hookimpl
def bothost_register(registry) -> None:
    registry.add_broker("ib_broker", IbBrokerConfig, make_broker,
                        summary="Interactive Brokers (TWS / IB Gateway) through ib_insync or ib_async")
    registry.add_feed("ib_feed", IbFeedConfig, make_feed,
                      summary="IB tick-by-tick trades over the ib_broker's connection")
