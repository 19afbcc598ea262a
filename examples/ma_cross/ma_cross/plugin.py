"""The ``ma_cross`` strategy: long one lot while a fast moving average is above a slow one.

On a cross up (and flat) it places a BUY, on a cross down (and holding) a SELL of what it holds,
both limits ``slippage`` through the last price so that they fill on the next ticks. Orders are
tagged ``<strategy id>:buy`` / ``<strategy id>:sell``: after a restart the host routes the
broker's orders back to the strategy by that prefix, and :meth:`MaCross.reconstruct` takes the
position and the working orders from the broker. The averages are not the broker's to know:
after a restart they warm up again before the next signal.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bothost.config import NonNegativePercent
from bothost.hookspecs import BuildEnv, StrategyContext, hookimpl
from bothost.model import (
    BrokerSnapshot,
    Fill,
    Holdings,
    OrderRequest,
    OrderUpdate,
    Side,
    Tick,
    round2,
)

from .signals import Cross, Crossover

#: The bothost plugin API this module was written for.
BOTHOST_API = 1


class MaCrossConfig(BaseModel):
    """``strategies: - use: ma_cross`` in a config."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    symbol: str = Field("SPY", min_length=1)
    fast: int = Field(20, gt=0, le=100_000, description="ticks in the fast average")
    slow: int = Field(80, gt=1, le=100_000, description="ticks in the slow average")
    quantity: int = Field(10, gt=0, description="shares bought on a cross up")
    slippage: NonNegativePercent = Field("0.1%", description="how far through the last price the limits go")  # type: ignore[assignment]

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MaCrossConfig:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be fewer ticks than slow ({self.slow})")
        return self


def make_strategy(config: MaCrossConfig, env: BuildEnv) -> MaCross:
    return MaCross(config)


class MaCross:
    wants_every_tick = True  # every price moves the averages

    def __init__(self, config: MaCrossConfig):
        self.config = config
        self.symbol = config.symbol
        self.signals = Crossover(config.fast, config.slow)
        self.held = 0  # shares held (the broker's position, then our fills)
        self.cost = Decimal(0)  # what they cost
        self.working: str | None = None  # the order in flight, one at a time

    @hookimpl
    def reconstruct(self, ctx: StrategyContext, snapshot: BrokerSnapshot) -> None:
        self.held = snapshot.position(self.symbol)
        self.cost = sum((p.quantity * p.avg_cost for p in snapshot.positions
                         if p.symbol == self.symbol and p.sec_type == "STK"), Decimal(0))
        prefix = f"{ctx.strategy_id}:"
        mine = [o for o in snapshot.open_orders if o.symbol == self.symbol and o.live and o.ref.startswith(prefix)]
        self.working = mine[0].order_id if mine else None
        for extra in mine[1:]:
            ctx.cancel(extra.order_id)  # one order at a time; cancelled ones come back as updates
        ctx.record("ma_cross", lambda: {"held": self.held, "working": self.working or "-",
                                        "averages": self.signals.averages()})

    @hookimpl
    def on_tick(self, ctx: StrategyContext, tick: Tick) -> None:
        cross = self.signals.add(tick.price)
        if cross is None or self.working is not None:
            return
        price = ctx.price(tick.price)  # tick.price counts the instrument's increment (cents for a stock)
        if cross is Cross.UP and self.held == 0:
            limit = ctx.instrument.round(price * (1 + self.config.slippage))
            self.working = ctx.place(OrderRequest(self.symbol, Side.BUY, self.config.quantity, limit,
                                                  ref=f"{ctx.strategy_id}:buy"))
        elif cross is Cross.DOWN and self.held > 0:
            limit = ctx.instrument.round(price * (1 - self.config.slippage))
            self.working = ctx.place(OrderRequest(self.symbol, Side.SELL, self.held, max(limit, ctx.instrument.increment),
                                                  ref=f"{ctx.strategy_id}:sell"))

    @hookimpl
    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None:
        if fill.side is Side.BUY:
            self.cost += fill.quantity * fill.price
            self.held += fill.quantity
        else:
            self.cost -= self.cost * min(fill.quantity, self.held) / self.held if self.held else 0
            self.held -= fill.quantity
        if fill.order_complete and fill.order_id == self.working:
            self.working = None

    @hookimpl
    def on_order_update(self, ctx: StrategyContext, update: OrderUpdate) -> None:
        if update.status.is_final and update.order_id == self.working:
            self.working = None  # cancelled or rejected: the next cross tries again


    def holdings(self) -> Holdings:
        """What it holds, for the summary and bothost status (optional: hookspecs.ReportsHoldings)."""
        return Holdings(self.symbol, self.held, open_cost=round2(self.cost))


@hookimpl
def bothost_register(registry) -> None:
    registry.add_strategy("ma_cross", MaCrossConfig, make_strategy,
                          summary="long while a fast moving average is above a slow one")
