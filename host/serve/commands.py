"""``bothost serve`` and ``bothost report`` (registered lazily in ``bothost.cli``)."""

from __future__ import annotations

import contextlib
import socket
import sys
from pathlib import Path

import click

from bothost.cli import _console, _default_state_dir, guarded
from bothost.errors import InputError

#: The one address served without a token. Any other (another loopback address, a LAN
#: address, 0.0.0.0) needs --token, and every request then carries it.
NO_TOKEN_HOST = "127.0.0.1"
TOKEN_ENV = "BOTHOST_SERVE_TOKEN"


def needs_token(host: str) -> bool:
    return host != NO_TOKEN_HOST


def check_bind(host: str, token: str | None) -> None:
    if needs_token(host) and not token:
        raise InputError(f"--host {host} is not {NO_TOKEN_HOST}: the page would be open to whoever reaches it",
                         hint=f"give --token T (or set {TOKEN_ENV}); every request must then carry it "
                              "(Authorization: Bearer T, or ?token=T)")


def describer():
    """The installed plugins' reading of an order tag (a fill's level), as reports use it."""
    from bothost.plugins import load_plugins

    pm, _, _ = load_plugins()
    return lambda ref: pm.hook.describe_order_ref(ref=ref)


def state_from_config(config: Path) -> Path:
    """The state folder `bothost run CONFIG` uses: only ``state_dir`` is read from the config,
    so none of its secrets (${...} in the broker or feed sections) are needed (as `bothost status`)."""
    from types import SimpleNamespace

    from bothost.config import load

    def only_state_dir(data: dict) -> None:
        for key in [k for k in data if k != "state_dir"]:
            del data[key]

    raw = load(config, patch=only_state_dir)
    return _default_state_dir(config, SimpleNamespace(state_dir=raw.data.get("state_dir")))


def out_for_state(state: Path) -> Path:
    """Where that run's fills.csv is: ``STATE/out`` (run), or the folder above a backtest's ``OUT/state``."""
    if not (state / "out").exists() and state.name == "state" and (state.parent / "fills.csv").exists():
        return state.parent
    return state / "out"


def state_for_out(out: Path) -> Path | None:
    """A backtest keeps its state in ``OUT/state``; a run writes ``STATE/out``."""
    if (out / "state" / "status.json").exists() or (out / "state" / "bot_state.json").exists():
        return out / "state"
    if (out.parent / "status.json").exists() or (out.parent / "bot_state.json").exists():
        return out.parent
    return None


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         hint="pick another --port (0: any free one), or stop what uses it") from None
    return sock


def write_html_report(out: Path, state: Path | None) -> Path:
    from .report import write_report

    return write_report(out, state, describer())


@contextlib.contextmanager
def backtest_report(out: Path, state: Path):
    """`bothost backtest --html`: report.html once the backtest wrote its outputs, also when it
    ended with a critical stop or was interrupted (exit 3, 130); not when it never ran."""
    def write() -> None:
        if (out / "fills.csv").exists():
            _console().print(f"report: {write_html_report(out, state)}", markup=False)

    try:
        yield
    except SystemExit:
        write()
        raise
    write()


@click.command("serve")
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option("--state", type=click.Path(path_type=Path), help="state folder (default: CONFIG's, as `bothost status`)")
@click.option("--out", type=click.Path(path_type=Path), help="the run's out folder (default STATE/out)")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0: any free port")
@click.option("--host", default=NO_TOKEN_HOST, show_default=True, help=f"any address but {NO_TOKEN_HOST} needs --token")
@click.option("--token", envvar=TOKEN_ENV, metavar="T",
              help=f"every request must carry it: Authorization: Bearer T, or ?token=T (or set {TOKEN_ENV})")
@guarded
def serve_command(config: Path | None, state: Path | None, out: Path | None, port: int, host: str,
                  token: str | None) -> None:
    """A read-only web page for a running or finished bot: lots, working orders, the trigger
    ladder, P&L, fills on a price chart; it updates live as the bot writes its files."""
    import asyncio

    import uvicorn

    from .app import create_app
    from .sources import Reader, signature
    from .sse import Watcher
    from .views import page_data

    check_bind(host, token)
    if state is None:
        if config is None:
            raise click.UsageError("give CONFIG (its state folder is served) or --state DIR")
        state = state_from_config(config)
    out = out or out_for_state(state)
    reader, describe = Reader(state, out), describer()
    watcher = Watcher(lambda: signature(state, out), lambda: page_data(reader.read(), describe))
    app = create_app(watcher, f"bothost · {state}", token)
    sock = _bind(host, port)
    shown = sock.getsockname()
    where = f"[{shown[0]}]" if ":" in shown[0] else shown[0]
    url = f"http://{where}:{shown[1]}/" + (f"?token={token}" if token else "")
    if not state.exists():
        _console(stderr=True).print(f"note: {state} does not exist yet; the page fills in once a run writes it",
                                    markup=False)
    print(f"bothost serve: {url}  (state {state}; read-only; Ctrl-C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=1, ws="none"))
    asyncio.run(server.serve(sockets=[sock]))
    sys.exit(0 if server.started else 1)


@click.command("report")
@click.argument("out_dir", metavar="OUT_DIR", type=click.Path(path_type=Path))
@click.option("--state", type=click.Path(path_type=Path),
              help="the run's state folder (default OUT_DIR/state for a backtest, the folder above for a run)")
@guarded
def report_command(out_dir: Path, state: Path | None) -> None:
    """Write OUT_DIR/report.html: the status page as one self-contained file (no external reference)."""
    state = state or state_for_out(out_dir)
    if not (out_dir / "fills.csv").exists() and state is None:
        raise InputError("no run's outputs here (no fills.csv, no state folder beside it)", out_dir,
                         hint="give the folder a run or backtest wrote (it holds fills.csv), or --state DIR")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = write_html_report(out_dir, state)
    _console().print(f"wrote {path}", markup=False)
