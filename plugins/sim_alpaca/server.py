"""The Alpaca market-data simulator: one port, the stock stream (websocket) and historical bars (REST).

``SimAlpaca`` is what tests and the CLI drive::

    sim = await SimAlpaca(data=path, pace="asap", port=0).start()    # 127.0.0.1:sim.port
    stream = StockDataStream("key", "secret", url_override=sim.stream_url("iex"))
    client = StockHistoricalDataClient("key", "secret", url_override=sim.url)
    ...
    await sim.stop()

Alone it replays the data file itself (``pace`` ``realtime``, ``xSPEED`` or ``asap``); inside the
combined simulator (``bothost sim``, :mod:`.combined`) it is the TWS simulator's second front door:
the venue's replay hands it each tick (``deliver_tick``) and it paces nothing by itself.

It binds loopback only (``check_host``). Any key pair is accepted unless ``keys`` says which.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

from bothost_plugins.sim_tws.server import check_host

from . import wire
from .data import DAY_NS, MINUTE_NS, StreamTick, iter_ticks, load_bars, quote_of
from .faults import AUTH, AUTH_MESSAGES, AlpacaFault, parse_faults
from .rest import BarsEndpoint, HttpError

log = logging.getLogger("bothost.sim_alpaca")

try:
    from websockets.protocol import State as _State

    _OPEN = _State.OPEN
except ImportError:  # pragma: no cover
    _OPEN = object()

NS = 1_000_000_000
STREAM_FEEDS = ("iex", "sip", "test", "delayed_sip", "boats", "overnight")
ASAP, LOCKSTEP, REALTIME = "asap", "lockstep", "realtime"
NAN_ID_BASE = 10**15  # ids of the NaN trades a fault adds (never a tick's own id)
RESEND_ID_BASE = 2 * 10**15  # ids of ticks sent again after a TWS reconnect (see resend_tick)
ASAP_BATCH = 256  # ticks per frame when the pace is asap
BACKLOG_FRAMES = 64  # asap: wait while a client has this many frames unsent
SLOW_CLIENT_FRAMES = 100_000  # a client this far behind is cut off with 407 (as Alpaca does)


def parse_pace(text: str) -> tuple[str, float]:
    """'asap' -> ('asap', 0); 'realtime' -> ('realtime', 1); 'x10' -> ('realtime', 10); 'lockstep'."""
    t = text.strip().lower()
    if t in (ASAP, LOCKSTEP):
        return t, 0.0
    if t == REALTIME:
        return REALTIME, 1.0
    if t.startswith("x"):
        try:
            speed = float(t[1:])
        except ValueError:
            speed = 0.0
        if speed > 0 and math.isfinite(speed):
            return REALTIME, speed
    raise ValueError(f"pace must be realtime, xSPEED (e.g. x10), asap or lockstep, got {text!r}")


class StreamConn:
    """One stream connection: its mode, authentication, subscriptions and an ordered outbox
    (a writer task sends it; a stalled connection holds it)."""

    def __init__(self, sim: SimAlpaca, ws, feed: str, mode: str):
        self.sim = sim
        self.ws = ws
        self.feed = feed
        self.mode = mode
        self.authed = False
        self.key: str | None = None
        self.subs: dict[str, set[str]] = {ch: set() for ch in wire.CHANNELS}
        self.outbox: deque = deque()
        self.wakeup = asyncio.Event()
        self.stalled_until = 0.0  # monotonic; math.inf: until it closes
        self.closed = False
        self.closing = False
        self.frames = 0
        self.pending: list[dict] = []
        self.peer = ""
        self.writer: asyncio.Task | None = None
        self.auth_timer: asyncio.TimerHandle | None = None

    def wants(self, channel: str, symbol: str) -> bool:
        s = self.subs[channel]
        return bool(s) and (symbol in s or "*" in s)

    @property
    def stalled(self) -> bool:
        return self.stalled_until > time.monotonic()

    def send(self, messages: list[dict]) -> None:
        self.put(wire.encode(messages, self.mode))

    def put(self, frame) -> None:
        if self.closed or self.closing:
            return
        if not self.outbox and self.stalled_until == 0.0 and self._write_now(frame):
            return
        self.outbox.append(frame)
        self.wakeup.set()

    def _write_now(self, frame) -> bool:
        """Nothing queued, not stalled, the socket not flow-controlled: write the frame at once (what
        ``ws.send`` does before it awaits, without a task switch per tick). False: queue it."""
        ws = self.ws
        try:
            if ws.paused or ws.protocol.state is not _OPEN:
                return False
            if isinstance(frame, str):
                ws.protocol.send_text(frame.encode())
            else:
                ws.protocol.send_binary(frame)
            ws.send_data()
        except Exception:  # not a websockets connection we know: the writer task does it the public way
            return False
        self.frames += 1
        return True

    def close_after(self, code: int = 1000, reason: str = "") -> None:
        """Close once everything queued is sent (after an error the client must read first)."""
        if not self.closed and not self.closing:
            self.outbox.append(("close", code, reason))
            self.closing = True
            self.wakeup.set()

    def drop(self) -> None:
        """Cut the TCP connection (no close frame): what a network failure looks like."""
        if not self.closed:
            self.closed = True
            transport = getattr(self.ws, "transport", None)
            if transport is not None:
                transport.abort()

    async def write(self) -> None:
        ws = self.ws
        try:
            while True:
                while not self.outbox or self.stalled:
                    if self.stalled_until and not self.stalled:
                        self.stalled_until = 0.0  # the stall is over: writes go straight out again
                    self.wakeup.clear()
                    if self.stalled and self.stalled_until != math.inf:
                        try:
                            await asyncio.wait_for(self.wakeup.wait(), self.stalled_until - time.monotonic())
                        except asyncio.TimeoutError:
                            pass
                    else:
                        await self.wakeup.wait()
                frame = self.outbox.popleft()
                if isinstance(frame, tuple):
                    await ws.close(frame[1], frame[2])
                    return
                await ws.send(frame)
                self.frames += 1
        except Exception:  # the connection went away: what was queued is lost, as on a real socket
            return


class SimAlpaca:
    """Alpaca's market data service on one port: ``/v2/iex``, ``/v2/sip``, ``/v2/test`` (stream) and
    ``/v2/stocks/bars``, ``/v2/stocks/{symbol}/bars`` (historical bars).

    Parameters: ``data`` (the replay file), ``pace`` (``realtime``, ``xSPEED``, ``asap``; ``lockstep``
    only inside the combined simulator), ``host``/``port`` (0: a free port, read ``sim.port`` after
    ``start()``), ``symbol``, ``faults`` (specs, see :mod:`.faults`), ``keys`` ({key: secret}
    accepted; None: any pair), ``connection_limit`` (authenticated stream connections per key and
    feed, Alpaca's is 1; None: no limit), ``page_size`` (REST bars per page at most, <= 10,000),
    ``max_gap_s`` (realtime: the longest wall-clock wait for a gap in the data), ``auth_timeout_s``
    (Alpaca's 10 s to authenticate), ``allow_remote``, ``on_progress``, ``replay`` (False: no replay of
    its own; ticks come from ``deliver_tick``, as in the combined simulator), ``rest_clock``
    (callable -> ns: only bars complete at that time are served).
    """

    def __init__(self, data: Path | str, *, pace: str = REALTIME, host: str = "127.0.0.1", port: int = 0,
                 symbol: str = "TQQQ", faults=(), keys: dict[str, str] | None = None,
                 connection_limit: int | None = None, page_size: int = 10_000, max_gap_s: float = 5.0,
                 auth_timeout_s: float = 10.0, allow_remote: bool = False, on_progress=None,
                 progress_every_s: float = 10.0, replay: bool = True, rest_clock=None):
        check_host(host, allow_remote)
        self.pace, self.speed = parse_pace(pace)
        if replay and self.pace == LOCKSTEP:
            raise ValueError("lockstep needs the TWS side to pace it (the Alpaca stream has no way to ack): "
                             "run the combined simulator, `bothost sim`")
        self.pace_text = pace.strip().lower()
        self.data = Path(data)
        self.host = host
        self.port = port
        self.symbol = symbol.upper()
        self.faults: list[AlpacaFault] = parse_faults(faults)
        self.keys = keys
        self.connection_limit = connection_limit
        self.max_gap_s = max_gap_s
        self.auth_timeout_s = auth_timeout_s
        self.on_progress = on_progress
        self.progress_every_s = progress_every_s
        self.replay = replay
        self.conns: set[StreamConn] = set()
        self.exchange = None  # the combined simulator's venue (attach())
        self.rest = BarsEndpoint(self.symbol, self._bars, page_size=page_size, keys=keys, now_ns=rest_clock,
                                 fault=self._http_fault)
        self.ticks_total: int | None = None
        self.tick_index = -1
        self.clock_ns: int | None = None
        self.finished = False
        self.counters = {"ticks_sent": 0, "trades_sent": 0, "resent": 0, "connections": 0, "auth_failed": 0,
                         "rest_requests": 0, "malformed_in": 0}
        self._server = None
        self._task: asyncio.Task | None = None
        self._bars_table = None
        self._started = None  # asyncio.Event: the first market-data subscription (realtime clock)
        self._stopping = False
        self._bar_state = _BarBuilder(self.symbol)
        self._side_iter = None  # attached mode: the file's sizes and quotes, tick by tick
        self._side_last: StreamTick | None = None
        self._first_idx: int | None = None
        self._ident = (-1, 0)  # (tick index, the trade id it goes out with now)
        self._kind = None  # bars, ticks or quotes
        self._resend_seq = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> SimAlpaca:
        from websockets.asyncio.server import serve

        from bothost_plugins.replay_feed.feed import FileFeed

        feed = FileFeed(self.data, self.symbol).open()  # a bad file is bad input here, before listening
        self.ticks_total = feed.stats().get("ticks_total")
        self._kind = feed.layout.kind
        self._started = asyncio.Event()
        ws_log = logging.getLogger("bothost.sim_alpaca.websockets")
        self._server = await serve(self._handler, self.host, self.port, process_request=self._process_request,
                                   compression=None, logger=ws_log, max_size=1 << 20, open_timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.replay:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-alpaca replay")
        return self

    async def stop(self) -> None:
        self._stopping = True
        if self._started is not None:
            self._started.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for c in list(self.conns):
            c.drop()
        if self._server is not None:
            self._server.close(close_connections=False)
            try:
                await asyncio.wait_for(self._server.wait_closed(), 5)
            except asyncio.TimeoutError:  # pragma: no cover
                pass
            self._server = None

    async def __aenter__(self) -> SimAlpaca:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The base URL for ``StockHistoricalDataClient(url_override=...)`` (and alpaca_feed's ``url``)."""
        return f"http://{self.host}:{self.port}"

    def stream_url(self, feed: str = "iex") -> str:
        """The full websocket URL for ``StockDataStream(url_override=...)``."""
        return f"ws://{self.host}:{self.port}/v2/{feed}"

    # ------------------------------------------------------------------ faults and control
    def add_fault(self, spec: str | AlpacaFault) -> AlpacaFault:
        (f,) = parse_faults([spec])
        self.faults.append(f)
        return f

    def drop_connections(self) -> None:
        """Cut every stream connection now (TCP closed, no close frame)."""
        for c in list(self.conns):
            c.drop()

    def stall(self, seconds: float | None = None) -> None:
        """Every current stream connection goes mute (connected, pings answered) for ``seconds``
        (None: until it closes); what it would have got is sent when the stall ends."""
        until = math.inf if seconds is None else time.monotonic() + seconds
        for c in self.conns:
            c.stalled_until = until
            c.wakeup.set()

    def end_stall(self) -> None:
        for c in self.conns:
            c.stalled_until = 0.0
            c.wakeup.set()

    def _http_fault(self) -> HttpError | None:
        self.counters["rest_requests"] += 1
        for f in self.faults:
            if f.kind.startswith("http") and f.live():
                f.use()
                return HttpError(f.code, None if f.code != 422 else "invalid request (simulated fault)")
        return None

    def _auth_fault(self, feed: str) -> int | None:
        for f in self.faults:
            if f.kind not in AUTH or (f.feed is not None and f.feed != feed):
                continue
            if f.armed > 0:
                f.armed -= 1
                return f.code
            if f.live():
                f.use()
                return f.code
        return None

    def _fire_scheduled(self, tick: StreamTick) -> dict[str, int]:
        """Scheduled faults due before this tick; returns the data faults that apply to it."""
        data = {}
        if self._first_idx is None:
            self._first_idx = tick.idx
            for f in self.faults:  # resumed past them (a restarted combined simulator): not again
                if f.scheduled and ((f.tick is not None and f.tick < tick.idx) or
                                    (f.time_ns is not None and f.time_ns < tick.t)):
                    f.fired = True
        for f in self.faults:
            if f.kind.startswith("http"):
                continue
            if f.due(tick.idx, tick.t):
                f.fired = True
                log.info("sim-alpaca: fault %s before tick %d", f, tick.idx)
                if f.kind == "drop":
                    self.drop_connections()
                elif f.kind == "stall":
                    self.stall(f.seconds)
                elif f.kind in AUTH:
                    f.armed = f.count or 1
                    self.drop_connections()
                else:
                    data[f.kind] = data.get(f.kind, 0) + 1
                    if f.count is not None and f.count > 1:  # tick=N,count=K: ticks N..N+K-1
                        f.next, f.count = True, f.count - 1
            elif f.kind in ("malformed", "nan", "duplicate") and f.live():
                f.use()
                data[f.kind] = data.get(f.kind, 0) + 1
        return data

    # ------------------------------------------------------------------ HTTP: REST, or the upgrade
    async def _process_request(self, connection, request):
        path = urlsplit(request.path).path
        upgrade = "websocket" in (request.headers.get("Upgrade") or "").lower()
        if upgrade:
            if path.rstrip("/") in (f"/v2/{f}" for f in STREAM_FEEDS):
                return None
            return self._json(connection, 404, {"code": 40410000, "message": f"no stream at {path}"})
        if path.startswith("/v2/stocks/"):
            if self._bars_table is None:
                await self._load_bars()
            status, body = self.rest.serve(request.path, request.headers)
            return self._json(connection, status, body)
        if path in ("/", "/health"):
            return self._json(connection, 200, {"service": "bothost sim-alpaca", "symbol": self.symbol,
                                                "pace": self.pace_text, "ticks_sent": self.counters["ticks_sent"]})
        return self._json(connection, 404, {"code": 40410000, "message": "endpoint not found"})

    @staticmethod
    def _json(connection, status: int, body: dict):
        import json

        text = json.dumps(body, separators=(",", ":"), allow_nan=True)
        response = connection.respond(status, text)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json; charset=utf-8"
        return response

    async def _load_bars(self) -> None:
        table = await asyncio.to_thread(load_bars, self.data, self.symbol)
        if self._bars_table is None:
            self._bars_table = table

    def _bars(self):
        if self._bars_table is None:  # pragma: no cover - loaded before the first request
            self._bars_table = load_bars(self.data, self.symbol)
        return self._bars_table

    # ------------------------------------------------------------------ the stream
    async def _handler(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        path = urlsplit(ws.request.path).path.rstrip("/")
        feed = path.rsplit("/", 1)[-1]
        ctype = (ws.request.headers.get("Content-Type") or "").lower()
        mode = wire.MSGPACK if "msgpack" in ctype else wire.JSON
        conn = StreamConn(self, ws, feed, mode)
        peer = ws.remote_address
        conn.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.conns.add(conn)
        self.counters["connections"] += 1
        conn.writer = asyncio.get_running_loop().create_task(conn.write(), name="sim-alpaca writer")
        log.info("sim-alpaca: %s connected to /v2/%s (%s)", conn.peer, feed, mode)
        conn.send([wire.CONNECTED])
        key = ws.request.headers.get("APCA-API-KEY-ID")
        if key:  # Alpaca also takes the keys as headers on the upgrade request
            self._authenticate(conn, key, ws.request.headers.get("APCA-API-SECRET-KEY"))
        if not conn.authed and not conn.closing:
            conn.auth_timer = asyncio.get_running_loop().call_later(self.auth_timeout_s, self._auth_timeout, conn)
        try:
            async for frame in ws:
                if conn.closed:
                    break
                try:
                    self._on_message(conn, frame)
                except Exception:  # never let one bad message take the connection (or the server) down
                    log.exception("sim-alpaca: error handling a message from %s", conn.peer)
                    conn.send([wire.error(500)])
        except ConnectionClosed:
            pass
        finally:
            self._gone(conn)

    def _gone(self, conn: StreamConn) -> None:
        had = self._paces(conn)
        conn.closed = True
        self.conns.discard(conn)
        if conn.auth_timer is not None:
            conn.auth_timer.cancel()
        if conn.writer is not None and not conn.writer.done():
            conn.writer.cancel()
        log.info("sim-alpaca: %s disconnected", conn.peer)
        if had and self.exchange is not None:
            self.exchange.wake()

    def _auth_timeout(self, conn: StreamConn) -> None:
        if not conn.authed and not conn.closed:
            conn.send([wire.error(404)])
            conn.close_after(1008, "auth timeout")

    def _authenticate(self, conn: StreamConn, key, secret) -> None:
        code = self._auth_fault(conn.feed)
        if code is None:
            if not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
                code = 402
            elif self.keys is not None and self.keys.get(key) != secret:
                code = 402
            elif self.connection_limit is not None and sum(
                    1 for c in self.conns if c.authed and c.key == key and c.feed == conn.feed) >= self.connection_limit:
                code = 406
        if code is not None:
            self.counters["auth_failed"] += 1
            log.info("sim-alpaca: %s: auth refused with %s", conn.peer, code)
            conn.send([wire.error(code, AUTH_MESSAGES.get(code))])
            conn.close_after(1008, AUTH_MESSAGES.get(code, "error"))
            return
        conn.authed, conn.key = True, key
        if conn.auth_timer is not None:
            conn.auth_timer.cancel()
            conn.auth_timer = None
        conn.send([wire.AUTHENTICATED])

    def _on_message(self, conn: StreamConn, frame) -> None:
        msg = wire.decode(frame)
        if not isinstance(msg, dict):
            self.counters["malformed_in"] += 1
            conn.send([wire.error(400)])
            return
        action = msg.get("action")
        if action == "auth":
            if conn.authed:
                conn.send([wire.error(403)])
                return
            self._authenticate(conn, msg.get("key"), msg.get("secret"))
            return
        if action not in ("subscribe", "unsubscribe"):
            conn.send([wire.error(400)])
            return
        if not conn.authed:
            conn.send([wire.error(401)])
            return
        asked = {}
        for ch in wire.CHANNELS:
            if ch in msg:
                value = msg[ch]
                if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                    conn.send([wire.error(400)])
                    return
                asked[ch] = [s.upper() if s != "*" else s for s in value]
        before = self._paces(conn)
        added_trades = False
        for ch, symbols in asked.items():
            if ch in wire.FOLLOW_TRADES:
                continue  # these follow the trade subscription
            target = conn.subs[ch]
            if action == "subscribe":
                if ch in ("trades", "quotes") and any(s == self.symbol or s == "*" for s in symbols):
                    added_trades = True
                target.update(symbols)
            else:
                target.difference_update(symbols)
        for ch in wire.FOLLOW_TRADES:
            conn.subs[ch] = set(conn.subs["trades"])
        conn.send([{"T": "subscription", **{ch: sorted(conn.subs[ch]) for ch in wire.CHANNELS}}])
        log.info("sim-alpaca: %s %sd %s", conn.peer, action, {k: sorted(v) for k, v in conn.subs.items() if v})
        now = self._paces(conn)
        if self._started is not None and any(conn.wants(ch, self.symbol) for ch in ("trades", "quotes", "bars",
                                                                                   "dailyBars", "updatedBars")):
            self._started.set()
        if self.exchange is not None:
            if added_trades and now:
                self.exchange.external_subscribed(self, conn)
            elif now != before:
                self.exchange.wake()

    def _paces(self, conn: StreamConn) -> bool:
        return conn.authed and not conn.closed and (conn.wants("trades", self.symbol) or
                                                    conn.wants("quotes", self.symbol))

    # ------------------------------------------------------------------ data out
    def has_subscribers(self) -> bool:
        """Is a client subscribed to this symbol's trades (or quotes)? The combined simulator's pacers need one."""
        for c in self.conns:
            if self._paces(c):
                return True
        return False

    def deliver(self, tick: StreamTick, flush: bool = True) -> None:
        """Tick ``tick`` to every subscriber: closed bars first, then the trade and the quote."""
        data_faults = self._fire_scheduled(tick)
        self.tick_index, self.clock_ns = tick.idx, tick.t
        sym = self.symbol
        bars = self._bar_state.add(tick)
        trade = quote = None
        self.counters["ticks_sent"] += 1
        for c in self.conns:
            if not c.authed or c.closed:
                continue
            out = c.pending
            if bars:
                for kind, msg in bars:
                    if c.wants("dailyBars" if kind == "d" else "bars", sym):
                        out.append(msg)
            if c.wants("trades", sym):
                if trade is None:
                    trade = wire.trade(sym, tick.idx + 1, tick.t, tick.p, tick.size, c.feed)
                    self._ident = (tick.idx, tick.idx + 1)
                if "malformed" in data_faults:
                    if out:
                        c.send(out)
                        out = c.pending = []
                    c.put(wire.malformed(c.mode))
                if "nan" in data_faults:
                    out.append(wire.trade(sym, NAN_ID_BASE + tick.idx, tick.t, tick.p, tick.size, c.feed,
                                          p=float("nan")))
                out.append(trade)
                if "duplicate" in data_faults:
                    out.append(trade)
                self.counters["trades_sent"] += 1
            if c.wants("quotes", sym):
                if quote is None:
                    bid, ask = quote_of(tick)
                    quote = wire.quote(sym, tick.t, bid, ask, tick.bid_size, tick.ask_size, c.feed)
                out.append(quote)
        if flush:
            self.flush()

    def flush(self) -> None:
        for c in self.conns:
            if c.pending:
                msgs, c.pending = c.pending, []
                c.send(msgs)
                if len(c.outbox) > SLOW_CLIENT_FRAMES and not c.stalled:
                    log.warning("sim-alpaca: %s does not read its messages; cut off (407 slow client)", c.peer)
                    c.outbox.clear()
                    c.send([wire.error(407)])
                    c.close_after(1008, "slow client")

    def flush_bars(self) -> None:
        """The data has ended: the last minute and daily bars go out."""
        sym = self.symbol
        for kind, msg in self._bar_state.close():
            for c in self.conns:
                if c.authed and not c.closed and c.wants("dailyBars" if kind == "d" else "bars", sym):
                    c.pending.append(msg)
        self.flush()

    # ------------------------------------------------------------------ the combined simulator's door
    def attach(self, exchange) -> None:
        """Become a market-data front door of a sim_tws Exchange (its replay calls deliver_tick)."""
        self.exchange = exchange
        if exchange is not None and exchange not in getattr(exchange, "md_sinks", []):
            exchange.md_sinks.append(self)

    def _side(self, idx: int, t: int, p: int) -> StreamTick:
        """The file's own tick ``idx`` (sizes, quotes), or one made of (t, p)."""
        last = self._side_last
        if last is not None and last.t == t:
            return last
        if self._kind == "bars":  # nothing but (t, p) to add: no second reading of the file
            tick = self._side_last = StreamTick(idx, t, p)
            return tick
        if self._side_iter is None:
            self._side_iter = iter_ticks(self.data, self.symbol)
        tick = None
        for tick in self._side_iter:
            if tick.t >= t:
                break
        if tick is None or tick.t != t or tick.p != p:
            self._side_iter = None  # out of line (should not happen): read again from the start next time
            tick = StreamTick(idx, t, p)
        tick.idx = idx
        self._side_last = tick
        return tick

    def deliver_tick(self, idx: int, t: int, p: int) -> None:
        self.deliver(self._side(idx, t, p))

    def resend_tick(self, idx: int, t: int, p: int, conn: StreamConn | None = None, fresh: bool = False) -> None:
        """Tick ``idx`` once more, trade (and quote) only, to one connection or every subscriber.

        The trade keeps the id it last went out with, so a feed that already handled it drops it
        (same time, same id): that is the re-send to an Alpaca client that (re)subscribes while the
        tick's ack is outstanding. ``fresh``: a new id, for the re-send owed to a TWS client that
        reconnected (its feed may have seen the trade while its broker was down, or handled it and
        lost the ack with the socket: it must take it again)."""
        tick = self._side(idx, t, p)
        sym = self.symbol
        if fresh:
            self._resend_seq += 1
            self._ident = (idx, RESEND_ID_BASE + self._resend_seq)
        ident = self._ident[1] if self._ident[0] == idx else idx + 1
        for c in ([conn] if conn is not None else list(self.conns)):
            if c is None or not c.authed or c.closed:
                continue
            msgs = []
            if c.wants("trades", sym):
                msgs.append(wire.trade(sym, ident, t, p, tick.size, c.feed))
            if c.wants("quotes", sym):
                bid, ask = quote_of(tick)
                msgs.append(wire.quote(sym, t, bid, ask, tick.bid_size, tick.ask_size, c.feed))
            if msgs:
                c.send(msgs)
                self.counters["resent"] += 1

    # ------------------------------------------------------------------ the replay (alone)
    async def _run(self) -> None:
        try:
            await self._started.wait()
            if self._stopping:
                return
            anchor = None
            last_progress = time.monotonic()
            batch = 0
            for tick in iter_ticks(self.data, self.symbol):
                if self._stopping:
                    return
                if self.pace == REALTIME:
                    anchor = await self._realtime_wait(tick.t, anchor)
                    self.deliver(tick)
                else:
                    batch += 1
                    full = batch >= ASAP_BATCH
                    self.deliver(tick, flush=full)
                    if full:
                        batch = 0
                        await self._backpressure()
                now = time.monotonic()
                if self.on_progress is not None and now - last_progress >= self.progress_every_s:
                    last_progress = now
                    self.on_progress(self.progress_line())
            self.flush()
            self.flush_bars()
            self.finished = True
            if self.on_progress is not None:
                self.on_progress(self.progress_line() + " (data ended; still serving)")
        except asyncio.CancelledError:
            raise

    async def _backpressure(self) -> None:
        await asyncio.sleep(0)
        while not self._stopping:
            busy = [c for c in self.conns if not c.closed and not c.stalled and len(c.outbox) > BACKLOG_FRAMES]
            if not busy:
                return
            await asyncio.sleep(0.001)

    async def _realtime_wait(self, t: int, anchor):
        now = time.monotonic()
        if anchor is None:
            return now, t
        wall0, t0 = anchor
        due = wall0 + (t - t0) / NS / self.speed
        if due - now > self.max_gap_s:  # nights and weekends: no hours of silence
            wall0 = now + self.max_gap_s - (t - t0) / NS / self.speed
            due = now + self.max_gap_s
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return wall0, t0

    async def wait_finished(self, timeout: float | None = None) -> None:
        async def _w():
            while not self.finished:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(_w(), timeout)

    def progress_line(self) -> str:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        when = "-" if self.clock_ns is None else datetime.fromtimestamp(
            self.clock_ns // NS, ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M:%S")
        total = f"/{self.ticks_total:,}" if self.ticks_total else ""
        return (f"sim-alpaca: tick {self.tick_index + 1:,}{total} at {when}, "
                f"{sum(1 for c in self.conns if c.authed)} stream client(s), {self.counters['rest_requests']:,} "
                f"REST request(s)")


class _BarBuilder:
    """One-minute bars (and New York daily bars) of the ticks, closed when a later tick comes."""

    def __init__(self, symbol: str):
        self.symbol = symbol
        self.minute: list | None = None  # [start, end, o, h, l, c, v, n, pv]
        self.day: list | None = None

    def add(self, tick: StreamTick) -> list[tuple[str, dict]]:
        out = []
        t, p, s = tick.t, tick.p, tick.size
        m = self.minute
        if m is not None and t >= m[1]:
            out.append(("b", self._msg("b", m)))
            m = None
        if m is None:
            start = t - t % MINUTE_NS
            self.minute = [start, start + MINUTE_NS, p, p, p, p, s, 1, p * s]
        else:
            _upd(m, p, s)
        d = self.day
        if d is not None and t >= d[1]:
            out.append(("d", self._msg("d", d)))
            d = None
        if d is None:
            start, end = _ny_day(t)
            self.day = [start, end, p, p, p, p, s, 1, p * s]
        else:
            _upd(d, p, s)
        return out

    def close(self) -> list[tuple[str, dict]]:
        out = []
        if self.minute is not None:
            out.append(("b", self._msg("b", self.minute)))
            self.minute = None
        if self.day is not None:
            out.append(("d", self._msg("d", self.day)))
            self.day = None
        return out

    def _msg(self, kind: str, b: list) -> dict:
        start, _end, o, h, lo, c, v, n, pv = b
        vw = pv / v / 100 if v else (o + h + lo + c) / 400
        return wire.bar(kind, self.symbol, start, o, h, lo, c, v, n, vw)


def _upd(b: list, p: int, s: int) -> None:
    if p > b[3]:
        b[3] = p
    if p < b[4]:
        b[4] = p
    b[5] = p
    b[6] += s
    b[7] += 1
    b[8] += p * s


def _ny_day(t: int) -> tuple[int, int]:
    import numpy as np

    from bothost_plugins.replay_feed.times import local_to_utc, utc_offset

    arr = np.array([t], dtype=np.int64)
    wall = arr + utc_offset(arr)
    day = wall - wall % DAY_NS
    bounds = local_to_utc(np.array([day[0], day[0] + DAY_NS], dtype=np.int64))
    return int(bounds[0]), int(bounds[1])


class SimAlpacaThread:
    """A :class:`SimAlpaca` in a background thread with its own event loop (for synchronous tests and
    tools): ``with SimAlpacaThread(data=..., pace="asap") as sim: sim.port ...``;
    ``sim.call(fn, *args)`` runs ``fn(sim.sim, *args)`` on the simulator's loop (awaited if a coroutine)."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.sim: SimAlpaca | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    @property
    def port(self) -> int:
        return self.sim.port

    @property
    def url(self) -> str:
        return self.sim.url

    def stream_url(self, feed: str = "iex") -> str:
        return self.sim.stream_url(feed)

    def start(self) -> SimAlpacaThread:
        self._thread = threading.Thread(target=self._main, name="sim-alpaca", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        async def main():
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                self.sim = SimAlpaca(**self.kwargs)
                await self.sim.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            await self._stop.wait()
            await self.sim.stop()
        asyncio.run(main())

    def call(self, fn, *args, timeout: float = 30):
        async def run():
            r = fn(self.sim, *args)
            if asyncio.iscoroutine(r):
                r = await r
            return r
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)

    def __enter__(self) -> SimAlpacaThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["SimAlpaca", "SimAlpacaThread", "StreamConn", "parse_pace"]
