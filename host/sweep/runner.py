"""The cells through Dask: a ``distributed.LocalCluster`` (one single-threaded worker process
per core, or ``--workers N``) or an existing scheduler (``--scheduler tcp://HOST:PORT``).

Each result is kept (:class:`~.store.CellStore`) the moment it reaches this process, so an
interrupted sweep loses at most the cells that were running. A worker that dies mid-cell (its
machine gone, SIGKILL, out of memory) costs nothing: the scheduler gives its cells to another
worker (up to ``distributed.scheduler.allowed-failures`` times per cell), and since only this
process writes results, a cell that ran twice is still kept once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..hookspecs import BrokerUnavailable
from .cell import run_cell, warm_up
from .plan import Cell
from .store import KEPT, CellStore


@dataclass
class Outcome:
    records: dict[str, dict] = field(default_factory=dict)  # key -> figures, cached and new
    ran: int = 0
    cached: int = 0
    failed: list[tuple[Cell, str, str]] = field(default_factory=list)  # cell, status, reason
    workers: int = 0
    start_s: float = 0.0  # connecting or starting the cluster, and warming the workers up
    cells_s: float = 0.0  # from the first cell sent to the last result


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class Cluster:
    """A connected ``distributed.Client``: to ``scheduler``, or to a LocalCluster it starts."""

    def __init__(self, scheduler: str | None, workers: int | None, connect_timeout: float, wait_for_workers: float):
        self.scheduler, self.workers = scheduler, workers
        self.connect_timeout, self.wait_for_workers = connect_timeout, wait_for_workers
        self.client = self.cluster = None

    def __enter__(self) -> Cluster:
        from distributed import Client, LocalCluster

        if self.scheduler is None:
            self.cluster = LocalCluster(n_workers=self.workers or default_workers(), threads_per_worker=1,
                                        processes=True, host="127.0.0.1", dashboard_address=None,
                                        silence_logs=logging.ERROR)
            self.client = Client(self.cluster, set_as_default=False)
            return self
        check_address(self.scheduler)
        try:
            self.client = Client(self.scheduler, timeout=self.connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"the Dask scheduler at {self.scheduler} did not answer within "
                                    f"{self.connect_timeout:g} s ({exc})") from exc
        try:
            self.client.wait_for_workers(1, timeout=self.wait_for_workers)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise BrokerUnavailable(f"the Dask scheduler at {self.scheduler} has no worker: none joined within "
                                    f"{self.wait_for_workers:g} s") from exc
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def close(self) -> None:
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing must never hide the sweep's own outcome
                    logging.getLogger("bothost.sweep").debug("closing %s failed", thing, exc_info=True)
        self.client = self.cluster = None

    def n_workers(self) -> int:
        return len(self.client.nthreads())


def check_address(address: str) -> None:
    """A scheduler address Dask can read (``tcp://HOST:PORT``), or InputError (exit 2)."""
    from distributed.comm import get_address_host_port

    try:
        get_address_host_port(address)
    except ValueError as exc:
        raise InputError(f"--scheduler {address}: {exc}",
                         hint="write the scheduler's address as tcp://HOST:PORT (dask scheduler prints it)") from None


def run_cells(cells: list[Cell], store: CellStore, task_of, cluster_factory, progress=None) -> Outcome:
    """Run the cells without a kept result; ``task_of(cell)`` is the worker's task dict,
    ``cluster_factory()`` a :class:`Cluster` (not entered), ``progress(advance)`` a callback."""
    outcome = Outcome()
    todo = []
    for cell in cells:
        record = store.get(cell.key)
        if record is not None:
            outcome.records[cell.key] = record
            outcome.cached += 1
        else:
            todo.append(cell)
    if progress is not None and outcome.cached:
        progress(outcome.cached)
    if not todo:
        return outcome
    mark = time.perf_counter()
    with cluster_factory() as cluster:
        from distributed import as_completed

        client = cluster.client
        first = task_of(todo[0])
        try:
            client.run(warm_up, first["config"], first["overrides"], first["data"])
        except Exception as exc:
            raise InputError(f"the Dask workers cannot run bothost's backtest: {type(exc).__name__}: {exc}",
                             hint="install the same bothost on every worker, and give every worker the config "
                                  "and data files at the same paths (a shared folder)") from exc
        outcome.workers = cluster.n_workers()
        outcome.start_s = time.perf_counter() - mark
        mark = time.perf_counter()
        token = uuid.uuid4().hex[:8]
        by_key = {}
        futures = []
        for cell in todo:
            fut = client.submit(run_cell, task_of(cell), key=f"bothost-cell-{cell.key[:24]}-{token}", pure=False)
            by_key[fut.key] = cell
            futures.append(fut)
        try:
            for fut in as_completed(futures, loop=client.loop):
                cell = by_key[fut.key]
                if fut.status == "finished":
                    record = fut.result()
                    outcome.ran += 1
                    if record.get("status") in KEPT:
                        store.put(record, about={"params": dict(cell.params), "data": cell.data.shown})
                        outcome.records[cell.key] = record
                    else:
                        outcome.failed.append((cell, record.get("status", "failed"), record.get("error") or ""))
                else:
                    try:
                        exc = fut.exception()
                    except (Exception, asyncio.CancelledError) as cancelled:  # the scheduler went away, say
                        exc = cancelled
                    outcome.failed.append((cell, "failed", f"{type(exc).__name__}: {exc}"))
                fut.release()
                if progress is not None:
                    progress(1)
        except BaseException:
            client.cancel(futures)
            raise
        outcome.cells_s = time.perf_counter() - mark
    return outcome


def task_for(config: Path, overrides: tuple[str, ...], cell: Cell) -> dict:
    return {"key": cell.key, "config": str(config.resolve()), "overrides": [*overrides, *cell.overrides],
            "data": str(cell.data.path), "title": f"{config.name} {' '.join(cell.overrides)}"}
