"""The combined simulator (``bothost sim``): one replay clock, two front doors.

The TWS simulator's venue (``sim_tws``: orders, executions, the lockstep extension) and the Alpaca
stream and REST (``sim_alpaca``) in one process, on one event loop, replaying one data file: the
venue matches on exactly the ticks the Alpaca stream sends. The bot is ``bothost run
configs/tqqq.yaml`` with ``IB_PORT`` at the TWS port and ``ALPACA_DATA_URL`` at the Alpaca one.

Lockstep, per tick k:

1. the venue's fills for tick k go out over TWS one at a time, each awaited (``exec`` ack);
2. tick k goes out as an Alpaca trade (``i`` = k + 1, ``t`` exact ns) to every subscriber of the
   symbol's trades (and as a quote to quote subscribers);
3. the replay waits for a ``tick`` ack with a key >= tick k's time_ns (exactly: the Alpaca trade
   carries the ns) from every pacer: a TWS client that sent HELLO, while at least one Alpaca
   client subscribes to the symbol. With none, the replay pauses (nothing happens while the bot
   is down).

Reconnects follow docs/sim-tws.md, plus: an Alpaca client that (re)subscribes while tick k's ack is
outstanding gets tick k again, unless every waited pacer sent an order message after tick k went
out (then it handled it). See docs/sim-alpaca.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bothost_plugins.sim_tws.faults import Fault, FaultSyntaxError
from bothost_plugins.sim_tws.faults import parse_fault as parse_tws_fault
from bothost_plugins.sim_tws.server import SimTws

from .faults import AlpacaFault
from .faults import KINDS as ALPACA_KINDS
from .faults import parse_fault as parse_alpaca_fault
from .server import SimAlpaca

log = logging.getLogger("bothost.sim_alpaca")

ALPACA_PREFIXES = ("alpaca:", "alpaca-")


def split_faults(specs) -> tuple[list[Fault], list[AlpacaFault]]:
    """Fault specs for both doors: ``alpaca:KIND...`` (or ``alpaca-KIND...``) and the kinds only the
    Alpaca side has (``stall``, ``402``, ``nan``, ``http429``...) are the Alpaca stream's; the rest
    (``drop``, ``restart``, ``1100``, ``reject201``...) the TWS simulator's. Raises FaultSyntaxError."""
    tws, alpaca = [], []
    for spec in specs:
        if isinstance(spec, Fault):
            tws.append(spec)
            continue
        if isinstance(spec, AlpacaFault):
            alpaca.append(spec)
            continue
        text = spec.strip()
        low = text.lower()
        for prefix in ALPACA_PREFIXES:
            if low.startswith(prefix):
                alpaca.append(parse_alpaca_fault(text[len(prefix):]))
                break
        else:
            kind = low.partition("@")[0].strip()
            if kind in ALPACA_KINDS and kind != "drop":
                alpaca.append(parse_alpaca_fault(text))
                continue
            try:
                tws.append(parse_tws_fault(text))
            except FaultSyntaxError as exc:
                if "unknown fault" in str(exc):
                    raise FaultSyntaxError(f"{exc}; Alpaca: {', '.join(sorted(ALPACA_KINDS))} "
                                           f"(alpaca:drop@tick=N for the stream's drop)") from None
                raise
    return tws, alpaca


class _Tws(SimTws):
    """SimTws whose every exchange (also after a restart) has the Alpaca door attached."""

    def __init__(self, *args, alpaca: SimAlpaca, **kw):
        self.alpaca = alpaca
        super().__init__(*args, **kw)

    def _open_exchange(self) -> None:
        super()._open_exchange()
        self.alpaca.attach(self.exchange)

    async def restart(self) -> None:
        # the whole simulator restarts: the Alpaca connections go too
        self.alpaca.drop_connections()
        await super().restart()


class CombinedSim:
    """The TWS simulator and the Alpaca simulator on one replay (see the module docstring).

    ``CombinedSim(data, state_dir=None, *, pace="lockstep", host="127.0.0.1", tws_port=0, alpaca_port=0,
    symbol="TQQQ", faults=(), keys=None, connection_limit=None, page_size=10_000, rest_clock=True,
    **sim_tws_options)``: ``faults`` mixes both doors' specs (:func:`split_faults`);
    ``sim_tws_options`` are SimTws's (``account``, ``master_client_id``, ``partial_fill_shares``,
    ``commission``, ``cash``, ``exec_days``, ``on_progress``, ``max_gap_s``...). ``rest_clock``: the REST
    endpoint serves only bars complete at the replay's clock (no look-ahead).
    """

    def __init__(self, data: Path | str, state_dir: Path | str | None = None, *, pace: str = "lockstep",
                 host: str = "127.0.0.1", tws_port: int = 0, alpaca_port: int = 0, symbol: str = "TQQQ",
                 faults=(), keys: dict[str, str] | None = None, connection_limit: int | None = None,
                 page_size: int = 10_000, rest_clock: bool = True, auth_timeout_s: float = 10.0,
                 allow_remote: bool = False, **tws_options):
        tws_faults, alpaca_faults = split_faults(faults)
        self.data = Path(data)
        self.pace = pace
        self.alpaca = SimAlpaca(data, pace=pace, host=host, port=alpaca_port, symbol=symbol, faults=alpaca_faults,
                                keys=keys, connection_limit=connection_limit, page_size=page_size,
                                auth_timeout_s=auth_timeout_s, allow_remote=allow_remote, replay=False,
                                rest_clock=self._clock if rest_clock else None)
        self.tws = _Tws(data, state_dir, pace=pace, host=host, port=tws_port, symbol=symbol, faults=tws_faults,
                        allow_remote=allow_remote, alpaca=self.alpaca, **tws_options)

    def _clock(self) -> int:
        ex = self.tws.exchange
        if ex is None or ex.cur_t is None:
            return -1  # before the first tick: no bar is complete yet
        return ex.clock_ns()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> CombinedSim:
        """Both doors listening (an OSError says which failed in ``exc.door``: ``alpaca`` or ``tws``)."""
        try:
            await self.alpaca.start()
        except OSError as exc:
            exc.door = "alpaca"
            raise
        try:
            await self.tws.start()
        except BaseException as exc:
            await self.alpaca.stop()
            if isinstance(exc, OSError):
                exc.door = "tws"
            raise
        return self

    async def stop(self) -> None:
        try:
            await self.tws.stop()
        finally:
            await self.alpaca.stop()

    async def restart(self) -> None:
        """A simulator restart: both doors' connections closed, the venue reloaded from the state folder."""
        await self.tws.restart()

    async def __aenter__(self) -> CombinedSim:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ------------------------------------------------------------------ views
    @property
    def tws_port(self) -> int:
        return self.tws.port

    @property
    def alpaca_port(self) -> int:
        return self.alpaca.port

    @property
    def alpaca_url(self) -> str:
        """``ALPACA_DATA_URL`` for the bot (the REST base; the stream is ws:// on the same port)."""
        return self.alpaca.url

    def stream_url(self, feed: str = "iex") -> str:
        return self.alpaca.stream_url(feed)

    @property
    def exchange(self):
        return self.tws.exchange

    @property
    def tick_index(self) -> int:
        return self.tws.tick_index

    @property
    def finished(self) -> bool:
        return self.tws.finished

    @property
    def ticks_total(self) -> int | None:
        ex = self.tws.exchange
        return ex.ticks_total if ex is not None else None

    def executions(self):
        return self.tws.executions()

    async def wait_finished(self, timeout: float | None = None) -> None:
        await self.tws.wait_finished(timeout)

    # ------------------------------------------------------------------ faults and control
    def add_fault(self, spec):
        tws, alpaca = split_faults([spec])
        if tws:
            return self.tws.add_fault(tws[0])
        return self.alpaca.add_fault(alpaca[0])

    def drop_connections(self) -> None:
        """Both doors' connections cut."""
        self.tws.drop_connections()
        self.alpaca.drop_connections()

    async def advance(self, ticks: int) -> None:
        await self.tws.advance(ticks)

    def pause(self) -> None:
        self.tws.pause()

    def resume(self) -> None:
        self.tws.resume()


__all__ = ["CombinedSim", "split_faults"]
