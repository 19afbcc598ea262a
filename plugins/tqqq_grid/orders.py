"""The three kinds of order the grid sends, as broker-neutral requests with their R5 tags."""

from __future__ import annotations

from decimal import Decimal

from bothost.model import OrderRequest, OrderType, Side

from .grid import QueueSlot
from .params import TqqqGridConfig
from .tags import entry_tag, queue_tag, sell_tag


def entry_request(params: TqqqGridConfig, strategy_id: str, quantity: int, limit: Decimal, last: Decimal,
                  placed_ns: int | None = None) -> OrderRequest:
    """R1: BUY LMT shares(0) at round2(last x (1 + l0_buffer)); its tag carries when it was
    placed, so R1's timeout survives a restart on a broker that does not report that."""
    return OrderRequest(
        symbol=params.symbol, side=Side.BUY, quantity=quantity, limit=limit, order_type=OrderType.LIMIT,
        tif="GTC", outside_rth=params.outside_rth, ref=entry_tag(strategy_id, last, placed_ns),
    )


def queue_request(params: TqqqGridConfig, strategy_id: str, slot: QueueSlot, anchor: Decimal, ref: str | None = None) -> OrderRequest:
    """R3: BUY shares(level) at T(level), GTC; LIT with aux = limit = trigger, or plain LMT."""
    lit = params.entry_order == "limit_if_touched"
    return OrderRequest(
        symbol=params.symbol, side=Side.BUY, quantity=slot.quantity, limit=slot.price,
        order_type=OrderType.LIMIT_IF_TOUCHED if lit else OrderType.LIMIT,
        aux=slot.price if lit else None, tif="GTC", outside_rth=params.outside_rth,
        ref=ref if ref is not None else queue_tag(strategy_id, slot.level, anchor),
    )


def sell_request(
    params: TqqqGridConfig, strategy_id: str, level: int, quantity: int, limit: Decimal,
    purchase: Decimal, anchor: Decimal | None, buy_order_id: str | None,
) -> OrderRequest:
    """R2: GTC LMT SELL of exactly the lot's quantity at round2(purchase x (1 + profit_target))."""
    # symbol, side, quantity, limit, order_type, aux, tif, outside_rth, ref (positional: once per lot)
    return OrderRequest(params.symbol, Side.SELL, quantity, limit, OrderType.LIMIT, None, "GTC", params.outside_rth,
                        sell_tag(strategy_id, level, purchase, anchor, buy_order_id))
