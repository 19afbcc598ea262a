"""``ctx``: the narrow door from one strategy back into the host (see hookspecs.StrategyContext)."""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn

from .hookspecs import ChoosesTicks, CriticalStop
from .model import Alert, Instrument, OrderRequest, units_to_price

if TYPE_CHECKING:
    from .engine import Engine


class HostContext:
    """One per strategy instance. Everything it does goes through the engine, in order."""

    def __init__(self, engine: Engine, strategy_id: str, symbol: str | None, instance: object,
                 instrument: Instrument | None = None):
        self.engine = engine
        self.strategy_id = strategy_id
        self.symbol = symbol
        self.instance = instance
        self.instrument = instrument or Instrument(symbol or "")  # cents unless declared
        self.log = logging.getLogger(f"bothost.strategy.{strategy_id}")
        # Safe default for a strategy that never says what it needs: see every tick.
        self.every_tick: bool = instance.wants_every_tick if isinstance(instance, ChoosesTicks) else True
        self.wakes: list[int] = []  # heap of times at which on_tick must run
        self.records: dict[str, Any] = {}
        self.tag_prefix = f"{strategy_id}:"

    @property
    def now_ns(self) -> int:
        return self.engine.now_ns

    def price(self, units: int) -> Decimal:
        return units_to_price(units, self.instrument.increment)

    def units(self, price: Decimal) -> int:
        return self.instrument.units(price)

    def place(self, order: OrderRequest) -> str:
        return self.engine.place(self, order)

    def cancel(self, order_id: str) -> None:
        self.engine.cancel(self, order_id)

    def want_every_tick(self, wanted: bool) -> None:
        self.every_tick = wanted

    def wake_at(self, time_ns: int) -> None:
        heapq.heappush(self.wakes, time_ns)

    def set_timer(self, name: str, time_ns: int) -> None:
        self.engine.timers.set(self, name, time_ns)

    def save_state(self, state: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        self.engine.state.put(self.strategy_id, state)
        self.engine.state_changed()

    def load_state(self) -> dict[str, Any] | None:
        return self.engine.state.get(self.strategy_id)

    def alert(self, title: str, details: str, reset_steps: list[str] | tuple[str, ...] = ()) -> NoReturn:
        alert = Alert(title, details, tuple(reset_steps), source=self.strategy_id, time_ns=self.now_ns)
        self.engine.raise_alert(alert, self)
        raise CriticalStop(alert)

    def warn(self, title: str, details: str) -> None:
        self.engine.warn(Alert(title, details, source=self.strategy_id, time_ns=self.now_ns, level="warning"), self)

    def record(self, key: str, value: Any) -> None:
        self.records[key] = value  # a callable is evaluated when the status is written

    def recorded(self) -> dict[str, Any]:
        return {k: (v() if callable(v) else v) for k, v in self.records.items()}


if TYPE_CHECKING:
    from .hookspecs import StrategyContext

    def _the_door_is_the_documented_one(ctx: HostContext) -> StrategyContext:
        return ctx  # mypy (tests/test_static.py) proves HostContext is what hookspecs promises
