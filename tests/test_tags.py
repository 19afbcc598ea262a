"""R5 order tags: format, parser, exact round trip."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bothost.model import Side
from bothost_plugins.tqqq_grid.tags import (
    ENTRY,
    QUEUE,
    SELL,
    Tag,
    entry_tag,
    format_price,
    format_tag,
    owns,
    parse_own,
    parse_tag,
    queue_tag,
    sell_tag,
)

D = Decimal


def test_examples():
    assert queue_tag("tqqq_grid", 4, D("100.00")) == "tqqq_grid:BUY:L4:A100.00"
    assert queue_tag("tqqq_grid", 4, D("100")) == "tqqq_grid:BUY:L4:A100.00"
    assert entry_tag("tqqq_grid", D("101.25")) == "tqqq_grid:BUY:L0:M101.25"
    assert sell_tag("tqqq_grid", 3, D("97.03"), D("100.00"), "17") == "tqqq_grid:SELL:L3:P97.03:A100.00:B17"
    assert sell_tag("tqqq_grid", 3, D("97.03"), None, None) == "tqqq_grid:SELL:L3:P97.03"
    t = parse_tag("tqqq_grid:SELL:L3:P97.03:A100.00:B17")
    assert t == Tag("tqqq_grid", Side.SELL, 3, SELL, D("97.03"), D("100.00"), "17")
    assert parse_tag("tqqq_grid:BUY:L0:M101.25") == Tag("tqqq_grid", Side.BUY, 0, ENTRY, D("101.25"))
    # the entry's placement time rides along, for brokers that do not report it (IB)
    t = 1_704_205_815_250_000_000
    assert entry_tag("tqqq_grid", D("101.25"), t) == "tqqq_grid:BUY:L0:M101.25:T1704205815250"
    assert parse_tag("tqqq_grid:BUY:L0:M101.25:T1704205815250").placed_ns == t
    assert parse_tag("tqqq_grid:BUY:L4:A100.00:T1704205815250") is None  # only the entry has one
    assert parse_tag("tqqq_grid:BUY:L4:A100.00").is_entry is False


def test_sub_cent_prices_are_exact():
    avg = D(29110) / D(300)  # an average of partial fills: 97.0333...
    ref = sell_tag("tqqq_grid", 3, avg, D("100.005"), "17")
    tag = parse_tag(ref)
    assert tag.price == avg and tag.anchor == D("100.005")
    assert "E" not in ref.split(":")[3] and " " not in ref
    assert format_price(D("1E+2")) == "100.00"
    assert format_price(D("97.0300")) == "97.03"
    assert format_price(D("97.0301")) == "97.0301"
    assert format_price(D("0.001")) == "0.001"
    with pytest.raises(ValueError):
        format_price(D("NaN"))
    with pytest.raises(ValueError):
        format_price(D("-1"))


def test_ids_with_separators_are_escaped():
    ref = sell_tag("grid:a b", 2, D("10"), D("11"), "x:1 2%")
    assert " " not in ref and ref.count(":") == 5
    tag = parse_tag(ref)
    assert tag.strategy_id == "grid:a b" and tag.buy_order_id == "x:1 2%"
    assert owns(ref, "grid:a b") and not owns(ref, "grid")


@pytest.mark.parametrize(
    "ref",
    [
        "", "tqqq_grid", "tqqq_grid:BUY:L4", "tqqq_grid:HOLD:L4:A100.00", "tqqq_grid:BUY:4:A100.00",
        "tqqq_grid:BUY:L04:A100.00", "tqqq_grid:BUY:L-1:A100.00", "tqqq_grid:BUY:L4:X100.00",
        "tqqq_grid:BUY:L4:ANaN", "tqqq_grid:BUY:L4:A1e2", "tqqq_grid:BUY:L4:A-1.00", "tqqq_grid:BUY:L4:A",
        "tqqq_grid:BUY:L4:P100.00", "tqqq_grid:SELL:L4:A100.00", "tqqq_grid:BUY:L3:M100.00",
        "tqqq_grid:BUY:L4:A100.00:B17", "tqqq_grid:SELL:L3:P97.03:B17:A100.00", "tqqq_grid:SELL:L3:P97.03:Z1",
        "tqqq_grid:SELL:L3:P97.03:B", "tqqq_grid :BUY:L4:A100.00", ":BUY:L4:A100.00", "legacy order",
    ],
)
def test_garbled_tags_are_rejected(ref):
    assert parse_tag(ref) is None


def test_parse_own():
    ref = queue_tag("grid_a", 4, D("100"))
    assert parse_own(ref, "grid_a") is not None
    assert parse_own(ref, "grid_b") is None
    assert parse_own(ref, "grid") is None  # a prefix of another id is not the same strategy
    assert parse_own("", "grid_a") is None


prices = st.one_of(
    st.integers(min_value=0, max_value=10**7).map(lambda c: D(c) / 100),
    st.decimals(min_value=D("0.0001"), max_value=D("100000"), allow_nan=False, allow_infinity=False, places=6),
    st.tuples(st.integers(1, 10**7), st.integers(1, 500)).map(lambda t: D(t[0]) / 100 / D(t[1])),  # averages
    st.fractions(min_value=Fraction(1, 100), max_value=Fraction(10**5)).map(lambda f: D(f.numerator) / D(f.denominator)),
)
ids = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)


@st.composite
def tags(draw):
    sid = draw(st.one_of(st.just("tqqq_grid"), ids))
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    level = draw(st.integers(min_value=0, max_value=87))
    price = draw(prices)
    if side is Side.BUY:
        if draw(st.booleans()) and level == 0:
            placed = draw(st.one_of(st.none(), st.integers(0, 4_102_444_800_000)))
            return Tag(sid, side, 0, ENTRY, price, placed_ms=placed)
        return Tag(sid, side, level, QUEUE, price)
    anchor = draw(st.one_of(st.none(), prices))
    buy = draw(st.one_of(st.none(), st.integers(0, 10**9).map(str), ids))
    return Tag(sid, side, level, SELL, price, anchor, buy)


@given(tags())
def test_round_trip(tag):
    ref = format_tag(tag)
    assert " " not in ref
    back = parse_tag(ref)
    assert back == tag
    # exact, digit for digit (not only numerically equal)
    assert back.price.as_integer_ratio() == tag.price.as_integer_ratio()
    assert format_tag(back) == ref
    assert owns(ref, tag.strategy_id)
    assert parse_own(ref, tag.strategy_id) == tag


@given(tags())
def test_tags_are_short_for_cent_prices(tag):
    if tag.strategy_id == "tqqq_grid" and all(
        p is None or p == p.quantize(D("0.01")) and p < 10**5 for p in (tag.price, tag.anchor)
    ) and (tag.buy_order_id is None or tag.buy_order_id.isdigit()):
        assert len(format_tag(tag)) <= 64
