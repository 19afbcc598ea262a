"""Pure grid arithmetic of the TQQQ grid (spec tqqq-grid.md, "Prices", R1, R3) and the lot map."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bothost_plugins.tqqq_grid.grid import (
    QueueSlot,
    desired_queue,
    l0_limit,
    legacy_purchase,
    reconcile_queue,
    sell_price,
    trigger_chain,
)
from bothost_plugins.tqqq_grid.lots import LotMap, LotMapError, load_lot_map, parse_lot_map

D = Decimal
REPO = Path(__file__).resolve().parents[1]
REAL_LOTS = REPO / "configs" / "tqqq_lots.csv"


# ----------------------------------------------------------------------------- trigger chain
def test_trigger_chain_spec_example():
    assert trigger_chain(D("100.00"), D("0.01"), 5) == (D("100.00"), D("99.00"), D("98.01"), D("97.03"), D("96.06"))


def test_trigger_chain_is_chained_not_compounded():
    chain = trigger_chain(D("100.00"), D("0.01"), 88)
    t = D("100.00")
    for n in range(1, 88):  # every step rounds the previous, rounded, trigger
        t = (t * D("0.99")).quantize(D("0.01"), rounding=ROUND_HALF_UP)
        assert chain[n] == t
    compounded = [(D("100.00") * D("0.99") ** n).quantize(D("0.01"), rounding=ROUND_HALF_UP) for n in range(88)]
    assert list(chain) != compounded  # the two differ somewhere: the spec's chain is the chained one


def test_trigger_chain_rounds_half_up():
    # 1.50 x 0.99 = 1.485: half up gives 1.49 (banker's rounding would give 1.48)
    assert trigger_chain(D("1.50"), D("0.01"), 2)[1] == D("1.49")


def test_trigger_chain_keeps_sub_cent_anchor_and_lengths():
    chain = trigger_chain(D("100.0033333"), D("0.01"), 3)
    assert chain[0] == D("100.0033333") and chain[1] == D("99.00")
    assert trigger_chain(D("100"), D("0.01"), 0) == ()
    assert len(trigger_chain(D("100"), D("0.01"), 88)) == 88


def test_sell_price_and_l0_limit_round_half_up():
    assert sell_price(D("97.03"), D("0.01")) == D("98.00")  # 98.0003
    assert sell_price(D("2.50"), D("0.01")) == D("2.53")  # 2.525 -> half up
    assert sell_price(D("0.50"), D("0.01")) == D("0.51")  # 0.505 -> half up
    assert l0_limit(D("101.00"), D("0.0025")) == D("101.25")  # 101.2525
    assert l0_limit(D("100.00"), D("0.0025")) == D("100.25")
    assert l0_limit(D("2.00"), D("0.0025")) == D("2.01")  # 2.005 -> half up
    assert l0_limit(D("50.00"), D("0")) == D("50.00")


@given(
    cents=st.integers(min_value=100, max_value=100_000),
    sub=st.integers(min_value=0, max_value=99),
    step_bp=st.integers(min_value=10, max_value=1000),
)
def test_trigger_chain_properties(cents, sub, step_bp):
    anchor = D(cents) / 100 + (D(sub) / 10_000 if sub % 3 == 0 else 0)
    step = D(step_bp) / 10_000
    chain = trigger_chain(anchor, step, 88)
    assert chain[0] == anchor
    for n in range(1, 88):
        unrounded = chain[n - 1] * (1 - step)
        assert chain[n] == chain[n].quantize(D("0.01"))  # on the cent grid
        assert abs(chain[n] - unrounded) <= D("0.005")  # within half a cent of the unrounded step
        if n >= 2 or anchor == anchor.quantize(D("0.01")):
            assert chain[n] <= chain[n - 1]  # monotone
            if chain[n - 1] * step > D("0.005"):
                assert chain[n] < chain[n - 1]  # strictly, once a step is worth more than half a cent


@given(limit_cents=st.integers(min_value=1, max_value=1_000_000), pt_bp=st.integers(min_value=1, max_value=5000))
def test_legacy_purchase_inverts_sell_price_exactly(limit_cents, pt_bp):
    purchase = D(limit_cents) / 100
    pt = D(pt_bp) / 10_000
    assert legacy_purchase(sell_price(purchase, pt), pt) == purchase  # Reconstruct 2: exact for any target > 0


# ----------------------------------------------------------------------------- desired queue
def lot_map_strategy():
    return st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=90).map(lambda s: LotMap(tuple(s)))


@given(lm=lot_map_strategy(), m=st.integers(min_value=0, max_value=95), depth=st.integers(min_value=0, max_value=6))
def test_desired_queue_properties(lm, m, depth):
    m = min(m, len(lm) - 1)
    chain = trigger_chain(D("100.00"), D("0.01"), len(lm))
    q = desired_queue(m, chain, lm, depth)
    assert [s.level for s in q] == list(range(m + 1, m + 1 + len(q)))  # right after m, consecutive
    assert len(q) == min(depth, len(lm) - 1 - m)  # queue_depth or fewer, never past N-1
    for s in q:
        assert s.level <= len(lm) - 1
        assert s.quantity == lm.shares[s.level] and s.price == chain[s.level]


def test_desired_queue_examples():
    lm = load_lot_map(REAL_LOTS)
    chain = trigger_chain(D("100.00"), D("0.01"), 88)
    assert desired_queue(0, chain, lm, 3) == (
        QueueSlot(1, 88, D("99.00")), QueueSlot(2, 82, D("98.01")), QueueSlot(3, 77, D("97.03"))
    )
    assert [s.level for s in desired_queue(86, chain, lm, 3)] == [87]
    assert desired_queue(87, chain, lm, 3) == ()
    assert desired_queue(None, chain, lm, 3) == ()


# ----------------------------------------------------------------------------- reconcile
@dataclass
class Buy:
    order_id: str
    level: int | None
    quantity: int
    price: Decimal
    filled: int = 0


def key(x):
    return (x.level, x.quantity, x.price)


@st.composite
def reconcile_case(draw):
    lm = LotMap(tuple(draw(st.lists(st.integers(1, 5), min_size=12, max_size=12))))
    chain = trigger_chain(D("50.00"), D("0.02"), 12)
    m = draw(st.integers(0, 11))
    desired = desired_queue(m, chain, lm, draw(st.integers(0, 4)))
    # live orders: some exactly desired (possibly twice), some off by level / quantity / price
    live = []
    for i in range(draw(st.integers(0, 8))):
        level = draw(st.integers(0, 11))
        qty = lm.shares[level] if draw(st.booleans()) else draw(st.integers(1, 5))
        price = chain[level] if draw(st.booleans()) else chain[level] - D("0.01")
        filled = draw(st.sampled_from([0, 0, 0, 1])) if qty > 1 else 0
        live.append(Buy(f"o{i}", level, qty, price, filled))
    return desired, live


@settings(max_examples=300)
@given(reconcile_case())
def test_reconcile_by_difference_properties(case):
    desired, live = case
    cancel, place = reconcile_queue(live, desired)
    cancel_set = set(cancel)
    assert len(cancel_set) == len(cancel)
    wanted = {key(s) for s in desired}
    # never cancel a partially filled BUY
    assert not any(b.filled > 0 and b.order_id in cancel_set for b in live)
    # a live BUY matching a desired slot is never touched unless another live BUY already fills that slot
    for k in wanted:
        matching = [b for b in live if key(b) == k]
        if matching:
            kept = [b for b in matching if b.order_id not in cancel_set]
            assert len(kept) >= 1
            assert k not in {key(s) for s in place}
    # applying the result to the live orders gives exactly the desired queue (plus partial fills kept)
    after = [key(b) for b in live if b.order_id not in cancel_set] + [key(s) for s in place]
    counts = Counter(after)
    for k in wanted:
        partials = sum(1 for b in live if key(b) == k and b.filled > 0)
        assert counts[k] == max(1, partials)
    for k, n in counts.items():
        if k not in wanted:
            assert n == sum(1 for b in live if key(b) == k and b.filled > 0)
    # placing follows the desired order, and is idempotent: a second pass changes nothing
    assert [s.level for s in place] == sorted(s.level for s in place)
    survivors = [b for b in live if b.order_id not in cancel_set] + [Buy(f"n{i}", *s) for i, s in enumerate(place)]
    assert reconcile_queue(survivors, desired) == ((), ())


def test_reconcile_examples():
    chain = trigger_chain(D("100.00"), D("0.01"), 10)
    lm = LotMap((9, 8, 7, 6, 5, 4, 3, 2, 1, 1))
    desired = desired_queue(2, chain, lm, 3)  # levels 3, 4, 5
    live = [
        Buy("a", 3, 6, chain[3]),  # keep
        Buy("b", 4, 5, chain[4] + D("0.01")),  # wrong price: cancel, re-place L4
        Buy("c", 6, 4, chain[6], filled=2),  # partially filled, not desired: keep anyway
        Buy("d", 7, 3, chain[7]),  # not desired: cancel
        Buy("e", 3, 6, chain[3]),  # duplicate of a: cancel
    ]
    cancel, place = reconcile_queue(live, desired)
    assert cancel == ("b", "d", "e")
    assert place == (QueueSlot(4, 5, chain[4]), QueueSlot(5, 4, chain[5]))
    assert reconcile_queue([], ()) == ((), ())


# ----------------------------------------------------------------------------- lot map
def test_real_lot_map():
    lm = load_lot_map(REAL_LOTS)
    assert len(lm) == 88 and lm.total_shares == 1478
    assert lm.shares[0] == 94 and lm.shares[87] == 1
    assert lm.levels_with_quantity(94) == (0,)
    assert lm.levels_with_quantity(11) == (32, 33)
    assert lm.levels_with_quantity(1) == tuple(range(68, 88))
    assert lm.levels_with_quantity(1000) == ()


def test_lot_map_header_and_blank_lines(tmp_path):
    p = tmp_path / "lots.csv"
    p.write_text("level,shares\n0,5\n\n1, 3\r\n2,1\n", encoding="utf-8")
    assert load_lot_map(p).shares == (5, 3, 1)
    p.write_text("\ufeffLevel , Shares\n0,5\n", encoding="utf-8")
    assert load_lot_map(p).shares == (5,)


@pytest.mark.parametrize(
    "text,line,fragment",
    [
        ("0,5\n1,x\n", 2, "shares 'x' is not a whole number"),
        ("0,5\n2,3\n", 2, "level 1 is missing"),
        ("0,5\n0,3\n", 2, "appears again"),
        ("0,5\n1,0\n", 2, "shares must be positive"),
        ("0,5\n1,-2\n", 2, "shares must be positive"),
        ("0,5,1\n", 1, "expected 2 columns"),
        ("1,5\n", 1, "level 0 is missing"),
        ("0,2.5\n", 1, "not a whole number"),
        ("0,5\nlevel,shares\n", 2, "not a whole number"),  # a header only as the first row
    ],
)
def test_lot_map_errors_name_file_and_line(tmp_path, text, line, fragment):
    p = tmp_path / "bad.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(LotMapError) as info:
        load_lot_map(p)
    err = info.value
    assert err.line == line and fragment in err.message
    first, hint = str(err).split("\n")
    assert first.startswith(f"{p}:{line}: ")
    assert hint.startswith("  hint: ")


def test_lot_map_missing_and_empty(tmp_path):
    with pytest.raises(LotMapError) as info:
        load_lot_map(tmp_path / "nope.csv")
    assert str(info.value).startswith(f"{tmp_path / 'nope.csv'}: lot map file not found\n  hint: ")
    (tmp_path / "empty.csv").write_text("\n\nlevel,shares\n")
    with pytest.raises(LotMapError, match="no levels"):
        load_lot_map(tmp_path / "empty.csv")
    with pytest.raises(LotMapError):
        parse_lot_map("")
