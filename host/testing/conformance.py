"""The broker conformance suite: what the host needs of any broker plugin, as pytest tests.

A broker plugin runs it against itself::

    import pytest
    from bothost.testing.conformance import BrokerConformance, VenueDriver

    class TestMyBroker(BrokerConformance):
        @pytest.fixture
        def venue(self, tmp_path) -> VenueDriver:
            driver = MyVenueDriver(tmp_path)   # how the suite moves the market and the connection
            yield driver
            driver.close()

Every test connects a broker from :meth:`VenueDriver.new_broker`, binds it to a recorder of the
events it emits, and drives it exactly as the engine does: ``place``/``cancel`` (synchronous),
``snapshot`` (what reconstruct reads), and, for a broker that matches orders itself
(:class:`~bothost.hookspecs.MatchingVenue`), the fills of ``match`` dispatched one at a time
with what each caused queued behind it. The market is moved only through the driver.

What is checked: place (tags, types, the id returned at once), cancel (a final CANCELLED, no fill
afterwards), the LIT trigger, fills and partial fills (cumulative quantities, average price,
one FILLED), commission with the fill or after it matched by ``exec_id``, open orders and
executions in a snapshot read by a *new* broker on the same account (a restart), tags
round-tripping through open orders, fills and executions, LOST/RESTORED connection events and
a working broker after them, and the live guard (``settings.is_live()``).

The suite trades around :attr:`VenueDriver.reference_price` ``R``: it rests BUYs below and SELLs
above it, so the market trading at ``R`` fills nothing of the suite's; it only ever asks the
market to trade at ``R`` and at a few prices within 20% of it. On an account shared between
tests (a simulator kept up for a whole module) each test cancels what it left working.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import pytest

from ..hookspecs import Broker, MatchingVenue
from ..model import (
    CommissionReport,
    ConnectionEvent,
    ConnectionState,
    Fill,
    OpenOrder,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    decimal_to_cents,
)

CENT = Decimal("0.01")


# --------------------------------------------------------------------------------------------
# What a broker's tests provide
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VenueCapabilities:
    """What the venue behind a driver does, so the suite knows what to expect (not what to skip:
    a venue that says it fills whole orders must never split one).

    ``partial_fill_shares``: the venue fills at most this many shares of an order per trade
    (None: whole orders). ``late_commission``: commissions arrive as
    :class:`~bothost.model.CommissionReport` after the fill; False: on the fill itself.
    ``connection``: the broker has a connection the driver can cut and restore (a simulated
    venue in the same process has none). ``trades_while_away``: the venue matches orders while no
    broker instance is connected (a real broker; a simulated venue matches only when the host
    hands it a tick), so :meth:`VenueDriver.trade_at` may be called with ``broker=None``. ``settle_s``: how long the suite waits to be sure that
    something did *not* happen (no fill after a cancel) after a snapshot round trip.
    """

    partial_fill_shares: int | None = None
    late_commission: bool = False
    connection: bool = True
    trades_while_away: bool = False
    settle_s: float = 0.05
    timeout_s: float = 10.0


@runtime_checkable
class VenueDriver(Protocol):
    """How the conformance suite reaches the venue behind a broker: its account, its market and
    its connection. One driver per test (the ``venue`` fixture); the account may outlive it."""

    #: the instrument the suite trades (a stock the venue knows)
    symbol: str
    #: where the market rests between the suite's trades (dollars, on the venue's price grid)
    reference_price: Decimal
    capabilities: VenueCapabilities

    def new_broker(self) -> Broker:
        """A broker instance on the venue's account, built as its plugin's factory builds it
        for a paper run (not yet bound or connected). Called again for a *restart*: a fresh
        instance, the same account and the same identity (client id), so that the orders the
        earlier instance placed are this one's and its snapshot reports them."""

    async def trade_at(self, broker: Broker, price: Decimal) -> Iterable[Fill] | None:
        """Make the market trade once at ``price`` (it may also trade at :attr:`reference_price`
        before and after it, never at another price): the venue matches the resting orders
        against it.

        A :class:`~bothost.hookspecs.MatchingVenue` returns ``broker.match(time_ns, cents)``
        (the suite dispatches the fills as the engine does); a broker that reports fills through
        ``emit`` returns None once the venue has traded (the suite then waits for the events).
        ``broker`` is None when no broker is connected (``capabilities.trades_while_away``):
        the venue trades on its own and nobody hears of it until the next snapshot."""

    async def cut_connection(self) -> None:
        """Take the broker's connection to its venue away (the broker should emit a
        ``ConnectionEvent`` LOST). Only called when ``capabilities.connection``."""

    async def restore_connection(self) -> None:
        """Give it back (the broker should emit RESTORED and work again afterwards)."""

    def settings(self, live: bool) -> Any:
        """The broker's settings (its plugin's config model, validated) for a paper account, or
        with ``live`` for a live one; None when the broker cannot reach a live account at all
        (a simulated venue). The host's live guard asks ``settings.is_live()``."""


class MatchingVenueDriver:
    """A ready :meth:`VenueDriver.trade_at` for brokers that match orders themselves: a clock
    that moves ``step_s`` per trade, and ``broker.match`` at the price in cents (with no broker
    connected, a fresh instance nobody listens to matches on the account). Subclass it and
    provide ``new_broker``, ``settings`` (and ``cut_connection``/``restore_connection`` if the
    broker has a connection)."""

    symbol = "TQQQ"
    reference_price = Decimal("50.00")
    capabilities = VenueCapabilities(connection=False)
    start_ns = 1_704_205_800 * 1_000_000_000  # 2024-01-02 09:30 New York
    step_s = 15

    def __init__(self) -> None:
        self.clock_ns = self.start_ns

    async def trade_at(self, broker, price: Decimal) -> Iterable[Fill]:
        self.clock_ns += self.step_s * 1_000_000_000
        cents = decimal_to_cents(Decimal(price))
        if broker is None:
            # Nobody connected (capabilities.trades_while_away): the account trades on its own,
            # through an instance of its own that nobody listens to.
            alone = self.new_broker()
            alone.bind(lambda event: None)
            await alone.connect()
            try:
                for _ in alone.match(self.clock_ns, cents):
                    pass
            finally:
                await alone.close()
            return ()
        return broker.match(self.clock_ns, cents)

    async def cut_connection(self) -> None:
        raise NotImplementedError("this venue has no connection to cut (capabilities.connection is False)")

    async def restore_connection(self) -> None:
        raise NotImplementedError("this venue has no connection to restore")


# --------------------------------------------------------------------------------------------
# The session a test runs in
# --------------------------------------------------------------------------------------------


class Recorder:
    """What the broker emitted, in order, with the engine's ordering of a matching venue's
    fills (events emitted while a fill is being produced come after that fill)."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self._held: list[object] | None = None

    def emit(self, event: object) -> None:
        if self._held is not None:
            self._held.append(event)
        else:
            self.events.append(event)

    def deliver(self, fills: Iterable[Fill]) -> None:
        self._held = []
        try:
            for fill in fills:
                self.events.append(fill)
                held, self._held = self._held, []
                self.events += held
        finally:
            held, self._held = self._held, None
            self.events += held

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def updates(self, order_id: str) -> list[OrderUpdate]:
        return [u for u in self.of(OrderUpdate) if u.order_id == order_id]

    def fills(self, order_id: str) -> list[Fill]:
        return [f for f in self.of(Fill) if f.order_id == order_id]


class Session:
    """One connected broker and its recorder, for one test, inside one event loop."""

    def __init__(self, venue: VenueDriver, tag: str):
        self.venue = venue
        self.caps = venue.capabilities
        self.tag = tag  # every ref this test places starts with it: orders of earlier tests are not ours
        self.R = Decimal(venue.reference_price)
        self.symbol = venue.symbol
        self.broker: Broker | None = None
        self.rec = Recorder()
        self.placed: list[str] = []
        self._supervisor: asyncio.Task | None = None

    async def connect(self) -> Broker:
        broker = self.venue.new_broker()
        assert isinstance(broker, Broker), (
            f"{type(broker).__name__} lacks members of the Broker protocol (bind, connect, snapshot, place, "
            "cancel, close): see bothost.hookspecs.Broker")
        self.rec = Recorder()
        broker.bind(self.rec.emit)
        await asyncio.wait_for(broker.connect(), self.caps.timeout_s * 3)
        self.broker = broker
        supervise = getattr(broker, "supervise", None)
        if callable(supervise):  # as the engine runs it: beside everything else, for the whole run
            self._supervisor = asyncio.get_running_loop().create_task(supervise())
        return broker

    async def _stop_supervisor(self) -> None:
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def restart(self) -> Broker:
        """Close this broker (its orders stay at the venue) and connect a fresh one."""
        await self._stop_supervisor()
        await self.broker.close()
        return await self.connect()

    async def close(self) -> None:
        if self.broker is None:
            return
        try:
            snap = await asyncio.wait_for(self.broker.snapshot(None), self.caps.timeout_s)
            for order in snap.open_orders:
                if order.ref.startswith(self.tag) and order.status is not OrderStatus.PENDING_CANCEL:
                    self.broker.cancel(order.order_id)
            await self.settle()
        except Exception:  # cleaning up must not hide the test's own result
            pass
        finally:
            await self._stop_supervisor()
            await self.broker.close()
            self.broker = None

    # ---------------------------------------------------------------- orders and the market
    def order(self, side: Side, quantity: int, limit: Decimal, *, lit_aux: Decimal | None = None,
              suffix: str = "") -> OrderRequest:
        kind = OrderType.LIMIT if lit_aux is None else OrderType.LIMIT_IF_TOUCHED
        ref = f"{self.tag}:{side.value}:{suffix or len(self.placed) + 1}"
        return OrderRequest(self.symbol, side, quantity, _cents(limit), kind,
                            None if lit_aux is None else _cents(lit_aux), ref=ref)

    def place(self, request: OrderRequest) -> str:
        started = time.perf_counter()
        order_id = self.broker.place(request)
        took = time.perf_counter() - started
        assert isinstance(order_id, str) and order_id, f"place() must return the order's id as a non-empty str, got {order_id!r}"
        assert took < 1.0, f"place() took {took:.2f}s: it must submit and return, not wait on the network"
        self.placed.append(order_id)
        return order_id

    async def trade_at(self, price: Decimal) -> None:
        fills = await self.venue.trade_at(self.broker, _cents(price))
        if fills is not None:
            self.rec.deliver(fills)
        await self.settle()

    async def settle(self) -> None:
        """Let what the venue did so far reach the recorder: a snapshot round trip (one socket
        delivers in order), then the driver's settle time."""
        await asyncio.sleep(0)
        await self.snapshot()
        await asyncio.sleep(self.caps.settle_s)

    async def snapshot(self, since_ns: int | None = None):
        return await asyncio.wait_for(self.broker.snapshot(since_ns), self.caps.timeout_s)

    async def until(self, what: str, predicate: Callable[[], bool], *, nudge: bool = False) -> None:
        """Wait for ``predicate``; ``nudge``: meanwhile let the market trade at the reference
        price (a venue whose clock moves only with the market confirms a cancel at its next tick)."""
        deadline = time.monotonic() + self.caps.timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                ended = self._supervisor is not None and self._supervisor.done()
                raise AssertionError(f"waited {self.caps.timeout_s:g}s for {what}; the broker emitted: "
                                     f"{_brief(self.rec.events)}"
                                     + (f" (its supervise() ended: {self._supervisor.exception()!r})" if ended else ""))
            if nudge:
                await self.trade_at(self.R)
            else:
                await asyncio.sleep(0.01)

    async def fill_completely(self, order_id: str, quantity: int, price: Decimal, most: int = 50) -> list[Fill]:
        """Trade at ``price`` until the order's fills add up to ``quantity``."""
        for _ in range(most):
            if sum(f.quantity for f in self.rec.fills(order_id)) >= quantity:
                break
            await self.trade_at(price)
        await self.until(f"fills of order {order_id} adding up to {quantity} shares",
                         lambda: sum(f.quantity for f in self.rec.fills(order_id)) >= quantity)
        await self.until(f"a FILLED status for order {order_id}",
                         lambda: any(u.status is OrderStatus.FILLED for u in self.rec.updates(order_id)))
        return self.rec.fills(order_id)

    def mine(self, orders: Iterable[OpenOrder]) -> list[OpenOrder]:
        return [o for o in orders if o.ref.startswith(self.tag)]


def _cents(value: Decimal) -> Decimal:
    return Decimal(value).quantize(CENT)


def _brief(events: list[object], most: int = 12) -> str:
    shown = [f"{type(e).__name__}({getattr(e, 'order_id', getattr(e, 'exec_id', ''))}"
             f"{' ' + e.status.value if isinstance(e, OrderUpdate) else ''}"
             f"{' ' + e.state.value if isinstance(e, ConnectionEvent) else ''})" for e in events[-most:]]
    return ", ".join(shown) or "nothing"


_SEQ = iter(range(1, 1 << 30))


def run_session(venue: VenueDriver, scenario: Callable[[Session], Awaitable[None]]) -> None:
    """Connect a broker, run ``scenario(session)`` and close it, in one event loop."""
    tag = f"conf{int(time.time() * 1000) % 10**9}n{next(_SEQ)}"

    async def main() -> None:
        session = Session(venue, tag)
        await session.connect()
        try:
            await scenario(session)
        finally:
            await session.close()

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------------------------


class BrokerConformance:
    """Subclass it in a test module (``class TestMyBroker(BrokerConformance)``) and give it a
    ``venue`` fixture returning a :class:`VenueDriver`. Each test says what the host relies on."""

    @pytest.fixture
    def venue(self) -> VenueDriver:  # pragma: no cover - the subclass provides it
        raise NotImplementedError("give your BrokerConformance subclass a `venue` fixture returning a VenueDriver")

    # ---------------------------------------------------------------- place and snapshot
    def test_place_returns_an_id_at_once_and_the_order_is_open_with_its_tag(self, venue: VenueDriver):
        async def scenario(s: Session) -> None:
            buy = s.order(Side.BUY, 7, s.R * Decimal("0.9"))
            sell = s.order(Side.SELL, 5, s.R * Decimal("1.1"))
            ids = s.place(buy), s.place(sell)
            assert ids[0] != ids[1], "two orders were given the same id"
            await s.settle()
            mine = {o.order_id: o for o in (await s.snapshot()).open_orders if o.order_id in ids}
            assert set(mine) == set(ids), f"the snapshot's open orders should hold the two placed ({ids}), got {list(mine)}"
            for order_id, req in zip(ids, (buy, sell)):
                o = mine[order_id]
                assert (o.symbol, o.side, o.quantity, o.filled, o.limit, o.order_type) == (
                    req.symbol, req.side, req.quantity, 0, req.limit, OrderType.LIMIT), f"open order {o} is not {req}"
                assert o.ref == req.ref, f"the tag did not survive: placed {req.ref!r}, the broker reports {o.ref!r}"
                assert o.live and o.status is not OrderStatus.PENDING_CANCEL, f"order {order_id} is not working: {o.status}"
            for u in s.rec.of(OrderUpdate):
                if u.order_id in ids:
                    assert not u.status.is_final, f"order {u.order_id} ended without a trade or a cancel: {u}"
                    assert u.ref in ("", buy.ref, sell.ref) and u.side in (Side.BUY, Side.SELL)

        run_session(venue, scenario)

    def test_cancel_ends_the_order_with_one_cancelled_and_it_never_fills(self, venue: VenueDriver):
        async def scenario(s: Session) -> None:
            price = s.R * Decimal("0.95")
            order_id = s.place(s.order(Side.BUY, 6, price))
            await s.settle()
            s.broker.cancel(order_id)
            await s.until(f"a CANCELLED status for order {order_id}",
                          lambda: any(u.status is OrderStatus.CANCELLED for u in s.rec.updates(order_id)), nudge=True)
            finals = [u for u in s.rec.updates(order_id) if u.status.is_final]
            assert [u.status for u in finals] == [OrderStatus.CANCELLED], f"final statuses: {finals}"
            assert (finals[0].quantity, finals[0].filled, finals[0].side) == (6, 0, Side.BUY), finals[0]
            assert not s.mine((await s.snapshot()).open_orders), "a cancelled order is still in the snapshot"
            await s.trade_at(price * Decimal("0.98"))  # through its limit: a cancelled order never fills
            assert not s.rec.fills(order_id), f"order {order_id} filled after its cancel: {s.rec.fills(order_id)}"

        run_session(venue, scenario)

    def test_a_limit_if_touched_order_waits_for_its_trigger(self, venue: VenueDriver):
        async def scenario(s: Session) -> None:
            aux, limit = s.R * Decimal("0.90"), s.R * Decimal("0.95")
            req = s.order(Side.BUY, 4, limit, lit_aux=aux)
            order_id = s.place(req)
            await s.settle()
            (o,) = s.mine((await s.snapshot()).open_orders) or [None]
            assert o is not None and o.order_id == order_id, "the LIT order is not in the snapshot"
            assert (o.order_type, o.aux, o.limit) == (OrderType.LIMIT_IF_TOUCHED, req.aux, req.limit), (
                f"the LIT order is reported as {o.order_type.value} aux {o.aux} limit {o.limit}, placed LIT aux "
                f"{req.aux} limit {req.limit}")
            await s.trade_at(s.R * Decimal("0.93"))  # below its limit, above its trigger: a limit would fill
            assert not s.rec.fills(order_id), "a LIT BUY filled before the market touched its trigger (aux)"
            fills = await s.fill_completely(order_id, 4, aux)  # touched: it works as a limit
            assert all(f.price <= req.limit for f in fills), f"a BUY filled above its limit {req.limit}: {fills}"

        run_session(venue, scenario)

    # ---------------------------------------------------------------- fills
    def test_fills_add_up_with_cumulative_quantities_and_average_price(self, venue: VenueDriver):
        async def scenario(s: Session) -> None:
            before = (await s.snapshot()).position(s.symbol)
            quantity = 2 * (s.caps.partial_fill_shares or 5) + 1
            limit = s.R * Decimal("0.97")
            req = s.order(Side.BUY, quantity, limit)
            order_id = s.place(req)
            await s.settle()
            fills = await s.fill_completely(order_id, quantity, limit)
            assert sum(f.quantity for f in fills) == quantity, f"fills add up to more than the order: {fills}"
            if s.caps.partial_fill_shares:
                assert len(fills) >= 3 and all(f.quantity <= s.caps.partial_fill_shares for f in fills), (
                    f"the venue fills at most {s.caps.partial_fill_shares} shares per trade, got {[f.quantity for f in fills]}")
            else:
                assert len(fills) == 1, f"a venue that fills whole orders split one: {[f.quantity for f in fills]}"
            assert len({f.exec_id for f in fills}) == len(fills), "two executions share an exec_id"
            total, value = 0, Decimal(0)
            for f in fills:
                total += f.quantity
                value += f.quantity * f.price
                assert (f.symbol, f.side, f.ref, f.order_quantity) == (s.symbol, Side.BUY, req.ref, quantity), f
                assert f.price <= limit, f"a BUY filled above its limit {limit}: {f}"
                assert f.order_filled == total, f"order_filled must be the order's cumulative fill ({total}): {f}"
                assert abs(f.order_avg_price - value / total) < Decimal("0.000001"), (
                    f"order_avg_price must be the order's average fill price ({value / total}): {f}")
                assert f.time_ns > 0
            assert fills[-1].order_complete and not any(f.order_complete for f in fills[:-1])
            statuses = [u.status for u in s.rec.updates(order_id) if u.status.is_final]
            assert statuses == [OrderStatus.FILLED], f"final statuses of a filled order: {statuses}"
            filled = next(u for u in s.rec.updates(order_id) if u.status is OrderStatus.FILLED)
            assert (filled.filled, filled.quantity) == (quantity, quantity), f"the FILLED status says {filled}"
            snap = await s.snapshot()
            assert snap.position(s.symbol) - before == quantity, (
                f"the position moved by {snap.position(s.symbol) - before}, the fills by {quantity}")
            assert not s.mine(snap.open_orders), "a filled order is still open"

        run_session(venue, scenario)

    def test_a_partly_filled_order_cancelled_keeps_its_fills_and_fills_no_more(self, venue: VenueDriver):
        if not venue.capabilities.partial_fill_shares:
            pytest.skip("the venue fills whole orders (capabilities.partial_fill_shares is None)")

        async def scenario(s: Session) -> None:
            n = s.caps.partial_fill_shares
            limit = s.R * Decimal("0.97")
            order_id = s.place(s.order(Side.BUY, 3 * n, limit))
            await s.settle()
            await s.trade_at(limit)
            await s.until(f"a partial fill of order {order_id}", lambda: bool(s.rec.fills(order_id)))
            partial = sum(f.quantity for f in s.rec.fills(order_id))
            assert 0 < partial < 3 * n, f"a trade filled {partial} of {3 * n} shares, at most {n} expected"
            (o,) = [o for o in (await s.snapshot()).open_orders if o.order_id == order_id] or [None]
            assert o is not None and o.filled == partial and o.remaining == 3 * n - partial, (
                f"a partly filled order is reported as {o}")
            s.broker.cancel(order_id)
            await s.until(f"a CANCELLED status for partly filled order {order_id}", lambda: any(
                u.status is OrderStatus.CANCELLED for u in s.rec.updates(order_id)), nudge=True)
            cancelled = next(u for u in s.rec.updates(order_id) if u.status is OrderStatus.CANCELLED)
            assert cancelled.filled == partial, f"the CANCELLED status says {cancelled.filled} filled, the fills {partial}"
            await s.trade_at(limit * Decimal("0.98"))
            assert sum(f.quantity for f in s.rec.fills(order_id)) == partial, "a cancelled order filled again"
            execs = [e for e in (await s.snapshot()).executions if e.order_id == order_id]
            assert sum(e.quantity for e in execs) == partial, f"the snapshot's executions of the order: {execs}"

        run_session(venue, scenario)

    def test_every_fill_has_its_commission_on_it_or_reported_after_it_by_exec_id(self, venue: VenueDriver):
        async def scenario(s: Session) -> None:
            quantity = (s.caps.partial_fill_shares or 3) + 1
            order_id = s.place(s.order(Side.BUY, quantity, s.R * Decimal("0.96")))
            await s.settle()
            fills = await s.fill_completely(order_id, quantity, s.R * Decimal("0.96"))
            ids = {f.exec_id for f in fills}
            if s.caps.late_commission:
                await s.until("a commission report for every fill",
                              lambda: ids <= {r.exec_id for r in s.rec.of(CommissionReport)})
            reports = [r for r in s.rec.of(CommissionReport) if r.exec_id in ids]
            for f in fills:
                mine = [r for r in reports if r.exec_id == f.exec_id]
                if f.commission is None:
                    assert len(mine) == 1, f"fill {f.exec_id} came without a commission and {len(mine)} reports followed"
                    assert s.rec.events.index(mine[0]) > s.rec.events.index(f), "a commission report came before its fill"
                    assert mine[0].commission >= 0
                else:
                    assert not s.caps.late_commission, "the venue reports commissions later, yet a fill carried one"
                    assert f.commission >= 0 and not mine, f"fill {f.exec_id} carried a commission and was reported again"
            by_exec = {e.exec_id: e for e in (await s.snapshot()).executions}
            for f in fills:
                e = by_exec.get(f.exec_id)
                assert e is not None, f"execution {f.exec_id} is missing from the snapshot"
                told = f.commission if f.commission is not None else next(r.commission for r in reports if r.exec_id == f.exec_id)
                assert e.commission == told, f"the snapshot's commission of {f.exec_id} is {e.commission}, told {told}"

        run_session(venue, scenario)

    # ---------------------------------------------------------------- reconstruct
    def test_a_restarted_broker_reports_the_open_orders_and_executions_of_the_first(self, venue: VenueDriver):
        async def scenario(s: Session) -> None:
            resting = s.order(Side.SELL, 3, s.R * Decimal("1.15"), suffix="resting")
            lit = s.order(Side.BUY, 2, s.R * Decimal("0.85"), lit_aux=s.R * Decimal("0.84"), suffix="lit")
            filled = s.order(Side.BUY, 2, s.R * Decimal("0.98"), suffix="filled")
            s.place(resting), s.place(lit)
            filled_id = s.place(filled)
            await s.settle()
            fills = await s.fill_completely(filled_id, 2, s.R * Decimal("0.98"))
            first = await s.snapshot()
            await s.restart()
            snap = await s.snapshot()
            mine = {o.ref: o for o in s.mine(snap.open_orders)}
            assert set(mine) == {resting.ref, lit.ref}, (
                f"after a restart the open orders should be the resting SELL and the LIT BUY, got {sorted(mine)}")
            before = {o.ref: o for o in s.mine(first.open_orders)}
            for ref, o in mine.items():
                assert o.stable_id == before[ref].stable_id, f"order {ref} changed identity across the restart"
                assert (o.side, o.quantity, o.filled, o.limit, o.order_type, o.aux) == (
                    before[ref].side, before[ref].quantity, 0, before[ref].limit, before[ref].order_type, before[ref].aux)
            assert mine[lit.ref].order_type is OrderType.LIMIT_IF_TOUCHED
            execs = {e.exec_id: e for e in snap.executions}
            for f in fills:
                e = execs.get(f.exec_id)
                assert e is not None, f"execution {f.exec_id} of the first broker is missing after the restart"
                assert (e.ref, e.side, e.quantity, e.price, e.stable_id) == (f.ref, f.side, f.quantity, f.price, f.stable_id), e
                assert e.commission is not None, f"execution {e.exec_id} has no commission in the snapshot"
            since = await s.snapshot(min(f.time_ns for f in fills) - 1)
            assert {f.exec_id for f in fills} <= {e.exec_id for e in since.executions}, (
                "snapshot(executions_since_ns) left out executions after that time")
            # The orders of the first broker are this one's: it can cancel them, and their fills reach it.
            s.broker.cancel(mine[resting.ref].order_id)
            await s.until("a CANCELLED status for the SELL placed before the restart",
                          lambda: any(u.status is OrderStatus.CANCELLED for u in s.rec.updates(mine[resting.ref].order_id)),
                          nudge=True)
            later = await s.fill_completely(mine[lit.ref].order_id, 2, s.R * Decimal("0.84"))
            assert all(f.ref == lit.ref for f in later), f"fills of an order placed before the restart lost its tag: {later}"

        run_session(venue, scenario)

    def test_fills_while_no_broker_was_connected_are_in_the_next_snapshot(self, venue: VenueDriver):
        if not venue.capabilities.trades_while_away:
            pytest.skip("the venue matches only while a broker drives it (capabilities.trades_while_away is False)")

        async def scenario(s: Session) -> None:
            quantity = s.caps.partial_fill_shares or 3
            req = s.order(Side.BUY, quantity, s.R * Decimal("0.97"), suffix="away")
            order_id = s.place(req)
            await s.settle()
            before = await s.snapshot()
            await s._stop_supervisor()
            await s.broker.close()  # the bot is down; the market trades on
            s.broker = None
            await s.venue.trade_at(None, _cents(s.R * Decimal("0.97")))
            await s.connect()
            snap = await s.snapshot()
            (o,) = [o for o in before.open_orders if o.order_id == order_id]
            execs = [e for e in snap.executions if e.stable_id == o.stable_id]
            assert execs, "an execution while no broker was connected is missing from the next snapshot"
            assert sum(e.quantity for e in execs) == quantity and all(e.ref == req.ref for e in execs), execs
            assert all(e.commission is not None for e in execs), f"executions without their commission: {execs}"
            assert o.stable_id not in {x.stable_id for x in snap.open_orders}, "the filled order is still open"
            assert snap.position(s.symbol) - before.position(s.symbol) == quantity

        run_session(venue, scenario)

    def test_tags_round_trip_through_open_orders_fills_and_executions(self, venue: VenueDriver):
        async def scenario(s: Session) -> None:
            tags = [f"{s.tag}:SELL:L12:P48.51:A49.00:B77", f"{s.tag}:BUY:L0:M50.00:T1704205800000",
                    f"{s.tag}:" + "x" * 20]
            reqs = [OrderRequest(s.symbol, Side.BUY, 2, _cents(s.R * Decimal("0.94")), ref=tags[0]),
                    OrderRequest(s.symbol, Side.BUY, 2, _cents(s.R * Decimal("0.94")), ref=tags[1]),
                    OrderRequest(s.symbol, Side.SELL, 2, _cents(s.R * Decimal("1.12")), ref=tags[2])]
            ids = [s.place(r) for r in reqs]
            await s.settle()
            open_refs = {o.order_id: o.ref for o in (await s.snapshot()).open_orders if o.order_id in ids}
            assert open_refs == dict(zip(ids, tags)), f"tags in the snapshot: {open_refs}, placed: {dict(zip(ids, tags))}"
            fills = []
            for order_id in ids[:2]:
                fills += await s.fill_completely(order_id, 2, s.R * Decimal("0.94"))
            assert {f.ref for f in fills} == set(tags[:2]), f"tags on the fills: {sorted({f.ref for f in fills})}"
            for u in s.rec.of(OrderUpdate):
                if u.order_id in ids and u.ref:
                    assert u.ref == tags[ids.index(u.order_id)], f"an update carries another order's tag: {u}"
            execs = {e.exec_id: e.ref for e in (await s.snapshot()).executions}
            assert {execs.get(f.exec_id) for f in fills} == set(tags[:2]), "tags lost from the snapshot's executions"

        run_session(venue, scenario)

    # ---------------------------------------------------------------- connection
    def test_a_lost_connection_is_reported_lost_then_restored_and_the_broker_works_after(self, venue: VenueDriver):
        if not venue.capabilities.connection:
            pytest.skip("the venue declares no connection of its own (capabilities.connection is False)")

        async def scenario(s: Session) -> None:
            await s.venue.cut_connection()
            await s.until("a ConnectionEvent LOST", lambda: any(
                e.state is ConnectionState.LOST for e in s.rec.of(ConnectionEvent)))
            await s.venue.restore_connection()
            await s.until("a ConnectionEvent RESTORED after the LOST", lambda: [
                e.state for e in s.rec.of(ConnectionEvent)][-1:] == [ConnectionState.RESTORED])
            events = s.rec.of(ConnectionEvent)
            assert events[0].state is ConnectionState.LOST, f"connection events: {events}"
            assert all(e.source for e in events), "a ConnectionEvent must name its source"
            order_id = s.place(s.order(Side.BUY, 2, s.R * Decimal("0.9")))  # placing works again
            await s.settle()
            assert order_id in {o.order_id for o in (await s.snapshot()).open_orders}, (
                "an order placed after RESTORED is not at the broker")

        run_session(venue, scenario)

    def test_fills_during_an_outage_are_in_the_snapshot_after_it(self, venue: VenueDriver):
        caps = venue.capabilities
        if not (caps.connection and caps.trades_while_away):
            pytest.skip("the venue has no connection to lose, or does not trade without its host "
                        "(capabilities.connection and trades_while_away)")

        async def scenario(s: Session) -> None:
            if isinstance(s.broker, MatchingVenue):
                pytest.skip("a matching venue trades only when its host hands it a tick")
            quantity = s.caps.partial_fill_shares or 3
            req = s.order(Side.BUY, quantity, s.R * Decimal("0.97"), suffix="outage")
            order_id = s.place(req)
            await s.settle()
            (o,) = [o for o in (await s.snapshot()).open_orders if o.order_id == order_id]
            await s.venue.cut_connection()
            await s.until("a ConnectionEvent LOST", lambda: any(
                e.state is ConnectionState.LOST for e in s.rec.of(ConnectionEvent)))
            await s.venue.trade_at(s.broker, _cents(s.R * Decimal("0.97")))  # while the connection is down
            await s.venue.restore_connection()
            await s.until("a ConnectionEvent RESTORED", lambda: any(
                e.state is ConnectionState.RESTORED for e in s.rec.of(ConnectionEvent)))
            snap = await s.snapshot()  # what the engine's reconstruct after RESTORED reads
            execs = [e for e in snap.executions if e.stable_id == o.stable_id]
            assert sum(e.quantity for e in execs) == quantity, (
                f"the fill during the outage is not in the snapshot after it: {execs}")
            assert all(e.ref == req.ref and e.commission is not None for e in execs), execs
            assert o.stable_id not in {x.stable_id for x in snap.open_orders}, "the filled order is still open"
            told = [f for f in s.rec.of(Fill) if f.stable_id == o.stable_id]
            assert {f.exec_id for f in told} <= {e.exec_id for e in execs}, (
                f"fills emitted after the outage carry exec ids the snapshot does not know: {told}")

        run_session(venue, scenario)

    # ---------------------------------------------------------------- the live guard
    def test_the_settings_say_whether_they_point_at_a_live_account(self, venue: VenueDriver):
        paper = venue.settings(live=False)
        assert callable(getattr(paper, "is_live", None)), (
            f"{type(paper).__name__} has no is_live(): the host refuses a broker that does not say (S2)")
        assert paper.is_live() is False, "the paper settings the tests trade with claim to point at a live account"
        live = venue.settings(live=True)
        if live is not None:
            assert live.is_live() is True, "settings that point at a live account must say so: is_live() is False"
        # ... and the host's own guard (S2) lets the paper settings run `mode: paper` and refuses the live ones.
        from types import SimpleNamespace

        from ..errors import InputError
        from ..run import live_guard

        run = SimpleNamespace(mode="paper", path="conformance.yaml", where=lambda keys: None,
                              broker=SimpleNamespace(use=type(paper).__name__))
        live_guard(run, paper)
        if live is not None:
            with pytest.raises(InputError, match="LIVE account"):
                live_guard(run, live)
            live_guard(SimpleNamespace(**{**vars(run), "mode": "live"}), live)  # `mode: live` says so


__all__ = ["BrokerConformance", "MatchingVenueDriver", "Recorder", "Session", "VenueCapabilities", "VenueDriver",
           "run_session"]
