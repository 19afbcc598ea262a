"""Shared helpers for the sim_alpaca and combined-simulator tests (no tests here).

Everything talks to the simulators over real sockets on 127.0.0.1 with the installed clients:
alpaca-py 0.44's ``StockDataStream`` (driven by its own ``_run_forever()`` on the test's event loop,
as bothost's alpaca_feed drives it, or by ``run()`` in a thread) and ``StockHistoricalDataClient``,
and ib_insync for the TWS side of the combined simulator.
"""

from __future__ import annotations

import asyncio
import logging

from test_sim_tws_helpers import NS, IbBroker, MiniGrid, connect, fill_args

from bothost.model import float_to_cents


class Stream:
    """An alpaca-py StockDataStream on the running loop: ``await Stream(url, ...).start()``; the messages
    it hands its handlers are in ``trades``, ``quotes``, ``bars``; ``await stop()`` ends it cleanly."""

    def __init__(self, url: str, *, raw: bool = False, trades=True, quotes=False, bars=False, daily=False,
                 symbol: str = "TQQQ", data_timeout: float | None = None, backoff: float | None = None,
                 key: str = "key", secret: str = "secret", on_trade=None):
        from alpaca.data.live import StockDataStream

        self.s = StockDataStream(key, secret, raw_data=raw, url_override=url, data_timeout=data_timeout)
        if backoff is not None:  # alpaca-py waits 0.5-1 s before its first reconnect; tests need not
            self.s._reconnect_min_backoff = backoff
        self.trades, self.quotes, self.bars, self.daily = [], [], [], []
        self._on_trade = on_trade

        async def on_t(x):
            self.trades.append(x)
            if self._on_trade is not None:
                await self._on_trade(x)

        async def on_q(x):
            self.quotes.append(x)

        async def on_b(x):
            self.bars.append(x)

        async def on_d(x):
            self.daily.append(x)

        if trades:
            self.s.subscribe_trades(on_t, symbol)
        if quotes:
            self.s.subscribe_quotes(on_q, symbol)
        if bars:
            self.s.subscribe_bars(on_b, symbol)
        if daily:
            self.s.subscribe_daily_bars(on_d, symbol)
        self.task: asyncio.Task | None = None

    async def start(self) -> Stream:
        self.task = asyncio.get_running_loop().create_task(self.s._run_forever())
        return self

    @property
    def ended(self) -> bool:
        return self.task is not None and self.task.done()

    async def stop(self) -> None:
        await self.s.stop_ws()
        await self.s.close()  # wakes its recv at once (else it notices the stop within 5 s)
        await asyncio.wait_for(self.task, 10)


class AlpacaBot:
    """The MiniGrid (test_sim_tws_helpers) as an IB + Alpaca bot: orders and executions over TWS
    (ib_insync, lockstep HELLO and acks), ticks from alpaca-py's stream (raw, exact ns). It drops a
    trade it already handled (same or earlier time), acks each handled tick with its exact time_ns
    and each execution with its id, after the orders they caused.

    ``kill_when(kind, key)`` returning True is a crash at that point: the event is not handled,
    nothing more is sent, both connections close. ``key`` is the tick's whole seconds or the exec id.
    """

    def __init__(self, sim, client_id: int = 11, kill_when=None, backoff: float | None = 0.05,
                 data_timeout: float | None = None):
        self.sim = sim
        self.client_id = client_id
        self.kill_when = kill_when
        self.backoff = backoff
        self.data_timeout = data_timeout
        self.ticks: list[int] = []  # handled ticks' time_ns
        self.duplicates = 0
        self.dead = False
        self.before_ack = None  # before_ack(t_ns): a hook between handling a tick and acking it
        self._last = (-1, set())

    async def start(self) -> AlpacaBot:
        await self.connect_tws()
        await self.connect_alpaca()
        return self

    async def connect_tws(self) -> None:
        """Connect to TWS, reconstruct from it, then HELLO (also after a reconnect: same process)."""
        ib = self.ib = await connect("ib_insync", self.sim.tws_port, self.client_id)
        broker = IbBroker("ib_insync", ib)
        await ib.qualifyContractsAsync(broker.contract)
        self.bot = MiniGrid(broker)
        trades = await ib.reqAllOpenOrdersAsync()
        fills = await ib.reqExecutionsAsync()
        self.bot.reconstruct([(t, t.order.action, t.order.orderRef) for t in trades
                              if t.orderStatus.status in ("PreSubmitted", "Submitted")],
                             [fill_args(f) for f in sorted(fills, key=lambda f: f.execution.execId)])
        dec = ib.client.decoder
        orig = dec.handlers[59]

        def commission(fields):
            if self.dead or ib is not self.ib:
                return
            orig(fields)
            exec_id = fields[2]
            if self.kill_when and self.kill_when("exec", exec_id):
                return self.kill()
            self.bot.on_fill(*fill_args(ib.wrapper.fills.get(exec_id)))
            ib.client.send(9001, 1, "exec", exec_id)

        dec.handlers[59] = commission
        ib.client.send(9000, 1)  # HELLO, after the reconstruct

    async def connect_alpaca(self) -> None:
        """A stream (a new one after a reconnect; the bot's memory of what it handled is kept)."""
        self.stream = await Stream(self.sim.stream_url(), raw=True, backoff=self.backoff,
                                   data_timeout=self.data_timeout, on_trade=self._on_trade).start()

    async def _on_trade(self, msg) -> None:
        if self.dead:
            return
        t = msg["t"].to_unix_nano()
        p = float_to_cents(msg["p"])
        if p is None:
            return  # a bad tick (NaN): counted by a real feed, never handled
        last, ids = self._last
        if t < last or (t == last and msg["i"] in ids):
            self.duplicates += 1
            return
        if self.kill_when and self.kill_when("tick", t // NS):
            return self.kill()
        self._last = (t, {msg["i"]}) if t > last else (t, ids | {msg["i"]})
        self.ticks.append(t)
        if not self.ib.isConnected():
            return  # the broker is down: a real engine holds the tick back (no strategy, no ack)
        self.bot.on_tick(t // NS, p)
        if self.before_ack is not None:
            self.before_ack(t)
        if self.ib.isConnected():
            self.ib.client.send(9001, 1, "tick", str(t))

    def kill(self) -> None:
        self.dead = True
        loop = asyncio.get_running_loop()
        loop.call_soon(self.ib.disconnect)
        loop.create_task(self._close_stream())

    async def _close_stream(self) -> None:
        await self.stream.s.stop_ws()
        await self.stream.s.close()

    async def stop(self) -> None:
        self.dead = True
        self.ib.disconnect()
        await self.stream.stop()


def quiet_alpaca() -> None:
    """alpaca-py logs every reconnect with a traceback; the tests look at what the client got."""
    logging.getLogger("alpaca").setLevel(logging.CRITICAL)
