"""Shared helpers for the sim_tws tests (no tests here): real clients, a lockstep pacer, a tiny bot.

Everything talks to the simulator over real sockets on 127.0.0.1 with the installed clients
(ib_insync 0.9.86 and ib_async 2.1.0), exactly as a bot would.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from decimal import Decimal
from pathlib import Path

import pytest

from bothost.model import OrderRequest, OrderType, Side
from bothost_plugins.replay_feed.feed import FileFeed
from bothost_plugins.sim_broker.venue import Commission, Venue
from bothost_plugins.sim_tws import SimTws

def _lib_param(name: str):
    try:
        importlib.import_module(name)
    except ImportError:
        return pytest.param(name, marks=pytest.mark.skip(reason=f"{name} is not installed"))
    return name


#: both real clients; ib_async is the maintained fork (install it with the test extras)
LIBS = [_lib_param("ib_insync"), _lib_param("ib_async")]
NS = 1_000_000_000


def lib(name: str):
    return importlib.import_module(name)


def run(coro, timeout: float = 45):
    """Run one test's coroutine in a fresh event loop (as ``asyncio.run``), bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def feed_ticks(path: Path, symbol: str = "TQQQ") -> list[tuple[int, int]]:
    out = []
    for chunk in FileFeed(path, symbol).chunks():
        out += list(zip(chunk.time_ns.tolist(), chunk.price.tolist()))
    return out


async def connect(libname: str, port: int, client_id: int, timeout: float = 3, **kw):
    m = lib(libname)
    ib = m.IB()
    await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=timeout, **kw)
    ib.client.MaxRequests = 0  # the simulator does not pace requests; acks must not be throttled
    return ib


def stock(libname: str):
    return lib(libname).Stock("TQQQ", "SMART", "USD")


async def until(pred, timeout: float = 5.0, step: float = 0.005):
    """Poll ``pred()`` until it is true (the clients update their state as messages arrive)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


async def gone(sim: SimTws, client_id: int, timeout: float = 5.0):
    """Wait until the simulator has seen a client id's connection close (before reusing the id)."""
    await until(lambda: client_id not in sim.exchange.sessions, timeout)


class ErrorLog:
    """Collects (reqId, code, message) from ib.errorEvent."""

    def __init__(self, ib):
        self.items: list[tuple[int, int, str]] = []
        ib.errorEvent += self._on

    def _on(self, req_id, code, msg, *rest):
        self.items.append((req_id, code, msg))

    def codes(self, req_id=None):
        return [c for r, c, _ in self.items if req_id is None or r == req_id]


class Pacer:
    """The lockstep extension as a bot would speak it: HELLO, a tick-by-tick subscription, and an
    ack after each tick and each execution has been handled (and every order it caused was sent).

    ``on_tick(t_s, price_cents)`` and ``on_fill(fill)`` run inside the client's decoder, like a
    bot's handlers; ``kill_when(kind, key)`` returning True simulates a crash at that point: the
    event is not handled, nothing more is sent, the connection is dropped.
    """

    def __init__(self, ib, on_tick=None, on_fill=None, kill_when=None, ack=True):
        self.ib = ib
        self.on_tick = on_tick
        self.on_fill = on_fill
        self.kill_when = kill_when
        self.ack = ack
        self.dead = False
        self.ticks: list[tuple[int, float]] = []
        dec = ib.client.decoder
        orig_tbt, orig_comm = dec.handlers[99], dec.handlers[59]

        def tbt(fields):
            if self.dead:
                return
            orig_tbt(fields)
            t_s, price = int(fields[3]), fields[4]
            if self.kill_when and self.kill_when("tick", t_s):
                return self.kill()
            self.ticks.append((t_s, float(price)))
            if self.on_tick:
                self.on_tick(t_s, _cents(price))
            if self.ack:
                ib.client.send(9001, 1, "tick", str(t_s * NS))

        def comm(fields):
            if self.dead:
                return
            orig_comm(fields)
            exec_id = fields[2]
            if self.kill_when and self.kill_when("exec", exec_id):
                return self.kill()
            if self.on_fill:
                fill = ib.wrapper.fills.get(exec_id)
                self.on_fill(fill)
            if self.ack:
                ib.client.send(9001, 1, "exec", exec_id)

        dec.handlers[99] = tbt
        dec.handlers[59] = comm

    def start(self, contract):
        self.ib.client.send(9000, 1)
        return self.ib.reqTickByTickData(contract, "AllLast")

    def kill(self):
        self.dead = True
        asyncio.get_running_loop().call_soon(self.ib.disconnect)


def _cents(text: str) -> int:
    return int((Decimal(text) * 100).to_integral_value())


# ============================================================== a tiny deterministic bot
class MiniGrid:
    """One BUY resting 30 cents under the last price (every third one a LIT), a SELL 40 cents above
    each BUY fill, and the resting BUY cancelled when a SELL fills. Its whole state can be rebuilt
    from the broker (``reconstruct``), so a killed-and-restarted run must give the same fills.

    ``broker`` has ``place(side, qty, limit_cents, ref, lit) -> handle`` and ``cancel(handle)``.
    """

    def __init__(self, broker):
        self.b = broker
        self.buy = None  # (handle, placed at t_s)

    def on_tick(self, t_s: int, price: int) -> None:
        if self.buy is None:
            lit = (t_s // 15) % 3 == 0
            self.buy = (self.b.place("BUY", 10, price - 30, f"B{t_s}", lit), t_s)

    def on_fill(self, t_s: int, side: str, price: int, ref: str, complete: bool) -> None:
        if side == "BUY":
            if complete:
                self.buy = None
                self.b.place("SELL", 10, price + 40, f"S:{ref}", False)
        elif self.buy is not None and self.buy[1] < t_s:
            self.b.cancel(self.buy[0])
            self.buy = None

    def reconstruct(self, open_orders, executions) -> None:
        """open_orders: [(handle, side, ref)]; executions: [(t_s, side, price_cents, ref, complete)]"""
        buys = [(h, ref) for h, side, ref in open_orders if side == "BUY" and ref.startswith("B")]
        self.buy = (buys[0][0], int(buys[0][1][1:])) if buys else None
        sells = {ref for _h, side, ref in open_orders if side == "SELL"} | \
            {ref for _t, side, _p, ref, _c in executions if side == "SELL"}
        for _t, side, price, ref, complete in executions:
            if side == "BUY" and complete and f"S:{ref}" not in sells:
                self.b.place("SELL", 10, price + 40, f"S:{ref}", False)
                sells.add(f"S:{ref}")
        last_sell = max((t for t, side, _p, _r, _c in executions if side == "SELL"), default=None)
        if self.buy is not None and last_sell is not None and self.buy[1] < last_sell:
            self.b.cancel(self.buy[0])
            self.buy = None


class VenueBroker:
    def __init__(self, venue: Venue):
        self.venue = venue

    def place(self, side, qty, limit, ref, lit):
        lim = Decimal(limit).scaleb(-2)
        return self.venue.place(OrderRequest("TQQQ", Side(side), qty, lim,
                                             OrderType.LIMIT_IF_TOUCHED if lit else OrderType.LIMIT,
                                             lim if lit else None, ref=ref))

    def cancel(self, handle):
        self.venue.cancel(handle)


def reference_fills(ticks, partial: int | None = None):
    """The MiniGrid run directly on the venue, the way the engine drives it (fills, then the tick)."""
    venue = Venue(lambda e: None, Commission(), partial)
    bot = MiniGrid(VenueBroker(venue))
    fills = []
    for t, p in ticks:
        for f in venue.match(t, p):
            fills.append((f.time_ns, f.side.value, f.quantity, f.price, f.ref))
            bot.on_fill(t // NS, f.side.value, int(f.price * 100), f.ref, f.order_complete)
        bot.on_tick(t // NS, p)
    return fills


class IbBroker:
    def __init__(self, libname: str, ib):
        self.m = lib(libname)
        self.ib = ib
        self.contract = stock(libname)

    def place(self, side, qty, limit, ref, lit):
        px = limit / 100
        if lit:
            o = self.m.Order(action=side, totalQuantity=qty, orderType="LIT", lmtPrice=px, auxPrice=px,
                             tif="GTC", outsideRth=True, orderRef=ref)
        else:
            o = self.m.LimitOrder(side, qty, px, tif="GTC", outsideRth=True, orderRef=ref)
        return self.ib.placeOrder(self.contract, o)

    def cancel(self, trade):
        self.ib.cancelOrder(trade.order)


def fill_args(fill):
    e = fill.execution
    side = "BUY" if e.side == "BOT" else "SELL"
    return (int(e.time.timestamp()), side, _cents(repr(e.price)), e.orderRef, e.cumQty >= 10)


async def start_bot(libname: str, sim: SimTws, client_id: int, kill_when=None):
    """Connect a MiniGrid bot, reconstruct it from the simulator, then become a pacer."""
    ib = await connect(libname, sim.port, client_id)
    broker = IbBroker(libname, ib)
    await ib.qualifyContractsAsync(broker.contract)  # ib_async hashes contracts: it needs the conId
    bot = MiniGrid(broker)
    trades = await ib.reqAllOpenOrdersAsync()
    fills = await ib.reqExecutionsAsync()
    bot.reconstruct([(t, t.order.action, t.order.orderRef) for t in trades
                     if t.orderStatus.status in ("PreSubmitted", "Submitted")],
                    [fill_args(f) for f in sorted(fills, key=lambda f: f.execution.execId)])
    pacer = Pacer(ib, on_tick=bot.on_tick, on_fill=lambda f: bot.on_fill(*fill_args(f)), kill_when=kill_when)
    pacer.start(broker.contract)
    return ib, bot, pacer


def sim_fills(sim: SimTws):
    return [(e.time_ns, e.side, e.shares, e.price, e.ref) for e in sim.executions()]


@pytest.fixture
def quiet_logs(caplog):
    caplog.set_level(logging.INFO)
    return caplog
