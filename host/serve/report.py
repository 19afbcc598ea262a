"""``report.html``: the status page as one self-contained file beside fills.csv.

The same page as ``bothost serve`` (the same data from ``views.page_data``, the same CSS and
JS, inlined), frozen at the moment it is written: no link, no script or style file, no font,
nothing the browser would fetch.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import views
from .app import STATIC_DIR, render_page
from .sources import Reader
from .sse import encode

REPORT_NAME = "report.html"


def render_report(data: dict, title: str) -> str:
    css = (STATIC_DIR / "style.css").read_text()
    js = (STATIC_DIR / "app.js").read_text()
    if "</script" in js.lower() or "</style" in css.lower():
        raise ValueError("a static asset cannot be inlined")
    return render_page((STATIC_DIR / "page.html").read_text(), title, encode(data), "report",
                       f"<style>\n{css}</style>", f"<script>\n{js}</script>")


def report_title(data: dict, out_dir: Path) -> str:
    symbols = [s["symbol"] for s in data.get("strategies") or () if s.get("symbol")]
    return f"bothost report · {', '.join(symbols) or out_dir.name} · {out_dir.name}"


def write_report(out_dir: Path, state_dir: Path | None, describe=None) -> Path:
    """Write ``out_dir/report.html`` from the run's files (read-only) and return its path."""
    data = views.page_data(Reader(state_dir, out_dir).read(), describe)
    path = out_dir / REPORT_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_report(data, report_title(data, out_dir)))
    os.replace(tmp, path)
    return path
