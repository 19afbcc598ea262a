"""The ``broker:`` and ``feed:`` sections for IB, and the live guard (S2)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bothost.config import Duration

#: TWS and IB Gateway's live ports; 7497 and 4002 are their paper ports.
LIVE_PORTS = (7496, 4001)


class IbBrokerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="where TWS or IB Gateway listens")
    port: int = Field(7497, ge=1, le=65535, description="7497 TWS paper, 4002 Gateway paper; 7496/4001 are live")
    client_id: int = Field(101, ge=0, description="keep it the same every run: reconstruct reads this client's orders")
    account: str = Field("", description="the account to trade (empty: the only one TWS manages)")
    client_library: Literal["ib_insync", "ib_async"] = "ib_insync"
    connect_timeout: Duration = Field(dt.timedelta(seconds=10), description="for one connection attempt")
    connect_retries: int = Field(3, ge=0, description="attempts after the first one at start-up")
    heartbeat: Duration = Field(dt.timedelta(seconds=10), description="how often the socket is checked (reqCurrentTime)")
    heartbeat_timeout: Duration = Field(dt.timedelta(seconds=10), description="no answer within this: the socket is dead")
    reconnect_for: Duration = Field(dt.timedelta(minutes=15),
                                    description="give up (exit 4) after this long without TWS, outside IB's nightly reset")
    executions_lookback: Duration = Field(dt.timedelta(days=7), description="at start-up without a backup state")

    def is_live(self) -> bool:
        """S2: a live port is a live account. (The account's id is checked again once connected.)"""
        return self.port in LIVE_PORTS


class IbFeedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str = Field("TQQQ", description="the stock whose trades are streamed (SMART, USD), when `symbols` is not given")
    symbols: list[str] = Field(default_factory=list,
                               description="the stocks whose trades are streamed; default: every strategy's symbol")
    market_data_type: Literal[1, 2, 3, 4] = Field(1, description="1 live, 2 frozen, 3 delayed, 4 delayed frozen")

    def streamed(self) -> list[str]:
        """The symbols to subscribe to: ``symbols``, else the one ``symbol``."""
        return list(dict.fromkeys(s.upper() for s in self.symbols)) or [self.symbol.upper()]
