"""Fault injection for the Alpaca simulator: what can go wrong between a bot and Alpaca's data service.

A fault is written ``KIND[@WHEN][,KEY=VALUE]...`` (``--fault``, repeatable; ``SimAlpaca(faults=...)``;
``sim.add_fault(spec)``), like the TWS simulator's. Ticks are counted from 0 at the first tick of
the data file. ``WHEN`` is ``tick=N``, ``time=ISO`` (the first tick at or after that data time;
naive = New York), ``next`` or ``all``; ``count=K`` repeats a fault K times.

Stream, connections:

=============================  ===========================================================
``drop@tick=N``                before tick N every stream connection is cut (TCP closed, no
                               close frame). ``sim.drop_connections()`` now.
``stall@tick=N[,seconds=S]``   before tick N every stream connection goes mute: connected,
                               pings answered, no message sent; what it would have got is
                               held and sent when the stall ends after S seconds (wall), or
                               lost if the connection closes first. No ``seconds``: until it
                               closes. ``sim.stall(seconds)`` now.
=============================  ===========================================================

Stream, authentication (answered to the client's ``auth``, then the connection is closed):

=============================  ===========================================================
``402@next`` / ``@all``        ``[{"T":"error","code":402,"msg":"auth failed"}]``
``406@next`` / ``@all``        ``... 406 "connection limit exceeded"``
``409@next`` / ``@all``        ``... 409 "insufficient subscription"``
``402@tick=N[,count=K]``       before tick N every connection is cut and the next K (default
                               1) authentications fail so (also ``406``, ``409``)
``409@all,feed=sip``           only connections to that feed's path (``/v2/sip``)
=============================  ===========================================================

Stream, data (each adds to tick N's trade, which is always sent too, so a lockstep
rehearsal never waits for a tick a client threw away):

=============================  ===========================================================
``malformed@tick=N``           a frame that is not msgpack (JSON mode: not JSON) before the tick
``nan@tick=N``                 a trade with price NaN (its own id, the tick's time) before it
``duplicate@tick=N``           the tick's trade is sent twice (same id, same time)
``...@next``, ``@all``         the next tick / every tick (``count=K``: K ticks; also
                               ``tick=N,count=K``: ticks N to N+K-1)
=============================  ===========================================================

Historical REST (each answers a request instead of the data):

=============================  ===========================================================
``http401@next`` / ``@all``    401 ``{"code":40110000,"message":"unauthorized."}``
``http403@next``               403 ``{"code":40310000,"message":"forbidden: ..."}``
``http422@next``               422 ``{"code":42210000,"message":"..."}``
``http429@next[,count=K]``     429 ``{"code":42910000,"message":"too many requests."}``
                               (alpaca-py retries 429 three times, 3 s apart, then raises)
``http500@next``               500 ``{"code":50010000,"message":"internal server error"}``
=============================  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bothost_plugins.sim_tws.faults import FaultSyntaxError, _duration_s, _int, _time_ns

CONNECTION = {"drop", "stall"}
AUTH = {"402", "406", "409"}
DATA = {"malformed", "nan", "duplicate"}
HTTP = {"http401", "http403", "http422", "http429", "http500"}
KINDS = CONNECTION | AUTH | DATA | HTTP

AUTH_MESSAGES = {402: "auth failed", 406: "connection limit exceeded", 409: "insufficient subscription"}

__all__ = ["AlpacaFault", "FaultSyntaxError", "KINDS", "parse_fault", "parse_faults"]


@dataclass
class AlpacaFault:
    kind: str
    tick: int | None = None  # before / at this tick index
    time_ns: int | None = None  # ... the first tick at or after this data time
    next: bool = False
    all: bool = False
    count: int | None = None  # times left (None: unlimited)
    seconds: float | None = None  # stall: how long (wall clock)
    feed: str | None = None  # auth faults: only this feed's path
    fired: bool = False  # a scheduled fault has happened
    armed: int = 0  # auth faults fired at a tick: authentications left to refuse
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.text or self.kind

    @property
    def code(self) -> int:
        return int(self.kind[4:] if self.kind.startswith("http") else self.kind)

    @property
    def scheduled(self) -> bool:
        return self.tick is not None or self.time_ns is not None

    def due(self, idx: int, t: int) -> bool:
        """A scheduled fault whose tick has come (once)."""
        if self.fired or not self.scheduled:
            return False
        return (self.tick is not None and idx >= self.tick) or (self.time_ns is not None and t >= self.time_ns)

    def live(self) -> bool:
        """An ``@next``/``@all`` fault that still applies."""
        return (self.next or self.all) and (self.count is None or self.count > 0)

    def use(self) -> None:
        if self.count is not None:
            self.count -= 1


def parse_fault(spec: str) -> AlpacaFault:
    """Parse one fault spec. Raises :class:`FaultSyntaxError` (a ValueError) saying what is wrong."""
    text = spec.strip()
    if not text:
        raise FaultSyntaxError("empty fault")
    kind, _, rest = text.partition("@")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise FaultSyntaxError(f"unknown Alpaca fault {kind!r}; known: {', '.join(sorted(KINDS))}")
    f = AlpacaFault(kind, text=text)
    for part in [p.strip() for p in rest.split(",") if p.strip()] if rest else []:
        if part in ("next", "all"):
            setattr(f, part, True)
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise FaultSyntaxError(f"{text!r}: expected KEY=VALUE, 'next' or 'all', got {part!r}")
        key, value = key.strip(), value.strip()
        if key == "tick":
            f.tick = _int("tick", value)
        elif key == "time":
            f.time_ns = _time_ns(value)
        elif key == "count":
            f.count = _int("count", value, 1)
        elif key == "seconds":
            f.seconds = _duration_s(value)
        elif key == "feed":
            if value not in ("iex", "sip", "test", "delayed_sip", "boats", "overnight", "otc"):
                raise FaultSyntaxError(f"{text!r}: feed= is iex, sip or test, got {value!r}")
            f.feed = value
        else:
            raise FaultSyntaxError(f"{text!r}: unknown option {key!r}")
    _check(f)
    return f


def _check(f: AlpacaFault) -> None:
    t = f.text
    when = sum((f.tick is not None, f.time_ns is not None, f.next, f.all))
    if f.kind in CONNECTION:
        if f.tick is None and f.time_ns is None or when != 1:
            raise FaultSyntaxError(f"{t!r}: say when, with exactly one of tick=N, time=ISO")
    elif when != 1:
        raise FaultSyntaxError(f"{t!r}: say when, with exactly one of tick=N, time=ISO, next, all")
    if f.seconds is not None and f.kind != "stall":
        raise FaultSyntaxError(f"{t!r}: seconds= is only for stall")
    if f.feed is not None and f.kind not in AUTH:
        raise FaultSyntaxError(f"{t!r}: feed= is only for 402, 406, 409")
    if f.kind in HTTP and f.scheduled:
        raise FaultSyntaxError(f"{t!r}: REST faults take next or all (count=K), not a tick")
    if f.next and f.count is None:
        f.count = 1


def parse_faults(specs) -> list[AlpacaFault]:
    return [s if isinstance(s, AlpacaFault) else parse_fault(s) for s in specs]
