"""CSV / Parquet replay data -> validated columnar chunks, streamed (memory flat in the file's length).

What a file may hold (spec "Replay data"; headers are case-insensitive, extra columns ignored):

* bars ``timestamp,open,high,low,close[,volume]``
* ticks ``timestamp,price[,size]``
* quotes ``timestamp,bid,ask[,bid_size,ask_size]``: the tick price is the midpoint, in cents, half up

The kind is detected from the header: ``close`` makes bars, else ``price`` ticks, else ``bid`` and
``ask`` quotes. The time column is ``timestamp``, ``datetime`` (yfinance), ``date`` or ``time``
(the first present in that order; a ``date`` column plus a ``time`` column are joined). See
:mod:`.times` for the timestamp forms; naive times are America/New_York.

Prices become whole cents as they are read, half up (:func:`to_cents`), or whole units of the
instrument's increment when it declares another one (:func:`to_units`; ``Scan(increment=...)``).

Bad rows are skipped and counted, never fatal. The reasons, checked in this order (a row counts
once, under its first reason):

``unparseable``
    a field that cannot be read: a time that is not an ISO timestamp, a price that is not a
    number (or is empty, or too large to be a price: above $1e12, or 1e14 increments of a
    declared instrument), a line with the wrong number
    of fields.
``not_finite``
    a NaN or infinite price.
``not_positive``
    a price <= 0 once rounded to cents (so 0.004 is 0 cents: bad), or to the increment.
``high_below_low`` (bars), ``crossed_quote`` (quotes: ask < bid)
``not_after_previous``
    a timestamp not later than the last accepted row's (a duplicate, or time going back). A
    skipped row does not move that reference. Because a row that is otherwise valid but not
    later than the running maximum leaves the maximum unchanged, "later than the last
    accepted row" equals "later than the running maximum of the otherwise-valid rows before
    it", which is a ``np.maximum.accumulate`` carried from chunk to chunk.

Nothing else is bad: an open or close outside [low, high] is kept as it is.

Fatal (:class:`DataError`): a missing file, a file that is neither CSV nor Parquet by its
content, a header with no time column or no price columns.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from bothost.model import CENT

from . import arrow
from .errors import DataError
from .layout import BARS, HEADER_HINT, QUOTES, Layout
from .times import arrow_times_to_ns, parse_timestamps

DEFAULT_CHUNK_ROWS = 65_536
#: The most bytes Arrow's CSV reader reads at once. Its streaming reader keeps a few dozen
#: blocks in flight, so this bounds the reader's memory (~40 MB); a chunk then holds at most
#: ``chunk_rows`` rows and at most a block's worth.
MAX_BLOCK = 1 << 20
#: Arrow's own threads for CSV parsing. On a 2-core machine the main thread's numpy work already
#: keeps a core busy; measured faster without them there.
USE_THREADS = False
INT64_MIN = np.iinfo(np.int64).min

#: Prices above this many dollars are not prices (and would not fit int64 cents exactly).
MAX_PRICE = 1e12
#: The same bound in units of any increment (MAX_PRICE in cents).
MAX_UNITS = 10**14

#: Relative nudge for rounding half up on float64; see :func:`to_cents`.
ROUND_EPS = 1e-13


# --------------------------------------------------------------------------------------------
# Prices
# --------------------------------------------------------------------------------------------


def to_cents(x: np.ndarray) -> np.ndarray:
    """Dollars (float64) -> int64 cents, half up: ``floor(100x + 0.5 + |100x| * 1e-13)``
    (:func:`to_units` in cents, the default instrument).

    Why the nudge: the text is the truth, but float64 cannot hold most decimals: "1.005" reads
    as 1.00499999999999989..., so a plain ``floor(100x + 0.5)`` would give 100 where the text
    says 100.5 cents, which rounds half up to 101. Parsing the text (correctly rounded) and
    multiplying by 100 are each off by at most half an ulp, together at most ~5e-16 relative
    (with the final additions). Adding ``|100x| * 1e-13`` (200 times that error) lifts every
    exact half cent above the rounding point, while a value that truly lies below a half cent
    is still rounded down as long as it lies more than ``|100x| * 1e-13`` below it: true for
    every price written with up to 8 decimals below $100,000 (a gap of at least 1e-6 cents),
    and for 6 decimals up to $10 million. Float noise from exports (82.19999694824219 ->
    8220) is far from any half cent and unaffected. Values must be finite and <= MAX_PRICE.
    """
    y = x * 100.0
    t = np.abs(y)
    t *= ROUND_EPS
    t += y
    t += 0.5
    np.floor(t, out=t)
    return t.astype(np.int64)


def unit_scale(increment: Decimal) -> tuple[float, bool]:
    """How a float price becomes units of ``increment`` in one correctly rounded float
    operation: ``(factor, True)`` to multiply by (1/increment is a whole number: 0.01, 0.0001,
    0.005, 0.25), else ``(float(increment), False)`` to divide by (0.3, 5)."""
    inverse = 1 / increment
    if inverse == inverse.to_integral_value():
        return float(inverse), True
    return float(increment), False


def to_units(x: np.ndarray, increment: Decimal = CENT) -> np.ndarray:
    """Prices (float64) -> int64 units of ``increment``, half up, exactly as :func:`to_cents`
    does for cents (the same nudge, on the price in units: one multiplication or division is
    off by at most half an ulp, as ``x * 100`` is). Values must be finite and at most
    :func:`max_price` of the increment."""
    if increment == CENT:
        return to_cents(x)
    factor, multiply = unit_scale(increment)
    y = x * factor if multiply else x / factor
    t = np.abs(y)
    t *= ROUND_EPS
    t += y
    t += 0.5
    np.floor(t, out=t)
    return t.astype(np.int64)


def max_price(increment: Decimal = CENT) -> float:
    """The largest price read as a price: :data:`MAX_PRICE` dollars in cents, the same 1e14
    units in any increment (float64 holds whole numbers exactly only below 2**53, about 9e15)."""
    return MAX_PRICE if increment == CENT else float(MAX_UNITS * increment)


_NUMBER = (
    r"^\s*(?P<v>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?i:nan|inf|infinity))\s*$"
)


def to_float(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A price column (text or numeric) -> (float64 values, readable mask).

    Text is parsed by Arrow in one call; only a chunk holding something unreadable (an empty
    cell, "n/a", " 1.5", "1,5") takes the slower path, a regular expression that keeps what is
    a plain decimal number (blanks around it allowed) and marks the rest unreadable.
    """
    t = arr.type
    if pa.types.is_dictionary(t):
        return to_float(arr.dictionary_decode())
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        f = pc.cast(arr, pa.float64(), safe=False)
    elif pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        try:
            f = pc.cast(arr, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            text = pc.struct_field(pc.extract_regex(arr, _NUMBER), [0])
            try:
                f = pc.cast(text, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # pragma: no cover - belt and braces
                f = arrow.floats([_py_float(v) for v in text.to_pylist()])
    else:
        raise TypeError(f"a price column of type {t}")
    if f.null_count:
        ok = arrow.valid(f)
        values = arrow.values_or(f, np.nan, np.float64)
    else:
        ok = np.ones(len(f), dtype=bool)
        values = arrow.values_or(f, np.nan, np.float64)
    return values, ok


def _py_float(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Streaming the rows
# --------------------------------------------------------------------------------------------


class _TypedFailed(Exception):
    """The fast path met a value Arrow's typed CSV conversion refuses: read as text instead."""


class _NotUtf8Row(Exception):
    """A line with the wrong number of fields holds bytes that are not UTF-8: Arrow cannot hand
    it to the skip handler (it decodes the line for it first, fails, and gives up on the file),
    so the pass starts again, reading through :class:`_Utf8Filter`."""


class _Utf8Filter(io.RawIOBase):
    """The file's bytes with every byte that is not UTF-8 replaced (by U+FFFD): what Arrow
    reads once a line has shown to need it. Line ends, commas and quotes are ASCII and never
    touched, so the rows are the same rows; a replaced byte was never part of a number or a
    time, so every row reads as it did (the bad ones stay bad, as "unparseable")."""

    def __init__(self, path):
        super().__init__()
        self._file = open(path, "rb")
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = bytearray()
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self, want: int) -> None:
        while (want < 0 or len(self._buffer) < want) and not self._eof:
            raw = self._file.read(max(want, 1 << 20) if want >= 0 else -1)
            if not raw:
                self._eof = True
                self._buffer += self._decoder.decode(b"", final=True).encode()
            else:
                self._buffer += self._decoder.decode(raw).encode()

    def read(self, size: int = -1) -> bytes:
        self._fill(size)
        if size < 0 or size >= len(self._buffer):
            out = bytes(self._buffer)
            self._buffer.clear()
        else:
            out = bytes(self._buffer[:size])
            del self._buffer[:size]
        return out

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


@contextlib.contextmanager
def _handler_failures(handler, seen: list):
    """Arrow reports a skip handler it could not call (see :class:`_NotUtf8Row`) as an
    "Exception ignored" on stderr; note it instead of printing it."""
    previous = sys.unraisablehook

    def hook(unraisable):
        if unraisable.object is handler and isinstance(unraisable.exc_value, UnicodeDecodeError):
            seen.append(1)
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _csv_batches(layout: Layout, chunk_rows: int, skipped: list, typed: bool,
                 skip_rows: int = 0, utf8_filter: bool = False) -> Iterator[list[pa.Array]]:
    """The needed columns, ``chunk_rows`` rows at a time, after the first ``skip_rows`` rows.

    ``typed``: Arrow converts the time and price columns itself (the fast path; any value it
    refuses raises :class:`_TypedFailed`); otherwise they come as raw bytes for our own
    parsers, which mark what they cannot read row by row.
    """
    cols = list(layout.columns)
    block = int(min(max(layout.row_bytes * chunk_rows, 1 << 16), MAX_BLOCK))

    def invalid_row(row) -> str:  # a line with the wrong number of fields: skip and count it
        skipped.append(1)
        return "skip"

    read = pcsv.ReadOptions(block_size=block, use_threads=USE_THREADS)
    parse = pcsv.ParseOptions(invalid_row_handler=invalid_row)
    if typed:
        tz = "UTC" if layout.time_hint == "utc" else None
        types = {layout.time_cols[0]: pa.timestamp("ns", tz), **{c: pa.float64() for c in layout.price_cols}}
        convert = pcsv.ConvertOptions(include_columns=cols, column_types=types, null_values=[],
                                      strings_can_be_null=False, quoted_strings_can_be_null=False)
    else:
        convert = pcsv.ConvertOptions(
            include_columns=cols,
            column_types={c: pa.binary() for c in cols},  # no UTF-8 check: a bad byte is a bad row
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
    undecodable: list = []  # invalid lines Arrow could not decode for the handler
    source = _Utf8Filter(layout.path) if utf8_filter else layout.path
    try:
        try:
            with _handler_failures(invalid_row, undecodable):
                reader = pcsv.open_csv(source, read_options=read, parse_options=parse, convert_options=convert)
        except pa.ArrowException as exc:
            if undecodable and not utf8_filter:
                raise _NotUtf8Row() from exc
            if typed:
                raise _TypedFailed(str(exc)) from exc
            raise DataError(f"cannot read the CSV: {exc}", layout.path, 1, hint=HEADER_HINT) from exc
        except OSError as exc:
            raise DataError(f"cannot read the CSV: {exc}", layout.path, 1, hint=HEADER_HINT) from exc
        rows = 0
        with reader:
            while True:
                try:
                    with _handler_failures(invalid_row, undecodable):
                        batch = reader.read_next_batch()
                except StopIteration:
                    return
                except pa.ArrowException as exc:  # ArrowInvalid, mostly
                    if undecodable and not utf8_filter:
                        raise _NotUtf8Row() from exc
                    if typed:
                        raise _TypedFailed(str(exc)) from exc
                    raise DataError(f"cannot read the CSV after data row {rows}: {exc}", layout.path, rows + 2,
                                    hint="the file may be truncated or not a CSV file") from exc
                except OSError as exc:
                    raise DataError(f"cannot read the CSV after data row {rows}: {exc}", layout.path, rows + 2,
                                    hint="check that the file is complete and readable") from exc
                n = batch.num_rows
                rows += n
                if skip_rows >= n:
                    skip_rows -= n
                    continue
                arrays = [batch.column(i) for i in range(len(cols))]
                for start in range(skip_rows, n, chunk_rows):
                    yield [a.slice(start, chunk_rows) for a in arrays]
                skip_rows = 0

    finally:
        if isinstance(source, _Utf8Filter):
            source.close()

def _parquet_batches(layout: Layout, chunk_rows: int) -> Iterator[list[pa.Array]]:
    import pyarrow.parquet as pq

    cols = list(layout.columns)
    try:
        pf = pq.ParquetFile(layout.path)
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=cols, use_threads=True):
            yield [batch.column(c) for c in cols]
    except (pa.ArrowException, OSError, ValueError, IndexError) as exc:  # a damaged page, say
        raise DataError(f"cannot read the Parquet file: {exc}", layout.path, 1,
                        hint="the file may be truncated or damaged: write it again") from exc


@dataclass
class Counts:
    """Rows seen and rows skipped, by reason (a row counts under its first reason only)."""

    reasons: tuple[str, ...]
    rows: int = 0
    accepted: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self.by_reason = {r: self.by_reason.get(r, 0) for r in self.reasons}

    @property
    def bad(self) -> int:
        return sum(self.by_reason.values())


@dataclass(frozen=True, slots=True)
class Accepted:
    """The accepted rows of one chunk: times (int64 ns UTC, strictly increasing) and prices in
    cents, one array per role (bars: open, high, low, close; ticks: price; quotes: midpoint)."""

    time_ns: np.ndarray
    prices: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.time_ns)


class Scan:
    """One streaming pass over a data file. Iterate it for :class:`Accepted` chunks; ``counts``
    is complete once the iteration is finished.

    A CSV is first read the fast way: Arrow's CSV reader converts the time column (typed as the
    first row reads: with an offset, or naive) and the prices itself. If it refuses any value
    (an empty cell, "n/a", a time in another form), the pass carries on from the row it had
    reached, reading the columns as text for our own row-by-row-tolerant parsers. Both ways
    give the same values for every row Arrow accepts (our grammar includes Arrow's), so the
    result never depends on the way taken. ``typed`` forces the choice (None: decide as above);
    after the pass, ``typed`` tells which way finished.
    """

    def __init__(self, layout: Layout, chunk_rows: int = DEFAULT_CHUNK_ROWS, typed: bool | None = None,
                 increment: Decimal = CENT):
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be >= 1")
        self.layout = layout
        #: prices are read as units of this increment (the instrument's; cents by default)
        self.increment = increment
        self.max_price = max_price(increment)
        self.chunk_rows = int(chunk_rows)
        self.counts = Counts(layout.reasons)
        self.typed = (layout.time_hint is not None) if typed is None else (typed and layout.time_hint is not None)
        self._last = INT64_MIN  # running max of the otherwise-valid rows' times
        self.utf8_filter = False  # read through _Utf8Filter (a short line had bytes that are not UTF-8)

    def __iter__(self) -> Iterator[Accepted]:
        lay = self.layout
        nt = len(lay.time_cols)
        if lay.fmt == "parquet":
            for arrays in _parquet_batches(lay, self.chunk_rows):
                yield self._validate(arrays[:nt], arrays[nt:])
            return
        done = 0
        while True:
            skipped: list = []  # lines the CSV parser dropped (wrong number of fields)
            try:
                for arrays in _csv_batches(lay, self.chunk_rows, skipped, self.typed, done, self.utf8_filter):
                    acc = self._validate(arrays[:nt], arrays[nt:])
                    done += len(arrays[0])
                    yield acc
            except _TypedFailed:
                self.typed = False  # start again as text, from the row reached
                continue
            except _NotUtf8Row:
                self.utf8_filter = True  # start again through the filter, from the row reached
                continue
            break
        # The last attempt parsed the file from its start, so it saw every dropped line.
        self.counts.rows += len(skipped)
        self.counts.by_reason["unparseable"] += len(skipped)

    def _times(self, arrays: list[pa.Array]) -> tuple[np.ndarray, np.ndarray]:
        if len(arrays) == 2:  # separate date and time columns
            a, b = (x.cast(pa.binary()) if not pa.types.is_binary(x.type) else x for x in arrays)
            joined = pc.binary_join_element_wise(a, b, pa.scalar(b"T", pa.binary()))
            return parse_timestamps(joined)
        return arrow_times_to_ns(arrays[0])

    def _validate(self, time_arrays: list[pa.Array], price_arrays: list[pa.Array]) -> Accepted:
        kind = self.layout.kind
        counts = self.counts
        ts, good = self._times(time_arrays)
        n = len(ts)
        values = [to_float(a) for a in price_arrays]

        # unparseable / not finite: one cheap test first (NaN and inf fail it too).
        inrange = good.copy()
        for v, ok in values:
            inrange &= ok
            inrange &= np.abs(v) <= self.max_price
        unparseable = not_finite = None
        if not inrange.all():
            unparseable = ~good
            finite = np.ones(n, dtype=bool)
            for v, ok in values:
                unparseable |= ~ok
                fin = np.isfinite(v)
                unparseable |= fin & (np.abs(v) > self.max_price)
                finite &= fin
            not_finite = ~unparseable & ~finite
            good = inrange
        inc = self.increment
        units = [to_units(np.where(good, v, 1.0), inc) if unparseable is not None else to_units(v, inc)
                 for v, _ in values]  # units of the increment

        positive = units[0] > 0
        for c in units[1:]:
            positive &= c > 0
        not_positive = good & ~positive
        good = good & positive
        crossed = None
        if kind == BARS:
            crossed = good & (units[1] < units[2])  # high < low
            good &= ~crossed
        elif kind == QUOTES:
            crossed = good & (units[1] < units[0])  # ask < bid
            good &= ~crossed

        # Time order: later than the running max of the otherwise-valid rows before it.
        masked = np.where(good, ts, INT64_MIN)
        runmax = np.maximum.accumulate(masked)
        before = np.empty(n, dtype=np.int64)
        if n:
            before[0] = self._last
            np.maximum(runmax[:-1], self._last, out=before[1:])
            self._last = max(self._last, int(runmax[-1]))
        accepted = good & (ts > before)
        late = good & ~accepted

        by = counts.by_reason
        counts.rows += n
        if unparseable is not None:
            by["unparseable"] += int(unparseable.sum())
            by["not_finite"] += int(not_finite.sum())
        by["not_positive"] += int(not_positive.sum())
        if crossed is not None:
            by["high_below_low" if kind == BARS else "crossed_quote"] += int(crossed.sum())
        by["not_after_previous"] += int(late.sum())

        if accepted.all():
            out_t, out_p = ts, units
        else:
            idx = np.flatnonzero(accepted)
            out_t, out_p = ts[idx], [c[idx] for c in units]
        if kind == QUOTES:
            out_p = [(out_p[0] + out_p[1] + 1) // 2]  # the midpoint in units, half up
        counts.accepted += len(out_t)
        return Accepted(out_t, tuple(out_p))
