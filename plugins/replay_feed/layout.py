"""What a data file is: CSV or Parquet, bars, ticks or quotes, and which columns mean what.

Read from the file's first bytes and header only; a file that is not data (an image, an
archive, a spreadsheet), or whose header lacks a time or price column, is bad input here,
before any row is read.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from . import arrow
from .errors import DataError
from .times import parse_iso

BARS, TICKS, QUOTES = "bars", "ticks", "quotes"
TIME_ALIASES = ("timestamp", "datetime", "date", "time")
PRICE_ROLES = {BARS: ("open", "high", "low", "close"), TICKS: ("price",), QUOTES: ("bid", "ask")}
REASONS = {
    BARS: ("unparseable", "not_finite", "not_positive", "high_below_low", "not_after_previous"),
    TICKS: ("unparseable", "not_finite", "not_positive", "not_after_previous"),
    QUOTES: ("unparseable", "not_finite", "not_positive", "crossed_quote", "not_after_previous"),
}

#: The skip reasons in words, for messages.
REASON_WORDS = {
    "unparseable": "unreadable (a time or price that cannot be read, or the wrong number of fields)",
    "not_finite": "with a NaN or infinite price",
    "not_positive": "with a price of 0 or less",
    "high_below_low": "with high below low",
    "crossed_quote": "with ask below bid",
    "not_after_previous": "with a time not after the previous row's",
}

HEADER_HINT = (
    "bars need a header such as timestamp,open,high,low,close,volume; ticks timestamp,price; "
    "quotes timestamp,bid,ask"
)

_BINARY_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one: export it as CSV)"),
    (b"\x1f\x8b", "gzip-compressed (decompress it first: gunzip FILE)"),
    (b"BZh", "bzip2-compressed (decompress it first: bunzip2 FILE)"),
    (b"\xfd7zXZ\x00", "xz-compressed (decompress it first: unxz FILE)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed (decompress it first: unzstd FILE)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office file (export it as CSV)"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"ARROW1", "an Arrow IPC/Feather file (write it as Parquet)"),
    (b"\x7fELF", "an executable"),
)


# --------------------------------------------------------------------------------------------
# The file and its header
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """What a data file holds and where: found from its first bytes and its header."""

    path: Path
    fmt: str  # "csv" | "parquet"
    kind: str  # BARS | TICKS | QUOTES
    time_cols: tuple[str, ...]  # the file's own names: one, or (date, time) to be joined
    price_cols: tuple[str, ...]  # in PRICE_ROLES[kind] order
    header: tuple[str, ...]
    row_bytes: int = 64  # CSV: average line length in the first 64 KiB (sizes read blocks)
    num_rows: int | None = None  # Parquet: from the metadata
    #: CSV: how the first data row's time reads ("utc": with an offset, "naive"), None when it
    #: does not; decides the type the fast path asks Arrow's CSV reader for (see Scan).
    time_hint: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return self.time_cols + self.price_cols

    @property
    def reasons(self) -> tuple[str, ...]:
        return REASONS[self.kind]


#: How many bytes of a CSV file are looked at to learn its layout (the header must fit).
HEAD_BYTES = 1 << 16

NO_ROWS_HINT = "a data file needs a header line and at least one row, e.g. 2024-01-02T09:30:00-05:00,50.10,50.20,50.00,50.15"


def inspect(path: str | Path) -> Layout:
    """Check that ``path`` is a usable data file and learn its layout. Raises DataError.

    Every error names a line (line 1 for what concerns the whole file, and for Parquet)."""
    path = Path(path)
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot look at the data file: {exc}", path, hint="check the file name") from exc
    if not exists:
        raise DataError("data file not found", path,
                        hint="check the path (a `data:` path in a config is relative to the config file; `--data` to the current folder)")
    if is_dir:
        raise DataError("is a directory, not a data file", path, 1, hint="name a CSV or Parquet file inside it")
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
            more = bool(f.read(1))
    except OSError as exc:
        raise DataError(f"cannot read the data file: {exc.strerror or exc}", path, 1,
                        hint="check the file's permissions") from exc
    if head[:4] == b"PAR1":
        return _inspect_parquet(path)
    return _inspect_csv(path, head, more)


_LINE_END = re.compile(rb"\r\n|\n|\r")


def _not_data(path: Path, what: str, line: int = 1, col: int | None = None, hint: str = HEADER_HINT) -> DataError:
    return DataError(f"not a CSV or Parquet file: {what}", path, line, hint=hint, col=col)


#: Byte-order marks of the encodings a spreadsheet may save "CSV" in, UTF-32 before UTF-16.
_WIDE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
              (b"\xfe\xff", "UTF-16"))


def _wide_text(head: bytes) -> str | None:
    """UTF-16/32 text (by its BOM, or by every other byte being NUL), or None."""
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            return name
    sample = head[:512]
    if len(sample) >= 4:
        if sample[1::2].count(0) > 0.7 * len(sample[1::2]) or sample[0::2].count(0) > 0.7 * len(sample[0::2]):
            return "UTF-16"
    return None


def _line_col(head: bytes, index: int) -> tuple[int, int]:
    """1-based line and column (in characters) of byte ``index``."""
    start = head.rfind(b"\n", 0, index) + 1
    line = head.count(b"\n", 0, index) + 1
    return line, len(head[start:index].decode("utf-8", errors="replace")) + 1


def _inspect_csv(path: Path, head: bytes, more: bool = False) -> Layout:
    if not head:
        raise DataError("the file is empty: no header line", path, 1, hint=HEADER_HINT)
    for magic, what in _BINARY_MAGIC:
        if head.startswith(magic):
            raise _not_data(path, f"it is {what}")
    wide = _wide_text(head)
    if wide:
        raise _not_data(path, f"it is {wide} text", hint=f"save it as UTF-8 CSV (iconv -f {wide} -t UTF-8 FILE)")
    if b"\x00" in head:
        line, col = _line_col(head, head.index(b"\x00"))
        raise _not_data(path, "it holds binary data (a NUL byte)", line, col,
                        hint="a data file is text: " + HEADER_HINT)
    lines_ = _LINE_END.split(head)  # LF, CRLF or a lone CR (old Mac files), as Arrow reads them
    first = lines_[0]
    if len(lines_) == 1 and len(head) == HEAD_BYTES:
        raise _not_data(path, f"its first line is longer than {HEAD_BYTES // 1024} KiB",
                        hint="the first line must be the header: " + HEADER_HINT)
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = 3 if first.startswith(b"\xef\xbb\xbf") else 0
        line, col = _line_col(head, exc.start + offset)
        raise _not_data(path, f"it is not UTF-8 text (byte 0x{first[exc.start + offset]:02x})", line, col,
                        hint="save it as UTF-8 (from Latin-1, say: iconv -f LATIN1 -t UTF-8 FILE)") from None
    if not text.strip():
        raise DataError("the first line is empty: expected a header", path, 1, hint=HEADER_HINT)
    header = next(csv.reader([text]))
    row_bytes = max(8, len(head) // max(1, len(lines_) - 1))
    kind, time_cols, price_cols = _roles(header, path)
    if not more and not any(ln.strip(b" \t") for ln in lines_[1:]):
        raise DataError("no data rows: the file has a header and nothing else", path, 1, hint=NO_ROWS_HINT)
    return Layout(path, "csv", kind, time_cols, price_cols, tuple(header), row_bytes=row_bytes,
                  time_hint=_time_hint(head, header, time_cols))


def _time_hint(head: bytes, header: list[str], time_cols: tuple[str, ...]) -> str | None:
    if len(time_cols) != 1:
        return None
    lines = _LINE_END.split(head)[1:-1][:8]
    try:
        rows = list(csv.reader(line.decode("utf-8") for line in lines if line.strip()))
    except (UnicodeDecodeError, csv.Error):
        return None
    i = header.index(time_cols[0])
    values = [r[i] for r in rows if len(r) == len(header)]
    if not values:
        return None
    _, ok, naive = parse_iso(arrow.strings(values[:1]))
    if not ok[0]:
        return None
    return "naive" if naive[0] else "utc"


def _inspect_parquet(path: Path) -> Layout:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
        num_rows = pf.metadata.num_rows
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        raise DataError(f"not a readable Parquet file: {exc}", path, 1,
                        hint="it starts like Parquet (PAR1) but cannot be read: it may be truncated or damaged; "
                             "write it again") from exc
    header = tuple(schema.names)
    kind, time_cols, price_cols = _roles(header, path)
    for name in time_cols:
        t = schema.field(name).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if not (pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_string(t)
                or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)):
            raise DataError(f"the time column {name!r} has type {t}", path, 1,
                            hint="store times as a timestamp, a date, or ISO text")
        if len(time_cols) == 2 and not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            raise DataError(f"the {name!r} column has type {t}: separate date and time columns must be text",
                            path, 1, hint="store one timestamp column instead")
    for name in price_cols:
        t = schema.field(name).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
                or pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_binary(t) or pa.types.is_large_binary(t)):
            raise DataError(f"the price column {name!r} has type {t}", path, 1, hint="store prices as numbers")
    if num_rows == 0:
        raise DataError("no data rows: the Parquet file has columns and no rows", path, 1, hint=NO_ROWS_HINT)
    return Layout(path, "parquet", kind, time_cols, price_cols, header, num_rows=num_rows)


def _roles(header, path: Path, line: int | None = 1) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """Which columns hold the time and the prices, and so what kind of data this is."""
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    where: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        where.setdefault(n, []).append(i)
    shown = ",".join(header) if header else "(nothing)"
    if len(shown) > 200:
        shown = shown[:200] + "..."

    if "close" in where:
        kind = BARS
        missing = [r for r in PRICE_ROLES[BARS] if r not in where]
        if missing:
            raise DataError(
                f"bar data needs open, high, low and close; the header lacks {', '.join(missing)}",
                path, line, hint=f"the header is: {shown}")
    elif "price" in where:
        kind = TICKS
    elif "bid" in where and "ask" in where:
        kind = QUOTES
    else:
        raise DataError(
            "no price columns: expected open,high,low,close (bars), price (ticks) or bid,ask (quotes)",
            path, line, hint=f"the header is: {shown}; rename the columns (case does not matter)")

    if "timestamp" in where:
        time_roles: tuple[str, ...] = ("timestamp",)
    elif "datetime" in where:
        time_roles = ("datetime",)
    elif "date" in where and "time" in where:
        time_roles = ("date", "time")
    elif "date" in where:
        time_roles = ("date",)
    elif "time" in where:
        time_roles = ("time",)
    else:
        raise DataError(
            "no time column: expected timestamp (or datetime, date, time)",
            path, line, hint=f"the header is: {shown}")

    roles = time_roles + PRICE_ROLES[kind]
    for r in roles:
        if len(where[r]) > 1:
            raise DataError(f"the column {r!r} appears {len(where[r])} times in the header", path, line,
                            hint="remove or rename the extra columns")
    pick = {r: header[where[r][0]] for r in roles}
    return kind, tuple(pick[r] for r in time_roles), tuple(pick[r] for r in PRICE_ROLES[kind])
