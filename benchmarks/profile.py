"""Profile `bothost backtest` on one data file under cProfile; write the top-N cumulative listing.

    python benchmarks/profile.py DATA.csv [--name NAME] [--config configs/tqqq-paper.yaml] [--top 40]
    python benchmarks/profile.py --bars 1000000          # the benchmark's synthetic file (made if absent)

Writes benchmarks/profiles/<name>.txt (a header saying what was profiled, then pstats' listing
sorted by cumulative time) and keeps the raw stats as benchmarks/profiles/<name>.prof (not
committed; open it with `python -m pstats` or snakeviz). The backtest runs in a child process
(started in a fresh working folder, like the benchmark's runs), so the profile holds bothost only;
the import of bothost.cli is left out unless --include-import.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's `profile`, which cProfile imports; keep this
# folder off the front of sys.path so nothing here shadows it, then load our helpers by path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE))

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import benchlib as bl  # noqa: E402

PROFILES = _HERE / "profiles"

RUNNER = r"""
import cProfile, sys
out, include_import, argv = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
sys.argv = ["bothost", *argv]
prof = cProfile.Profile()
code = 0
if include_import:
    prof.enable()
from bothost.cli import main
prof.enable()
try:
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
finally:
    prof.disable()
    prof.dump_stats(out)
sys.exit(code)
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/profile.py", description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", type=Path, help="bars file (default: the benchmark's synthetic file)")
    ap.add_argument("--bars", type=int, default=1_000_000, help="size of the synthetic file when no DATA")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--vol", type=float, default=0.6)
    ap.add_argument("--name", default=None, help="profile name (default: derived from the data file)")
    ap.add_argument("--config", type=Path, default=bl.DEFAULT_CONFIG)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--sort", default="cumulative", help="pstats sort key (default cumulative)")
    ap.add_argument("--include-import", action="store_true", help="profile the import of bothost.cli too")
    ap.add_argument("--timeout", type=float, default=3600.0)
    a = ap.parse_args(argv)

    if a.data is None:
        ds = bl.generate_dataset(a.bars, seed=a.seed, vol=a.vol)
        if not ds["path"]:
            print("no data: " + "; ".join(ds["notes"]), file=sys.stderr)
            return 2
        a.data = Path(ds["path"])
    data = a.data.resolve()
    if not data.exists():
        print(f"no such file: {data}", file=sys.stderr)
        return 2
    name = a.name or data.stem
    PROFILES.mkdir(parents=True, exist_ok=True)
    prof_path = PROFILES / f"{name}.prof"
    txt_path = PROFILES / f"{name}.txt"

    work = Path(tempfile.mkdtemp(prefix="bothost-profile-"))
    try:
        bt_args = ["backtest", str(a.config.resolve()), "--data", str(data), "--out", str(work / "out")]
        cmd = [sys.executable, "-c", RUNNER, str(prof_path), "1" if a.include_import else "0", *bt_args]
        print(f"profiling: bothost {' '.join(bt_args)}", file=sys.stderr)
        r = bl.measure(cmd, cwd=work, timeout=a.timeout)
        summary = bl.parse_summary(_load_json(work / "out" / "summary.json"))
        fills = bl.count_data_lines(work / "out" / "fills.csv")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not prof_path.exists():
        print(f"bothost backtest failed (exit {r.rc}) and left no profile:\n{r.tail(15)}", file=sys.stderr)
        return 1

    buf = io.StringIO()
    st = pstats.Stats(str(prof_path), stream=buf)
    st.sort_stats(a.sort).print_stats(a.top)
    listing = _shorten(buf.getvalue())
    info = bl.machine_info()
    header = [
        f"# profile of: bothost {' '.join(bt_args[:2])} --data {data.name} --out <tmp>",
        f"# when: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}, "
        f"commit {info.get('git_commit') or '?'}, bothost {info.get('bothost_version') or '?'}",
        f"# machine: {info.get('cpus')} cpus, {info.get('cpu_model', '?')}, Python {info.get('python')}",
        f"# exit status {r.rc}; wall {r.wall_s:.2f} s under cProfile (slower than unprofiled); "
        f"peak RSS {bl.fmt(r.best_rss_mb(), '.0f')} MB",
        f"# data rows {bl.count_data_lines(data)}, ticks {bl.fmt(summary['ticks'])}, fills {bl.fmt(fills)}",
        f"# top {a.top} by {a.sort}; import of bothost.cli {'included' if a.include_import else 'excluded'}",
        "",
    ]
    txt_path.write_text("\n".join(header) + listing)
    print(f"wrote {txt_path.relative_to(bl.REPO)} (raw stats: {prof_path.relative_to(bl.REPO)})")
    if r.rc != 0:
        print(f"note: bothost backtest exited {r.rc}:\n{r.tail(8)}", file=sys.stderr)
        return 1
    return 0


def _shorten(text: str) -> str:
    """Paths relative to the repository; site-packages and the stdlib by a short prefix."""
    import re
    import sysconfig

    text = text.replace(str(bl.REPO) + "/", "")
    text = re.sub(r"\S*/site-packages/", "site-packages/", text)
    stdlib = sysconfig.get_paths().get("stdlib")
    if stdlib:
        text = text.replace(stdlib + "/", "stdlib/")
    return text


def _load_json(p: Path):
    import json

    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
