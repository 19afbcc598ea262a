"""sim_tws faults, each observed from a real client; fault syntax; the command line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import REPO, write_bars
from test_sim_tws_helpers import LIBS, ErrorLog, connect, feed_ticks, gone, lib, run, start_bot, stock, until

from bothost_plugins.sim_tws import FaultSyntaxError, SimTws, parse_fault

CLOSES = [100.00, 99.50, 99.00, 98.50, 98.00, 98.50, 99.00, 99.50, 100.00, 100.50, 101.00, 101.50,
          102.00, 101.50, 101.00, 100.50, 100.00, 99.50, 99.00, 98.50]


@pytest.fixture(scope="module")
def bars(tmp_path_factory):
    return write_bars(tmp_path_factory.mktemp("bars") / "bars.csv", CLOSES)


@pytest.fixture(scope="module")
def ticks(bars):
    return feed_ticks(bars)


def go(bars, tmp_path, body, **kw):
    async def main():
        sim = await SimTws(bars, tmp_path / "state", **kw).start()
        try:
            await body(sim)
        finally:
            await sim.stop()
    run(main())


def lmt(libname, side, qty, price, ref=""):
    return lib(libname).LimitOrder(side, qty, price, orderRef=ref, tif="GTC", outsideRth=True)


async def client(libname, sim, cid=11):
    ib = await connect(libname, sim.port, cid)
    c = stock(libname)
    await ib.qualifyContractsAsync(c)
    return ib, c


def first_low(ticks):
    """(index, cents) of the first tick below every earlier one: a BUY resting there fills on it."""
    low = ticks[0][1]
    for i, (_, p) in enumerate(ticks[1:], 1):
        if p < low:
            return i, p
    raise AssertionError


# ============================================================== connection faults
@pytest.mark.parametrize("libname", LIBS)
def test_drop_closes_every_connection_and_keeps_state(bars, tmp_path, libname):
    async def body(sim):
        ib, c = await client(libname, sim)
        t = ib.placeOrder(c, lmt(libname, "BUY", 10, 90.0, "kept"))
        await until(lambda: t.orderStatus.status == "Submitted")
        sim.drop_connections()
        await until(lambda: not ib.isConnected())
        await gone(sim, 11)
        ib2, _ = await client(libname, sim)
        [o] = await ib2.reqAllOpenOrdersAsync()
        assert o.order.permId == t.order.permId
        ib2.disconnect()
    go(bars, tmp_path, body)


def test_drop_at_a_tick(bars, tmp_path):
    async def body(sim):
        ib, c = await client("ib_insync", sim)
        await sim.advance(5)
        await until(lambda: not ib.isConnected())
        assert sim.tick_index == 4
    go(bars, tmp_path, body, faults=["drop@tick=3"])


@pytest.mark.parametrize("libname", LIBS)
def test_connectivity_lost_and_restored_data_kept(bars, ticks, tmp_path, libname):
    async def body(sim):
        ib, c = await client(libname, sim)
        errors = ErrorLog(ib)
        seen = []
        ib.pendingTickersEvent += lambda ts: seen.extend(tb.price for t in ts for tb in t.tickByTicks)
        ib.reqTickByTickData(c, "AllLast")
        await until(lambda: sim.exchange.sessions[11].tbt)
        sim.lose_connectivity()
        await until(lambda: 1100 in errors.codes(-1))
        t = ib.placeOrder(c, lmt(libname, "BUY", 10, 90.0, "during-loss"))
        await until(lambda: t.orderStatus.status == "Cancelled")
        assert 201 in errors.codes(t.order.orderId)
        assert sim.exchange.venue.open_orders() == ()
        sim.restore_connectivity(data_kept=True)
        await until(lambda: 1102 in errors.codes(-1))
        await sim.advance(2)
        await until(lambda: len(seen) == 2)  # the subscription survived
        ib.disconnect()
    go(bars, tmp_path, body)


@pytest.mark.parametrize("libname", LIBS)
def test_connectivity_restored_data_lost_drops_subscriptions(bars, tmp_path, libname):
    async def body(sim):
        ib, c = await client(libname, sim)
        errors = ErrorLog(ib)
        seen = []
        ib.pendingTickersEvent += lambda ts: seen.extend(tb.price for t in ts for tb in t.tickByTicks)
        ib.reqTickByTickData(c, "AllLast")
        await until(lambda: sim.exchange.sessions[11].tbt)
        sim.lose_connectivity()
        sim.restore_connectivity(data_kept=False)
        await until(lambda: 1101 in errors.codes(-1))
        await sim.advance(2)
        await asyncio.sleep(0.05)
        assert seen == []  # market data must be requested again after 1101
        ib.cancelTickByTickData(c, "AllLast")
        ib.reqTickByTickData(c, "AllLast")
        await until(lambda: sim.exchange.sessions[11].tbt)
        await sim.advance(1)
        await until(lambda: len(seen) == 1)
        ib.disconnect()
    go(bars, tmp_path, body)


def test_fills_during_a_scheduled_outage_are_found_by_req_executions(bars, ticks, tmp_path):
    """1100 at a tick, 1102 some ticks later: the venue trades on meanwhile; those fills are not
    pushed to the client, reqExecutions (as after any reconnect) finds them."""
    i, low = first_low(ticks)

    async def body(sim):
        ib, c = await client("ib_insync", sim)
        errors = ErrorLog(ib)
        t = ib.placeOrder(c, lmt("ib_insync", "BUY", 10, low / 100, "outage"))
        await until(lambda: t.orderStatus.status == "Submitted")
        await sim.advance(i + 4)
        await until(lambda: 1102 in errors.codes(-1))
        assert 1100 in errors.codes(-1)
        assert t.fills == [] and t.orderStatus.status == "Submitted"  # never told
        [f] = await ib.reqExecutionsAsync()
        assert f.execution.permId == t.order.permId and f.execution.shares == 10
        ib.disconnect()
    go(bars, tmp_path, body, faults=[f"1100@tick={i - 1}", f"1102@tick={i + 2}"])


def test_lockstep_pauses_while_connectivity_is_lost(bars, tmp_path):
    async def body(sim):
        ib, bot, pacer = await start_bot("ib_insync", sim, 11)
        await until(lambda: sim.tick_index >= 10)
        sim.lose_connectivity()
        await asyncio.sleep(0.05)
        at = sim.tick_index
        await asyncio.sleep(0.2)
        assert sim.tick_index == at
        sim.restore_connectivity(True)
        await sim.wait_finished(10)
        ib.disconnect()
    go(bars, tmp_path, body)


def test_restore_after_a_wall_clock_delay(bars, tmp_path):
    async def body(sim):
        ib, bot, pacer = await start_bot("ib_insync", sim, 11)
        errors = ErrorLog(ib)
        await until(lambda: 1100 in errors.codes(-1))
        t0 = time.monotonic()
        await until(lambda: 1101 in errors.codes(-1))
        assert time.monotonic() - t0 >= 0.25
        assert sim.tick_index == 5  # paused before tick 6 for the whole loss
    go(bars, tmp_path, body, faults=["1100@tick=6", "1101@after=300ms"])


@pytest.mark.parametrize("libname", LIBS)
def test_fills_while_the_client_is_away(bars, ticks, tmp_path, libname):
    i, low = first_low(ticks)

    async def body(sim):
        ib, c = await client(libname, sim)
        t = ib.placeOrder(c, lmt(libname, "BUY", 10, low / 100, "away"))
        await until(lambda: t.orderStatus.status == "Submitted")
        await sim.advance(i + 3)  # the fault drops the client before tick 1; the venue fills on its own
        await until(lambda: not ib.isConnected())
        assert t.fills == []
        await gone(sim, 11)
        ib2, _ = await client(libname, sim)
        [f] = await ib2.reqExecutionsAsync()
        assert f.execution.permId == t.order.permId
        assert await ib2.reqAllOpenOrdersAsync() == []
        assert [p.position for p in ib2.positions() if p.contract.symbol == "TQQQ"] == [10]
        ib2.disconnect()
    go(bars, tmp_path, body, faults=[f"away@tick=1,ticks={i + 2}"])


# ============================================================== order faults
@pytest.mark.parametrize("libname", LIBS)
def test_reject201_by_order_ref_then_cancelled(bars, tmp_path, libname):
    async def body(sim):
        ib, c = await client(libname, sim)
        errors = ErrorLog(ib)
        bad = ib.placeOrder(c, lmt(libname, "BUY", 10, 90.0, "tqqq_grid:BUY:L3:A100.00"))
        fine = ib.placeOrder(c, lmt(libname, "BUY", 10, 89.0, "tqqq_grid:BUY:L30:A100.00"))
        await until(lambda: bad.orderStatus.status == "Cancelled" and fine.orderStatus.status == "Submitted")
        assert 201 in errors.codes(bad.order.orderId)
        assert bad.orderStatus.permId > 0
        assert [o.ref for o in sim.exchange.venue.open_orders()] == ["tqqq_grid:BUY:L30:A100.00"]
        ib.disconnect()
    go(bars, tmp_path, body, faults=["reject201@ref=tqqq_grid:BUY:L3"])


@pytest.mark.parametrize("libname", LIBS)
def test_reject201_next_order_only(bars, tmp_path, libname):
    async def body(sim):
        ib, c = await client(libname, sim)
        sim.add_fault("reject201@next")
        a = ib.placeOrder(c, lmt(libname, "BUY", 10, 90.0, "a"))
        b = ib.placeOrder(c, lmt(libname, "BUY", 10, 89.0, "b"))
        await until(lambda: a.orderStatus.status == "Cancelled" and b.orderStatus.status == "Submitted")
        ib.disconnect()
    go(bars, tmp_path, body)


@pytest.mark.parametrize("libname", LIBS)
def test_inactive_order(bars, tmp_path, libname):
    async def body(sim):
        ib, c = await client(libname, sim)
        a = ib.placeOrder(c, lmt(libname, "BUY", 10, 90.0, "inactive"))
        await until(lambda: a.orderStatus.status == "Inactive")
        b = ib.placeOrder(c, lmt(libname, "BUY", 10, 89.0, "later"))
        await until(lambda: b.orderStatus.status == "Submitted")
        sim.make_inactive(11, b.order.orderId, "simulated")
        await until(lambda: b.orderStatus.status == "Inactive")
        assert sim.exchange.venue.open_orders() == ()
        listed = {t.order.orderRef: t.orderStatus.status for t in await ib.reqAllOpenOrdersAsync()}
        assert listed == {"inactive": "Inactive", "later": "Inactive"}
        ib.cancelOrder(a.order)
        await until(lambda: a.orderStatus.status == "Cancelled")
        ib.disconnect()
    go(bars, tmp_path, body, faults=["inactive@next"])


@pytest.mark.parametrize("libname", LIBS)
def test_delayed_acks_come_after_the_next_tick(bars, tmp_path, libname):
    async def body(sim):
        ib, c = await client(libname, sim)
        t = ib.placeOrder(c, lmt(libname, "BUY", 10, 90.0, "slow"))
        await asyncio.sleep(0.1)
        assert t.orderStatus.status == "PendingSubmit"
        assert len(sim.exchange.venue.open_orders()) == 1  # working at the venue all the same
        await sim.advance(1)
        await until(lambda: t.orderStatus.status == "Submitted")
        ib.disconnect()
    go(bars, tmp_path, body, faults=["delay-acks@next"])


@pytest.mark.parametrize("libname", LIBS)
def test_duplicate_exec_details(bars, ticks, tmp_path, libname):
    i, low = first_low(ticks)

    async def body(sim):
        ib, c = await client(libname, sim)
        raw = []
        dec = ib.client.decoder
        orig = dec.handlers[11]
        dec.handlers[11] = lambda f: (raw.append(f[14]), orig(f))
        t = ib.placeOrder(c, lmt(libname, "BUY", 10, low / 100, "dup"))
        await until(lambda: t.orderStatus.status == "Submitted")
        await sim.advance(i + 1)
        await until(lambda: t.orderStatus.status == "Filled")
        assert len(raw) == 2 and raw[0] == raw[1]  # the same execution, sent twice
        assert len(t.fills) == 1  # (the client drops the repeat by execId)
        ib.disconnect()
    go(bars, tmp_path, body, faults=["duplicate-exec@exec=1"])


@pytest.mark.parametrize("libname", LIBS)
def test_partial_fills(bars, ticks, tmp_path, libname):
    async def body(sim):
        ib, c = await client(libname, sim)
        t = ib.placeOrder(c, lmt(libname, "BUY", 10, 110.0, "big"))  # crosses every tick
        await until(lambda: t.orderStatus.status == "Submitted")
        await sim.advance(5)
        await until(lambda: t.orderStatus.status == "Filled" and len(t.fills) == 4)
        assert [f.execution.shares for f in t.fills] == [3, 3, 3, 1]
        assert [f.execution.cumQty for f in t.fills] == [3, 6, 9, 10]
        assert len({f.execution.execId for f in t.fills}) == 4
        ib.disconnect()
    go(bars, tmp_path, body, faults=["partial=3"])


# ============================================================== fault syntax
@pytest.mark.parametrize("spec", ["drop@tick=500", "1100@tick=300", "1102@tick=320", "1101@after=2s",
                                  "reject201@ref=tqqq_grid:BUY:L3", "reject201@ref=tqqq_grid:*:L3*,count=2",
                                  "duplicate-exec@exec=5", "partial=3", "away@tick=10,ticks=50",
                                  "restart@time=2024-01-02T10:00:00", "inactive@next", "delay-acks@all"])
def test_fault_syntax_accepted(spec):
    assert parse_fault(spec).kind


@pytest.mark.parametrize("spec", ["drop", "boom@tick=1", "drop@tick=x", "partial=0", "reject201@ref=",
                                  "reject201", "away@tick=3", "drop@after=2s", "1100@tick=1,tick=2x",
                                  "duplicate-exec", "drop@time=noon", "repeat-open-orders"])
def test_fault_syntax_refused(spec):
    with pytest.raises(FaultSyntaxError):
        parse_fault(spec)


# ============================================================== the command line
def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "bothost_plugins.sim_tws.cli", *args], cwd=kw.pop("cwd", REPO),
                          capture_output=True, text=True, timeout=60, **kw)


def test_cli_bad_input_is_one_line_and_status_2(bars, tmp_path):
    cases = [
        ["--data", str(tmp_path / "missing.csv")],
        ["--data", str(bars), "--fault", "explode@tick=1"],
        ["--data", str(bars), "--host", "0.0.0.0"],
        ["--data", str(bars), "--pace", "sometimes"],
        ["--data", str(bars), "--seed-order", "side=HOLD,qty=1,limit=1"],
    ]
    for args in cases:
        r = cli(*args, "--state", str(tmp_path / "state"))
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr


def test_cli_port_in_use(bars, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("--data", str(bars), "--port", str(port), "--state", str(tmp_path / "state"))
    assert r.returncode == 2 and "in use" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _start_cli(*args):
    proc = subprocess.Popen([sys.executable, "-m", "bothost_plugins.sim_tws.cli", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("sim-tws listening on 127.0.0.1:"), line + proc.stderr.read()
    port = int(line.split("127.0.0.1:")[1].split()[0])
    return proc, port, line


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_stops_cleanly_on_a_signal(bars, tmp_path, sig):
    proc, port, line = _start_cli("--data", str(bars), "--port", "0", "--state", str(tmp_path / "state"),
                                  "--seed-order", "side=SELL,qty=120,limit=105,client=7")
    try:
        assert "(pace lockstep, data " in line and "80 ticks)" in line

        async def main():
            ib = await connect("ib_insync", port, 11)
            [o] = await ib.reqAllOpenOrdersAsync()
            assert (o.order.clientId, o.order.totalQuantity) == (7, 120)
            ib.disconnect()
        run(main())
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "stopped, state committed" in out
    assert (tmp_path / "state" / "venue.sqlite").exists()


def test_cli_realtime_pace_and_exit_when_idle(bars, tmp_path):
    proc, port, line = _start_cli("--data", str(bars), "--port", "0", "--state", str(tmp_path / "state"),
                                  "--pace", "x2000", "--exit-when-idle", "0.2", "--no-progress")
    try:
        async def main():
            ib = await connect("ib_insync", port, 11)
            c = stock("ib_insync")
            await ib.qualifyContractsAsync(c)
            got = []
            ib.pendingTickersEvent += lambda ts: got.extend(tb for t in ts for tb in t.tickByTicks)
            ib.reqTickByTickData(c, "Last")  # a realtime replay starts with the first subscription
            await until(lambda: len(got) >= 10, 20)
            ib.disconnect()
        run(main())
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert os.path.exists(tmp_path / "state" / "venue.sqlite")
