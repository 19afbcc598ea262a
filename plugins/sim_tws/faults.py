"""Fault injection: what can go wrong between a bot and TWS, on demand.

A fault is written ``KIND[@WHEN][,KEY=VALUE]...`` on the command line (``--fault``, repeatable)
or passed to :meth:`SimTws.add_fault` as the same text or a :class:`Fault`:

========================  ==============================================================
``drop@tick=N``           close every client connection before tick N (state kept)
``1100@tick=N``           connectivity between IB and TWS lost before tick N (error 1100)
``1101@tick=N``           ... restored, market data lost (1101: subscriptions dropped)
``1102@tick=N``           ... restored, market data kept (1102)
``1101@after=2s``         restore 2 s (wall clock) after the loss instead of at a tick
``restart@tick=N``        simulator restart before tick N: connections closed, everything
                          reloaded from the state folder, listening again on the same port
``away@tick=N,ticks=M``   before tick N: close every connection and let the venue match M
                          ticks on its own, no client connected ("fills while the bot is away")
``reject201@next``        reject the next order with error 201, then status Cancelled
``reject201@ref=PATTERN`` reject every order whose orderRef matches PATTERN (``count=K``: K times)
``inactive@next``         the next order (or ``@ref=PATTERN``) becomes Inactive instead of working
``delay-acks@next``       the next order's openOrder/orderStatus ack is sent only after the next
                          tick (``@ref=PATTERN``, ``@all``)
``duplicate-exec@exec=N`` the Nth execution of the account (1-based) is reported twice
``duplicate-exec@all``    every execution is reported twice
``repeat-open-orders@next`` the next answer to reqOpenOrders/reqAllOpenOrders lists every order
                          twice, as TWS does when an order changes while the list is being sent
                          (``@all``: every answer; ``count=K``)
``partial=N``             the venue fills at most N shares of an order per tick
========================  ==============================================================

``@time=ISO`` may replace ``@tick=N`` (the first tick at or after that data time; a naive time is
New York time). Ticks are counted from 0 at the first tick of the data file, whatever the
resume point. PATTERN is a glob (``*``, ``?``, ``[..]``); without glob characters it matches the
orderRef itself or any orderRef that continues it after a ``:`` (``tqqq_grid:BUY:L3`` matches
``tqqq_grid:BUY:L3:A100.00`` but not ``tqqq_grid:BUY:L30:...``).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")

SCHEDULED = {"drop", "1100", "1101", "1102", "restart", "away"}
ORDER_FAULTS = {"reject201", "inactive", "delay-acks"}
KINDS = SCHEDULED | ORDER_FAULTS | {"duplicate-exec", "repeat-open-orders", "partial"}


class FaultSyntaxError(ValueError):
    """A fault spec that does not parse; the message says what is wrong."""


@dataclass
class Fault:
    kind: str
    tick: int | None = None  # scheduled: before this tick index
    time_ns: int | None = None  # scheduled: before the first tick at/after this time
    after_s: float | None = None  # 1101/1102: wall-clock seconds after the loss
    ref: str | None = None  # order faults: orderRef pattern
    next: bool = False  # order faults: the next order only
    all: bool = False
    count: int | None = None  # times left (None: unlimited)
    exec_n: int | None = None  # duplicate-exec: the Nth execution
    ticks: int = 0  # away: how many ticks
    shares: int = 0  # partial
    code: int = 201
    fired: bool = False
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.text or self.kind

    def matches_ref(self, ref: str) -> bool:
        if self.all or self.next:
            return True
        return ref_matches(self.ref or "", ref)

    def use(self) -> None:
        if self.count is not None:
            self.count -= 1


def ref_matches(pattern: str, ref: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(ref, pattern)
    return ref == pattern or ref.startswith(pattern + ":")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


def _duration_s(text: str) -> float:
    m = _DURATION.match(text.strip())
    if not m:
        raise FaultSyntaxError(f"bad duration {text!r} (e.g. 500ms, 2s, 1m)")
    value, unit = float(m.group(1)), m.group(2) or "s"
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value


def _time_ns(text: str) -> int:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise FaultSyntaxError(f"bad time {text!r} (ISO 8601, e.g. 2024-01-02T10:00:00)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=NEW_YORK)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def _int(key: str, text: str, minimum: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise FaultSyntaxError(f"{key}= wants an integer, got {text!r}") from None
    if value < minimum:
        raise FaultSyntaxError(f"{key}= must be >= {minimum}, got {value}")
    return value


def parse_fault(spec: str) -> Fault:
    """Parse one ``--fault`` value. Raises :class:`FaultSyntaxError`."""
    text = spec.strip()
    if not text:
        raise FaultSyntaxError("empty fault")
    if text.startswith("partial="):
        return Fault("partial", shares=_int("partial", text[8:], 1), text=text)
    kind, _, rest = text.partition("@")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise FaultSyntaxError(f"unknown fault {kind!r}; known: {', '.join(sorted(KINDS))}")
    f = Fault(kind, text=text)
    # "ref=" patterns may contain ',' only at the end; split options on ',' followed by a key
    parts = [p for p in re.split(r",(?=\s*[a-z_]+=)", rest) if p.strip()] if rest else []
    for part in parts:
        part = part.strip()
        if part in ("next", "all"):
            setattr(f, part, True)
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise FaultSyntaxError(f"{text!r}: expected KEY=VALUE, 'next' or 'all', got {part!r}")
        key = key.strip()
        if key == "tick":
            f.tick = _int("tick", value)
        elif key == "time":
            f.time_ns = _time_ns(value)
        elif key == "after":
            f.after_s = _duration_s(value)
        elif key == "ref":
            if not value:
                raise FaultSyntaxError(f"{text!r}: ref= needs a pattern")
            f.ref = value
        elif key == "count":
            f.count = _int("count", value, 1)
        elif key == "exec":
            f.exec_n = _int("exec", value, 1)
        elif key == "ticks":
            f.ticks = _int("ticks", value, 1)
        elif key == "code":
            f.code = _int("code", value, 1)
        else:
            raise FaultSyntaxError(f"{text!r}: unknown option {key!r}")
    _check(f)
    return f


def _check(f: Fault) -> None:
    t = f.text
    if f.kind in SCHEDULED:
        when = [x for x in (f.tick, f.time_ns, f.after_s) if x is not None]
        if len(when) != 1:
            raise FaultSyntaxError(f"{t!r}: say when, with exactly one of tick=N, time=ISO"
                                   + (", after=DURATION" if f.kind in ("1101", "1102") else ""))
        if f.after_s is not None and f.kind not in ("1101", "1102"):
            raise FaultSyntaxError(f"{t!r}: after= is only for 1101/1102 (restore after a loss)")
        if f.kind == "away" and not f.ticks:
            raise FaultSyntaxError(f"{t!r}: away needs ticks=M")
    elif f.kind in ORDER_FAULTS:
        chosen = sum((f.next, f.all, f.ref is not None))
        if chosen != 1:
            raise FaultSyntaxError(f"{t!r}: say which orders, with exactly one of next, all, ref=PATTERN")
        if f.next and f.count is None:
            f.count = 1
    elif f.kind == "duplicate-exec":
        if f.exec_n is None and not f.all and not f.next:
            raise FaultSyntaxError(f"{t!r}: say which execution: exec=N, next or all")
        if f.next and f.count is None:
            f.count = 1
    elif f.kind == "repeat-open-orders":
        if not f.all and not f.next:
            raise FaultSyntaxError(f"{t!r}: say which answers: next or all")
        if f.next and f.count is None:
            f.count = 1


def parse_faults(specs) -> list[Fault]:
    return [s if isinstance(s, Fault) else parse_fault(s) for s in specs]
