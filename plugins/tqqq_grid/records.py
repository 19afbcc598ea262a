"""The records the book and reconstruct share: a lot, a live BUY, and reconstruct's result."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from bothost.model import OrderRequest

from .grid import QueueSlot
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
    #: the SELL is parked at the broker (IB Inactive): still the lot's one SELL, not replaced
    sell_inactive: bool = False

    def as_dict(self) -> dict:
        return {
            "level": self.level,
            "quantity": self.quantity,
            "purchase": format_price(self.purchase),
            "sell_price": format_price(self.sell_price),
            "buy_order_id": self.buy_order_id,
            "sell_order_id": self.sell_order_id,
            **({"sell_inactive": True} if self.sell_inactive else {}),
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
    perm_id: str = ""  # the broker's stable id, once known (from its fills or the snapshot)
    inactive: bool = False  # parked at the broker (IB Inactive): kept, warned about

    @property
    def stable_id(self) -> str:
        return self.perm_id or self.order_id

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled


class AlertSpec(NamedTuple):
    """A critical finding (S1): reconstruct places nothing when there is one."""

    title: str
    details: str
    reset_steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlannedOrder:
    """An order reconstruct wants placed: a SELL for ``lot`` (R2) or a BUY for ``slot`` (R3)."""

    request: OrderRequest
    lot: Lot | None = None
    slot: QueueSlot | None = None


@dataclass(frozen=True)
class ReconstructResult:
    anchor: Decimal | None
    anchor_source: str
    #: every open lot; those with ``sell_order_id is None`` get their SELL from ``to_place``
    lots: tuple[Lot, ...]
    #: the live Level-0 order, kept with its placed time (R1 timeout continues)
    entry_order: LiveBuy | None
    #: live BUYs kept: queue orders that match the desired queue, and partially filled BUYs
    live_buys: tuple[LiveBuy, ...]
    #: live BUYs to cancel (their fills may still arrive until the cancel is confirmed)
    cancelled_buys: tuple[LiveBuy, ...]
    to_place: tuple[PlannedOrder, ...]
    alerts: tuple[AlertSpec, ...]
    findings: tuple[str, ...]
    desired: tuple[QueueSlot, ...] = ()
    position: int = 0
    #: BUYs of ours whose cancel the broker has not confirmed yet (PENDING_CANCEL): not live, not
    #: cancelled again, but their fills still count until the broker says CANCELLED
    cancel_pending: tuple[LiveBuy, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.alerts

    @property
    def l0_order(self) -> LiveBuy | None:
        return self.entry_order

    @property
    def to_cancel(self) -> tuple[str, ...]:
        return tuple(b.order_id for b in self.cancelled_buys)

    @property
    def orders_to_place(self) -> tuple[OrderRequest, ...]:
        return tuple(p.request for p in self.to_place)
