"""Third-party plugins load through the same ``bothost`` entry-point group as the built-ins.

Each test builds, in its own ``tmp_path``, what ``pip install`` would leave on disk for a
plugin package: the module (copied from ``tests/support/thirdparty/``) and a
``<name>-<version>.dist-info/`` folder with ``METADATA`` and ``entry_points.txt``. That folder
goes on the ``PYTHONPATH`` of a real ``python -m bothost`` subprocess; nothing is installed
into the venv and nothing is written into the repository.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SUPPORT = Path(__file__).parent / "support" / "thirdparty"
BUILTINS = ("sim_broker", "replay_feed", "tqqq_grid", "bell", "apprise")
BARS = 500  # synthetic bars: each is four ticks (open, high/low, close)


# ----------------------------------------------------------------------------- helpers


def install(site: Path, dist: str, version: str, module: str, entry_point: str | None = None) -> None:
    """Lay out ``module`` as the installed distribution ``dist`` (``[bothost] <ep> = <module>``)."""
    site.mkdir(parents=True, exist_ok=True)
    shutil.copy(SUPPORT / f"{module}.py", site / f"{module}.py")
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[bothost]\n{entry_point or module} = {module}\n")


def bothost(tmp_path: Path, site: Path | None, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "bothost", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


def demo_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    install(site, "thirdparty-demo", "0.3.1", "thirdparty_demo", entry_point="demo")
    return site


def write_config(tmp_path: Path, body: str, name: str = "demo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


DEMO_CONFIG = textwrap.dedent(f"""\
    broker:
      use: sim_broker
    feed:
      use: replay_feed
      symbol: DEMO
      synthetic: {{seed: 3, bars: {BARS}}}
    strategies:
      - use: demo_strategy
        symbol: DEMO
    """)


def live_broker_config(port: int, mode: str | None = None) -> str:
    head = f"mode: {mode}\n" if mode else ""
    return head + textwrap.dedent(f"""\
        broker:
          use: demo_live_broker
          port: {port}
        feed:
          use: replay_feed
          symbol: DEMO
          synthetic: {{seed: 3, bars: {BARS}}}
        strategies:
          - use: demo_strategy
            symbol: DEMO
        """)


def row_of(table: str, name: str) -> list[str]:
    """The cells of the line of a rich table whose name column is ``name``."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│")]
        if name in cells:
            return cells
    raise AssertionError(f"no row for {name!r} in:\n{table}")


def assert_clean_error(r: subprocess.CompletedProcess) -> str:
    text = r.stdout + r.stderr
    assert r.returncode == 2, text
    assert "Traceback" not in text, text
    return text


# ----------------------------------------------------------------------------- listing


def test_plugins_lists_a_third_party_strategy_with_its_package_next_to_the_builtins(tmp_path):
    r = bothost(tmp_path, demo_site(tmp_path), "plugins")
    assert r.returncode == 0, r.stdout + r.stderr
    demo = row_of(r.stdout, "demo_strategy")
    assert "strategy" in demo and "thirdparty-demo" in demo and "0.3.1" in demo, demo
    broker = row_of(r.stdout, "demo_live_broker")
    assert "broker" in broker and "thirdparty-demo" in broker and "0.3.1" in broker, broker
    for name in BUILTINS:
        row = row_of(r.stdout, name)
        assert "bothost" in row and "0.1.0" in row, row


def test_without_the_distribution_the_demo_plugin_is_not_listed(tmp_path):
    # The module alone on the path is not a plugin: only the entry point makes it one.
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(SUPPORT / "thirdparty_demo.py", site / "thirdparty_demo.py")
    r = bothost(tmp_path, site, "plugins")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "demo_strategy" not in r.stdout
    assert "tqqq_grid" in r.stdout


# ----------------------------------------------------------------------------- using it


def test_a_config_using_the_third_party_strategy_validates_and_runs(tmp_path):
    site = demo_site(tmp_path)
    config = write_config(tmp_path, DEMO_CONFIG)

    r = bothost(tmp_path, site, "validate", str(config))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok" in r.stdout and "demo_strategy" in r.stdout

    r = bothost(tmp_path, site, "run", str(config), "--state", "S", "--out", "O")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    summary = json.loads((tmp_path / "O" / "summary.json").read_text())
    assert summary["status"] == "done"
    assert summary["ticks"] == 4 * BARS
    assert summary["fills"] == 0 and summary["orders_placed"] == 0  # the demo places nothing
    # The host really drove the third-party strategy: it saw every tick of the replay.
    state = json.loads((tmp_path / "S" / "bot_state.json").read_text())
    assert state["strategies"]["demo_strategy"]["ticks_seen"] == 4 * BARS
    header = (tmp_path / "O" / "fills.csv").read_text().splitlines()
    assert header == ["time,symbol,side,level,quantity,price,commission,order_id,order_ref"]

    # What it recorded shows in `bothost status` like a built-in's records.
    r = bothost(tmp_path, site, "status", str(config), "--state", "S")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ticks_seen" in r.stdout and str(4 * BARS) in r.stdout


def test_the_third_party_config_model_is_enforced_by_validate(tmp_path):
    site = demo_site(tmp_path)
    config = write_config(tmp_path, DEMO_CONFIG + "    colour: red\n")
    assert "    symbol: DEMO\n    colour: red" in config.read_text()  # a key the model forbids
    r = bothost(tmp_path, site, "validate", str(config))
    text = assert_clean_error(r)
    assert "colour" in text
    assert "demo.yaml" in text


# ----------------------------------------------------------------------------- broken packages


def test_a_plugin_that_fails_to_import_is_named_by_its_package(tmp_path):
    site = demo_site(tmp_path)
    install(site, "thirdparty-broken", "1.0.0", "thirdparty_broken")
    r = bothost(tmp_path, site, "plugins")
    text = assert_clean_error(r)
    assert "thirdparty-broken" in text
    assert "thirdparty_dependency_that_is_not_installed" in text  # what it failed on


def test_two_packages_registering_the_same_name_are_both_named(tmp_path):
    site = demo_site(tmp_path)
    install(site, "thirdparty-clash", "2.0.0", "thirdparty_clash")
    r = bothost(tmp_path, site, "plugins")
    text = assert_clean_error(r)
    assert "demo_strategy" in text
    assert "thirdparty-demo" in text and "thirdparty-clash" in text


def test_a_third_party_package_cannot_take_over_a_builtin_name(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(SUPPORT / "thirdparty_clash.py", site / "thirdparty_clash.py")
    # the same module, but registering the built-in strategy's name
    module = site / "thirdparty_clash.py"
    module.write_text(module.read_text().replace('"demo_strategy"', '"tqqq_grid"'))
    info = site / "thirdparty_grid-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-grid\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text("[bothost]\nzz_grid = thirdparty_clash\n")
    r = bothost(tmp_path, site, "plugins")
    text = assert_clean_error(r)
    assert "tqqq_grid" in text
    assert "thirdparty-grid" in text and "'bothost'" in text


# ----------------------------------------------------------------------------- S2: live guard


def test_s2_a_live_port_without_mode_live_is_refused_before_anything_runs(tmp_path):
    site = demo_site(tmp_path)
    config = write_config(tmp_path, live_broker_config(7496))
    r = bothost(tmp_path, site, "run", str(config), "--state", "S", "--out", "O")
    text = assert_clean_error(r)
    assert "LIVE" in text and "mode: live" in text
    assert "demo.yaml" in text
    assert not (tmp_path / "O").exists()  # nothing ran: no outputs
    assert not (tmp_path / "S" / "bot_state.json").exists()
    assert not (tmp_path / "S" / "status.json").exists()


def test_s2_a_paper_port_passes_the_guard_and_runs(tmp_path):
    site = demo_site(tmp_path)
    config = write_config(tmp_path, live_broker_config(7497))
    r = bothost(tmp_path, site, "run", str(config), "--state", "S", "--out", "O")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "LIVE" not in r.stdout + r.stderr
    summary = json.loads((tmp_path / "O" / "summary.json").read_text())
    assert summary["status"] == "done" and summary["ticks"] == 4 * BARS


def test_s2_a_live_port_with_mode_live_passes_the_guard(tmp_path):
    site = demo_site(tmp_path)
    config = write_config(tmp_path, live_broker_config(4001, mode="live"))
    r = bothost(tmp_path, site, "run", str(config), "--state", "S", "--out", "O")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "LIVE account" not in r.stdout + r.stderr
    assert json.loads((tmp_path / "O" / "summary.json").read_text())["status"] == "done"


def test_a_broker_that_cannot_be_reached_exits_4_with_its_reason(tmp_path):
    site = demo_site(tmp_path)
    config = write_config(tmp_path, live_broker_config(7497).replace("port: 7497", "port: 7497\n  unreachable: true"))
    r = bothost(tmp_path, site, "run", str(config), "--state", "S", "--out", "O")
    assert r.returncode == 4, r.stdout + r.stderr
    assert "no gateway answered at 127.0.0.1:7497" in r.stderr and "Traceback" not in r.stdout + r.stderr


# ----------------------------------------------------------------------------- API version (in-process)


def _site_with(tmp_path: Path, dist: str, module: str, source: str) -> Path:
    """An installed distribution ``dist`` whose one plugin module is ``source``."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[bothost]\n{module} = {module}\n")
    return site


PLUGIN_SOURCE = """\
    from pydantic import BaseModel

    from bothost.hookspecs import hookimpl

    {declaration}

    class NoteConfig(BaseModel):
        pass

    class Note:
        @hookimpl
        def {hook}(self, ctx, fill):
            pass

    @hookimpl
    def bothost_register(registry):
        registry.add_notifier("note_{module}", NoteConfig, lambda config, env: Note())
    """


def _only(monkeypatch, *dists: str) -> None:
    """Load only bothost's own plugins and ``dists``: whatever else the test venv holds at the
    moment (another test's package, half installed) is not this test's business."""
    import bothost.plugins as plugins

    everything = plugins._entry_points
    wanted = {"bothost", *dists}
    monkeypatch.setattr(plugins, "_entry_points",
                        lambda: [ep for ep in everything() if ep.dist is not None and ep.dist.name in wanted])


def _plugin(tmp_path: Path, monkeypatch, dist: str, module: str, declaration: str = "BOTHOST_API = 1",
            hook: str = "on_fill") -> None:
    site = _site_with(tmp_path, dist, module,
                      PLUGIN_SOURCE.format(declaration=declaration, hook=hook, module=module))
    monkeypatch.syspath_prepend(str(site))
    _only(monkeypatch, dist)


def test_every_built_in_plugin_declares_the_api_version_of_this_host(monkeypatch):
    import bothost
    from bothost.hookspecs import API_VERSION
    from bothost.plugins import load_plugins

    _only(monkeypatch)
    _, _, loaded = load_plugins()
    built_in = [p for p in loaded if p.package == "bothost"]
    assert {p.name for p in built_in} >= {"sim_broker", "replay_feed", "tqqq_grid", "notify", "ib_broker", "alpaca_feed"}
    assert bothost.API_VERSION == API_VERSION == 1
    assert {p.name: p.api_version for p in built_in} == {p.name: API_VERSION for p in built_in}


def test_a_plugin_for_another_api_version_is_refused_naming_its_package_and_both_versions(tmp_path, monkeypatch):
    from bothost.plugins import load_plugins
    from bothost.registry import PluginError

    _plugin(tmp_path, monkeypatch, "thirdparty-future", "thirdparty_future", declaration="BOTHOST_API = 2")
    with pytest.raises(PluginError) as caught:
        load_plugins()
    message = str(caught.value)
    assert "'thirdparty-future'" in message and "API 2" in message and "speaks API 1" in message, message


def test_a_plugin_that_declares_no_api_version_loads_with_a_warning(tmp_path, monkeypatch, caplog):
    from bothost.plugins import load_plugins

    _plugin(tmp_path, monkeypatch, "thirdparty-quiet", "thirdparty_quiet", declaration="")
    with caplog.at_level(logging.WARNING, logger="bothost.plugins"):
        _, registry, loaded = load_plugins()
    assert registry.get("notifier", "note_thirdparty_quiet") is not None
    mine = next(p for p in loaded if p.package == "thirdparty-quiet")
    assert mine.api_version is None and mine.hooks == ("bothost_register", "on_fill")
    assert any("'thirdparty-quiet'" in r.getMessage() and "BOTHOST_API = 1" in r.getMessage() for r in caplog.records)


def test_a_misspelt_hook_is_refused_with_the_hook_it_meant(tmp_path, monkeypatch):
    from bothost.plugins import load_plugins
    from bothost.registry import PluginError

    _plugin(tmp_path, monkeypatch, "thirdparty-typo", "thirdparty_typo", hook="on_fil")
    with pytest.raises(PluginError, match=r"'thirdparty-typo'.*Note.on_fil.*no hook 'on_fil' \(did you mean 'on_fill'\?\)"):
        load_plugins()


def test_plugins_verbose_lists_each_modules_package_version_api_and_hooks(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from bothost.cli import cli

    _plugin(tmp_path, monkeypatch, "thirdparty-notes", "thirdparty_notes")
    monkeypatch.setenv("COLUMNS", "250")
    r = CliRunner().invoke(cli, ["plugins", "--verbose"])
    assert r.exit_code == 0, r.output
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in r.output.splitlines() if line.startswith("│")]
    cells = next(row for row in rows if row[0] == "thirdparty_notes")  # the modules table
    assert cells == ["thirdparty_notes", "thirdparty_notes", "thirdparty-notes", "1.2.3", "1",
                     "notifier note_thirdparty_notes", "bothost_register, on_fill"], cells
    grid = next(line for line in r.output.splitlines() if "bothost_plugins.tqqq_grid.plugin" in line)
    assert "describe_order_ref" in grid and "strategy tqqq_grid" in grid
    plain = CliRunner().invoke(cli, ["plugins"])
    assert "hooks" not in plain.output and "note_thirdparty_notes" in plain.output
