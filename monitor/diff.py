"""The diff engine: pure functions from (previous state, current offer) to changes.

No I/O, no clock, no globals. The first successful poll of an item is a
baseline (``previous is None``) and yields no changes. SKUs are matched by
``sku_id`` and tiers by ``min_qty``; display names never identify anything.

Change vocabulary (see :class:`monitor.domain.ChangeKind`):

* ``price_drop`` / ``price_rise``: a SKU's price moved; ``old``/``new`` are
  prices, ``pct`` the relative move in percent (one decimal).
* ``stock_change``: a SKU's stock count moved while it stayed in stock (or
  stayed sold out); ``old``/``new`` are counts.
* ``sold_out`` / ``back_in_stock``: a SKU (``sku_id`` set) or the whole item
  (``sku_id`` None) crossed the sold-out line; ``old``/``new`` are stock counts
  where known.
* ``tier_change``: a quantity break's price changed (``old`` and ``new``), was
  added (``old`` None) or removed (``new`` None); ``min_qty`` names the tier.
* ``sku_added`` / ``sku_removed``: ``new``/``old`` is that SKU's price.
* ``item_unavailable`` / ``item_available``: TMAPI kept saying the offer
  cannot be fetched (code 417) for ``threshold`` polls in a row, and later
  the offer came back.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from monitor.domain import Change, ChangeKind, Offer, Sku, Tier

_ONE_DECIMAL = Decimal("0.1")
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Availability:
    """Whether an item can currently be fetched, and how many 417s in a row it got."""

    available: bool = True
    unavailable_streak: int = 0


def percent_change(old: Decimal, new: Decimal) -> Decimal | None:
    """Relative change from ``old`` to ``new`` in percent, rounded half-up to 0.1."""
    if old == 0:
        return None
    return ((new - old) * _HUNDRED / old).quantize(_ONE_DECIMAL, rounding=ROUND_HALF_UP)


def diff(previous: Offer | None, current: Offer) -> list[Change]:
    """Every change from ``previous`` to ``current``; a baseline (None) has none."""
    if previous is None:
        return []
    changes: list[Change] = []
    if previous.sold_out != current.sold_out:
        kind = ChangeKind.SOLD_OUT if current.sold_out else ChangeKind.BACK_IN_STOCK
        changes.append(Change(kind, old=previous.stock, new=current.stock))
    old_skus = {sku.sku_id: sku for sku in previous.skus}
    for sku in current.skus:
        before = old_skus.pop(sku.sku_id, None)
        if before is None:
            changes.append(
                Change(ChangeKind.SKU_ADDED, sku_id=sku.sku_id, sku_name=sku.name, new=sku.price)
            )
        else:
            changes.extend(_sku_changes(before, sku))
    for gone in old_skus.values():
        changes.append(
            Change(ChangeKind.SKU_REMOVED, sku_id=gone.sku_id, sku_name=gone.name, old=gone.price)
        )
    changes.extend(_tier_changes(previous.tiers, current.tiers))
    return changes


def _sku_changes(before: Sku, after: Sku) -> list[Change]:
    out: list[Change] = []
    if before.price != after.price:
        kind = ChangeKind.PRICE_DROP if after.price < before.price else ChangeKind.PRICE_RISE
        out.append(
            Change(
                kind,
                sku_id=after.sku_id,
                sku_name=after.name,
                old=before.price,
                new=after.price,
                pct=percent_change(before.price, after.price),
            )
        )
    if before.sold_out != after.sold_out:
        kind = ChangeKind.SOLD_OUT if after.sold_out else ChangeKind.BACK_IN_STOCK
        out.append(
            Change(
                kind, sku_id=after.sku_id, sku_name=after.name, old=before.stock, new=after.stock
            )
        )
    elif before.stock != after.stock and before.stock is not None and after.stock is not None:
        out.append(
            Change(
                ChangeKind.STOCK_CHANGE,
                sku_id=after.sku_id,
                sku_name=after.name,
                old=before.stock,
                new=after.stock,
            )
        )
    return out


def _tier_changes(before: tuple[Tier, ...], after: tuple[Tier, ...]) -> list[Change]:
    old = {tier.min_qty: tier.price for tier in before}
    new = {tier.min_qty: tier.price for tier in after}
    out: list[Change] = []
    for qty in sorted(old.keys() | new.keys()):
        was, now = old.get(qty), new.get(qty)
        if was == now:
            continue
        pct = percent_change(was, now) if was is not None and now is not None else None
        out.append(Change(ChangeKind.TIER_CHANGE, min_qty=qty, old=was, new=now, pct=pct))
    return out


def on_success(previous: Availability) -> tuple[Availability, list[Change]]:
    """A successful fetch: the item is available again (one change if it was not)."""
    changes = [] if previous.available else [Change(ChangeKind.ITEM_AVAILABLE)]
    return Availability(available=True, unavailable_streak=0), changes


def on_unavailable(previous: Availability, threshold: int) -> tuple[Availability, list[Change]]:
    """TMAPI said 417 once more: unavailable once ``threshold`` such polls happened in a row."""
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    streak = previous.unavailable_streak + 1
    if previous.available and streak >= threshold:
        return Availability(available=False, unavailable_streak=streak), [
            Change(ChangeKind.ITEM_UNAVAILABLE)
        ]
    return Availability(available=previous.available, unavailable_streak=streak), []
