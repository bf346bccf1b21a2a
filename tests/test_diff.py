"""Table-driven tests of the pure diff engine."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from monitor.diff import Availability, diff, on_success, on_unavailable, percent_change
from monitor.domain import Change, ChangeKind, Offer, Sku, Tier

D = Decimal


def sku(sku_id: str, price: str, stock: int | None = 100, name: str | None = None) -> Sku:
    return Sku(
        sku_id=sku_id,
        spec_id=None,
        name=name or f"SKU {sku_id}",
        price=D(price),
        stock=stock,
        sold_out=stock == 0,
    )


def offer(skus: list[Sku], tiers: list[tuple[int, str]] | None = None, **kw: object) -> Offer:
    prices = [s.price for s in skus]
    base = Offer(
        item_id=1,
        title="t",
        currency="CNY",
        unit="piece",
        url="https://detail.1688.com/offer/1.html",
        image=None,
        shop_name=None,
        shop_url=None,
        sold_out=all(s.sold_out for s in skus),
        stock=sum(s.stock or 0 for s in skus),
        price_min=min(prices),
        price_max=max(prices),
        skus=tuple(skus),
        tiers=tuple(Tier(q, D(p)) for q, p in (tiers or [])),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


BASE = offer([sku("a", "29.89"), sku("b", "29.89", 5)], [(1, "29.89"), (100, "27.60")])

CASES: list[tuple[str, Offer, list[Change]]] = [
    ("identical", BASE, []),
    (
        "price drop",
        offer([sku("a", "25.90"), sku("b", "29.89", 5)], [(1, "29.89"), (100, "27.60")]),
        [Change(ChangeKind.PRICE_DROP, "a", "SKU a", None, D("29.89"), D("25.90"), D("-13.3"))],
    ),
    (
        "price rise",
        offer([sku("a", "29.89"), sku("b", "31.00", 5)], [(1, "29.89"), (100, "27.60")]),
        [Change(ChangeKind.PRICE_RISE, "b", "SKU b", None, D("29.89"), D("31.00"), D("3.7"))],
    ),
    (
        "trailing zeros are not a change",
        offer([sku("a", "29.890"), sku("b", "29.89", 5)], [(1, "29.89"), (100, "27.6")]),
        [],
    ),
    (
        "stock change",
        offer([sku("a", "29.89", 90), sku("b", "29.89", 5)], [(1, "29.89"), (100, "27.60")]),
        [Change(ChangeKind.STOCK_CHANGE, "a", "SKU a", None, 100, 90)],
    ),
    (
        "sku sold out (no separate stock change)",
        offer([sku("a", "29.89"), sku("b", "29.89", 0)], [(1, "29.89"), (100, "27.60")]),
        [Change(ChangeKind.SOLD_OUT, "b", "SKU b", None, 5, 0)],
    ),
    (
        "unknown stock is not a change",
        offer([sku("a", "29.89", None), sku("b", "29.89", 5)], [(1, "29.89"), (100, "27.60")]),
        [],
    ),
    (
        "whole item sold out",
        offer([sku("a", "29.89", 0), sku("b", "29.89", 0)], [(1, "29.89"), (100, "27.60")]),
        [
            Change(ChangeKind.SOLD_OUT, None, None, None, 105, 0),
            Change(ChangeKind.SOLD_OUT, "a", "SKU a", None, 100, 0),
            Change(ChangeKind.SOLD_OUT, "b", "SKU b", None, 5, 0),
        ],
    ),
    (
        "sku added and removed, matched by id not name",
        offer(
            [sku("a", "29.89", name="renamed"), sku("c", "19.00", 5)],
            [(1, "29.89"), (100, "27.60")],
        ),
        [
            Change(ChangeKind.SKU_ADDED, "c", "SKU c", None, None, D("19.00")),
            Change(ChangeKind.SKU_REMOVED, "b", "SKU b", None, D("29.89"), None),
        ],
    ),
    (
        "tier price changed, tier added, tier removed",
        offer([sku("a", "29.89"), sku("b", "29.89", 5)], [(1, "29.89"), (300, "25.90")]),
        [
            Change(ChangeKind.TIER_CHANGE, None, None, 100, D("27.60"), None),
            Change(ChangeKind.TIER_CHANGE, None, None, 300, None, D("25.90")),
        ],
    ),
    (
        "tier price moved",
        offer([sku("a", "29.89"), sku("b", "29.89", 5)], [(1, "29.89"), (100, "27.00")]),
        [Change(ChangeKind.TIER_CHANGE, None, None, 100, D("27.60"), D("27.00"), D("-2.2"))],
    ),
]


@pytest.mark.parametrize(("name", "current", "expected"), CASES, ids=[c[0] for c in CASES])
def test_diff_table(name: str, current: Offer, expected: list[Change]) -> None:
    assert diff(BASE, current) == expected


def test_first_sight_is_a_baseline() -> None:
    assert diff(None, BASE) == []


def test_back_in_stock_item_and_sku() -> None:
    sold = offer([sku("a", "29.89", 0)])
    back = offer([sku("a", "29.89", 7)])
    assert [c.kind for c in diff(sold, back)] == [ChangeKind.BACK_IN_STOCK] * 2
    assert diff(sold, back)[1] == Change(ChangeKind.BACK_IN_STOCK, "a", "SKU a", None, 0, 7)


def test_diff_is_symmetric_in_kinds() -> None:
    dropped = CASES[1][1]
    (back,) = diff(dropped, BASE)
    assert back.kind is ChangeKind.PRICE_RISE
    assert back.pct == D("15.4")


@pytest.mark.parametrize(
    ("old", "new", "pct"),
    [("29.89", "25.90", "-13.3"), ("100", "100.05", "0.1"), ("3", "2", "-33.3"), ("1", "1", "0.0")],
)
def test_percent_change(old: str, new: str, pct: str) -> None:
    assert percent_change(D(old), D(new)) == D(pct)


def test_percent_change_from_zero_is_undefined() -> None:
    assert percent_change(D(0), D(1)) is None


def test_unavailable_needs_a_streak_and_alerts_once() -> None:
    state = Availability()
    kinds = []
    for _ in range(5):
        state, changes = on_unavailable(state, threshold=3)
        kinds.append([c.kind for c in changes])
    assert kinds == [[], [], [ChangeKind.ITEM_UNAVAILABLE], [], []]
    assert state == Availability(available=False, unavailable_streak=5)
    state, changes = on_success(state)
    assert changes == [Change(ChangeKind.ITEM_AVAILABLE)]
    assert state == Availability()
    assert on_success(state) == (Availability(), [])


def test_a_success_resets_the_streak() -> None:
    state, _ = on_unavailable(Availability(), threshold=2)
    state, _ = on_success(state)
    state, changes = on_unavailable(state, threshold=2)
    assert changes == []
    assert state.unavailable_streak == 1


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="threshold"):
        on_unavailable(Availability(), threshold=0)
