"""alpaca-py's StockDataStream, run inside the host's event loop, with the hooks the feed needs.

``StockDataStream.run()`` wraps ``asyncio.run`` and cannot share the host's loop, and the stream
reconnects by itself without a word. So the feed awaits the stream's own loop coroutine on the
host's loop (no thread, no polling: it waits on the socket), and this subclass tells the feed
what the stream does not say:

* connected / lost (a reconnect is a LOST then a RESTORED for the host);
* Alpaca's fatal errors (402 auth failed, 406 connection limit exceeded, 409 insufficient
  subscription), which alpaca-py would retry for ever or only log: the stream is stopped and
  the run ends (exit 4) with the reason;
* frames that are not msgpack (malformed): counted and skipped;
* a stream that cannot be reached at start-up (alpaca-py retries that for ever too): the run
  ends (exit 4) after ``connect_retries``, each failed attempt a warning.

These hooks use alpaca-py's internals (``_run_forever``, ``_auth``, ``_start_ws``, ``_dispatch``,
``close``), checked against 0.44 by the tests against ``bothost sim-alpaca``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgpack
import websockets
from alpaca.data.enums import DataFeed
from alpaca.data.live.stock import StockDataStream

log = logging.getLogger("bothost.alpaca_feed")

#: Alpaca's stream error codes that no retry can cure.
FATAL = {
    401: "not authenticated",
    402: "authentication failed (check ALPACA_API_KEY / ALPACA_SECRET_KEY)",
    404: "authentication timed out",
    406: "connection limit exceeded (another client is connected with these keys)",
    409: "insufficient subscription (this feed needs a market data plan: try feed: iex)",
}


#: 406 (connection limit) is retried this many times (alpaca-py's backoff: about 15 s in all).
LIMIT_RETRIES = 4


class FeedStream(StockDataStream):
    def __init__(self, key: str, secret: str, url: str, feed: str, *, on_connected: Callable[[bool], None],
                 on_lost: Callable[[str], None], on_fatal: Callable[[int, str], None],
                 on_malformed: Callable[[], None], on_unreachable: Callable[[str], None] | None = None,
                 connect_retries: int = 4):
        super().__init__(key, secret, raw_data=True, feed=DataFeed.IEX if feed != "sip" else DataFeed.SIP,
                         url_override=url)
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._on_fatal = on_fatal
        self._on_malformed = on_malformed
        self._was_connected = False
        self._connected_now = False
        self.fatal: tuple[int, str] | None = None
        self._limit_hits = 0
        self._on_unreachable = on_unreachable
        self._connect_retries = connect_retries
        self._connect_failures = 0  # in a row

    async def _start_ws(self) -> None:
        try:
            await super()._start_ws()
        except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            # alpaca-py retries a refused or failed connection for ever, and says so only in its
            # own log: say it in ours, and give up at start-up (a wrong ALPACA_DATA_URL, no
            # network) rather than wait in silence. Once the stream has worked, an outage is
            # retried for as long as it lasts (the host holds new entries meanwhile).
            self._connect_failures += 1
            n = self._connect_failures
            why = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if not self._was_connected and n > self._connect_retries and self._on_unreachable is not None:
                self._on_unreachable(f"cannot reach the Alpaca stream at {self._endpoint} after {n} attempts ({why})")
                await self.stop_ws()
            elif n <= 10 or n % 100 == 0:
                log.warning("Alpaca stream at %s: connection failed (%s), attempt %d; retrying", self._endpoint, why, n)
            raise
        self._connect_failures = 0
        ws = self._ws
        recv = ws.recv

        async def checked_recv():
            while True:
                frame = await recv()
                try:
                    if isinstance(msgpack.unpackb(frame), list):
                        return frame
                except Exception:  # anything msgpack cannot read is not a frame of this protocol
                    pass
                self._on_malformed()

        ws.recv = checked_recv
        again = self._was_connected
        self._was_connected = self._connected_now = True
        self._on_connected(again)

    async def _auth(self) -> None:
        await self._ws.send(msgpack.packb({"action": "auth", "key": self._api_key, "secret": self._secret_key}))
        reply = msgpack.unpackb(await self._ws.recv())
        first = reply[0] if isinstance(reply, list) and reply else {}
        if first.get("T") == "error":
            code, message = int(first.get("code") or 0), str(first.get("msg") or "error")
            if code == 406 and self._limit_hits < LIMIT_RETRIES:
                # After a crash Alpaca may still hold the dead connection for a few seconds:
                # let alpaca-py's backoff retry a few times before calling it fatal.
                self._limit_hits += 1
                log.warning("Alpaca: connection limit exceeded (a connection of the last run not yet "
                            "cleared, or another client with these keys): retry %d of %d", self._limit_hits,
                            LIMIT_RETRIES)
            else:
                await self._fail(code, message)
            raise ValueError(message)
        self._limit_hits = 0
        if first.get("T") != "success" or first.get("msg") != "authenticated":
            raise ValueError("failed to authenticate")

    async def _dispatch(self, msg: dict) -> None:
        if msg.get("T") == "error":
            code = int(msg.get("code") or 0)
            if code in FATAL:
                await self._fail(code, str(msg.get("msg") or ""))
                return
            log.warning("Alpaca stream error %s: %s", code, msg.get("msg"))
            return
        await super()._dispatch(msg)

    async def _fail(self, code: int, message: str) -> None:
        if self.fatal is None:
            self.fatal = (code, message)
            self._on_fatal(code, message)
        await self.stop_ws()

    async def close(self) -> None:
        if self._connected_now and self._should_run and self.fatal is None:
            self._on_lost("the Alpaca stream closed (alpaca-py reconnects)")
        self._connected_now = False
        await super().close()

    async def run_in_this_loop(self) -> None:
        """The stream's own loop, on the caller's event loop, until ``stop_ws``."""
        await self._run_forever()
