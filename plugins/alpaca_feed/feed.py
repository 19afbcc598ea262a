"""``AlpacaFeed``: Alpaca trades (or quotes, or bars) of the strategies' symbols as host ticks.

One stream subscribes to every symbol (``config.streamed()``: by default each strategy's); a
message's own ``S`` says whose tick it is, and what was already delivered is remembered per
symbol (the stream interleaves them).

The stream runs on the host's event loop (see ``stream``). Each message is converted exactly
(``convert``); a bad one is counted by reason and never passed on (S3); one already delivered
(the stream replays after a reconnect) is dropped, so no tick reaches the engine twice. A
watchdog on the host clock (the data's time of the last tick, running on at the wall's pace)
calls the feed stale when no tick came for ``stale_after`` while the market should be trading
(XNYS, ``hours``): a LOST for the host (a warning to the notifiers; the grid holds new Level-0
entries) and a reconnect; the next tick is a RESTORED. Alpaca's fatal errors end the run with
exit 4 and the reason, in seconds, not after endless retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from bothost.hookspecs import BrokerUnavailable, BuildEnv, Emit
from bothost.model import CENT, ConnectionEvent, ConnectionState

from . import convert
from .config import AlpacaFeedConfig
from .hours import market_open

log = logging.getLogger("bothost.alpaca_feed")
SOURCE = "alpaca_feed"


class AlpacaFeed:
    def __init__(self, config: AlpacaFeedConfig, env: BuildEnv):
        self.config = config
        self.symbols = config.streamed()
        self.symbol = self.symbols[0]
        #: each symbol's price increment (its instrument; cents unless declared)
        self._increment = {s: env.instrument(s).increment for s in self.symbols}
        self.stale_after_s = config.stale_after.total_seconds()
        self._emit: Emit = lambda event: None
        self.ticks = 0
        self.ticks_by_symbol: Counter = Counter()
        self.bad = Counter()
        self.duplicates = 0
        self.reconnects = 0
        self._last_t = -1  # the newest tick's data time, of any symbol (the feed's clock)
        self._seen: dict[str, tuple[int, set]] = {}  # symbol -> (its last time, the trade ids at it)
        self._last_arrival = 0.0  # monotonic
        self._stale = False
        self._lost = False
        self._stream = None
        self._failed: asyncio.Future | None = None

    def stats(self) -> dict:
        stats = {"source": f"Alpaca {self.config.feed} {self.config.data} of {', '.join(self.symbols)}",
                 "ticks": self.ticks, "bad_ticks_by_reason": dict(self.bad), "duplicates_dropped": self.duplicates,
                 "reconnects": self.reconnects}
        if len(self.symbols) > 1:
            stats["ticks_by_symbol"] = {s: self.ticks_by_symbol[s] for s in self.symbols}
        return stats

    async def stream(self, emit: Emit) -> None:
        from .stream import FeedStream  # alpaca-py loads only when the feed runs

        self._emit = emit
        # The feed logs what the stream does in its own words; alpaca-py's lines (tracebacks
        # of the errors it retries) would only alarm.
        logging.getLogger("alpaca").setLevel(logging.CRITICAL)
        loop = asyncio.get_running_loop()
        self._failed = loop.create_future()
        self._stream = FeedStream(
            self.config.key.get_secret_value(), self.config.secret.get_secret_value(), self.config.stream_url(),
            self.config.feed, on_connected=self._connected, on_lost=self._on_lost, on_fatal=self._on_fatal,
            on_malformed=lambda: self._bad("malformed message"), on_unreachable=self._on_unreachable,
            connect_retries=self.config.connect_retries)
        handler = {"trades": self._on_trade, "quotes": self._on_quote, "bars": self._on_bar}[self.config.data]
        getattr(self._stream, f"subscribe_{self.config.data}")(handler, *self.symbols)
        log.info("streaming %s %s from %s", ", ".join(self.symbols), self.config.data, self.config.stream_url())
        self._last_arrival = time.monotonic()
        runner = loop.create_task(self._stream.run_in_this_loop(), name="alpaca stream")
        watchdog = loop.create_task(self._watch(), name="alpaca staleness")
        try:
            done, _ = await asyncio.wait({runner, self._failed}, return_when=asyncio.FIRST_COMPLETED)
            if self._failed.done():
                self._failed.result()  # raises BrokerUnavailable with Alpaca's reason
            runner.result()
        finally:
            watchdog.cancel()
            if not runner.done():
                await self._stream.stop_ws()
                # stop_ws is only noticed between receives, and a receive waits up to 5 s for a
                # frame: close the socket too, so that the host's stop takes milliseconds.
                try:
                    await asyncio.wait_for(self._stream.close(), 1)
                except Exception:  # noqa: BLE001 - a socket that will not close is cancelled below
                    pass
                try:
                    await asyncio.wait_for(runner, 2)
                except (TimeoutError, asyncio.TimeoutError, asyncio.CancelledError):
                    runner.cancel()
                    await asyncio.gather(runner, return_exceptions=True)
            await asyncio.gather(watchdog, return_exceptions=True)

    # ------------------------------------------------------------------ messages
    async def _on_trade(self, msg: dict) -> None:
        symbol = self._symbol_of(msg)
        self._deliver(convert.trade(msg, symbol, self._increment.get(symbol, CENT)), msg.get("i"))

    async def _on_quote(self, msg: dict) -> None:
        symbol = self._symbol_of(msg)
        self._deliver(convert.quote(msg, symbol, self._increment.get(symbol, CENT)), None)

    async def _on_bar(self, msg: dict) -> None:
        symbol = self._symbol_of(msg)
        ticks = convert.bar(msg, symbol, increment=self._increment.get(symbol, CENT))
        if isinstance(ticks, str):
            self._bad(ticks)
            return
        for tick in ticks:
            self._deliver(tick, None)

    def _symbol_of(self, msg: dict) -> str:
        """The message's own symbol (``S``); the first one streamed for a message without it."""
        symbol = msg.get("S")
        return symbol.upper() if isinstance(symbol, str) and symbol else self.symbol

    def _deliver(self, tick, ident) -> None:
        self._last_arrival = time.monotonic()
        if isinstance(tick, str):
            self._bad(tick)
            return
        t = tick.time_ns
        last, ids = self._seen.get(tick.symbol, (-1, set()))
        if t < last or (t == last and (ident is None or ident in ids)):
            self.duplicates += 1  # replayed after a reconnect: already delivered
            return
        if t > last:
            ids = set()
            self._seen[tick.symbol] = (t, ids)
        if ident is not None:
            ids.add(ident)
        self._last_t = max(self._last_t, t)
        if self._stale or self._lost:
            self._stale = self._lost = False
            self._emit(ConnectionEvent(t, SOURCE, ConnectionState.RESTORED, "trades are coming in again"))
        self.ticks += 1
        self.ticks_by_symbol[tick.symbol] += 1
        self._emit(tick)

    def _bad(self, reason: str) -> None:
        n = self.bad[reason] = self.bad[reason] + 1
        if n <= 10 or n % 1000 == 0:
            log.warning("bad Alpaca message skipped (%s, %d so far)", reason, n)

    # ------------------------------------------------------------------ the stream's state
    def _connected(self, again: bool) -> None:
        if again:
            self.reconnects += 1
            log.warning("Alpaca stream reconnected")
            if self._lost and not self._stale:
                self._lost = False
                self._emit(ConnectionEvent(self._clock_ns(), SOURCE, ConnectionState.RESTORED, "reconnected"))
        else:
            log.info("Alpaca stream connected and authenticated")

    def _on_lost(self, why: str) -> None:
        if not self._lost and not self._stale:  # a stale feed was reported LOST already
            self._lost = True
            self._emit(ConnectionEvent(self._clock_ns(), SOURCE, ConnectionState.LOST, why))

    def _on_fatal(self, code: int, message: str) -> None:
        from .stream import FATAL

        reason = f"Alpaca refused the stream: {code} {message} ({FATAL.get(code, 'error')})"
        log.error("%s", reason)
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(BrokerUnavailable(reason))

    def _on_unreachable(self, reason: str) -> None:
        log.error("%s", reason)
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(BrokerUnavailable(
                reason + "; check ALPACA_DATA_URL (empty for Alpaca's own service) and the network"))

    def _clock_ns(self) -> int:
        """The host clock as the feed sees it: the last tick's data time, run on by the wall."""
        if self._last_t < 0:
            return time.time_ns()
        return self._last_t + int((time.monotonic() - self._last_arrival) * 1e9)

    async def _watch(self) -> None:
        step = max(0.05, min(1.0, self.stale_after_s / 4))
        while True:
            await asyncio.sleep(step)
            quiet = time.monotonic() - self._last_arrival
            if self._stale or quiet < self.stale_after_s or not market_open(self._clock_ns(), self.config.hours):
                continue
            self._stale = True
            why = f"no {self.config.data} of {', '.join(self.symbols)} for {quiet:.0f}s while the market is open: reconnecting"
            log.warning("%s", why)
            self._emit(ConnectionEvent(self._clock_ns(), SOURCE, ConnectionState.LOST, "stale: " + why))
            ws = getattr(self._stream, "_ws", None)
            if ws is not None:
                await ws.close()  # alpaca-py sees the socket closed and reconnects
