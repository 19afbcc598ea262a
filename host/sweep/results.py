"""A sweep's outputs: ``sweep.parquet``, the best cells as a rich table, a heatmap per pair of
swept parameters.

``sweep.parquet`` has one row per cell, in the plan's order (data file, then each parameter's
values in the order given), so the table is the same whatever the number of workers and the
order the cells finished in; only ``wall_time_s`` changes between runs. Columns: each swept
parameter by its key path (the value as ``--set`` took it: ``0.75%``), ``data``, ``status``,
``fills``, ``round_trips`` (int64), the money figures as float64 rounded to cents (the exact
decimal strings are in ``cells/KEY.json``), ``wall_time_s``, ``error`` and ``cell`` (the key).
"""

from __future__ import annotations

import math
import os
from decimal import Decimal
from pathlib import Path

from .cell import COUNTS, MONEY
from .grammar import Param
from .plan import Cell

#: --rank metrics and which way is better.
HIGHER_IS_BETTER = {"fills": True, "round_trips": True, "realized_pnl": True, "net_realized_pnl": True,
                    "unrealized_pnl": True, "total_pnl": True, "lowest_equity": True, "fees": False,
                    "max_drawdown": False, "peak_capital_committed": False, "wall_time_s": False}
METRICS = tuple(HIGHER_IS_BETTER)


def _money(value) -> float | None:
    if value is None:
        return None
    try:
        return round(float(Decimal(str(value))), 2)
    except (ArithmeticError, ValueError):
        return None


def rows(params: list[Param], cells: list[Cell], records: dict[str, dict],
         failed: dict[str, tuple[str, str]]) -> list[dict]:
    """One dict per cell, in the plan's order."""
    out = []
    for cell in sorted(cells, key=lambda c: c.order):
        record = records.get(cell.key)
        row: dict = {path: value for path, value in cell.params}
        row["data"] = cell.data.shown
        if record is None:
            status, error = failed.get(cell.key, ("not run", ""))
            row.update({"status": status, **{k: None for k in (*COUNTS, *MONEY)}, "wall_time_s": None,
                        "error": error or None})
        else:
            row["status"] = record.get("status")
            for k in COUNTS:
                row[k] = record.get(k)
            for k in MONEY:
                row[k] = _money(record.get(k))
            row["wall_time_s"] = record.get("wall_time_s")
            row["error"] = record.get("error") or None
        row["cell"] = cell.key
        out.append(row)
    return out


def write_parquet(path: Path, params: list[Param], table_rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [pa.field(p.path, pa.string()) for p in params]
    fields += [pa.field("data", pa.string()), pa.field("status", pa.string())]
    fields += [pa.field(k, pa.int64()) for k in COUNTS]
    fields += [pa.field(k, pa.float64()) for k in MONEY]
    fields += [pa.field("wall_time_s", pa.float64()), pa.field("error", pa.string()), pa.field("cell", pa.string())]
    schema = pa.schema(fields)
    table = pa.Table.from_pylist(table_rows, schema=schema)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def ranked(table_rows: list[dict], metric: str) -> list[dict]:
    """Finished rows, best first by ``metric`` (ties keep the plan's order)."""
    sign = -1 if HIGHER_IS_BETTER[metric] else 1
    done = [r for r in table_rows if r.get(metric) is not None]
    return sorted(done, key=lambda r: sign * r[metric])


#: The best-cells table's columns (short headers: it has to fit a terminal).
SHOWN = {"fills": "fills", "round_trips": "trips", "realized_pnl": "realized", "fees": "fees",
         "unrealized_pnl": "unrealized", "total_pnl": "total P&L", "max_drawdown": "max DD",
         "lowest_equity": "lowest equity"}
HEADERS = {**SHOWN, "net_realized_pnl": "net realized", "peak_capital_committed": "peak capital",
           "wall_time_s": "wall s"}


def best_table(params: list[Param], table_rows: list[dict], metric: str, top: int, several_files: bool):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    best = ranked(table_rows, metric)[:top]
    table = Table(title=f"best {len(best)} of {len(table_rows)} cells by {metric} "
                        f"({'higher' if HIGHER_IS_BETTER[metric] else 'lower'} is better)",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    header = ["#", *(p.path.rsplit(".", 1)[-1] for p in params), *(["data"] if several_files else [])]
    shown = [*SHOWN]
    if metric not in shown:
        shown.append(metric)
    header += [HEADERS[k] + (" *" if k == metric else "") for k in shown]
    body = []
    for i, r in enumerate(best, 1):
        cells = [Text(str(i)), *(Text(r[p.path]) for p in params)]
        if several_files:
            cells.append(Text(Path(r["data"]).name))
        for k in shown:
            v = r.get(k)
            if k in MONEY and v is not None:
                cells.append(Text(f"{v:,.2f}", style=("red" if v < 0 else "green") if k.endswith("pnl") else ""))
            else:
                cells.append(Text("-" if v is None else str(v)))
        body.append(cells)
    for j, name in enumerate(header):
        # figures are never cut: a narrow terminal wraps the headers instead
        widest = max((len(row[j].plain) for row in body), default=1)
        table.add_column(name, justify="left" if name == "data" else "right", min_width=widest, overflow="fold")
    for cells in body:
        table.add_row(*cells)
    return table


def write_heatmaps(out_dir: Path, params: list[Param], table_rows: list[dict], metric: str) -> list[Path]:
    """``heatmap-A--B.png`` for each pair of swept parameters: the mean of ``metric`` over the
    other parameters and the data files, per (A, B) value. Old heatmaps in ``out_dir`` go."""
    for old in out_dir.glob("heatmap-*.png"):
        old.unlink()
    written = []
    for i, a in enumerate(params):
        for b in params[i + 1:]:
            path = out_dir / f"heatmap-{a.path}--{b.path}.png"
            _heatmap(path, a, b, table_rows, metric, others=[p.path for p in params if p not in (a, b)],
                     files=len({r["data"] for r in table_rows}))
            written.append(path)
    return written


def _heatmap(path: Path, a: Param, b: Param, table_rows: list[dict], metric: str, others: list[str],
             files: int) -> None:
    import numpy as np

    from ..plot import import_matplotlib

    sums = np.zeros((len(a.values), len(b.values)))
    counts = np.zeros_like(sums)
    ia = {v: k for k, v in enumerate(a.values)}
    ib = {v: k for k, v in enumerate(b.values)}
    for r in table_rows:
        v = r.get(metric)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        sums[ia[r[a.path]], ib[r[b.path]]] += v
        counts[ia[r[a.path]], ib[r[b.path]]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    Figure, FigureCanvasAgg = import_matplotlib()
    width = min(16.0, 3.0 + 0.8 * len(b.values))
    height = min(12.0, 2.5 + 0.55 * len(a.values))
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    from matplotlib import colormaps

    cmap = colormaps["RdYlGn" if HIGHER_IS_BETTER[metric] else "RdYlGn_r"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(len(b.values)), labels=b.values, rotation=45 if len(b.values) > 8 else 0)
    ax.set_yticks(range(len(a.values)), labels=a.values)
    ax.set_xlabel(b.path)
    ax.set_ylabel(a.path)
    over = [*others, *(["data files"] if files > 1 else [])]
    ax.set_title(f"{metric}" + (f", mean over {', '.join(over)}" if over else ""), fontsize=10)
    fig.colorbar(image, ax=ax, label=metric)
    if len(a.values) * len(b.values) <= 400:
        finite = grid[np.isfinite(grid)]
        mid = (finite.min() + finite.max()) / 2 if len(finite) else 0
        for y in range(len(a.values)):
            for x in range(len(b.values)):
                if np.isfinite(grid[y, x]):
                    ax.text(x, y, _short(grid[y, x]), ha="center", va="center", fontsize=8,
                            color="black" if abs(grid[y, x] - mid) < (finite.max() - finite.min()) / 3 else "white")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp)
    os.replace(tmp, path)


def _short(v: float) -> str:
    if abs(v) >= 10_000:
        return f"{v / 1000:,.0f}k"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.2f}".rstrip("0").rstrip(".") if v != int(v) else f"{int(v)}"
