"""The ``bothost`` command.

Exit statuses (a contract, documented in the README): 0 done, 1 internal error (traceback in
the log file, one line on the terminal), 2 bad input (usage, config, data files), 3 critical
alert stop (S1), 4 broker or feed unreachable after retries, 130 interrupted after a clean
shutdown. Heavy imports happen inside the commands so that ``bothost --help`` stays instant.
"""

from __future__ import annotations

import os
import signal
import sys


def _quit_while_starting(signum, frame):
    raise SystemExit(130)  # EXIT_INTERRUPTED: nothing is touched yet, so no traceback either


def _guard_start_up() -> dict:
    """Ctrl-C (or SIGTERM) while the ``bothost`` command is still importing: a quiet exit 130
    rather than a traceback. Only for the command itself (``main`` puts the usual handlers
    back), never for a program that imports this module."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if os.path.basename(sys.argv[0] if sys.argv else "") != "bothost" and getattr(spec, "name", "") != "bothost.__main__":
        return {}
    saved = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            if signal.getsignal(sig) in (signal.default_int_handler, signal.SIG_DFL):
                saved[sig] = signal.signal(sig, _quit_while_starting)
        except (ValueError, OSError):  # not the main thread
            pass
    return saved


_START_UP_HANDLERS = _guard_start_up()

import functools  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402

from . import __version__  # noqa: E402
from .errors import (  # noqa: E402
    EXIT_BAD_INPUT,
    EXIT_CRITICAL,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
)

#: The embedded default venue and data that `bothost backtest` swaps in for the config's own.
BACKTEST_BROKER = "sim_broker"
BACKTEST_FEED = "replay_feed"


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _fail(message: str, status: int) -> None:
    _console(stderr=True).print(message, markup=False)
    sys.exit(status)


def _interrupted() -> None:
    """Ctrl-C or SIGTERM outside a run's own clean stop: one word, exit 130 (plain text: a second
    Ctrl-C while rich imports would print a traceback)."""
    try:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    sys.exit(EXIT_INTERRUPTED)


def _stdout_gone() -> bool:
    """Whether the reader of stdout has gone away (`bothost status CONFIG | head -1`)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null: Python's own flush at exit must not fail on the broken pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


def _reader_left(exc: BaseException) -> bool:
    """rich's answer to a broken pipe is SystemExit(1) (after pointing stdout at /dev/null)."""
    return isinstance(exc, SystemExit) and exc.code == 1 and isinstance(exc.__context__, BrokenPipeError)


def _broken_pipe() -> None:
    """The reader has what it wanted and left: exit 0 without a word, like other command-line tools."""
    _silence_stdout()
    sys.exit(EXIT_OK)


def guarded(fn):
    """Turn every failure into its exit status: a user mistake never shows a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            from .config import ConfigError
            from .errors import InputError
            from .hookspecs import BrokerUnavailable, CriticalStop
            from .registry import PluginError
        except KeyboardInterrupt:  # Ctrl-C while these import (a few tenths of a second)
            _interrupted()

        try:
            return fn(*args, **kwargs)
        except (ConfigError, InputError) as exc:
            _fail(f"error: {exc}", EXIT_BAD_INPUT)
        except PluginError as exc:
            _fail(f"plugin error: {exc}", EXIT_BAD_INPUT)
        except BrokerUnavailable as exc:
            _fail(f"unreachable: {exc}", EXIT_UNREACHABLE)
        except CriticalStop as exc:
            _fail(exc.alert.render(), EXIT_CRITICAL)
        except KeyboardInterrupt:
            _interrupted()
        except SystemExit as exc:
            if _reader_left(exc):
                _broken_pipe()
            raise
        except (click.exceptions.Exit, click.ClickException):
            raise
        except Exception as exc:
            if isinstance(exc, BrokenPipeError) and _stdout_gone():
                _broken_pipe()
            where = _log_traceback()
            _fail(f"internal error: {type(exc).__name__}: {exc} (traceback in {where})", EXIT_INTERNAL)

    return wrapper


def _log_traceback() -> str:
    """Put the traceback in the run's log file only (the terminal gets one line); returns the file."""
    text = f"internal error:\n{traceback.format_exc()}"
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(logging.LogRecord("bothost", logging.ERROR, __file__, 0, text, None, None))
            return handler.baseFilename
    # No run log yet (the failure came before a state folder existed): keep the traceback anyway.
    fallback = Path.home() / ".bothost-error.log"
    with open(fallback, "a") as fh:
        fh.write(text + "\n")
    return str(fallback)


def _load(config: Path, overrides: tuple[str, ...] = (), patch=None):
    """Plugins + config, validated. ``patch(data, registry)`` may edit the merged data first."""
    from .config import load, validate
    from .plugins import load_plugins

    pm, registry, loaded = load_plugins()

    def edit(data: dict) -> None:
        if "notify" not in data and registry.get("notifier", "bell") is not None:
            data["notify"] = [{"use": "bell"}]  # S1 rings the bell unless the config says otherwise
        if patch is not None:
            patch(data, registry)

    return pm, registry, validate(load(config, overrides, patch=edit), registry)


def _check_buildable(run) -> None:
    """What `validate` checks beyond the config's shape: the live guard (S2) and the files a
    strategy reads when it is built (a lot map, say). Nothing is connected, nothing is written."""
    import tempfile

    from .hookspecs import BuildEnv
    from .run import build, live_guard

    live_guard(run, run.broker.settings)
    with tempfile.TemporaryDirectory() as tmp:
        env = BuildEnv(config_path=Path(run.path), state_dir=Path(tmp), mode=run.mode,
                       log=logging.getLogger("bothost.validate"), instruments=run.instruments)
        for section in run.strategies:
            build(section, env)


def _default_state_dir(config: Path, run) -> Path:
    if getattr(run, "state_dir", None):
        return Path(run.state_dir)
    return Path("state") / config.stem


def _data_patch(data_file: Path | None, backtest: bool):
    """Point the config at a data file (and, for a backtest, at the embedded default venue)."""
    if data_file is None and not backtest:
        return None

    def patch(data: dict, registry) -> None:
        if backtest:
            broker = data.get("broker") if isinstance(data.get("broker"), dict) else {}
            data["broker"] = broker if broker.get("use") == BACKTEST_BROKER else {"use": BACKTEST_BROKER}
            feed = data.get("feed") if isinstance(data.get("feed"), dict) else {}
            if feed.get("use") != BACKTEST_FEED:
                feed = {"use": BACKTEST_FEED}
                symbol = _first_symbol(data)
                if symbol:
                    feed["symbol"] = symbol
            data["feed"] = feed
        if data_file is not None:
            feed = data.get("feed")
            use = feed.get("use") if isinstance(feed, dict) else None
            kind = registry.get("feed", use) if isinstance(use, str) else None
            if kind is None or "data" not in kind.model.model_fields:
                from .errors import InputError

                raise InputError(f"--data needs a feed that replays a file; this config's feed is "
                                 f"{feed.get('use') if isinstance(feed, dict) else feed!r}",
                                 hint=f"use `bothost backtest` or a config whose feed is `use: {BACKTEST_FEED}`")
            feed.pop("synthetic", None)
            feed["data"] = str(data_file.resolve())

    return patch


def _first_symbol(data: dict) -> str | None:
    strategies = data.get("strategies")
    for strategy in strategies if isinstance(strategies, list) else []:
        if isinstance(strategy, dict) and isinstance(strategy.get("symbol"), str):
            return strategy["symbol"]
    return None


#: The entry-point group a plugin package adds commands through (see bothost.hookspecs,
#: "Commands"): ``name = "module:click_command"``; ``data.NAME`` is a ``bothost data`` command.
COMMANDS_GROUP = "bothost.commands"


def plugin_commands(prefix: str = "") -> dict:
    """The commands plugins publish under ``prefix`` ("" top level, "data." for ``bothost data``):
    ``{name: entry point}``. Read from the packages' metadata: nothing is imported, so `bothost
    --help` stays instant and no plugin's internals are known to the host."""
    import importlib.metadata as md

    found = {}
    for ep in md.entry_points(group=COMMANDS_GROUP):
        name = ep.name[len(prefix):] if ep.name.startswith(prefix) else None
        if name and "." not in name:
            found.setdefault(name, ep)
    return found


class _Commands(click.Group):
    """The host's commands, plus the commands plugins publish (:data:`COMMANDS_GROUP`), each
    imported only when asked for (so `bothost --help` stays instant)."""

    LAZY = {"serve": "bothost.serve.commands:serve_command",
            "report": "bothost.serve.commands:report_command",
            "sweep": "bothost.sweep.command:sweep_command",
            "new-plugin": "bothost.scaffold.command:new_plugin_command"}
    PREFIX = ""  # where this group's commands are in COMMANDS_GROUP

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self.LAZY, *plugin_commands(self.PREFIX)})

    def get_command(self, ctx, name):
        if name in self.LAZY:
            import importlib

            module, _, attr = self.LAZY[name].partition(":")
            return getattr(importlib.import_module(module), attr)
        own = super().get_command(ctx, name)
        if own is not None:
            return own  # a plugin cannot replace one of the host's commands
        ep = plugin_commands(self.PREFIX).get(name)
        if ep is None:
            return None
        package = ep.dist.name if ep.dist else "?"
        try:
            command = ep.load()
        except Exception as exc:  # someone else's code: their package's name, never a traceback
            _fail(f"plugin error: command {name!r} from package {package!r} failed to import ({ep.value}): "
                  f"{type(exc).__name__}: {exc}. Fix or uninstall that package.", EXIT_BAD_INPUT)
        if not isinstance(command, click.Command):
            _fail(f"plugin error: command {name!r} from package {package!r} ({ep.value}) is not a click "
                  "command. Point the entry point at a @click.command.", EXIT_BAD_INPUT)
        return command

    def invoke(self, ctx):
        # Outside `guarded` too (a command module importing, click itself): Ctrl-C is exit 130,
        # not click's "Aborted!" and 1; a reader that left is exit 0, not click's 1.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            _interrupted()
        except BrokenPipeError:
            if not _stdout_gone():
                raise
            _broken_pipe()
        except SystemExit as exc:
            if _reader_left(exc):
                _broken_pipe()
            raise


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bothost")
def cli() -> None:
    """bothost: run automated trading bots made of plugins (a broker, a feed, strategies).

    Exit statuses: 0 done, 1 internal error, 2 bad input, 3 critical alert stop,
    4 broker or feed unreachable, 130 interrupted.
    """


@cli.command()
@click.option("-v", "--verbose", is_flag=True,
              help="also each plugin module: its package, version, API version and the hooks it implements")
@guarded
def plugins(verbose: bool = False) -> None:
    """List the installed plugins: kind, name, package, version."""
    from rich.table import Table

    from .plugins import load_plugins

    _, registry, loaded = load_plugins()
    table = Table(title="bothost plugins")
    for col in ("kind", "name", "package", "version", "summary"):
        table.add_column(col)
    for k in registry.all():
        table.add_row(k.kind, k.name, k.package, k.version, k.summary)
    _console().print(table)
    if verbose:
        from .hookspecs import API_VERSION

        modules = Table(title=f"plugin modules (this bothost speaks plugin API {API_VERSION})")
        for col in ("plugin", "module", "package", "version", "API", "provides", "hooks"):
            modules.add_column(col)
        for p in loaded:
            provides = ", ".join(f"{k.kind} {k.name}" for k in registry.all() if k.module == p.module_name)
            modules.add_row(p.name, p.module_name, p.package, p.version,
                            "none declared" if p.api_version is None else str(p.api_version), provides,
                            ", ".join(p.hooks))
        _console().print(modules)


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="override a config value")
@guarded
def validate(config: Path, overrides: tuple[str, ...]) -> None:
    """Check CONFIG (exit 0) or say what is wrong with it, where, and how to fix it (exit 2)."""
    _, _, run = _load(config, overrides)
    _check_buildable(run)
    names = ", ".join(s.id for s in run.strategies)
    _console().print(f"{config}: ok (mode {run.mode}, broker {run.broker.use}, feed {run.feed.use}, "
                     f"strategies {names})", markup=False)


@cli.group()
def config() -> None:
    """Inspect configs."""


@config.command("show")
@click.argument("config_file", metavar="CONFIG", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE")
@guarded
def config_show(config_file: Path, overrides: tuple[str, ...]) -> None:
    """Print CONFIG merged (extends, ${ENV}, --set) with secrets masked."""
    from .config import dump_yaml, load, mask

    raw = load(config_file, overrides)
    click.echo(dump_yaml(mask(raw.data)), nl=False)


def _run(config: Path, overrides, state: Path | None, out: Path | None, data: Path | None,
         backtest: bool, verify_skips: bool, progress: bool, verbose: bool,
         stop_when_idle: float | None = None, fresh: bool = False) -> None:
    import asyncio

    from .logs import setup_logging
    from .run import RunOptions, execute

    pm, registry, run = _load(config, overrides, _data_patch(data, backtest))
    if backtest:
        out = out or Path("out") / f"{config.stem}-backtest"
        state = state or out / "state"
        if state.exists():
            shutil.rmtree(state)  # a backtest is always a fresh run
    else:
        state = state or _default_state_dir(config, run)
        out = out or state / "out"
        if fresh:
            _move_aside(state)
    console = _console()
    from .state import ensure_state_dir

    ensure_state_dir(state)  # created and proved writable, or exit 2 naming it and the fix
    setup_logging(state / "bot_log.txt", _console(stderr=True), verbose)
    opts = RunOptions(state_dir=state, out_dir=out, verify_skips=verify_skips,
                      progress=progress and console.is_terminal, title=config.name,
                      verbose=verbose, plot_in_worker=True, stop_when_idle_s=stop_when_idle)
    result = asyncio.run(execute(run, pm, opts, console))
    _print_summary(console, result.summary, out)
    if result.status == "critical":
        _console(stderr=True).print(result.summary.get("alert", "critical alert"), markup=False)
        sys.exit(EXIT_CRITICAL)
    if result.status == "interrupted":
        sys.exit(EXIT_INTERRUPTED)


def _move_aside(state: Path) -> None:
    """--fresh: the state folder becomes STATE.previous-TIME (never deleted: it may be the only
    record of a paper account or of a live run's executions); refused while a run uses it."""
    import time

    from .state import lock_state_dir

    if not state.is_dir() or not any(state.iterdir()):
        return
    lock = lock_state_dir(state)  # exit 2 naming the pid if a run is using it
    try:
        aside = state.with_name(f"{state.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while aside.exists():
            n += 1
            aside = state.with_name(f"{state.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        state.rename(aside)
    finally:
        lock.close()
    _console(stderr=True).print(f"--fresh: the old state folder is now {aside}", markup=False)


def _print_summary(console, summary: dict, out: Path | None) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="run summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key in ("alert", "bad_rows_by_reason", "warnings") or isinstance(value, dict):
            continue
        text = "-" if value is None else str(value)
        # P&L in colour: a loss marked to market must not read like the realized profit above it
        style = ("red" if text.startswith("-") and text != "-" else "green") if key.endswith("pnl") else ""
        table.add_row(key.replace("_", " "), Text(text, style=style))
    console.print(table)
    if summary.get("by_strategy"):
        console.print(_by_strategy_table(summary["by_strategy"]))
    for w in summary.get("warnings") or ():
        times = f" ({w['count']} times)" if w.get("count", 1) > 1 else ""
        console.print(Text(f"warning: {w['title']}{times}: {w['details']}", style="yellow"))
    if out is not None and (out / "fills.csv").exists():
        # Only what is there: a run of several symbols draws no equity.png (no one price picture).
        written = [name for name in ("fills.csv", "summary.json", "equity.png", "report.html") if (out / name).exists()]
        console.print(f"outputs: {out}/{', '.join(written)}", markup=False)


#: The per-strategy table of a run on several symbols: the summary keys shown, in this order.
BY_STRATEGY_ROWS = ("symbol", "fills", "round_trips", "realized_pnl", "fees", "net_realized_pnl", "open_lots",
                    "open_position", "last_price", "open_cost", "market_value", "unrealized_pnl", "total_pnl")


def _by_strategy_table(by_strategy: dict[str, dict]):
    """Each strategy's own symbol, fills and P&L, a column each (a terminal fits a few columns
    of numbers better than a few rows of many): the totals above add money, never shares."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="by strategy")
    table.add_column("")
    for sid in by_strategy:
        table.add_column(sid, justify="right")
    for key in BY_STRATEGY_ROWS:
        cells = []
        for row in by_strategy.values():
            text = "-" if row.get(key) is None else str(row[key])
            style = ("red" if text.startswith("-") and text != "-" else "green") if key.endswith("pnl") else ""
            cells.append(Text(text, style=style))
        table.add_row(key.replace("_", " "), *cells)
    return table


_run_options = [
    click.argument("config", type=click.Path(path_type=Path)),
    click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="override a config value"),
    click.option("--state", type=click.Path(path_type=Path), help="state folder (default state/<config name>/)"),
    click.option("--out", type=click.Path(path_type=Path), help="where fills.csv, summary.json, equity.png go"),
    click.option("--data", type=click.Path(path_type=Path), help="replay this CSV/Parquet file"),
    click.option("--verify-skips", is_flag=True, help="handle every tick and prove the skipped ones were quiet"),
    click.option("--progress/--no-progress", default=True, help="progress bar on a terminal"),
    click.option("-v", "--verbose", is_flag=True, help="log every event to the terminal too"),
]


def _with_run_options(fn):
    for option in reversed(_run_options):
        fn = option(fn)
    return fn


@cli.command()
@_with_run_options
@click.option("--stop-when-idle", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="live: stop cleanly (exit 0, outputs written) after this long without market data")
@click.option("--fresh", is_flag=True,
              help="start the state folder over: the old one is moved aside to STATE.previous-TIME, nothing deleted")
@guarded
def run(config, overrides, state, out, data, verify_skips, progress, verbose, stop_when_idle, fresh) -> None:
    """Run the bot a CONFIG describes (live, paper, or a resumable replay)."""
    _run(config, overrides, state, out, data, False, verify_skips, progress, verbose, stop_when_idle, fresh)


@cli.command()
@_with_run_options
@click.option("--html", is_flag=True, help="also write report.html beside fills.csv (one self-contained file)")
@guarded
def backtest(config, overrides, state, out, data, verify_skips, progress, verbose, html=False) -> None:
    """A fresh replay of CONFIG's strategies on the simulated venue (the config's broker and
    feed are replaced by sim_broker and a replay of --data, or synthetic data without it)."""
    if not html:
        _run(config, overrides, state, out, data, True, verify_skips, progress, verbose)
        return
    from .serve.commands import backtest_report

    out = out or Path("out") / f"{config.stem}-backtest"
    with backtest_report(out, state or out / "state"):
        _run(config, overrides, state, out, data, True, verify_skips, progress, verbose)


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--state", type=click.Path(path_type=Path), help="state folder (default state/<config name>/)")
@guarded
def status(config: Path, state: Path | None) -> None:
    """Show a run's open lots, live orders, position, P&L and last reconstruct."""
    from types import SimpleNamespace

    from .config import load
    from .status import render_status

    if state is None:
        # Only the state folder is read: the broker's and feed's sections (and the secrets
        # they name) are not needed to show what a run left.
        def only_state_dir(data: dict) -> None:
            for key in [k for k in data if k != "state_dir"]:
                del data[key]

        raw = load(config, patch=only_state_dir)
        state = _default_state_dir(config, SimpleNamespace(state_dir=raw.data.get("state_dir")))
    render_status(_console(), state)


class _DataCommands(_Commands):
    LAZY: dict[str, str] = {}
    PREFIX = "data."  # `bothost data synth`, `data fetch`...: commands plugins register


@cli.group(cls=_DataCommands)
def data() -> None:
    """Make and inspect replay data."""


def _terminated(signum, frame):
    raise KeyboardInterrupt  # SIGTERM outside a run's own clean stop is Ctrl-C: exit 130


def main() -> None:
    for sig, previous in _START_UP_HANDLERS.items():
        signal.signal(sig, previous)  # the start-up guard is done
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _terminated)
    except (ValueError, OSError):  # not the main thread
        pass
    try:
        cli(prog_name="bothost")
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()  # the exit status stays the command's own
        except (OSError, ValueError):
            pass


__all__ = ["cli", "main", "guarded", "EXIT_OK", "COMMANDS_GROUP"]
