"""Moving averages over the last prices and where they cross (pure: no host, no broker)."""

from __future__ import annotations

from collections import deque
from enum import Enum


class Cross(Enum):
    UP = "up"  # the fast average went from at or below the slow one to above it
    DOWN = "down"  # ... from at or above it to below it


class Crossover:
    """Simple moving averages of the last ``fast`` and ``slow`` prices (integer cents).

    :meth:`add` takes the next price and says whether the averages crossed on it. Nothing is
    said until ``slow`` prices have been seen (a warm-up), so the first signal is a real cross.
    """

    def __init__(self, fast: int, slow: int):
        if not 0 < fast < slow:
            raise ValueError(f"need 0 < fast < slow, got fast={fast}, slow={slow}")
        self.fast, self.slow = fast, slow
        self._prices: deque[int] = deque(maxlen=slow)
        self._fast_sum = self._slow_sum = 0
        self._above: bool | None = None  # fast > slow at the last price, once warmed up

    @property
    def warm(self) -> bool:
        return len(self._prices) == self.slow

    def averages(self) -> tuple[float, float] | None:
        """(fast, slow) averages in cents, once warmed up."""
        if not self.warm:
            return None
        return self._fast_sum / self.fast, self._slow_sum / self.slow

    def add(self, price: int) -> Cross | None:
        prices = self._prices
        if len(prices) == self.slow:
            self._slow_sum -= prices[0]
        if len(prices) >= self.fast:
            self._fast_sum -= prices[-self.fast]
        prices.append(price)
        self._slow_sum += price
        self._fast_sum += price
        if not self.warm:
            return None
        # Compared as sums scaled to a common length: exact in integers, no float ties.
        diff = self._fast_sum * self.slow - self._slow_sum * self.fast
        if diff == 0:
            return None  # touching is not crossing: wait for one side
        above = diff > 0
        was, self._above = self._above, above
        if was is None or was == above:
            return None
        return Cross.UP if above else Cross.DOWN
