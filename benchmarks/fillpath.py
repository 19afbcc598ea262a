"""Issue 17's section: the fill path, on a range-bound market where the grid fills constantly.

bothost, backtesting.py and vectorbt (cold, warm, loop) on the same range-bound file
(``bothost data synth --bars 1000000 --seed 42 --volatility 1.2 --band 30,80``, about 120,000
fills), bothost alone on the 10,000,000-bar file of the same kind, and the issue's targets read
off this run's figures (and the cost-against-work fit, the standard file's peers and the latency
section's fills figures when those sections ran too). Each number is a child process measured
from outside, as everywhere in this suite.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import benchlib as bl

#: the issue's targets
VS_VECTORBT_WARM = 2.0
VS_BACKTESTING = 10.0
PER_FILL_US = 25.0
STANDARD_VS_VECTORBT_WARM = 3.0
RSS_10M_MB = 300.0
WALL_10M_RATIO = 11.0
LIVE_P99_US = 1000.0


def run_section(suite) -> dict:
    """Runs the section for ``suite`` (benchmarks/run.py's Suite) and returns its record."""
    a = suite.a
    vol, band = a.range_vol, a.range_band
    rec: dict = {"vol": vol, "band": band, "bothost": [], "peers": []}
    suite.results["fill_path"] = rec
    for bars in a.range_sizes:
        rec["bothost"].append(suite.backtest(bars, vol, band))
        suite.save()
    if a.peers:
        ds = suite.dataset(a.range_peer_bars, vol, band)
        if ds["path"]:
            rec["peers"] = run_peers(suite, Path(ds["path"]), a.range_peer_bars, vol)
    rec["targets"] = targets(suite.results)
    suite.save()
    return rec


def run_peers(suite, data: Path, bars: int, vol: float) -> list[dict]:
    out = []
    envs = {name: bl.ensure_peer_env(name, log=suite.log) for name in bl.PEERS}
    for name, info in envs.items():
        if info["status"] != "ok":
            suite.log(f"peer env {name}: {info['status']} {info.get('note') or ''}")
    if envs["backtesting"]["status"] == "ok":
        suite.log(f"fill path: backtesting.py on {bars:,} range-bound bars ...")
        out.append(_done(suite, bl.run_peer("backtesting", data, bars=bars, env_info=envs["backtesting"],
                                            timeout=a_timeout(suite), mode="-"), vol))
    if envs["vectorbt"]["status"] == "ok":
        cache = Path(tempfile.mkdtemp(prefix="numba-cache-", dir=bl.VENV_DIR))
        try:
            for mode in ("cold", "warm", "loop"):
                suite.log(f"fill path: vectorbt ({mode}) on {bars:,} range-bound bars ...")
                out.append(_done(suite, bl.run_peer("vectorbt", data, bars=bars, env_info=envs["vectorbt"],
                                                    timeout=a_timeout(suite), numba_cache=cache, mode=mode,
                                                    extra_args=["--repeat", "2"] if mode == "loop" else []), vol))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    return out


def a_timeout(suite) -> float:
    return suite.a.peer_timeout


def _done(suite, rec: dict, vol: float) -> dict:
    rec["vol"] = vol
    if rec["status"] == "ok":
        suite.log(f"  ok: {rec['wall_s']:.2f} s, {bl.fmt(rec['rss_mb'], '.0f')} MB, fills {bl.fmt(rec['fills'])}")
    else:
        suite.log(f"  [red]{rec['status']}[/]: {bl._note(rec)}")
    return rec


def _ok(rows, **match) -> dict | None:
    return next((r for r in rows or [] if r.get("status") == "ok"
                 and all(r.get(k) == v for k, v in match.items())), None)


def targets(results: dict) -> list[dict]:
    """Each target of the issue with this run's figure and whether it was met (None: not measured)."""
    fp = results.get("fill_path") or {}
    out: list[dict] = []

    def add(name: str, value, target: str, met) -> None:
        out.append({"target": name, "value": value, "goal": target, "met": met})

    b1 = _ok(fp.get("bothost"), bars=1_000_000)
    vbt = _ok(fp.get("peers"), system="vectorbt", mode="warm")
    bt = _ok(fp.get("peers"), system="backtesting")
    x = vbt["wall_s"] / b1["wall_s"] if b1 and vbt else None
    add("range-bound 1M: vectorbt warm / bothost", x, f">= {VS_VECTORBT_WARM}x", None if x is None else x >= VS_VECTORBT_WARM)
    x = bt["wall_s"] / b1["wall_s"] if b1 and bt else None
    add("range-bound 1M: backtesting.py / bothost", x, f">= {VS_BACKTESTING}x", None if x is None else x >= VS_BACKTESTING)
    fit = (results.get("cost_vs_work") or {}).get("fit") or {}
    x = fit.get("per_fill_us")
    add("cost per fill (cost-against-work fit), us", x, f"< {PER_FILL_US}", None if x is None else x < PER_FILL_US)
    s1 = _ok(results.get("bothost"), bars=1_000_000)
    svbt = _ok(results.get("peers"), system="vectorbt", mode="warm", bars=1_000_000)
    x = svbt["wall_s"] / s1["wall_s"] if s1 and svbt else None
    add("standard 1M: vectorbt warm / bothost", x, f">= {STANDARD_VS_VECTORBT_WARM}x",
        None if x is None else x >= STANDARD_VS_VECTORBT_WARM)
    b10 = _ok(fp.get("bothost"), bars=10_000_000)
    x = b10.get("rss_mb") if b10 else None
    add("range-bound 10M: peak RSS MB", x, f"< {RSS_10M_MB:.0f}", None if x is None else x < RSS_10M_MB)
    x = b10["wall_s"] / b1["wall_s"] if b10 and b1 else None
    add("range-bound 10M wall / 1M wall", x, f"<= {WALL_10M_RATIO}", None if x is None else x <= WALL_10M_RATIO)
    lat = ((results.get("latency") or {}).get("result") or {}).get("fills") or {}
    x = lat.get("p99_us")
    add("live tick-to-order p99 with fills, us", x, f"< {LIVE_P99_US:.0f}", None if x is None else x < LIVE_P99_US)
    return out


def render(results: dict):
    """rich renderables for the section, if it ran."""
    from rich.table import Table
    from rich.text import Text

    fp = results.get("fill_path")
    if not fp:
        return []
    out = []
    t = Table(title=f"6. fill path: range-bound market (vol {fp['vol']:g}, band {fp['band']})", title_justify="left")
    for col in ("system", "bars", "mode", "status", "wall s", "peak RSS MB", "fills", "× bothost time"):
        t.add_column(col, justify="left" if col in ("system", "mode", "status") else "right")
    by_bars = {r.get("bars"): r for r in fp.get("bothost") or [] if r.get("status") == "ok"}
    for r in fp.get("bothost") or []:
        t.add_row("bothost", bl.fmt(r.get("bars")), "", bl._status(r), bl.fmt(r.get("wall_s"), ".2f"),
                  bl.fmt(r.get("rss_mb"), ".0f"), bl.fmt(r.get("fills")), "")
    for r in fp.get("peers") or []:
        if r.get("mode") == "loop":
            continue
        b = by_bars.get(r.get("bars"), {})
        t.add_row(f"{r.get('system')} {r.get('version') or ''}", bl.fmt(r.get("bars")), r.get("mode") or "",
                  bl._status(r), bl.fmt(r.get("wall_s"), ".2f"), bl.fmt(r.get("rss_mb"), ".0f"),
                  bl.fmt(r.get("fills")), bl.ratio(r.get("wall_s"), b.get("wall_s")))
    out.append(t)
    loops = [r for r in fp.get("peers") or [] if r.get("mode") == "loop" and r.get("loop_s")]
    if loops:
        out.append(Text(f"vectorbt compiled loop alone: {min(loops[0]['loop_s']):.2f} s", style="dim"))
    tg = Table(title="issue 17 targets (this run)", title_justify="left")
    for col in ("target", "value", "goal", "met"):
        tg.add_column(col, justify="right" if col == "value" else "left")
    for row in fp.get("targets") or []:
        met = row["met"]
        tg.add_row(row["target"], bl.fmt(row["value"], ".2f"), row["goal"],
                   "not measured" if met is None else ("yes" if met else "[red]no[/]"))
    out.append(tg)
    return out
