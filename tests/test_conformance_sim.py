"""The broker conformance suite against the simulated venue (sim_broker), as it answers by
default and as it answers like IB (late acks and cancels, commission after the fill, partial
fills); and the suite's honesty: each test fails for a broker that gets its point wrong."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from bothost.hookspecs import BuildEnv
from bothost.model import ConnectionEvent, ConnectionState, OrderStatus, OrderType, OrderUpdate
from bothost.testing.conformance import BrokerConformance, MatchingVenueDriver, VenueCapabilities
from bothost_plugins.sim_broker.plugin import SimBroker, SimBrokerConfig

SETTINGS = {
    "answers_at_once": {},
    "answers_like_ib": {"broker_like": True, "partial_fill_shares": 4},
}


class SimVenueDriver(MatchingVenueDriver):
    """sim_broker's account in ``folder``; each new_broker() is the plugin's factory output on
    the same folder (a restart of a paper run)."""

    broker_class = SimBroker

    def __init__(self, folder: Path, timeout_s: float = 10.0, **settings):
        super().__init__()
        folder.mkdir(parents=True, exist_ok=True)  # a run's state folder exists before its broker is built
        self.folder = folder
        self.config = SimBrokerConfig(**settings)
        self.capabilities = VenueCapabilities(
            partial_fill_shares=self.config.partial_fill_shares, connection=False, trades_while_away=True,
            timeout_s=timeout_s,
            late_commission=self.config.commission_later or self.config.broker_like, settle_s=0)

    def new_broker(self):
        env = BuildEnv(self.folder / "bot.yaml", self.folder, "paper", logging.getLogger("test.conformance"))
        return self.broker_class(self.config, env)

    def settings(self, live: bool):
        return None if live else self.config


class TestSimBroker(BrokerConformance):
    @pytest.fixture(params=sorted(SETTINGS))
    def venue(self, request, tmp_path):
        return SimVenueDriver(tmp_path, **SETTINGS[request.param])


# ------------------------------------------------------------------ brokers that get it wrong
class Broken(SimBroker):
    """sim_broker with one thing wrong, wrapped around the opened venue (the broker hands the
    engine the venue's own methods once it is open)."""

    def open(self):
        super().open()
        place, match = self.place, self.match
        self.place = lambda order: place(self.wrong_order(order))
        self.match = lambda time_ns, price: (self.wrong_fill(f) for f in match(time_ns, price))

    def wrong_order(self, order):
        return order

    def wrong_fill(self, fill):
        return fill


class DropsTags(Broken):
    def wrong_order(self, order):
        return dataclasses.replace(order, ref="")


class SilentCancel(SimBroker):
    """Cancels, but never reports it."""

    def bind(self, emit):
        super().bind(lambda e: None if isinstance(e, OrderUpdate) and e.status is OrderStatus.CANCELLED else emit(e))


class CancelForgetsTheFills(SimBroker):
    """Reports a partly filled order's cancel as if nothing had filled."""

    def bind(self, emit):
        super().bind(lambda e: emit(dataclasses.replace(e, filled=0) if isinstance(e, OrderUpdate)
                                    and e.status is OrderStatus.CANCELLED else e))


class LitAsLimit(Broken):
    def wrong_order(self, order):
        return dataclasses.replace(order, order_type=OrderType.LIMIT, aux=None)


class ForgetsExecutions(SimBroker):
    async def snapshot(self, executions_since_ns):
        return dataclasses.replace(await super().snapshot(executions_since_ns), executions=())


class LosesCommission(Broken):
    """A fill without its commission, and no report after it."""

    def wrong_fill(self, fill):
        return dataclasses.replace(fill, commission=None)


class PerFillQuantities(Broken):
    """order_filled says the fill's own quantity, not the order's cumulative one."""

    def wrong_fill(self, fill):
        return dataclasses.replace(fill, order_filled=fill.quantity)


class FillsAboveTheLimit(Broken):
    def wrong_fill(self, fill):
        return dataclasses.replace(fill, price=fill.price + 1)


class NewAccountEachTime(SimBroker):
    """Each instance opens an account of its own: a restart forgets every order."""

    count = 0

    def __init__(self, config, env):
        NewAccountEachTime.count += 1
        super().__init__(config.model_copy(update={"database": f"venue{NewAccountEachTime.count}.sqlite"}), env)


class Connected(SimBroker):
    """The simulated venue with a connection the driver cuts and restores; ``restores`` False:
    the broker never says the connection came back."""

    restores = True

    def cut(self):
        self._emit(ConnectionEvent(0, "sim", ConnectionState.LOST, "cut by the test"))

    def restore(self):
        if self.restores:
            self._emit(ConnectionEvent(0, "sim", ConnectionState.RESTORED, "restored by the test"))


class NeverRestores(Connected):
    restores = False


class ConnectedDriver(SimVenueDriver):
    def __init__(self, folder, broker_class, **kw):
        super().__init__(folder, **kw)
        self.broker_class = broker_class
        self.capabilities = dataclasses.replace(self.capabilities, connection=True)
        self.current = None

    def new_broker(self):
        self.current = super().new_broker()
        return self.current

    async def cut_connection(self):
        self.current.cut()

    async def restore_connection(self):
        self.current.restore()


class ClaimsPaper(SimVenueDriver):
    """Its 'live' settings say they are not live."""

    def settings(self, live):
        return self.config


class BrokenDriver(SimVenueDriver):
    def __init__(self, folder, broker_class, **kw):
        super().__init__(folder, timeout_s=0.5, **kw)
        self.broker_class = broker_class


SUITE = BrokerConformance()

BROKEN = [
    (DropsTags, {}, SUITE.test_place_returns_an_id_at_once_and_the_order_is_open_with_its_tag, "tag did not survive"),
    (DropsTags, {}, SUITE.test_tags_round_trip_through_open_orders_fills_and_executions, "tags in the snapshot"),
    (SilentCancel, {}, SUITE.test_cancel_ends_the_order_with_one_cancelled_and_it_never_fills, "CANCELLED status"),
    (LitAsLimit, {}, SUITE.test_a_limit_if_touched_order_waits_for_its_trigger, "reported as LMT"),
    (ForgetsExecutions, {}, SUITE.test_a_restarted_broker_reports_the_open_orders_and_executions_of_the_first,
     "missing after the restart"),
    (NewAccountEachTime, {}, SUITE.test_a_restarted_broker_reports_the_open_orders_and_executions_of_the_first,
     "open orders should be"),
    (ForgetsExecutions, {}, SUITE.test_fills_while_no_broker_was_connected_are_in_the_next_snapshot,
     "while no broker was connected is missing"),
    (ForgetsExecutions, {}, SUITE.test_every_fill_has_its_commission_on_it_or_reported_after_it_by_exec_id,
     "missing from the snapshot"),
    (LosesCommission, {}, SUITE.test_every_fill_has_its_commission_on_it_or_reported_after_it_by_exec_id,
     "without a commission"),
    (SimBroker, {"commission_later": True}, SUITE.test_every_fill_has_its_commission_on_it_or_reported_after_it_by_exec_id,
     None),  # honest: a late commission is fine (the control case)
    (PerFillQuantities, {"partial_fill_shares": 4}, SUITE.test_fills_add_up_with_cumulative_quantities_and_average_price,
     "cumulative fill"),
    (CancelForgetsTheFills, {"partial_fill_shares": 4},
     SUITE.test_a_partly_filled_order_cancelled_keeps_its_fills_and_fills_no_more, "CANCELLED status says 0"),
    (FillsAboveTheLimit, {}, SUITE.test_fills_add_up_with_cumulative_quantities_and_average_price, "above its limit"),
]


@pytest.mark.parametrize("broker_class, settings, test, message", BROKEN,
                         ids=[f"{b[0].__name__}-{b[2].__name__[5:40]}" for b in BROKEN])
def test_the_suite_fails_a_broker_that_gets_it_wrong(tmp_path, broker_class, settings, test, message):
    driver = BrokenDriver(tmp_path, broker_class, **settings)
    if message is None:
        test(driver)  # the control: a correct broker passes
        return
    with pytest.raises(AssertionError, match=message):
        test(driver)


def test_the_suite_checks_lost_and_restored(tmp_path):
    SUITE.test_a_lost_connection_is_reported_lost_then_restored_and_the_broker_works_after(
        ConnectedDriver(tmp_path / "good", Connected))
    with pytest.raises(AssertionError, match="RESTORED"):
        SUITE.test_a_lost_connection_is_reported_lost_then_restored_and_the_broker_works_after(
            ConnectedDriver(tmp_path / "bad", NeverRestores, timeout_s=0.5))


def test_the_suite_fails_settings_that_hide_a_live_account(tmp_path):
    with pytest.raises(AssertionError, match="must say so"):
        SUITE.test_the_settings_say_whether_they_point_at_a_live_account(ClaimsPaper(tmp_path))


def test_a_venue_that_claims_whole_fills_must_not_split_them(tmp_path):
    driver = SimVenueDriver(tmp_path, partial_fill_shares=4)
    driver.capabilities = dataclasses.replace(driver.capabilities, partial_fill_shares=None)
    with pytest.raises(AssertionError, match="split one"):
        SUITE.test_fills_add_up_with_cumulative_quantities_and_average_price(driver)
