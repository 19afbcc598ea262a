"""Ready-made pieces for a plugin's tests: the real simulated venue and a replay feed.

Nothing here models a venue: :func:`sim_venue` is the ``sim_broker`` plugin a paper run uses (its
SQLite account in the folder given), and :func:`replay_feed` is a :class:`~bothost.hookspecs.ReplayFeed`
that the real :class:`~bothost.replay.ReplayDriver` pulls, either over prices written in the test
or over a CSV/Parquet file read by the ``replay_feed`` plugin's own reader.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from ..hookspecs import BuildEnv, TickChunk
from ..model import CENT, NS_PER_SECOND, Instrument, price_to_units

#: The first tick of a test when none is given: 2024-01-02 14:30 UTC (09:30 in New York).
DEFAULT_START_NS = 1_704_205_800 * NS_PER_SECOND
#: Time between two scripted ticks when a test gives none.
DEFAULT_STEP_NS = 15 * NS_PER_SECOND

Price = str | Decimal | int | float


def to_cents(price: Price) -> int:
    """A price in dollars (``"101.25"``, ``Decimal("101.25")``) as the integer cents the venue
    and the engine's tick path trade in. A float is read through its printed form; a price that
    is not a positive number raises ValueError naming it."""
    return to_units(price, CENT)


def to_units(price: Price, increment: Decimal = CENT) -> int:
    """:func:`to_cents` for an instrument of another increment (``Decimal("0.0001")``): the
    price in whole units of it, half up."""
    try:
        value = Decimal(repr(price)) if isinstance(price, float) else Decimal(str(price))
    except InvalidOperation:
        raise ValueError(f"price {price!r} is not a number (give dollars, e.g. '101.25')") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"price {price!r} must be a positive number of dollars")
    return price_to_units(value, increment)


def to_ns(at: int | str | datetime) -> int:
    """A tick time: integer nanoseconds since the epoch, an ISO 8601 text (a naive one is UTC),
    or a datetime."""
    if isinstance(at, bool):
        raise ValueError(f"time {at!r} is neither nanoseconds nor an ISO 8601 text")
    if isinstance(at, int):
        return at
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError:
            raise ValueError(f"time {at!r} is not ISO 8601 (e.g. '2024-01-02T09:30:00-05:00')") from None
    if isinstance(at, datetime):
        if at.tzinfo is None:
            at = at.replace(tzinfo=timezone.utc)
        return int(at.timestamp()) * NS_PER_SECOND + at.microsecond * 1000
    raise ValueError(f"time {at!r} is neither nanoseconds nor an ISO 8601 text")


def sim_venue(folder: Path | str, *, instruments: dict[str, Instrument] | None = None, **settings: Any):
    """The ``sim_broker`` plugin's venue, opened on an account in ``folder`` (``venue.sqlite``).

    ``settings`` are the plugin's config section (``commission_per_share``,
    ``partial_fill_shares``, ``broker_like``, ``commission_later``, ...), validated by its model,
    so a misspelt one fails as it would in a config. The same folder is the same account: a
    second ``sim_venue`` on it after the first was closed sees the first one's orders.
    ``instruments``: the config's ``instruments:`` (symbol -> Instrument); others trade in cents."""
    from bothost_plugins.sim_broker.plugin import SimBroker, SimBrokerConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    env = BuildEnv(folder / "harness.yaml", folder, "paper", logging.getLogger("bothost.testing"),
                   instruments=dict(instruments or {}))
    broker = SimBroker(SimBrokerConfig(**settings), env)
    broker.open()
    return broker


class PriceFeed:
    """A :class:`~bothost.hookspecs.ReplayFeed` over prices written in a test: one tick every
    ``step_ns`` from ``start_ns``."""

    def __init__(self, prices: Sequence[Price], symbol: str = "TQQQ", *, start_ns: int = DEFAULT_START_NS,
                 step_ns: int = DEFAULT_STEP_NS, increment: Decimal = CENT):
        if step_ns <= 0:
            raise ValueError("step_ns must be positive: ticks go forward in time")
        self.symbol = symbol
        self.price = np.array([to_units(p, increment) for p in prices], dtype=np.int64)
        self.time_ns = start_ns + step_ns * np.arange(len(self.price), dtype=np.int64)
        self.step_ns = step_ns

    def chunks(self, after_ns: int | None = None) -> Iterator[TickChunk]:
        keep = slice(None) if after_ns is None else self.time_ns > after_ns
        yield TickChunk(self.time_ns[keep], self.price[keep])

    def stats(self) -> dict[str, Any]:
        n = len(self.price)
        return {"rows": n, "bad_rows": 0, "ticks": n, "bar_interval_s": self.step_ns / NS_PER_SECOND,
                "source": "bothost.testing.replay_feed"}


def replay_feed(source: Sequence[Price] | Path | str, symbol: str = "TQQQ", *, start: int | str | None = None,
                step_s: float = DEFAULT_STEP_NS / NS_PER_SECOND, increment: Decimal = CENT):
    """A replay feed: over a list of prices (dollars; one tick every ``step_s`` from ``start``),
    or over a CSV/Parquet file of bars, ticks or quotes (``Path`` or a file name), read exactly
    as ``bothost backtest --data FILE`` reads it (a bad file raises the plugin's DataError).
    Prices become units of ``increment`` (the symbol's instrument; cents by default)."""
    if isinstance(source, (str, Path)) and not _looks_like_price(source):
        from bothost_plugins.replay_feed.feed import FileFeed

        return FileFeed(Path(source), symbol, increment=increment).open()
    start_ns = DEFAULT_START_NS if start is None else to_ns(start)
    return PriceFeed(list(source), symbol, start_ns=start_ns, step_ns=int(step_s * NS_PER_SECOND),
                     increment=increment)


def _looks_like_price(source: Path | str) -> bool:
    if isinstance(source, Path):
        return False
    try:
        Decimal(source)
    except InvalidOperation:
        return False
    raise ValueError(f"replay_feed({source!r}): give a list of prices, or the path of a data file")
