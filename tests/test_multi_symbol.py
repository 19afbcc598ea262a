"""Several strategies in one config, each on its own symbol, one broker connection (issue 15).

`bothost validate` refuses two strategies on one symbol (the broker's position is the
account's); a live feed streams every strategy's symbol; a replay of several symbols is refused
with what to do instead; reports are per strategy and symbol.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bothost.cli import cli
from conftest import CONFIGS

TWO_GRIDS = """\
extends: tqqq.yaml
strategies:
  - use: tqqq_grid
    id: tqqq
    symbol: TQQQ
    lots: tqqq_lots.csv
  - use: tqqq_grid
    id: soxl
    symbol: {second}
    lots: tqqq_lots.csv
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("tqqq.yaml", "tqqq-ib.yaml", "tqqq-paper.yaml", "tqqq_lots.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    return tmp_path


def invoke(*args: str, env: dict | None = None):
    base = {"ALPACA_API_KEY": "AKTEST", "ALPACA_SECRET_KEY": "secret", "COLUMNS": "200"}
    return CliRunner().invoke(cli, list(args), env={**base, **(env or {})}, catch_exceptions=False)


def test_two_strategies_on_one_symbol_are_refused_at_the_second_ones_symbol_line(folder):
    config = folder / "two.yaml"
    config.write_text(TWO_GRIDS.format(second="tqqq"))
    res = invoke("validate", str(config))
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert f"{config}:9:" in text  # `symbol: tqqq` of the second strategy
    assert "strategies 'tqqq' and 'soxl' both trade TQQQ" in text
    assert "position in TQQQ is the whole account's" in text
    assert "give each strategy its own symbol" in text
    assert "Traceback" not in res.output


def test_two_strategies_on_two_symbols_validate_and_the_feed_streams_both(folder, monkeypatch):
    from bothost.cli import _load

    config = folder / "two.yaml"
    config.write_text(TWO_GRIDS.format(second="SOXL"))
    res = invoke("validate", str(config))
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("ALPACA_API_KEY", "AKTEST")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "secret")
    _, _, run = _load(config)
    assert run.feed.settings.streamed() == ["TQQQ", "SOXL"]  # the strategies' symbols, by default
    config.write_text(TWO_GRIDS.format(second="SOXL").replace("extends: tqqq.yaml\n",
                                                               "extends: tqqq-ib.yaml\n"))
    # tqqq-ib.yaml writes `symbol: TQQQ`: a feed told its symbol must stream every strategy's
    res = invoke("validate", str(config))
    assert res.exit_code == 2, res.output
    assert "strategy 'soxl' trades SOXL, but the feed streams only TQQQ" in " ".join(res.output.split())


# ------------------------------------------------------------------ live feeds, every symbol
def _alpaca_feed(tmp: Path, **settings):
    import logging

    from bothost.hookspecs import BuildEnv
    from bothost_plugins.alpaca_feed.config import AlpacaFeedConfig
    from bothost_plugins.alpaca_feed.feed import AlpacaFeed

    return AlpacaFeed(AlpacaFeedConfig(key="AKTEST", secret="SECRET", **settings),
                      BuildEnv(tmp / "c.yaml", tmp, "paper", logging.getLogger("test")))


def test_the_alpaca_feed_subscribes_every_symbol_on_one_stream_and_tags_each_tick_with_its_own(tmp_path, caplog):
    """The real alpaca-py client against sim-alpaca (which serves SOXL from the file): one
    connection subscribes to TQQQ and SOXL, and SOXL's ticks are exactly the backtest's."""
    import asyncio
    import logging

    from bothost.model import Tick
    from bothost_plugins.replay_feed.feed import FileFeed
    from bothost_plugins.replay_feed.synthetic import write_csv
    from bothost_plugins.sim_alpaca.server import SimAlpaca
    from test_alpaca_feed import stream_until

    bars = tmp_path / "soxl.csv"
    write_csv(bars, bars=60, seed=8, volatility=0.8, start_price=20.0, interval=60)
    want = []
    replay = FileFeed(bars, "SOXL")
    replay.open()
    for chunk in replay.chunks():
        want += [("SOXL", t, p) for t, p in zip(chunk.time_ns.tolist(), chunk.price.tolist())]

    async def main():
        async with SimAlpaca(bars, pace="asap", symbol="SOXL") as sim:
            feed = _alpaca_feed(tmp_path, url=sim.url, symbols=["tqqq", "SOXL"])
            events = await stream_until(feed, lambda ev: sum(isinstance(e, Tick) for e in ev) >= len(want))
            return events, feed.stats()

    with caplog.at_level(logging.INFO, logger="bothost"):
        events, stats = asyncio.run(main())
    assert [(e.symbol, e.time_ns, e.price) for e in events if isinstance(e, Tick)] == want
    assert "subscribed {'trades': ['SOXL', 'TQQQ']" in caplog.text  # both, on the one connection
    assert stats["source"] == "Alpaca iex trades of TQQQ, SOXL"
    assert stats["ticks_by_symbol"] == {"TQQQ": 0, "SOXL": len(want)}


def test_interleaved_symbols_are_not_taken_for_a_replay_after_a_reconnect(tmp_path):
    """What was delivered is remembered per symbol: SOXL's trade at an earlier time than TQQQ's
    last is a new tick, while the same trade sent again (after a reconnect) is dropped."""
    import asyncio

    from msgpack import Timestamp

    feed = _alpaca_feed(tmp_path, symbols=["TQQQ", "SOXL"])
    got = []
    feed._emit = got.append
    t = 1_704_205_800 * 10**9

    def trade(symbol, dt_s, price, ident):
        return {"T": "t", "S": symbol, "i": ident, "p": price, "s": 100, "t": Timestamp.from_unix_nano(t + dt_s * 10**9)}

    async def main():
        for msg in (trade("TQQQ", 5, 50.01, 1), trade("SOXL", 3, 20.02, 1), trade("SOXL", 3, 20.02, 1),
                    trade("TQQQ", 5, 50.01, 1), trade("SOXL", 4, 20.03, 2)):
            await feed._on_trade(msg)

    asyncio.run(main())
    assert [(x.symbol, x.price) for x in got] == [("TQQQ", 5001), ("SOXL", 2002), ("SOXL", 2003)]
    assert feed.duplicates == 2


# ------------------------------------------------------------------ the simulated venue: one symbol
def test_a_backtest_of_two_symbols_from_one_file_is_refused_with_what_to_do_instead(folder):
    config = folder / "two.yaml"
    config.write_text(TWO_GRIDS.format(second="SOXL"))
    res = invoke("backtest", str(config), "--out", str(folder / "out"), "--state", str(folder / "state"),
                 "--no-progress", "--set", "feed.synthetic.bars=50")
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert f"{config}:9:" in text
    assert "strategy 'soxl' trades SOXL beside 'tqqq' on TQQQ" in text
    assert "a replay of one file, is not supported" in text
    assert "replay a file per symbol (`feed: {use: replay_feed, data_by_symbol:" in text
    assert not (folder / "out" / "fills.csv").exists()


# ------------------------------------------------------------------ a replay of several symbols
REPLAY_TWO = """\
extends: tqqq.yaml
broker: {use: sim_broker}
feed:
  use: replay_feed
  data_by_symbol: {TQQQ: tqqq.csv, SOXL: soxl.csv}
strategies:
  - {use: tqqq_grid, id: tqqq, symbol: TQQQ, lots: tqqq_lots.csv}
  - {use: tqqq_grid, id: soxl, symbol: SOXL, lots: tqqq_lots.csv}
notify: []
"""


def _rows(path: Path) -> list[list[str]]:
    import csv

    with open(path, newline="") as fh:
        return [r[:7] for r in csv.reader(fh)]  # time, symbol, side, level, quantity, price, commission


@pytest.fixture(scope="module")
def two_files(tmp_path_factory) -> Path:
    from bothost_plugins.replay_feed.synthetic import write_csv

    folder = tmp_path_factory.mktemp("two")
    for name in ("tqqq.yaml", "tqqq-paper.yaml", "tqqq_lots.csv"):
        shutil.copy(CONFIGS / name, folder / name)
    write_csv(folder / "tqqq.csv", bars=1500, seed=3, volatility=1.0, start_price=50.0, interval=60)
    # SOXL's bars 37 s after TQQQ's: the files' ticks interleave (a timer may fire on the other's tick)
    write_csv(folder / "soxl.csv", bars=1500, seed=9, volatility=1.2, start_price=20.0, interval=60,
              start="2024-01-02T09:30:37-05:00")
    (folder / "config.yaml").write_text(REPLAY_TWO)
    return folder


@pytest.fixture(scope="module")
def alone(two_files, tmp_path_factory) -> dict[str, list[list[str]]]:
    from conftest import run_in_process

    out = {}
    for symbol, name in (("TQQQ", "tqqq.csv"), ("SOXL", "soxl.csv")):
        tmp = tmp_path_factory.mktemp(f"alone-{symbol}")
        result = run_in_process(tmp, data=two_files / name,
                                overrides=(f"strategies.0.symbol={symbol}", f"feed.symbol={symbol}"))
        assert result.status == "done"
        out[symbol] = _rows(tmp / "out" / "fills.csv")
    return out


@pytest.mark.parametrize("verify", [False, True], ids=["skipping", "verify-skips"])
def test_a_replay_of_two_symbols_fills_each_as_its_one_symbol_backtest(two_files, alone, tmp_path, verify):
    import json

    out = tmp_path / "out"
    res = invoke("backtest", str(two_files / "config.yaml"), "--out", str(out), "--state", str(tmp_path / "state"),
                 "--no-progress", *(["--verify-skips"] if verify else []))
    assert res.exit_code == 0, res.output
    fills = _rows(out / "fills.csv")
    for symbol in ("TQQQ", "SOXL"):
        mine = [fills[0], *(r for r in fills[1:] if r[1] == symbol)]
        assert len(mine) > 20 and mine == alone[symbol], symbol
    times = [r[0] for r in fills[1:]]
    assert times == sorted(times)  # one fills.csv, in time order over both symbols
    summary = json.loads((out / "summary.json").read_text())
    assert summary["by_strategy"]["tqqq"]["fills"] == len(alone["TQQQ"]) - 1
    assert summary["by_strategy"]["soxl"]["symbol"] == "SOXL"
    assert summary["ticks"] == 2 * 4 * 1500
    assert (tmp_path / "state" / "venues" / "SOXL" / "venue.sqlite").exists()  # a venue per symbol
    # The terminal shows each strategy's own symbol and P&L, and claims no picture it did not draw.
    assert summary["max_drawdown"] is None and summary["equity"] is None
    lines = res.output.splitlines()
    assert any("tqqq" in line and "soxl" in line for line in lines[lines.index("by strategy"):])
    net = {sid: row["net_realized_pnl"] for sid, row in summary["by_strategy"].items()}
    assert any(net["tqqq"] in line and net["soxl"] in line for line in lines if "net realized pnl" in line)
    assert lines[-1] == f"outputs: {out}/fills.csv, summary.json" and not (out / "equity.png").exists()


def test_a_strategy_whose_symbol_has_no_data_in_the_replay_is_refused_at_its_line(two_files, tmp_path):
    config = two_files / "three.yaml"
    config.write_text(REPLAY_TWO + "")
    text = REPLAY_TWO.replace("notify: []\n", "  - {use: tqqq_grid, id: upro, symbol: UPRO, lots: tqqq_lots.csv}\n"
                                              "notify: []\n")
    config.write_text(text)
    res = invoke("backtest", str(config), "--out", str(tmp_path / "out"), "--state", str(tmp_path / "state"),
                 "--no-progress")
    assert res.exit_code == 2, res.output
    said = " ".join(res.output.split())
    assert f"{config}:9:" in said and "strategy 'upro' trades UPRO, but the replay has data of TQQQ, SOXL only" in said
    assert "add `UPRO: FILE` to the feed's data_by_symbol" in said


def test_a_missing_file_of_one_symbol_is_reported_at_the_line_that_names_it(two_files):
    config = two_files / "missing.yaml"
    config.write_text(REPLAY_TWO.replace("  data_by_symbol: {TQQQ: tqqq.csv, SOXL: soxl.csv}\n",
                                         "  data_by_symbol:\n    TQQQ: tqqq.csv\n    SOXL: nosuch.csv\n"))
    res = invoke("validate", str(config))
    assert res.exit_code == 2, res.output
    said = " ".join(res.output.split())
    assert f"{config}:7:" in said and "SOXL: no such file nosuch.csv" in said
    assert f"looked for {two_files / 'nosuch.csv'}" in said


def test_the_ib_feed_asks_for_each_symbol_on_the_brokers_socket_and_names_the_one_ib_refuses(tmp_path):
    """The real ib_insync client against sim-tws, which knows SOXL only: both symbols are asked
    for over the one connection, and the run ends naming TQQQ, the one IB has no data for."""
    import asyncio
    import logging

    from bothost.hookspecs import BrokerUnavailable, BuildEnv
    from bothost_plugins.ib_broker.broker import IbBroker
    from bothost_plugins.ib_broker.config import IbBrokerConfig, IbFeedConfig
    from bothost_plugins.ib_broker.feed import IbFeed
    from bothost_plugins.replay_feed.synthetic import write_csv
    from bothost_plugins.sim_tws.server import SimTwsThread

    bars = tmp_path / "soxl.csv"
    write_csv(bars, bars=20, seed=2, start_price=20.0)
    env = BuildEnv(tmp_path / "c.yaml", tmp_path, "paper", logging.getLogger("test"))
    sim = SimTwsThread(data=bars, state_dir=tmp_path / "sim", symbol="SOXL").start()

    async def main():
        broker = IbBroker(IbBrokerConfig(port=sim.port, client_id=31, connect_retries=0), env)
        feed = IbFeed(IbFeedConfig(symbols=["SOXL", "TQQQ"]), env)
        feed.attach_broker(broker)
        broker.bind(lambda event: None)
        await broker.connect()
        try:
            events: list = []
            with pytest.raises(BrokerUnavailable) as failed:
                await asyncio.wait_for(feed.stream(events.append), 20)
            return failed.value, feed.stats(), set(feed._req_tickers)
        finally:
            await broker.close()

    try:
        error, stats, asked = asyncio.run(main())
    finally:
        sim.stop()
    assert asked == {"SOXL", "TQQQ"}
    assert str(error).startswith("IB gives no market data for TQQQ: 200")
    assert stats["source"] == "IB trades of SOXL, TQQQ"
