"""The ``--param`` grammar of ``bothost sweep`` (pure: no I/O, no config).

::

    PARAM  := PATH "=" ITEM ("," ITEM)*
    ITEM   := RANGE | VALUE
    RANGE  := NUMBER UNIT ":" NUMBER UNIT ":" NUMBER UNIT     start:stop:step, all in one unit
    VALUE  := any text without an unquoted "," or ":" (quote it, 'like:this', to keep them)

``strategies.0.profit_target=0.5%:2%:0.25%`` is 0.5%, 0.75%, ..., 2% (the stop is included when
it lands on the grid; the arithmetic is exact decimal, never float). ``buy_step=0.5%,1%,1.5%``
lists values; items mix (``1%:2%:0.5%,3%``). UNIT is what follows the number (``%``, ``s``,
``ms``, ``m``, ``h``, or nothing) and must be the same for start, stop and step. Each value is
handed to the config exactly as ``--set PATH=VALUE`` would be, so it is typed and checked there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

#: At most this many values in one --param (a typo such as a step of 0.0001% is caught, not run).
MAX_VALUES = 10_000

_NUMBER = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z%]*)\s*")
_PATH_PART = re.compile(r"[A-Za-z0-9_-]+")
RANGE_HINT = "write a range as START:STOP:STEP in one unit, for example 0.5%:2%:0.25%"
LIST_HINT = "write values as a comma-separated list, for example 0.5%,1%,1.5%"


class GrammarError(ValueError):
    """A --param that cannot be read: ``message`` and a ``hint``."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Param:
    """One swept setting: its config key path and its values, each as ``--set`` takes it."""

    path: str
    values: tuple[str, ...]
    text: str = ""  # as written on the command line

    def override(self, i: int) -> str:
        return f"{self.path}={self.values[i]}"


def fmt_decimal(d: Decimal) -> str:
    """``Decimal`` as plain text without exponent or trailing zeros: 0.750 -> 0.75, 1E+2 -> 100."""
    if d == 0:
        return "0"
    text = format(d.normalize(), "f")
    return text


def parse_param(text: str) -> Param:
    """``PATH=SPEC`` -> :class:`Param`; raises :class:`GrammarError`."""
    if "=" not in text:
        raise GrammarError("there is no '=' between the key path and the values",
                           "write --param key.path=VALUES, for example --param strategies.0.buy_step=0.5%,1%")
    path, spec = (s.strip() for s in text.split("=", 1))
    if not path:
        raise GrammarError("the key path before '=' is empty", "for example strategies.0.profit_target")
    bad = [p for p in path.split(".") if not _PATH_PART.fullmatch(p)]
    if bad:
        raise GrammarError(f"the key path {path!r} has an empty or odd component {bad[0]!r}",
                           "a key path is names and list indices joined by dots, for example strategies.0.buy_step")
    values = parse_values(spec)
    return Param(path=path, values=values, text=text)


def parse_values(spec: str) -> tuple[str, ...]:
    """The values a SPEC names, in order; raises :class:`GrammarError`."""
    if not spec.strip():
        raise GrammarError("no values after '='", LIST_HINT)
    out: list[str] = []
    seen: dict[object, str] = {}
    for item, quoted in _split(spec, ","):
        if not item.strip():
            raise GrammarError(f"an empty value in {spec!r}", LIST_HINT)
        if not quoted and ":" in item:
            values = _range(item.strip())
        else:
            values = [item.strip()]
        for v in values:
            canon = _canonical(v)
            if canon in seen:
                raise GrammarError(f"the value {v!r} is listed twice" + (f" (as {seen[canon]!r})" if seen[canon] != v else ""),
                                   "list each value once: each would be the same backtest")
            seen[canon] = v
            out.append(v)
            if len(out) > MAX_VALUES:
                raise GrammarError(f"more than {MAX_VALUES:,} values", "use a larger step or a shorter range")
    return tuple(out)


def _split(spec: str, sep: str) -> list[tuple[str, bool]]:
    """Split on ``sep`` outside quotes; each piece says whether it contains a quote."""
    pieces: list[tuple[str, bool]] = []
    current, quote, quoted = [], None, False
    for ch in spec:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote, quoted = ch, True
            current.append(ch)
        elif ch == sep:
            pieces.append(("".join(current), quoted))
            current, quoted = [], False
        else:
            current.append(ch)
    if quote:
        raise GrammarError(f"a quote is not closed in {spec!r}", "close it: 'like:this'")
    pieces.append(("".join(current), quoted))
    return pieces


def _number(text: str, what: str, item: str) -> tuple[Decimal, str]:
    match = _NUMBER.fullmatch(text)
    if not match:
        raise GrammarError(f"the {what} of the range {item!r} is not a number with a unit: {text.strip()!r}", RANGE_HINT)
    try:
        return Decimal(match.group(1)), match.group(2)
    except InvalidOperation:  # pragma: no cover - the regex admits only decimal literals
        raise GrammarError(f"the {what} of {item!r} is not a number", RANGE_HINT) from None


def _range(item: str) -> list[str]:
    parts = item.split(":")
    if len(parts) != 3:
        raise GrammarError(f"the range {item!r} has {len(parts)} parts, not 3", RANGE_HINT)
    (start, u1), (stop, u2), (step, u3) = (_number(p, w, item) for p, w in zip(parts, ("start", "stop", "step")))
    if not u1 == u2 == u3:
        raise GrammarError(f"the range {item!r} mixes units ({', '.join(repr(u or 'none') for u in (u1, u2, u3))})",
                           RANGE_HINT)
    if step <= 0:
        raise GrammarError(f"the step of the range {item!r} must be above zero", RANGE_HINT)
    if stop < start:
        raise GrammarError(f"the range {item!r} has no values: its stop is below its start",
                           "write START:STOP:STEP with START <= STOP")
    count = int((stop - start) // step) + 1
    if count > MAX_VALUES:
        raise GrammarError(f"the range {item!r} has {count:,} values, more than {MAX_VALUES:,}",
                           "use a larger step or a shorter range")
    return [fmt_decimal(start + i * step) + u1 for i in range(count)]


def _canonical(value: str) -> object:
    """What makes two values the same: ``1%`` and ``1.0%`` are; ``abc`` is only itself."""
    match = _NUMBER.fullmatch(value)
    if match:
        return ("number", Decimal(match.group(1)), match.group(2))
    return ("text", value)
