"""Kill campaign: SIGKILL a paper run hundreds of times, at random points of the run and of its
start-up (reconstruct included), restart it after every kill, and prove at the end that its
fills.csv is byte-identical to that of a run that was never killed (I5).

    python benchmarks/kill_campaign.py                    # 200,000 bars, 500 kills (some minutes)
    python benchmarks/kill_campaign.py --bars 20000 --kills 20 --results /tmp/kc.json

What it does, in order (everything in a scratch folder, `--workdir`, removed unless `--keep`):
1. `bothost data synth --bars N --seed S --out bars.csv`.
2. The reference: `bothost run configs/tqqq-paper.yaml --data bars.csv --state REF --no-progress`
   with `--set engine.checkpoint_every=50ms --set feed.chunk_rows=2048` (the same for every
   start: a checkpoint can follow each chunk of 2,048 bars, at most one each 50 ms, so a
   200,000-bar run can resume from some 50 to 100 places instead of 3), never killed; and once
   more with the config's own settings (2 s, 65,536), whose fills must be the same.
3. A calibration run of the same command under the probe (below), never killed: how long each
   phase takes and how fast the replay goes through the data. Its fills must equal the
   reference's too (the probe changes nothing).
4. The campaign: the same command on its own state folder, started again and again; each start
   is SIGKILLed (its whole process group: the bot and its plot worker, as `kill -9` of a job
   or a power cut would) at the kill point drawn for it, until `--kills` kills have landed.
   After every kill, `PRAGMA integrity_check` on a copy of every `*.sqlite` of the state folder
   (with its `-wal`/`-journal`: what the next start opens; the copy leaves the next start's own
   recovery untouched), and the state's JSON files must parse. Then one last start, the plain
   command, never killed: exit 0, and its `fills.csv` must be byte-identical to the reference's.

Aiming. Each start runs the real `bothost` entry point (`bothost.cli.main`) under a probe that
writes one line to a pipe at each phase boundary, read here as it happens (nothing is timed or
paused inside the bot; the probe only writes those lines):
    boot          interpreter start and imports, up to the command itself
    load          the config and the plugins
    prepare       lock, plugins built, data file opened, state checked
    connect       the simulated venue opened from venue.sqlite
    reconstruct   the broker's snapshot and the strategy's reconstruct (until the replay starts)
    replay        the replay (`chunk` as each chunk of data begins, after a resumed start has
                  skipped what its venue had already seen); `fill` while a fill is handled,
                  `checkpoint` while one is written
    finishing     after the replay: on_stop, fills.csv, summary.json, equity.png, status.json
Kill points are drawn per phase (`--mix`): a start-up point is a uniform fraction of that
phase's duration (the median of the last starts that went through it) after the phase began.
A replay point is a uniform position in the run: two thirds of them in replay time ("run":
the calibration maps data time to replay time; the kill comes that long after the first chunk
this start handles, scaled by how fast the last starts replayed), a third in data time
("run@data": the kill comes as the replay reaches that tick, give or take a chunk, so the
quiet stretches, much data and little replay time, get their share too). The replay points
are taken in the order the replay reaches them, so the run moves on between kills; a start
that resumes beyond its point (an earlier one got further than aimed) gets a point spread over
what is left of the run. The phase a kill *landed* in is the last line the probe wrote before
it died (the pipe keeps what was written), so the figures say where kills landed, not where
they were aimed; where the replay was is its last chunk, fill or checkpoint line.

Exit status: 0 when the final fills.csv is identical and every check passed, 1 when not (the
JSON says what), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import select
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONFIG = REPO / "configs" / "tqqq-paper.yaml"
RESULTS = HERE / "results" / "kill_campaign.json"

#: Phases in the order a start goes through them (see the module docstring).
PHASES = ("boot", "load", "prepare", "connect", "reconstruct", "replay", "fill", "checkpoint", "finishing", "exit")
#: Where kills are aimed by default: a fifth at start-up, a fifth at connect+reconstruct, the
#: rest across the replay, and a few at the finishing phase.
DEFAULT_MIX = {"boot": 0.06, "load": 0.06, "prepare": 0.08, "connect": 0.06, "reconstruct": 0.14,
               "run": 0.55, "finishing": 0.05}


# ------------------------------------------------------------------------------------- the probe

def _child(fd: int, args: list[str]) -> None:
    """Run `bothost ARGS` in this process, writing `PHASE MONOTONIC_NS [VENUE_CLOCK]` lines to fd."""

    def mark(phase: str, extra: object = "") -> None:
        try:
            os.write(fd, f"{phase} {time.monotonic_ns()} {extra}\n".encode())
        except OSError:
            pass

    mark("boot")
    import bothost.cli as cli
    import bothost.engine as engine
    import bothost.replay as replay
    import bothost.run as run

    def before(obj, name: str, phase: str) -> None:
        orig = getattr(obj, name)

        def wrapper(*a, **k):
            mark(phase)
            return orig(*a, **k)
        setattr(obj, name, wrapper)

    def before_async(obj, name: str, phase: str) -> None:
        orig = getattr(obj, name)

        async def wrapper(*a, **k):
            mark(phase)
            return await orig(*a, **k)
        setattr(obj, name, wrapper)

    def clock(driver) -> str:
        c = driver.venue.clock_ns
        return "" if c is None else str(c)

    before(cli, "_run", "load")
    before_async(run, "execute", "prepare")
    before_async(run, "_drive", "connect")
    before_async(engine.Engine, "reconstruct", "reconstruct")

    drive = replay.ReplayDriver.run

    async def replay_run(self, *a, **k):
        stats = self.feed.stats() if hasattr(self.feed, "stats") else {}
        mark("span", f"{stats.get('first_ns')} {stats.get('last_ns')}")  # the data's first and last tick
        mark("replay", clock(self))
        chunks = self.feed.chunks

        def chunks_marked(*ca, **ck):  # where the replay is, even where nothing fills for a while
            for chunk in chunks(*ca, **ck):
                if len(chunk.time_ns):
                    mark("chunk", int(chunk.time_ns[0]))
                yield chunk
        self.feed.chunks = chunks_marked
        try:
            return await drive(self, *a, **k)
        finally:
            mark("finishing")
    replay.ReplayDriver.run = replay_run

    checkpoint = replay.ReplayDriver.checkpoint

    def replay_checkpoint(self, *a, **k):
        mark("checkpoint")
        try:
            return checkpoint(self, *a, **k)
        finally:
            mark("replay", clock(self))
    replay.ReplayDriver.checkpoint = replay_checkpoint

    on_fill = engine.Engine._on_fill

    def engine_on_fill(self, *a, **k):
        mark("fill", getattr(a[0], "time_ns", "") if a else "")  # the fill's data time: where the replay is
        try:
            return on_fill(self, *a, **k)
        finally:
            mark("replay")
    engine.Engine._on_fill = engine_on_fill

    sys.argv = ["bothost", *args]
    try:
        cli.main()
    finally:
        mark("exit")


# ------------------------------------------------------------------------------------- helpers

def _commit() -> str | None:
    r = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return r.stdout.strip() or None if r.returncode == 0 else None


def bothost_command() -> list[str]:
    script = Path(sys.executable).parent / "bothost"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bothost"]


def run_args(data: Path, state: Path, checkpoint_every: str | None, chunk_rows: int | None) -> list[str]:
    args = ["run", str(CONFIG), "--data", str(data), "--state", str(state), "--no-progress"]
    if checkpoint_every:
        args += ["--set", f"engine.checkpoint_every={checkpoint_every}"]
    if chunk_rows:
        args += ["--set", f"feed.chunk_rows={chunk_rows}"]
    return args


def integrity(state: Path, scratch: Path) -> dict[str, str]:
    """PRAGMA integrity_check of a copy of each *.sqlite (with its -wal / -journal)."""
    found = {}
    for db in sorted(state.glob("*.sqlite")):
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir(parents=True)
        for suffix in ("", "-wal", "-journal"):
            src = db.with_name(db.name + suffix)
            if src.exists():
                shutil.copy2(src, scratch / src.name)
        try:
            con = sqlite3.connect(scratch / db.name)
            try:
                rows = con.execute("PRAGMA integrity_check").fetchall()
            finally:
                con.close()
            found[db.name] = "ok" if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows)[:500]
        except sqlite3.DatabaseError as exc:
            found[db.name] = f"{type(exc).__name__}: {exc}"
    return found


def committed_clock(state: Path, scratch: Path) -> int | None:
    """The venue's checkpointed clock (read from the copy integrity() just made)."""
    copy = scratch / "venue.sqlite"
    if not copy.exists():
        return None
    try:
        con = sqlite3.connect(copy)
        try:
            row = con.execute("SELECT value FROM meta WHERE key = 'clock_ns'").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return None
    return int(row[0]) if row and row[0] else 0  # 0: nothing of the replay committed yet


def json_problems(state: Path) -> list[str]:
    """The state's JSON files are written atomically: after any kill each one parses."""
    bad = []
    for name in ("bot_state.json", "status.json"):
        path = state / name
        if path.exists():
            try:
                json.loads(path.read_text())
            except (ValueError, OSError) as exc:
                bad.append(f"{name}: {exc}")
    return bad


class Start:
    """One start of the bot under the probe, killed at its kill point (or not, if it ends first)."""

    def __init__(self, cmd: list[str], cwd: Path, stderr_path: Path):
        self.r, w = os.pipe()
        self.launched_ns = time.monotonic_ns()
        with open(stderr_path, "wb") as err:
            self.proc = subprocess.Popen([*cmd[:2], "--child", str(w), "--", *cmd[2:]], cwd=cwd,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                         pass_fds=(w,), start_new_session=True)
        os.close(w)
        self.buf = b""
        self.markers: list[tuple[str, int, str]] = []  # (phase, monotonic ns, extra)
        self.eof = False

    def _take(self, data: bytes) -> list[tuple[str, int, str]]:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        new = []
        for line in lines:
            phase, t, *extra = line.decode().split(" ", 2)
            new.append((phase, int(t), extra[0].strip() if extra else ""))
        self.markers += new
        return new

    def read(self, timeout: float | None) -> list[tuple[str, int, str]]:
        if self.eof:
            time.sleep(timeout or 0)
            return []
        ready, _, _ = select.select([self.r], [], [], timeout)
        if not ready:
            return []
        data = os.read(self.r, 1 << 16)
        if not data:
            self.eof = True
            return []
        return self._take(data)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the bot and its plot worker, at once
        except ProcessLookupError:
            pass

    def finish(self) -> int:
        code = self.proc.wait()
        while not self.eof:  # what the probe wrote before the kill is still in the pipe
            self.read(5.0)
        os.close(self.r)
        return code

    def first(self, phase: str) -> tuple[str, int, str] | None:
        return next((m for m in self.markers if m[0] == phase), None)


def durations(markers: list[tuple[str, int, str]], launched_ns: int) -> dict[str, float]:
    """Seconds each start-up phase took in one start (from its first marker to the next phase's)."""
    firsts: dict[str, int] = {}
    for phase, t, _ in markers:
        firsts.setdefault(phase, t)
    out = {}
    order = ["load", "prepare", "connect", "reconstruct", "replay"]
    if "load" in firsts:
        out["boot"] = (firsts["load"] - launched_ns) / 1e9
    for a, b in zip(order, order[1:]):
        if a in firsts and b in firsts:
            out[a] = (firsts[b] - firsts[a]) / 1e9
    if "finishing" in firsts and "exit" in firsts:
        out["finishing"] = (firsts["exit"] - firsts["finishing"]) / 1e9
    return out


def clocks_of(markers: list[tuple[str, int, str]]) -> list[tuple[int, int]]:
    """(monotonic ns, venue data clock) of the markers that carry where the replay is."""
    return [(t, int(x)) for p, t, x in markers if p in ("replay", "chunk", "fill") and x.isdigit()]


class ReplayClock:
    """Replay seconds as a function of the data clock (the calibration run's fills and
    checkpoints): the replay runs fast over quiet stretches and slowly where it trades, so
    equal steps of data time are not equal steps of the run."""

    def __init__(self, markers: list[tuple[str, int, str]]):
        begin = next((t for p, t, _ in markers if p == "chunk"), None)  # the first data the replay handles
        begin = begin if begin is not None else next(t for p, t, _ in markers if p == "replay")
        span = next((x for p, _, x in markers if p == "span"), "None None").split()
        self.first_ns = int(span[0]) if span[0].isdigit() else None
        self.last_ns = int(span[-1]) if span[-1].isdigit() else None
        pts = {c: (t - begin) / 1e9 for t, c in clocks_of(markers)}
        if self.first_ns is not None:
            pts.setdefault(self.first_ns, 0.0)
        pts = sorted(pts.items())
        self.clocks = [c for c, _ in pts]
        self.secs = [s for _, s in pts]
        for k in range(1, len(self.secs)):  # monotonic, whatever the clock's jitter
            self.secs[k] = max(self.secs[k], self.secs[k - 1])
        end = next((t for p, t, _ in markers if p == "finishing"), None)
        self.total = (end - begin) / 1e9 if end is not None else (self.secs[-1] if self.secs else 0.0)
        if self.first_ns is None and self.clocks:
            self.first_ns = self.clocks[0]
        if self.last_ns is None and self.clocks:
            self.last_ns = self.clocks[-1]

    def at(self, clock: int | None) -> float:
        """Replay seconds from the start of the data to `clock` (0 for None: a fresh start)."""
        if clock is None or not self.clocks:
            return 0.0
        i = bisect.bisect_right(self.clocks, clock)
        if i == 0:
            return 0.0
        if i >= len(self.clocks):
            return self.secs[-1]
        c0, c1, s0, s1 = self.clocks[i - 1], self.clocks[i], self.secs[i - 1], self.secs[i]
        return s0 + (s1 - s0) * (clock - c0) / (c1 - c0)

    def data_fraction(self, clock: int | None) -> float | None:
        if clock is None or self.first_ns is None or not self.last_ns or self.last_ns <= self.first_ns:
            return None
        return round(min(1.0, max(0.0, (clock - self.first_ns) / (self.last_ns - self.first_ns))), 4)

    def run_fraction_of_data(self, f: float) -> float:
        """The replay-time fraction at data-time fraction ``f``."""
        if self.first_ns is None or not self.last_ns or not self.total:
            return f
        return min(1.0, self.at(self.first_ns + int(f * (self.last_ns - self.first_ns))) / self.total)

    def run_fraction(self, clock: int | None) -> float | None:
        return None if clock is None or not self.total else round(min(1.0, self.at(clock) / self.total), 4)


def plan(kills: int, mix: dict[str, float], rng: random.Random,
         data_to_run=None) -> list[tuple[str, float]]:
    """The kill points: (phase, u) with u uniform in [0, 1); replay points in increasing order,
    finishing points after them (the run must get there), the start-up points shuffled among all.

    A replay point ("run") is a fraction of the replay's time. With ``data_to_run`` (data-time
    fraction -> replay-time fraction) a third of them ("run@data") are a fraction of the data's
    time instead, so the quiet stretches, which the replay crosses in almost no time, get their
    share of kills too; all are in the order the replay reaches them."""
    total = sum(mix.values())
    counts = {p: int(kills * w / total) for p, w in mix.items()}
    for p in sorted(mix, key=lambda p: -mix[p]):  # rounding: the rest to the biggest shares
        if sum(counts.values()) >= kills:
            break
        counts[p] += 1
    n_run = counts.get("run", 0)
    n_data = n_run // 3 if data_to_run is not None else 0
    runs = [("run", rng.random()) for _ in range(n_run - n_data)] + [("run@data", rng.random()) for _ in range(n_data)]
    runs.sort(key=lambda point: point[1] if point[0] == "run" else data_to_run(point[1]))
    spine = runs + [("finishing", rng.random()) for _ in range(counts.get("finishing", 0))]
    others = [(p, rng.random()) for p, n in counts.items() if p not in ("run", "finishing") for _ in range(n)]
    rng.shuffle(others)
    # spread the start-up points evenly in time over the spine
    slots = sorted(rng.randrange(len(spine) + 1) for _ in others) if spine else [0] * len(others)
    out, k = [], 0
    for i in range(len(spine) + 1):
        while k < len(others) and slots[k] == i:
            out.append(others[k])
            k += 1
        if i < len(spine):
            out.append(spine[i])
    return out


def deciles(values: list[float]) -> list[int]:
    """How many values (fractions of the run, 0..1) fall in each tenth."""
    counts = [0] * 10
    for v in values:
        counts[min(9, max(0, int(v * 10)))] += 1
    return counts


def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in DEFAULT_MIX:
            raise argparse.ArgumentTypeError(f"unknown phase {name!r} (one of {', '.join(DEFAULT_MIX)})")
        mix[name] = float(weight)
    if not mix or sum(mix.values()) <= 0:
        raise argparse.ArgumentTypeError("give at least one positive weight")
    return mix


# ------------------------------------------------------------------------------------- campaign

def campaign(*, bars: int = 200_000, kills: int = 500, seed: int = 11, volatility: float = 0.9,
             checkpoint_every: str | None = "50ms", chunk_rows: int | None = 2048, mix: dict[str, float] | None = None,
             rng_seed: int | None = None, workdir: Path | None = None, keep: bool = False,
             results: Path | None = RESULTS, say=print, start_timeout: float = 300.0) -> dict:
    mix = dict(mix or DEFAULT_MIX)
    rng_seed = random.randrange(1 << 30) if rng_seed is None else rng_seed
    rng = random.Random(rng_seed)
    wall0 = time.monotonic()
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="kill-campaign-")) if own_dir else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    cmd = bothost_command()
    probe = [sys.executable, str(Path(__file__).resolve())]
    result: dict = {"config": str(CONFIG.relative_to(REPO)), "bars": bars, "data_seed": seed, "volatility": volatility,
                    "checkpoint_every": checkpoint_every or "(the config's)",
                    "chunk_rows": chunk_rows or "(the config's)", "kills_asked": kills,
                    "rng_seed": rng_seed, "mix": mix, "cpus": os.cpu_count(), "commit": _commit(), "problems": []}
    try:
        data = work / "bars.csv"
        r = subprocess.run([*cmd, "data", "synth", "--bars", str(bars), "--seed", str(seed), "--volatility",
                            str(volatility), "--out", str(data)], cwd=work, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"data synth failed: {r.stderr.strip()}")

        t = time.monotonic()
        ref = subprocess.run([*cmd, *run_args(data, work / "ref", checkpoint_every, chunk_rows)], cwd=work,
                             capture_output=True, text=True, timeout=start_timeout)
        result["reference_wall_s"] = round(time.monotonic() - t, 3)
        if ref.returncode != 0:
            raise RuntimeError(f"the reference run failed ({ref.returncode}): {ref.stderr.strip()[-2000:]}")
        reference = (work / "ref" / "out" / "fills.csv").read_bytes()
        summary = json.loads((work / "ref" / "out" / "summary.json").read_text())
        result.update(reference_fills=reference.count(b"\n") - 1, ticks=summary.get("ticks"))
        say(f"reference: {bars:,} bars, {summary.get('ticks'):,} ticks, {result['reference_fills']:,} fills, "
            f"{result['reference_wall_s']:.2f} s")
        if checkpoint_every or chunk_rows:  # the settings that give the kills more to land on change no fill
            plain = subprocess.run([*cmd, *run_args(data, work / "plain", None, None)], cwd=work,
                                   capture_output=True, text=True, timeout=start_timeout)
            same = plain.returncode == 0 and (work / "plain" / "out" / "fills.csv").read_bytes() == reference
            result["reference_equals_default_settings_run"] = same
            if not same:
                result["problems"].append("the run with the config's own checkpoint_every/chunk_rows wrote other fills")

        # calibration: the probe, unkilled
        cal = Start([*probe, *run_args(data, work / "cal", checkpoint_every, chunk_rows)], work, work / "stderr.txt")
        while not cal.eof:
            cal.read(1.0)
        code = cal.finish()
        if code != 0:
            raise RuntimeError(f"the calibration run failed ({code}): {(work / 'stderr.txt').read_text()[-2000:]}")
        if (work / "cal" / "out" / "fills.csv").read_bytes() != reference:
            result["problems"].append("the calibration run (under the probe, unkilled) wrote other fills")
        replay_clock = ReplayClock(cal.markers)
        seen: dict[str, list[float]] = {p: [d] for p, d in durations(cal.markers, cal.launched_ns).items()}
        result["calibration_phase_s"] = {p: round(v[0], 4) for p, v in seen.items()}
        result["calibration_replay_s"] = round(replay_clock.total, 3)
        say("phases of one start (s): " + ", ".join(f"{p} {v[0]:.3f}" for p, v in seen.items())
            + f"; replay {replay_clock.total:.3f}")

        def expected(phase: str) -> float:
            recent = seen.get(phase, [0.0])[-25:]
            return statistics.median(recent) if recent else 0.0

        speed: list[float] = []  # replay seconds here per calibrated replay second, recent starts

        def pace() -> float:
            return statistics.median(speed[-15:]) if speed else 1.0

        # the campaign
        state = work / "state"
        points = plan(kills, mix, rng, data_to_run=replay_clock.run_fraction_of_data)
        records = []
        integrity_checks = Counter()
        integrity_failures = []
        json_failures = []
        no_sqlite_yet = 0
        exits = Counter()
        starts = 0
        ended_first = 0
        reaimed = 0
        i = 0
        while i < len(points):
            phase, u = points[i]
            starts += 1
            s = Start([*probe, *run_args(data, state, checkpoint_every, chunk_rows)], work, work / "stderr.txt")
            deadline_ns = s.launched_ns + int(u * expected("boot") * 1e9) if phase == "boot" else None
            aimed_delay = u * expected("boot") if phase == "boot" else None
            aimed_run = None  # for a replay point: where in the run (replay time or data time, fraction)
            data_at = None  # for a run@data point: the data clock to kill at
            give_up = time.monotonic() + start_timeout
            killed = False
            while True:
                now = time.monotonic_ns()
                if deadline_ns is not None and now >= deadline_ns:
                    s.kill()
                    killed = True
                    break
                if s.eof or time.monotonic() > give_up:
                    break
                timeout = 0.2 if deadline_ns is None else max(0.0, (deadline_ns - now) / 1e9)
                for marker in s.read(min(timeout, 0.2)):
                    if deadline_ns is not None:
                        continue
                    if phase == "run@data":
                        if marker[0] == "finishing":  # nothing left to replay
                            aimed_delay = u * expected("finishing")
                        elif marker[0] in ("chunk", "fill") and marker[2].isdigit():
                            if data_at is None:  # the first data this start handles
                                first, last = replay_clock.first_ns, replay_clock.last_ns
                                data_at = first + int(u * (last - first))
                                here = int(marker[2])
                                if here > data_at:  # resumed beyond its point: spread the rest
                                    left = sum(1 for q, _ in points[i + 1:] if q.startswith("run"))
                                    data_at = here + int(rng.random() * (last - here) / (left + 1))
                                    reaimed += 1
                                aimed_run = replay_clock.data_fraction(data_at)
                            if int(marker[2]) < data_at:
                                continue
                            aimed_delay = rng.random() * 0.003  # somewhere in the chunk it begins
                        else:
                            continue
                    elif phase == "run" and marker[0] == "chunk":
                        # aimed from the first data this start handles: a resumed start first
                        # skips what its venue had seen, which takes time and changes nothing
                        resumed = replay_clock.at(int(marker[2]))
                        target = u * replay_clock.total
                        if target <= resumed:
                            # this start resumes beyond its point (an earlier start got further than
                            # aimed): spread the points still to come over what is left of the run
                            left = sum(1 for q, _ in points[i + 1:] if q.startswith("run"))
                            target = resumed + rng.random() * (replay_clock.total - resumed) / (left + 1)
                            reaimed += 1
                        aimed_run = target / replay_clock.total if replay_clock.total else None
                        aimed_delay = pace() * (target - resumed)
                    elif phase != "run" and marker[0] == phase:
                        aimed_delay = u * expected(phase)
                    elif phase == "run" and marker[0] == "finishing":
                        aimed_delay = u * expected("finishing")
                    else:
                        continue
                    deadline_ns = marker[1] + int(aimed_delay * 1e9)
            if not killed and not s.eof:  # stuck: that is a finding too
                s.kill()
                result["problems"].append(f"start {starts} did not end within {start_timeout:g} s (killed)")
            code = s.finish()
            exits[str(code)] += 1
            for p, d in durations(s.markers, s.launched_ns).items():
                seen.setdefault(p, []).append(d)
            where = clocks_of(s.markers)
            first_chunk = next((m for m in s.markers if m[0] == "chunk"), None)
            if first_chunk and where and where[-1][0] > first_chunk[1]:
                t0 = first_chunk[1]
                c0 = int(first_chunk[2])
                calibrated = replay_clock.at(where[-1][1]) - replay_clock.at(c0)
                if calibrated > 0.05:
                    speed.append((where[-1][0] - t0) / 1e9 / calibrated)
            if not killed:
                ended_first += 1
                if code != 0:
                    tail = (work / "stderr.txt").read_text(errors="replace")[-1500:]
                    result["problems"].append(f"start {starts} exited {code} by itself: {tail}")
                    if len(result["problems"]) > 20:
                        break
                continue  # its kill point is used by the next start
            i += 1
            landed = s.markers[-1][0] if s.markers else "boot"
            landed = "replay" if landed in ("span", "chunk") else landed
            found = integrity(state, work / "check")
            if not found:
                no_sqlite_yet += 1  # killed before the venue's file was created
            for name, verdict in found.items():
                integrity_checks[verdict == "ok"] += 1
                if verdict != "ok":
                    integrity_failures.append({"kill": i, "file": name, "result": verdict})
            bad_json = json_problems(state)
            json_failures += [{"kill": i, "problem": p} for p in bad_json]
            clock = committed_clock(state, work / "check")
            at = where[-1][1] if where and landed in ("replay", "fill", "checkpoint") else None
            records.append({
                "kill": i, "start": starts, "aimed": phase, "landed": landed,
                "aimed_at": round(u, 4) if not phase.startswith("run") else (None if aimed_run is None else round(aimed_run, 4)),
                "after_launch_s": round((time.monotonic_ns() - s.launched_ns) / 1e9, 4),
                "aimed_delay_s": None if aimed_delay is None else round(aimed_delay, 4),
                # where the replay was when the kill landed (its last fill or checkpoint), as a
                # fraction of the run's replay time and of the data's time
                "landed_run_fraction": replay_clock.run_fraction(at),
                "landed_data_fraction": replay_clock.data_fraction(at),
                "committed_data_fraction": None if clock is None else (replay_clock.data_fraction(clock) or 0.0),
                "integrity": found,
            })
            if i % 50 == 0 or i == len(points):
                say(f"  {i} kills, {starts} starts, {time.monotonic() - wall0:.0f} s")

        # the last start: the plain command, never killed
        t = time.monotonic()
        final = subprocess.run([*cmd, *run_args(data, state, checkpoint_every, chunk_rows)], cwd=work, capture_output=True,
                               text=True, timeout=start_timeout)
        result["final_wall_s"] = round(time.monotonic() - t, 3)
        exits[f"final {final.returncode}"] += 1
        final_integrity = integrity(state, work / "check")
        fills = state / "out" / "fills.csv"
        identical = final.returncode == 0 and fills.exists() and fills.read_bytes() == reference
        if final.returncode != 0:
            result["problems"].append(f"the final start exited {final.returncode}: {final.stderr.strip()[-1500:]}")
        final_summary = json.loads((state / "out" / "summary.json").read_text()) if final.returncode == 0 else {}

        landed = Counter(r["landed"] for r in records)
        aimed = Counter(r["aimed"] for r in records)
        in_replay = [r for r in records if r["landed_run_fraction"] is not None]
        result.update({
            "kills": len(records),
            "starts": starts + 1,
            "starts_that_ended_before_their_kill": ended_first,
            "aimed_by_phase": {p: aimed[p] for p in [*DEFAULT_MIX, "run@data"] if aimed[p]},
            "landed_by_phase": {p: landed[p] for p in PHASES if landed[p]},
            "landed_in_startup": sum(landed[p] for p in ("boot", "load", "prepare", "connect", "reconstruct")),
            "landed_in_replay": sum(landed[p] for p in ("replay", "fill", "checkpoint")),
            "replay_points_reaimed": reaimed,
            # the kills that landed in the replay, by where the replay was (tenths of the run)
            "landed_in_replay_by_run_tenth": deciles([r["landed_run_fraction"] for r in in_replay]),
            "landed_in_replay_by_data_tenth": deciles([r["landed_data_fraction"] for r in in_replay
                                                       if r["landed_data_fraction"] is not None]),
            "committed_by_data_tenth": deciles([r["committed_data_fraction"] for r in records
                                                if r["committed_data_fraction"] is not None]),
            "integrity_checks": sum(integrity_checks.values()),
            "kills_before_any_sqlite_existed": no_sqlite_yet,
            "integrity_ok": integrity_checks[True],
            "integrity_failures": integrity_failures,
            "json_failures": json_failures,
            "final_integrity": final_integrity,
            "exit_statuses": dict(exits),
            "final_exit": final.returncode,
            "final_resumed_after": final_summary.get("resumed_after"),
            "final_ticks": final_summary.get("ticks"),
            "identical": identical,
            "wall_time_s": round(time.monotonic() - wall0, 1),
            "records": records,
        })
        result["ok"] = bool(identical and not integrity_failures and not json_failures and not result["problems"]
                            and len(records) >= kills and all(v == "ok" for v in final_integrity.values()))
    except Exception as exc:
        result["problems"].append(f"{type(exc).__name__}: {exc}")
        result["ok"] = False
        result["wall_time_s"] = round(time.monotonic() - wall0, 1)
    finally:
        if own_dir and not keep:
            shutil.rmtree(work, ignore_errors=True)
        elif keep:
            result["workdir"] = str(work)
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(result, indent=2) + "\n")
    return result


def report(result: dict, say=print) -> None:
    if "kills" in result:
        say(f"kills: {result['kills']} over {result['starts']} starts "
            f"({result['starts_that_ended_before_their_kill']} ended before their kill point)")
        say("landed by phase: " + ", ".join(f"{p} {n}" for p, n in result["landed_by_phase"].items()))
        say(f"  start-up (boot..reconstruct) {result['landed_in_startup']}, replay {result['landed_in_replay']}")
        say("kills in the replay, by where it was (tenths of the replay time): "
            + " ".join(str(n) for n in result["landed_in_replay_by_run_tenth"])
            + "; (tenths of the data): " + " ".join(str(n) for n in result["landed_in_replay_by_data_tenth"]))
        say("the venue's last checkpoint at each kill (tenths of the data): "
            + " ".join(str(n) for n in result["committed_by_data_tenth"]))
        say(f"integrity_check: {result['integrity_ok']} of {result['integrity_checks']} ok "
            f"({result['kills_before_any_sqlite_existed']} kills came before any .sqlite existed)"
            + (f", {len(result['integrity_failures'])} FAILED" if result["integrity_failures"] else "")
            + (f"; JSON: {len(result['json_failures'])} FAILED" if result["json_failures"] else "; JSON files parse"))
        say(f"final start: exit {result['final_exit']}, resumed after {result['final_resumed_after']}, "
            f"ticks {result['final_ticks']}")
        say(f"fills.csv identical to the unkilled run's: {'yes' if result['identical'] else 'NO'} "
            f"({result['reference_fills']:,} fills)")
    for problem in result.get("problems", []):
        say(f"problem: {problem}")
    say(f"wall time: {result.get('wall_time_s')} s" + ("" if result.get("ok") else "  -- NOT OK"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(int(argv[1]), argv[3:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=200_000, help="bars of synthetic data (default 200,000)")
    ap.add_argument("--kills", type=int, default=500, help="SIGKILLs that must land (default 500)")
    ap.add_argument("--seed", type=int, default=11, help="seed of the synthetic data")
    ap.add_argument("--volatility", type=float, default=0.9)
    ap.add_argument("--checkpoint-every", default="50ms",
                    help="engine.checkpoint_every for every start ('config': the config's own, 2 s)")
    ap.add_argument("--chunk-rows", default="2048",
                    help="feed.chunk_rows for every start: a checkpoint (so a resume point) can come after "
                         "each chunk ('config': the config's own, 65,536)")
    ap.add_argument("--mix", type=parse_mix, default=None, metavar="PHASE=W,...",
                    help="where kills are aimed: boot, load, prepare, connect, reconstruct, run, finishing "
                         "(default " + ",".join(f"{k}={v}" for k, v in DEFAULT_MIX.items()) + ")")
    ap.add_argument("--rng-seed", type=int, default=None, help="seed of the kill points (default: random, printed)")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--results", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS.relative_to(REPO)})")
    ap.add_argument("--start-timeout", type=float, default=300.0, help="seconds one start may take")
    args = ap.parse_args(argv)
    if args.bars < 100 or args.kills < 1:
        ap.error("need --bars >= 100 and --kills >= 1")
    result = campaign(bars=args.bars, kills=args.kills, seed=args.seed, volatility=args.volatility,
                      checkpoint_every=None if args.checkpoint_every == "config" else args.checkpoint_every,
                      chunk_rows=None if args.chunk_rows == "config" else int(args.chunk_rows),
                      mix=args.mix, rng_seed=args.rng_seed, workdir=args.workdir, keep=args.keep,
                      results=args.results, start_timeout=args.start_timeout)
    print(f"kill points seeded {result['rng_seed']} (--rng-seed to replay them)")
    report(result)
    print(f"results: {args.results}")
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
