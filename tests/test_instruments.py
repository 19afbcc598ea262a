"""Prices in the instrument's increment (issue 15): a symbol declared under ``instruments:`` is
read, matched, filled and reported in units of its increment; an undeclared one stays in cents."""

from __future__ import annotations

import logging
import random
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bothost.cli import cli
from bothost.model import (
    Instrument,
    OrderRequest,
    OrderStatus,
    Side,
    decimal_to_cents,
    float_to_cents,
    instrument_for,
)
from bothost.report import fill_price_text
from bothost.serve import views
from bothost.serve.sources import Reader
from bothost.hookspecs import hookimpl
from bothost.testing import StrategyHarness, run_backtest
from bothost_plugins.replay_feed.feed import FileFeed
from bothost_plugins.replay_feed.reader import to_cents, to_units
from bothost_plugins.sim_broker.venue import Commission, Venue

LOTS = Path(__file__).resolve().parents[1] / "configs" / "tqqq_lots.csv"
PIP = Decimal("0.0001")


# -------------------------------------------------------------------------- the conversions

def test_an_instrument_converts_exactly_between_prices_and_units():
    pair = Instrument("ETHBTC", PIP)
    assert pair.price(498274) == Decimal("49.8274")
    assert pair.units(Decimal("49.8274")) == 498274
    assert pair.units(Decimal("1.00005")) == 10001  # half up, as cents are
    assert pair.exact_units(Decimal("1.2345")) == 12345
    assert pair.exact_units(Decimal("1.23455")) is None  # off the increment
    assert pair.exact_units(Decimal("-1.2345")) is None
    assert pair.round(Decimal("1.23456")) == Decimal("1.2346")
    assert pair.units_of_float(1.2345) == 12345  # the float of the printed price, exactly
    assert Instrument("ES", Decimal("0.25")).exact_units(Decimal("5001.75")) == 20007
    assert Instrument("ES", Decimal("0.25")).exact_units(Decimal("5001.80")) is None


def test_an_undeclared_symbol_is_priced_in_cents_as_before():
    stock = instrument_for({"ETHBTC": Instrument("ETHBTC", PIP)}, "TQQQ")
    assert stock == Instrument("TQQQ", Decimal("0.01"))
    for text in ("97.03", "0.01", "100.00", "12345.67"):
        d = Decimal(text)
        assert stock.units(d) == decimal_to_cents(d)
        assert str(stock.price(stock.units(d))) == f"{d:.2f}"
    assert stock.units_of_float(97.035) == float_to_cents(97.035) == 9704


@pytest.mark.parametrize("increment", ["0.0001", "0.005", "0.25", "0.3"])
def test_the_replay_reader_rounds_floats_half_up_to_any_increment(increment):
    # The text is the truth: every price printed with up to 6 decimals (halves included) gives
    # the units Decimal arithmetic gives from its text.
    inc = Decimal(increment)
    rnd = random.Random(5)
    texts = [f"{rnd.randrange(1, 10**9) / 10**6:.6f}" for _ in range(4000)]
    texts += [str((Decimal(k) + Decimal("0.5")) * inc) for k in range(1, 2000, 7)]  # exact halves
    got = to_units(np.array([float(t) for t in texts]), inc)
    want = [Instrument("X", inc).units(Decimal(t)) for t in texts]
    assert got.tolist() == want


def test_the_replay_reader_in_cents_is_unchanged():
    x = np.array([1.005, 97.03, 82.19999694824219, 0.004, 12345.675])
    assert to_units(x).tolist() == to_cents(x).tolist() == [101, 9703, 8220, 0, 1234568]


def test_fills_csv_writes_a_price_exactly_as_it_is():
    assert fill_price_text(Decimal("97.03")) == "97.03"
    assert fill_price_text(Decimal("97.0")) == "97.00"
    assert fill_price_text(Decimal("50.0000")) == "50.00"
    assert fill_price_text(Decimal("49.9988")) == "49.9988"  # a 0.0001 pair's fill: not 50.00


# -------------------------------------------------------------------------- the venue

def _venue(increments):
    events = []
    return Venue(events.append, Commission(), increments=increments), events


def test_the_venue_refuses_a_limit_off_the_increment_and_says_how_to_fix_it():
    venue, events = _venue({"ETHBTC": PIP})
    venue.place(OrderRequest("ETHBTC", Side.BUY, 10, Decimal("49.99885"), ref="t:1"))
    (update,) = events
    assert update.status is OrderStatus.REJECTED
    assert "0.0001" in update.message and "ctx.instrument.round" in update.message
    # the same limit on a cents symbol is refused in cents' words, as before
    venue.place(OrderRequest("TQQQ", Side.BUY, 10, Decimal("49.995"), ref="t:2"))
    assert events[-1].status is OrderStatus.REJECTED
    assert events[-1].message == "limit price 49.995 is not a whole number of cents (the venue trades in cents)"


def test_the_venue_fills_a_pair_at_its_own_prices_exactly():
    venue, events = _venue({"ETHBTC": PIP})
    venue.place(OrderRequest("ETHBTC", Side.BUY, 3, Decimal("49.9988"), ref="t:b"))
    venue.place(OrderRequest("ETHBTC", Side.SELL, 1, Decimal("50.0001"), ref="t:s"))
    venue.place(OrderRequest("ETHBTC", Side.BUY, 1, Decimal("49.9007"), ref="t:rests"))
    venue.advance(1, 500000)
    (buy,) = list(venue.match(2, 499_987))  # through the BUY: it fills at its limit
    assert buy.price == Decimal("49.9988") and buy.order_avg_price == Decimal("49.9988")
    (sell,) = list(venue.match(3, 500_001))
    assert sell.price == Decimal("50.0001")
    (order,) = venue.open_orders()
    assert order.limit == Decimal("49.9007")
    (position,) = venue.positions()
    assert position.quantity == 2 and position.avg_cost == Decimal("49.9988")


# -------------------------------------------------------------------------- config and runs

def _ticks(path: Path, units: np.ndarray, decimals: int) -> list[str]:
    """A tick file of prices written with ``decimals`` decimals (units of 10**-decimals)."""
    t0 = np.datetime64("2024-03-04T14:30:00")
    texts = [f"{u // 10**decimals}.{u % 10**decimals:0{decimals}d}" for u in units.tolist()]
    with open(path, "w") as fh:
        fh.write("timestamp,price\n")
        for i, text in enumerate(texts):
            fh.write(f"{t0 + np.timedelta64(10 * i, 's')}Z,{text}\n")
    return texts


def _grid_config(folder: Path, symbol: str, increment: str | None) -> Path:
    instruments = f"instruments:\n  {symbol}: {{increment: {increment}}}\n" if increment else ""
    path = folder / f"{symbol}-{increment}.yaml"
    path.write_text(f"mode: paper\n{instruments}broker: {{use: sim_broker}}\n"
                    f"feed: {{use: replay_feed, symbol: {symbol}, data: ticks.csv}}\n"
                    f"strategies:\n  - use: tqqq_grid\n    symbol: {symbol}\n    lots: {LOTS}\n")
    return path


def test_a_grid_backtest_of_a_pair_priced_to_a_ten_thousandth_fills_exactly(tmp_path):
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.integers(-500, 501, 20_000))  # folded into 48..52: a range-bound pair
    units = 480_000 + np.abs((walk + 20_000) % 80_000 - 40_000)
    data_prices = set(_ticks(tmp_path / "ticks.csv", units, 4))

    pair = run_backtest(_grid_config(tmp_path, "ETHBTC", "0.0001"), out_dir=tmp_path / "pair")
    assert pair.ok, pair.output
    rows = pair.fill_rows()
    assert len(rows) >= 10 and {r["side"] for r in rows} == {"BUY", "SELL"}
    prices = [Decimal(r["price"]) for r in rows]
    assert all(p % PIP == 0 for p in prices)
    # Entries are marketable on arrival and fill at the next tick's price (sim-venue rule 2):
    # the data's own 0.0001 prices, not rounded to cents.
    sub_cent = [r["price"] for r in rows if Decimal(r["price"]) % Decimal("0.01")]
    assert sub_cent and set(sub_cent) <= data_prices
    assert Decimal(pair.summary["last_price"]) == Instrument("ETHBTC", PIP).price(int(units[-1]))
    # P&L is exact to the ten-thousandth: each SELL's (price - its lot's purchase, from its tag)
    # x quantity, summed in Decimal, is what the summary booked
    def purchase(ref: str) -> Decimal:
        return Decimal(next(part[1:] for part in ref.split(":") if part.startswith("P")))

    booked = sum((int(r["quantity"]) * (Decimal(r["price"]) - purchase(r["order_ref"]))
                  for r in rows if r["side"] == "SELL"), Decimal(0))
    assert booked > 0 and booked % PIP == 0
    assert Decimal(pair.summary["realized_pnl"]) == booked

    # bothost serve draws the price picture in the pair's own prices (not in cents' hundredths)
    page = views.page_data(Reader(tmp_path / "pair" / "state", tmp_path / "pair").read(), None)
    assert page["chart"]["p"][-1] == float(pair.summary["last_price"])
    assert all(48 <= p <= 52 for p in page["chart"]["p"]) and any(round(p, 2) != p for p in page["chart"]["p"])

    cents = run_backtest(_grid_config(tmp_path, "ETHBTC", None), out_dir=tmp_path / "cents")
    assert cents.ok, cents.output
    assert all(Decimal(r["price"]) % Decimal("0.01") == 0 for r in cents.fill_rows())  # read in cents
    assert [r["price"] for r in cents.fill_rows()] != [r["price"] for r in rows]


def test_a_sub_penny_stock_through_the_replay_feed(tmp_path):
    units = np.array([123, 125, 119, 131, 99, 101])  # $0.0123 ... : all 1 cent in cents
    texts = _ticks(tmp_path / "ticks.csv", units, 4)
    feed = FileFeed(tmp_path / "ticks.csv", symbol="SNDL", increment=PIP).open()
    (chunk,) = list(feed.chunks())
    assert chunk.price.tolist() == units.tolist()
    assert [str(Instrument("SNDL", PIP).price(u)) for u in chunk.price.tolist()] == texts
    in_cents = FileFeed(tmp_path / "ticks.csv", symbol="SNDL").open()
    assert set(next(iter(in_cents.chunks())).price.tolist()) == {1}  # what cents would make of it


def _validate(folder: Path, instruments: str) -> tuple[int, str]:
    config = folder / "bot.yaml"
    config.write_text(f"mode: paper\ninstruments:\n{instruments}broker: {{use: sim_broker}}\n"
                      f"feed: {{use: replay_feed}}\nstrategies:\n  - use: tqqq_grid\n    lots: {LOTS}\n")
    result = CliRunner().invoke(cli, ["validate", str(config)], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.parametrize("written, words", [
    ("0", "above 0"),
    ("-0.01", "above 0"),
    ("0.000000001", "at most 8 decimals"),
    ("abc", "increment"),
])
def test_a_bad_increment_is_bad_input_at_its_line(tmp_path, written, words):
    code, output = _validate(tmp_path, f"  EURUSD: {{increment: {written}}}\n")
    assert code == 2, output
    assert f"{tmp_path / 'bot.yaml'}:3" in output and words in output
    assert "Traceback" not in output


def test_a_good_instrument_validates(tmp_path):
    code, output = _validate(tmp_path, "  EURUSD: {increment: 0.0001}\n  ES: {increment: 0.25}\n")
    assert code == 0, output


def test_live_feeds_read_prices_in_the_symbols_increment():
    from bothost_plugins.alpaca_feed import convert as alpaca
    from bothost_plugins.ib_broker import convert as ib

    at = "2024-03-04T14:30:00Z"
    assert alpaca.trade({"t": at, "p": 1.08425, "s": 1000}, "EURUSD", PIP).price == 10843  # half up
    assert alpaca.trade({"t": at, "p": 97.035, "s": 5}, "TQQQ").price == 9704  # cents, as before
    quote = alpaca.quote({"t": at, "bp": 1.0842, "ap": 1.0843}, "EURUSD", PIP)
    assert (quote.bid, quote.ask, quote.price) == (10842, 10843, 10843)
    bars = alpaca.bar({"t": at, "o": 0.0123, "h": 0.0131, "l": 0.0119, "c": 0.0125}, "SNDL", increment=PIP)
    assert [t.price for t in bars] == [123, 119, 131, 125]
    assert ib.units(0.0123, PIP) == 123 and ib.units(97.03) == ib.cents(97.03) == 9703
    assert ib.units(float("nan"), PIP) is None


def test_a_state_folder_made_in_one_increment_is_not_resumed_in_another(tmp_path):
    rng = np.random.default_rng(4)
    _ticks(tmp_path / "ticks.csv", 500_000 + np.cumsum(rng.integers(-300, 301, 400)), 4)
    config = _grid_config(tmp_path, "ETHBTC", "0.0001")
    state = str(tmp_path / "state")

    def run(*more: str):
        root = logging.getLogger()
        level, handlers = root.level, list(root.handlers)
        try:
            return CliRunner().invoke(cli, ["run", str(config), "--state", state, "--no-progress", *more],
                                      catch_exceptions=False)
        finally:  # the command logs onto its terminal and the run's log file: put the root back
            for handler in [h for h in root.handlers if h not in handlers]:
                root.removeHandler(handler)
                handler.close()
            root.setLevel(level)

    assert run().exit_code == 0
    assert run().exit_code == 0  # the same increment: the same run, resumed (here: finished)
    other = run("--set", "instruments.ETHBTC.increment=0.01")
    assert other.exit_code == 2
    assert "instruments.ETHBTC: '0.0001' in the state, '0.01' now" in other.output


class _SubPennyDip:
    """Buys 100 shares 3 increments under the first tick; once filled, sells 5 increments up."""

    symbol = "SNDL"
    wants_every_tick = True

    def __init__(self):
        self.placed = False
        self.selling = False

    @hookimpl
    def on_tick(self, ctx, tick):
        if not self.placed:
            self.placed = True
            ctx.place(OrderRequest(self.symbol, Side.BUY, 100, ctx.price(tick.price - 3), ref=f"{ctx.strategy_id}:b"))

    @hookimpl
    def on_fill(self, ctx, fill):
        if fill.side is Side.BUY and not self.selling:
            self.selling = True
            ctx.place(OrderRequest(self.symbol, Side.SELL, 100, ctx.price(ctx.units(fill.price) + 5),
                                   ref=f"{ctx.strategy_id}:s"))


def test_the_testing_harness_trades_a_sub_penny_stock_in_its_increment(tmp_path):
    with StrategyHarness(_SubPennyDip(), tmp_path, increment="0.0001") as h:
        assert h.ctx.instrument == Instrument("SNDL", PIP)
        h.ticks(["0.0125", "0.0122", "0.0121", "0.0127", "0.0126"])
        assert [(f.side, f.price) for f in h.fills] == [(Side.BUY, Decimal("0.0122")), (Side.SELL, Decimal("0.0127"))]
        assert h.position == 0
