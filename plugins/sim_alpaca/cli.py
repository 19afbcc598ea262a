"""``bothost sim-alpaca`` (the Alpaca simulator alone) and ``bothost sim`` (TWS and Alpaca on one replay).

Both are click commands the host mounts lazily (``host/cli.py``, ``_Commands.LAZY``); ``main()`` /
``main_sim()`` run them standalone (``python -m bothost_plugins.sim_alpaca.cli [sim] ...``).

Exit statuses: 0 done (``--exit-when-idle``), 2 bad input (one ``error:`` line: missing data file,
bad pace or fault, a non-loopback host, a port in use), 130 interrupted (SIGINT/SIGTERM) after a
clean shutdown (the combined simulator's state committed).
"""

from __future__ import annotations

import errno
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130


def _bad(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _keys(specs) -> dict[str, str] | None:
    if not specs:
        return None
    out = {}
    for spec in specs:
        key, sep, secret = spec.partition(":")
        if not sep or not key or not secret:
            raise ValueError(f"--key {spec!r}: write KEY:SECRET")
        out[key] = secret
    return out


def _logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not verbose:
        logging.getLogger("bothost.sim_alpaca.websockets").setLevel(logging.WARNING)


def _listen_error(host: str, port: int, exc: OSError, what: str) -> None:
    if exc.errno in (errno.EADDRINUSE, errno.EACCES):
        _bad(f"cannot listen on {host}:{port}: {exc.strerror} (another {what} on that port?)")
    _bad(f"cannot listen on {host}:{port}: {exc}")


async def _until_stopped(sim, exit_when_idle, idle) -> bool:
    """Serve until SIGINT/SIGTERM (True) or, with exit_when_idle, until idle that long (False)."""
    import asyncio
    import signal

    stop = asyncio.Event()
    interrupted = False
    loop = asyncio.get_running_loop()

    def on_signal():
        nonlocal interrupted
        interrupted = True
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on this platform
            pass
    idle_since = None
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 0.25)
        except asyncio.TimeoutError:
            pass
        if exit_when_idle is not None and sim.finished:
            if not idle():
                idle_since = None
            else:
                idle_since = idle_since or loop.time()
                if loop.time() - idle_since >= exit_when_idle:
                    break
    return interrupted


# ============================================================================ bothost sim-alpaca
@click.command("sim-alpaca", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data", required=True, type=click.Path(path_type=Path),
              help="replay data file (CSV/Parquet bars, ticks or quotes): the backtest's ticks, as trades")
@click.option("--port", default=8765, show_default=True, type=int, help="TCP port (0: any free port)")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind (loopback only by default)")
@click.option("--allow-remote", is_flag=True, help="allow a non-loopback --host")
@click.option("--pace", default="realtime", show_default=True,
              help="realtime, xSPEED (e.g. x10) or asap (as fast as the clients read); lockstep: `bothost sim`")
@click.option("--symbol", default="TQQQ", show_default=True)
@click.option("--fault", "faults", multiple=True,
              help="fault to inject, e.g. drop@tick=500, stall@tick=100,seconds=20, 402@next, http429@next "
                   "(see docs/sim-alpaca.md)")
@click.option("--key", "keys", multiple=True, metavar="KEY:SECRET",
              help="accept only these key pairs (repeatable; default: any)")
@click.option("--connection-limit", type=click.IntRange(min=1), default=None,
              help="authenticated stream connections per key and feed (Alpaca's: 1; default: no limit)")
@click.option("--page-size", type=click.IntRange(1, 10_000), default=10_000, show_default=True,
              help="REST bars per page at most")
@click.option("--exit-when-idle", type=float, default=None,
              help="after the data has ended, exit (status 0) once no stream client has been connected this long")
@click.option("--progress/--no-progress", default=True, show_default=True, help="a progress line now and then")
@click.option("-v", "--verbose", is_flag=True, help="log every connection and request to stderr")
def sim_alpaca_command(data, port, host, allow_remote, pace, symbol, faults, keys, connection_limit, page_size,
                       exit_when_idle, progress, verbose):
    """Alpaca's market data service on replayed data: the stock stream (ws://HOST:PORT/v2/iex, /v2/sip,
    /v2/test; msgpack or JSON) and historical bars (http://HOST:PORT/v2/stocks/bars), as the real
    alpaca-py clients use them (loopback only)."""
    import asyncio

    from bothost.errors import InputError
    from bothost_plugins.sim_tws.server import check_host

    from .faults import FaultSyntaxError, parse_fault
    from .server import LOCKSTEP, SimAlpaca, parse_pace

    _logging(verbose)
    try:
        check_host(host, allow_remote)
        mode, _ = parse_pace(pace)
        if mode == LOCKSTEP:
            raise ValueError("--pace lockstep needs the TWS side to pace it (alpaca-py's stream cannot ack): "
                             "run `bothost sim --data FILE --tws-port P --alpaca-port Q --pace lockstep`")
        fault_list = [parse_fault(f) for f in faults]
        key_map = _keys(keys)
    except (FaultSyntaxError, ValueError) as exc:
        _bad(str(exc))
    if not data.exists():
        _bad(f"{data}: no such data file")
    if not 0 <= port <= 65535:
        _bad(f"--port {port} is not a TCP port")

    def say(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    async def serve() -> int:
        sim = SimAlpaca(data, pace=pace, host=host, port=port, symbol=symbol, faults=fault_list, keys=key_map,
                        connection_limit=connection_limit, page_size=page_size, allow_remote=allow_remote,
                        on_progress=say if progress else None)
        try:
            await sim.start()
        except InputError as exc:
            _bad(str(exc))
        except OSError as exc:
            _listen_error(host, port, exc, "simulator")
        total = f"{sim.ticks_total:,} ticks" if sim.ticks_total else "ticks counted as read"
        say(f"sim-alpaca listening on http://{host}:{sim.port} (stream ws://{host}:{sim.port}/v2/iex; "
            f"pace {pace}, data {data}, {total})")
        interrupted = await _until_stopped(sim, exit_when_idle, lambda: not sim.conns)
        await sim.stop()
        say("sim-alpaca: stopped" + (" (interrupted)" if interrupted else ""))
        return EXIT_INTERRUPTED if interrupted else EXIT_OK

    sys.exit(asyncio.run(serve()))


# ============================================================================ bothost sim
@click.command("sim", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data", required=True, type=click.Path(path_type=Path),
              help="replay data file (CSV/Parquet bars, ticks or quotes), replayed as `bothost backtest` does")
@click.option("--tws-port", default=7497, show_default=True, type=int, help="the TWS protocol's port (0: any)")
@click.option("--alpaca-port", default=8765, show_default=True, type=int,
              help="the Alpaca data service's port: stream and REST (0: any)")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind (loopback only by default)")
@click.option("--allow-remote", is_flag=True, help="allow a non-loopback --host (anyone who connects can trade)")
@click.option("--pace", default="lockstep", show_default=True, help="lockstep, realtime or xSPEED (e.g. x10)")
@click.option("--state", "state", default=Path("state/sim"), show_default=True, type=click.Path(path_type=Path),
              help="state folder: venue.sqlite with orders, executions and IB identities (kept across restarts)")
@click.option("--symbol", default="TQQQ", show_default=True)
@click.option("--account", default="DU1234567", show_default=True, help="the paper account code")
@click.option("--fault", "faults", multiple=True,
              help="fault to inject: sim-tws's (drop@tick=500, restart@tick=700, 1100@tick=300, reject201@next...) "
                   "or the Alpaca stream's (alpaca:drop@tick=500, stall@tick=100,seconds=5, 402@tick=N, nan@all, "
                   "http429@next...)")
@click.option("--master-client-id", type=int, default=None, help="client id that sees every client's orders")
@click.option("--partial", "partial", type=click.IntRange(min=1), default=None,
              help="fill at most N shares of an order per tick")
@click.option("--cash", default="1000000", show_default=True, help="starting cash, dollars")
@click.option("--exec-days", type=click.IntRange(min=1), default=None,
              help="reqExecutions reaches back N data days (default: all)")
@click.option("--key", "keys", multiple=True, metavar="KEY:SECRET",
              help="Alpaca: accept only these key pairs (repeatable; default: any)")
@click.option("--connection-limit", type=click.IntRange(min=1), default=None,
              help="Alpaca: authenticated stream connections per key and feed (default: no limit)")
@click.option("--rest-all", is_flag=True,
              help="Alpaca REST serves the whole file (default: only bars complete at the replay's clock)")
@click.option("--exit-when-idle", type=float, default=None,
              help="after the data has ended, exit (status 0) once no client has been connected this long")
@click.option("--progress/--no-progress", default=True, show_default=True, help="a progress line now and then")
@click.option("-v", "--verbose", is_flag=True, help="log every connection and request to stderr")
def sim_command(data, tws_port, alpaca_port, host, allow_remote, pace, state, symbol, account, faults,
                master_client_id, partial, cash, exec_days, keys, connection_limit, rest_all, exit_when_idle,
                progress, verbose):
    """The dress rehearsal for an IB + Alpaca bot: a TWS-protocol simulator and Alpaca's market data
    service on one replay of FILE. The venue matches on exactly the ticks the Alpaca stream sends;
    in lockstep each tick waits for the bot's acks over TWS (loopback only)."""
    import asyncio

    from bothost.errors import InputError
    from bothost_plugins.sim_tws.exchange import parse_pace
    from bothost_plugins.sim_tws.faults import FaultSyntaxError
    from bothost_plugins.sim_tws.server import check_host

    from .combined import CombinedSim, split_faults

    _logging(verbose)
    try:
        check_host(host, allow_remote)
        parse_pace(pace)
        split_faults(faults)
        cash_d = Decimal(cash)
        key_map = _keys(keys)
    except (FaultSyntaxError, ValueError, InvalidOperation) as exc:
        _bad(str(exc) or f"bad value {cash!r} for --cash")
    if not data.exists():
        _bad(f"{data}: no such data file")
    for name, p in (("--tws-port", tws_port), ("--alpaca-port", alpaca_port)):
        if not 0 <= p <= 65535:
            _bad(f"{name} {p} is not a TCP port")
    if tws_port and tws_port == alpaca_port:
        _bad("--tws-port and --alpaca-port must differ")

    def say(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    async def serve() -> int:
        sim = CombinedSim(data, state, pace=pace, host=host, tws_port=tws_port, alpaca_port=alpaca_port,
                          symbol=symbol, faults=faults, keys=key_map, connection_limit=connection_limit,
                          rest_clock=not rest_all, allow_remote=allow_remote, account=account,
                          master_client_id=master_client_id, partial_fill_shares=partial, cash=cash_d,
                          exec_days=exec_days, on_progress=say if progress else None)
        try:
            await sim.start()
        except InputError as exc:
            _bad(str(exc))
        except OSError as exc:
            door = getattr(exc, "door", "tws")
            _listen_error(host, tws_port if door == "tws" else alpaca_port, exc,
                          "TWS or simulator" if door == "tws" else "simulator")
        total = f"{sim.ticks_total:,} ticks" if sim.ticks_total else "ticks counted as read"
        say(f"sim listening: TWS {host}:{sim.tws_port}, Alpaca http://{host}:{sim.alpaca_port} "
            f"(pace {pace}, data {data}, {total})")
        interrupted = await _until_stopped(sim, exit_when_idle, lambda: not sim.tws.sessions and not sim.alpaca.conns)
        await sim.stop()
        say("sim: stopped, state committed" + (" (interrupted)" if interrupted else ""))
        return EXIT_INTERRUPTED if interrupted else EXIT_OK

    sys.exit(asyncio.run(serve()))


def main(argv=None) -> None:
    """``python -m bothost_plugins.sim_alpaca.cli [sim] ARGS``: the sim-alpaca command, or ``sim``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "sim":
        sim_command.main(args=args[1:], prog_name="sim")
    else:
        sim_alpaca_command.main(args=args, prog_name="sim-alpaca")


if __name__ == "__main__":  # pragma: no cover
    main()
