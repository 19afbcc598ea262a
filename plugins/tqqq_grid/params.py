"""The strategy's section of the YAML config (spec tqqq-grid.md, "Parameters")."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bothost.config import Duration, NonNegativePercent, PositivePercent, checked_path


def _check_lots(path) -> None:
    """Validation reads the lot map (LotMapError, FILE:LINE), so a bad one stops a run before it starts."""
    from .lots import load_lot_map

    load_lot_map(path)


LotsPath = checked_path(_check_lots, "a lot map file (level,shares), relative to the config file that names it")


class TqqqGridConfig(BaseModel):
    """Parameters of the TQQQ grid; names and defaults exactly as the spec's table."""

    # validate_default: the defaults are written in the YAML's own units ("1%", "120s").
    model_config = ConfigDict(extra="forbid", validate_default=True)

    symbol: str = "TQQQ"
    #: the lot map, relative to the config file (resolved with ``BuildEnv.resolve``)
    lots: LotsPath = "tqqq_lots.csv"
    #: SELL limit = purchase x (1 + profit_target)
    profit_target: PositivePercent = "1%"  # type: ignore[assignment]
    #: each level's trigger is buy_step below the previous level's trigger
    buy_step: PositivePercent = "1%"  # type: ignore[assignment]
    #: Level-0 BUY limit = last x (1 + l0_buffer); a Percent of 0% or more
    l0_buffer: NonNegativePercent = "0.25%"  # type: ignore[assignment]
    #: an unfilled Level-0 BUY is cancelled after this
    l0_timeout: Duration = "120s"  # type: ignore[assignment]
    #: how many future BUY levels rest at the broker
    queue_depth: int = Field(3, ge=0)
    entry_order: Literal["limit_if_touched", "limit"] = "limit_if_touched"
    outside_rth: bool = True
    on_orphan_shares: Literal["alert", "adopt"] = "alert"

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("symbol must not be empty")
        return value

    @field_validator("profit_target", "l0_buffer")
    @classmethod
    def _not_absurd(cls, value: Decimal, info) -> Decimal:
        # A limit is written in whole cents of an int64 (the venue, SQLite): 1000% (a limit 11
        # times the price) is far beyond any grid's use and far inside what a limit can hold.
        if value > 10:
            raise ValueError(f"{info.field_name} must be at most 1000%")
        return value

    @field_validator("buy_step")
    @classmethod
    def _buy_step(cls, value: Decimal) -> Decimal:
        if value >= 1:
            raise ValueError("buy_step must be below 100% (triggers must stay positive)")
        return value

    @field_validator("l0_timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("l0_timeout must be positive")
        return value

    @property
    def l0_timeout_ns(self) -> int:
        t = self.l0_timeout
        return (t.days * 86_400 + t.seconds) * 1_000_000_000 + t.microseconds * 1_000
