"""bothost benchmark suite: replay throughput and memory against backtesting.py and vectorbt,
start-up time, cost against work, and the lead's latency / reconstruct sections.

    python benchmarks/run.py                      # everything (sizes 100k, 1M, 10M; peers on 1M)
    python benchmarks/run.py --sizes 100000,1000000 --no-peers
    python benchmarks/run.py --smoke              # CI: 100k bars, bothost only, < 2 minutes
    python benchmarks/run.py --sections peers     # only the peers (and the data they need)

Prints rich tables and writes JSON (default benchmarks/results/latest.json; --smoke writes
benchmarks/results/smoke.json). Exit status: 0 when every bothost backtest succeeded, 1 when one
failed or could not run, 2 on bad arguments. See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # append: never shadow the stdlib

import benchlib as bl  # noqa: E402
import fillpath  # noqa: E402

SECTIONS = ("backtest", "peers", "startup", "work", "hooks", "fillpath")


def _ints(s: str) -> list[int]:
    return [int(x.replace("_", "")) for x in s.split(",") if x.strip()]


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=_ints, default=[100_000, 1_000_000, 10_000_000],
                    help="bar counts for the bothost backtest (comma-separated)")
    ap.add_argument("--peer-sizes", type=_ints, default=[1_000_000],
                    help="bar counts the peers also run on (default 1000000)")
    ap.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True,
                    help="run backtesting.py and vectorbt on the same files")
    ap.add_argument("--smoke", action="store_true",
                    help="CI mode: 100k bars, bothost only, start-up 3 runs; non-zero exit if bothost fails")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default results/latest.json)")
    ap.add_argument("--config", type=Path, default=bl.DEFAULT_CONFIG)
    ap.add_argument("--generator", choices=("auto", "cli", "module", "local"), default="auto",
                    help="synthetic data source: bothost data synth, the replay feed's write_csv, "
                         "or benchmarks/synth_gbm.py (auto: the first that works)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--vol", type=float, default=0.6, help="annual volatility of the main files")
    ap.add_argument("--work-bars", type=int, default=1_000_000)
    ap.add_argument("--work-vols", type=_floats, default=[0.2, 1.2])
    ap.add_argument("--work-band", default="30,80",
                    help="LOW,HIGH price walls for the cost-against-work files, so that high volatility "
                         "means more crossings rather than a price that runs off the grid ('' for none)")
    ap.add_argument("--range-sizes", type=_ints, default=[1_000_000, 10_000_000],
                    help="fillpath section: bar counts of the range-bound files bothost runs on")
    ap.add_argument("--range-peer-bars", type=int, default=1_000_000,
                    help="fillpath section: the range-bound file the peers run on too")
    ap.add_argument("--range-vol", type=float, default=1.2, help="fillpath section: annual volatility")
    ap.add_argument("--range-band", default="30,80", help="fillpath section: LOW,HIGH price walls")
    ap.add_argument("--startup-runs", type=int, default=None, help="default 10 (3 with --smoke)")
    ap.add_argument("--peer-timeout", type=float, default=600.0)
    ap.add_argument("--bothost-timeout", type=float, default=3600.0)
    ap.add_argument("--keep-runs", type=Path, default=None,
                    help="copy each bothost run's output folder under this folder")
    a = ap.parse_args(argv)
    a.sections = {s.strip() for s in a.sections.split(",") if s.strip()}
    unknown = a.sections - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if a.smoke:
        a.sizes = [100_000]
        a.peers = False
        a.sections -= {"work", "hooks", "peers", "fillpath"}
        a.startup_runs = a.startup_runs or 3
        a.out = a.out or bl.RESULTS_DIR / "smoke.json"
    a.startup_runs = a.startup_runs or 10
    a.out = a.out or bl.RESULTS_DIR / "latest.json"
    a.config = a.config.resolve()
    if not a.peers:
        a.sections.discard("peers")
    return a


class Suite:
    def __init__(self, args: argparse.Namespace):
        from rich.console import Console

        self.a = args
        self.console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
        self.results: dict = {
            "meta": {
                "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "argv": sys.argv[1:],
                "smoke": args.smoke,
                "sections": sorted(args.sections),
                "config": str(args.config),
                "seed": args.seed,
                **bl.machine_info(),
            },
            "anchors": bl.ANCHORS,
            "data": [],
            "bothost": [],
            "peer_envs": [],
            "peers": [],
            "startup": [],
        }
        self.datasets: dict[tuple[int, float], dict] = {}

    def log(self, msg: str) -> None:
        self.console.print(f"[dim]{dt.datetime.now():%H:%M:%S}[/] {msg}")

    def save(self) -> None:
        bl.write_json(self.results, self.a.out)

    # -- data -----------------------------------------------------------------------------------
    def dataset(self, bars: int, vol: float, band: str | None = None) -> dict:
        key = (bars, vol, band)
        if key not in self.datasets:
            self.log(f"data: {bars:,} bars, vol {vol:g}, seed {self.a.seed}" + (f", band {band}" if band else "") + " ...")
            ds = bl.generate_dataset(bars, seed=self.a.seed, vol=vol, generator=self.a.generator,
                                     default_vol=self.a.vol, band=band)
            self.log(f"data: {ds['status']} via {ds['generator']} -> {ds['path']}"
                     + (f" ({ds['gen_wall_s']} s)" if ds.get("gen_wall_s") else "")
                     + (f"  [{'; '.join(ds['notes'])}]" if ds["notes"] else ""))
            self.datasets[key] = ds
            self.results["data"].append(ds)
        return self.datasets[key]

    def backtest(self, bars: int, vol: float, band: str | None = None) -> dict:
        ds = self.dataset(bars, vol, band)
        if not ds["path"]:
            return {"system": "bothost", "bars": bars, "vol": vol, "status": "skipped",
                    "error": "no data: " + "; ".join(ds["notes"])}
        self.log(f"bothost backtest: {bars:,} bars, vol {vol:g} ...")
        keep = self.a.keep_runs / f"bars{bars}_vol{vol:g}" if self.a.keep_runs else None
        rec = bl.run_bothost_backtest(Path(ds["path"]), config=self.a.config, bars=bars,
                                      timeout=self.a.bothost_timeout, keep=keep)
        rec["vol"] = vol
        rec["band"] = band
        rec["generator"] = ds["generator"]
        if rec["status"] == "ok":
            self.log(f"  ok: {rec['wall_s']:.2f} s, {bl.fmt(rec['rss_mb'], '.0f')} MB, fills {bl.fmt(rec['fills'])}")
        else:
            self.log(f"  [red]{rec['status']}[/] (exit {rec.get('rc')}): {bl._note(rec)}")
        return rec

    # -- sections -------------------------------------------------------------------------------
    def section_backtest(self) -> None:
        for bars in self.a.sizes:
            self.results["bothost"].append(self.backtest(bars, self.a.vol))
            self.save()

    def section_peers(self) -> None:
        envs = {}
        for name in bl.PEERS:
            info = bl.ensure_peer_env(name, log=self.log)
            info["key_versions"] = bl.env_versions(Path(info["python"]), bl.PEER_KEY_PACKAGES[name]) \
                if info["status"] == "ok" else {}
            envs[name] = info
            self.results["peer_envs"].append(info)
            self.log(f"peer env {name}: {info['status']} {info.get('version') or ''} {info.get('note') or ''}")
        for bars in self.a.peer_sizes:
            ds = self.dataset(bars, self.a.vol)
            if not ds["path"]:
                continue
            data = Path(ds["path"])
            if envs["backtesting"]["status"] == "ok":
                self.log(f"peer backtesting.py: {bars:,} bars ...")
                rec = bl.run_peer("backtesting", data, bars=bars, env_info=envs["backtesting"],
                                  timeout=self.a.peer_timeout, mode="-")
                self._peer_done(rec)
            if envs["vectorbt"]["status"] == "ok":
                cache = Path(tempfile.mkdtemp(prefix="numba-cache-", dir=bl.VENV_DIR))
                try:
                    for mode in ("cold", "warm", "loop"):
                        what = "compiled loop alone: simulate twice in one process" if mode == "loop" \
                            else f"{mode} numba cache"
                        self.log(f"peer vectorbt ({what}): {bars:,} bars ...")
                        rec = bl.run_peer("vectorbt", data, bars=bars, env_info=envs["vectorbt"],
                                          timeout=self.a.peer_timeout, numba_cache=cache, mode=mode,
                                          extra_args=["--repeat", "2"] if mode == "loop" else [])
                        self._peer_done(rec)
                finally:
                    shutil.rmtree(cache, ignore_errors=True)

    def _peer_done(self, rec: dict) -> None:
        rec["vol"] = self.a.vol
        self.results["peers"].append(rec)
        if rec["status"] == "ok":
            self.log(f"  ok: {rec['wall_s']:.2f} s, {bl.fmt(rec['rss_mb'], '.0f')} MB, fills {bl.fmt(rec['fills'])}")
        else:
            self.log(f"  [red]{rec['status']}[/]: {bl._note(rec)}")
        self.save()

    def section_startup(self) -> None:
        exe = bl.bothost_exe()
        for label, cmd in (("bothost --help", [*exe, "--help"]),
                           (f"bothost validate {self._rel(self.a.config)}", [*exe, "validate", str(self.a.config)])):
            self.log(f"start-up: {label} x {self.a.startup_runs} ...")
            rec = bl.repeat_startup(cmd, self.a.startup_runs, cwd=bl.REPO)
            rec["label"] = label
            self.results["startup"].append(rec)
            self.log(f"  {rec['status']}: median {bl.fmt(rec['median_s'], '.3f')} s"
                     + (f" — {bl.error_line(rec['error'])}" if rec.get("error") else ""))
        self.save()

    def section_work(self) -> None:
        runs = []
        band = self.a.work_band or None
        vols = sorted(set(self.a.work_vols) | ({self.a.vol} if self.a.work_bars in self.a.sizes
                                                and "backtest" in self.a.sections and not band else set()))
        for vol in vols:
            prior = next((r for r in self.results["bothost"]
                          if r.get("bars") == self.a.work_bars and r.get("vol") == vol and not band), None)
            runs.append(prior if prior is not None else self.backtest(self.a.work_bars, vol, band))
            self.results["cost_vs_work"] = {"bars": self.a.work_bars, "runs": runs}
            self.save()
        ok = [r for r in runs if r.get("status") == "ok"]
        fit = bl.fit_cost_per_fill([(r.get("fills"), r.get("wall_s")) for r in ok])
        if fit and ok and ok[0].get("ticks"):
            fit["base_us_per_tick"] = fit["base_s"] / ok[0]["ticks"] * 1e6
        self.results["cost_vs_work"] = {"bars": self.a.work_bars, "runs": runs, "fit": fit}
        self.save()

    def section_hooks(self) -> None:
        for key, name in (("latency", "latency.py"), ("reconstruct", "reconstruct_bench.py")):
            script = bl.HERE / name
            if script.exists():
                self.log(f"hook: python benchmarks/{name} --json ...")
            self.results[key] = bl.run_hook(script)
            self.save()

    @staticmethod
    def _rel(p: Path) -> str:
        try:
            return str(p.relative_to(bl.REPO))
        except ValueError:
            return str(p)

    def run(self) -> int:
        a = self.a
        self.log(f"bothost benchmarks -> {a.out}  (sections: {', '.join(s for s in SECTIONS if s in a.sections)})")
        # Byte-compile the project first, as any installed package is: where PYTHONDONTWRITEBYTECODE
        # is set, every run would otherwise recompile host/ and plugins/ and time that instead.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(bl.REPO / "host"), str(bl.REPO / "plugins")],
                       check=False)
        if "backtest" in a.sections:
            self.section_backtest()
        if "peers" in a.sections:
            self.section_peers()
        if "startup" in a.sections:
            self.section_startup()
        if "work" in a.sections:
            self.section_work()
        if "hooks" in a.sections:
            self.section_hooks()
        if "fillpath" in a.sections:
            fillpath.run_section(self)  # last: its targets read the other sections' figures
        self.results["meta"]["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.save()
        self.console.print()
        for r in [*bl.render(self.results), *fillpath.render(self.results)]:
            self.console.print(r)
            self.console.print()
        self.console.print(f"results written to {a.out}")
        runs = {id(r): r for r in self.results["bothost"] + (self.results.get("cost_vs_work") or {}).get("runs", [])
                + (self.results.get("fill_path") or {}).get("bothost", [])}
        failed = [r for r in runs.values() if r.get("status") != "ok"]
        if failed:
            self.console.print(f"[red]bothost backtest failed for {len(failed)} run(s)[/]")
            return 1
        return 0


def main(argv=None) -> int:
    return Suite(parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
