from __future__ import annotations

from decimal import Decimal as D

import pytest

from monitor.domain import Change, ChangeKind
from monitor.messages.formatting import describe_change, format_amount, format_money, format_pct


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        ("29.89", "CNY", "¥29.89"),
        ("30", "CNY", "¥30.00"),
        ("29.9", "cny", "¥29.90"),
        ("0.015", "CNY", "¥0.015"),
        ("12", "USD", "$12.00"),
        ("5", "XYZ", "5.00 XYZ"),
    ],
)
def test_format_money(amount: str, currency: str, text: str) -> None:
    assert format_money(D(amount), currency) == text


def test_format_amount_never_uses_exponents() -> None:
    assert format_amount(D("1E+2")) == "100.00"


def test_format_pct() -> None:
    assert format_pct(D("-13.3")) == "−13.3%"
    assert format_pct(D("3.7")) == "+3.7%"


@pytest.mark.parametrize(
    ("change", "text"),
    [
        (
            Change(
                ChangeKind.PRICE_DROP, "1", "白色豹纹 / L", None, D("29.89"), D("25.90"), D("-13.3")
            ),
            "白色豹纹 / L: ¥29.89 → ¥25.90 (−13.3%)",
        ),
        (
            Change(ChangeKind.TIER_CHANGE, None, None, 100, D("27.60"), D("27.00"), D("-2.2")),
            "≥100 pcs: ¥27.60 → ¥27.00 (−2.2%)",
        ),
        (
            Change(ChangeKind.TIER_CHANGE, min_qty=500, new=D("25")),
            "≥500 pcs: new quantity break at ¥25.00",
        ),
        (Change(ChangeKind.SOLD_OUT, "1", "M", old=3, new=0), "M: sold out"),
        (Change(ChangeKind.BACK_IN_STOCK, "1", "M", old=0, new=40), "M: back in stock (stock 40)"),
        (Change(ChangeKind.SOLD_OUT), "whole item sold out"),
        (Change(ChangeKind.STOCK_CHANGE, "1", "M", old=40, new=38), "M: stock 40 → 38"),
        (Change(ChangeKind.SKU_REMOVED, "9", None, old=D("3")), "9: SKU removed (was ¥3.00)"),
        (Change(ChangeKind.ITEM_UNAVAILABLE), "offer can no longer be fetched (likely delisted)"),
    ],
)
def test_describe_change(change: Change, text: str) -> None:
    assert describe_change(change) == text
