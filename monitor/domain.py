"""The domain model: frozen dataclasses, money as ``Decimal``.

An ``Offer`` is what one successful TMAPI poll tells us about a 1688 item.
A ``Change`` is one difference between two offers (or between "available"
and "unavailable"), produced by :mod:`monitor.diff`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Tier:
    """A quantity break: from ``min_qty`` pieces on, each costs ``price``."""

    min_qty: int
    price: Decimal


@dataclass(frozen=True, slots=True)
class Sku:
    """One purchasable variant of an offer (e.g. colour + size)."""

    sku_id: str
    spec_id: str | None
    name: str
    price: Decimal
    stock: int | None
    sold_out: bool


@dataclass(frozen=True, slots=True)
class Offer:
    """The state of one 1688 item as seen by one successful poll."""

    item_id: int
    title: str
    currency: str
    unit: str | None
    url: str
    image: str | None
    shop_name: str | None
    shop_url: str | None
    sold_out: bool
    stock: int | None
    price_min: Decimal
    price_max: Decimal
    skus: tuple[Sku, ...]
    tiers: tuple[Tier, ...]

    def sku(self, sku_id: str) -> Sku | None:
        for sku in self.skus:
            if sku.sku_id == sku_id:
                return sku
        return None


#: ``language`` values TMAPI's ``item_detail`` accepts.
LANGUAGES = ("en", "zh", "ru", "th", "pt", "es", "tr", "vi", "ja", "ko")


def offer_url(item_id: int) -> str:
    """The offer's page on 1688.com."""
    return f"https://detail.1688.com/offer/{item_id}.html"


class ChangeKind(StrEnum):
    """The one vocabulary of what can happen to an item.

    :func:`monitor.diff.diff` finds the first ten (:data:`OFFER_CHANGES`); the
    alert rules add the last three. The watchlist's ``alert_on``, the rules,
    the outbox and the stored changes all use these values.
    """

    PRICE_DROP = "price_drop"
    PRICE_RISE = "price_rise"
    STOCK_CHANGE = "stock_change"
    SOLD_OUT = "sold_out"
    BACK_IN_STOCK = "back_in_stock"
    TIER_CHANGE = "tier_change"
    SKU_ADDED = "sku_added"
    SKU_REMOVED = "sku_removed"
    ITEM_UNAVAILABLE = "item_unavailable"
    ITEM_AVAILABLE = "item_available"
    TARGET_PRICE = "target_price"
    LOW_STOCK = "low_stock"
    POLL_FAILING = "poll_failing"


#: The kinds only the alert rules produce, never a diff.
RULE_KINDS = frozenset({ChangeKind.TARGET_PRICE, ChangeKind.LOW_STOCK, ChangeKind.POLL_FAILING})
#: The kinds a diff of two polls produces.
OFFER_CHANGES = tuple(kind for kind in ChangeKind if kind not in RULE_KINDS)


class PollSource(StrEnum):
    """Where a poll's data came from. A database holds polls of one source only."""

    TMAPI = "tmapi"
    SIMULATED = "simulated"


#: The value a change reports before/after: a price, a stock count, or nothing.
ChangeValue = Decimal | int | None


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between the previous and the current state of an item.

    ``sku_id`` is ``None`` for item-level changes (whole item sold out,
    unavailable, tiers). ``min_qty`` is set for tier changes. ``old``/``new``
    are prices for price and tier changes, stock counts for stock changes, and
    ``None`` where the kind says it all (a tier added has no ``old``).
    ``pct`` is the relative price change in percent, rounded to 0.1.
    """

    kind: ChangeKind
    sku_id: str | None = None
    sku_name: str | None = None
    min_qty: int | None = None
    old: ChangeValue = None
    new: ChangeValue = None
    pct: Decimal | None = None
