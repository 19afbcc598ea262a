"""``ib_feed``: IB's own tick-by-tick trades of the strategies' symbols, over the ib_broker's socket.

One subscription per symbol (``config.streamed()``: by default each strategy's), all on the one
connection the broker trades on.

Sharing the broker's connection is the point: executions and trades then reach the engine in
the order TWS sent them, which is what lets a lockstep rehearsal equal a backtest. Prices are
converted exactly (cents, half up); the data time is the one the message carries (the exact ns
where the simulator adds it), not the time it arrived.
"""

from __future__ import annotations

import asyncio
import logging

from bothost.errors import InputError
from bothost.hookspecs import BrokerUnavailable, BuildEnv, Emit
from bothost.model import ConnectionEvent, ConnectionState, Tick

from . import convert, lockstep
from .broker import IbBroker
from .config import IbFeedConfig

log = logging.getLogger("bothost.ib_feed")


class IbFeed:
    def __init__(self, config: IbFeedConfig, env: BuildEnv):
        self.config = config
        self.symbols = config.streamed()
        self.symbol = self.symbols[0]
        #: each symbol's price increment (its instrument; cents unless declared)
        self._increment = {s: env.instrument(s).increment for s in self.symbols}
        self.broker: IbBroker | None = None
        self._emit: Emit = lambda event: None
        self._req_tickers: dict[str, object] = {}
        self._failed: asyncio.Future | None = None
        self.ticks = 0
        self.ticks_by_symbol = dict.fromkeys(self.symbols, 0)

    def attach_broker(self, broker) -> None:
        if not isinstance(broker, IbBroker):
            raise InputError(f"feed ib_feed streams over the ib_broker's own connection, but the broker is "
                             f"{getattr(broker, 'name', type(broker).__name__)!r}",
                             hint="use `broker: {use: ib_broker}` with it, or another feed")
        self.broker = broker

    async def stream(self, emit: Emit) -> None:
        self._emit = emit
        self._failed = asyncio.get_running_loop().create_future()
        for i, symbol in enumerate(self.symbols):
            # the restore and error listeners once: each covers every symbol
            self.broker.subscribe_trades(symbol, self._trades_of(symbol),
                                         self._on_restored if i == 0 else _ignore,
                                         self._on_data_error if i == 0 else _ignore)
        for symbol in self.symbols:
            await self.broker.qualify(symbol)  # a conId (ib_async keys market data by contract)
        self._subscribe()
        await self._failed  # runs until cancelled, or until IB refuses the data for good

    def _subscribe(self) -> None:
        ib = self.broker.ib
        ib.reqMarketDataType(self.config.market_data_type)
        for symbol in self.symbols:
            self._req_tickers[symbol] = ib.reqTickByTickData(self.broker.contract(symbol), "AllLast", 0, False)
        log.info("streaming %s trades from IB (market data type %s)", ", ".join(self.symbols),
                 self.config.market_data_type)

    def _trades_of(self, symbol: str):
        increment = self._increment[symbol]

        def on_trade(time_s: int, price: float, size: float, special: str) -> None:
            cents = convert.units(price, increment)
            self.ticks += 1
            self.ticks_by_symbol[symbol] += 1
            # A price that is not positive goes in as 0: the engine counts it as a bad tick (S3).
            self._emit(Tick(lockstep.tick_time_ns(time_s, special), symbol, cents or 0, int(size or 0)))

        return on_trade

    def _on_restored(self, data_lost: bool) -> None:
        if data_lost:
            log.info("market data subscriptions were lost: subscribing to %s again", ", ".join(self.symbols))
            self._subscribe()

    def _on_data_error(self, req_id: int, code: int, message: str) -> None:
        ours = {r: t.contract.symbol for r, t in self.broker.ib.wrapper.reqId2Ticker.items()
                if t.contract.symbol in self.ticks_by_symbol}
        if req_id not in ours and req_id != -1:
            return
        symbol = ours.get(req_id, ", ".join(self.symbols))
        self._emit(ConnectionEvent(self.broker._now_ns(), "ib_feed", ConnectionState.LOST, f"{code}: {message}"))
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(BrokerUnavailable(
                f"IB gives no market data for {symbol}: {code} {message} (TWS: Account > Market Data "
                "Subscriptions; or set feed.market_data_type: 3 for delayed data)"))

    def stats(self) -> dict:
        stats = {"source": f"IB trades of {', '.join(self.symbols)}", "ticks": self.ticks}
        if len(self.symbols) > 1:
            stats["ticks_by_symbol"] = dict(self.ticks_by_symbol)
        return stats


def _ignore(*args) -> None:
    """A listener for the second and later symbols' subscriptions: the first one's covers them."""
