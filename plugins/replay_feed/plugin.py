"""The ``replay_feed`` feed kind: CSV/Parquet bars or ticks, or seeded synthetic data.

Config (the ``feed:`` section)::

    feed:
      use: replay_feed
      data: bars.csv            # relative to the config file; CSV or Parquet
      symbol: TQQQ
    # or a file per symbol, for strategies on several symbols (symbols.py):
    feed:
      use: replay_feed
      data_by_symbol: {TQQQ: tqqq.csv, SOXL: soxl.csv}
    # or, with no file at all:
    feed:
      use: replay_feed
      synthetic: {seed: 7, bars: 20000, start_price: 50.0, volatility: 0.6, drift: 0.0, interval: 60}

With no ``data`` the synthetic generator is used (its defaults when the section is absent).
The file itself is checked when the feed opens (``DataError``, exit status 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bothost.config import checked_path
from bothost.hookspecs import BuildEnv, hookimpl

from .errors import DataError

if TYPE_CHECKING:  # numpy/pyarrow load only when a feed is built: `bothost validate` stays quick
    from .feed import FileFeed, SyntheticFeed
    from .symbols import SymbolsFeed

BOTHOST_API = 1  # the bothost plugin API this module was written for (bothost.API_VERSION)
DEFAULT_CHUNK_ROWS = 65_536
#: Seconds from the synthetic data's start (2024) to 2262, less a margin: what int64 ns can reach.
MAX_SPAN_S = 7_000_000_000

__all__ = ["ReplayFeedConfig", "SyntheticConfig", "make_replay_feed", "synth_command", "DataError"]


def _seconds(value: Any) -> Any:
    """``60``, ``"60s"``, ``"5m"``, ``"1d"`` -> whole seconds (bare numbers are seconds)."""
    if isinstance(value, str):
        from bothost.config.units import parse_duration

        td = parse_duration(value)
        seconds = td.total_seconds()
        return int(seconds) if seconds == int(seconds) else seconds
    return value


class SyntheticConfig(BaseModel):
    """Seeded geometric Brownian motion bars (see ``synthetic.py``)."""

    model_config = ConfigDict(extra="forbid")

    # The bounds keep the generator's numbers inside what it computes with (numpy's seeds are
    # never negative, times are int64 ns until 2262, prices whole cents): far beyond any use.
    seed: int = Field(7, ge=0, description="random seed: the same seed gives the same bars")
    bars: int = Field(20_000, gt=0, le=10**10, description="number of bars")
    start_price: float = Field(50.0, ge=0.01, le=1_000_000, description="first open, in dollars")
    volatility: float = Field(0.6, ge=0, le=10, description="annualised, over trading time (0.6 = 60%)")
    drift: float = Field(0.0, ge=-10, le=10, description="annualised drift")
    interval: int = Field(60, gt=0, le=366 * 86_400, description="bar size in seconds (at most a year)")

    @model_validator(mode="after")
    def _ends_before_2262(self) -> SyntheticConfig:
        if self.bars * self.interval > MAX_SPAN_S:
            raise ValueError(f"{self.bars:,} bars of {self.interval:,} s reach past the year 2262 "
                             "(the last time a nanosecond clock holds)")
        return self

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, v: Any) -> Any:
        return _seconds(v)

    @field_validator("volatility", "drift", mode="before")
    @classmethod
    def _percent(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().endswith("%"):
            from bothost.config.units import parse_percent

            return float(parse_percent(v))
        return v


def check_data_file(path: Path) -> None:
    """What config validation looks at, before a run starts: the file is CSV or Parquet with a
    usable header and at least one good row (read only as far as that row). Raises DataError
    naming the file and line."""
    from .feed import FileFeed

    FileFeed(path).check()


DataPath = checked_path(check_data_file, "a CSV or Parquet file, relative to the config file that names it")


class ReplayFeedConfig(BaseModel):
    """A replay of a data file (``data``) or of synthetic data (``synthetic``): one of the two."""

    model_config = ConfigDict(extra="forbid")

    data: DataPath | None = Field(None, description="CSV or Parquet file of bars, ticks or quotes "
                                               "(relative to the config file)")
    symbol: str = Field("TQQQ", min_length=1, description="the symbol the ticks are for")
    data_by_symbol: dict[str, DataPath] | None = Field(
        None, description="a file per symbol, for strategies on several symbols (`{TQQQ: tqqq.csv, SOXL: soxl.csv}`; "
                          "relative to the config file); instead of `data`")
    chunk_rows: int = Field(DEFAULT_CHUNK_ROWS, gt=0, le=100_000_000, description="rows read per chunk")
    synthetic: SyntheticConfig | None = Field(None, description="generated data instead of a file")

    @model_validator(mode="after")
    def _one_source(self) -> ReplayFeedConfig:
        if self.data is not None and self.synthetic is not None:
            raise ValueError("give either `data` (a file) or `synthetic`, not both")
        if self.data_by_symbol is not None:
            if self.data is not None or self.synthetic is not None:
                raise ValueError("give `data_by_symbol` (a file per symbol) alone, without `data` or `synthetic`")
            if not self.data_by_symbol:
                raise ValueError("`data_by_symbol` names no file: give `SYMBOL: file` lines, or use `data`")
            self.data_by_symbol = {k.upper(): v for k, v in self.data_by_symbol.items()}
        if self.data is not None and not self.data.strip():
            raise ValueError("`data` is empty: give a file name, or remove it to use synthetic data")
        return self


def make_replay_feed(config: ReplayFeedConfig, env: BuildEnv) -> FileFeed | SyntheticFeed | SymbolsFeed:
    """The factory: a :class:`FileFeed` for ``data``, a :class:`SymbolsFeed` for
    ``data_by_symbol``, else a :class:`SyntheticFeed`.

    Nothing is read here; ``feed.open()`` checks the file (DataError) before the run starts.
    """
    from .feed import FileFeed, SyntheticFeed

    if config.data_by_symbol is not None:
        from .symbols import SymbolsFeed

        return SymbolsFeed({s: env.resolve(f) for s, f in config.data_by_symbol.items()}, config.chunk_rows,
                           {s: env.instrument(s).increment for s in config.data_by_symbol})

    increment = env.instrument(config.symbol).increment  # prices in its units (cents by default)
    if config.data is not None:
        return FileFeed(env.resolve(config.data), symbol=config.symbol, chunk_rows=config.chunk_rows,
                        increment=increment)
    s = config.synthetic or SyntheticConfig()
    return SyntheticFeed(seed=s.seed, bars=s.bars, start_price=s.start_price, volatility=s.volatility,
                         drift=s.drift, interval=s.interval, symbol=config.symbol, chunk_rows=config.chunk_rows,
                         increment=increment)


def synth_command(out: Path, bars: int, seed: int, volatility: float, start_price: float, interval: int) -> int:
    """``bothost data synth``: write seeded synthetic bars to a CSV file. Returns the bar count."""
    from .synthetic import write_csv

    return write_csv(out, bars=bars, seed=seed, volatility=volatility, start_price=start_price, interval=interval)


@hookimpl
def bothost_register(registry) -> None:
    registry.add_feed("replay_feed", ReplayFeedConfig, make_replay_feed,
                      summary="CSV/Parquet bars or ticks, or seeded synthetic data")
