"""Human formatting of money, percentages and changes (pure, shared by CLI and messages)."""

from __future__ import annotations

from decimal import Decimal

from monitor.domain import Change, ChangeKind

_SYMBOLS = {"CNY": "¥", "RMB": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
_CENT = Decimal("0.01")


def format_amount(amount: Decimal) -> str:
    """``29.9`` -> ``29.90``; keeps extra precision (``0.015`` stays ``0.015``)."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        amount = amount.quantize(_CENT)
    return f"{amount:f}"


def format_money(amount: Decimal, currency: str = "CNY") -> str:
    """``Decimal("29.89"), "CNY"`` -> ``¥29.89``; unknown currencies get a code suffix."""
    symbol = _SYMBOLS.get(currency.upper())
    text = format_amount(amount)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def format_pct(pct: Decimal) -> str:
    """``Decimal("-13.3")`` -> ``−13.3%`` (a real minus sign), ``3.7`` -> ``+3.7%``."""
    if pct < 0:
        return f"\u2212{-pct:f}%"
    return f"+{pct:f}%"


def _value(value: Decimal | int | None, currency: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, Decimal):
        return format_money(value, currency)
    return str(value)


def describe_change(change: Change, currency: str = "CNY", unit: str = "pcs") -> str:
    """One line per change, e.g. ``白色豹纹 / L: ¥29.89 → ¥25.90 (−13.3%)``."""
    kind = change.kind
    label = change.sku_name or change.sku_id
    if kind is ChangeKind.TIER_CHANGE:
        head = f"≥{change.min_qty} {unit}"
        if change.old is None:
            return f"{head}: new quantity break at {_value(change.new, currency)}"
        if change.new is None:
            return f"{head}: quantity break removed (was {_value(change.old, currency)})"
        tail = f" ({format_pct(change.pct)})" if change.pct is not None else ""
        return f"{head}: {_value(change.old, currency)} → {_value(change.new, currency)}{tail}"
    if kind in (ChangeKind.PRICE_DROP, ChangeKind.PRICE_RISE):
        tail = f" ({format_pct(change.pct)})" if change.pct is not None else ""
        return f"{label}: {_value(change.old, currency)} → {_value(change.new, currency)}{tail}"
    if kind is ChangeKind.STOCK_CHANGE:
        return f"{label}: stock {change.old} → {change.new}"
    if kind in (ChangeKind.SOLD_OUT, ChangeKind.BACK_IN_STOCK):
        what = "sold out" if kind is ChangeKind.SOLD_OUT else "back in stock"
        if label is None:
            return f"whole item {what}"
        stock = f" (stock {change.new})" if kind is ChangeKind.BACK_IN_STOCK and change.new else ""
        return f"{label}: {what}{stock}"
    if kind is ChangeKind.SKU_ADDED:
        return f"{label}: new SKU at {_value(change.new, currency)}"
    if kind is ChangeKind.SKU_REMOVED:
        return f"{label}: SKU removed (was {_value(change.old, currency)})"
    if kind is ChangeKind.ITEM_UNAVAILABLE:
        return "offer can no longer be fetched (likely delisted)"
    return "offer is available again"
