"""Units plugin authors use in their config models: ``Percent``, ``PositivePercent``,
``NonNegativePercent`` and ``Duration``.

They are ``typing.Annotated`` types, so a pydantic model simply declares
``profit_target: PositivePercent`` and gets a ``Decimal`` fraction (``"1%"`` ->
``Decimal("0.01")``). Numbers are parsed with ``Decimal(str)``, never through float, so
``0.1%`` is exactly ``Decimal("0.001")``.

A percentage must carry its ``%``: a bare ``0.01`` is ambiguous (1% or 0.01%?) and a typo
there is expensive, so it is refused with a hint. A ``Decimal`` *instance* is accepted as an
already-converted fraction, which is what Python code (defaults, tests) passes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

PERCENT_HINT = "write a percentage such as 1%"

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_PERCENT = re.compile(rf"\s*({_NUMBER})\s*%\s*")
_BARE = re.compile(rf"\s*{_NUMBER}\s*")


class UnitDoc:
    """Annotated metadata: how to describe the expected value in an error message."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"UnitDoc({self.text!r})"


def _error(kind: str, message: str, hint: str) -> PydanticCustomError:
    # `hint` travels in the error's context; the validator turns it into the `hint:` line.
    return PydanticCustomError(kind, message, {"hint": hint})


def parse_percent(value: Any) -> Decimal:
    """``"1%"`` -> ``Decimal("0.01")``; raises PydanticCustomError otherwise."""
    if isinstance(value, Decimal) and value.is_finite():
        return value
    if isinstance(value, str):
        match = _PERCENT.fullmatch(value)
        if match:
            return Decimal(match.group(1)).scaleb(-2)  # exact: only moves the decimal point
        if _BARE.fullmatch(value):
            raise _error("percent_unit", "a percentage needs a % sign", PERCENT_HINT)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        raise _error("percent_unit", "a percentage needs a % sign", PERCENT_HINT)
    raise _error("percent_type", "expected a percentage", PERCENT_HINT)


def parse_positive_percent(value: Any) -> Decimal:
    fraction = parse_percent(value)
    if fraction <= 0:
        raise _error("percent_positive", "must be greater than 0%", PERCENT_HINT + " (more than 0%)")
    return fraction


def parse_non_negative_percent(value: Any) -> Decimal:
    fraction = parse_percent(value)
    if fraction < 0:
        raise _error("percent_non_negative", "must be 0% or more", PERCENT_HINT + " (0% or more)")
    return fraction


def percent_text(value: Decimal) -> str:
    return f"{value.scaleb(2).normalize():f}%"


#: In milliseconds per unit, so every multiplier is an exact integer.
_UNITS_MS = {"ms": Decimal(1), "s": Decimal(1000), "m": Decimal(60_000), "h": Decimal(3_600_000), "d": Decimal(86_400_000)}
UNITS_TEXT = "ms (milliseconds), s (seconds), m (minutes), h (hours), d (days)"
DURATION_HINT = "write a duration such as 500ms, 2s, 1.5m, 1h or 1h30m; a bare number means seconds"
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-zµ]+)\s*")


def parse_duration(value: Any) -> dt.timedelta:
    """``"1.5s"`` -> ``timedelta(seconds=1.5)``; bare numbers are seconds; never negative."""
    if isinstance(value, dt.timedelta):
        if value < dt.timedelta(0):
            raise _error("duration_negative", "a duration cannot be negative", DURATION_HINT)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise _error("duration_type", "expected a duration", DURATION_HINT)
    if isinstance(value, str):
        negative, total_ms = _duration_ms(value.strip())
    else:  # a bare number: seconds
        seconds = Decimal(str(value))
        if not seconds.is_finite():
            raise _error("duration_type", "expected a duration", DURATION_HINT)
        negative, total_ms = seconds < 0, abs(seconds) * 1000
    if negative and total_ms != 0:
        raise _error("duration_negative", "a duration cannot be negative", DURATION_HINT)
    micros = int((total_ms * 1000).to_integral_value(ROUND_HALF_EVEN))
    try:
        return dt.timedelta(microseconds=micros)
    except OverflowError:
        raise _error("duration_range", "the duration is too long", DURATION_HINT) from None


def _duration_ms(text: str) -> tuple[bool, Decimal]:
    negative = text.startswith("-")
    body = text[1:].strip() if text[:1] in ("+", "-") else text
    if _BARE.fullmatch(body):
        return negative, Decimal(body) * 1000
    parts = _PART.findall(body)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != re.sub(r"\s+", "", body):
        raise _error("duration_type", "expected a duration", DURATION_HINT)
    for _, unit in parts:
        if unit not in _UNITS_MS:
            raise _error("duration_unit", f"unknown duration unit {unit!r}; the units are {UNITS_TEXT}", DURATION_HINT)
    return negative, sum((Decimal(n) * _UNITS_MS[u] for n, u in parts), Decimal(0))


def duration_text(value: dt.timedelta) -> str:
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    return f"{Decimal(micros).scaleb(-6).normalize():f}s"


_PERCENT_SCHEMA = {"type": "string", "pattern": r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*%\s*$", "examples": ["1%", "0.25%"]}

Percent = Annotated[
    Decimal,
    PlainValidator(parse_percent),
    PlainSerializer(percent_text, when_used="json"),
    WithJsonSchema(_PERCENT_SCHEMA),
    UnitDoc("a percentage such as 1%"),
]
"""A percentage written with ``%``, as a ``Decimal`` fraction: ``"1%"`` -> ``Decimal("0.01")``."""

PositivePercent = Annotated[
    Decimal,
    PlainValidator(parse_positive_percent),
    PlainSerializer(percent_text, when_used="json"),
    WithJsonSchema(_PERCENT_SCHEMA),
    UnitDoc("a percentage greater than 0%, such as 1%"),
]
"""Like :data:`Percent`, and greater than 0%."""

NonNegativePercent = Annotated[
    Decimal,
    PlainValidator(parse_non_negative_percent),
    PlainSerializer(percent_text, when_used="json"),
    WithJsonSchema(_PERCENT_SCHEMA),
    UnitDoc("a percentage of 0% or more, such as 0.25%"),
]
"""Like :data:`Percent`, and 0% or more."""

Duration = Annotated[
    dt.timedelta,
    PlainValidator(parse_duration),
    PlainSerializer(duration_text, when_used="json"),
    WithJsonSchema({"type": ["string", "number"], "examples": ["500ms", "2s", "1h"]}),
    UnitDoc("a duration such as 2s, 500ms or 1h"),
]
"""A non-negative ``timedelta``: ``"500ms"``, ``"2s"``, ``"1.5m"``, ``"1h"``, ``"1h30m"``, or seconds."""


class FileNameMarker:
    """Marks a text field as the name of a file the plugin reads: a relative one is resolved
    against the folder of the config file that wrote it (or of the file that wrote its section,
    for a default), so a config that ``extends:`` one in another folder still finds that one's
    files. Validation then checks that the file exists, reporting a missing one at the config
    line that names it, and calls ``check(path)`` (if given) on it: a plugin's quick look at the
    file (its header, say) that raises :class:`bothost.errors.InputError` when it cannot be used,
    so that a bad file is found before a run starts."""

    def __init__(self, check: Callable[[Path], None] | None = None):
        self.check = check

    def __repr__(self) -> str:
        return f"FileNameMarker(check={self.check!r})"


def checked_path(check: Callable[[Path], None], doc: str = "a file name, relative to the config file that names it"):
    """A :data:`ConfigPath` whose file ``check(path)`` looks at during validation."""
    return Annotated[str, FileNameMarker(check), UnitDoc(doc)]


ConfigPath = Annotated[str, FileNameMarker(), UnitDoc("a file name, relative to the config file that names it")]
"""A file named in a config, which must exist; after validation it is an absolute path (``--set``
ones: from the current folder)."""
