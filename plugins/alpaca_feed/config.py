"""The ``feed:`` section for Alpaca."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from bothost.config import Duration

#: Alpaca's own market data service (the stream is its wss:// twin).
ALPACA_DATA = "https://data.alpaca.markets"
ALPACA_STREAM = "wss://stream.data.alpaca.markets"


class AlpacaFeedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: SecretStr = Field(description="Alpaca API key id (from ${ALPACA_API_KEY}; never printed)")
    secret: SecretStr = Field(description="Alpaca API secret (from ${ALPACA_SECRET_KEY}; never printed)")
    feed: Literal["iex", "sip", "test"] = Field("iex", description="iex (free), sip (paid), test (Alpaca's test stream)")
    data: Literal["trades", "quotes", "bars"] = Field("trades", description="what becomes a tick (quotes: the midpoint)")
    symbol: str = Field("TQQQ", description="the one symbol streamed, when `symbols` is not given")
    symbols: list[str] = Field(default_factory=list,
                               description="the symbols streamed, on one connection; default: every strategy's symbol")
    url: str = Field("", description="the data service's base URL, http(s)://HOST:PORT; empty: Alpaca's own")
    stale_after: Duration = Field(dt.timedelta(seconds=30),
                                  description="no tick for this long while the market is open: stale (alert, no new Level-0)")
    connect_retries: int = Field(4, ge=0, description="attempts after the first one to reach the stream at start-up "
                                                     "(alpaca-py's backoff: about 10 s in all); later outages are retried for ever")
    hours: Literal["extended", "regular"] = Field(
        "extended", description="when the feed should be busy: extended (04:00-20:00 New York) or regular sessions")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("write the data service's base URL as http://HOST:PORT or https://HOST")
        return value

    def streamed(self) -> list[str]:
        """The symbols to subscribe to: ``symbols``, else the one ``symbol``."""
        return list(dict.fromkeys(s.upper() for s in self.symbols)) or [self.symbol.upper()]

    def stream_url(self) -> str:
        """The websocket URL: ws(s)://same host + /v2/<feed>."""
        base = self.url or ALPACA_STREAM
        if base.startswith("https://"):
            base = "wss://" + base[len("https://"):]
        elif base.startswith("http://"):
            base = "ws://" + base[len("http://"):]
        return f"{base}/v2/{self.feed}"
