"""Reconstruct against the real simulated venue, through the real CLI: the venue is prepared as a
broker would leave it after a crash, then `bothost run` starts on it."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path


from bothost.hookspecs import BuildEnv
from bothost.model import OrderRequest, OrderType, Side
from bothost_plugins.sim_broker.plugin import SimBroker, SimBrokerConfig
from bothost_plugins.tqqq_grid.grid import sell_price, trigger_chain
from bothost_plugins.tqqq_grid.tags import entry_tag, queue_tag, sell_tag
from conftest import PAPER, bothost, write_bars

D = Decimal
T0 = 1704205800 * 10**9  # 2024-01-02 09:30 New York, in ns
MIN = 60 * 10**9
PCT = D("0.01")


def open_venue(state: Path) -> SimBroker:
    state.mkdir(parents=True, exist_ok=True)
    broker = SimBroker(SimBrokerConfig(), BuildEnv(PAPER, state, "paper", logging.getLogger("t")))
    broker.open()
    return broker


def close_venue(broker: SimBroker) -> None:
    broker.checkpoint()
    broker.store.close()


def buy_fill(venue, t_ns, qty, price, ref=""):
    """A BUY that fills at ``price`` on the tick at ``t_ns``; returns its order id."""
    venue.advance(t_ns - MIN, int(price * 100) + 50)  # the market just before, above the limit
    oid = venue.place(OrderRequest("TQQQ", Side.BUY, qty, price, ref=ref))
    fills = list(venue.match(t_ns, int(price * 100)))
    assert [f.order_id for f in fills] == [oid]
    return oid


def run_after(tmp_path: Path, state: Path, closes, *extra) -> tuple:
    data = write_bars(tmp_path / "bars.csv", closes, start="2024-01-02T10:30:00-05:00", spread=0.01)
    r = bothost("run", str(PAPER), "--data", str(data), "--state", str(state), "--out", str(tmp_path / "out"),
                "--no-progress", *extra, cwd=tmp_path)
    broker = open_venue(state)
    return r, broker.venue


def orders_of(venue, side):
    return sorted((o for o in venue.open_orders() if o.side is side), key=lambda o: o.limit, reverse=True)


def test_killed_between_buy_fill_and_sell_gets_its_sell_once(tmp_path):
    state = tmp_path / "state"
    b = open_venue(state)
    buy = buy_fill(b.venue, T0, 94, D("50.00"), ref=entry_tag("tqqq_grid", D("49.90")))
    close_venue(b)  # the bot died here: no SELL was ever placed
    r, venue = run_after(tmp_path, state, [50.05] * 30)
    assert r.returncode == 0, r.stderr
    [sell] = orders_of(venue, Side.SELL)
    assert (sell.quantity, sell.limit) == (94, D("50.50")) and f":B{buy}" in sell.ref
    buys = orders_of(venue, Side.BUY)
    chain = trigger_chain(D("50.00"), PCT, 88)
    assert [(o.limit, o.quantity) for o in buys] == [(chain[1], 88), (chain[2], 82), (chain[3], 77)]
    # A second start must not place a second SELL for the same BUY (Reconstruct 4).
    r2, venue2 = run_after(tmp_path, state, [50.05] * 30)
    assert r2.returncode == 0, r2.stderr
    assert len(orders_of(venue2, Side.SELL)) == 1


def test_fills_while_the_bot_was_down_leave_the_book_it_would_have(tmp_path):
    state = tmp_path / "state"
    # A first run builds a real book: L0 bought, SELL and queue resting.
    data = write_bars(tmp_path / "first.csv", [50.0] * 5)
    r = bothost("run", str(PAPER), "--data", str(data), "--state", str(state), "--out", str(tmp_path / "o1"),
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    b = open_venue(state)
    v = b.venue
    chain_orders = orders_of(v, Side.BUY)
    assert len(chain_orders) == 3
    # The venue keeps matching while the bot is down: the price falls through two queue levels.
    t = v.clock_ns
    fills = []
    for cents in (int(chain_orders[0].limit * 100), int(chain_orders[1].limit * 100)):
        t += MIN
        fills += list(v.match(t, cents))
    assert len(fills) == 2
    close_venue(b)
    r, venue = run_after(tmp_path, state, [float(chain_orders[1].limit)] * 20)
    assert r.returncode == 0, r.stderr
    sells = orders_of(venue, Side.SELL)
    assert sorted(o.quantity for o in sells) == [82, 88, 94]  # L0, L1, L2 each with their SELL
    for fill in fills:
        [s] = [o for o in sells if f":B{fill.order_id}" in o.ref]
        assert s.limit == sell_price(fill.price, PCT)
    anchor = D(chain_orders[0].ref.split(":A")[1])
    chain = trigger_chain(anchor, PCT, 88)
    assert [(o.limit, o.quantity) for o in orders_of(venue, Side.BUY)] == [(chain[3], 77), (chain[4], 72), (chain[5], 67)]


def test_legacy_untagged_sells_become_lots_and_get_a_tagged_queue(tmp_path):
    state = tmp_path / "state"
    b = open_venue(state)
    chain = trigger_chain(D("80.00"), PCT, 88)
    t = T0
    for level, qty in ((0, 94), (1, 88), (2, 82)):
        buy_fill(b.venue, t, qty, chain[level])  # the old bot's untagged BUYs
        b.venue.place(OrderRequest("TQQQ", Side.SELL, qty, sell_price(chain[level], PCT)))  # untagged SELL
        t += 5 * MIN
    close_venue(b)
    price = float(chain[2]) + 0.05
    r, venue = run_after(tmp_path, state, [price] * 20)
    assert r.returncode == 0, r.stderr
    assert len(orders_of(venue, Side.SELL)) == 3  # the legacy SELLs are kept as they are
    buys = orders_of(venue, Side.BUY)
    assert [(o.limit, o.quantity) for o in buys] == [(chain[3], 77), (chain[4], 72), (chain[5], 67)]
    assert all(o.ref == queue_tag("tqqq_grid", lvl, D("80.00")) for o, lvl in zip(buys, (3, 4, 5)))
    assert [o.order_type for o in buys] == [OrderType.LIMIT_IF_TOUCHED] * 3


def _orphan_venue(state: Path) -> None:
    b = open_venue(state)
    buy = buy_fill(b.venue, T0, 94, D("60.00"), ref=entry_tag("tqqq_grid", D("59.90")))
    b.venue.place(OrderRequest("TQQQ", Side.SELL, 94, D("60.60"),
                               ref=sell_tag("tqqq_grid", 0, D("60.00"), D("60.00"), buy)))
    buy_fill(b.venue, T0 + 10 * MIN, 9, D("59.00"))  # 9 shares bought by hand: no lot holds them
    close_venue(b)


def test_orphan_shares_alert_stops_with_exit_3_and_places_nothing(tmp_path):
    state = tmp_path / "state"
    _orphan_venue(state)
    before = len(open_venue(state).venue.open_orders())
    r, venue = run_after(tmp_path, state, [60.10] * 10)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "CRITICAL" in r.stderr and "Manual reset" in r.stderr and "Traceback" not in r.stderr
    assert len(venue.open_orders()) == before  # S1: nothing placed, nothing cancelled


def test_orphan_shares_adopted_get_their_sell(tmp_path):
    state = tmp_path / "state"
    _orphan_venue(state)
    r, venue = run_after(tmp_path, state, [60.10] * 10, "--set", "strategies.0.on_orphan_shares=adopt")
    assert r.returncode == 0, r.stderr
    sells = orders_of(venue, Side.SELL)
    assert sorted(o.quantity for o in sells) == [9, 94]
    [adopted] = [o for o in sells if o.quantity == 9]
    # "A lot at average cost": the broker's average cost of the whole position, as IB reports it.
    average = (94 * D("60.00") + 9 * D("59.00")) / 103
    assert adopted.limit == sell_price(average, PCT)


def test_missing_lot_is_a_critical_stop_with_nothing_placed(tmp_path):
    state = tmp_path / "state"
    b = open_venue(state)
    buy = buy_fill(b.venue, T0, 50, D("60.00"))  # only 50 shares held...
    b.venue.place(OrderRequest("TQQQ", Side.SELL, 94, D("60.60"),
                               ref=sell_tag("tqqq_grid", 0, D("60.00"), D("60.00"), buy)))  # ...a lot of 94
    close_venue(b)
    r, venue = run_after(tmp_path, state, [60.10] * 10)
    assert r.returncode == 3
    assert "CRITICAL" in r.stderr and "Manual reset" in r.stderr
    assert [o.side for o in venue.open_orders()] == [Side.SELL]
    status = bothost("status", str(PAPER), "--state", str(state), cwd=tmp_path)
    assert status.returncode == 0 and "alert" in status.stdout.lower()


def test_critical_alert_reaches_an_apprise_notifier_and_never_logs_its_url(tmp_path):
    """S1: every configured notifier hears of the alert; a notifier URL (it holds a token) is a
    secret and appears in no log."""
    import http.server
    import json
    import threading

    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        state = tmp_path / "state"
        b = open_venue(state)
        buy = buy_fill(b.venue, T0, 50, D("60.00"))
        b.venue.place(OrderRequest("TQQQ", Side.SELL, 94, D("60.60"),
                                   ref=sell_tag("tqqq_grid", 0, D("60.00"), D("60.00"), buy)))
        close_venue(b)
        url = f"json://127.0.0.1:{server.server_port}/hooks/SECRET-TOKEN-123"
        config = tmp_path / "alerting.yaml"
        config.write_text(f"extends: {PAPER}\nnotify:\n  - use: bell\n  - use: apprise\n    urls: ['{url}']\n")
        data = write_bars(tmp_path / "bars.csv", [60.10] * 10, start="2024-01-02T10:30:00-05:00")
        r = bothost("run", str(config), "--data", str(data), "--state", str(state), "--out", str(tmp_path / "o"),
                    cwd=tmp_path)
    finally:
        server.shutdown()
    assert r.returncode == 3, r.stdout + r.stderr
    assert "\a" in r.stderr  # the bell
    [(path, body)] = received
    assert path == "/hooks/SECRET-TOKEN-123"
    assert "CRITICAL" in body["message"] and "Manual reset" in body["message"]
    assert "SECRET-TOKEN-123" not in (state / "bot_log.txt").read_text()
    shown = bothost("config", "show", str(config), cwd=tmp_path)
    assert shown.returncode == 0 and "SECRET-TOKEN-123" not in shown.stdout and "***" in shown.stdout
