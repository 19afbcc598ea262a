"""Helpers of the benchmark harness (benchmarks/run.py, benchmarks/profile.py).

Everything that measures does it from outside, on a child process: wall time from just before
the spawn to the reaping of the child, and peak resident memory from the kernel's own account
of that child (`os.wait4`'s `ru_maxrss`, KiB on Linux), cross-checked by polling with psutil.

One caveat the kernel imposes: a child's `ru_maxrss` is never below the RSS its parent had when
it forked (the forked copy is counted before `exec` replaces it). So the harness keeps itself
small (it never loads the data; generators run as children) and records its own RSS at each
spawn as `rss_floor_mb`; a peak at or near that floor is reported as such.

This module imports only the standard library, psutil and rich (both are bothost dependencies),
so the test suite can import it cheaply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA_DIR = HERE / ".data"
VENV_DIR = HERE / ".venvs"
RESULTS_DIR = HERE / "results"
PEERS_DIR = HERE / "peers"
DEFAULT_CONFIG = REPO / "configs" / "tqqq-paper.yaml"
DEFAULT_LOTS = REPO / "configs" / "tqqq_lots.csv"

# Figures measured earlier on the same kind of 2-core machine, 1,000,000-bar synthetic file
# (the anchors). Kept with every result so a reader sees both.
ANCHORS = {
    "backtesting 0.6.6": {"wall_s": 43.8, "peak_rss_mb": 322},
    "vectorbt 1.2.0 warm": {"wall_s": 7.7, "peak_rss_mb": 555},
    "vectorbt 1.2.0 cold": {"wall_s": 17.9, "peak_rss_mb": 635},
}

# The peers and their pins. `requirements` freezes the whole environment that was measured;
# when it cannot be installed the pin alone is tried, then the nearest available version.
PEERS = {
    "backtesting": {"package": "backtesting", "pin": "0.6.6", "script": "backtesting_grid.py"},
    "vectorbt": {"package": "vectorbt", "pin": "1.2.0", "script": "vectorbt_grid.py"},
}
# packages whose versions are recorded beside each peer's result
PEER_KEY_PACKAGES = {
    "backtesting": ("backtesting", "numpy", "pandas", "bokeh"),
    "vectorbt": ("vectorbt", "numba", "llvmlite", "numpy", "pandas"),
}


# --------------------------------------------------------------------------------------------
# measuring a child process


@dataclasses.dataclass
class RunResult:
    cmd: list[str]
    rc: int | None
    wall_s: float
    peak_rss_mb: float | None  # kernel's ru_maxrss of the child (and its reaped descendants)
    polled_peak_rss_mb: float | None  # psutil polling, child + descendants summed
    rss_floor_mb: float  # this process's RSS at spawn: ru_maxrss cannot read below it
    timed_out: bool
    stdout: str
    stderr: str
    load1_before: float | None = None  # 1-minute load average at spawn: others' work skews timings
    load1_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out

    @property
    def rss_at_floor(self) -> bool:
        # A forked child's ru_maxrss starts at the parent's RSS and grows a little before exec;
        # the margin absorbs that, so a small child of a big parent is not taken for a big child.
        return self.peak_rss_mb is not None and self.peak_rss_mb <= self.rss_floor_mb * 1.10 + 8

    def best_rss_mb(self) -> float | None:
        """The kernel's figure, unless it only shows the floor: then the polled one."""
        if self.rss_at_floor and self.polled_peak_rss_mb:
            return self.polled_peak_rss_mb
        return self.peak_rss_mb

    def tail(self, n: int = 12) -> str:
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(lines[-n:])

    def to_dict(self) -> dict:
        return {
            "cmd": " ".join(shlex.quote(c) for c in self.cmd),
            "rc": self.rc,
            "timed_out": self.timed_out,
            "wall_s": round(self.wall_s, 4),
            "peak_rss_mb": self.peak_rss_mb,
            "polled_peak_rss_mb": self.polled_peak_rss_mb,
            "rss_floor_mb": self.rss_floor_mb,
            "load1_before": self.load1_before,
            "load1_after": self.load1_after,
        }


def self_rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def _poll_rss(pid: int, stop: threading.Event, out: list[float], interval: float) -> None:
    try:
        import psutil
    except ImportError:
        return
    try:
        proc = psutil.Process(pid)
    except Exception:
        return
    peak = 0
    while not stop.is_set():
        try:
            total = proc.memory_info().rss
            for ch in proc.children(recursive=True):
                with contextlib.suppress(Exception):
                    total += ch.memory_info().rss
            peak = max(peak, total)
        except Exception:
            break
        stop.wait(interval)
    out.append(peak / 2**20)


def measure(
    cmd: Sequence[str],
    *,
    env: dict | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: float = 600.0,
    poll_interval: float | None = 0.05,
    stdout_limit: int = 256 * 1024,
) -> RunResult:
    """Run `cmd` to completion and measure it. Never raises for a failing or missing command:
    rc is the exit status (negative signal number if killed; 127 if it could not start)."""
    cmd = [str(c) for c in cmd]
    floor = self_rss_mb()
    load0 = _load1()
    with tempfile.TemporaryFile("w+b") as fo, tempfile.TemporaryFile("w+b") as fe:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(
                cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            return RunResult(cmd, 127, 0.0, None, None, floor, False, "", f"{type(exc).__name__}: {exc}")
        timed_out = threading.Event()

        def _kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, _kill)
        timer.daemon = True
        timer.start()
        stop = threading.Event()
        polled: list[float] = []
        poller = None
        if poll_interval:
            poller = threading.Thread(target=_poll_rss, args=(proc.pid, stop, polled, poll_interval), daemon=True)
            poller.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        except BaseException:  # e.g. Ctrl-C: the child has its own session, so end it here
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)
            proc.returncode = -9
            raise
        finally:
            wall = time.perf_counter() - t0
            timer.cancel()
            stop.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if poller:
            poller.join(timeout=2)
        # descendants left behind in the child's session (none expected) are not ours to keep
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        out = _read_tail(fo, stdout_limit)
        err = _read_tail(fe, stdout_limit)
    return RunResult(
        cmd=cmd,
        rc=proc.returncode,
        wall_s=wall,
        peak_rss_mb=round(ru.ru_maxrss / 1024.0, 1),
        polled_peak_rss_mb=round(polled[0], 1) if polled and polled[0] else None,
        rss_floor_mb=floor,
        timed_out=timed_out.is_set(),
        stdout=out,
        stderr=err,
        load1_before=load0,
        load1_after=_load1(),
    )


def _load1() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _read_tail(fh, limit: int) -> str:
    fh.flush()
    size = fh.seek(0, os.SEEK_END)
    fh.seek(max(0, size - limit))
    return fh.read().decode("utf-8", "replace")


def last_json_line(text: str) -> dict | None:
    """The last line of `text` that parses as a JSON object, or the whole text if it does."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    return obj
    with contextlib.suppress(ValueError):
        obj = json.loads(text)
        if isinstance(obj, dict):
            return obj
    return None


def repeat_startup(cmd: Sequence[str], runs: int, *, cwd=None, timeout: float = 120.0) -> dict:
    """Median wall time of `runs` runs of a short command (start-up cost)."""
    walls, rss, rcs, last = [], [], [], None
    for _ in range(runs):
        r = measure(cmd, cwd=cwd, timeout=timeout, poll_interval=None)
        walls.append(r.wall_s)
        if r.peak_rss_mb is not None:
            rss.append(r.peak_rss_mb)
        rcs.append(r.rc)
        last = r
    ok = all(rc == 0 for rc in rcs)
    return {
        "cmd": " ".join(shlex.quote(str(c)) for c in cmd),
        "runs": runs,
        "status": "ok" if ok else "failed",
        "rcs": rcs,
        "median_s": round(statistics.median(walls), 4) if walls else None,
        "min_s": round(min(walls), 4) if walls else None,
        "max_s": round(max(walls), 4) if walls else None,
        "peak_rss_mb": max(rss) if rss else None,
        "error": None if ok or last is None else last.tail(6),
    }


# --------------------------------------------------------------------------------------------
# bothost


def bothost_exe() -> list[str]:
    """The `bothost` console script of the environment running this harness."""
    cand = Path(sys.executable).with_name("bothost")
    if cand.exists():
        return [str(cand)]
    found = shutil.which("bothost")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from bothost.cli import main; sys.exit(main())"]


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)
    return None


def pick(d: dict, *names: str) -> Any:
    """The first of `names` found at the top of `d` or one level down (tolerates layouts)."""
    for name in names:
        if name in d:
            return d[name]
    for v in d.values():
        if isinstance(v, dict):
            for name in names:
                if name in v:
                    return v[name]
    return None


def parse_summary(summary: dict | None) -> dict:
    """Ticks and fills from the lead's summary.json, whatever its exact keys turn out to be."""
    summary = summary or {}
    ticks = _as_int(pick(summary, "ticks", "ticks_processed", "n_ticks", "tick_count"))
    fills_v = pick(summary, "fills", "n_fills", "fill_count")
    fills = _as_int(fills_v)
    buys = _as_int(pick(summary, "buy_fills", "buys", "n_buy_fills"))
    sells = _as_int(pick(summary, "sell_fills", "sells", "n_sell_fills"))
    if isinstance(fills_v, dict):
        buys = buys if buys is not None else _as_int(fills_v.get("buy", fills_v.get("BUY")))
        sells = sells if sells is not None else _as_int(fills_v.get("sell", fills_v.get("SELL")))
        parts = [_as_int(x) for x in fills_v.values()]
        fills = sum(p for p in parts if p is not None) if any(p is not None for p in parts) else None
    if fills is None and buys is not None and sells is not None:
        fills = buys + sells
    return {
        "ticks": ticks,
        "fills": fills,
        "buys": buys,
        "sells": sells,
        "bad_rows": _as_int(pick(summary, "bad_rows", "bad_rows_skipped", "skipped_rows", "bad")),
        "reported_wall_s": pick(summary, "wall_time_s", "wall_s", "wall_time", "elapsed_s"),
        "reported_ticks_per_s": pick(summary, "ticks_per_s", "ticks_per_second", "tps"),
    }


def count_data_lines(path: Path) -> int | None:
    """Rows of a CSV after its header (None if absent)."""
    try:
        with open(path, "rb") as fh:
            n = sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b""))
            if fh.tell() == 0:
                return 0
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                n += 1
        return max(0, n - 1)
    except OSError:
        return None


def run_bothost_backtest(
    data: Path, *, config: Path = DEFAULT_CONFIG, bars: int | None = None, timeout: float = 1800.0,
    keep: Path | None = None,
) -> dict:
    """`bothost backtest CONFIG --data FILE --out DIR`, in a fresh working folder (so no state
    from an earlier run can be resumed), measured; reads DIR/summary.json and DIR/fills.csv."""
    work = Path(tempfile.mkdtemp(prefix="bothost-bench-"))
    out_dir = work / "out"
    cmd = [*bothost_exe(), "backtest", str(config), "--data", str(data), "--out", str(out_dir)]
    try:
        r = measure(cmd, cwd=work, timeout=timeout)
        summary = None
        sp = out_dir / "summary.json"
        if sp.exists():
            with contextlib.suppress(ValueError, OSError):
                summary = json.loads(sp.read_text())
        parsed = parse_summary(summary)
        fills_csv = count_data_lines(out_dir / "fills.csv")
        fills = fills_csv if fills_csv is not None else parsed["fills"]
        ticks = parsed["ticks"]
        rec: dict[str, Any] = {
            "system": "bothost",
            "bars": bars,
            "data": str(data),
            "status": "ok" if r.ok else ("timeout" if r.timed_out else "failed"),
            **r.to_dict(),
            "rss_mb": r.best_rss_mb(),
            "ticks": ticks,
            "fills": fills,
            "fills_csv_rows": fills_csv,
            "summary_fills": parsed["fills"],
            "buys": parsed["buys"],
            "sells": parsed["sells"],
            "bad_rows": parsed["bad_rows"],
            "reported_wall_s": parsed["reported_wall_s"],
            "reported_ticks_per_s": parsed["reported_ticks_per_s"],
            "summary_keys": sorted(summary) if isinstance(summary, dict) else None,
            "ticks_per_s": (ticks / r.wall_s) if ticks and r.wall_s and r.ok else None,
            "bars_per_s": (bars / r.wall_s) if bars and r.wall_s and r.ok else None,
            "notes": [],
        }
        if not r.ok:
            rec["error"] = r.tail(15) or f"exit status {r.rc}"
        else:
            if summary is None:
                rec["notes"].append("no summary.json")
            if fills_csv is None:
                rec["notes"].append("no fills.csv")
            if ticks and bars and ticks < 4 * bars * 0.99:
                rec["notes"].append(f"ticks {ticks} < 4 x bars: bad rows, or a resumed run?")
            if fills_csv is not None and parsed["fills"] is not None and fills_csv != parsed["fills"]:
                rec["notes"].append(f"summary fills {parsed['fills']} != fills.csv rows {fills_csv}")
        if r.rss_at_floor:
            rec["notes"].append(f"ru_maxrss at the harness floor ({r.rss_floor_mb} MB); polled figure used")
        if keep is not None and out_dir.exists():
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copytree(out_dir, keep, dirs_exist_ok=True)
        return rec
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# data


def _fmt_vol(vol: float) -> str:
    return f"{vol:g}".replace(".", "p")


def dataset_path(bars: int, seed: int, vol: float, generator: str, data_dir: Path = DATA_DIR,
                 band: str | None = None) -> Path:
    banded = f"_band{band.replace(',', '-')}" if band else ""
    return data_dir / f"bars_{bars}_seed{seed}_vol{_fmt_vol(vol)}{banded}_{generator}.csv"


def find_option(help_text: str, candidates: Sequence[str]) -> str | None:
    """The first of `candidates` that --help lists as a whole option name (not as a prefix)."""
    for o in candidates:
        if re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", help_text):
            return o
    return None


def _cli_synth_help() -> str | None:
    r = measure([*bothost_exe(), "data", "synth", "--help"], timeout=60, poll_interval=None)
    return r.stdout + r.stderr if r.ok else None


_MODULE_PROBE = r"""
import inspect, json
from bothost_plugins.replay_feed.synthetic import write_csv
print(json.dumps(list(inspect.signature(write_csv).parameters)))
"""

_MODULE_CALL = r"""
import inspect, json, sys
from bothost_plugins.replay_feed.synthetic import write_csv
a = json.loads(sys.argv[1])
params = inspect.signature(write_csv).parameters
kw, pos = {}, []
aliases = {
    "path": ("path", "out", "dest", "file", "filename", "out_path", "output"),
    "bars": ("bars", "n", "n_bars", "count", "rows", "length"),
    "seed": ("seed",),
    "vol": ("vol", "annual_vol", "volatility", "sigma", "annual_volatility"),
}
for key, names in aliases.items():
    name = next((n for n in names if n in params), None)
    if name is not None:
        kw[name] = a[key]
    elif key == "vol" and a["vol_required"]:
        sys.exit("write_csv takes no volatility parameter")
    elif key in ("path", "bars"):
        sys.exit(f"write_csv: no parameter for {key}: {list(params)}")
write_csv(**kw)
"""


def generate_dataset(
    bars: int, *, seed: int = 42, vol: float = 0.6, generator: str = "auto",
    data_dir: Path = DATA_DIR, default_vol: float = 0.6, timeout: float = 1800.0, band: str | None = None,
) -> dict:
    """Make (once) the synthetic file for (bars, seed, vol). generator: auto | cli | module | local.
    auto tries `bothost data synth`, then the replay feed's write_csv, then benchmarks/synth_gbm.py.
    Returns {path, generator, status, gen_wall_s, notes}. Files are cached in benchmarks/.data/."""
    data_dir.mkdir(parents=True, exist_ok=True)
    order = ["cli", "module", "local"] if generator == "auto" else [generator]
    if band:  # a price band (reflecting walls) is an option of `bothost data synth` only
        order = ["cli"]
    notes: list[str] = []
    non_default_vol = not math.isclose(vol, default_vol)
    for gen in order:
        path = dataset_path(bars, seed, vol, gen, data_dir, band)
        if path.exists() and path.stat().st_size > 0:
            return {"path": str(path), "generator": gen, "status": "cached", "gen_wall_s": None,
                    "bars": bars, "seed": seed, "vol": vol, "notes": notes}
        tmp = path.with_name(path.name + ".part")
        tmp.unlink(missing_ok=True)
        if gen == "cli":
            help_text = _cli_synth_help()
            if help_text is None:
                notes.append("`bothost data synth` not available")
                continue
            cmd = [*bothost_exe(), "data", "synth", "--bars", str(bars), "--seed", str(seed), "--out", str(tmp)]
            opt = find_option(help_text, ("--volatility", "--vol", "--annual-vol", "--sigma"))
            if opt is not None:  # always explicit, so a change of the CLI's default cannot move the data
                cmd += [opt, str(vol)]
            elif non_default_vol:
                notes.append("`bothost data synth` has no volatility option")
                continue
            if band:
                cmd += ["--band", band]
        elif gen == "module":
            probe = measure([sys.executable, "-c", _MODULE_PROBE], timeout=60, poll_interval=None)
            if not probe.ok:
                notes.append("bothost_plugins.replay_feed.synthetic.write_csv not importable")
                continue
            args = {"path": str(tmp), "bars": bars, "seed": seed, "vol": vol, "vol_required": non_default_vol}
            cmd = [sys.executable, "-c", _MODULE_CALL, json.dumps(args)]
        elif gen == "local":
            cmd = [sys.executable, str(HERE / "synth_gbm.py"), "--bars", str(bars), "--seed", str(seed),
                   "--vol", str(vol), "--out", str(tmp)]
        else:
            raise ValueError(f"unknown generator {gen!r}")
        r = measure(cmd, timeout=timeout, poll_interval=None, cwd=REPO)
        if r.ok and tmp.exists() and tmp.stat().st_size > 0:
            os.replace(tmp, path)
            return {"path": str(path), "generator": gen, "status": "generated", "gen_wall_s": round(r.wall_s, 2),
                    "bars": bars, "seed": seed, "vol": vol, "notes": notes}
        tmp.unlink(missing_ok=True)
        notes.append(f"{gen} generator failed: {r.tail(3)}")
    return {"path": None, "generator": None, "status": "failed", "gen_wall_s": None,
            "bars": bars, "seed": seed, "vol": vol, "notes": notes}


# --------------------------------------------------------------------------------------------
# peer environments


def _version_key(v: str) -> tuple:
    return tuple(int(x) if x.isdigit() else 0 for x in re.split(r"[.\-+]", v))


def nearest_version(pin: str, available: Iterable[str]) -> str | None:
    """The highest available version not above `pin`, else the lowest above it."""
    avail = sorted(set(available), key=_version_key)
    if not avail:
        return None
    if pin in avail:
        return pin
    below = [v for v in avail if _version_key(v) <= _version_key(pin)]
    return below[-1] if below else avail[0]


def _venv_python(name: str) -> Path:
    return VENV_DIR / name / "bin" / "python"


def installed_version(python: Path, package: str) -> str | None:
    r = measure([str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
                timeout=120, poll_interval=None)
    return r.stdout.strip().splitlines()[-1] if r.ok and r.stdout.strip() else None


def ensure_peer_env(name: str, *, log=print, install_timeout: float = 1800.0) -> dict:
    """Create (once) benchmarks/.venvs/<name> with the pinned peer. Returns
    {name, python, package, pin, version, status, note}."""
    spec = PEERS[name]
    package, pin = spec["package"], spec["pin"]
    py = _venv_python(name)
    info = {"name": name, "python": str(py), "package": package, "pin": pin, "version": None,
            "status": "failed", "note": None}
    if py.exists():
        have = installed_version(py, package)
        if have:
            info.update(version=have, status="ok")
            if have != pin:
                info["note"] = f"{package} {have} installed (pin {pin} was not installable)"
            return info
    log(f"[peers] creating {VENV_DIR / name} ({package}=={pin}) ...")
    shutil.rmtree(VENV_DIR / name, ignore_errors=True)
    r = measure([sys.executable, "-m", "venv", str(VENV_DIR / name)], timeout=300, poll_interval=None)
    if not r.ok:
        info["note"] = f"venv creation failed: {r.tail(3)}"
        return info
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    req = PEERS_DIR / f"requirements-{name}.txt"
    attempts = []
    if req.exists():
        attempts.append(("frozen requirements", [*pip, "-r", str(req)]))
    attempts.append((f"{package}=={pin}", [*pip, f"{package}=={pin}"]))
    for label, cmd in attempts:
        r = measure(cmd, timeout=install_timeout, poll_interval=None)
        if r.ok:
            info.update(version=installed_version(py, package), status="ok")
            if label != "frozen requirements":
                info["note"] = f"installed {package}=={pin} alone (frozen set not installable)"
            return info
        log(f"[peers] {label} not installable: {r.tail(2)}")
    # nearest available version
    r = measure([str(py), "-m", "pip", "index", "versions", package], timeout=300, poll_interval=None)
    m = re.search(r"Available versions:\s*(.+)", r.stdout)
    near = nearest_version(pin, [v.strip() for v in m.group(1).split(",")]) if m else None
    if near and near != pin:
        r = measure([*pip, f"{package}=={near}"], timeout=install_timeout, poll_interval=None)
        if r.ok:
            info.update(version=installed_version(py, package), status="ok",
                        note=f"{package} {pin} not installable here; nearest available {near} used")
            return info
    info["note"] = f"{package} could not be installed (pin {pin}, nearest {near})"
    return info


def env_versions(python: Path, packages: Iterable[str]) -> dict:
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            "for p in sys.argv[1:]:\n"
            "    try: out[p] = m.version(p)\n"
            "    except Exception: out[p] = None\n"
            "print(json.dumps(out))")
    r = measure([str(python), "-c", code, *packages], timeout=120, poll_interval=None)
    return last_json_line(r.stdout) or {}


def run_peer(name: str, data: Path, *, bars: int | None, env_info: dict, timeout: float = 600.0,
             numba_cache: Path | None = None, mode: str | None = None,
             extra_args: Sequence[str] = ()) -> dict:
    """One measured run of a peer script in its venv."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONHASHSEED"] = "0"
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    script = PEERS_DIR / PEERS[name]["script"]
    cmd = [env_info["python"], str(script), str(data), "--lots", str(DEFAULT_LOTS), *extra_args]
    r = measure(cmd, env=env, cwd=REPO, timeout=timeout)
    out = last_json_line(r.stdout) or {}
    rec = {
        "system": name,
        "version": out.get("version", env_info.get("version")),
        "mode": mode,
        "bars": bars,
        "data": str(data),
        "status": "ok" if r.ok else ("timeout" if r.timed_out else "failed"),
        **r.to_dict(),
        "rss_mb": r.best_rss_mb(),
        "fills": out.get("fills"),
        "buys": out.get("buys"),
        "sells": out.get("sells"),
        "open_lots": out.get("open_lots"),
        "realized_pnl": out.get("realized_pnl"),
        "internal": out.get("timings"),
        "loop_s": out.get("loop_s"),
        "bars_full_grid_pct": out.get("bars_full_grid_pct"),
        "bars_per_s": (bars / r.wall_s) if bars and r.wall_s and r.ok else None,
    }
    if not r.ok:
        rec["error"] = r.tail(10) or f"exit status {r.rc}"
    return rec


# --------------------------------------------------------------------------------------------
# hooks for sections the lead writes


def find_stat(obj: Any, names: Sequence[str]) -> dict:
    """Flatten `obj` and keep the numeric leaves whose key mentions one of `names`."""
    found: dict[str, Any] = {}

    def walk(o: Any, prefix: str) -> None:
        if isinstance(o, dict):
            for k, v in o.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(o, (int, float)) and not isinstance(o, bool):
            leaf = prefix.rsplit(".", 1)[-1].lower()
            if any(n in leaf for n in names):
                found[prefix] = o

    walk(obj, "")
    return found


def run_hook(script: Path, *, timeout: float = 600.0, extra_args: Sequence[str] = ("--json",)) -> dict:
    if not script.exists():
        return {"status": "absent", "script": str(script.relative_to(REPO))}
    r = measure([sys.executable, str(script), *extra_args], cwd=REPO, timeout=timeout)
    data = last_json_line(r.stdout)
    rec = {
        "status": "ok" if r.ok and data is not None else ("timeout" if r.timed_out else "failed"),
        "script": str(script.relative_to(REPO)),
        **r.to_dict(),
        "result": data,
        "stats": find_stat(data, ("p50", "p99", "max", "median")) if data else {},
    }
    if rec["status"] != "ok":
        rec["error"] = r.tail(10) or "no JSON object on stdout"
    return rec


# --------------------------------------------------------------------------------------------
# analysis and rendering


def fit_cost_per_fill(points: Sequence[tuple[float, float]]) -> dict | None:
    """Least-squares wall = base + per_fill x fills over runs with the same ticks."""
    pts = [(float(f), float(w)) for f, w in points if f is not None and w is not None]
    if len(pts) < 2:
        return None
    n = len(pts)
    mx = sum(f for f, _ in pts) / n
    my = sum(w for _, w in pts) / n
    sxx = sum((f - mx) ** 2 for f, _ in pts)
    if sxx == 0:
        return None
    slope = sum((f - mx) * (w - my) for f, w in pts) / sxx
    return {"base_s": my - slope * mx, "per_fill_us": slope * 1e6, "points": n}


def fmt(v: Any, spec: str = "", none: str = "—") -> str:
    if v is None:
        return none
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return none
    if spec:
        return format(v, spec)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def ratio(peer_s: float | None, bothost_s: float | None) -> str:
    if not peer_s or not bothost_s:
        return "—"
    return f"{peer_s / bothost_s:.2f}×"


def render(results: dict):
    """rich renderables for every section present in `results`."""
    from rich.table import Table
    from rich.text import Text

    out = []
    bh = results.get("bothost") or []
    if bh:
        t = Table(title="1. bothost backtest (TQQQ grid, configs/tqqq-paper.yaml)", title_justify="left")
        for col in ("bars", "status", "wall s", "ticks", "ticks/s", "bars/s", "peak RSS MB", "fills", "notes"):
            t.add_column(col, justify="right" if col not in ("status", "notes") else "left")
        for r in bh:
            t.add_row(
                fmt(r.get("bars")), _status(r), fmt(r.get("wall_s"), ".2f"), fmt(r.get("ticks")),
                fmt(r.get("ticks_per_s"), ",.0f"), fmt(r.get("bars_per_s"), ",.0f"), fmt(r.get("rss_mb"), ".0f"),
                fmt(r.get("fills")), _note(r),
            )
        out.append(t)

    peers = results.get("peers") or []
    if peers:
        t = Table(title="2. peers on the same file (subprocess wall time, peak RSS of the child)", title_justify="left")
        for col in ("system", "bars", "mode", "status", "wall s", "peak RSS MB", "fills", "bothost fills",
                    "× bothost time", "internal"):
            t.add_column(col, justify="left" if col in ("system", "mode", "status", "internal") else "right")
        bh_by_bars = {r.get("bars"): r for r in bh if r.get("status") == "ok"}
        for r in peers:
            if r.get("mode") == "loop":
                continue
            b = bh_by_bars.get(r.get("bars"), {})
            internal = r.get("internal") or {}
            t.add_row(
                f"{r.get('system')} {r.get('version') or ''}", fmt(r.get("bars")), r.get("mode") or "", _status(r),
                fmt(r.get("wall_s"), ".2f"), fmt(r.get("rss_mb"), ".0f"), fmt(r.get("fills")), fmt(b.get("fills")),
                ratio(r.get("wall_s"), b.get("wall_s")),
                " ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in internal.items()
                         if isinstance(v, (int, float)) and k != "total_s"),
            )
        out.append(t)
        notes = ["Peers fill at bar granularity (orders decided at a bar's close are live from the next bar; "
                 "limits crossed at the open fill at the open); bothost matches four ticks per bar, so fill "
                 "counts can differ where bars span more than the grid step."]
        for r in peers:
            if r.get("mode") == "loop" and r.get("loop_s"):
                b = bh_by_bars.get(r.get("bars"), {})
                loop = min(r["loop_s"])
                notes.append(f"{r.get('system')} {r.get('version') or ''} compiled loop alone (a second "
                             f"from_order_func call in one process, JIT done, no import or load): {loop:.2f} s "
                             f"for {fmt(r.get('bars'))} bars" + (f"; bothost whole run / this: "
                             f"{b['wall_s'] / loop:.2f}×" if b.get("wall_s") else ""))
        full = next((r for r in peers if r.get("bars_full_grid_pct") is not None and r.get("status") == "ok"), None)
        if full:
            notes.append(f"On the {fmt(full.get('bars'))}-bar file all 88 levels are open on "
                         f"{full['bars_full_grid_pct']:.1f}% of bars (vectorbt peer's count): backtesting.py "
                         "then carries 88 take-profit orders through every bar.")
        for e in results.get("peer_envs") or []:
            notes.append(f"{e['package']}: pin {e['pin']}, used {e.get('version') or 'none'}"
                         + (f" — {e['note']}" if e.get("note") else ""))
        notes.append("Anchors (earlier, 1,000,000 bars): " + "; ".join(
            f"{k}: {v['wall_s']} s, {v['peak_rss_mb']} MB" for k, v in ANCHORS.items()))
        out.append(Text("\n".join(notes), style="dim"))

    st = results.get("startup") or []
    if st:
        t = Table(title="3. start-up (median of repeated runs)", title_justify="left")
        for col in ("command", "runs", "status", "median s", "min s", "max s", "peak RSS MB"):
            t.add_column(col, justify="left" if col in ("command", "status") else "right")
        for r in st:
            t.add_row(r["label"], fmt(r.get("runs")), r.get("status", ""), fmt(r.get("median_s"), ".3f"),
                      fmt(r.get("min_s"), ".3f"), fmt(r.get("max_s"), ".3f"), fmt(r.get("peak_rss_mb"), ".0f"))
        out.append(t)

    cw = results.get("cost_vs_work") or {}
    if cw.get("runs"):
        t = Table(title="4. cost against work (same bars, different volatility)", title_justify="left")
        for col in ("annual vol", "bars", "status", "wall s", "ticks/s", "fills", "fills (crossings)/s"):
            t.add_column(col, justify="right" if col != "status" else "left")
        for r in cw["runs"]:
            fps = (r["fills"] / r["wall_s"]) if r.get("fills") and r.get("wall_s") and r.get("status") == "ok" else None
            t.add_row(fmt(r.get("vol"), ".2f"), fmt(r.get("bars")), _status(r), fmt(r.get("wall_s"), ".2f"),
                      fmt(r.get("ticks_per_s"), ",.0f"), fmt(r.get("fills")), fmt(fps, ",.0f"))
        out.append(t)
        fit = cw.get("fit")
        if fit:
            fills = [r["fills"] for r in cw["runs"] if r.get("status") == "ok" and r.get("fills")]
            spread = max(fills) / min(fills) if fills and min(fills) > 0 else 0
            line = (f"wall ≈ {fit['base_s']:.2f} s + {fit['per_fill_us']:.1f} µs × fills "
                    f"({fit['points']} runs, same ticks)")
            if fit["per_fill_us"] <= 0 or spread < 2:
                line += (f" — not meaningful: fills vary only {spread:.1f}× across these files "
                         "(a path that sinks fills the grid, and then nothing fills), timing noise dominates")
            out.append(Text(line, style="dim"))

    for key, title in (("latency", "5a. latency (benchmarks/latency.py)"),
                       ("reconstruct", "5b. reconstruct (benchmarks/reconstruct_bench.py)")):
        h = results.get(key)
        if not h:
            continue
        t = Table(title=title, title_justify="left", min_width=60)
        t.add_column("stat")
        t.add_column("value", justify="right")
        if h.get("status") != "ok":
            t.add_row("status", h.get("status", "?") + (f": {error_line(h['error'])}" if h.get("error") else ""))
        for k, v in (h.get("stats") or {}).items():
            t.add_row(k, fmt(v, ",.3f") if isinstance(v, float) else fmt(v))
        out.append(t)
    return out


def error_line(text: str | None) -> str:
    """The most telling line of an error output: the last one saying error, else the last one."""
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    flagged = [ln for ln in lines if re.search(r"error|exception|no such|not found|traceback", ln, re.I)]
    return (flagged[-1] if flagged else lines[-1])[:200]


def _note(r: dict) -> str:
    parts = list(r.get("notes") or [])
    if r.get("error"):
        parts.insert(0, error_line(r["error"]))
    return "; ".join(parts)


def _status(r: dict) -> str:
    s = r.get("status") or "?"
    return {"ok": "[green]ok[/]", "failed": "[red]failed[/]", "timeout": "[red]timeout[/]",
            "skipped": "[yellow]skipped[/]", "unavailable": "[red]unavailable[/]"}.get(s, s)


def write_json(results: dict, path: Path) -> Path:
    """Atomic write (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(results, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def machine_info() -> dict:
    import platform

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "bothost_version": None,
        "git_commit": None,
    }
    with contextlib.suppress(Exception):
        import importlib.metadata as md

        info["bothost_version"] = md.version("bothost")
    with contextlib.suppress(Exception):
        info["git_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                            text=True, timeout=10).stdout.strip() or None
    with contextlib.suppress(Exception):
        with open("/proc/meminfo") as fh:
            info["mem_total_mb"] = int(fh.readline().split()[1]) // 1024
    with contextlib.suppress(Exception):
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    return info
