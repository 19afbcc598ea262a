"""When the market should be trading, so that a quiet feed can be told from a closed market.

XNYS sessions (holidays, early closes) from exchange_calendars. ``extended`` hours are 04:00 to
20:00 New York time on session days (pre- and post-market, when a grid trading outside regular
hours expects prints); ``regular`` the session's own open and close.
"""

from __future__ import annotations

import functools
from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
EXTENDED_OPEN, EXTENDED_CLOSE = time(4, 0), time(20, 0)


@functools.lru_cache(maxsize=1)
def _calendar():
    import exchange_calendars  # pandas inside: loaded only when a feed asks

    return exchange_calendars.get_calendar("XNYS")


@functools.lru_cache(maxsize=64)
def _session(day) -> tuple[int, int] | None:
    """(open_ns, close_ns) of the regular session on ``day`` (a date), None if no session."""
    import pandas as pd

    cal = _calendar()
    label = pd.Timestamp(day)
    if label < cal.first_session or label > cal.last_session or not cal.is_session(label):
        return None
    return int(cal.session_open(label).value), int(cal.session_close(label).value)


def market_open(now_ns: int, hours: str = "extended") -> bool:
    """Whether prints are expected at ``now_ns`` (UTC ns)."""
    local = datetime.fromtimestamp(now_ns / 1e9, timezone.utc).astimezone(NEW_YORK)
    session = _session(local.date())
    if session is None:
        return False
    if hours == "regular":
        return session[0] <= now_ns < session[1]
    return EXTENDED_OPEN <= local.time() < EXTENDED_CLOSE
