"""The IB plugin's pure parts: conversions of IB's objects, message codes, reconnect timing."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from types import SimpleNamespace as NS

from hypothesis import given
from hypothesis import strategies as st

from bothost.model import OrderRequest, OrderStatus, OrderType, Side
from bothost_plugins.ib_broker import codes, convert, lockstep
from bothost_plugins.ib_broker.config import IbBrokerConfig
from bothost_plugins.ib_broker.connection import backoff_s, in_nightly_reset

D = Decimal


@given(st.integers(1, 10_000_000))
def test_a_price_printed_by_the_wire_converts_back_exactly(cents):
    as_float = float(f"{cents / 100:.2f}")  # what the client decodes from "97.03"
    assert convert.price(as_float) == D(cents).scaleb(-2)
    assert convert.cents(as_float) == cents


def test_money_keeps_cents_and_every_digit_beyond():
    assert str(convert.price(1.0)) == "1.00" and str(convert.price(50.5)) == "50.50"
    assert str(convert.price(0.3745)) == "0.3745" and str(convert.price(97.0333333)) == "97.0333333"


def test_unset_and_bad_prices_are_none():
    assert convert.price(convert.UNSET_DOUBLE) is None
    assert convert.price(float("nan")) is None
    assert convert.cents(0.0) is None and convert.cents(-1.0) is None
    assert convert.cents(97.035) == 9704  # half up, not to even


def test_order_keys_are_unique_across_clients_and_manual_orders():
    assert convert.order_key(101, 57, 900, own_client_id=101) == "57"
    assert convert.order_key(7, 57, 901, own_client_id=101) == "c7-57"
    assert convert.order_key(0, 0, 902, own_client_id=101) == "p902"


def test_statuses():
    assert convert.status("PendingCancel") is OrderStatus.PENDING_CANCEL
    assert convert.status("Inactive") is OrderStatus.INACTIVE
    assert convert.status("ApiCancelled") is OrderStatus.CANCELLED
    assert convert.status("PreSubmitted") is OrderStatus.PRE_SUBMITTED


def test_an_lit_order_request_becomes_ib_fields():
    req = OrderRequest("TQQQ", Side.BUY, 88, D("99.00"), OrderType.LIMIT_IF_TOUCHED, D("99.00"), "GTC", True,
                       "tqqq_grid:BUY:L1:A100.00")
    f = convert.ib_order_fields(req)
    assert f == dict(action="BUY", totalQuantity=88.0, orderType="LIT", lmtPrice=99.0, auxPrice=99.0, tif="GTC",
                     outsideRth=True, orderRef="tqqq_grid:BUY:L1:A100.00", transmit=True)


def test_an_execution_becomes_a_fill_keyed_by_perm_id_with_its_data_time():
    when = datetime(2024, 1, 2, 14, 30, 15, tzinfo=timezone.utc)
    ex = NS(execId="0001.01", time=when, side="BOT", shares=40.0, price=97.03, permId=123456, clientId=101,
            orderId=57, cumQty=40.0, avgPrice=97.03, orderRef="tqqq_grid:BUY:L3:A100.00")
    f = convert.fill(NS(execution=ex, contract=NS(symbol="TQQQ", secType="STK"), commissionReport=None), 101, 88)
    assert (f.order_id, f.perm_id, f.stable_id) == ("57", "123456", "123456")
    assert f.time_ns == int(when.timestamp()) * 10**9 and f.side is Side.BUY and f.price == D("97.03")
    assert f.commission is None and (f.order_quantity, f.order_filled) == (88, 40) and not f.order_complete


def test_codes_say_what_a_trader_must_know():
    assert codes.describe(1100).action == codes.LOST
    assert codes.describe(1101).action == codes.RESTORED_DATA_LOST
    assert codes.describe(1102).action == codes.RESTORED
    assert codes.describe(2104).action == codes.INFO and codes.describe(2158).action == codes.INFO
    assert codes.describe(201).action == codes.ORDER_REJECTED
    assert codes.describe(354).action == codes.MARKET_DATA and codes.describe(10089).action == codes.MARKET_DATA
    assert codes.describe(326).action == codes.CLIENT_ID_IN_USE


def test_backoff_doubles_and_is_capped():
    assert [backoff_s(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_nightly_reset_window_is_new_york_time():
    def at(y, m, d, hh, mm):  # a UTC wall time
        return int(datetime(y, m, d, hh, mm, tzinfo=timezone.utc).timestamp()) * 10**9

    assert in_nightly_reset(at(2024, 1, 3, 5, 0))  # 00:00 EST
    assert in_nightly_reset(at(2024, 7, 3, 4, 0))  # 00:00 EDT
    assert not in_nightly_reset(at(2024, 1, 3, 15, 0))  # 10:00 EST
    assert not in_nightly_reset(at(2024, 1, 3, 6, 30))  # 01:30 EST


def test_live_ports_are_live():
    assert IbBrokerConfig(port=7496).is_live() and IbBrokerConfig(port=4001).is_live()
    assert not IbBrokerConfig(port=7497).is_live() and not IbBrokerConfig(port=4002).is_live()
    assert convert.is_paper_account("DU1234567") and not convert.is_paper_account("U1234567")


def test_lockstep_advertisement_and_exact_tick_time():
    values = [NS(tag="NetLiquidation", value="100000"), NS(tag="BothostPace", value="lockstep")]
    assert lockstep.advertised_pace(values) == "lockstep" and lockstep.advertised_pace(values[:1]) == ""
    assert lockstep.tick_time_ns(1704205815, "ns=1704205815250000000") == 1704205815250000000
    assert lockstep.tick_time_ns(1704205815, "") == 1704205815 * 10**9
