"""Broker-neutral values that cross plugin boundaries.

Every event the engine dispatches is one of these frozen, slotted dataclasses. Prices that a
strategy trades at are `Decimal` (money is exact at the boundary); the per-tick hot path carries
prices as integers: *units* of the instrument's price increment (:class:`Instrument`; cents, the
default, for a US stock; 0.0001 for an FX or crypto pair priced to four decimals). Times are
integer nanoseconds since the Unix epoch, UTC, so that ordering and arithmetic are exact and cheap.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .quickinit import quick_init

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


def realized_pnl(quantity: int, sell_price: Decimal, purchase: Decimal) -> Decimal:
    """Gross P&L of selling ``quantity`` shares of a lot bought at ``purchase``: the one
    definition the strategy's book, its reconstruct and the run's report all use."""
    return quantity * (sell_price - purchase)


def float_to_cents(value: float) -> int | None:
    """A price a client library decoded as a float, in whole cents, half up: exact for the float
    of a printed price (``97.03`` -> 9703, ``97.035`` -> 9704). None when it is not a positive
    finite number (a bad tick, S3)."""
    return float_to_units(value, CENT)


# --------------------------------------------------------------------------------------------
# Instruments: the price increment a symbol trades in
# --------------------------------------------------------------------------------------------

#: The finest increment an instrument may declare: eight decimals (a satoshi). Finer steps are
#: not prices any venue quotes, and float data read to that precision stays exact (see the
#: replay feed's ``to_units``).
MAX_INCREMENT_DECIMALS = 8
_ONE = Decimal(1)


def increment_problem(value: Decimal) -> str:
    """Why ``value`` cannot be a price increment, or '' when it can: a finite decimal above 0
    with at most :data:`MAX_INCREMENT_DECIMALS` decimals. Any step is allowed, not only powers of
    ten (0.0001, 0.005, 0.25 and 5 all are)."""
    if not value.is_finite() or value <= 0:
        return "a price increment must be a number above 0"
    if value.normalize().as_tuple().exponent < -MAX_INCREMENT_DECIMALS:  # type: ignore[operator]
        return f"a price increment has at most {MAX_INCREMENT_DECIMALS} decimals"
    return ""


def plain_increment(value: Decimal) -> Decimal:
    """``value`` written with as few decimals as it needs and never in exponent form
    (``0.010`` -> ``0.01``, ``5E+1`` -> ``50``): prices are written with the increment's decimals."""
    d = value.normalize()
    return d.quantize(_ONE) if d.as_tuple().exponent > 0 else d  # type: ignore[operator]


@dataclass(frozen=True, slots=True)
class Instrument:
    """A symbol and the step its prices move in (``increment``, a Decimal; cents by default).

    Every integer price the host and its plugins hand each other (``Tick.price``, a venue's
    ``match(time_ns, price)``, ``quiet_band``, a replay chunk's ``price``) counts *units* of
    this increment: with ``increment=Decimal("0.0001")``, 12345 units are 1.2345. Orders carry
    Decimal limits; a broker converts them with :meth:`exact_units` and refuses a limit that is
    not a whole number of increments (the strategy rounds, with :meth:`units` and :meth:`price`).
    """

    symbol: str
    increment: Decimal = CENT

    def price(self, units: int) -> Decimal:
        """``units`` increments as a Decimal price (exact, with the increment's decimals)."""
        return units_to_price(units, self.increment)

    def units(self, price: Decimal) -> int:
        """The nearest whole number of increments to ``price``, half up (exact when ``price`` is
        on the grid)."""
        return price_to_units(price, self.increment)

    def exact_units(self, price: Decimal) -> int | None:
        """``price`` in increments, or None when it is not a positive whole number of them."""
        return exact_units(price, self.increment)

    def round(self, price: Decimal) -> Decimal:
        """``price`` rounded half up to the increment: a limit the venue accepts."""
        return self.price(self.units(price))

    def units_of_float(self, value: float) -> int | None:
        """A price a client library decoded as a float, in increments, half up (exact for the
        float of a printed price); None when it is not a positive finite number (a bad tick)."""
        return float_to_units(value, self.increment)


def instrument_for(instruments: Mapping[str, Instrument], symbol: str) -> Instrument:
    """``symbol``'s declared instrument, else the default: priced in cents (a US stock)."""
    found = instruments.get(symbol)
    return found if found is not None else Instrument(symbol, CENT)


@functools.lru_cache(maxsize=65536)
def units_to_price(units: int, increment: Decimal = CENT) -> Decimal:
    """Cached: a venue writes the same few hundred prices over and over."""
    if increment == CENT:
        return Decimal(units).scaleb(-2)  # the same value and exponent as units x 0.01, faster
    return Decimal(units) * increment


def price_to_units(value: Decimal, increment: Decimal = CENT) -> int:
    """Half up to the nearest increment (``decimal_to_cents`` for any increment)."""
    return int((value / increment).quantize(_ONE, rounding=ROUND_HALF_UP))


@functools.lru_cache(maxsize=65536)
def exact_units(value: Decimal, increment: Decimal = CENT) -> int | None:
    """``value`` in increments, or None if it is not a positive whole number of them. Cached: a
    grid places the same few hundred limits over and over."""
    if not value.is_finite() or value <= 0:
        return None
    units = value * 100 if increment == CENT else value / increment
    return int(units) if units == units.to_integral_value() else None


def float_to_units(value: float, increment: Decimal = CENT) -> int | None:
    """A price decoded as a float, in whole units of ``increment``, half up (see
    :func:`float_to_cents`); None when it is not a positive finite number."""
    try:
        d = Decimal(repr(float(value)))
    except (TypeError, ValueError, ArithmeticError):
        return None
    if not d.is_finite() or d <= 0:
        return None
    scaled = d * 100 if increment == CENT else d / increment  # cents: a multiply, as before
    return int(scaled.quantize(_ONE, rounding=ROUND_HALF_UP))


class Side(str, enum.Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(str, enum.Enum):
    LIMIT = "LMT"
    #: limit-if-touched: dormant until the price touches `aux`, then a limit at `limit`.
    LIMIT_IF_TOUCHED = "LIT"


class OrderStatus(str, enum.Enum):
    """An order's state, in the vocabulary of an asynchronous broker (broker-neutral).

    Working: PENDING_SUBMIT (sent, not yet acknowledged), PRE_SUBMITTED (accepted, held by the
    broker until it can go to the exchange: an untriggered LIT, say), SUBMITTED (working; may be
    partially filled). PENDING_CANCEL: a cancel was asked for and is not confirmed; the order is
    no longer counted as live, but fills can still arrive until CANCELLED. INACTIVE: accepted but
    parked (an exchange or margin check); it may resume or stay parked, so its shares and its
    place in the book are kept. Final: FILLED, CANCELLED, REJECTED.
    """

    PENDING_SUBMIT = "pending_submit"
    PRE_SUBMITTED = "pre_submitted"
    SUBMITTED = "submitted"  # accepted and working (may be partially filled)
    PENDING_CANCEL = "pending_cancel"
    INACTIVE = "inactive"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # the broker refused it; `OrderUpdate.message` says why

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def is_live(self) -> bool:
        """Working at the broker (or parked there): counts as a live order for reconstruct."""
        return self in _LIVE


_FINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})
_LIVE = frozenset({OrderStatus.PENDING_SUBMIT, OrderStatus.PRE_SUBMITTED, OrderStatus.SUBMITTED,
                   OrderStatus.INACTIVE})


@quick_init
@dataclass(frozen=True, slots=True)
class Tick:
    """One market-data print. `price` is the trade price in units of the symbol's
    :class:`Instrument` increment, cents by default (for quote data, the midpoint)."""

    time_ns: int
    symbol: str
    price: int
    size: int = 0
    bid: int | None = None
    ask: int | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a strategy asks the broker to do. `ref` is the order's tag (the broker's order reference)."""

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
    """An order working at the broker, as the broker reports it (any client id).

    ``order_id`` is the broker adapter's key for the order (what ``Broker.place`` returned and
    what ``Broker.cancel`` takes); ``perm_id`` is the broker's stable, account-wide identity
    (where order ids are per client id and can repeat across clients), empty when the
    broker has no such thing. Reconstruct matches orders and executions by :attr:`stable_id`.
    ``placed_ns`` is 0 when the broker does not report when the order was placed (some do not).
    """

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
    status: OrderStatus = OrderStatus.SUBMITTED
    perm_id: str = ""

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled

    @property
    def stable_id(self) -> str:
        return self.perm_id or self.order_id

    @property
    def live(self) -> bool:
        """Still working (or parked) and not being cancelled: PENDING_CANCEL is not live."""
        return self.status.is_live


@quick_init
@dataclass(frozen=True, slots=True)
class Fill:
    """One execution. `order_filled` / `order_avg_price` describe the whole order after it.

    ``commission`` is None when the broker reports it later (a separate commission report
    after the execution, matched by ``exec_id``): the fill is booked at once and its
    commission arrives as a :class:`CommissionReport`. ``exec_id`` is unique account-wide.
    """

    exec_id: str
    order_id: str
    time_ns: int
    symbol: str
    side: Side
    quantity: int
    price: Decimal
    commission: Decimal | None
    ref: str
    order_quantity: int
    order_filled: int
    order_avg_price: Decimal
    perm_id: str = ""

    @property
    def order_complete(self) -> bool:
        return self.order_filled >= self.order_quantity

    @property
    def stable_id(self) -> str:
        """The order's account-wide identity (``perm_id``, else ``order_id``)."""
        return self.perm_id or self.order_id


@dataclass(frozen=True, slots=True)
class ExecutionColumns:
    """A run of executions, oldest first, as one sequence per :class:`Fill` field (all of equal
    length): how a broker that keeps many executions hands them over for fills.csv without an
    object per execution (:class:`~bothost.hookspecs.KeepsExecutionColumns`)."""

    exec_id: Sequence[str]
    order_id: Sequence[str]
    time_ns: Sequence[int]
    symbol: Sequence[str]
    side: Sequence[Side]
    quantity: Sequence[int]
    price: Sequence[Decimal]
    commission: Sequence[Decimal]
    ref: Sequence[str]
    order_quantity: Sequence[int]
    order_filled: Sequence[int]
    order_avg_price: Sequence[Decimal]


@quick_init
@dataclass(frozen=True, slots=True)
class CommissionReport:
    """The commission of an execution reported after the fill itself (matched by ``exec_id``)."""

    exec_id: str
    commission: Decimal
    time_ns: int = 0


@quick_init
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
    perm_id: str = ""
    #: the broker's own code for a rejection or an error (a number the broker plugin documents), 0 if none
    code: int = 0


@dataclass(frozen=True, slots=True)
class Position:
    """A position of the account. Only ``sec_type`` "STK" positions are shares of ``symbol``:
    an option or a future on a stock is not the stock."""

    symbol: str
    quantity: int
    avg_cost: Decimal
    sec_type: str = "STK"


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
    #: the client id the snapshot was read by, None for a broker without client ids: the
    #: fills of another client's orders are reported to that client only
    client_id: int | None = None

    def position(self, symbol: str) -> int:
        """Shares of ``symbol`` held (stock positions only)."""
        return sum(p.quantity for p in self.positions if p.symbol == symbol and p.sec_type == "STK")


class ConnectionState(str, enum.Enum):
    LOST = "lost"
    RESTORED = "restored"


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """The broker or feed lost or regained its connection.

    ``origin`` is set by the engine to "broker" or "feed" from the door the event came in by
    (a plugin need not set it). While the broker is down the engine holds ticks and timers
    (nothing can be placed through a dead socket); after the broker's RESTORED it reconstructs
    before anything else. A feed's LOST/RESTORED only informs: the broker's view is unchanged.
    """

    time_ns: int
    source: str
    state: ConnectionState
    message: str = ""
    origin: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert: a critical one (S1: what was found, and how a human resets the bot), or a
    warning the notifiers deliver while the bot runs on."""

    title: str
    details: str
    reset_steps: tuple[str, ...] = ()
    source: str = ""
    time_ns: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    #: "critical" stops the host (S1); "warning" only tells the notifiers (a stale feed, say)
    level: str = "critical"

    @property
    def critical(self) -> bool:
        return self.level == "critical"

    def render(self) -> str:
        lines = [f"{self.level.upper()}: {self.title}", self.details]
        if self.reset_steps:
            lines.append("Manual reset:")
            lines += [f"  {i}. {step}" for i, step in enumerate(self.reset_steps, 1)]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class HeldLot:
    """One lot a strategy holds: ``quantity`` shares bought at ``price`` (the lot's purchase
    price, which its realized P&L is measured from). ``exit_price`` is where the order that
    closes it rests (a grid's SELL), None when there is none. ``level`` and ``label`` are the
    strategy's own words for where the lot sits (a grid's level), shown as they are."""

    quantity: int
    price: Decimal
    level: int | None = None
    label: str = ""
    exit_price: Decimal | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (prices as text)."""
        return {"quantity": self.quantity, "price": str(self.price), "level": self.level, "label": self.label,
                "exit_price": None if self.exit_price is None else str(self.exit_price)}


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """An order of the strategy working at the broker, as the strategy sees it: ``label`` is its
    own word for the order's role (the grid says "entry" or "queue"), ``level`` where it sits."""

    order_id: str
    side: Side
    quantity: int
    price: Decimal
    filled: int = 0
    level: int | None = None
    label: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the price as text)."""
        return {"order_id": self.order_id, "side": self.side.value, "quantity": self.quantity,
                "price": str(self.price), "filled": self.filled, "level": self.level, "label": self.label}


@dataclass(frozen=True, slots=True)
class PriceLevel:
    """One price a strategy trades at, by its number (a grid's trigger for level ``level``)."""

    level: int
    price: Decimal

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the price as text)."""
        return {"level": self.level, "price": str(self.price)}


@dataclass(frozen=True, slots=True)
class Holdings:
    """What a strategy holds and has working, in the host's words (see
    ``hookspecs.ReportsHoldings``): the host counts lots, marks the position to market and draws
    the status page's ladder from this, never from a strategy's own records.

    ``shares`` is the strategy's position in ``symbol``; ``lots`` how it is made up (their
    quantities add up to ``shares`` for a strategy that books lots, or are empty for one that
    does not); ``open_cost`` what the held shares cost (sum of quantity x purchase price);
    ``orders`` its working orders; ``levels`` the prices it trades at, if it has a ladder."""

    symbol: str
    shares: int
    lots: tuple[HeldLot, ...] = ()
    open_cost: Decimal = Decimal(0)
    orders: tuple[WorkingOrder, ...] = ()
    levels: tuple[PriceLevel, ...] = ()

    @classmethod
    def of_lots(cls, symbol: str, lots: tuple[HeldLot, ...] | list[HeldLot],
                orders: tuple[WorkingOrder, ...] | list[WorkingOrder] = (),
                levels: tuple[PriceLevel, ...] | list[PriceLevel] = ()) -> Holdings:
        """Holdings made of ``lots``: shares and open cost are their sums."""
        lots = tuple(lots)
        return cls(symbol, sum(lot.quantity for lot in lots), lots,
                   sum((lot.quantity * lot.price for lot in lots), Decimal(0)), tuple(orders), tuple(levels))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (money as text), as status.json and bot_state.json keep it."""
        return {"symbol": self.symbol, "shares": self.shares, "open_cost": str(self.open_cost),
                "lots": [lot.as_dict() for lot in self.lots], "orders": [o.as_dict() for o in self.orders],
                "levels": [lv.as_dict() for lv in self.levels]}

    @classmethod
    def from_dict(cls, data: object) -> Holdings | None:
        """Back from :meth:`as_dict`; None for anything else (a file from another version)."""
        if not isinstance(data, dict) or not isinstance(data.get("shares"), int):
            return None

        def level(d: dict[str, Any]) -> int | None:
            value = d.get("level")
            return value if type(value) is int else None

        def price(value: object) -> Decimal | None:
            return None if value is None else Decimal(str(value))

        try:
            lots = tuple(HeldLot(int(d["quantity"]), Decimal(str(d["price"])), level(d), str(d.get("label") or ""),
                                 price(d.get("exit_price"))) for d in data.get("lots") or ())
            orders = tuple(WorkingOrder(str(d["order_id"]), Side(d["side"]), int(d["quantity"]), Decimal(str(d["price"])),
                                        int(d.get("filled") or 0), level(d), str(d.get("label") or ""))
                           for d in data.get("orders") or ())
            levels = tuple(PriceLevel(int(d["level"]), Decimal(str(d["price"]))) for d in data.get("levels") or ())
            return cls(str(data.get("symbol") or ""), data["shares"], lots, Decimal(str(data.get("open_cost", "0"))),
                       orders, levels)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            return None
