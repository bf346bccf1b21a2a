"""The simulated TMAPI's data model: items, SKUs, what they really are, and their changes.

A :class:`SimItem` is a template holding the static fields of an
``item_detail`` ``data`` object (title, shop, images, ...) plus the state
that moves (SKU prices and stock, quantity-break tiers, delisted or not);
its ``version`` bumps on every change. :class:`ItemTruth` and
:class:`SkuTruth` are what an item really is, whatever quirks its JSON has;
:class:`Event` is one change. :func:`money` and :func:`to_price` write and
check prices.

Items are made by :mod:`monitor.simulator.catalog`, rendered by
:mod:`monitor.simulator.render` and changed by :mod:`monitor.simulator.market`.
Plain data; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from monitor.simulator.quirks import Quirks

__all__ = [
    "CENT",
    "Event",
    "ItemTruth",
    "SimItem",
    "SimSku",
    "SkuTruth",
    "money",
    "to_price",
]

CENT = Decimal("0.01")


def money(value: Decimal) -> str:
    """A price as TMAPI writes it: a string with two decimals."""
    return f"{value:.2f}"


def to_price(value: Decimal | str | int) -> Decimal:
    """A positive amount with at most two decimals, or ``ValueError``."""
    price = Decimal(str(value)) if not isinstance(value, Decimal) else value
    if not price.is_finite() or price <= 0 or price != price.quantize(CENT):
        raise ValueError(f"price {value!r} is not a positive amount with at most 2 decimals")
    return price.quantize(CENT)


@dataclass
class SimSku:
    """One SKU's moving state; ``extra`` holds its static fields."""

    sku_id: str
    spec_id: str
    props_ids: str
    props_names: str
    price: Decimal
    stock: int
    initial_stock: int
    extra: dict[str, Any]


@dataclass
class SimItem:
    """One item: static template plus moving state. ``version`` bumps on every change."""

    item_id: int
    template: dict[str, Any]
    skus: list[SimSku]
    tiers: list[tuple[int, Decimal]]
    stock: int  # single-spec items only; SKU items sum their SKUs
    initial_stock: int
    quirks: Quirks | None = None
    delisted: bool = False
    version: int = 0

    def sku(self, sku_id: str) -> SimSku:
        for sku in self.skus:
            if sku.sku_id == sku_id:
                return sku
        raise KeyError(f"item {self.item_id} has no SKU {sku_id!r}")

    def total_stock(self) -> int:
        return sum(s.stock for s in self.skus) if self.skus else self.stock

    def truth(self) -> ItemTruth:
        skus = tuple(
            SkuTruth(s.sku_id, s.spec_id, s.props_names, s.price, s.stock) for s in self.skus
        )
        stock = self.total_stock()
        return ItemTruth(self.item_id, self.delisted, skus, tuple(self.tiers), stock, stock == 0)


@dataclass(frozen=True)
class SkuTruth:
    """What a SKU really is, whatever quirks its JSON shows."""

    sku_id: str
    spec_id: str
    name: str
    price: Decimal
    stock: int


@dataclass(frozen=True)
class ItemTruth:
    """What an item really is: for tests comparing a parsed offer with the source."""

    item_id: int
    delisted: bool
    skus: tuple[SkuTruth, ...]
    tiers: tuple[tuple[int, Decimal], ...]
    stock: int
    sold_out: bool


@dataclass(frozen=True)
class Event:
    """One change to an item (see :mod:`monitor.simulator.market`): ``kind`` is price,
    stock, sold_out, restock, tiers, delist or relist."""

    item_id: int
    kind: str
    sku_id: str | None
    detail: str
