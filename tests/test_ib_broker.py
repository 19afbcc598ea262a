"""The ib_broker plugin against `bothost sim-tws`: the real ib_insync and ib_async clients over
a real socket on 127.0.0.1, driven by the plugin exactly as a run drives it.

Each request the plugin makes, and each event it must turn into the host's values: connect and
the account check (S2), snapshots (every client's orders with their permId and client id,
stock positions only, executions with commissions), LMT and LIT orders with their tags, cancels,
a fill and its later commission, a 201 reject followed by Cancelled, Inactive, 1100/1102, a
dropped socket and a silent one (heartbeat), a client id in use, TWS not running.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from pathlib import Path

import pytest

from bothost.errors import InputError
from bothost.hookspecs import BrokerUnavailable, BuildEnv
from bothost.model import (
    CommissionReport,
    ConnectionEvent,
    ConnectionState,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)
from bothost_plugins.ib_broker.broker import IbBroker
from bothost_plugins.ib_broker.config import IbBrokerConfig
from bothost_plugins.replay_feed.synthetic import write_csv
from bothost_plugins.sim_tws import SimTws

D = Decimal
LIBS = ["ib_insync", "ib_async"]


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "bars.csv"
    write_csv(path, bars=200, seed=3, volatility=1.0, start_price=50.0, interval=60)
    return path


def make_broker(port: int, lib: str, tmp: Path, mode: str = "paper", **settings) -> tuple[IbBroker, list]:
    settings.setdefault("connect_retries", 0)
    broker = IbBroker(IbBrokerConfig(port=port, client_library=lib, **settings),
                      BuildEnv(tmp / "c.yaml", tmp, mode, logging.getLogger("test")))
    events: list = []
    broker.bind(events.append)
    return broker, events


class connected:
    """``async with connected(bars, tmp, lib, faults=...) as (sim, broker, events)``: a simulator
    on 127.0.0.1 and the plugin connected to it, both closed on the way out."""

    def __init__(self, bars: Path, tmp: Path, lib: str = "ib_insync", **sim_options):
        self.sim = SimTws(bars, tmp / "sim", **sim_options)
        self.tmp, self.lib = tmp, lib

    async def __aenter__(self):
        await self.sim.start()
        self.broker, self.events = make_broker(self.sim.port, self.lib, self.tmp)
        await self.broker.connect()
        return self.sim, self.broker, self.events

    async def __aexit__(self, *exc):
        await self.broker.close()
        await self.sim.stop()


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.01)


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.parametrize("lib", LIBS)
def test_snapshot_sees_every_clients_orders_by_perm_id_and_only_stock_positions(bars, tmp_path, lib):
    async def main():
        async with SimTws(bars, tmp_path / "sim") as sim:
            legacy = sim.seed_order("SELL", 88, "51.50", client_id=7)  # the original bot's untagged SELL
            sim.seed_position(sec_type="OPT", symbol="TQQQ", quantity=5)  # an option on TQQQ
            broker, _ = make_broker(sim.port, lib, tmp_path)
            await broker.connect()
            try:
                snap = await broker.snapshot(None)
            finally:
                await broker.close()
            return legacy, snap

    legacy, snap = run(main())
    (foreign,) = snap.open_orders
    assert foreign.order_id == f"c7-{legacy.order_id}" and foreign.client_id == 7
    assert foreign.perm_id == str(legacy.perm_id) and foreign.stable_id == str(legacy.perm_id)
    assert (foreign.side, foreign.quantity, foreign.limit, foreign.ref) == (Side.SELL, 88, D("51.50"), "")
    assert {p.sec_type for p in snap.positions} >= {"OPT"}
    assert snap.position("TQQQ") == 0  # the option is not TQQQ shares
    assert snap.time_ns > 0


@pytest.mark.parametrize("lib", LIBS)
def test_orders_round_trip_with_tag_perm_id_aux_and_cancel(bars, tmp_path, lib):
    async def main():
        async with connected(bars, tmp_path, lib) as (sim, broker, events):
            lit = broker.place(OrderRequest("TQQQ", Side.BUY, 88, D("30.00"), OrderType.LIMIT_IF_TOUCHED, D("30.00"),
                                            ref="tqqq_grid:BUY:L1:A30.30"))
            lmt = broker.place(OrderRequest("TQQQ", Side.SELL, 94, D("99.00"), ref="tqqq_grid:SELL:L0:P98.02:A98.02:B1"))
            await until(lambda: len(of(events, OrderUpdate)) >= 2)
            snap = await broker.snapshot(None)
            broker.cancel(lit)
            await until(lambda: any(u.status is OrderStatus.CANCELLED for u in of(events, OrderUpdate)))
            after = await broker.snapshot(None)
            return lit, lmt, snap, after, events

    lit, lmt, snap, after, events = run(main())
    by_id = {o.order_id: o for o in snap.open_orders}
    o = by_id[lit]
    assert (o.order_type, o.limit, o.aux, o.ref) == (OrderType.LIMIT_IF_TOUCHED, D("30.00"), D("30.00"), "tqqq_grid:BUY:L1:A30.30")
    assert o.status is OrderStatus.PRE_SUBMITTED  # an untriggered LIT is held, as TWS shows it
    assert o.perm_id and o.perm_id != by_id[lmt].perm_id and o.client_id == 101
    assert by_id[lmt].ref == "tqqq_grid:SELL:L0:P98.02:A98.02:B1" and by_id[lmt].status is OrderStatus.SUBMITTED
    statuses = [u.status for u in of(events, OrderUpdate) if u.order_id == lit]
    assert statuses[-2:] == [OrderStatus.PENDING_CANCEL, OrderStatus.CANCELLED]
    assert [x.order_id for x in after.open_orders] == [lmt]


@pytest.mark.parametrize("lib", LIBS)
def test_a_fill_comes_first_and_its_commission_after_matched_by_exec_id(bars, tmp_path, lib):
    async def main():
        async with connected(bars, tmp_path, lib) as (sim, broker, events):
            oid = broker.place(OrderRequest("TQQQ", Side.BUY, 94, D("200.00"), ref="tqqq_grid:BUY:L0:M50.00"))
            await until(lambda: of(events, OrderUpdate))
            await sim.advance(2)  # the venue matches on its own: the order is marketable
            await until(lambda: of(events, CommissionReport))
            snap = await broker.snapshot(None)
            return oid, events, snap, sim

    oid, events, snap, _ = run(main())
    (fill,) = of(events, Fill)
    (report,) = of(events, CommissionReport)
    assert fill.order_id == oid and fill.perm_id and fill.commission is None and fill.order_complete
    assert events.index(fill) < events.index(report) and report.exec_id == fill.exec_id
    assert report.commission == D("1.00")  # IB fixed: 94 x $0.005, $1.00 minimum
    assert fill.time_ns >= 1_704_205_800 * 10**9 and fill.time_ns < 1_800_000_000 * 10**9  # the data's time
    assert snap.position("TQQQ") == 94
    (e,) = snap.executions
    assert (e.exec_id, e.perm_id, e.commission, e.ref) == (fill.exec_id, fill.perm_id, D("1.00"), "tqqq_grid:BUY:L0:M50.00")


@pytest.mark.parametrize("lib", LIBS)
def test_a_201_reject_is_reported_as_rejected_with_its_reason(bars, tmp_path, lib):
    async def main():
        async with connected(bars, tmp_path, lib, faults=["reject201@ref=tqqq_grid:BUY:L3"]) as (sim, broker, events):
            oid = broker.place(OrderRequest("TQQQ", Side.BUY, 67, D("40.00"), ref="tqqq_grid:BUY:L3:A41.23"))
            await until(lambda: any(u.status.is_final for u in of(events, OrderUpdate)))
            await asyncio.sleep(0.2)  # TWS's own Cancelled follows
            return oid, events

    oid, events = run(main())
    finals = [u for u in of(events, OrderUpdate) if u.order_id == oid and u.status.is_final]
    assert finals[0].status is OrderStatus.REJECTED and finals[0].code == 201 and finals[0].message
    # anything after it is a second final status, which the engine drops (tests/test_broker_contract.py)
    assert all(u.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED) for u in finals)


@pytest.mark.parametrize("lib", LIBS)
def test_an_inactive_order_is_reported_inactive(bars, tmp_path, lib):
    async def main():
        async with connected(bars, tmp_path, lib, faults=["inactive@ref=tqqq_grid:SELL:L2"]) as (sim, broker, events):
            oid = broker.place(OrderRequest("TQQQ", Side.SELL, 76, D("60.00"), ref="tqqq_grid:SELL:L2:P49.00:A50.00:B9"))
            await until(lambda: any(u.status is OrderStatus.INACTIVE for u in of(events, OrderUpdate)))
            snap = await broker.snapshot(None)
            return oid, snap

    oid, snap = run(main())
    (o,) = snap.open_orders
    assert o.order_id == oid and o.status is OrderStatus.INACTIVE and o.live  # parked, still the lot's SELL


@pytest.mark.parametrize("lib", LIBS)
def test_1100_then_1102_are_lost_then_restored(bars, tmp_path, lib):
    async def main():
        async with connected(bars, tmp_path, lib) as (sim, broker, events):
            sim.lose_connectivity()
            await until(lambda: of(events, ConnectionEvent))
            sim.restore_connectivity(data_kept=True)
            await until(lambda: len(of(events, ConnectionEvent)) >= 2)
            return of(events, ConnectionEvent)

    lost, restored = run(main())
    assert lost.state is ConnectionState.LOST and "1100" in lost.message
    assert restored.state is ConnectionState.RESTORED and "1102" in restored.message


@pytest.mark.parametrize("lib", LIBS)
def test_a_dropped_socket_is_lost_then_reconnected_by_the_supervisor(bars, tmp_path, lib):
    async def main():
        async with connected(bars, tmp_path, lib) as (sim, broker, events):
            supervisor = asyncio.create_task(broker.supervise())
            sim.drop_connections()
            await until(lambda: len(of(events, ConnectionEvent)) >= 2, timeout=20)
            snap = await broker.snapshot(None)  # the connection works again
            supervisor.cancel()
            return of(events, ConnectionEvent), snap

    (lost, restored), snap = run(main())
    assert (lost.state, restored.state) == (ConnectionState.LOST, ConnectionState.RESTORED)
    assert snap.time_ns > 0


class StallingProxy:
    """A TCP relay on 127.0.0.1 that can go silent (a socket that dies without a word)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.stalled = False
        self.server = None
        self.port = 0

    async def start(self):
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _client(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        stalled_here = self.stalled

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    if not self.stalled or stalled_here:
                        dst.write(data)
                        await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stall(self):
        self.stalled = True

    def resume(self):
        self.stalled = False

    async def stop(self):
        self.server.close()


def test_a_silent_socket_is_found_by_the_heartbeat_and_reconnected(bars, tmp_path):
    async def main():
        async with SimTws(bars, tmp_path / "sim") as sim:
            proxy = await StallingProxy(sim.port).start()
            broker, events = make_broker(proxy.port, "ib_insync", tmp_path, heartbeat="200ms",
                                         heartbeat_timeout="200ms")
            await broker.connect()
            supervisor = asyncio.create_task(broker.supervise())
            proxy.stall()  # nothing gets through any more, and no one says so
            await until(lambda: of(events, ConnectionEvent), timeout=10)
            proxy.resume()
            await until(lambda: len(of(events, ConnectionEvent)) >= 2, timeout=20)
            supervisor.cancel()
            await broker.close()
            await proxy.stop()
            return of(events, ConnectionEvent)

    lost, restored = run(main())
    assert lost.state is ConnectionState.LOST and restored.state is ConnectionState.RESTORED


def test_a_client_id_in_use_is_unreachable_with_the_reason(bars, tmp_path):
    async def main():
        async with SimTws(bars, tmp_path / "sim") as sim:
            first, _ = make_broker(sim.port, "ib_insync", tmp_path)
            await first.connect()
            second, _ = make_broker(sim.port, "ib_insync", tmp_path, connect_timeout="2s")
            try:
                with pytest.raises(BrokerUnavailable) as err:
                    await second.connect()
            finally:
                await first.close()
            return str(err.value)

    assert "client id 101 is already in use" in run(main())


def test_tws_not_running_is_unreachable_after_the_retries(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker, _ = make_broker(port, "ib_insync", tmp_path, connect_retries=1, connect_timeout="1s")
    with pytest.raises(BrokerUnavailable, match=r"after 2 attempts.*API"):
        run(broker.connect())


def test_a_live_account_without_mode_live_is_refused_before_any_order(bars, tmp_path):
    async def main():
        async with SimTws(bars, tmp_path / "sim", account="U7654321") as sim:
            broker, _ = make_broker(sim.port, "ib_insync", tmp_path)
            with pytest.raises(InputError, match="U7654321 is a LIVE account"):
                await broker.connect()
            return sim.open_orders()

    assert run(main()) == []


def test_a_fill_landing_between_the_snapshots_requests_makes_it_read_again(bars, tmp_path, caplog):
    """Open orders, positions and executions are three requests: a fill between them would show
    the BUY still open while the position already holds its shares (a false S1 in Reconstruct 5).
    The snapshot is read again, and the one returned agrees with itself."""

    async def main():
        async with SimTws(bars, tmp_path / "sim") as sim:
            broker, events = make_broker(sim.port, "ib_insync", tmp_path)
            await broker.connect()
            broker.place(OrderRequest("TQQQ", Side.BUY, 94, D("200.00"), ref="tqqq_grid:BUY:L0:M50.00"))
            await until(lambda: of(events, OrderUpdate))
            real = broker.ib.reqPositionsAsync
            calls = []

            async def positions_after_a_fill():
                calls.append(1)
                if len(calls) == 1:  # the fill lands after the open orders were read
                    await sim.advance(2)
                    await until(lambda: of(events, Fill))
                return await real()

            broker.ib.reqPositionsAsync = positions_after_a_fill
            with caplog.at_level(logging.INFO, "bothost.ib_broker"):
                snap = await broker.snapshot(None)
            await broker.close()
            return snap, calls

    snap, calls = run(main())
    assert len(calls) == 2 and "reading it again" in caplog.text
    assert snap.open_orders == () and snap.position("TQQQ") == 94 and len(snap.executions) == 1


@pytest.mark.parametrize("lib", LIBS)
def test_an_order_tws_lists_twice_is_one_open_order(bars, tmp_path, lib):
    """TWS sends an order's openOrder again when it changes; one that arrives while the
    open-orders request is answered is in the client's answer twice. The snapshot lists each
    order once: a partly filled BUY counted twice is a false S1 in Reconstruct 5."""

    async def main():
        async with connected(bars, tmp_path, lib, partial_fill_shares=30) as (sim, broker, events):
            buy = broker.place(OrderRequest("TQQQ", Side.BUY, 94, D("200.00"), ref="tqqq_grid:BUY:L0:M50.00"))
            await until(lambda: of(events, OrderUpdate))
            await sim.advance(1)
            await until(lambda: of(events, Fill))
            sim.add_fault("repeat-open-orders@next")
            snap = await broker.snapshot(None)
            return buy, snap

    buy, snap = run(main())
    (order,) = snap.open_orders
    assert (order.order_id, order.quantity, order.filled) == (buy, 94, 30)
    assert snap.position("TQQQ") == 30
