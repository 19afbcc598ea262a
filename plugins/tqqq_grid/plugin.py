"""The ``tqqq_grid`` strategy plugin: thin hooks over :mod:`.book` (spec tqqq-grid.md).

Registered through the ``bothost`` entry-point group like every plugin. The factory builds one
:class:`TqqqGrid` per ``strategies:`` entry; the engine registers that instance with pluggy and
calls its hooks with the strategy's own ``ctx``.
"""

from __future__ import annotations

from typing import Any

from bothost.hookspecs import BuildEnv, StrategyContext, hookimpl
from bothost.model import (BrokerSnapshot, CommissionReport, ConnectionEvent, Fill, HeldLot, Holdings, OrderUpdate,
                           PriceLevel, Side, Tick, WorkingOrder)

from .book import Book
from .lots import LotMap, load_lot_map
from .params import TqqqGridConfig
from .tags import ENTRY, QUEUE, SELL, parse_tag

BOTHOST_API = 1  # the bothost plugin API this module was written for (bothost.API_VERSION)

SUMMARY = "TQQQ grid: Level-0 entry, chained buy_step grid, +profit_target GTC sell per lot, rebuilt from the broker"


@hookimpl
def bothost_register(registry) -> None:
    registry.add_strategy("tqqq_grid", TqqqGridConfig, make_strategy, summary=SUMMARY)


_ROLES = {ENTRY: "entry", QUEUE: "queue", SELL: "sell"}


@hookimpl
def describe_order_ref(ref: str) -> dict[str, Any] | None:
    """Reports (fills.csv's ``level``, per-lot P&L) read a grid tag through this; see ``tags``."""
    tag = parse_tag(ref)
    if tag is None:
        return None
    info: dict[str, Any] = {"level": tag.level, "role": _ROLES[tag.kind], "strategy": tag.strategy_id}
    if tag.kind == SELL:
        info["purchase"] = tag.price
        if tag.buy_order_id:
            info["buy_order_id"] = tag.buy_order_id
    return info


def make_strategy(config: TqqqGridConfig, env: BuildEnv) -> TqqqGrid:
    """Factory: reads the lot map now, so a bad file fails before anything connects
    (:class:`~.lots.LotMapError`, ``FILE:LINE: message``)."""
    return TqqqGrid(config, load_lot_map(env.resolve(config.lots)))


class TqqqGrid:
    """One grid instance. ``book`` is its runtime state (for ``check_invariants`` and tests)."""

    #: R1 wants every tick until it knows better (the engine reads this before the first hook)
    wants_every_tick = True

    def __init__(self, config: TqqqGridConfig, lot_map: LotMap):
        self.config = config
        self.symbol = config.symbol  # the engine routes ticks and untagged orders by it
        self.lot_map = lot_map
        self.book: Book | None = None

    def holdings(self) -> Holdings:
        """The book in the host's words (hookspecs.ReportsHoldings): each open lot (quantity,
        purchase, level, its SELL's price), the working BUYs (the Level-0 "entry" and the
        "queue"), and the trigger ladder T(0..n) from the anchor."""
        book = self.book
        if book is None:
            return Holdings(self.symbol, 0)
        lots = [HeldLot(lot.quantity, lot.purchase, lot.level, f"L{lot.level}", lot.sell_price)
                for lot in sorted(book.lots.values(), key=lambda lot: (lot.level, lot.sell_order_id or ""))]
        orders = [WorkingOrder(b.order_id, Side.BUY, b.quantity, b.price, b.filled, 0 if b.is_entry else b.level,
                               "entry" if b.is_entry else "queue")
                  for b in sorted(book.buys.values(), key=lambda x: (x.level if x.level is not None else -1, x.order_id))]
        levels = [PriceLevel(k, t) for k, t in enumerate(book.triggers)]
        return Holdings.of_lots(self.symbol, lots, orders, levels)

    def _book(self, ctx: StrategyContext) -> Book:
        book = self.book
        if book is None:
            book = self.book = Book(self.config, self.lot_map, ctx.strategy_id or "tqqq_grid", ctx.log)
        return book

    @hookimpl
    def reconstruct(self, ctx: StrategyContext, snapshot: BrokerSnapshot) -> None:
        """Reconstruct 1-6 (start-up and every reconnect); S1 alert when the broker disagrees."""
        self._book(ctx).apply_reconstruct(ctx, snapshot, ctx.load_state())

    @hookimpl
    def on_start(self, ctx: StrategyContext) -> None:
        self._book(ctx).flush(ctx)

    @hookimpl
    def on_tick(self, ctx: StrategyContext, tick: Tick) -> None:
        book = self.book
        if book is None:
            book = self._book(ctx)
        book.on_tick(ctx, tick)

    @hookimpl
    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None:
        self._book(ctx).on_fill(ctx, fill)

    @hookimpl
    def on_commission(self, ctx: StrategyContext, report: CommissionReport) -> None:
        self._book(ctx).on_commission(ctx, report)

    @hookimpl
    def on_order_update(self, ctx: StrategyContext, update: OrderUpdate) -> None:
        self._book(ctx).on_update(ctx, update)

    @hookimpl
    def on_connection(self, ctx: StrategyContext, event: ConnectionEvent) -> None:
        # The engine reconstructs after the broker's RESTORED (fills missed meanwhile are in the
        # snapshot); a feed's LOST holds new Level-0 entries until its RESTORED.
        ctx.log.info("%s %s: %s", event.source, event.state.value, event.message)
        self._book(ctx).on_connection(ctx, event)

    @hookimpl
    def on_stop(self, ctx: StrategyContext) -> None:
        self._book(ctx).save(ctx)
