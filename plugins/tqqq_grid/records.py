"""The small mutable records the book and reconstruct share: a lot and a live BUY."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .tags import format_price


@dataclass(slots=True)
class Lot:
    """An open lot: shares bought at one level and not yet sold (R2), protected by one SELL (I1).

    ``quantity`` is what is still held, i.e. the SELL's remaining quantity (R4b).
    ``sell_order_id`` is None only between reconstruct planning a SELL and placing it.
    """

    level: int
    quantity: int
    purchase: Decimal
    sell_price: Decimal
    buy_order_id: str | None = None
    sell_order_id: str | None = None
    sell_ref: str = ""
    #: ``order_filled`` of the SELL as last seen (to drop duplicate executions)
    sold: int = 0
    origin: str = ""  # where it came from, for findings: "buy", "sell-tag", "sell-legacy", "execution", "adopted"

    def as_dict(self) -> dict:
        return {
            "level": self.level,
            "quantity": self.quantity,
            "purchase": format_price(self.purchase),
            "sell_price": format_price(self.sell_price),
            "buy_order_id": self.buy_order_id,
            "sell_order_id": self.sell_order_id,
        }


@dataclass(slots=True)
class LiveBuy:
    """A BUY working at the broker that the strategy owns: the Level-0 entry or a queue order."""

    order_id: str
    level: int | None  # None: an untagged legacy BUY whose level could not be told
    quantity: int
    price: Decimal  # its limit
    filled: int = 0
    avg_price: Decimal | None = None
    ref: str = ""
    is_entry: bool = False  # the Level-0 order (R1)
    placed_ns: int = 0
    cancel_requested: bool = False

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled
