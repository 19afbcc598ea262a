"""``bothost sim-tws``: run the TWS simulator from the command line.

``sim_tws_command`` is a click command (mounted by the host as ``bothost sim-tws``); ``main()``
runs it standalone (``python -m bothost_plugins.sim_tws.cli``).

Exit statuses: 0 done (``--exit-when-idle``), 2 bad input (one line, no traceback: missing or
unreadable data file, bad fault or seed syntax, non-loopback host, port in use), 130 interrupted
(SIGINT/SIGTERM) after a clean shutdown with the state committed.
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


def _kv(spec: str, what: str) -> dict[str, str]:
    out = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise ValueError(f"{what} {spec!r}: expected KEY=VALUE, got {part!r}")
        out[key.strip().lower()] = value.strip()
    return out


def parse_seed_order(spec: str) -> dict:
    """``side=SELL,qty=120,limit=51.50[,client=7][,id=N][,ref=TAG][,type=LIT,aux=P][,tif=GTC]``"""
    kv = _kv(spec, "--seed-order")
    unknown = set(kv) - {"side", "qty", "limit", "client", "id", "ref", "type", "aux", "tif"}
    if unknown:
        raise ValueError(f"--seed-order {spec!r}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        side = kv["side"].upper()
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side must be BUY or SELL, got {kv['side']!r}")
        out = dict(side=side, quantity=int(kv["qty"]), limit=Decimal(kv["limit"]),
                   client_id=int(kv.get("client", "7")), ref=kv.get("ref", ""),
                   order_type=kv.get("type", "LMT").upper(), tif=kv.get("tif", "GTC").upper())
        if "id" in kv:
            out["order_id"] = int(kv["id"])
        if "aux" in kv:
            out["aux"] = Decimal(kv["aux"])
    except KeyError as exc:
        raise ValueError(f"--seed-order {spec!r}: missing {exc.args[0]}=") from None
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"--seed-order {spec!r}: {exc}") from None
    return out


def parse_seed_position(spec: str) -> dict:
    """``sec=OPT,symbol=TQQQ,expiry=20250117,strike=50,right=C,qty=2,cost=310[,multiplier=100]``"""
    kv = _kv(spec, "--seed-position")
    unknown = set(kv) - {"sec", "symbol", "expiry", "strike", "right", "qty", "cost", "multiplier"}
    if unknown:
        raise ValueError(f"--seed-position {spec!r}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        return dict(sec_type=kv.get("sec", "OPT").upper(), symbol=kv.get("symbol", "TQQQ").upper(),
                    expiry=kv.get("expiry", ""), strike=float(kv.get("strike", "0")),
                    right=kv.get("right", "").upper(), quantity=Decimal(kv["qty"]),
                    avg_cost=Decimal(kv.get("cost", "0")), multiplier=kv.get("multiplier", "100"))
    except KeyError as exc:
        raise ValueError(f"--seed-position {spec!r}: missing {exc.args[0]}=") from None
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"--seed-position {spec!r}: {exc}") from None


@click.command("sim-tws", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data", required=True, type=click.Path(path_type=Path),
              help="replay data file (CSV/Parquet bars, ticks or quotes), replayed as `bothost backtest` does")
@click.option("--port", default=7497, show_default=True, type=int, help="TCP port (0: any free port)")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind (loopback only by default)")
@click.option("--allow-remote", is_flag=True, help="allow a non-loopback --host (anyone who connects can trade)")
@click.option("--pace", default="lockstep", show_default=True, help="lockstep, realtime or xSPEED (e.g. x10)")
@click.option("--state", "state", default=Path("state/sim-tws"), show_default=True, type=click.Path(path_type=Path),
              help="state folder: venue.sqlite with orders, executions and IB identities (kept across restarts)")
@click.option("--symbol", default="TQQQ", show_default=True)
@click.option("--account", default="DU1234567", show_default=True, help="the paper account code")
@click.option("--fault", "faults", multiple=True, help="fault to inject, e.g. drop@tick=500 (see docs/sim-tws.md)")
@click.option("--master-client-id", type=int, default=None, help="client id that sees every client's orders")
@click.option("--partial", "partial", type=click.IntRange(min=1), default=None,
              help="fill at most N shares of an order per tick")
@click.option("--cash", default="1000000", show_default=True, help="starting cash, dollars")
@click.option("--exec-days", type=click.IntRange(min=1), default=None,
              help="reqExecutions reaches back N data days (default: all)")
@click.option("--seed-order", "seed_orders", multiple=True,
              help="foreign order, once, into a fresh state: side=SELL,qty=120,limit=51.50,client=7[,ref=..]")
@click.option("--seed-position", "seed_positions", multiple=True,
              help="non-stock position, once, into a fresh state: sec=OPT,symbol=TQQQ,expiry=20250117,"
                   "strike=50,right=C,qty=2,cost=310")
@click.option("--exit-when-idle", type=float, default=None,
              help="after the data has ended, exit (status 0) once no client has been connected for this many seconds")
@click.option("--progress/--no-progress", default=True, show_default=True, help="a progress line now and then")
@click.option("-v", "--verbose", is_flag=True, help="log every connection and request to stderr")
def sim_tws_command(data, port, host, allow_remote, pace, state, symbol, account, faults, master_client_id, partial,
                    cash, exec_days, seed_orders, seed_positions, exit_when_idle, progress, verbose):
    """A TWS-protocol simulator: ib_insync / ib_async clients trade against the simulated venue
    on replayed data (server version 176, loopback only)."""
    import asyncio
    import logging

    from bothost.errors import InputError

    from .exchange import parse_pace
    from .faults import FaultSyntaxError, parse_fault
    from .server import SimTws, check_host

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        check_host(host, allow_remote)
        parse_pace(pace)
        fault_list = [parse_fault(f) for f in faults]
        cash_d = Decimal(cash)
        orders = [parse_seed_order(s) for s in seed_orders]
        positions = [parse_seed_position(s) for s in seed_positions]
    except (FaultSyntaxError, ValueError, InvalidOperation) as exc:
        _bad(str(exc) or f"bad value {cash!r} for --cash")
    if not data.exists():
        _bad(f"{data}: no such data file")
    if not 0 <= port <= 65535:
        _bad(f"--port {port} is not a TCP port")

    def say(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    status = asyncio.run(_serve(SimTws, InputError, data=data, port=port, host=host, allow_remote=allow_remote,
                                pace=pace, state=state, symbol=symbol, account=account, faults=fault_list,
                                master_client_id=master_client_id, partial=partial, cash=cash_d,
                                exec_days=exec_days, orders=orders, positions=positions,
                                exit_when_idle=exit_when_idle, say=say if progress else None, announce=say))
    sys.exit(status)


async def _serve(SimTws, InputError, *, data, port, host, allow_remote, pace, state, symbol, account, faults,
                 master_client_id, partial, cash, exec_days, orders, positions, exit_when_idle, say, announce) -> int:
    import asyncio
    import signal

    sim = SimTws(data, state, pace=pace, host=host, port=port, symbol=symbol, account=account, faults=faults,
                 master_client_id=master_client_id, partial_fill_shares=partial, cash=cash, exec_days=exec_days,
                 allow_remote=allow_remote, on_progress=say)
    try:
        await sim.start()
    except InputError as exc:
        _bad(str(exc))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            _bad(f"cannot listen on {host}:{port}: {exc.strerror} (another TWS or simulator on that port?)")
        _bad(f"cannot listen on {host}:{port}: {exc}")
    ex = sim.exchange
    fresh = not ex.orders and not ex.positions_seeded and not ex.execs
    if fresh:
        for o in orders:
            sim.seed_order(**{**o, "limit": o["limit"]})
        for p in positions:
            sim.seed_position(**p)
    elif orders or positions:
        announce("sim-tws: state folder is not fresh: --seed-order/--seed-position ignored")
    total = f"{ex.ticks_total:,} ticks" if ex.ticks_total else "ticks counted as read"
    announce(f"sim-tws listening on {host}:{sim.port} (pace {pace}, data {data}, {total})")
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
            if sim.sessions:
                idle_since = None
            else:
                idle_since = idle_since or loop.time()
                if loop.time() - idle_since >= exit_when_idle:
                    break
    await sim.stop()
    announce("sim-tws: stopped, state committed" + (" (interrupted)" if interrupted else ""))
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


def main(argv=None) -> None:
    sim_tws_command.main(args=argv, prog_name="sim-tws")


if __name__ == "__main__":  # pragma: no cover
    main()
