"""The ``sim_broker`` plugin: the paper venue as a broker like any other.

A strategy cannot tell it from a real broker: orders go in through ``place``/``cancel``, fills
and status changes come back as events, and reconstruct reads a snapshot. It also matches
orders against the feed's ticks itself (the engine's ``MatchingVenue`` protocol).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bothost.hookspecs import BuildEnv, Emit, hookimpl
from bothost.model import BrokerSnapshot, ExecutionColumns, Fill, OrderRequest

from .store import VenueStore
from .venue import BrokerLike, Commission, Venue

BOTHOST_API = 1  # the bothost plugin API this module was written for (bothost.API_VERSION)


class SimBrokerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # (at most a million dollars: beyond Decimal's 28 digits a fee can no longer be written in cents)
    commission_per_share: Decimal = Field(Decimal("0.005"), ge=0, le=1_000_000, description="dollars a share")
    commission_min: Decimal = Field(Decimal("1.00"), ge=0, le=1_000_000, description="dollars per execution")
    partial_fill_shares: int | None = Field(
        None, gt=0, description="fill at most this many shares of an order per tick (for tests)")
    database: str = Field("venue.sqlite", description="file name in the run's state folder")
    # Behave like an asynchronous broker (IB) on request, so a strategy's tests can meet one on
    # the real engine. Off by default: the embedded default answers at once.
    late_acks: bool = Field(False, description="acknowledge orders on the next tick")
    late_cancels: bool = Field(False, description="cancels pending until after the next tick (a cancel races a fill)")
    commission_later: bool = Field(False, description="commission reported after each fill, not with it")
    reject_refs: list[str] = Field(default_factory=list, description="reject (201, then Cancelled) orders whose tag matches")
    inactive_refs: list[str] = Field(default_factory=list, description="park orders whose tag matches as Inactive")
    broker_like: bool = Field(False, description="shorthand: late_acks, late_cancels and commission_later")
    # Reporting faults, for fault campaigns (tests/test_venue_fault_campaign.py). Off by default.
    duplicate_execs: int = Field(0, ge=0, description="report every Nth execution twice (0: never)")
    execs_after_status: bool = Field(
        False, description="report executions after the status they caused and the tick's cancels")
    disconnect_at_execs: list[int] = Field(
        default_factory=list, description="drop the connection right after these executions (1-based): "
                                          "never reported, the run ends as a broker gone away")

    @field_validator("reject_refs", "inactive_refs")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:  # regular expressions, searched in each order's tag
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression ({exc})") from None
        return value

    @field_validator("database")
    @classmethod
    def _file_name(cls, value: str) -> str:
        if not value.strip() or "\0" in value or value.strip() in (".", "..") or "/" in value or "\\" in value:
            raise ValueError(f"database must be a plain file name inside the state folder, not {value!r}")
        if len(value.encode()) > 200:  # file systems stop at 255 bytes, with "-wal" and the like added
            raise ValueError(f"database: the file name is {len(value.encode())} bytes long; at most 200")
        return value

    def is_live(self) -> bool:
        """S2: the simulated venue never trades real money."""
        return False

    def like(self) -> BrokerLike:
        on = self.broker_like
        return BrokerLike(late_acks=self.late_acks or on, late_cancels=self.late_cancels or on,
                          commission_later=self.commission_later or on, reject_refs=tuple(self.reject_refs),
                          inactive_refs=tuple(self.inactive_refs), duplicate_execs=self.duplicate_execs,
                          execs_after_status=self.execs_after_status,
                          disconnect_at_execs=tuple(self.disconnect_at_execs))


_FORWARDED = ("place", "cancel", "match", "quiet_band", "advance")


class SimBroker:
    """Broker + MatchingVenue over :class:`Venue`, persisted by :class:`VenueStore`."""

    name = "sim_broker"

    def __init__(self, config: SimBrokerConfig, env: BuildEnv):
        self.config = config
        self.path = env.state_dir / config.database
        #: the declared instruments' increments (a symbol not in it trades in cents)
        self.increments = {symbol: i.increment for symbol, i in env.instruments.items()}
        self.store: VenueStore | None = None
        self.venue: Venue | None = None
        self._emit: Emit = lambda event: None

    # Broker -------------------------------------------------------------------------------
    def bind(self, emit: Emit) -> None:
        self._emit = emit
        if self.venue is not None:
            self.venue.emit = emit

    async def connect(self) -> None:
        self.open()

    def open(self) -> None:
        if self.venue is not None:
            return
        commission = Commission(self.config.commission_per_share, self.config.commission_min)
        self.venue = Venue(self._emit, commission, self.config.partial_fill_shares, self.config.like(),
                           self.increments)
        self.store = VenueStore(self.path)
        self.store.load(self.venue)
        # The engine calls these once per order or handled tick: straight to the venue, without
        # a forwarding frame (the methods below say the same). Not where a subclass overrides one.
        for name in _FORWARDED:
            if getattr(type(self), name) is getattr(SimBroker, name):
                setattr(self, name, getattr(self.venue, name))

    async def snapshot(self, executions_since_ns: int | None) -> BrokerSnapshot:
        self.checkpoint()
        venue = self.venue
        return BrokerSnapshot(
            time_ns=venue.clock_ns or 0,
            open_orders=venue.open_orders(),
            executions=tuple(self.store.iter_executions(executions_since_ns)),
            positions=venue.positions(),
        )

    def place(self, order: OrderRequest) -> str:
        return self.venue.place(order)

    def cancel(self, order_id: str) -> None:
        self.venue.cancel(order_id)

    async def close(self) -> None:
        if self.store is not None:
            self.checkpoint()
            self.store.close()
            self.store = None
            self.venue = None

    # MatchingVenue ------------------------------------------------------------------------
    @property
    def clock_ns(self) -> int | None:
        """Time of the last tick the venue processed: a resumed replay starts after it."""
        return None if self.venue is None else self.venue.clock_ns

    def match(self, time_ns: int, price: int) -> Iterator[Fill]:
        return self.venue.match(time_ns, price)

    def quiet_band(self) -> tuple[int, int]:
        return self.venue.quiet_band()

    def advance(self, time_ns: int, price: int) -> None:
        self.venue.advance(time_ns, price)

    def checkpoint(self) -> None:
        self.store.checkpoint(self.venue)

    def iter_executions(self, since_ns: int | None = None) -> Iterator[Fill]:
        """Every execution of the account, oldest first (for fills.csv)."""
        self.checkpoint()
        return self.store.iter_executions(since_ns)

    def iter_execution_columns(self, chunk: int = 65536) -> Iterator[ExecutionColumns]:
        """The same executions as columns, ``chunk`` at a time (fills.csv of a long replay)."""
        self.checkpoint()
        return self.store.iter_execution_columns(chunk)


def make_sim_broker(config: SimBrokerConfig, env: BuildEnv) -> SimBroker:
    return SimBroker(config, env)


@hookimpl
def bothost_register(registry) -> None:
    registry.add_broker("sim_broker", SimBrokerConfig, make_sim_broker,
                        summary="simulated paper venue (SQLite-backed, resumable)")
