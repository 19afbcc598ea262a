"""``bothost new-plugin``: each kind's package, as generated, installs with pip and passes its own
tests; ``bothost plugins`` lists it; a bad NAME or --dir is refused (exit 2) and nothing is
overwritten.

The packages are installed into this venv (editable, as an author would) for the module only
and uninstalled at its end, so no other test sees them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support.pip_install import pip, uninstall
from click.testing import CliRunner

from bothost.cli import cli

# They install packages into this venv, which every bothost run (any test's) would load.
pytestmark = pytest.mark.installs

REPO = Path(__file__).resolve().parents[1]
KINDS = ("strategy", "broker", "feed", "notifier")
#: Names no one has installed: a generated package is importable under its name.
NAMES = {kind: f"np_test_{kind}" for kind in KINDS}


def new_plugin(*args: str):
    return CliRunner().invoke(cli, ["new-plugin", *args])


@pytest.fixture(scope="class")
def packages(tmp_path_factory):
    """The four packages, generated and installed (pip install --no-deps -e) for the class's tests."""
    uninstall(NAMES.values())  # left by an interrupted earlier run
    root = tmp_path_factory.mktemp("generated")
    for kind, name in NAMES.items():
        made = new_plugin(kind, name, "--dir", str(root / name))
        assert made.exit_code == 0, made.output
    installed = pip("install", "--no-deps", "--no-build-isolation",
                    *[a for name in NAMES.values() for a in ("-e", str(root / name))])
    assert installed.returncode == 0, installed.stderr
    try:
        yield root
    finally:
        uninstall(NAMES.values())


class TestGeneratedPackages:
    """Installed in this venv while the class runs (editable), uninstalled after it."""

    def test_the_package_of_each_kind(self, packages):
        for kind, name in NAMES.items():
            files = sorted(p.relative_to(packages / name).as_posix() for p in (packages / name).rglob("*")
                           if p.is_file() and "egg-info" not in p.as_posix() and "__pycache__" not in p.as_posix())
            assert {"pyproject.toml", "README.md", "config.yaml", f"{name}/__init__.py", f"{name}/plugin.py",
                    f"tests/test_{name}.py"} <= set(files), (kind, files)
            pyproject = (packages / name / "pyproject.toml").read_text()
            assert f'[project.entry-points.bothost]\n{name} = "{name}.plugin"' in pyproject
            plugin = (packages / name / name / "plugin.py").read_text()
            from bothost.hookspecs import API_VERSION

            assert f"BOTHOST_API = {API_VERSION}\n" in plugin
            assert "{{" not in plugin and "{{" not in (packages / name / "README.md").read_text()
        # What an author starts from is clean by the project's own lint rules.
        lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
                               str(REPO / "pyproject.toml"), str(packages)], capture_output=True, text=True, timeout=60)
        assert lint.returncode == 0, lint.stdout + lint.stderr

    def test_each_kind_installs_and_passes_its_own_tests(self, packages, tmp_path):
        report = tmp_path / "report.xml"
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                               *[str(packages / name / "tests") for name in NAMES.values()]],
                              cwd=packages, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "COLUMNS": "200"})
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        outcomes: dict[str, list[str]] = {}
        for case in ET.parse(report).getroot().iter("testcase"):
            # classname: the test module's dotted path (and class), e.g. "tests.test_NAME.TestConformance"
            file = next((part for part in case.get("classname", "").split(".") if part.startswith("test_")), "")
            verdict = "skipped" if case.find("skipped") is not None else "failed" if len(case) else "passed"
            outcomes.setdefault(file, []).append(verdict)
        for kind, name in NAMES.items():
            ran = outcomes.get(f"test_{name}", [])
            assert ran.count("passed") >= 4 and "failed" not in ran, (kind, ran)
        # The broker is checked by the whole conformance suite (its connection tests skip: it has none).
        assert outcomes[f"test_{NAMES['broker']}"].count("passed") >= 10

    def test_bothost_plugins_lists_them_beside_the_built_ins(self, packages):
        from bothost.hookspecs import API_VERSION

        listed = subprocess.run([sys.executable, "-m", "bothost", "plugins", "--verbose"], capture_output=True,
                                text=True, timeout=60, env={**os.environ, "COLUMNS": "300"})
        assert listed.returncode == 0, listed.stderr
        rows = [[cell.strip().replace("-", "_") for cell in line.split("│")[1:-1]]
                for line in listed.stdout.splitlines() if line.startswith("│")]
        for kind, name in NAMES.items():  # the kinds: kind, name, package (its pip name), version
            assert [kind, name, name, "0.1.0"] in [r[:4] for r in rows], listed.stdout
            # the modules: plugin, module, package, version, the API it declares, what it provides
            assert [name, f"{name}.plugin", name, "0.1.0", str(API_VERSION), f"{kind} {name}"] in [
                r[:6] for r in rows], listed.stdout
        assert ["strategy", "tqqq_grid", "bothost"] in [r[:3] for r in rows]


@pytest.mark.parametrize("name, says", [
    ("Dip-Buyer", "for example 'dip_buyer'"),
    ("2fast", "starting with a letter"),
    ("class", "Python keyword"),
    ("json", "standard library"),
    ("pytest", "already installed"),
    ("x" * 61, "at most 60"),
])
def test_a_bad_name_is_refused_with_the_reason(tmp_path, name, says):
    refused = new_plugin("strategy", name, "--dir", str(tmp_path / "pkg"))
    assert refused.exit_code == 2
    assert says in refused.output and "Traceback" not in refused.output
    assert not (tmp_path / "pkg").exists()


def test_a_name_another_plugin_registers_is_refused(tmp_path):
    refused = new_plugin("strategy", "tqqq_grid", "--dir", str(tmp_path / "pkg"))
    assert refused.exit_code == 2 and "already registered by package 'bothost'" in refused.output


def test_an_unknown_kind_is_a_usage_error(tmp_path):
    refused = new_plugin("widget", "my_widget", "--dir", str(tmp_path / "pkg"))
    assert refused.exit_code == 2 and "'widget' is not one of" in refused.output


def test_a_folder_that_is_not_empty_is_refused_and_left_as_it_was(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("my notes")
    refused = new_plugin("notifier", "my_pager", "--dir", str(target))
    assert refused.exit_code == 2 and "not empty" in refused.output and "never overwrites" in refused.output
    assert [p.name for p in target.iterdir()] == ["notes.txt"] and (target / "notes.txt").read_text() == "my notes"
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    refused = new_plugin("notifier", "my_pager", "--dir", str(a_file))
    assert refused.exit_code == 2 and "not a folder" in refused.output and a_file.read_text() == "x"


def test_an_empty_folder_or_none_is_written(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    made = new_plugin("feed", "my_ticks", "--dir", str(tmp_path / "empty"))
    assert made.exit_code == 0, made.output
    assert (tmp_path / "empty" / "my_ticks" / "plugin.py").is_file()
    monkeypatch.chdir(tmp_path)
    made = new_plugin("broker", "my_broker")  # no --dir: ./NAME
    assert made.exit_code == 0, made.output
    assert (tmp_path / "my_broker" / "my_broker" / "paper.py").is_file()
    assert "pip install -e" in made.output
