"""The host's own part of the config: everything outside the plugin sections.

Plugin sections (``broker``, ``feed``, ``strategies``, ``notify``) are only checked for shape
here (a mapping, a list of mappings); their keys are checked against each plugin's own model
by :mod:`.validator`, which knows which plugin ``use:`` names.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from ..model import CENT, Instrument, increment_problem, plain_increment
from .units import Duration

#: Top-level section key -> registry kind.
SECTION_KINDS = {"broker": "broker", "feed": "feed", "strategies": "strategy", "notify": "notifier"}


class EngineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Skip ticks that can neither fill an order nor wake a strategy.
    skip_quiet_ticks: bool = True
    #: How often a replay commits the simulated venue's state.
    checkpoint_every: Duration = dt.timedelta(seconds=2)
    #: A live tick older than the host clock by more than this is stale and dropped (None: never).
    stale_after: Duration | None = None
    #: Show a progress line during a replay.
    progress: bool = True
    #: How long the broker may take to give its orders, executions and positions (reconstruct).
    snapshot_timeout: Duration = dt.timedelta(seconds=30)
    #: How often a failed or late snapshot is asked for again before the run gives up (exit 4).
    snapshot_retries: int = Field(3, ge=0)

    @field_validator("snapshot_timeout")
    @classmethod
    def _some_time(cls, value: dt.timedelta) -> dt.timedelta:
        # 0s would fail every snapshot, even the simulated venue's: an unreachable broker (exit 4)
        # that is in fact a config mistake
        if value <= dt.timedelta(0):
            raise PydanticCustomError("duration_positive", "must be longer than 0s",
                                      {"hint": "give the broker time to answer, e.g. 30s"})
        return value


class InstrumentSettings(BaseModel):
    """One entry of ``instruments:``: how a symbol's prices are written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The step the symbol's prices move in: 0.01 (cents, the default for a US stock), 0.0001
    #: (an FX or crypto pair), 0.005, 0.25... Every integer price of the run counts these.
    increment: Decimal = CENT

    @field_validator("increment", mode="before")
    @classmethod
    def _written_as_text(cls, value: Any) -> Any:
        # YAML reads 0.0001 as the float 1e-4; its repr is the decimal the user wrote.
        return repr(value) if isinstance(value, float) else value

    @field_validator("increment")
    @classmethod
    def _a_step(cls, value: Decimal) -> Decimal:
        problem = increment_problem(value)
        if problem:
            raise PydanticCustomError("increment", problem,
                                      {"hint": "write the smallest price step, e.g. increment: 0.0001"})
        return plain_increment(value)


class HostConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["paper", "live"] = "paper"
    state_dir: str | None = None
    broker: dict[str, Any]
    feed: dict[str, Any]
    strategies: list[dict[str, Any]] = Field(min_length=1)
    notify: list[dict[str, Any]] = Field(default_factory=list)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    #: symbol -> its price increment; a symbol not named here is priced in cents
    instruments: dict[str, InstrumentSettings] = Field(default_factory=dict)

    @field_validator("notify", "engine", "instruments", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any, info) -> Any:
        # `notify:` or `engine:` with everything under it commented out means "the defaults".
        if value is None:
            return [] if info.field_name == "notify" else {}
        return value

    @field_validator("instruments")
    @classmethod
    def _symbols(cls, value: dict[str, InstrumentSettings]) -> dict[str, InstrumentSettings]:
        for symbol in value:
            if not symbol.strip():
                raise PydanticCustomError("symbol", "an instrument needs a symbol, got an empty one",
                                          {"hint": "instruments: {EURUSD: {increment: 0.0001}}"})
        return value

    def instrument_map(self) -> dict[str, Instrument]:
        """The declared instruments, by symbol (a symbol not in it trades in cents)."""
        return {symbol: Instrument(symbol, s.increment) for symbol, s in self.instruments.items()}
