"""TWS messages at server version 176, both directions.

Outgoing (server -> client): one function per message, producing the exact field list that
``ib_insync`` 0.9.86 and ``ib_async`` 2.1.0 decode at serverVersion 176 (``decoder.py``: no version
field where the decoder skips none, the ``>= 159/160/162/164/166/170`` branches taken, the ``>= 177/178``
ones not). Several decoders unpack a fixed number of fields (``execDetails``, ``position``,
``commissionReport``, ``updatePortfolio``, ``tickPrice``): one field too many or too few and the
client drops the message with a logged exception, so the lists here are exact.

Incoming (client -> server): ``decode_*`` functions read the fields exactly as the clients'
``client.py`` writes them at server version 176, including every conditional block of
``placeOrder`` (BAG legs, delta-neutral, scale, hedge, algo, PEG BENCH, conditions, the 158..170
additions), so an order is never misaligned; they raise :class:`Misaligned` when the field count
does not work out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from .wire import UNSET_DOUBLE_TEXT, encode

SERVER_VERSION = 176


class In:
    """Client -> server message ids (EClient's OUT codes)."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCOUNT_DATA = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DATA = 9
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_CURRENT_TIME = 49
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_POSITIONS_MULTI = 74
    CANCEL_POSITIONS_MULTI = 75
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_TICK_BY_TICK_DATA = 97
    CANCEL_TICK_BY_TICK_DATA = 98
    REQ_COMPLETED_ORDERS = 99
    # the bothost lockstep extension (only spoken to a server that advertises it)
    BOTHOST_HELLO = 9000
    BOTHOST_ACK = 9001


class Out:
    """Server -> client message ids (EDecoder's IN codes)."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    EXECUTION_DATA = 11
    MANAGED_ACCTS = 15
    TICK_STRING = 46
    CURRENT_TIME = 49
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    TICK_SNAPSHOT_END = 57
    MARKET_DATA_TYPE = 58
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    POSITION_MULTI = 71
    POSITION_MULTI_END = 72
    ACCOUNT_UPDATE_MULTI = 73
    ACCOUNT_UPDATE_MULTI_END = 74
    TICK_BY_TICK = 99
    COMPLETED_ORDER = 101
    COMPLETED_ORDERS_END = 102


# tick types
BID, ASK, LAST, LAST_SIZE, CLOSE, VOLUME = 1, 2, 4, 5, 9, 8
LAST_TIMESTAMP = 45


class Misaligned(ValueError):
    """A request's fields do not add up to what the client's encoder writes."""


# ============================================================== contracts
@dataclass(slots=True)
class ContractSpec:
    """The 12 contract fields the client sends (``Client.send`` flattens a Contract to these)."""

    conId: int = 0
    symbol: str = ""
    secType: str = ""
    lastTradeDateOrContractMonth: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primaryExchange: str = ""
    currency: str = ""
    localSymbol: str = ""
    tradingClass: str = ""


@dataclass(slots=True)
class Instrument:
    """A contract as the server describes it (contract details, positions, executions)."""

    conId: int
    symbol: str
    secType: str = "STK"
    lastTradeDateOrContractMonth: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = "SMART"
    primaryExchange: str = "NASDAQ"
    currency: str = "USD"
    localSymbol: str = ""
    tradingClass: str = "NMS"
    longName: str = ""

    def __post_init__(self):
        if not self.localSymbol:
            self.localSymbol = self.symbol

    def strike_text(self) -> str:
        return _num(self.strike)


def _num(x) -> str:
    if isinstance(x, float) and x == int(x):
        return str(int(x)) if x == 0 else repr(x)
    return str(x)


def _int(text: str, default: int = 0) -> int:
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        return int(float(text))


def _float(text: str, default: float = 0.0) -> float:
    if not text:
        return default
    if text == "Infinite":
        return float("inf")
    return float(text)


def _bool(text: str) -> bool:
    return bool(_int(text)) if text else False


class _Fields:
    """A cursor over a request's fields."""

    __slots__ = ("f", "i")

    def __init__(self, fields: list[str], start: int = 1):
        self.f = fields
        self.i = start

    def next(self) -> str:
        i = self.i
        if i >= len(self.f):
            raise Misaligned(f"message {self.f[0] if self.f else '?'} ended after {i} fields")
        self.i = i + 1
        return self.f[i]

    def take(self, n: int) -> list[str]:
        i = self.i
        if i + n > len(self.f):
            raise Misaligned(f"message {self.f[0] if self.f else '?'} ended after {len(self.f)} fields, "
                             f"wanted {i + n}")
        self.i = i + n
        return self.f[i:i + n]

    def contract(self) -> ContractSpec:
        c = self.take(12)
        return ContractSpec(_int(c[0]), c[1], c[2], c[3], _float(c[4]), c[5], c[6], c[7], c[8], c[9], c[10], c[11])

    def left(self) -> int:
        return len(self.f) - self.i

    def done(self) -> None:
        if self.i != len(self.f):
            raise Misaligned(f"message {self.f[0]}: {len(self.f) - self.i} fields left over "
                             f"(read {self.i} of {len(self.f)})")


# ============================================================== requests in
@dataclass(slots=True)
class MktDataReq:
    reqId: int
    contract: ContractSpec
    genericTickList: str
    snapshot: bool
    regulatorySnapshot: bool


def decode_req_mkt_data(fields: list[str]) -> MktDataReq:
    r = _Fields(fields, 2)  # [1, 11, reqId, ...]
    req_id = _int(r.next())
    c = r.contract()
    if c.secType == "BAG":
        for _ in range(_int(r.next())):
            r.take(4)
    if _bool(r.next()):  # delta-neutral contract
        r.take(3)
    generic = r.next()
    snapshot = _bool(r.next())
    regulatory = _bool(r.next())
    r.next()  # mktDataOptions
    r.done()
    return MktDataReq(req_id, c, generic, snapshot, regulatory)


@dataclass(slots=True)
class TickByTickReq:
    reqId: int
    contract: ContractSpec
    tickType: str
    numberOfTicks: int
    ignoreSize: bool


def decode_req_tick_by_tick(fields: list[str]) -> TickByTickReq:
    r = _Fields(fields, 1)  # [97, reqId, contract, tickType, numberOfTicks, ignoreSize]
    req_id = _int(r.next())
    c = r.contract()
    tick_type = r.next()
    n = _int(r.next())
    ignore = _bool(r.next())
    r.done()
    return TickByTickReq(req_id, c, tick_type, n, ignore)


@dataclass(slots=True)
class ContractDetailsReq:
    reqId: int
    contract: ContractSpec
    includeExpired: bool
    secIdType: str
    secId: str


def decode_req_contract_details(fields: list[str]) -> ContractDetailsReq:
    r = _Fields(fields, 2)  # [9, 8, reqId, contract, includeExpired, secIdType, secId, issuerId(>=176)]
    req_id = _int(r.next())
    c = r.contract()
    inc = _bool(r.next())
    sec_id_type, sec_id = r.next(), r.next()
    r.next()  # issuerId, server version >= 176
    r.done()
    return ContractDetailsReq(req_id, c, inc, sec_id_type, sec_id)


@dataclass(slots=True)
class ExecFilter:
    clientId: int = 0
    acctCode: str = ""
    time: str = ""
    symbol: str = ""
    secType: str = ""
    exchange: str = ""
    side: str = ""


def decode_req_executions(fields: list[str]) -> tuple[int, ExecFilter]:
    r = _Fields(fields, 2)  # [7, 3, reqId, clientId, acctCode, time, symbol, secType, exchange, side]
    req_id = _int(r.next())
    f = ExecFilter(_int(r.next()), r.next(), r.next(), r.next(), r.next(), r.next(), r.next())
    r.done()
    return req_id, f


@dataclass(slots=True)
class PlaceOrderReq:
    """The fields of placeOrder that the simulator acts on, plus a count of the rest."""

    orderId: int
    contract: ContractSpec
    action: str = ""
    totalQuantity: str = ""
    orderType: str = ""
    lmtPrice: str = ""
    auxPrice: str = ""
    tif: str = ""
    ocaGroup: str = ""
    account: str = ""
    openClose: str = ""
    origin: int = 0
    orderRef: str = ""
    transmit: bool = True
    parentId: int = 0
    outsideRth: bool = False
    hidden: bool = False
    goodAfterTime: str = ""
    goodTillDate: str = ""
    algoStrategy: str = ""
    whatIf: bool = False
    conditions: int = 0
    fields: int = 0  # how many fields the message had (all consumed)
    extra: dict = field(default_factory=dict)


# fields per order condition, condType included (ib_insync/ib_async order.py dataclasses)
_CONDITION_FIELDS = {1: 7, 3: 4, 4: 4, 5: 5, 6: 6, 7: 6}


def decode_place_order(fields: list[str], server_version: int = SERVER_VERSION) -> PlaceOrderReq:
    """Read a whole placeOrder message (see ``Client.placeOrder``); raise Misaligned if it does not fit."""
    r = _Fields(fields, 1)
    nxt = r.next
    o = PlaceOrderReq(_int(nxt()), r.contract())
    r.take(2)  # secIdType, secId
    (o.action, o.totalQuantity, o.orderType, o.lmtPrice, o.auxPrice, o.tif, o.ocaGroup, o.account,
     o.openClose, origin, o.orderRef, transmit, parent, _block, _sweep, _display, _trigger, rth,
     hidden) = r.take(19)
    o.origin, o.transmit, o.parentId = _int(origin), _bool(transmit) if transmit else True, _int(parent)
    o.outsideRth, o.hidden = _bool(rth), _bool(hidden)
    if o.contract.secType == "BAG":
        for _ in range(_int(nxt())):
            r.take(8)
        for _ in range(_int(nxt())):
            r.take(1)
        for _ in range(_int(nxt())):
            r.take(2)
    # '' (deprecated sharesAllocation), discretionaryAmt, goodAfterTime, goodTillDate, faGroup, faMethod,
    # faPercentage, faProfile (< 177), modelCode, shortSaleSlot, designatedLocation, exemptCode,
    # ocaType, rule80A, settlingFirm, allOrNone, minQty, percentOffset, eTradeOnly, firmQuoteOnly,
    # nbboPriceCap, auctionStrategy, startingPrice, stockRefPrice, delta, stockRangeLower,
    # stockRangeUpper, overridePercentageConstraints, volatility, volatilityType,
    # deltaNeutralOrderType, deltaNeutralAuxPrice
    block = r.take(32 if server_version < 177 else 31)
    o.goodAfterTime, o.goodTillDate = block[2], block[3]
    dn_type = block[-2]
    if dn_type:
        r.take(8)
    # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent, scaleInitLevelSize,
    # scaleSubsLevelSize, scalePriceIncrement
    scale = r.take(7)
    incr = _float(scale[6], 0.0)
    if 0 < incr < 1.7976931348623157e308:
        r.take(7)
    _table, _start, _stop, hedge_type = r.take(4)
    if hedge_type:
        r.take(1)
    r.take(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if _bool(nxt()):  # delta-neutral contract
        r.take(3)
    o.algoStrategy = nxt()
    if o.algoStrategy:
        for _ in range(_int(nxt())):
            r.take(2)
    _algo_id, what_if, _misc, _solicited, _rsize, _rprice = r.take(6)
    o.whatIf = _bool(what_if)
    if o.orderType in ("PEG BENCH", "PEGBENCH"):
        r.take(5)
    n_cond = _int(nxt())
    o.conditions = n_cond
    for _ in range(n_cond):
        cond_type = _int(nxt())
        if cond_type not in _CONDITION_FIELDS:
            raise Misaligned(f"unknown order condition type {cond_type}")
        r.take(_CONDITION_FIELDS[cond_type] - 1)
    if n_cond:
        r.take(2)  # conditionsIgnoreRth, conditionsCancelOrder
    # adjustedOrderType .. usePriceMgmtAlgo (19 fields)
    r.take(19)
    if server_version >= 158:
        nxt()  # duration
    if server_version >= 160:
        nxt()  # postToAts
    if server_version >= 162:
        nxt()  # autoCancelParent
    if server_version >= 166:
        nxt()  # advancedErrorOverride
    if server_version >= 169:
        nxt()  # manualOrderTime
    if server_version >= 170:
        if o.contract.exchange == "IBKRATS":
            nxt()  # minTradeQty
        if o.orderType in ("PEG BEST", "PEGBEST"):
            _size, offset = r.take(2)
            if offset == "Infinite":
                r.take(2)
        elif o.orderType in ("PEG MID", "PEGMID"):
            r.take(2)
    r.done()
    o.fields = len(fields)
    return o


def decimal_or_none(text: str) -> Decimal | None:
    """A price field as an exact Decimal (the client writes ``str(float)``), None when empty/unset."""
    if not text:
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    if not d.is_finite() or d >= Decimal("1e300"):
        return None
    return d


# ============================================================== messages out
def next_valid_id(order_id: int) -> bytes:
    return encode((Out.NEXT_VALID_ID, 1, order_id))


def managed_accounts(accounts: str) -> bytes:
    return encode((Out.MANAGED_ACCTS, 1, accounts))


def error(req_id: int, code: int, text: str, advanced: str = "") -> bytes:
    # version 2; advancedOrderRejectJson since server version 166
    return encode((Out.ERR_MSG, 2, req_id, code, text, advanced))


def current_time(seconds: int) -> bytes:
    return encode((Out.CURRENT_TIME, 1, seconds))


def market_data_type(req_id: int, data_type: int) -> bytes:
    return encode((Out.MARKET_DATA_TYPE, 1, req_id, data_type))


def tick_price(req_id: int, tick_type: int, price: str, size: str = "0", attrib: int = 0) -> bytes:
    return encode((Out.TICK_PRICE, 6, req_id, tick_type, price, size, attrib))


def tick_size(req_id: int, tick_type: int, size: str) -> bytes:
    return encode((Out.TICK_SIZE, 6, req_id, tick_type, size))


def tick_string(req_id: int, tick_type: int, value: str) -> bytes:
    return encode((Out.TICK_STRING, 6, req_id, tick_type, value))


def tick_snapshot_end(req_id: int) -> bytes:
    return encode((Out.TICK_SNAPSHOT_END, 1, req_id))


def tick_by_tick_last(req_id: int, tick_type: int, seconds: int, price: str, size: str,
                      mask: int = 0, exchange: str = "", special: str = "") -> bytes:
    # tickType 1 = Last, 2 = AllLast
    return encode((Out.TICK_BY_TICK, req_id, tick_type, seconds, price, size, mask, exchange, special))


def contract_data(req_id: int, c: Instrument, market_rule_ids: str = "26") -> bytes:
    # server version >= 164: no version field, no mdSizeMultiplier; minSize, sizeIncrement,
    # suggestedSizeIncrement at the end
    return encode((
        Out.CONTRACT_DATA, req_id, c.symbol, c.secType, c.lastTradeDateOrContractMonth, c.strike_text(),
        c.right, c.exchange, c.currency, c.localSymbol, c.tradingClass if c.secType == "STK" else "",
        c.tradingClass, c.conId, "0.01", c.multiplier,
        "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,DAY,GTC,LIT,LMT,MIT,MKT,STP,STPLMT,TRAIL",
        "SMART,NASDAQ,ISLAND,ARCA,BATS", 1, 0, c.longName or c.symbol, c.primaryExchange, "",
        "", "", "", "US/Eastern",
        "", "", "", "", 0,  # tradingHours, liquidHours, evRule, evMultiplier, numSecIds
        1, "", "", market_rule_ids, "", "ETF" if c.secType == "STK" else "",
        "0.0001", "0.0001", "100",
    ))


def contract_data_end(req_id: int) -> bytes:
    return encode((Out.CONTRACT_DATA_END, 1, req_id))


def _contract_fields(c: Instrument, exchange: str | None = None) -> tuple:
    # conId, symbol, secType, lastTradeDateOrContractMonth, strike, right, multiplier, exchange,
    # currency, localSymbol, tradingClass
    return (c.conId, c.symbol, c.secType, c.lastTradeDateOrContractMonth, c.strike_text(), c.right,
            c.multiplier, c.exchange if exchange is None else exchange, c.currency, c.localSymbol,
            c.tradingClass)


@dataclass(slots=True)
class OrderView:
    """What openOrder / orderStatus / completedOrder say about one order."""

    order_id: int
    client_id: int
    perm_id: int
    action: str
    quantity: int
    order_type: str
    limit: str  # text, '' if none
    aux: str
    tif: str
    account: str
    ref: str
    outside_rth: bool
    status: str  # IB status text
    filled: int
    avg_price: str  # text, '0' if none
    last_fill_price: str = "0"
    why_held: str = ""
    completed_time: str = ""
    completed_status: str = ""
    what_if: bool = False
    commission: str = ""

    @property
    def remaining(self) -> int:
        return max(0, self.quantity - self.filled)


def open_order(o: OrderView, c: Instrument) -> bytes:
    margin = ("", "", "", "", "", "", "", "", "") if not o.what_if else \
        ("0", "0", "0", "0", "0", "0", "0", "0", "0")
    fields = [
        Out.OPEN_ORDER, o.order_id, *_contract_fields(c),
        o.action, o.quantity, o.order_type, o.limit, o.aux, o.tif, "", o.account, "O", 0, o.ref,
        o.client_id, o.perm_id, o.outside_rth, False, "0", "",
        "",  # deprecated sharesAllocation
        "", "", "", "",  # faGroup, faMethod, faPercentage, faProfile (< 177)
        "", "", "", "", "", 0, "", -1,  # modelCode, goodTillDate, rule80A, percentOffset, settlingFirm, shortSaleSlot, designatedLocation, exemptCode
        0, "", "", "", "", "",  # auctionStrategy, startingPrice, stockRefPrice, delta, stockRangeLower, stockRangeUpper
        0, False, False, False, "", 3, False, False, "",  # displaySize, blockOrder, sweepToFill, allOrNone, minQty, ocaType, eTradeOnly, firmQuoteOnly, nbboPriceCap
        0, 0, "", "", "", "",  # parentId, triggerMethod, volatility, volatilityType, deltaNeutralOrderType, deltaNeutralAuxPrice
        False, "", "", "", "", "", "",  # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent, basisPoints, basisPointsType, comboLegsDescrip
        0, 0, 0,  # combo legs, order combo legs, smart combo routing params
        "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        "",  # hedgeType
        False, "", "", False, False,  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld, deltaNeutralContract present
        "",  # algoStrategy
        False, o.what_if, o.status, *margin,
        o.commission, "", "", "USD" if o.commission else "", "",  # commission, min, max, currency, warningText
        False, False,  # randomizeSize, randomizePrice
        0,  # conditions
        "", "", "", "", "", "", "", 0,  # adjustedOrderType .. adjustableTrailingUnit
        "", "", "",  # softDollarTier name, val, displayName
        "", False, False, False, False,  # cashQty, dontUseAutoPriceForHedge, isOmsContainer, discretionaryUpToLimitPrice, usePriceMgmtAlgo
        "", "", False,  # duration (>=159), postToAts (>=160), autoCancelParent (>=162)
        "", "", "", "", "",  # minTradeQty .. midOffsetAtHalf (>=170)
    ]
    return encode(fields)


def open_order_end() -> bytes:
    return encode((Out.OPEN_ORDER_END, 1))


def order_status(o: OrderView) -> bytes:
    return encode((Out.ORDER_STATUS, o.order_id, o.status, o.filled, o.remaining, o.avg_price, o.perm_id, 0,
                   o.last_fill_price, o.client_id, o.why_held, ""))


def completed_order(o: OrderView, c: Instrument) -> bytes:
    fields = [
        Out.COMPLETED_ORDER, *_contract_fields(c),
        o.action, o.quantity, o.order_type, o.limit, o.aux, o.tif, "", o.account, "O", 0, o.ref, o.perm_id,
        o.outside_rth, False, "0", "",
        "", "", "", "",  # faGroup, faMethod, faPercentage, faProfile (< 177)
        "", "", "", "", "", 0, "", -1,  # modelCode .. exemptCode
        "", "", "", "", "",  # startingPrice, stockRefPrice, delta, stockRangeLower, stockRangeUpper
        0, False, False, "", 3, 0, "", "", "", "",  # displaySize, sweepToFill, allOrNone, minQty, ocaType, triggerMethod, volatility, volatilityType, dnOrderType, dnAuxPrice
        False, "", "", "", "",  # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent, comboLegsDescrip
        0, 0, 0,  # legs, order legs, smart combo params
        "", "", "",  # scale
        "",  # hedgeType
        "", "", False, False,  # clearingAccount, clearingIntent, notHeld, dnc present
        "",  # algoStrategy
        False, o.status, False, False,  # solicited, status, randomizeSize, randomizePrice
        0,  # conditions
        "", "", "", False, False, "", o.filled, 0, False, "", False, False, 0,
        # trailStopPrice, lmtPriceOffset, cashQty, dontUseAutoPriceForHedge, isOmsContainer, autoCancelDate,
        # filledQuantity, refFuturesConId, autoCancelParent, shareholder, imbalanceOnly,
        # routeMarketableToBbo, parentPermId
        o.completed_time, o.completed_status,
        "", "", "", "", "",  # minTradeQty .. midOffsetAtHalf (>= 170)
    ]
    return encode(fields)


def completed_orders_end() -> bytes:
    return encode((Out.COMPLETED_ORDERS_END,))


@dataclass(slots=True)
class ExecView:
    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    time_text: str  # "20240102 09:30:15 America/New_York"
    account: str
    side: str  # BOT / SLD
    shares: int
    price: str
    cum_qty: int
    avg_price: str
    ref: str
    commission: str
    realized: str  # text; UNSET_DOUBLE_TEXT for an opening fill
    exchange: str = "ISLAND"
    liquidity: int = 1


def exec_details(req_id: int, e: ExecView, c: Instrument) -> bytes:
    # serverVersion >= 136 (last liquidity): no version field; 31 fields; pendingPriceRevision only >= 178
    return encode((
        Out.EXECUTION_DATA, req_id, e.order_id, *_contract_fields(c, e.exchange),
        e.exec_id, e.time_text, e.account, e.exchange, e.side, e.shares, e.price, e.perm_id, e.client_id,
        0, e.cum_qty, e.avg_price, e.ref, "", "", "", e.liquidity,
    ))


def exec_details_end(req_id: int) -> bytes:
    return encode((Out.EXECUTION_DATA_END, 1, req_id))


def commission_report(e: ExecView) -> bytes:
    return encode((Out.COMMISSION_REPORT, 1, e.exec_id, e.commission, "USD", e.realized, UNSET_DOUBLE_TEXT, ""))


def position(account: str, c: Instrument, quantity, avg_cost: str) -> bytes:
    return encode((Out.POSITION_DATA, 3, account, *_contract_fields(c), quantity, avg_cost))


def position_end() -> bytes:
    return encode((Out.POSITION_END, 1))


def account_value(key: str, value: str, currency: str, account: str) -> bytes:
    return encode((Out.ACCT_VALUE, 2, key, value, currency, account))


def portfolio_value(c: Instrument, quantity, market_price: str, market_value: str, avg_cost: str,
                    unrealized: str, realized: str, account: str) -> bytes:
    return encode((Out.PORTFOLIO_VALUE, 8, c.conId, c.symbol, c.secType, c.lastTradeDateOrContractMonth,
                   c.strike_text(), c.right, c.multiplier, c.primaryExchange, c.currency, c.localSymbol,
                   c.tradingClass, quantity, market_price, market_value, avg_cost, unrealized, realized, account))


def account_update_time(hhmm: str) -> bytes:
    return encode((Out.ACCT_UPDATE_TIME, 1, hhmm))


def account_download_end(account: str) -> bytes:
    return encode((Out.ACCT_DOWNLOAD_END, 1, account))


def account_update_multi(req_id: int, account: str, model: str, key: str, value: str, currency: str) -> bytes:
    return encode((Out.ACCOUNT_UPDATE_MULTI, 1, req_id, account, model, key, value, currency))


def account_update_multi_end(req_id: int) -> bytes:
    return encode((Out.ACCOUNT_UPDATE_MULTI_END, 1, req_id))


def position_multi(req_id: int, account: str, c: Instrument, quantity, avg_cost: str, model: str = "") -> bytes:
    return encode((Out.POSITION_MULTI, 1, req_id, account, *_contract_fields(c), quantity, avg_cost, model))


def position_multi_end(req_id: int) -> bytes:
    return encode((Out.POSITION_MULTI_END, 1, req_id))


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> bytes:
    return encode((Out.ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency))


def account_summary_end(req_id: int) -> bytes:
    return encode((Out.ACCOUNT_SUMMARY_END, 1, req_id))
