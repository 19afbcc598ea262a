"""The historical bars endpoint, as alpaca-py 0.44's ``StockHistoricalDataClient.get_stock_bars`` calls it.

alpaca-py sends ``GET {url_override}/v2/stocks/bars?symbols=TQQQ&timeframe=1Min&start=...&end=...
&limit=10000&feed=iex&adjustment=raw&sort=asc&page_token=...`` with the headers ``APCA-API-KEY-ID``
and ``APCA-API-SECRET-KEY`` (or ``Authorization: Bearer``/``Basic``), and follows
``next_page_token`` until it is null, asking each time for what is left of its ``limit`` (at
most 10,000 a page). The response is ``{"bars": {"TQQQ": [{"t","o","h","l","c","v","n","vw"}, ...]},
"next_page_token": ...}``; the single-symbol path ``/v2/stocks/{symbol}/bars`` answers
``{"bars": [...], "symbol": "TQQQ", "next_page_token": ...}``. Errors are JSON
``{"code": ..., "message": ...}`` (alpaca-py raises ``APIError``, whose ``status_code`` and
``message`` read them; it retries 429 and 504 three times, 3 s apart).
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import numpy as np

from .data import BarTable, TimeframeError, parse_timeframe, resample
from .wire import price, rfc3339

NS = 1_000_000_000
NEW_YORK = ZoneInfo("America/New_York")
MAX_LIMIT = 10_000
FEEDS = {"iex", "sip", "otc", "delayed_sip", "boats", "overnight"}
ADJUSTMENTS = {"raw", "split", "dividend", "spin-off", "all"}

MESSAGES = {
    401: "unauthorized.",
    403: "forbidden: subscription does not permit querying recent SIP data",
    404: "endpoint not found",
    422: "invalid request",
    429: "too many requests.",
    500: "internal server error",
}


class HttpError(Exception):
    def __init__(self, status: int, message: str | None = None):
        super().__init__(message or MESSAGES.get(status, "error"))
        self.status = status
        self.message = message or MESSAGES.get(status, "error")

    def body(self) -> dict:
        # Alpaca's data API answers {"message": ...}; the code is alpaca's trading-API style, so that
        # alpaca-py's APIError.code works too
        return {"code": self.status * 100_000, "message": self.message}


_BARS_PATH = re.compile(r"^/v2/stocks/(?:(?P<symbol>[A-Za-z0-9.\-/]+)/)?bars/?$")
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?)?$")


def parse_time(text: str, what: str) -> int:
    """RFC 3339 (nanoseconds kept; no offset: UTC, as alpaca-py sends naive times) or YYYY-MM-DD
    (00:00 New York) -> ns."""
    m = _TIME.match(text.strip())
    if not m:
        raise HttpError(422, f"invalid {what}: {text!r} (RFC-3339 or YYYY-MM-DD)")
    day, clock, frac, zone = m.groups()
    try:
        if clock is None:
            dt = datetime.fromisoformat(day).replace(tzinfo=NEW_YORK)
        else:
            dt = datetime.fromisoformat(f"{day}T{clock}")
            if zone in (None, "Z"):
                dt = dt.replace(tzinfo=timezone.utc)
            else:
                z = zone if ":" in zone else zone[:3] + ":" + zone[3:]
                dt = datetime.fromisoformat(f"{day}T{clock}{z}")
    except ValueError:
        raise HttpError(422, f"invalid {what}: {text!r}") from None
    return int(dt.timestamp()) * NS + (int((frac or "").ljust(9, "0")) if frac else 0)


def page_token(symbol: str, t: int) -> str:
    return base64.urlsafe_b64encode(f"{symbol}|{t}".encode()).decode().rstrip("=")


def _read_token(token: str, symbol: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        sym, _, t = raw.partition("|")
        if sym != symbol:
            raise ValueError
        return int(t)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise HttpError(422, "invalid page token") from None


class BarsEndpoint:
    """``serve(path, headers)`` -> (status, JSON-able body). ``bars()`` gives the file's bars (loaded once);
    ``now_ns()`` (optional) hides bars not complete at that time (the combined simulator's clock)."""

    def __init__(self, symbol: str, bars, *, page_size: int = MAX_LIMIT, keys: dict[str, str] | None = None,
                 now_ns=None, fault=None):
        self.symbol = symbol.upper()
        self._bars = bars
        self.page_size = max(1, min(int(page_size), MAX_LIMIT))
        self.keys = keys
        self.now_ns = now_ns
        self.fault = fault  # () -> HttpError | None, the next injected error
        self._cache: dict[tuple[int, str], BarTable] = {}
        self.requests = 0

    def serve(self, target: str, headers) -> tuple[int, dict]:
        self.requests += 1
        try:
            return 200, self._serve(target, headers)
        except HttpError as exc:
            return exc.status, exc.body()

    def _auth(self, headers) -> None:
        key, secret = headers.get("APCA-API-KEY-ID"), headers.get("APCA-API-SECRET-KEY")
        auth = headers.get("Authorization")
        if auth and not key:
            kind, _, cred = auth.partition(" ")
            if kind.lower() == "bearer" and cred:
                return
            if kind.lower() == "basic" and cred:
                try:
                    key, _, secret = base64.b64decode(cred).decode().partition(":")
                except (ValueError, binascii.Error, UnicodeDecodeError):
                    raise HttpError(401) from None
        if not key or not secret:
            raise HttpError(401)
        if self.keys is not None and self.keys.get(key) != secret:
            raise HttpError(401)

    def _serve(self, target: str, headers) -> dict:
        parts = urlsplit(target)
        m = _BARS_PATH.match(parts.path)
        if not m:
            raise HttpError(404)
        self._auth(headers)
        if self.fault is not None:
            err = self.fault()
            if err is not None:
                raise err
        q = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        single = m.group("symbol")
        if single:
            symbols = [single.upper()]
        else:
            symbols = [s.strip().upper() for s in q.get("symbols", "").split(",") if s.strip()]
            if not symbols:
                raise HttpError(422, "missing symbols")
        tf = q.get("timeframe", "")
        if not tf:
            raise HttpError(422, "missing timeframe")
        try:
            amount, unit = parse_timeframe(tf)
        except TimeframeError as exc:
            raise HttpError(422, str(exc)) from None
        limit = q.get("limit") or str(MAX_LIMIT)
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
            raise HttpError(422, f"invalid limit: {limit!r} (1 to {MAX_LIMIT})")
        limit = int(limit)
        feed = q.get("feed", "") or "iex"
        if feed not in FEEDS:
            raise HttpError(422, f"invalid feed: {feed!r}")
        adjustment = q.get("adjustment", "") or "raw"
        if any(a.strip() not in ADJUSTMENTS for a in adjustment.split(",")):
            raise HttpError(422, f"invalid adjustment: {adjustment!r}")
        sort = q.get("sort", "") or "asc"
        if sort not in ("asc", "desc"):
            raise HttpError(422, f"invalid sort: {sort!r}")
        start = parse_time(q["start"], "start") if q.get("start") else None
        end = parse_time(q["end"], "end") if q.get("end") else None
        if start is not None and end is not None and end < start:
            raise HttpError(422, "end should not be before start.")
        token = q.get("page_token") or None

        out, next_token = [], None
        if self.symbol in symbols:
            table = self._table(amount, unit)
            sel = np.ones(len(table), dtype=bool)
            if start is not None:
                sel &= table.t >= start
            if end is not None:
                sel &= table.t <= end
            if self.now_ns is not None:
                sel &= table.end_ns() <= self.now_ns()
            if token is not None:
                t0 = _read_token(token, self.symbol)
                sel &= (table.t >= t0) if sort == "asc" else (table.t <= t0)
            idx = np.flatnonzero(sel)
            if sort == "desc":
                idx = idx[::-1]
            n = min(limit, self.page_size)
            page, rest = idx[:n], idx[n:]
            out = self._rows(table, page)
            if len(rest):
                next_token = page_token(self.symbol, int(table.t[rest[0]]))
        elif token is not None:
            raise HttpError(422, "invalid page token")
        if single:
            return {"bars": out, "symbol": symbols[0], "next_page_token": next_token}
        return {"bars": {self.symbol: out} if out else {}, "next_page_token": next_token}

    def _table(self, amount: int, unit: str) -> BarTable:
        key = (amount, unit)
        table = self._cache.get(key)
        if table is None:
            try:
                table = resample(self._bars(), amount, unit)
            except TimeframeError as exc:
                raise HttpError(422, str(exc)) from None
            self._cache[key] = table
        return table

    @staticmethod
    def _rows(b: BarTable, idx: np.ndarray) -> list[dict]:
        t, o, h, lo, c = b.t[idx].tolist(), b.o[idx].tolist(), b.h[idx].tolist(), b.l[idx].tolist(), b.c[idx].tolist()
        v, n, vw = b.v[idx].tolist(), b.n[idx].tolist(), b.vw[idx].tolist()
        return [{"t": rfc3339(t[i]), "o": price(o[i]), "h": price(h[i]), "l": price(lo[i]), "c": price(c[i]),
                 "v": int(v[i]) if float(v[i]).is_integer() else v[i],
                 "n": int(n[i]) if float(n[i]).is_integer() else n[i], "vw": round(vw[i], 6)}
                for i in range(len(t))]
