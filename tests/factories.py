"""Small constructors for domain objects used by the storage tests.

``offer()`` builds a realistic 1688 offer: 9 SKUs (3 colours x 3 sizes) and
3 quantity breaks, with the item-level facts (price range, stock, sold-out)
derived from the SKUs unless given. ``with_sku()`` changes one SKU and
re-derives those facts, as the parser would.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from monitor.db.poll_plan import Lease, PollWrite
from monitor.db.records import PollResult
from monitor.db.store import Store
from monitor.domain import Offer, PollSource, Sku, Tier
from monitor.errors import ParseError, TmapiError, TmapiItemUnavailable, TmapiTimeout
from monitor.watchlist.model import Item, Target

ITEM_ID = 652702302959
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

COLOURS = ("white", "black", "red")
SIZES = ("M", "L", "XL")
#: Prices of the 9 default SKUs, in SKU order: min 25.50, max 35.00.
PRICES = ("29.89", "29.89", "31.20", "25.50", "27.00", "28.40", "35.00", "33.10", "30.00")


def at(minutes: float = 0, *, seconds: float = 0) -> datetime:
    """A point in time ``minutes`` (and ``seconds``) after ``T0``."""
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def sku(
    sku_id: str,
    price: str | Decimal,
    stock: int | None = 100,
    *,
    name: str | None = None,
    spec_id: str | None = None,
    sold_out: bool | None = None,
) -> Sku:
    return Sku(
        sku_id=sku_id,
        spec_id=spec_id if spec_id is not None else f"spec-{sku_id}",
        name=name if name is not None else f"SKU {sku_id}",
        price=Decimal(price),
        stock=stock,
        sold_out=(stock == 0) if sold_out is None else sold_out,
    )


def tier(min_qty: int, price: str | Decimal) -> Tier:
    return Tier(min_qty=min_qty, price=Decimal(price))


def default_skus() -> list[Sku]:
    out = []
    for index, price in enumerate(PRICES):
        colour, size = COLOURS[index // 3], SIZES[index % 3]
        out.append(sku(f"5{index:012d}", price, 100 + index, name=f"{colour} / {size}"))
    return out


def default_tiers() -> list[Tier]:
    return [tier(1, "25.50"), tier(50, "24.00"), tier(500, "22.35")]


def offer(
    skus: list[Sku] | None = None,
    tiers: list[Tier] | None = None,
    *,
    item_id: int = ITEM_ID,
    **overrides: Any,
) -> Offer:
    """An offer with derived item-level facts; ``overrides`` replace any field."""
    skus = default_skus() if skus is None else skus
    tiers = default_tiers() if tiers is None else tiers
    base = Offer(
        item_id=item_id,
        title="Women's leopard print T-shirt",
        currency="CNY",
        unit="piece",
        url=f"https://detail.1688.com/offer/{item_id}.html",
        image="https://cbu01.alicdn.com/img/ibank/example.jpg",
        shop_name="Yiwu Example Garments",
        shop_url="https://example.1688.com",
        sold_out=False,
        stock=None,
        price_min=Decimal(0),
        price_max=Decimal(0),
        skus=tuple(skus),
        tiers=tuple(tiers),
    )
    return replace(_derive(base), **overrides)


def _derive(base: Offer) -> Offer:
    prices = [s.price for s in base.skus]
    stocks = [s.stock for s in base.skus]
    total = sum(s for s in stocks if s is not None) if None not in stocks else None
    return replace(
        base,
        price_min=min(prices),
        price_max=max(prices),
        stock=total,
        sold_out=all(s.sold_out for s in base.skus),
    )


def with_sku(base: Offer, sku_id: str, **changes: Any) -> Offer:
    """``base`` with one SKU's fields replaced (item-level facts re-derived)."""
    skus = [replace(s, **changes) if s.sku_id == sku_id else s for s in base.skus]
    if skus == list(base.skus):
        raise KeyError(sku_id)
    return _derive(replace(base, skus=tuple(skus)))


def without_sku(base: Offer, sku_id: str) -> Offer:
    skus = tuple(s for s in base.skus if s.sku_id != sku_id)
    assert len(skus) == len(base.skus) - 1, sku_id
    return _derive(replace(base, skus=skus))


def plus_sku(base: Offer, new: Sku) -> Offer:
    return _derive(replace(base, skus=(*base.skus, new)))


def with_tiers(base: Offer, tiers: list[Tier]) -> Offer:
    return replace(base, tiers=tuple(tiers))


def unavailable(item_id: int = ITEM_ID) -> TmapiItemUnavailable:
    return TmapiItemUnavailable("item could not be fetched", item_id=item_id, code=417)


def timeout(item_id: int = ITEM_ID) -> TmapiTimeout:
    return TmapiTimeout("TMAPI did not answer in time", item_id=item_id, code=499)


def parse_error(item_id: int = ITEM_ID) -> ParseError:
    return ParseError("no usable price in the payload", item_id=item_id)


def write(
    item_id: int,
    polled_at: datetime,
    result: Offer | TmapiError | ParseError,
    *,
    item: Item | None = None,
    targets: tuple[Target, ...] = (),
    source: PollSource = PollSource.TMAPI,
    unavailable_after: int = 3,
    lease: Lease | None = None,
) -> PollWrite:
    """A poll to record; by default of an item on no watchlist (it alerts nobody)."""
    return PollWrite(
        item_id,
        polled_at,
        result,
        item=item,
        targets=targets,
        source=source,
        unavailable_after=unavailable_after,
        lease=lease,
    )


def apply_poll(
    store: Store,
    item_id: int,
    polled_at: datetime,
    result: Offer | TmapiError | ParseError,
    **options: Any,
) -> PollResult:
    """Record one poll through :meth:`Store.apply_polls`; its error is raised."""
    (outcome,) = store.apply_polls([write(item_id, polled_at, result, **options)])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome
