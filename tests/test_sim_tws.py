"""sim_tws conformance: every request a bot makes, with the real ib_insync 0.9.86 and ib_async
2.1.0 clients over real sockets on 127.0.0.1 (see docs/sim-tws.md)."""

from __future__ import annotations

import asyncio
import logging
import re
import struct
import time
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from conftest import write_bars
from test_sim_tws_helpers import LIBS, NS, ErrorLog, connect, feed_ticks, lib, run, stock, until

from bothost_plugins.sim_tws import SERVER_VERSION, SimTws
from bothost_plugins.sim_tws.exchange import con_id_for

NY = ZoneInfo("America/New_York")
CLOSES = [100.00, 99.50, 99.00, 98.50, 98.00, 98.50, 99.00, 99.50, 100.00, 100.50, 101.00, 101.50,
          102.00, 101.50, 101.00, 100.50, 100.00, 99.50, 99.00, 98.50]


@pytest.fixture(scope="module")
def bars(tmp_path_factory):
    return write_bars(tmp_path_factory.mktemp("bars") / "bars.csv", CLOSES)


@pytest.fixture(scope="module")
def ticks(bars):
    return feed_ticks(bars)


def lowest_after(ticks, start: int):
    """(index, cents) of the first new low reached after tick ``start`` (a resting BUY there fills)."""
    low = min(p for _, p in ticks[:start + 1])
    for i in range(start + 1, len(ticks)):
        if ticks[i][1] < low:
            return i, ticks[i][1]
    raise AssertionError("no new low")


def with_sim(bars, tmp_path, **kw):
    """Decorator-ish: run ``body(sim)`` against a started simulator, always stopping it."""
    async def go(body):
        sim = await SimTws(bars, tmp_path / "state", **kw).start()
        try:
            return await body(sim)
        finally:
            await sim.stop()
    return go


# ============================================================== connection
@pytest.mark.parametrize("libname", LIBS)
def test_connect_is_fast_and_complete(bars, tmp_path, caplog, libname):
    caplog.set_level(logging.INFO)

    async def body(sim):
        m = lib(libname)
        ib = m.IB()
        errors = ErrorLog(ib)
        t0 = time.perf_counter()
        await ib.connectAsync("127.0.0.1", sim.port, clientId=1, timeout=3)
        elapsed = time.perf_counter() - t0
        assert elapsed < 1.0, elapsed
        assert ib.client.serverVersion() == SERVER_VERSION == 176
        assert ib.managedAccounts() == ["DU1234567"]
        assert {2104, 2106, 2158} <= set(errors.codes(-1))
        assert "timed out" not in caplog.text
        assert ib.isConnected()
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


def test_a_client_whose_versions_exclude_176_is_refused(bars, tmp_path):
    async def body(sim):
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        msg = b"v100..150"
        writer.write(b"API\0" + struct.pack(">I", len(msg)) + msg)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 3) == b""  # closed, nothing sent
        writer.close()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_client_id_in_use_gets_326(bars, tmp_path, libname):
    async def body(sim):
        first = await connect(libname, sim.port, 3)
        m = lib(libname)
        second = m.IB()
        errors = ErrorLog(second)
        with pytest.raises((asyncio.TimeoutError, ConnectionError, OSError)):
            await second.connectAsync("127.0.0.1", sim.port, clientId=3, timeout=1)
        assert 326 in errors.codes(-1)
        assert first.isConnected()
        first.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_client_id_zero_autobinds(bars, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 0)  # connect sends reqAutoOpenOrders(True) for client 0
        assert ib.isConnected()
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_unknown_messages_are_ignored_and_the_session_lives(bars, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 1)
        ib.client.send(4242, 1, "whatever")
        ib.client.send(20, 1, "historical data is not served")  # reqHistoricalData: ignored too
        when = await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)
        assert when is not None
        assert sim.exchange.counters["unknown_messages"] == 2
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


# ============================================================== contracts and market data
@pytest.mark.parametrize("libname", LIBS)
def test_contract_details_stable_con_id_and_200_for_unknown(bars, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 1)
        errors = ErrorLog(ib)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        assert c.conId == con_id_for("TQQQ") == 100_000_000 + __import__("zlib").crc32(b"TQQQ") % 800_000_000
        details = await ib.reqContractDetailsAsync(lib(libname).Stock("TQQQ", "SMART", "USD"))
        assert len(details) == 1 and details[0].contract.primaryExchange == "NASDAQ"
        assert details[0].minTick == 0.01 and details[0].contract.tradingClass == "NMS"
        unknown = await ib.reqContractDetailsAsync(lib(libname).Stock("NOPE", "SMART", "USD"))
        assert unknown == []
        assert 200 in errors.codes()
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_req_tickers_snapshot(bars, ticks, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 1)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        await sim.advance(3)
        [ticker] = await asyncio.wait_for(ib.reqTickersAsync(c), 3)
        assert ticker.last == ticks[2][1] / 100
        assert ticker.lastSize == 100
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_streaming_market_data_and_tick_by_tick(bars, ticks, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 1)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        seen_tbt, seen_last = [], []

        def on_pending(tickers):
            for t in tickers:
                for tb in t.tickByTicks:
                    seen_tbt.append((tb.price, tb.size))
                for td in t.ticks:
                    if td.tickType == 4:
                        seen_last.append(td.price)
        ib.pendingTickersEvent += on_pending
        mkt = ib.reqMktData(c)
        ib.reqTickByTickData(c, "AllLast")
        await until(lambda: 1 in sim.exchange.sessions and sim.exchange.sessions[1].tbt
                    and sim.exchange.sessions[1].mkt)
        await sim.advance(6)
        await until(lambda: len(seen_tbt) == 6 and len(seen_last) == 6)
        assert [p for p, _ in seen_tbt] == [p / 100 for _, p in ticks[:6]]
        assert seen_last == [p / 100 for _, p in ticks[:6]]
        assert mkt.last == ticks[5][1] / 100
        ib.cancelMktData(c)
        ib.cancelTickByTickData(c, "AllLast")
        await until(lambda: not sim.exchange.sessions[1].has_md)
        await sim.advance(3)
        await asyncio.sleep(0.05)
        assert len(seen_tbt) == 6  # nothing after the cancels
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_tick_by_tick_last_carries_the_data_time(bars, ticks, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 1)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        times = []
        dec = ib.client.decoder
        orig = dec.handlers[99]

        def h(fields):
            times.append((int(fields[2]), int(fields[3]), fields[8]))
            orig(fields)
        dec.handlers[99] = h
        ib.reqTickByTickData(c, "Last")
        await until(lambda: 1 in sim.exchange.sessions and sim.exchange.sessions[1].tbt)
        await sim.advance(4)
        await until(lambda: len(times) == 4)
        # tickType 1 = Last; the data time in seconds, and exactly in specialConditions
        assert times == [(1, t // NS, f"ns={t}") for t, _ in ticks[:4]]
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_market_data_type(bars, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 1)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        got = []
        dec = ib.client.decoder
        orig = dec.handlers[58]
        dec.handlers[58] = lambda f: (got.append(int(f[3])), orig(f))
        ib.reqMarketDataType(3)  # delayed if no live data: the simulator always has live data
        ticker = ib.reqMktData(c)
        await until(lambda: got)
        assert got == [1] and ticker.marketDataType == 1
        await sim.advance(len(feed_ticks(sim.data)))
        await until(lambda: sim.finished)
        ib.reqMarketDataType(2)  # frozen: after the data has ended, that is what there is
        await until(lambda: len(got) == 2)
        assert got[1] == 2
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_req_current_time_is_the_data_time(bars, ticks, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 1)
        await sim.advance(5)
        when = await ib.reqCurrentTimeAsync()
        assert when.timestamp() == ticks[4][0] // NS
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


# ============================================================== orders
def lmt(libname, side, qty, price, ref, **kw):
    return lib(libname).LimitOrder(side, qty, price, orderRef=ref, tif=kw.pop("tif", "GTC"),
                                   outsideRth=kw.pop("outsideRth", True), **kw)


def lit(libname, side, qty, price, aux, ref):
    return lib(libname).Order(action=side, totalQuantity=qty, orderType="LIT", lmtPrice=price, auxPrice=aux,
                              tif="GTC", outsideRth=True, orderRef=ref)


@pytest.mark.parametrize("libname", LIBS)
def test_place_lmt_and_lit_round_trip(bars, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 11)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        a = ib.placeOrder(c, lmt(libname, "BUY", 10, 90.0, "tqqq_grid:BUY:L1:A100.00", account="DU1234567"))
        b = ib.placeOrder(c, lit(libname, "BUY", 20, 95.5, 95.5, "tqqq_grid:BUY:L2:A100.00"))
        d = ib.placeOrder(c, lmt(libname, "SELL", 5, 150.25, "tqqq_grid:SELL:L1:P99.00:A100.00:B1", tif="DAY",
                                 outsideRth=False))
        await until(lambda: a.orderStatus.status == "Submitted" and b.orderStatus.status == "PreSubmitted"
                    and d.orderStatus.status == "Submitted")
        perms = {a.order.permId, b.order.permId, d.order.permId}
        assert len(perms) == 3 and min(perms) > 0
        assert a.orderStatus.clientId == 11 and a.orderStatus.remaining == 10
        other = await connect(libname, sim.port, 12)
        seen = {t.order.permId: t for t in await other.reqAllOpenOrdersAsync()}
        assert set(seen) == perms
        ta, tb, td = seen[a.order.permId], seen[b.order.permId], seen[d.order.permId]
        assert (ta.order.orderRef, ta.order.lmtPrice, ta.order.totalQuantity) == ("tqqq_grid:BUY:L1:A100.00", 90.0, 10)
        assert (ta.order.tif, ta.order.outsideRth, ta.order.clientId, ta.order.orderId) == \
            ("GTC", True, 11, a.order.orderId)
        assert ta.order.account == "DU1234567" and ta.contract.symbol == "TQQQ"
        assert (tb.order.orderType, tb.order.lmtPrice, tb.order.auxPrice) == ("LIT", 95.5, 95.5)
        assert tb.orderStatus.status == "PreSubmitted"
        assert (td.order.action, td.order.tif, td.order.outsideRth) == ("SELL", "DAY", False)
        assert sim.exchange.counters["misaligned"] == 0
        ib.disconnect()
        other.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_lit_order_submitted_once_triggered(bars, ticks, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 11)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        i, low = lowest_after(ticks, 0)
        # aux at the new low, limit a dollar under it: triggered at tick i, then rests as a limit
        t = ib.placeOrder(c, lit(libname, "BUY", 10, (low - 100) / 100, low / 100, "lit"))
        await until(lambda: t.orderStatus.status == "PreSubmitted")
        await sim.advance(i)
        await asyncio.sleep(0.05)
        assert t.orderStatus.status == "PreSubmitted"
        await sim.advance(1)
        await until(lambda: t.orderStatus.status == "Submitted")
        assert not t.fills
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_modify_keeps_order_id_and_perm_id(bars, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 11)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        t = ib.placeOrder(c, lmt(libname, "BUY", 10, 90.0, "ref-a"))
        await until(lambda: t.orderStatus.status == "Submitted")
        perm = t.order.permId
        t.order.lmtPrice = 91.0
        t.order.totalQuantity = 12
        t.order.orderRef = "ref-b"
        ib.placeOrder(c, t.order)
        await until(lambda: any(e.message == "Modified" for e in t.log) or t.order.lmtPrice == 91.0)
        other = await connect(libname, sim.port, 12)
        [seen] = await other.reqAllOpenOrdersAsync()
        assert (seen.order.permId, seen.order.orderId) == (perm, t.order.orderId)
        assert (seen.order.lmtPrice, seen.order.totalQuantity, seen.order.orderRef) == (91.0, 12, "ref-b")
        venue_orders = sim.exchange.venue.open_orders()
        assert [(o.limit, o.quantity, o.ref) for o in venue_orders] == [(Decimal("91.00"), 12, "ref-b")]
        ib.disconnect()
        other.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_cancel_gives_cancelled_and_202(bars, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 11)
        errors = ErrorLog(ib)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        t = ib.placeOrder(c, lmt(libname, "BUY", 10, 90.0, "x"))
        await until(lambda: t.orderStatus.status == "Submitted")
        ib.cancelOrder(t.order)
        await until(lambda: t.orderStatus.status == "Cancelled")
        await until(lambda: 202 in errors.codes(t.order.orderId))
        assert sim.exchange.venue.open_orders() == ()
        assert await ib.reqAllOpenOrdersAsync() == []
        completed = await ib.reqCompletedOrdersAsync(False)
        assert [(x.order.permId, x.orderStatus.status) for x in completed] == [(t.order.permId, "Cancelled")]
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_all_open_orders_shows_other_clients_and_seeded_orders(bars, tmp_path, libname):
    async def body(sim):
        legacy = sim.seed_order("SELL", 120, 105.0, client_id=7)  # an untagged SELL of the original bot
        ib = await connect(libname, sim.port, 11)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        mine = ib.placeOrder(c, lmt(libname, "BUY", 10, 90.0, "mine"))
        await until(lambda: mine.orderStatus.status == "Submitted")
        own = await ib.reqOpenOrdersAsync()
        assert [t.order.orderRef for t in own] == ["mine"]
        every = {t.order.permId: t for t in await ib.reqAllOpenOrdersAsync()}
        foreign = every[legacy.perm_id]
        assert (foreign.order.clientId, foreign.order.orderRef, foreign.order.totalQuantity) == (7, "", 120)
        assert (foreign.order.action, foreign.order.lmtPrice) == ("SELL", 105.0)
        assert every[mine.order.permId].order.clientId == 11
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_master_client_sees_every_clients_orders(bars, tmp_path, libname):
    async def body(sim):
        master = await connect(libname, sim.port, 99)
        seen = []
        master.openOrderEvent += lambda trade: seen.append((trade.order.clientId, trade.order.orderRef))
        ib = await connect(libname, sim.port, 11)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        t = ib.placeOrder(c, lmt(libname, "BUY", 10, 90.0, "watched"))
        await until(lambda: (11, "watched") in seen)
        assert t.orderStatus.status == "Submitted"
        ib.disconnect()
        master.disconnect()
    run(with_sim(bars, tmp_path, master_client_id=99)(body))


# ============================================================== fills, executions, positions, account
async def buy_and_fill(libname, sim, ticks, client_id=11, qty=10, ref="tqqq_grid:BUY:L1:A100.00"):
    ib = await connect(libname, sim.port, client_id)
    c = stock(libname)
    await ib.qualifyContractsAsync(c)
    i, low = lowest_after(ticks, 0)
    t = ib.placeOrder(c, lmt(libname, "BUY", qty, low / 100, ref))
    await until(lambda: t.orderStatus.status == "Submitted")
    await sim.advance(i + 1)
    await until(lambda: t.orderStatus.status == "Filled" and t.fills and t.fills[0].commissionReport.execId)
    return ib, c, t, i, low


@pytest.mark.parametrize("libname", LIBS)
def test_fill_exec_details_and_commission_report(bars, ticks, tmp_path, libname):
    async def body(sim):
        ib, c, t, i, low = await buy_and_fill(libname, sim, ticks)
        [fill] = t.fills
        e, r = fill.execution, fill.commissionReport
        assert re.fullmatch(r"[0-9a-f]{8}\.[0-9a-f]{8}\.\d\d\.\d\d", e.execId)
        assert (e.orderId, e.clientId, e.permId) == (t.order.orderId, 11, t.order.permId)
        assert (e.side, e.shares, e.price, e.cumQty, e.avgPrice) == ("BOT", 10, low / 100, 10, low / 100)
        assert e.orderRef == "tqqq_grid:BUY:L1:A100.00" and e.acctNumber == "DU1234567"
        assert e.time == datetime.fromtimestamp(ticks[i][0] // NS, timezone.utc)
        assert (r.execId, r.commission, r.currency, r.realizedPNL) == (e.execId, 1.0, "USD", 0.0)
        assert t.orderStatus.filled == 10 and t.orderStatus.remaining == 0
        assert t.orderStatus.avgFillPrice == low / 100
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_req_executions_with_filters(bars, ticks, tmp_path, libname):
    async def body(sim):
        ib, c, t, i, low = await buy_and_fill(libname, sim, ticks)
        m = lib(libname)
        exec_id = t.fills[0].execution.execId
        when = datetime.fromtimestamp(ticks[i][0] // NS, NY)

        async def ids(**kw):
            return [f.execution.execId for f in await ib.reqExecutionsAsync(m.ExecutionFilter(**kw))]
        assert await ids() == [exec_id]
        assert await ids(time=when.strftime("%Y%m%d %H:%M:%S")) == [exec_id]  # New York (TWS's zone)
        assert await ids(time=(when.strftime("%Y%m%d %H:%M:") + f"{when.second + 1:02d}")) == []
        assert await ids(time=when.strftime("%Y%m%d %H:%M:%S") + " America/New_York") == [exec_id]
        assert await ids(time=when.astimezone(timezone.utc).strftime("%Y%m%d-%H:%M:%S")) == [exec_id]
        assert await ids(clientId=11, symbol="TQQQ", secType="STK", side="BUY", acctCode="DU1234567") == [exec_id]
        assert await ids(clientId=12) == []
        assert await ids(side="SELL") == []
        assert await ids(symbol="SPY") == []
        # another client sees the account's executions (and their commission reports) too
        # (the client keeps the first Fill object it saw for an execId and applies the commission
        # report to that one: look at ib.fills(), not at a second reqExecutions' result)
        other = await connect(libname, sim.port, 12)
        [f] = other.fills()
        assert (f.execution.execId, f.execution.clientId, f.commissionReport.commission) == (exec_id, 11, 1.0)
        completed = await ib.reqCompletedOrdersAsync(False)
        assert [(x.order.permId, x.orderStatus.status, x.order.orderRef) for x in completed] == \
            [(t.order.permId, "Filled", "tqqq_grid:BUY:L1:A100.00")]
        ib.disconnect()
        other.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_positions_portfolio_and_account_values(bars, ticks, tmp_path, libname):
    async def body(sim):
        ib, c, t, i, low = await buy_and_fill(libname, sim, ticks)
        await until(lambda: any(p.position == 10 for p in ib.positions()))
        [pos] = [p for p in ib.positions() if p.contract.symbol == "TQQQ"]
        assert (pos.position, pos.avgCost, pos.account) == (10, low / 100, "DU1234567")
        await until(lambda: any(p.position == 10 for p in ib.portfolio()))
        values = {v.tag: v.value for v in ib.accountValues() if v.currency in ("USD", "")}
        cash = 1_000_000 - 10 * low / 100 - 1.00
        assert float(values["TotalCashValue"]) == pytest.approx(cash)
        assert float(values["NetLiquidation"]) == pytest.approx(cash + 10 * ticks[i][1] / 100)
        assert float(values["BuyingPower"]) > 0 and values["BothostPace"] == "lockstep"
        # a fresh client: positions at connect, including a seeded non-stock position
        sim.seed_position(sec_type="OPT", symbol="TQQQ", expiry="20250117", strike=50.0, right="C",
                          quantity=2, avg_cost=310)
        other = await connect(libname, sim.port, 12)
        got = {(p.contract.secType, p.contract.symbol): p for p in other.positions()}
        assert got[("STK", "TQQQ")].position == 10
        opt = got[("OPT", "TQQQ")]
        assert (opt.position, opt.contract.right, opt.contract.strike, opt.contract.lastTradeDateOrContractMonth,
                opt.contract.multiplier) == (2, "C", 50.0, "20250117", "100")
        assert any(p.contract.secType == "OPT" for p in other.portfolio())
        summary = {v.tag: v.value for v in await other.accountSummaryAsync()}
        assert "NetLiquidation" in summary
        ib.disconnect()
        other.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_sell_fill_reports_realized_pnl(bars, ticks, tmp_path, libname):
    async def body(sim):
        ib, c, t, i, low = await buy_and_fill(libname, sim, ticks)
        s = ib.placeOrder(c, lmt(libname, "SELL", 10, (low + 50) / 100, "sell"))
        await until(lambda: s.orderStatus.status == "Submitted")
        await sim.advance(len(ticks) - i - 1)
        await until(lambda: s.orderStatus.status == "Filled" and s.fills and s.fills[0].commissionReport.execId)
        assert s.fills[0].commissionReport.realizedPNL == pytest.approx(10 * 0.50 - 1.00)
        assert s.fills[0].execution.side == "SLD"
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_simulator_restart_keeps_orders_executions_and_ids(bars, ticks, tmp_path, libname):
    async def body(sim):
        ib, c, t, i, low = await buy_and_fill(libname, sim, ticks)
        resting = ib.placeOrder(c, lmt(libname, "SELL", 10, 150.0, "keep-me"))
        await until(lambda: resting.orderStatus.status == "Submitted")
        exec_id = t.fills[0].execution.execId
        used = resting.order.orderId
        await sim.restart()
        await until(lambda: not ib.isConnected())
        ib2 = await connect(libname, sim.port, 11)
        [o] = await ib2.reqAllOpenOrdersAsync()
        assert (o.order.permId, o.order.orderId, o.order.orderRef) == (resting.order.permId, used, "keep-me")
        [f] = await ib2.reqExecutionsAsync()
        assert (f.execution.execId, f.execution.permId) == (exec_id, t.order.permId)
        assert ib2.client.getReqId() > used  # nextValidId is above every id this client used
        assert (await ib2.reqCurrentTimeAsync()).timestamp() == ticks[i][0] // NS
        ib2.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_what_if_order(bars, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 11)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        state = await asyncio.wait_for(ib.whatIfOrderAsync(c, lmt(libname, "BUY", 300, 90.0, "w")), 3)
        assert state.commission == 1.5
        assert sim.exchange.venue.open_orders() == ()
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_bad_orders_are_rejected_with_201(bars, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 11)
        errors = ErrorLog(ib)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        mkt = ib.placeOrder(c, lib(libname).MarketOrder("BUY", 10))
        frac = ib.placeOrder(c, lmt(libname, "BUY", 10, 90.001, "sub-cent"))
        await until(lambda: mkt.orderStatus.status == "Cancelled" and frac.orderStatus.status == "Cancelled")
        assert 201 in errors.codes(mkt.order.orderId) and 201 in errors.codes(frac.order.orderId)
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


def test_simulator_in_a_background_thread(bars, ticks, tmp_path):
    """SimTwsThread: the simulator on its own loop in another thread, the client on this one."""
    from bothost_plugins.sim_tws import SimTwsThread

    with SimTwsThread(data=bars, state_dir=tmp_path / "state") as sim:
        async def main():
            ib = await connect("ib_insync", sim.port, 1)
            await asyncio.get_running_loop().run_in_executor(None, sim.call, lambda s: s.advance(4))
            assert (await ib.reqCurrentTimeAsync()).timestamp() == ticks[3][0] // NS
            ib.disconnect()
        run(main())
        assert sim.call(lambda s: s.tick_index) == 3


@pytest.mark.parametrize("libname", LIBS)
def test_transmit_false_holds_the_order_until_transmitted(bars, tmp_path, libname):
    async def body(sim):
        ib = await connect(libname, sim.port, 11)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        o = lmt(libname, "BUY", 10, 90.0, "held", transmit=False)
        t = ib.placeOrder(c, o)
        await until(lambda: t.order.permId > 0)
        assert t.orderStatus.status == "PendingSubmit" and sim.exchange.venue.open_orders() == ()
        o.transmit = True
        ib.placeOrder(c, o)
        await until(lambda: t.orderStatus.status == "Submitted")
        assert len(sim.exchange.venue.open_orders()) == 1
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))


@pytest.mark.parametrize("libname", LIBS)
def test_every_place_order_variant_decodes_without_misalignment(bars, tmp_path, libname):
    """placeOrder's conditional blocks (conditions, algo, scale, hedge, delta neutral, PEG, BAG):
    each message is read to its exact end, whatever the simulator then does with the order."""
    async def body(sim):
        m = lib(libname)
        ib = await connect(libname, sim.port, 11)
        errors = ErrorLog(ib)
        c = stock(libname)
        await ib.qualifyContractsAsync(c)
        variants = []
        o = lmt(libname, "BUY", 10, 90.0, "conditions")
        o.conditions = [m.PriceCondition(price=95.0, conId=c.conId, exch="SMART"),
                        m.TimeCondition(time="20240102 10:00:00 America/New_York"),
                        m.MarginCondition(percent=30), m.ExecutionCondition(secType="STK", exch="SMART",
                                                                            symbol="TQQQ"),
                        m.VolumeCondition(volume=1000, conId=c.conId, exch="SMART"),
                        m.PercentChangeCondition(changePercent=2.0, conId=c.conId, exch="SMART")]
        variants.append(o)
        o = lmt(libname, "BUY", 10, 89.0, "algo")
        o.algoStrategy, o.algoParams = "Adaptive", [m.TagValue("adaptivePriority", "Normal")]
        variants.append(o)
        o = lmt(libname, "BUY", 10, 88.0, "scale")
        o.scaleInitLevelSize, o.scaleSubsLevelSize, o.scalePriceIncrement = 5, 5, 0.1
        variants.append(o)
        o = lmt(libname, "BUY", 10, 87.0, "hedge")
        o.hedgeType, o.hedgeParam = "D", "0.5"
        variants.append(o)
        o = lmt(libname, "BUY", 10, 86.0, "dn")
        o.deltaNeutralOrderType, o.deltaNeutralConId = "LMT", 1
        variants.append(o)
        for ot in ("PEG BENCH", "PEG BEST", "PEG MID"):
            variants.append(m.Order(action="BUY", totalQuantity=1, orderType=ot, lmtPrice=85.0, orderRef=ot))
        trades = [ib.placeOrder(c, v) for v in variants]
        bag = m.Contract(secType="BAG", symbol="TQQQ", currency="USD", exchange="SMART",
                         comboLegs=[m.ComboLeg(conId=c.conId, ratio=1, action="BUY", exchange="SMART")])
        bag_trade = ib.placeOrder(bag, lmt(libname, "BUY", 1, 1.0, "bag"))
        await until(lambda: all(t.orderStatus.status in ("Submitted", "Cancelled") for t in trades)
                    and 200 in errors.codes(bag_trade.order.orderId))
        assert sim.exchange.counters["misaligned"] == 0
        assert [t.orderStatus.status for t in trades[:5]] == ["Submitted"] * 5
        assert [t.orderStatus.status for t in trades[5:]] == ["Cancelled"] * 3  # PEG orders: not simulated
        ib.disconnect()
    run(with_sim(bars, tmp_path)(body))
