"""Vectorised timestamp parsing: ISO 8601 text -> int64 nanoseconds since the epoch, UTC.

Accepted, per row (rows may mix forms; a row that fits none is reported invalid, not fatal)::

    2024-01-02                          date only (daily bars): midnight, exchange time
    2024-01-02T09  2024-01-02 09        hours ('T', 't' or a blank between date and time)
    2024-01-02T09:30                    minutes
    2024-01-02T09:30:00[.fffffffff]     seconds, optional fraction ('.' or ',', up to 9 digits
                                        kept; more are allowed and truncated)
    ... then optionally Z, +HH:MM, +HHMM or +HH (or with -), optionally after one blank

Blanks around the whole text are ignored. Times must lie in 1678..2261 (what int64
nanoseconds hold). Text without an offset ("naive") is exchange time, America/New_York,
converted with Python's ``fold=0`` rule (what ``datetime(..., tzinfo=ZoneInfo(...))`` does): a
wall time that occurs twice (the hour repeated in November) is the first one (EDT), and a wall
time that does not exist (the hour skipped in March) is read with the offset in force before
the change (EST), so 02:30 becomes 07:30 UTC (03:30 EDT).

This grammar includes everything Arrow's own ISO-8601 timestamp parser accepts, with the same
values (the CSV reader's fast path relies on that: see ``reader.Scan``).

The parser works on the raw bytes of an Arrow string/binary array, with numpy only: rows laid
out like the first row (the usual case) as columns of a byte matrix, the others with per-row
gathers. The New York transitions come from :mod:`zoneinfo`, computed once per year of data.
"""

from __future__ import annotations

import functools
import re
import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from . import arrow

NS = 1_000_000_000
DAY_NS = 86_400 * NS
EXCHANGE_TZ = "America/New_York"
_TZ = ZoneInfo(EXCHANGE_TZ)

# Times must lie in [1678-01-01, 2262-01-01) (int64 nanoseconds reach 1677-09-21 .. 2262-04-11).
# The check is on the value as written (UTC for text with an offset, wall time for naive text),
# the same in every code path. The year fields may be one wider so that offsets can reach in.
MIN_YEAR, MAX_YEAR = 1677, 2262
MIN_S = -9_214_560_000  # 1678-01-01T00:00:00
MAX_S = 9_214_646_400  # 2262-01-01T00:00:00

_DIM = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_POW10 = np.array([10**k for k in range(10)], dtype=np.int64)


def days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm), vectorised."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start offsets, end offsets, bytes) of a string/binary array, honouring slicing."""
    if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type):
        off_type = np.int64
    else:
        off_type = np.int32
    bufs = arr.buffers()
    n = len(arr)
    offsets = np.frombuffer(bufs[1], dtype=off_type)[arr.offset : arr.offset + n + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size else np.zeros(1, np.uint8)
    if data.size == 0:
        data = np.zeros(1, np.uint8)
    return offsets[:-1], offsets[1:], data


class _Cursor:
    """Per-row byte access at per-row positions (clipped; validity is tracked separately)."""

    def __init__(self, data: np.ndarray, start: np.ndarray, end: np.ndarray):
        self.data = data
        self.start = start
        self.end = end
        self.last = len(data) - 1

    def at(self, pos: np.ndarray) -> np.ndarray:
        """Byte at row-relative position ``pos`` (0 where past the row's end)."""
        idx = self.start + pos
        b = np.take(self.data, np.minimum(idx, self.last)).astype(np.int64)
        return np.where(idx < self.end, b, 0)

    def digits(self, pos, count: int, ok: np.ndarray) -> np.ndarray:
        """``count`` decimal digits starting at ``pos``; clears ``ok`` where they are not digits."""
        value = np.zeros(len(self.start), dtype=np.int64)
        for k in range(count):
            d = self.at(pos + k) - 48
            ok &= (d >= 0) & (d <= 9)
            value = value * 10 + d
        return value


# The grammar, as a regular expression. The fast path uses it on one row to learn a layout;
# the general (gather-based) parser implements exactly the same grammar per row.
_ISO_RE = re.compile(
    rb"(\d{4})-(\d{2})-(\d{2})"
    rb"(?:[Tt ](\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    rb"( ?)(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?"
)


def parse_iso(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse an Arrow string/binary array of ISO timestamps.

    Returns ``(ns, ok, naive)``: nanoseconds (UTC for rows with an offset, *wall time* for naive
    rows), a validity mask, and which rows had no offset. Use :func:`parse_timestamps` for the
    final UTC values.

    Rows laid out exactly like the first row (same length, same separators, digits where it has
    digits: the usual case, as exports write one format) are parsed as columns of a byte matrix;
    the others go through a per-row gather parser of the same grammar.
    """
    n = len(arr)
    ns = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    naive = np.zeros(n, dtype=bool)
    if n == 0:
        return ns, ok, naive
    start, end, data = _buffers(arr)
    valid = arrow.valid(arr)
    done = _parse_fixed(start, end, data, valid, ns, ok, naive)
    rest = np.flatnonzero(~done)
    if rest.size:
        r_ns, r_ok, r_naive = _parse_general(start[rest], end[rest], data, valid[rest])
        ns[rest], ok[rest], naive[rest] = r_ns, r_ok, r_naive
    return ns, ok, naive


def _parse_fixed(start, end, data, valid, ns, ok, naive) -> np.ndarray:
    """Fast path. Fills ``ns/ok/naive`` for the rows that share the first valid row's layout and
    returns the mask of rows it handled (all False when it does not apply)."""
    n = len(start)
    handled = np.zeros(n, dtype=bool)
    first = int(np.argmax(valid))
    if not valid[first]:
        return handled
    L = int(end[first] - start[first])
    s0 = int(start[first])
    row0 = bytes(data[s0 : s0 + L])
    m = _ISO_RE.fullmatch(row0)
    if m is None or L == 0:
        return handled
    # The rows of equal length, laid out back to back (the usual case) form a byte matrix.
    lengths = end - start
    if not (lengths == L).all() or int(start[-1] - start[0]) != (n - 1) * L:
        return handled
    M = data[int(start[0]) : int(start[0]) + n * L].reshape(n, L)
    # One pass over the bytes: digits where the first row has digits, the very same bytes
    # elsewhere. (Flat, in preallocated buffers: short rows make axis=1 reductions slow.)
    lo_t, span_t, sub, bad = _template_arrays(row0, n)
    np.subtract(M.reshape(-1), lo_t, out=sub)
    np.greater(sub, span_t, out=bad)
    same = valid.copy()
    wrong = np.flatnonzero(bad)
    if wrong.size:
        same[wrong // L] = False

    def field(g: int, limit: int = 99) -> np.ndarray | None:
        a, b = m.span(g)
        if a < 0:
            return None
        b = min(b, a + limit)
        v = M[:, a].astype(np.int32) - 48
        for c in range(a + 1, b):
            v = v * 10 + (M[:, c].astype(np.int32) - 48)
        return v

    zero = np.zeros(n, dtype=np.int32)
    year, month, day = field(1), field(2), field(3)
    hour, minute, second = (field(4), field(5), field(6))
    hour = zero if hour is None else hour
    minute = zero if minute is None else minute
    second = zero if second is None else second
    frac = field(7, 9)
    frac_ns = 0 if frac is None else frac.astype(np.int64) * int(_POW10[9 - min(m.end(7) - m.start(7), 9)])
    sign = m.group(10)
    off_h = field(11) if sign is not None else zero
    off_m = field(12) if sign is not None and m.group(12) is not None else zero
    is_naive = m.group(4) is None or (m.group(9) is None and sign is None)
    r_ns, r_ok = _assemble(year, month, day, hour, minute, second, frac_ns, off_h, off_m,
                           -1 if sign == b"-" else 1, same)
    if same.all():
        ns[:], ok[:] = r_ns, r_ok
        if is_naive:
            naive[:] = r_ok
        return same
    ns[same] = r_ns[same]
    ok[same] = r_ok[same]
    naive[same] = r_ok[same] & is_naive
    return same


_local = threading.local()


def _template_arrays(row0: bytes, n: int):
    """Per-byte bounds of a layout repeated n times, and scratch buffers (cached per thread)."""
    key = (row0, n)
    cached = getattr(_local, "template", None)
    if cached is None or cached[0] != key:
        tpl = np.frombuffer(row0, np.uint8)
        isdig = (tpl >= 48) & (tpl <= 57)
        lo = np.where(isdig, 48, tpl).astype(np.uint8)
        span = np.where(isdig, 9, 0).astype(np.uint8)
        size = n * len(row0)
        cached = (key, np.tile(lo, n), np.tile(span, n), np.empty(size, np.uint8), np.empty(size, bool))
        _local.template = cached
    return cached[1:]


def _month_table() -> np.ndarray:
    """Days since the epoch of the first of every month, MIN_YEAR-01 .. MAX_YEAR-12."""
    y = np.repeat(np.arange(MIN_YEAR, MAX_YEAR + 1, dtype=np.int64), 12)
    m = np.tile(np.arange(1, 13, dtype=np.int64), MAX_YEAR - MIN_YEAR + 1)
    return days_from_civil(y, m, np.ones_like(y))


_MONTH_START = _month_table()
_LEAP = np.array([(y % 4 == 0 and y % 100 != 0) or y % 400 == 0 for y in range(MIN_YEAR, MAX_YEAR + 1)])


def _assemble(year, month, day, hour, minute, second, frac_ns, off_h, off_m, sign, ok):
    """Check field ranges and build ns. Returns (ns, ok)."""
    ok = ok & (year >= MIN_YEAR) & (year <= MAX_YEAR) & (month >= 1) & (month <= 12) & (day >= 1)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59) & (off_h <= 23) & (off_m <= 59)
    offset_s = sign * (off_h * 3600 + off_m * 60)
    mi = np.where(ok, (year - MIN_YEAR) * 12 + (month - 1), 0)
    dim = _DIM[np.where(ok, month, 0)] + ((month == 2) & _LEAP[mi // 12])
    ok &= day <= dim
    days = _MONTH_START[mi] + (day - 1)
    secs = days * 86_400 + (hour * 3600 + minute * 60 + second - offset_s)
    ok &= (secs >= MIN_S) & (secs < MAX_S)
    secs = np.where(ok, secs, 0)
    ns = secs * NS + frac_ns
    if not ok.all():
        ns = np.where(ok, ns, 0)
    return ns, ok


def _parse_general(start, end, data, ok):
    """The same grammar as ``_ISO_RE`` (after trimming blanks), one gather per character."""
    n = len(start)
    ok = ok.copy()
    # Trim blanks at both ends (a few vectorised steps; rows rarely have any).
    last = len(data) - 1
    for _ in range(64):
        sp = (start < end) & (np.take(data, np.minimum(start, last)) == 32)
        if not sp.any():
            break
        start = start + sp
    for _ in range(64):
        sp = (start < end) & (np.take(data, np.clip(end - 1, 0, last)) == 32)
        if not sp.any():
            break
        end = end - sp
    cur = _Cursor(data, start, end)
    length = end - start
    zero = np.zeros(n, dtype=np.int64)

    ok &= length >= 10
    year = cur.digits(zero, 4, ok)
    month = cur.digits(zero + 5, 2, ok)
    day = cur.digits(zero + 8, 2, ok)
    ok &= (cur.at(zero + 4) == 45) & (cur.at(zero + 7) == 45)  # '-'

    # Optional time of day.
    sep = cur.at(zero + 10)
    has_time = (length > 10) & ((sep == 84) | (sep == 116) | (sep == 32))  # 'T' 't' ' '
    ok &= (length == 10) | has_time
    tok = has_time.copy()
    hour = cur.digits(zero + 11, 2, tok)
    ok &= ~has_time | tok
    has_min = has_time & (cur.at(zero + 13) == 58) & (length >= 16)  # ':'
    mok = has_min.copy()
    minute = np.where(has_min, cur.digits(zero + 14, 2, mok), 0)
    ok &= ~has_min | mok
    pos = np.where(has_min, 16, np.where(has_time, 13, 10))
    hour = np.where(has_time, hour, 0)
    has_sec = has_min & (cur.at(pos) == 58) & (length >= 19)
    sok = has_sec.copy()
    second = np.where(has_sec, cur.digits(pos + 1, 2, sok), 0)
    ok &= ~has_sec | sok
    pos = pos + 3 * has_sec

    # Optional fraction of a second: '.' or ',' then digits (9 kept, more skipped).
    c = cur.at(pos)
    has_frac = has_sec & ((c == 46) | (c == 44)) & (pos < length)
    frac = np.zeros(n, dtype=np.int64)
    nd = np.zeros(n, dtype=np.int64)  # digits kept (at most 9)
    nrun = np.zeros(n, dtype=np.int64)  # digits in the run
    run = has_frac.copy()
    k = 0
    while run.any():
        d = cur.at(pos + 1 + k) - 48
        run &= (d >= 0) & (d <= 9) & (pos + 1 + k < length)
        keep = run & (k < 9)
        frac = np.where(keep, frac * 10 + d, frac)
        nd += keep
        nrun += run
        k += 1
    ok &= ~has_frac | (nrun > 0)
    pos = pos + has_frac + nrun
    frac_ns = frac * _POW10[9 - nd]

    # Optional offset (only after a time), optionally after one blank.
    blank = has_time & (cur.at(pos) == 32) & (length - pos > 1)
    pos = pos + blank
    rest = length - pos
    c = cur.at(pos)
    naive = (rest == 0) & ~blank
    is_z = has_time & (rest == 1) & ((c == 90) | (c == 122))  # 'Z' 'z'
    signed = has_time & ((c == 43) | (c == 45))  # '+' '-'
    hh_ok = signed & np.isin(rest, (3, 5, 6))
    off_h = cur.digits(pos + 1, 2, hh_ok)
    colon = rest == 6
    hh_ok &= ~colon | (cur.at(pos + 3) == 58)
    mm_ok = hh_ok.copy()
    off_m = np.where(rest >= 5, cur.digits(pos + 3 + colon, 2, mm_ok), 0)
    has_off = np.where(rest >= 5, mm_ok, hh_ok)
    ok &= naive | is_z | has_off
    off_h = np.where(has_off, off_h, 0)
    off_m = np.where(has_off, off_m, 0)
    ns, ok = _assemble(year, month, day, hour, minute, second, frac_ns, off_h, off_m,
                       np.where(c == 45, -1, 1), ok)
    return ns, ok, naive & ok


@functools.lru_cache(maxsize=None)
def _year_transitions(year: int) -> tuple[tuple[int, int, int], ...]:
    """Offset changes of the exchange zone during ``year``: (utc_second, before_s, after_s)."""

    def offset(t: int) -> int:
        return int(datetime.fromtimestamp(t, _TZ).utcoffset().total_seconds())

    lo = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    hi = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
    out = []
    t, o = lo, offset(lo)
    while t < hi:
        t2 = min(t + 86_400, hi)
        o2 = offset(t2)
        if o2 != o:  # bisect the change down to the second
            a, b = t, t2
            while b - a > 1:
                mid = (a + b) // 2
                if offset(mid) == o:
                    a = mid
                else:
                    b = mid
            out.append((b, o, o2))
        t, o = t2, o2
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _table(y0: int, y1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transitions for years y0..y1: UTC instants, local switch points, offsets (seconds).

    ``offsets[i]`` applies from transition ``i - 1`` on (``offsets[0]`` before the first).
    The local switch point of a transition is its instant plus the larger of the two offsets,
    which gives the ``fold=0`` reading of wall times in a gap or an overlap.
    """
    y0, y1 = max(y0, 1800), min(y1, 2300)
    rows = [tr for y in range(y0, y1 + 1) for tr in _year_transitions(y)]
    first = int(datetime(y0, 1, 1, tzinfo=UTC).timestamp())
    base = int(datetime.fromtimestamp(first, _TZ).utcoffset().total_seconds())
    utc = np.array([r[0] for r in rows], dtype=np.int64)
    local = np.array([r[0] + max(r[1], r[2]) for r in rows], dtype=np.int64)
    offsets = np.array([base] + [r[2] for r in rows], dtype=np.int64)
    return utc * NS, local * NS, offsets * NS


def _years(ns: np.ndarray) -> tuple[int, int]:
    lo = int(ns.min()) // DAY_NS
    hi = int(ns.max()) // DAY_NS
    y0 = 1970 + lo // 366 - 1
    y1 = 1970 + hi // 365 + 1
    return int(y0), int(y1)


def local_to_utc(wall_ns: np.ndarray) -> np.ndarray:
    """Exchange wall time (ns, as if UTC) -> UTC ns, with the ``fold=0`` rule."""
    if wall_ns.size == 0:
        return wall_ns.astype(np.int64)
    _, local, offsets = _table(*_years(wall_ns))
    return wall_ns - offsets[np.searchsorted(local, wall_ns, side="right")]


def utc_offset(utc_ns: np.ndarray) -> np.ndarray:
    """The exchange zone's UTC offset (ns) at each UTC instant."""
    if utc_ns.size == 0:
        return utc_ns.astype(np.int64)
    utc, _, offsets = _table(*_years(utc_ns))
    return offsets[np.searchsorted(utc, utc_ns, side="right")]


def parse_timestamps(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """ISO text -> (UTC ns, ok). Naive rows are America/New_York wall time."""
    ns, ok, naive = parse_iso(arr)
    if naive.any():
        ns = ns.copy()
        ns[naive] = local_to_utc(ns[naive])
    return ns, ok


def arrow_times_to_ns(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Any Arrow time column (Parquet) -> (UTC ns, ok).

    Text is parsed as ISO; a timestamp type with a zone is an instant; one without a zone, or a
    date, is exchange wall time.
    """
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return parse_timestamps(arr)
    if pa.types.is_dictionary(t):
        return arrow_times_to_ns(arr.cast(t.value_type))
    ok = arrow.valid(arr)
    if pa.types.is_timestamp(t):
        if t.unit == "ns":
            ns = arrow.values_or(arr.cast(pa.int64()), 0, np.int64)
        else:  # coarser units: check the range before scaling, so nothing overflows
            per = {"s": NS, "ms": 1_000_000, "us": 1_000}[t.unit]
            raw = arrow.values_or(arr.cast(pa.int64()), 0, np.int64)
            ok &= (raw >= MIN_S * NS // per) & (raw < MAX_S * NS // per)
            ns = np.where(ok, raw, 0) * per
    elif pa.types.is_date(t):
        days = arrow.values_or(arr.cast(pa.date32()).cast(pa.int32()), 0, np.int32).astype(np.int64)
        ok &= (days >= MIN_S // 86_400) & (days < MAX_S // 86_400)
        ns = np.where(ok, days, 0) * DAY_NS
    else:
        raise TypeError(f"a time column of type {t}")
    ok &= (ns >= MIN_S * NS) & (ns < MAX_S * NS)
    ns = np.where(ok, ns, 0).astype(np.int64)
    if not (pa.types.is_timestamp(t) and t.tz is not None):  # naive: exchange wall time
        if ok.all():
            ns = local_to_utc(ns)
        else:
            ns[ok] = local_to_utc(ns[ok])
    return ns, ok
