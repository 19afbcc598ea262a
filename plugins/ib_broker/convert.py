"""IB's objects (from ib_insync or ib_async: same shapes) to the host's broker-neutral values.

Pure functions over duck-typed objects, so tests can feed them plain namespaces.

Identity: ``order_key`` is the host's ``order_id`` for an IB order. Orders of our own client id
are keyed by their order id (stable across restarts, since the client id is fixed); another
client's by client and order id; a manual TWS order (order id 0) by its permId. Every order
and execution also carries ``perm_id``, IB's account-wide identity, which reconstruct matches by.

Prices come as floats; a float printed by the TWS wire (``97.03``) converts back exactly with
``Decimal(repr(x))``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from bothost.model import (
    CENT,
    CommissionReport,
    Fill,
    OpenOrder,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Side,
    float_to_cents,
    float_to_units,
)

#: IB's "no value" double (Double.MAX_VALUE), used for unset prices.
UNSET_DOUBLE = 1.7976931348623157e308

STATUSES = {
    "PendingSubmit": OrderStatus.PENDING_SUBMIT,
    "ApiPending": OrderStatus.PENDING_SUBMIT,
    "PreSubmitted": OrderStatus.PRE_SUBMITTED,
    "Submitted": OrderStatus.SUBMITTED,
    "PendingCancel": OrderStatus.PENDING_CANCEL,
    "ApiCancelled": OrderStatus.CANCELLED,
    "Cancelled": OrderStatus.CANCELLED,
    "Filled": OrderStatus.FILLED,
    "Inactive": OrderStatus.INACTIVE,
}

ORDER_TYPES = {"LMT": OrderType.LIMIT, "LIT": OrderType.LIMIT_IF_TOUCHED}


def status(ib_status: str) -> OrderStatus:
    return STATUSES.get(ib_status, OrderStatus.SUBMITTED)


def price(value: float | None) -> Decimal | None:
    """A TWS price as an exact Decimal (None for IB's unset value or no value)."""
    if value is None or value != value or value >= UNSET_DOUBLE or value in (float("inf"), float("-inf")):
        return None
    d = Decimal(repr(float(value)))
    # Money reads as money: at least cents (1.0 -> 1.00), every digit beyond them kept (0.3745).
    return d.quantize(CENT) if d.as_tuple().exponent > -2 else d


def cents(value: float) -> int | None:
    """A trade price in whole cents, half up (None when it is not a positive finite number)."""
    return float_to_cents(value)


def units(value: float, increment: Decimal = CENT) -> int | None:
    """A trade price in whole units of the symbol's increment, half up (:func:`cents` for cents)."""
    return float_to_cents(value) if increment == CENT else float_to_units(value, increment)


def time_ns(value: datetime | int | float | None) -> int:
    """An IB time (an aware datetime, or epoch seconds) in ns since the epoch."""
    if value is None:
        return 0
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1_000
    return int(value) * 1_000_000_000


def order_key(client_id: int, order_id: int, perm_id: int, own_client_id: int) -> str:
    if order_id <= 0:
        return f"p{perm_id}"
    if client_id == own_client_id:
        return str(order_id)
    return f"c{client_id}-{order_id}"


def side(action: str) -> Side:
    """``BUY``/``BOT`` and ``SELL``/``SLD``/``SSHORT``."""
    return Side.BUY if action in ("BUY", "BOT") else Side.SELL


def _int(x) -> int:
    return int(round(float(x)))


def ib_order_fields(req: OrderRequest) -> dict:
    """The fields of an IB ``Order`` for a host order request."""
    fields = dict(
        action=req.side.value, totalQuantity=float(req.quantity), orderType=req.order_type.value,
        lmtPrice=float(req.limit), tif=req.tif, outsideRth=req.outside_rth, orderRef=req.ref, transmit=True,
    )
    if req.order_type is OrderType.LIMIT_IF_TOUCHED:
        fields["auxPrice"] = float(req.aux if req.aux is not None else req.limit)
    return fields


def open_order(trade, own_client_id: int) -> OpenOrder:
    """A Trade from reqAllOpenOrders (any client) as the host's OpenOrder (placed time unknown)."""
    o, st = trade.order, trade.orderStatus
    filled = _int(st.filled or 0)
    return OpenOrder(
        order_id=order_key(o.clientId, o.orderId, o.permId, own_client_id),
        symbol=trade.contract.symbol, side=side(o.action), quantity=_int(o.totalQuantity), filled=filled,
        limit=price(o.lmtPrice) or Decimal(0), order_type=ORDER_TYPES.get(o.orderType, OrderType.LIMIT),
        aux=price(o.auxPrice) if o.orderType == "LIT" else None, ref=o.orderRef or "", placed_ns=0,
        client_id=o.clientId, avg_fill_price=price(st.avgFillPrice) if filled else None,
        status=status(st.status), perm_id=str(o.permId) if o.permId else "",
    )


def update(trade, own_client_id: int, when_ns: int, message: str = "", code: int = 0,
           override: OrderStatus | None = None) -> OrderUpdate:
    o, st = trade.order, trade.orderStatus
    filled = _int(st.filled or 0)
    return OrderUpdate(
        order_id=order_key(o.clientId, o.orderId, o.permId, own_client_id), time_ns=when_ns,
        status=override or status(st.status), symbol=trade.contract.symbol, side=side(o.action),
        quantity=_int(o.totalQuantity), filled=filled, ref=o.orderRef or "",
        avg_fill_price=price(st.avgFillPrice) if filled else None, message=message,
        perm_id=str(o.permId or st.permId or "") if (o.permId or st.permId) else "", code=code,
    )


def fill(ib_fill, own_client_id: int, order_quantity: int | None = None, with_commission: bool = False) -> Fill:
    """An execution. Its commission is None unless asked for and already reported (a live fill's
    commission comes later, as a CommissionReport)."""
    e, c = ib_fill.execution, ib_fill.contract
    cum = _int(e.cumQty)
    commission = None
    report = getattr(ib_fill, "commissionReport", None)
    if with_commission and report is not None and report.execId:
        commission = price(report.commission)
    return Fill(
        exec_id=e.execId, order_id=order_key(e.clientId, e.orderId, e.permId, own_client_id),
        time_ns=time_ns(e.time), symbol=c.symbol, side=side(e.side), quantity=_int(e.shares),
        price=price(e.price) or Decimal(0), commission=commission, ref=e.orderRef or "",
        order_quantity=order_quantity if order_quantity is not None else cum, order_filled=cum,
        order_avg_price=price(e.avgPrice) or Decimal(0), perm_id=str(e.permId) if e.permId else "",
    )


def commission(report, when_ns: int = 0) -> CommissionReport | None:
    value = price(report.commission)
    if not report.execId or value is None:
        return None
    return CommissionReport(report.execId, value, when_ns)


def position(ib_position) -> Position:
    c = ib_position.contract
    avg = price(ib_position.avgCost) or Decimal(0)
    return Position(c.symbol, _int(ib_position.position), avg, sec_type=c.secType or "STK")


def is_paper_account(account: str) -> bool:
    """IB paper accounts start with DU (DF for a paper advisor master)."""
    return account.upper().startswith(("DU", "DF"))
