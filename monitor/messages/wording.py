"""The words of a message, before any markup: one line per alert, and titles.

Plain text only; :mod:`monitor.messages.render` escapes it for each format.
Change-like alerts are worded by :func:`monitor.messages.formatting.describe_change`
(``白色豹纹 / L: ¥29.89 → ¥25.90 (−13.3%)``, ``≥100 pcs: ¥27.60 → ¥27.00``),
the rules' own kinds here.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from monitor.alerts.model import RECOVERED, Alert, AlertGroup, AlertValue
from monitor.domain import OFFER_CHANGES, Change, ChangeKind
from monitor.messages.formatting import describe_change, format_money, format_pct

__all__ = [
    "TITLE_MAX",
    "count",
    "describe_alert",
    "group_title",
    "message_title",
    "shorten",
    "summary",
]

#: Longest item label shown in a message title.
TITLE_MAX = 100

_KIND_NAMES = {
    ChangeKind.PRICE_DROP: "price drop",
    ChangeKind.PRICE_RISE: "price rise",
    ChangeKind.STOCK_CHANGE: "stock change",
    ChangeKind.SOLD_OUT: "sold out",
    ChangeKind.BACK_IN_STOCK: "back in stock",
    ChangeKind.TIER_CHANGE: "quantity-break prices changed",
    ChangeKind.SKU_ADDED: "new SKU",
    ChangeKind.SKU_REMOVED: "SKU removed",
    ChangeKind.ITEM_UNAVAILABLE: "no longer available",
    ChangeKind.ITEM_AVAILABLE: "available again",
    ChangeKind.TARGET_PRICE: "target price reached",
    ChangeKind.LOW_STOCK: "low stock",
    ChangeKind.POLL_FAILING: "polling is failing",
}
_CHANGE_KINDS = frozenset(OFFER_CHANGES)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def _money(value: AlertValue, currency: str) -> str:
    if isinstance(value, Decimal):
        return format_money(value, currency)
    return "—" if value is None else str(value)


def describe_alert(alert: Alert, currency: str = "CNY") -> str:
    """One line for one alert, e.g. ``白色豹纹 / L: ¥29.89 → ¥25.90 (−13.3%)``."""
    label = alert.sku_name or alert.sku_id or "item"
    if alert.kind in _CHANGE_KINDS:
        change = Change(
            ChangeKind(alert.kind),
            sku_id=alert.sku_id,
            sku_name=alert.sku_name,
            min_qty=alert.min_qty,
            old=alert.old,
            new=alert.new,
            pct=alert.pct,
        )
        return describe_change(change, currency)
    if alert.kind == ChangeKind.TARGET_PRICE:
        target = _money(alert.old, currency)
        return f"{label}: {_money(alert.new, currency)}, at or below your target {target}"
    if alert.kind == ChangeKind.LOW_STOCK:
        return (
            f"{label}: low stock, {_money(alert.new, currency)} left (alert at {alert.old} or less)"
        )
    if alert.kind == ChangeKind.POLL_FAILING:
        if alert.note == RECOVERED:
            return "polling works again"
        return f"polling is failing: {alert.note}" if alert.note else "polling is failing"
    # A kind this version does not know (e.g. read back from an older outbox row).
    values = f": {_money(alert.old, currency)} → {_money(alert.new, currency)}"
    note = f" ({alert.note})" if alert.note else ""
    return f"{alert.kind.replace('_', ' ')}{values}{note}"


def _kind_name(alert: Alert) -> str:
    if alert.kind == ChangeKind.POLL_FAILING and alert.note == RECOVERED:
        return "polling works again"
    try:
        name = _KIND_NAMES[ChangeKind(alert.kind)]
    except ValueError:
        return alert.kind.replace("_", " ")
    if alert.kind in (ChangeKind.PRICE_DROP, ChangeKind.PRICE_RISE) and alert.pct is not None:
        return f"{name} {format_pct(alert.pct)}"
    return name


def count(n: int, what: str) -> str:
    """``1 change``, ``3 changes``."""
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def summary(group: AlertGroup) -> str:
    """What happened, in a few words: ``price drop −13.3%``, ``3 changes``."""
    if len(group.alerts) == 1:
        return _kind_name(group.alerts[0])
    return count(len(group.alerts), "change")


def group_title(group: AlertGroup) -> str:
    """``Leopard robe: price drop −13.3%`` for one alert, ``Leopard robe: 3 changes`` for more."""
    return f"{shorten(group.label, TITLE_MAX)}: {summary(group)}"


def message_title(groups: Sequence[AlertGroup]) -> str:
    """The title of a message: the group's own, or a digest's summary."""
    if len(groups) == 1:
        return group_title(groups[0])
    changes = sum(len(g.alerts) for g in groups)
    return f"1688 digest: {count(len(groups), 'item')}, {count(changes, 'change')}"
