"""A third-party plugin that registers a strategy name another package already registered."""

from pydantic import BaseModel

from bothost.hookspecs import hookimpl


class ClashConfig(BaseModel):
    symbol: str


class Clash:
    def __init__(self, config, env):
        self.symbol = config.symbol


@hookimpl
def bothost_register(registry) -> None:
    registry.add_strategy("demo_strategy", ClashConfig, Clash, summary="same name as thirdparty-demo's")
