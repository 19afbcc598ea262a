"""Broker-neutral values that cross plugin boundaries.

Every event the engine dispatches is one of these frozen, slotted dataclasses. Prices that a
strategy trades at are `Decimal` (money is exact at the boundary); the per-tick hot path carries
prices as integer cents, which is what a US equity venue trades in anyway. Times are integer
nanoseconds since the Unix epoch, UTC, so that ordering and arithmetic are exact and cheap.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
NS_PER_SECOND = 1_000_000_000


def round2(value: Decimal) -> Decimal:
    """Round money to whole cents, half up (never float `round()`, which rounds half to even)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def cents_to_decimal(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def decimal_to_cents(value: Decimal) -> int:
    """Exact for prices already on the cent grid; other prices are rounded half up first."""
    return int(round2(value) * 100)


class Side(str, enum.Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(str, enum.Enum):
    LIMIT = "LMT"
    #: limit-if-touched: dormant until the price touches `aux`, then a limit at `limit`.
    LIMIT_IF_TOUCHED = "LIT"


class OrderStatus(str, enum.Enum):
    SUBMITTED = "submitted"  # accepted and working (may be partially filled)
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # the broker refused it; `OrderUpdate.message` says why


@dataclass(frozen=True, slots=True)
class Tick:
    """One market-data print. `price` is the trade price in cents (for quote data, the midpoint)."""

    time_ns: int
    symbol: str
    price: int
    size: int = 0
    bid: int | None = None
    ask: int | None = None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a strategy asks the broker to do. `ref` is the order's tag (IB `orderRef`)."""

    symbol: str
    side: Side
    quantity: int
    limit: Decimal
    order_type: OrderType = OrderType.LIMIT
    aux: Decimal | None = None
    tif: str = "GTC"
    outside_rth: bool = True
    ref: str = ""


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order working at the broker, as the broker reports it (any client id)."""

    order_id: str
    symbol: str
    side: Side
    quantity: int
    filled: int
    limit: Decimal
    order_type: OrderType = OrderType.LIMIT
    aux: Decimal | None = None
    ref: str = ""
    placed_ns: int = 0
    client_id: int | None = None
    avg_fill_price: Decimal | None = None

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution. `order_filled` / `order_avg_price` describe the whole order after it."""

    exec_id: str
    order_id: str
    time_ns: int
    symbol: str
    side: Side
    quantity: int
    price: Decimal
    commission: Decimal
    ref: str
    order_quantity: int
    order_filled: int
    order_avg_price: Decimal

    @property
    def order_complete(self) -> bool:
        return self.order_filled >= self.order_quantity


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A change of an order's status (submitted, cancelled, rejected, filled)."""

    order_id: str
    time_ns: int
    status: OrderStatus
    symbol: str
    side: Side
    quantity: int
    filled: int
    ref: str = ""
    avg_fill_price: Decimal | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    quantity: int
    avg_cost: Decimal


@dataclass(frozen=True, slots=True)
class BrokerSnapshot:
    """Everything reconstruct needs, read from the broker in one go.

    `open_orders` are those of *all* client ids, `executions` those since the time asked for
    (oldest first), `positions` the account's. `time_ns` is the broker's clock when it was read.
    """

    time_ns: int
    open_orders: tuple[OpenOrder, ...] = ()
    executions: tuple[Fill, ...] = ()
    positions: tuple[Position, ...] = ()

    def position(self, symbol: str) -> int:
        return sum(p.quantity for p in self.positions if p.symbol == symbol)


class ConnectionState(str, enum.Enum):
    LOST = "lost"
    RESTORED = "restored"


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """The broker or feed lost or regained its connection. After RESTORED the engine reconstructs."""

    time_ns: int
    source: str
    state: ConnectionState
    message: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    """A critical alert (S1): what was found, and how a human resets the bot."""

    title: str
    details: str
    reset_steps: tuple[str, ...] = ()
    source: str = ""
    time_ns: int = 0
    extra: dict = field(default_factory=dict, compare=False)

    def render(self) -> str:
        lines = [f"CRITICAL: {self.title}", self.details]
        if self.reset_steps:
            lines.append("Manual reset:")
            lines += [f"  {i}. {step}" for i, step in enumerate(self.reset_steps, 1)]
        return "\n".join(lines)
