"""The venue fault campaign's machinery, shared by tests/test_venue_fault_campaign.py and
benchmarks/venue_fault_campaign.py: seeded draws of fault mixes, the observer that checks I1-I4
after every event, and the end-of-run audit (nothing lost, nothing doubled).

Two venues:

* the simulated venue (``sim_broker``), told to misbehave like IB and worse (``draw_mix``);
* the TWS simulator (``sim_tws`` in lockstep) through the real IB plugin and client library.

In both the observer is a plugin registered on the real engine, called after the grid for every
``on_fill``, ``on_order_update``, ``on_commission``, ``on_tick`` and ``reconstruct``. It compares
the grid's book with the broker's own orders and position (spec I1-I4), and once a tick has
settled (no cancel in flight, no acknowledgement owed) that every BUY the book wants is working.
A check is skipped only while the broker has executed something it has not reported yet (the
book cannot know) or while the broker is down: those are counted (``skipped``).
"""

from __future__ import annotations

import csv
import json
import random
import re
import sqlite3
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from bothost.hookspecs import BrokerUnavailable, hookimpl
from bothost.model import OpenOrder, OrderStatus, OrderUpdate, Side
from bothost_plugins.tqqq_grid.invariants import check_invariants
from bothost_plugins.tqqq_grid.tags import SELL as SELL_TAG, parse_tag

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "configs" / "tqqq-paper.yaml"
IB_CONFIG = REPO / "configs" / "tqqq-ib.yaml"


class InvariantBroken(AssertionError):
    pass


# ------------------------------------------------------------------ fault mixes (sim_broker)
@dataclass
class Mix:
    """One draw: the data and the venue's faults, as `--set` overrides."""

    seed: int
    bars: int
    volatility: float
    data_seed: int
    broker: dict = field(default_factory=dict)

    def overrides(self) -> list[str]:
        out = [f"feed.synthetic.bars={self.bars}", f"feed.synthetic.volatility={self.volatility}",
               f"feed.synthetic.seed={self.data_seed}"]
        for key, value in self.broker.items():
            out.append(f"broker.{key}={json.dumps(value) if isinstance(value, list) else str(value).lower()}")
        return out

    def describe(self) -> str:
        return f"draw seed={self.seed}: " + " ".join(self.overrides())


def draw_mix(seed: int, bars: tuple[int, int] = (600, 1800)) -> Mix:
    """A seeded random mix of venue faults over small synthetic data."""
    rng = random.Random(seed)
    broker: dict = {}
    for flag in ("late_acks", "late_cancels", "commission_later", "execs_after_status"):
        if rng.random() < 0.5:
            broker[flag] = True
    if rng.random() < 0.5:
        broker["partial_fill_shares"] = rng.choice([1, 2, 3, 4, 5, 7])
    if rng.random() < 0.5:
        broker["duplicate_execs"] = rng.choice([1, 2, 3, 5])
    if rng.random() < 0.3:  # queue levels refused (201 then Cancelled): never Level 0, never a SELL
        broker["reject_refs"] = [f":BUY:L{k}:" for k in sorted(rng.sample(range(1, 9), rng.randint(1, 2)))]
    if rng.random() < 0.3:  # parked Inactive: a queue BUY keeps its slot, a SELL stays the lot's one SELL
        side = rng.choice(["BUY", "SELL"])
        broker["inactive_refs"] = [f":{side}:L{rng.randint(1, 6)}:"]
    if rng.random() < 0.35:
        broker["disconnect_at_execs"] = sorted(rng.sample(range(2, 80), rng.randint(1, 2)))
    return Mix(seed=seed, bars=rng.randint(*bars), volatility=round(rng.uniform(0.6, 1.6), 2),
               data_seed=rng.randrange(1 << 20), broker=broker)


# ------------------------------------------------------------------ the observer
class Observer:
    """I1-I4 after every event, against the broker's own state. Subclasses say how to read it."""

    def __init__(self) -> None:
        self.checked = 0
        self.settled_checks = 0
        self.skipped = 0
        self.events = Counter()
        self.seen_execs: set[str] = set()  # executions the grid has been told of (events or snapshots)
        self.fill_events = 0
        self.duplicates_delivered = 0
        self.sells_placed: Counter = Counter()  # BUY stable id -> SELLs placed naming it
        self.strategy = None
        self.engine = None
        self.max_lots = 0
        self.halted = False
        self.placed_after_halt = 0
        self.sell_ids: dict[str, list[str]] = {}  # BUY stable id -> the SELL orders placed for it
        self.sells_lost = 0

    # -- how the broker looks (per venue) --
    def broker_orders(self) -> list[OpenOrder]:
        raise NotImplementedError

    def broker_position(self) -> int:
        raise NotImplementedError

    def unreported(self) -> set[str]:
        """Executions the broker made that the grid has not been told of yet."""
        raise NotImplementedError

    def settled(self) -> bool:
        """No cancel in flight, no acknowledgement owed: the queue must be whole now."""
        return True

    def exempt_levels(self) -> set[int]:
        """Queue levels the broker refuses (rejects): never expected to be working."""
        return set()

    def wrap_broker(self, broker) -> None:
        place = broker.place

        def placed(order):
            oid = place(order)
            self.on_placed(order, oid)
            return oid

        broker.place = placed

    def on_placed(self, order, oid: str) -> None:
        if self.strategy is not None and self.strategy.book is not None and self.strategy.book.halted:
            self.placed_after_halt += 1
        tag = parse_tag(order.ref)
        if tag is not None and tag.kind == SELL_TAG:
            earlier = self.sell_ids.setdefault(tag.buy_order_id, [])
            if any(self.reached_broker(e) for e in earlier):
                raise InvariantBroken(f"a second SELL ({order.ref}, order {oid}) for BUY {tag.buy_order_id}: "
                                      f"the broker has SELL {earlier} for it already")
            if earlier:
                self.sells_lost += 1  # the first one died on the wire with the connection (reconstruct 4 again)
            earlier.append(oid)
            self.sells_placed[tag.buy_order_id] += 1

    def reached_broker(self, order_id: str) -> bool:
        """Did an order the bot sent reach the broker? (Over a socket, one sent just before the
        connection dropped may not have: then reconstruct rightly places it again.)"""
        return True

    # -- hooks --
    def attach(self, ctx) -> None:
        """A (re)started run: its engine, its grid, its broker (a restart builds new ones)."""
        if self.engine is not ctx.engine:
            self.engine, self.strategy = ctx.engine, ctx.instance
            self.wrap_broker(ctx.engine.broker)

    @hookimpl(tryfirst=True)
    def reconstruct(self, ctx, snapshot):
        self.attach(ctx)  # before the grid's reconstruct: the updates it causes are checked
        self.seen_execs.update(e.exec_id for e in snapshot.executions)
        self.events["reconstruct"] += 1

    @hookimpl
    def on_start(self, ctx):
        self.attach(ctx)
        self.check("after reconstruct")

    @hookimpl
    def on_fill(self, ctx, fill):
        self.fill_events += 1
        if fill.exec_id in self.seen_execs:
            self.duplicates_delivered += 1
        self.seen_execs.add(fill.exec_id)
        self.events["fill"] += 1
        self.check(f"after fill {fill.exec_id} ({fill.side.value} {fill.quantity} @ {fill.price} of {fill.order_id})")

    @hookimpl
    def on_order_update(self, ctx, update):
        self.events["update"] += 1
        self.check(f"after {update.status.value} of order {update.order_id} ({update.ref})")

    @hookimpl
    def on_commission(self, ctx, report):
        self.events["commission"] += 1
        self.check(f"after the commission of {report.exec_id}")

    @hookimpl
    def on_tick(self, ctx, tick):
        self.events["tick"] += 1
        self.check(f"after the tick at {tick.time_ns} ({tick.price})", settle=True)

    # -- the check --
    def check(self, when: str, settle: bool = False) -> None:
        if self.strategy is None or self.strategy.book is None:
            return
        book = self.strategy.book
        if book.halted:
            self.halted = True  # S1: nothing more is placed; I1 may be broken on purpose
            return
        if not self.engine.broker_up or self.unreported():
            self.skipped += 1
            return
        orders = self.broker_orders()
        problems = check_invariants(book, orders, self.broker_position())
        if settle and self.settled():
            problems += self.queue_whole(book, orders)
            self.settled_checks += 1
        if problems:
            raise InvariantBroken(f"{when}: " + "; ".join(problems))
        self.checked += 1
        self.max_lots = max(self.max_lots, len(book.lots))

    def queue_whole(self, book, orders) -> list[str]:
        """Settled: every slot of the desired queue has its BUY working at the broker."""
        if book._deferred:
            return ["a queue slot is still deferred although nothing is in flight"]
        working = set()
        for o in orders:
            if o.side is Side.BUY and o.symbol == book.symbol and o.live:
                tag = parse_tag(o.ref) if o.ref else None
                if tag is not None:
                    working.add((tag.level, o.quantity, o.limit))
        exempt = self.exempt_levels()
        missing = [s for s in book.desired() if (s.level, s.quantity, s.price) not in working and s.level not in exempt]
        return [f"settled, but the desired BUY L{s.level} {s.quantity} @ {s.price} is not working" for s in missing]


class VenueObserver(Observer):
    """Against ``sim_broker``'s venue, read directly (same process)."""

    def __init__(self) -> None:
        super().__init__()
        self.venue = None

    def attach(self, ctx) -> None:
        super().attach(ctx)
        self.venue = ctx.engine.broker.venue

    def broker_orders(self):
        """The venue's open orders as the grid has been told of them: an order whose cancel the
        venue has carried out but whose Cancelled is still queued for the grid is open still
        (with its filled part: the shares I3 counts until the grid hears of the cancel)."""
        orders = list(self.venue.open_orders())
        book = self.strategy.book
        for event in self.engine.pending:
            if isinstance(event, OrderUpdate) and event.status is OrderStatus.CANCELLED and event.filled:
                b = book.buys.get(event.order_id)
                if b is not None and int(event.order_id) not in self.venue.orders:
                    orders.append(OpenOrder(order_id=event.order_id, symbol=event.symbol, side=event.side,
                                            quantity=event.quantity, filled=event.filled, limit=b.price,
                                            ref=event.ref, status=OrderStatus.PENDING_CANCEL))
        return orders

    def broker_position(self):
        return self.venue.position.get(self.strategy.book.symbol, 0)

    def unreported(self):
        v = self.venue
        made = {f"E{n}" for n in range(max(1, v.next_exec_id - 64), v.next_exec_id)}
        # a lot's SELL the venue refused or cancelled, the grid not told yet (it halts when told)
        lots = self.strategy.book.lots
        ended = {f"ended:{e.order_id}" for e in self.engine.pending if isinstance(e, OrderUpdate)
                 and e.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED) and e.order_id in lots}
        return (made - self.seen_execs) | ended

    def settled(self):
        return not self.venue.cancelling and not self.venue.unacked

    def exempt_levels(self):
        return {int(m.group(1)) for p in self.venue.like.reject_refs if (m := re.fullmatch(r":BUY:L(\d+):", p))}


# ------------------------------------------------------------------ audits after a run
def venue_executions(state: Path) -> list[dict]:
    with closing(sqlite3.connect(f"file:{state / 'venue.sqlite'}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT exec_id, order_id, time_ns, side, quantity, price, commission, ref "
                          "FROM executions ORDER BY n").fetchall()
    return [dict(zip(("exec_id", "order_id", "time_ns", "side", "quantity", "price", "commission", "ref"), r))
            for r in rows]


def venue_orders(state: Path) -> list[dict]:
    with closing(sqlite3.connect(f"file:{state / 'venue.sqlite'}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT id, side, quantity, filled, ref, status FROM orders ORDER BY id").fetchall()
    return [dict(zip(("id", "side", "quantity", "filled", "ref", "status"), r)) for r in rows]


def fills_rows(out: Path) -> list[dict]:
    with open(out / "fills.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def audit_venue_run(state: Path, out: Path, book) -> dict:
    """Nothing lost, nothing doubled: every execution at the venue is in fills.csv exactly once;
    no BUY ever had two SELLs; the book's fees and gross P&L are the executions' own."""
    execs = venue_executions(state)
    rows = fills_rows(out)
    key = lambda side, qty, price, comm, oid: (side, int(qty), Decimal(price), Decimal(comm), str(oid))  # noqa: E731
    at_venue = Counter(key(e["side"], e["quantity"], e["price"], e["commission"], e["order_id"]) for e in execs)
    in_csv = Counter(key(r["side"], r["quantity"], r["price"], r["commission"], r["order_id"]) for r in rows)
    if len(rows) != len(execs) or at_venue != in_csv:
        raise InvariantBroken(f"fills.csv ({len(rows)} rows) is not the venue's {len(execs)} executions: "
                              f"missing {at_venue - in_csv}, extra {in_csv - at_venue}")
    sells: Counter = Counter()
    for o in venue_orders(state):
        tag = parse_tag(o["ref"])
        if tag is not None and tag.kind == SELL_TAG:
            sells[tag.buy_order_id] += 1
    doubled = {b: n for b, n in sells.items() if n > 1}
    if doubled:
        raise InvariantBroken(f"BUYs with more than one SELL: {doubled}")
    fees = sum((Decimal(e["commission"]) for e in execs), Decimal(0))
    gross = Decimal(0)
    for e in execs:
        if e["side"] == "SELL":
            gross += e["quantity"] * (Decimal(e["price"]) - parse_tag(e["ref"]).price)
    if book is not None:
        if book.fee_pending:
            raise InvariantBroken(f"commissions never booked: {sorted(book.fee_pending)}")
        if book.fees != fees:
            raise InvariantBroken(f"the book's fees {book.fees} != the executions' {fees}")
        if book.gross_pnl != gross:
            raise InvariantBroken(f"the book's gross P&L {book.gross_pnl} != the executions' {gross}")
    return {"executions": len(execs), "sell_orders": sum(sells.values()), "fees": str(fees), "gross_pnl": str(gross)}


# ------------------------------------------------------------------ one draw, start to end
def run_mix(tmp: Path, mix: Mix, max_restarts: int = 5) -> dict:
    """The draw's run; after each planned disconnect the same command again (the reconnect:
    a reconstruct from the venue). Raises InvariantBroken (or AssertionError) on any failure."""
    from conftest import run_in_process  # noqa: PLC0415 (tests/ is on sys.path: pytest, or the benchmark)

    observer = VenueObserver()
    state, out = tmp / "state", tmp / "out"
    restarts = 0
    started = time.perf_counter()
    while True:
        try:
            result = run_in_process(tmp, mix.overrides(), observers=[observer], state=state, out=out)
            break
        except BrokerUnavailable as exc:
            if "disconnect_at_execs" not in str(exc) or restarts >= max_restarts:
                raise
            restarts += 1
    wall = time.perf_counter() - started
    if result.status != "done":
        raise InvariantBroken(f"the run ended {result.status!r}: {result.summary.get('alert')}")
    book = observer.strategy.book
    audit = audit_venue_run(state, out, book)
    return {"seed": mix.seed, "overrides": mix.overrides(), "status": result.status, "restarts": restarts,
            "checked": observer.checked, "settled_checks": observer.settled_checks, "skipped": observer.skipped,
            "events": dict(observer.events), "duplicates_delivered": observer.duplicates_delivered,
            "max_lots": observer.max_lots, "wall_s": round(wall, 3), **audit}


# ------------------------------------------------------------------ the TWS simulator (sim_tws)
CLIENT_ID = 101  # configs/tqqq.yaml's default


def _sim_view(sim, client_id: int, wanted: tuple[int, ...]):
    """On the simulator's loop: its open orders, stock position and this client's executions;
    None while an order the bot placed has not reached it yet (still on the wire)."""
    ex = sim.exchange
    if client_id not in ex.sessions:
        return "gone"  # the connection is closed: what the bot sent last may never have arrived
    if any((client_id, oid) not in ex.by_client for oid in wanted):
        return None
    orders = [(o.client_id, o.order_id, o.perm_id, o.side, o.quantity, o.filled, o.limit, o.ref, o.status)
              for o in sim.open_orders() if o.symbol == ex.symbol]
    execs = [r.exec_id for r in ex.execs[-64:] if r.client_id == client_id]  # the newest: enough to see one unreported
    return orders, ex._stock_position()[0], execs


class TwsObserver(Observer):
    """Against the TWS simulator, read on its own loop (``SimTwsThread.call``) while the bot
    runs in this process: the broker's orders as the simulator holds them, once every order the
    bot sent has arrived."""

    def __init__(self, sim, client_id: int = CLIENT_ID, exempt: set[int] = frozenset()) -> None:
        super().__init__()
        self.sim, self.client_id, self.exempt = sim, client_id, set(exempt)
        self._view = None
        self.waits = 0
        # A quiet tick (nothing placed, cancelled, filled or reported since the last check)
        # leaves both sides as the last check saw them: in lockstep the simulator sends tick k
        # only once the bot has handled tick k's fills. Such ticks are checked every 50th only
        # (a round trip to the simulator's thread each is most of a rehearsal's time otherwise).
        self.dirty = True
        self.quiet = 0
        self.unchanged = 0

    def on_placed(self, order, oid):
        self.dirty = True
        super().on_placed(order, oid)

    def reached_broker(self, order_id: str) -> bool:
        if not order_id.isdigit():
            return True
        key = (self.client_id, int(order_id))
        return self.sim.call(lambda s: key in s.exchange.by_client)

    def wrap_broker(self, broker) -> None:
        super().wrap_broker(broker)
        cancel = broker.cancel

        def cancelled(order_id):
            self.dirty = True
            return cancel(order_id)

        broker.cancel = cancelled

    def _read(self):
        from bothost_plugins.ib_broker import convert  # noqa: PLC0415

        book = self.strategy.book
        wanted = tuple(int(k) for k in (*book.lots, *book.buys) if k and k.isdigit())
        deadline = time.monotonic() + 10
        while True:
            view = self.sim.call(_sim_view, self.client_id, wanted)
            if view == "gone":
                self._view = None  # the bot will hear LOST, reconnect and reconstruct
                return
            if view is not None:
                break
            self.waits += 1
            if time.monotonic() > deadline:
                raise InvariantBroken(f"orders the bot placed never reached the simulator: {wanted}")
            time.sleep(0.002)
        rows, position, execs = view
        orders = []
        for cid, oid, perm, side, qty, filled, limit, ref, status in rows:
            orders.append(OpenOrder(order_id=convert.order_key(cid, oid, perm, self.client_id), symbol=book.symbol,
                                    side=Side.BUY if side == "BUY" else Side.SELL, quantity=qty, filled=filled,
                                    limit=limit, ref=ref, status=convert.status(status), perm_id=str(perm)))
        # a BUY the bot cancelled and the simulator has cancelled, the Cancelled still on the wire:
        # still open as far as the bot was told (its filled part counts for I3 until then)
        listed = {o.order_id for o in orders}
        for b in book.buys.values():
            if b.cancel_requested and b.filled and b.order_id not in listed:
                orders.append(OpenOrder(order_id=b.order_id, symbol=book.symbol, side=Side.BUY, quantity=b.quantity,
                                        filled=b.filled, limit=b.price, ref=b.ref, status=OrderStatus.PENDING_CANCEL))
        self._view = (orders, position, set(execs))

    def check(self, when: str, settle: bool = False) -> None:
        book = None if self.strategy is None else self.strategy.book
        if book is None or book.halted or not self.engine.broker_up:
            return super().check(when, settle)
        if when.startswith("after the tick"):
            self.quiet += 1
            if not self.dirty and self.quiet % 50:
                self.unchanged += 1
                return
        else:
            self.dirty = True
        self._read()
        if self._view is None:
            self.skipped += 1
            self.dirty = True
            return
        super().check(when, settle)
        if self.unreported():
            return  # the simulator is ahead: check again at the next event
        self.dirty = False

    def broker_orders(self):
        return self._view[0]

    def broker_position(self):
        return self._view[1]

    def unreported(self):
        return self._view[2] - self.seen_execs

    def settled(self):
        return not any(b.cancel_requested for b in self.strategy.book.buys.values())

    def exempt_levels(self):
        return self.exempt


@dataclass
class TwsMix:
    """One rehearsal draw: the simulator's faults, and whether the socket drops right after
    some executions went out (before the bot could act on them: a disconnect mid-fill)."""

    seed: int
    faults: list[str]
    partial: int | None = None
    drop_after_execs: tuple[int, ...] = ()
    exempt: set[int] = field(default_factory=set)

    def describe(self) -> str:
        return (f"rehearsal seed={self.seed}: faults={self.faults} partial={self.partial} "
                f"drop_after_execs={list(self.drop_after_execs)}")


def draw_tws_mix(seed: int, ticks: int) -> TwsMix:
    rng = random.Random(seed)
    faults: list[str] = []
    exempt: set[int] = set()
    if rng.random() < 0.5:
        faults.append(f"drop@tick={rng.randrange(100, ticks - 100)}")
    if rng.random() < 0.3:
        faults.append(f"restart@tick={rng.randrange(100, ticks - 100)}")
    if rng.random() < 0.5:
        faults.append(rng.choice(["duplicate-exec@all", f"duplicate-exec@exec={rng.randint(1, 20)}"]))
    if rng.random() < 0.3:
        level = rng.randint(1, 6)
        faults.append(f"reject201@ref=tqqq_grid:BUY:L{level},count={rng.randint(1, 3)}")
        exempt.add(level)
    if rng.random() < 0.25:
        faults.append(f"inactive@ref=tqqq_grid:{rng.choice(['BUY', 'SELL'])}:L{rng.randint(1, 5)}")
    if rng.random() < 0.3:
        faults.append("delay-acks@all")
    if rng.random() < 0.3:  # TWS cut off from IB; the venue trades meanwhile; then back
        start = rng.randrange(200, ticks - 400)
        faults += [f"1100@tick={start}", f"1102@tick={start + rng.randint(20, 300)}"]
    if rng.random() < 0.2:  # the bot away while the venue trades
        faults.append(f"away@tick={rng.randrange(200, ticks - 400)},ticks={rng.randint(10, 200)}")
    partial = rng.choice([None, None, 7, 20, 30])
    drops = tuple(sorted(rng.sample(range(2, 40), rng.randint(1, 2)))) if rng.random() < 0.5 else ()
    return TwsMix(seed, faults, partial, drops, exempt)


def _arm_drops(sim, numbers: tuple[int, ...]) -> None:
    """The socket closes right after the Nth execution of the account went out."""
    import asyncio  # noqa: PLC0415

    def arm(s):
        ex = s.exchange
        real = ex._send_fill
        count = [0]

        def send_fill(rec):
            got = real(rec)
            count[0] += 1
            if count[0] in numbers:
                asyncio.get_running_loop().call_soon(s.drop_connections)
            return got

        ex._send_fill = send_fill

    sim.call(arm)


def audit_tws_run(sim, out: Path, book, client_id: int = CLIENT_ID) -> dict:
    """Every execution of the bot's client at the simulator is in fills.csv exactly once; no BUY
    ever had two SELLs (orders of every status); the book's fees and gross P&L are the executions'."""

    def grab(s):
        ex = s.exchange
        execs = [(r.exec_id, r.side, r.shares, r.price, r.commission, r.ref) for r in ex.execs
                 if r.client_id == client_id]
        refs = [o.ref for o in ex.orders.values()]
        return execs, refs

    execs, refs = sim.call(grab)
    rows = fills_rows(out)
    key = lambda side, qty, price, comm: (side, int(qty), Decimal(price), Decimal(comm))  # noqa: E731
    at_sim = Counter(key(side, qty, price, comm) for _, side, qty, price, comm, _ in execs)
    in_csv = Counter(key(r["side"], r["quantity"], r["price"], r["commission"]) for r in rows)
    if len(rows) != len(execs) or at_sim != in_csv:
        raise InvariantBroken(f"fills.csv ({len(rows)} rows) is not the simulator's {len(execs)} executions: "
                              f"missing {at_sim - in_csv}, extra {in_csv - at_sim}")
    sells: Counter = Counter()
    for ref in refs:
        tag = parse_tag(ref) if ref else None
        if tag is not None and tag.kind == SELL_TAG:
            sells[tag.buy_order_id] += 1
    doubled = {b: n for b, n in sells.items() if n > 1}
    if doubled:
        raise InvariantBroken(f"BUYs with more than one SELL: {doubled}")
    fees = sum((Decimal(c) for *_, c, _ in execs), Decimal(0))
    gross = sum((qty * (Decimal(price) - parse_tag(ref).price) for _, side, qty, price, _, ref in execs
                 if side == "SELL"), Decimal(0))
    if book.fee_pending or book.fees != fees or book.gross_pnl != gross:
        raise InvariantBroken(f"the book's fees {book.fees} / gross {book.gross_pnl} (pending {book.fee_pending}) "
                              f"!= the executions' {fees} / {gross}")
    return {"executions": len(execs), "sell_orders": sum(sells.values()), "fees": str(fees), "gross_pnl": str(gross)}


def run_tws_mix(tmp: Path, bars: Path, mix: TwsMix, idle_s: float = 1.5) -> dict:
    """A lockstep rehearsal of configs/tqqq-ib.yaml, the bot in this process (real ib_insync,
    real engine) with a TwsObserver; the simulator in a thread."""
    from bothost_plugins.sim_tws.server import SimTwsThread  # noqa: PLC0415
    from conftest import run_in_process  # noqa: PLC0415

    sim = SimTwsThread(data=bars, state_dir=tmp / "sim", pace="lockstep", faults=list(mix.faults),
                       partial_fill_shares=mix.partial).start()
    try:
        if mix.drop_after_execs:
            _arm_drops(sim, mix.drop_after_execs)
        observer = TwsObserver(sim, exempt=mix.exempt)
        started = time.perf_counter()
        runs = 0
        while True:
            runs += 1
            result = run_in_process(tmp, [f"broker.port={sim.port}"], observers=[observer], state=tmp / "bot",
                                    out=tmp / "bot" / "out", config=IB_CONFIG, stop_when_idle_s=idle_s)
            if result.status != "done":
                raise InvariantBroken(f"the rehearsal ended {result.status!r}: {result.summary.get('alert')}")
            if sim.call(lambda s: s.finished):
                break
            # --stop-when-idle ended it early (a loaded machine: the simulator paused longer than
            # idle_s); the same command resumes, as a user would run it again
            if runs >= 4:
                raise InvariantBroken(f"the rehearsal stopped {runs} times before the simulator's data ended")
        wall = time.perf_counter() - started
        audit = audit_tws_run(sim, tmp / "bot" / "out", observer.strategy.book)
    finally:
        sim.stop()
    return {"seed": mix.seed, "faults": mix.faults, "partial": mix.partial,
            "drop_after_execs": list(mix.drop_after_execs), "status": result.status, "bot_runs": runs,
            "reconstructs": observer.events.get("reconstruct", 0), "checked": observer.checked,
            "settled_checks": observer.settled_checks, "skipped": observer.skipped,
            "quiet_ticks_unchanged": observer.unchanged, "sells_replaced_after_lost_on_the_wire": observer.sells_lost,
            "events": dict(observer.events),
            "max_lots": observer.max_lots, "wall_s": round(wall, 3), **audit}
