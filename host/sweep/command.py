"""``bothost sweep CONFIG --data FILE|DIR --param PATH=SPEC ...``"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from ..cli import _console, guarded
from ..errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, InputError
from .results import METRICS


@click.command("sweep")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--data", "data", required=True, type=click.Path(path_type=Path),
              help="a CSV/Parquet file, or a folder: every CSV/Parquet file in it")
@click.option("--param", "param_texts", multiple=True, required=True, metavar="KEY.PATH=SPEC",
              help="a swept setting: START:STOP:STEP (0.5%:2%:0.25%) or a list (0.5%,1%,1.5%)")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="override a config value in every cell")
@click.option("--scheduler", metavar="tcp://HOST:PORT", help="join this Dask scheduler (default: start a local cluster)")
@click.option("--workers", type=click.IntRange(min=1), help="local cluster: worker processes (default: one per core)")
@click.option("--out", type=click.Path(path_type=Path), help="results folder (default out/<config name>-sweep/)")
@click.option("--rank", type=click.Choice(METRICS), default="total_pnl", show_default=True,
              help="what the best cells and the heatmaps show")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="rows of the best-cells table")
@click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              metavar="SECONDS", help="--scheduler: give up (exit 4) when it does not answer within this")
@click.option("--wait-for-workers", type=click.FloatRange(min=0), default=60.0, show_default=True,
              metavar="SECONDS", help="--scheduler: give up (exit 4) when no worker has joined within this")
@click.option("--progress/--no-progress", default=True, help="progress bar on a terminal")
@guarded
def sweep_command(config: Path, data: Path, param_texts: tuple[str, ...], overrides: tuple[str, ...],
                  scheduler: str | None, workers: int | None, out: Path | None, rank: str, top: int,
                  connect_timeout: float, wait_for_workers: float, progress: bool) -> None:
    """One backtest of CONFIG per cell of the --param grid and per data file, on Dask.

    Each cell is `bothost backtest CONFIG --data FILE --set KEY=VALUE...` in a folder of its
    own on a worker. Results go to OUT/sweep.parquet (one row per cell), OUT/heatmap-A--B.png
    (each pair of parameters) and OUT/cells/ (each finished cell, so that the same command
    run again after an interruption runs only the cells still missing).
    """
    from .grammar import GrammarError, parse_param
    from .plan import check, find_data, plan_cells
    from .runner import Cluster, run_cells, task_for
    from .store import CellStore

    params = []
    for text in param_texts:
        try:
            params.append(parse_param(text))
        except GrammarError as exc:
            raise InputError(f"--param {text}: {exc.message}", hint=exc.hint) from None
    if scheduler is not None and workers is not None:
        raise InputError("--workers is for the local cluster; with --scheduler the workers are the scheduler's",
                         hint="start as many `dask worker` processes as you want, or drop --scheduler")
    if scheduler is not None:
        from .runner import check_address

        check_address(scheduler)
    files = find_data(data)
    identity = check(config, overrides, params, files)
    cells = plan_cells(params, files, identity)
    out = out or Path("out") / f"{config.stem}-sweep"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the results folder: {exc.strerror or exc}", out) from exc
    store = CellStore(out)
    console = _console()

    def cluster():
        return Cluster(scheduler, workers, connect_timeout, wait_for_workers)

    started = time.perf_counter()
    with _progress(console, progress and console.is_terminal, len(cells)) as advance:
        try:
            outcome = run_cells(cells, store, lambda c: task_for(config, overrides, c), cluster, advance)
        except KeyboardInterrupt:
            kept = sum(1 for c in cells if store.get(c.key) is not None)
            sys.stderr.write(f"interrupted: {kept} of {len(cells)} cells are kept in {store.dir}; "
                             "the same command runs the rest\n")
            sys.exit(EXIT_INTERRUPTED)
    wall = time.perf_counter() - started

    from .results import best_table, rows, write_heatmaps, write_parquet

    failed = {cell.key: (status, reason) for cell, status, reason in outcome.failed}
    table_rows = rows(params, cells, outcome.records, failed)
    write_parquet(out / "sweep.parquet", params, table_rows)
    heatmaps = write_heatmaps(out, params, table_rows, rank)
    on = f" on {outcome.workers} worker{'s' if outcome.workers != 1 else ''}" if outcome.workers else ""
    console.print(f"sweep: {len(cells)} cells ({outcome.ran} run now{on}, {outcome.cached} from earlier results, "
                  f"{len(outcome.failed)} failed) in {wall:.1f} s"
                  + (f" (cluster and warm-up {outcome.start_s:.2f} s, cells {outcome.cells_s:.2f} s)"
                     if outcome.workers else ""), markup=False)
    console.print(best_table(params, table_rows, rank, top, several_files=len(files) > 1))
    console.print(f"outputs: {out / 'sweep.parquet'}" + "".join(f", {p.name}" for p in heatmaps), markup=False)
    if outcome.failed:
        err = _console(stderr=True)
        for cell, status, reason in outcome.failed[:5]:
            err.print(f"cell {' '.join(cell.overrides)} on {cell.data.shown}: {status}: {reason}", markup=False)
        if len(outcome.failed) > 5:
            err.print(f"... and {len(outcome.failed) - 5} more", markup=False)
        bad_input = all(status == "error" for _, status, _ in outcome.failed)
        err.print(f"{len(outcome.failed)} of {len(cells)} cells did not finish; the same command runs them again",
                  markup=False)
        sys.exit(EXIT_BAD_INPUT if bad_input else EXIT_INTERNAL)


class _progress:
    """A rich progress bar over the cells (finished ones from earlier runs count at once)."""

    def __init__(self, console, enabled: bool, total: int):
        self.console, self.enabled, self.total = console, enabled, total
        self.bar = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.bar = Progress(TextColumn("cells"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=self.console)
        self.bar.start()
        task = self.bar.add_task("cells", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
