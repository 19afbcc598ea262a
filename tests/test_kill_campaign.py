"""The kill campaign (benchmarks/kill_campaign.py) in small: about 20 SIGKILLs at random points of
a paper run and of its start-up (reconstruct included), a restart after each, SQLite's
integrity_check after each, and at the end a fills.csv byte-identical to the unkilled run's.
The full campaign (200,000 bars, 500 kills) is `python benchmarks/kill_campaign.py`; its
figures are in benchmarks/results/kill_campaign.json. tests/test_restart.py has the plain
three-kill version of I5; this one aims at the phases too and checks the files after each kill.

The kill points are random on every run (the seed is in the assertion message, so a failure
can be replayed with `--rng-seed`)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))  # append: benchmarks/profile.py must not shadow the standard library's

import kill_campaign as kc  # noqa: E402


def test_the_kill_plan_spreads_its_points_over_the_phases_and_the_run():
    points = kc.plan(500, kc.DEFAULT_MIX, random.Random(3))
    assert len(points) == 500
    by_phase = {p: sum(1 for q, _ in points if q == p) for p in kc.DEFAULT_MIX}
    assert by_phase["reconstruct"] >= 60 and by_phase["connect"] >= 25 and by_phase["run"] >= 250
    runs = [u for p, u in points if p == "run"]
    assert runs == sorted(runs)  # the replay points go forward, so the run moves on between kills
    assert all(v > 0 for v in kc.deciles(runs))  # across the whole run
    last_run = max(i for i, (p, _) in enumerate(points) if p == "run")
    assert all(i > last_run for i, (p, _) in enumerate(points) if p == "finishing")
    # a third of the replay points uniform in data time: where the replay is quick (here the
    # first 90% of the data is a tenth of the replay) still gets its kills
    def to_run(f):
        return f / 9 if f < 0.9 else 0.1 + 9 * (f - 0.9)

    points = kc.plan(500, kc.DEFAULT_MIX, random.Random(3), data_to_run=to_run)
    runs = [(p, u) for p, u in points if p.startswith("run")]
    assert len(runs) == 275 and sum(1 for p, _ in runs if p == "run@data") == 91
    keys = [u if p == "run" else to_run(u) for p, u in runs]
    assert keys == sorted(keys) and sum(1 for k in keys if k < 0.1) >= 60


def test_twenty_sigkills_across_start_up_reconstruct_and_replay_leave_identical_fills(tmp_path):
    seed = random.randrange(1 << 30)
    result = kc.campaign(bars=20_000, kills=20, seed=7, chunk_rows=1024, checkpoint_every="20ms",
                         rng_seed=seed, workdir=tmp_path / "work", results=tmp_path / "kill_campaign.json",
                         say=lambda *_: None, start_timeout=120)
    why = f"(kill points seeded {seed}) " + json.dumps({k: v for k, v in result.items() if k != "records"})[:3000]
    assert not result["problems"], why
    assert result["kills"] == 20, why
    # every kill after the venue's file existed was followed by an integrity_check, all "ok"
    assert result["integrity_checks"] + result["kills_before_any_sqlite_existed"] >= 20, why
    assert result["integrity_ok"] == result["integrity_checks"], why
    assert not result["json_failures"], why
    assert result["reference_equals_default_settings_run"], why
    assert result["final_exit"] == 0 and result["identical"], why
    assert result["ok"], why
    # where they landed: some in the start-up (reconstruct among its aims), most in the replay
    assert result["aimed_by_phase"].get("reconstruct", 0) >= 2, why
    assert result["landed_in_startup"] >= 2 and result["landed_in_replay"] >= 5, why
    saved = json.loads((tmp_path / "kill_campaign.json").read_text())
    assert saved["identical"] is True and len(saved["records"]) == 20
