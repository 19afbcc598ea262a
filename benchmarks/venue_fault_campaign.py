"""The venue fault campaign, bigger than CI's: many seeded fault mixes on the simulated venue and
through the TWS simulator, I1-I4 checked after every event, nothing lost (see
tests/test_venue_fault_campaign.py and tests/support/venue_faults.py for what is checked).

    .venv/bin/python benchmarks/venue_fault_campaign.py                      # 200 venue draws, 10 rehearsals
    .venv/bin/python benchmarks/venue_fault_campaign.py --draws 1000 --tws-draws 0 --seed 5000

Prints one line per draw and the totals, and writes them to
``benchmarks/results/venue_fault_campaign.json`` (``--out``). A draw that fails is kept with its
seed and overrides (rerun it alone with ``--seed N --draws 1``); exit 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO / "tests"))  # the campaign's machinery and conftest's run_in_process

from support import venue_faults as vf  # noqa: E402


def _one(kind: str, seed: int, work: Path, bars: Path | None, keep: Path | None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"{kind}-{seed}-", dir=work))
    started = time.perf_counter()
    mix = vf.draw_mix(seed) if kind == "venue" else vf.draw_tws_mix(seed, ticks=4 * _bars_count(bars))
    what = mix.describe()
    try:
        stats = vf.run_mix(folder, mix) if kind == "venue" else vf.run_tws_mix(folder, bars, mix)
        stats = {"kind": kind, "ok": True, **stats}
    except Exception as exc:  # noqa: BLE001 - every failure is a finding to keep
        stats = {"kind": kind, "ok": False, "seed": seed, "draw": what, "error": f"{type(exc).__name__}: {exc}",
                 "traceback": traceback.format_exc(limit=6), "wall_s": round(time.perf_counter() - started, 3)}
        if keep is not None:
            shutil.copytree(folder, keep / folder.name, dirs_exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    return stats


_BARS: dict[Path, int] = {}


def _bars_count(path: Path) -> int:
    if path not in _BARS:
        _BARS[path] = sum(1 for _ in path.open()) - 1
    return _BARS[path]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=200, help="fault mixes on the simulated venue")
    ap.add_argument("--tws-draws", type=int, default=10, help="rehearsals through the TWS simulator")
    ap.add_argument("--seed", type=int, default=0, help="first seed (draw i uses seed + i)")
    ap.add_argument("--tws-bars", type=int, default=1200, help="bars of the rehearsals' data")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "venue_fault_campaign.json")
    ap.add_argument("--keep-failures", type=Path, default=None, help="copy a failed draw's folders here")
    args = ap.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the runs' own logs: thousands of rejects and drops on purpose
    from bothost_plugins.replay_feed.synthetic import write_csv  # noqa: PLC0415

    results = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="venue-fault-campaign-") as tmp:
        work = Path(tmp)
        bars = work / "bars.csv"
        write_csv(bars, bars=args.tws_bars, seed=3, volatility=1.0, start_price=50.0, interval=60)
        plan = [("venue", args.seed + i) for i in range(args.draws)]
        plan += [("tws", args.seed + i) for i in range(args.tws_draws)]
        for kind, seed in plan:
            r = _one(kind, seed, work, bars, args.keep_failures)
            results.append(r)
            if r["ok"]:
                print(f"ok   {kind:5} seed {seed:6}  {r['wall_s']:6.2f}s  checks {r['checked']:6}  "
                      f"skipped {r['skipped']:5}  executions {r['executions']:5}  "
                      f"restarts/reconstructs {r.get('restarts', r.get('reconstructs'))}", flush=True)
            else:
                print(f"FAIL {kind:5} seed {seed:6}  {r['draw']}\n     {r['error'][:400]}", flush=True)
    ok = [r for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"]]

    def total(key, kind=None):
        return sum(r.get(key) or 0 for r in ok if kind is None or r["kind"] == kind)

    summary = {
        "draws": {"venue": args.draws, "tws": args.tws_draws}, "first_seed": args.seed,
        "passed": len(ok), "failed": len(failed),
        "invariant_checks": total("checked"), "settled_queue_checks": total("settled_checks"),
        "checks_skipped_unreported": total("skipped"), "executions_audited": total("executions"),
        "venue_restarts_after_disconnect": total("restarts", "venue"),
        "rehearsal_reconstructs": total("reconstructs", "tws"),
        "duplicate_executions_delivered": total("duplicates_delivered", "venue"),
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # the summary and failures readable, then one line per draw
    lines = ",\n  ".join(json.dumps(r, separators=(",", ":")) for r in results)
    args.out.write_text('{"summary": ' + json.dumps(summary, indent=1) + ',\n"failures": '
                        + json.dumps(failed, indent=1) + ',\n"draws": [\n  ' + lines + "\n]}\n")
    print(json.dumps(summary, indent=1))
    print(f"written: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
