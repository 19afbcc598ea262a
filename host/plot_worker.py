"""Draws equity.png in a separate process, started when a run starts.

Importing matplotlib costs about half a second; a worker process started at the beginning of a
run pays it on the machine's other core while the replay runs, and draws the picture while the
run writes its other outputs. If the worker cannot start or fails, the run draws in-process.

    python -m bothost.plot_worker      (reads job file paths on stdin, one per line)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np


class PlotWorker:
    def __init__(self) -> None:
        try:
            self.proc: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-m", "bothost.plot_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self.proc = None
        self.pending: Path | None = None

    def submit(self, job: Path, **arrays) -> bool:
        """Hand a plot over; False if the caller must draw it itself."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        np.savez(job, **arrays)
        try:
            self.proc.stdin.write(f"{job}\n")
            self.proc.stdin.flush()
        except OSError:
            return False
        self.pending = job
        return True

    def wait(self, timeout: float = 120.0) -> str | None:
        """None when the picture is drawn, else why not."""
        if self.proc is None:
            return "no worker"
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "the plot worker timed out"
        finally:
            if self.pending is not None:
                self.pending.unlink(missing_ok=True)
        return None if out.strip().endswith("ok") else (out.strip() or "the plot worker failed")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def main() -> None:
    from . import plot

    plot.import_matplotlib()  # the expensive part, done while the parent replays
    for line in sys.stdin:
        job = Path(line.strip())
        try:
            with np.load(job) as data:
                plot.plot_equity(Path(str(data["path"])), data["t"], data["price"], data["equity"],
                                   data["capital"], data["buys"], data["sells"], str(data["title"]))
            print("ok", flush=True)
        except Exception as exc:  # reported to the parent, which then draws it itself
            print(f"{type(exc).__name__}: {exc}", flush=True)
        return


if __name__ == "__main__":
    main()
