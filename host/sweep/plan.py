"""Cell planning: the data files, the cells of the grid, each cell's key, and the checks that
run before any cell does (so a typo is exit 2 at once, not a thousand failed backtests).

A cell is one set of parameter values on one data file. Its key is a hash of what decides its
result: bothost's version, the validated config the sweep starts from (its strategies, venue
and feed, less the data file's path), the cell's values, and the data file's name and content
(SHA-256). A finished cell whose key is in the results folder is not run again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import InputError
from .grammar import Param

#: What a directory given to --data contributes: every file with one of these endings.
DATA_SUFFIXES = (".csv", ".parquet", ".pq")

#: More cells than this is surely a mistake (a step too small), refused before anything runs.
MAX_CELLS = 100_000


@dataclass(frozen=True)
class DataFile:
    path: Path  # absolute: what the workers open
    shown: str  # as the table names it (the path as given, or DIR/name)
    digest: str  # SHA-256 of the content


@dataclass(frozen=True)
class Cell:
    key: str
    params: tuple[tuple[str, str], ...]  # (key path, value) in --param order
    order: tuple[int, ...]  # (data file index, value index of each parameter): the table's row order
    data: DataFile

    @property
    def overrides(self) -> tuple[str, ...]:
        return tuple(f"{path}={value}" for path, value in self.params)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_data(given: Path) -> list[DataFile]:
    """FILE, or every CSV/Parquet file directly in DIR (sorted by name)."""
    try:
        is_dir, exists = given.is_dir(), given.exists()
    except OSError as exc:
        raise InputError(f"cannot look at --data: {exc}", given) from exc
    if not exists:
        raise InputError("--data: no such file or folder", given, hint="give a CSV/Parquet file or a folder of them")
    if is_dir:
        files = sorted(p for p in given.iterdir() if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
        if not files:
            raise InputError(f"--data: the folder holds no {', '.join(DATA_SUFFIXES)} file", given,
                             hint="write data with `bothost data synth --out FILE` or `bothost data fetch`")
        shown = [str(given / p.name) for p in files]
    else:
        files, shown = [given], [str(given)]
    out = []
    for path, name in zip(files, shown):
        try:
            out.append(DataFile(path=path.resolve(), shown=name, digest=file_digest(path)))
        except OSError as exc:
            raise InputError(f"--data: cannot read the file: {exc.strerror or exc}", path) from exc
    return out


def plan_cells(params: list[Param], data: list[DataFile], identity: dict) -> list[Cell]:
    """Every (data file, values) cell, in the table's row order."""
    count = len(data)
    for p in params:
        count *= len(p.values)
    if count > MAX_CELLS:
        raise InputError(f"the sweep has {count:,} cells, more than {MAX_CELLS:,}",
                         hint="use fewer values (a larger step) or fewer data files")
    cells = []
    for d_i, d in enumerate(data):
        for combo in itertools.product(*(range(len(p.values)) for p in params)):
            values = tuple((p.path, p.values[i]) for p, i in zip(params, combo))
            cells.append(Cell(key=cell_key(identity, values, d), params=values, order=(d_i, *combo), data=d))
    keys = {c.key for c in cells}
    if len(keys) != len(cells):  # two data files with the same name and content, say
        raise InputError("two cells of the sweep would be the same backtest (the same data file twice?)",
                         hint="give each data file once")
    return cells


def cell_key(identity: dict, params: tuple[tuple[str, str], ...], data: DataFile) -> str:
    text = json.dumps({"identity": identity, "params": sorted(params),
                       "data": {"name": data.path.name, "sha256": data.digest}}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check(config: Path, overrides: tuple[str, ...], params: list[Param], data: list[DataFile]) -> dict:
    """Load the config with each --param value alone and open each data file, before any cell
    runs; returns the sweep's identity (see :func:`cell_key`). Raises InputError (exit 2)."""
    from ..cli import _check_buildable, _data_patch, _load
    from ..config import ConfigError
    from ..hookspecs import BuildEnv
    from ..run import build

    paths = [p.path for p in params]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise InputError(f"--param {twice[0]} is given twice", hint="give each key path once, with all its values")
    set_paths = {o.split("=", 1)[0].strip() for o in overrides if "=" in o}
    both = sorted(set_paths & set(paths))
    if both:
        raise InputError(f"{both[0]} is both --set and --param", hint="drop the --set: the sweep sets it in each cell")

    patch = _data_patch(data[0].path, backtest=True)
    _, _, base = _load(config, overrides, patch)  # a bad config is reported as it is (exit 2)
    _check_buildable(base)
    for p in params:
        for i, value in enumerate(p.values):
            try:
                _, _, run = _load(config, (*overrides, p.override(i)), patch)
                _check_buildable(run)
            except (ConfigError, InputError) as exc:
                message = getattr(exc, "message", str(exc))
                where = "" if getattr(exc, "path", None) in (None, "--set") else f" ({exc.path}:{exc.line}) "
                raise InputError(f"--param {p.path}={value}: {message}{where}".rstrip(),
                                 hint=getattr(exc, "hint", None)) from exc
    for d in data:
        _load_feed(config, overrides, d, build, BuildEnv)

    return {"bothost": __version__, "config": made_with(base)}


def made_with(run) -> dict:
    """What of a validated config decides a backtest's result: the strategies, the venue and
    the feed (less its data file, which a cell's key names by content), as plain JSON values."""

    def section(s) -> dict:
        return {"use": s.use, **s.settings.model_dump(mode="json")}

    feed = {k: v for k, v in section(run.feed).items() if k != "data"}
    return {"strategies": [section(s) for s in run.strategies], "broker": section(run.broker), "feed": feed}


def _load_feed(config: Path, overrides, d: DataFile, build, BuildEnv) -> None:
    """Open the data file as a backtest would (the feed's own checks: format, header, rows)."""
    from ..cli import _data_patch, _load
    from ..hookspecs import ChecksBeforeConnect

    _, _, run = _load(config, overrides, _data_patch(d.path, backtest=True))
    with tempfile.TemporaryDirectory(prefix="bothost-sweep-check-") as tmp:
        env = BuildEnv(config_path=Path(run.path), state_dir=Path(tmp), mode=run.mode,
                       log=logging.getLogger("bothost.sweep"), instruments=run.instruments)
        feed = build(run.feed, env)
        if isinstance(feed, ChecksBeforeConnect):
            feed.open()
