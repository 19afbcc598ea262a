"""Vectorised CSV text for the synthetic bars: whole lines built as a byte matrix, no per-row Python.

Each field is right-aligned in a fixed-width block of columns of one ``(rows, width)`` byte
matrix, padded on the left with zero bytes; commas and newlines sit in their own columns.
Dropping the zero bytes of the flattened matrix leaves the CSV text. This is several times
faster than Arrow's CSV writer on float columns, and prices come out as plain ``12.30`` (two
decimals: exactly the cents).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .times import NS, utc_offset

_ZERO = np.uint8(48)


def civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant)."""
    z = days + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def _put(m: np.ndarray, end: int, value: np.ndarray, width: int, min_digits: int) -> None:
    """Write non-negative ``value`` right-aligned in columns ``end - width .. end - 1``: at least
    ``min_digits`` digits (leading zeros up to that), zero bytes before them."""
    v = value.astype(np.int64 if int(value.max(initial=0)) >= 2**31 else np.int32)
    for k in range(width):
        col = end - 1 - k
        v, d = np.divmod(v, 10)
        digit = d.astype(np.uint8) + _ZERO
        if k < min_digits:
            m[:, col] = digit
        else:
            m[:, col] = np.where((v > 0) | (d > 0), digit, 0)
        if k >= min_digits and not v.any() and not d.any():
            break


class Lines:
    """Build CSV lines field by field, then :meth:`bytes`. All fields have ``n`` rows."""

    def __init__(self, n: int):
        self.n = n
        self._fields: list[tuple[int, Callable[[np.ndarray, int], None]]] = []

    def uint(self, value: np.ndarray, min_digits: int = 1) -> Lines:
        value = np.asarray(value, dtype=np.int64)
        if value.size and value.min() < 0:
            raise ValueError("uint() takes non-negative integers")
        width = max(min_digits, len(str(int(value.max(initial=0)))))
        self._fields.append((width, lambda m, end: _put(m, end, value, width, min_digits)))
        return self

    def cents(self, cents: np.ndarray) -> Lines:
        """Cents (>= 0) as ``D.CC``: 1230 -> ``12.30``, 5 -> ``0.05``."""
        cents = np.asarray(cents, dtype=np.int64)
        if cents.size and cents.min() < 0:
            raise ValueError("cents() takes non-negative integers")
        whole, frac = np.divmod(cents, 100)
        width = len(str(int(whole.max(initial=0)))) + 3

        def put(m: np.ndarray, end: int) -> None:
            _put(m, end, frac, 2, 2)
            m[:, end - 3] = ord(".")
            _put(m, end - 3, whole, width - 3, 1)

        self._fields.append((width, put))
        return self

    def iso_local(self, utc_ns: np.ndarray) -> Lines:
        """UTC ns (whole seconds) as ``YYYY-MM-DDTHH:MM:SS±HH:MM`` in New York time."""
        utc_ns = np.asarray(utc_ns, dtype=np.int64)
        if (utc_ns % NS).any():
            raise ValueError("iso_local() takes whole seconds")
        off = utc_offset(utc_ns) // NS
        days, secs = np.divmod(utc_ns // NS + off, 86_400)
        # Rows are mostly in time order: the calendar date is computed once per distinct day.
        uniq, inv = np.unique(days, return_inverse=True)
        year, month, day = (x[inv] for x in civil_from_days(uniq))
        if len(year) and (year.min() < 0 or year.max() > 9999):
            raise ValueError("years must be 0..9999")
        sign = np.where(off < 0, ord("-"), ord("+")).astype(np.uint8)
        a = np.abs(off)

        def put(m: np.ndarray, end: int) -> None:
            s = end - 25
            m[:, s:end] = np.frombuffer(b"0000-00-00T00:00:00+00:00", np.uint8)
            for col, v, w in ((s + 4, year, 4), (s + 7, month, 2), (s + 10, day, 2), (s + 13, secs // 3600, 2),
                              (s + 16, secs // 60 % 60, 2), (s + 19, secs % 60, 2), (s + 22, a // 3600, 2),
                              (s + 25, a // 60 % 60, 2)):
                _put(m, col, v, w, w)
            m[:, s + 19] = sign

        self._fields.append((25, put))
        return self

    def bytes(self) -> bytes:
        """The lines: fields joined by commas, each line ended by a newline."""
        width = sum(w for w, _ in self._fields) + len(self._fields)
        m = np.zeros((self.n, width), dtype=np.uint8)
        end = 0
        for w, put in self._fields:
            end += w
            put(m, end)
            m[:, end] = ord(",")
            end += 1
        m[:, end - 1] = ord("\n")
        flat = m.ravel()
        return flat[flat != 0].tobytes()
