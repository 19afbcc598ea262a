"""One cell, on a worker: the same engine as ``bothost backtest``, in a temporary folder.

The worker loads the config itself (``bothost.cli._load`` with the backtest's venue and the
cell's data file, which it reads from its own disk: paths travel, never data) and runs it
through ``bothost.run.execute``, the one path every run takes. Only the figures come back.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

#: The summary.json figures a row keeps (money as the summary's exact decimal strings).
COUNTS = ("fills", "round_trips")
MONEY = ("realized_pnl", "fees", "net_realized_pnl", "unrealized_pnl", "total_pnl", "lowest_equity",
         "max_drawdown", "peak_capital_committed")

_local = threading.local()


def run_cell(task: dict) -> dict:
    """``task``: key, config (absolute path), overrides (the sweep's --set and the cell's
    values), data (absolute path). Returns the cell's figures; a cell the config or data refuses
    comes back with ``status: error`` and the reason, anything else raises (and is not kept)."""
    from rich.console import Console

    from ..cli import _data_patch, _load
    from ..config import ConfigError
    from ..errors import InputError
    from ..run import RunOptions, execute

    started = time.perf_counter()
    _quiet()
    try:
        with tempfile.TemporaryDirectory(prefix=f"{CELL_PREFIX}{os.getpid()}-", dir=scratch_dir()) as tmp:
            pm, _, run = _load(Path(task["config"]), tuple(task["overrides"]),
                               _data_patch(Path(task["data"]), backtest=True))
            opts = RunOptions(state_dir=Path(tmp) / "state", out_dir=Path(tmp) / "out", progress=False,
                              title=task.get("title", ""))
            with _without_equity_png():
                result = asyncio.run(execute(run, pm, opts, Console(file=io.StringIO())))
    except (ConfigError, InputError) as exc:
        return {"key": task["key"], "status": "error", "error": str(exc), **_where(started)}
    summary = result.summary
    row = {"key": task["key"], "status": result.status, "error": summary.get("error") or summary.get("alert")}
    for name in COUNTS:
        row[name] = summary.get(name)
    for name in MONEY:
        row[name] = summary.get(name)
    return {**row, **_where(started)}


#: A cell's folder goes to memory (tmpfs) when there is this much room: its state is thrown
#: away, and the venue's and the state's fsyncs on a disk cost about 40% of a cell's time.
SCRATCH_MIN_FREE = 1 << 30


CELL_PREFIX = "bothost-cell-"


def clear_dead_cells(where: str | None = None) -> int:
    """Remove the folders of cells whose worker died (SIGKILL leaves them, in memory on
    tmpfs); a folder names its worker's pid. Returns how many went."""
    import shutil

    root = Path(where or scratch_dir() or tempfile.gettempdir())
    gone = 0
    for folder in root.glob(f"{CELL_PREFIX}*-*"):
        pid = folder.name[len(CELL_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or not folder.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # its worker is alive (or not ours to ask about)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            gone += 1
        except OSError:
            continue
    return gone


def scratch_dir() -> str | None:
    """Where a cell's temporary folder goes: ``BOTHOST_SWEEP_TMP`` if set, else ``/dev/shm``
    when it is a writable folder with ``SCRATCH_MIN_FREE`` free (a container's is often 64 MB),
    else the system's temporary folder (None)."""
    given = os.environ.get("BOTHOST_SWEEP_TMP")
    if given:
        return given
    try:
        st = os.statvfs("/dev/shm")
        if os.access("/dev/shm", os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize >= SCRATCH_MIN_FREE:
            return "/dev/shm"
    except OSError:
        pass
    return None


def warm_up(config: str, overrides: list[str], data: str) -> str:
    """Import and load once (plugins, pydantic models, Arrow) so the first cell is not billed
    for it; called on every worker before the cells are sent."""
    from ..cli import _data_patch, _load

    _quiet()
    clear_dead_cells()
    _load(Path(config), tuple(overrides), _data_patch(Path(data), backtest=True))
    _install_plot_switch()
    return f"{socket.gethostname()}:{os.getpid()}"


def _where(started: float) -> dict:
    return {"wall_time_s": round(time.perf_counter() - started, 3), "worker": f"{socket.gethostname()}:{os.getpid()}"}


def _quiet() -> None:
    # A replay logs its warnings (every level of the lot map bought, say); they are in the
    # summary, and a worker's terminal is no place for one line per cell.
    logging.getLogger("bothost").setLevel(logging.ERROR)


class _without_equity_png:
    """A cell's equity.png would be drawn and deleted with its temporary folder: about 40% of a
    cell's time spent on a picture nobody sees. ``execute`` has no switch for it, so the run
    module's ``_finish_plot`` gets a thin wrapper that does nothing on a thread inside this
    context and calls the original everywhere else (another run in the same process still
    draws its picture). If ``_finish_plot`` is ever renamed, cells simply draw it again."""

    def __enter__(self):
        _install_plot_switch()
        _local.skip_plot = True
        return self

    def __exit__(self, *exc):
        _local.skip_plot = False
        return False


_install_lock = threading.Lock()


def _install_plot_switch() -> None:
    from .. import run as run_module

    with _install_lock:
        original = getattr(run_module, "_finish_plot", None)
        if original is None or getattr(original, "bothost_sweep_switch", False):
            return

        def _finish_plot(*args, **kwargs):
            if getattr(_local, "skip_plot", False):
                return None
            return original(*args, **kwargs)

        _finish_plot.bothost_sweep_switch = True
        _finish_plot.__wrapped__ = original
        run_module._finish_plot = _finish_plot
