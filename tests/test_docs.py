"""The plugin author's manual (mkdocs.yml, docs/) builds cleanly and documents the whole contract.

1. ``mkdocs build --strict`` succeeds: any warning (a broken link or anchor, a snippet whose file
   is missing, a cross-reference to nothing, a page left out of nav) fails it.
2. Every hook in host/hookspecs.py, and every member of every Protocol class there, has a
   docstring and its own anchor on the built reference page. The source is read with ``ast``,
   independently of the docs toolchain, so a member the renderer silently drops is caught too.
3. Every page under docs/ is in nav (and the rehearsal pages that predate the manual are).

The site is built once, in-process (about 2 s), into a temporary folder.
"""

from __future__ import annotations

import ast
import html
import os
import re
from pathlib import Path

import pytest

import mkdocs.config as mkdocs_config  # the test extra (pip install -e '.[test]') brings mkdocs and its plugins

ROOT = Path(__file__).resolve().parents[1]
HOOKSPECS = ROOT / "host" / "hookspecs.py"
MODULE = "bothost.hookspecs"
REFERENCE_PAGE = "reference/hookspecs/index.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    from mkdocs.commands.build import build
    from mkdocs.exceptions import Abort

    out = tmp_path_factory.mktemp("site")
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")  # mkdocs-material's banner, not a warning
    cwd = os.getcwd()
    os.chdir(ROOT)  # as a user runs it; the config's own paths are relative to its folder anyway
    try:
        config = mkdocs_config.load_config(str(ROOT / "mkdocs.yml"), strict=True, site_dir=str(out))
        try:
            build(config)
        except Abort as exc:  # strict: the warnings were logged above; say so in the failure
            pytest.fail(f"mkdocs build --strict failed: {exc} (the warnings are in the captured log)")
        except Exception as exc:  # a snippet whose file is missing, a page that cannot be read
            pytest.fail(f"mkdocs build --strict failed: {type(exc).__name__}: {exc}")
    finally:
        os.chdir(cwd)
    return out


# --------------------------------------------------------------------------------------------
# What host/hookspecs.py declares, read from its source
# --------------------------------------------------------------------------------------------


def _is_hookspec(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Name) and target.id == "hookspec"


def _is_protocol(cls: ast.ClassDef) -> bool:
    return any(isinstance(b, ast.Name) and b.id == "Protocol" for b in cls.bases)


def _attribute_docstring(body: list[ast.stmt], i: int, lines: list[str]) -> str | None:
    """An attribute's docstring: a string literal right below it, or ``#:`` lines right above it."""
    if i + 1 < len(body):
        nxt = body[i + 1]
        if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
            return nxt.value.value
    comments = []
    row = body[i].lineno - 2
    while row >= 0 and lines[row].strip().startswith("#:"):
        comments.append(lines[row].strip()[2:].strip())
        row -= 1
    return " ".join(reversed(comments)) or None


def contract() -> list[tuple[str, str | None]]:
    """(dotted name, docstring or None) for every hook and every Protocol member."""
    source = HOOKSPECS.read_text(encoding="utf-8")
    lines = source.splitlines()
    found: list[tuple[str, str | None]] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and any(_is_hookspec(d) for d in node.decorator_list):
            found.append((node.name, ast.get_docstring(node)))
        elif isinstance(node, ast.ClassDef) and _is_protocol(node):
            found.append((node.name, ast.get_docstring(node)))
            for i, member in enumerate(node.body):
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if not member.name.startswith("_"):
                        found.append((f"{node.name}.{member.name}", ast.get_docstring(member)))
                elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
                    if not member.target.id.startswith("_"):
                        found.append((f"{node.name}.{member.target.id}", _attribute_docstring(node.body, i, lines)))
    return found


def test_the_contract_is_read_from_the_source() -> None:
    names = dict(contract())
    # The reading itself is what the other checks stand on: it must see hooks, protocols and
    # members of each shape (method, async method, property, attribute).
    for name in ("bothost_register", "reconstruct", "on_tick", "on_stop", "StrategyContext",
                 "StrategyContext.place", "StrategyContext.now_ns", "StrategyContext.strategy_id",
                 "Broker.snapshot", "Broker.connect", "MatchingVenue.quiet_band", "ReplayFeed.symbol"):
        assert name in names, name
    assert len(names) >= 40


def test_every_hook_and_protocol_member_has_a_docstring() -> None:
    undocumented = [name for name, doc in contract() if not (doc and doc.strip())]
    assert not undocumented, (
        f"host/hookspecs.py: these have no docstring (a method's docstring, or a '#:' comment above "
        f"an attribute), so the author's manual cannot say what they are: {', '.join(undocumented)}")


def test_every_hook_and_protocol_member_is_on_the_reference_page(site: Path) -> None:
    page = (site / REFERENCE_PAGE).read_text(encoding="utf-8")
    anchors = {html.unescape(a) for a in re.findall(r'\bid="([^"]+)"', page)}
    missing = [name for name, _ in contract() if f"{MODULE}.{name}" not in anchors]
    assert not missing, f"not rendered on docs/{REFERENCE_PAGE}: {', '.join(missing)}"


def test_the_reference_shows_the_docstrings_themselves(site: Path) -> None:
    page = (site / REFERENCE_PAGE).read_text(encoding="utf-8")
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    text = " ".join(text.split())
    for name, doc in contract():
        if doc:
            # as docs/.api/host_docstrings.py renders a role: ~ shows the last name only
            first = re.sub(r":\w+:`(~?)([\w.]+)`", lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), doc)
            first = " ".join(re.sub(r"[`*]", "", first).split(". ")[0].split())[:60]
            assert first in text, f"{name}: {first!r} not on the page"
    assert ":func:" not in text and ":class:" not in text, "Sphinx roles left unrendered"


# --------------------------------------------------------------------------------------------
# Navigation
# --------------------------------------------------------------------------------------------


def _nav_pages(nav) -> list[str]:
    pages: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            pages += _nav_pages(value)
        elif isinstance(value, str) and not re.match(r"\w+://", value):
            pages.append(value)
    return pages


def test_every_page_is_in_nav() -> None:
    config = mkdocs_config.load_config(str(ROOT / "mkdocs.yml"))
    in_nav = set(_nav_pages(config["nav"]))
    docs = ROOT / "docs"
    pages = {p.relative_to(docs).as_posix() for p in docs.rglob("*.md")
             if not any(part.startswith(".") for part in p.relative_to(docs).parts)}
    assert pages - in_nav == set(), f"pages under docs/ that nav does not link: {sorted(pages - in_nav)}"
    assert in_nav - pages == set(), f"nav entries with no page: {sorted(in_nav - pages)}"
    for required in ("sim-tws.md", "sim-alpaca.md", "grid.md", "sim-venue.md", "reference/hookspecs.md"):
        assert required in in_nav, required


def test_every_page_is_built(site: Path) -> None:
    config = mkdocs_config.load_config(str(ROOT / "mkdocs.yml"))
    for page in _nav_pages(config["nav"]):
        built = site / (page[:-3] + "/index.html" if not page.endswith("index.md") else page[:-3] + ".html")
        assert built.is_file(), f"{page} was not built ({built})"
