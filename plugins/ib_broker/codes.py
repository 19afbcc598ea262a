"""IB's message codes (errorEvent), as a trader reads them, and what the plugin does about each.

https://interactivebrokers.github.io/tws-api/message_codes.html. The table is pure data so that
tests and ``bothost status`` can show the same words the log does.
"""

from __future__ import annotations

from dataclasses import dataclass

#: What a code means for the bot.
INFO = "info"  # nothing to do (farm connection notices, order warnings)
LOST = "lost"  # TWS lost its connection to IB: hold everything (the gate)
RESTORED = "restored"  # back: reconstruct (fills during the outage are only seen that way)
RESTORED_DATA_LOST = "restored-data-lost"  # back, market data subscriptions must be renewed
ORDER_REJECTED = "order-rejected"  # this order is dead; a Cancelled status follows
ORDER_NOTE = "order-note"  # about an order, not fatal (a cancel of an order already gone)
MARKET_DATA = "market-data"  # the feed cannot get data for the symbol
CLIENT_ID_IN_USE = "client-id-in-use"


@dataclass(frozen=True)
class Code:
    action: str
    meaning: str


CODES: dict[int, Code] = {
    1100: Code(LOST, "TWS lost its connection to IB's servers: holding new orders until it is back"),
    1101: Code(RESTORED_DATA_LOST, "TWS is connected to IB again; market data subscriptions were lost and are renewed"),
    1102: Code(RESTORED, "TWS is connected to IB again; market data kept"),
    1300: Code(LOST, "TWS socket port was reset: reconnecting"),
    103: Code(ORDER_REJECTED, "duplicate order id (another client used it): the order was not placed"),
    201: Code(ORDER_REJECTED, "order rejected by IB"),
    202: Code(ORDER_NOTE, "order cancelled"),
    161: Code(ORDER_NOTE, "cancel attempted when the order was not in a cancellable state"),
    10147: Code(ORDER_NOTE, "cancel of an order IB does not know (it already ended)"),
    10148: Code(ORDER_NOTE, "cancel refused: the order is already being cancelled or has ended"),
    399: Code(ORDER_NOTE, "order warning (for example: it will not be placed until the market opens)"),
    354: Code(MARKET_DATA, "no market data subscription for this symbol (Account > Market Data Subscriptions in TWS)"),
    10089: Code(MARKET_DATA, "the market data requested needs a subscription that this account does not have"),
    10167: Code(INFO, "market data not subscribed: delayed data is shown instead"),
    200: Code(MARKET_DATA, "no security definition found for the symbol"),
    326: Code(CLIENT_ID_IN_USE, "this client id is already in use (another bot, or a second copy of this one)"),
}


def describe(code: int) -> Code:
    """What ``code`` means. 2100-2199 are IB's information notices (farm connections)."""
    known = CODES.get(code)
    if known is not None:
        return known
    if 2100 <= code < 2200:
        return Code(INFO, "information (data farm connection status)")
    return Code(ORDER_NOTE, "IB message")
