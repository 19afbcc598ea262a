"""A third-party bothost plugin, as a package outside the repository would ship it.

* strategy ``demo_strategy``: watches its symbol, places nothing, and leaves evidence that the
  host really called it (a tick count in its backup state and in ``bothost status``).
* broker ``demo_live_broker``: a broker that talks to no one. Its settings say whether they
  point at a live account (``is_live()``, read by the host's S2 live guard). It matches orders
  itself like the simulated venue (there never are any), so it can drive a replay feed.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from bothost.hookspecs import BrokerUnavailable, hookimpl
from bothost.model import BrokerSnapshot

LIVE_PORTS = (7496, 4001)


class DemoStrategyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str


class DemoStrategy:
    wants_every_tick = True

    def __init__(self, config: DemoStrategyConfig, env):
        self.symbol = config.symbol
        self.ticks = 0
        self.last_price = None

    def _publish(self, ctx) -> None:
        facts = {"ticks_seen": self.ticks, "last_price_cents": self.last_price}
        ctx.save_state(dict(facts))
        ctx.record("demo", dict(facts))

    @hookimpl
    def reconstruct(self, ctx, snapshot) -> None:
        saved = ctx.load_state() or {}
        self.ticks = int(saved.get("ticks_seen", 0))

    @hookimpl
    def on_tick(self, ctx, tick) -> None:
        self.ticks += 1  # and nothing is placed
        self.last_price = tick.price

    @hookimpl
    def on_stop(self, ctx) -> None:
        self._publish(ctx)


class DemoLiveBrokerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int
    unreachable: bool = False  # for tests: the gateway never answers

    def is_live(self) -> bool:
        return self.port in LIVE_PORTS


class DemoLiveBroker:
    """Broker + MatchingVenue with no account behind it: no orders, no executions."""

    def __init__(self, config: DemoLiveBrokerConfig, env):
        self.config = config
        self._clock: int | None = None
        self._emit = lambda event: None

    # Broker
    def bind(self, emit) -> None:
        self._emit = emit

    async def connect(self) -> None:
        if self.config.unreachable:
            raise BrokerUnavailable(f"no gateway answered at {self.config.host}:{self.config.port} after 3 tries")

    async def snapshot(self, executions_since_ns):
        return BrokerSnapshot(time_ns=self._clock or 0)

    def place(self, order) -> str:
        raise RuntimeError("demo_live_broker accepts no orders")

    def cancel(self, order_id: str) -> None:
        pass

    async def close(self) -> None:
        pass

    # MatchingVenue
    @property
    def clock_ns(self):
        return self._clock

    def match(self, time_ns: int, price: int) -> Iterator:
        self._clock = time_ns
        return iter(())

    def quiet_band(self) -> tuple[int, int]:
        return -1, 1 << 62

    def advance(self, time_ns: int, price: int) -> None:
        self._clock = time_ns

    def checkpoint(self) -> None:
        pass

    def iter_executions(self, since_ns=None) -> Iterator:
        return iter(())


@hookimpl
def bothost_register(registry) -> None:
    registry.add_strategy("demo_strategy", DemoStrategyConfig, DemoStrategy,
                          summary="third-party demo: watches, places nothing")
    registry.add_broker("demo_live_broker", DemoLiveBrokerConfig, DemoLiveBroker,
                        summary="third-party demo broker with a live-port guard")
