"""When to retry a connection, and when to keep trying: pure functions of time."""

from __future__ import annotations

from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
#: IB's servers restart every night around midnight New York time (and TWS/Gateway restart
#: themselves once a day): connections drop for a few minutes. Retries in this window do not
#: count towards giving up.
RESET_START = time(23, 30)
RESET_END = time(1, 0)


def backoff_s(attempt: int, base_s: float = 1.0, max_s: float = 30.0) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): 1, 2, 4, ... capped at ``max_s``."""
    return min(max_s, base_s * (2 ** max(0, attempt - 1)))


def in_nightly_reset(now_ns: int) -> bool:
    """Whether ``now_ns`` (UTC wall time) is within IB's nightly reset window, New York time."""
    local = datetime.fromtimestamp(now_ns / 1e9, timezone.utc).astimezone(NEW_YORK).time()
    return local >= RESET_START or local < RESET_END
