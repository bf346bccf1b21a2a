"""Turn the ``data`` object of a TMAPI ``item_detail`` response into an :class:`Offer`.

Pure code: no I/O, no clock, no globals. :func:`parse_item` either returns an
``Offer`` or raises :class:`~monitor.errors.ParseError` carrying the item id;
no other exception escapes, whatever JSON-like value it is given.

Where each field comes from (first usable source wins):

========== ===============================================================
item_id    ``item_id``; else the requested id. Both present and different
           is an error (the payload is for another item).
title      ``title``; else ``"1688 offer <id>"``.
currency   ``currency``; else ``"CNY"``.
url        always ``https://detail.1688.com/offer/<id>.html`` of the polled id:
           ``product_url`` is ignored (the documented example's names
           another offer, so a link taken from it could lead elsewhere).
image      the first usable URL of ``main_imgs``.
shop       ``shop_info.shop_name`` / ``shop_info.shop_url``.
tiers      ``tiered_price_info.prices``; else ``sku_price_range.sku_param``.
           Sorted by ``min_qty``; entries without a quantity >= 1 or a
           valid price are skipped; for a repeated quantity the lowest price
           is kept (so the result does not depend on the entries' order).
stock      ``stock``; else ``sku_price_range.stock``; else the sum of the
           SKU stocks when every SKU's stock is known; else ``None``.
sold_out   ``is_sold_out``, or the stock is 0, or every SKU is sold out.
prices     ``price_min``/``price_max`` are the lowest/highest SKU price.
========== ===============================================================

SKUs are identified by ``skuid`` (else ``specid``), never by their name; a
SKU without either cannot be tracked and is an error, and so are two
different SKUs with the same id (exact duplicates are dropped). A SKU's
price is its own ``sale_price`` (else ``price``, else ``discount_price``).
A SKU without a price of its own gets the item's one-piece price, and only
when that price is unambiguous:

* with tiers, the price of the tier with the smallest ``min_qty`` (tiers
  are item-wide quantity breaks, and that one is what one piece costs);
* without tiers, ``price_info.price_min``/``price_max`` (else the
  ``sku_price_scale`` range) when low and high are equal; when neither
  exists, a lone ``price_info.price``;

and in both cases only if every SKU that does have a price has exactly
that price (otherwise the offer is priced per SKU and the gap cannot be
filled).

Otherwise the payload is an error. ``price_info.price`` can be the
largest-quantity tier, so it is never preferred over tiers or SKU prices.

An offer without SKUs (``skus`` absent, ``null`` or empty) gets one synthetic
SKU whose ``sku_id`` is the item id as text, with ``spec_id`` ``None``, name
``"default"``, the item's one-piece price and the item's stock. A payload that
yields no price at all is an error, never a price of 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from monitor.domain import Offer, Sku, Tier, offer_url
from monitor.errors import ParseError
from monitor.tmapi.names import PropNames, name_from_props_names
from monitor.tmapi.values import (
    MAX_INT,
    as_list,
    as_mapping,
    first_id,
    first_present,
    is_no_value,
    parse_bool,
    parse_count,
    parse_decimal,
    parse_int,
    parse_price,
    parse_price_range,
    parse_text,
    parse_url,
)

__all__ = ["DEFAULT_SKU_NAME", "parse_decimal", "parse_int", "parse_item"]

#: Name of the synthetic SKU of an offer that has no SKUs.
DEFAULT_SKU_NAME: Final = "default"
#: Currency assumed when the payload does not name one.
DEFAULT_CURRENCY: Final = "CNY"

_SKU_ID_KEYS: Final = ("skuid", "sku_id", "skuId")
_SPEC_ID_KEYS: Final = ("specid", "spec_id", "specId")
_SKU_PRICE_KEYS: Final = ("sale_price", "price", "discount_price")
_TIER_QTY_KEYS: Final = ("beginAmount", "begin_amount")


def parse_item(data: Mapping[str, Any], *, item_id: int | None = None) -> Offer:
    """Build an :class:`Offer` from the ``data`` object of an ``item_detail`` response.

    ``item_id`` is the id that was requested: it names the item in errors and
    stands in when the payload has no usable ``item_id``.

    Raises :class:`ParseError` (with ``item_id`` set) for anything that cannot
    be turned into a trustworthy offer.
    """
    if not isinstance(data, Mapping):
        raise ParseError("payload data is not a JSON object", item_id=item_id)
    try:
        return _parse(data, item_id)
    except ParseError:
        raise
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        # Last line of defence: every input we know of is handled above; if a
        # new shape still trips the code, the poll fails cleanly instead of crashing.
        raise ParseError(f"malformed payload ({type(exc).__name__})", item_id=item_id) from exc


def _parse(data: Mapping[Any, Any], requested: int | None) -> Offer:
    item_id = _item_id(data, requested)
    tiers = _tiers(data)
    shop = as_mapping(data.get("shop_info"))
    stock = parse_count(data.get("stock"))
    if stock is None:
        stock = parse_count(as_mapping(data.get("sku_price_range")).get("stock"))
    skus, synthetic = _skus(data, item_id, tiers, stock)
    if stock is None and not synthetic:
        stock = _total_stock(skus)
    prices = [sku.price for sku in skus]
    return Offer(
        item_id=item_id,
        title=parse_text(data.get("title")) or f"1688 offer {item_id}",
        currency=parse_text(data.get("currency")) or DEFAULT_CURRENCY,
        unit=parse_text(data.get("offer_unit")),
        url=offer_url(item_id),
        image=_first_image(data.get("main_imgs")),
        shop_name=parse_text(shop.get("shop_name")),
        shop_url=parse_url(shop.get("shop_url")),
        sold_out=(
            parse_bool(data.get("is_sold_out")) is True
            or stock == 0
            or all(sku.sold_out for sku in skus)
        ),
        stock=stock,
        price_min=min(prices),
        price_max=max(prices),
        skus=skus,
        tiers=tiers,
    )


def _item_id(data: Mapping[Any, Any], requested: int | None) -> int:
    found = parse_int(data.get("item_id"))
    if found is None or found <= 0:
        if requested is None:
            raise ParseError("payload has no usable item_id")
        return requested
    if requested is not None and found != requested:
        raise ParseError(f"payload is for item {found}", item_id=requested)
    return found


def _first_image(value: object) -> str | None:
    if isinstance(value, str):
        return parse_url(value)
    for entry in as_list(value):
        url = parse_url(entry)
        if url is not None:
            return url
    return None


# --- tiers and the item-level price ---------------------------------------------------


def _tiers(data: Mapping[Any, Any]) -> tuple[Tier, ...]:
    for section, key in (("tiered_price_info", "prices"), ("sku_price_range", "sku_param")):
        tiers = _tier_list(as_list(as_mapping(data.get(section)).get(key)))
        if tiers:
            return tiers
    return ()


def _tier_list(entries: Sequence[Any]) -> tuple[Tier, ...]:
    best: dict[int, Decimal] = {}
    for entry in entries:
        fields = as_mapping(entry)
        qty = parse_count(first_present(fields, *_TIER_QTY_KEYS))
        price = parse_price(fields.get("price"))
        if qty is None or qty < 1 or price is None:
            continue
        known = best.get(qty)
        if known is None or price < known:
            best[qty] = price
    return tuple([Tier(qty, best[qty]) for qty in sorted(best)])


def _item_price(data: Mapping[Any, Any], tiers: tuple[Tier, ...]) -> Decimal | None:
    """The one price a single piece of this item costs, or ``None`` if ambiguous/absent."""
    if tiers:
        return tiers[0].price
    info = as_mapping(data.get("price_info"))
    low, high = parse_price(info.get("price_min")), parse_price(info.get("price_max"))
    if low is not None or high is not None:
        if low is None or high is None:
            return low or high
        return low if low == high else None
    scale = parse_price_range(data.get("sku_price_scale"))
    if scale is not None:
        return scale[0] if scale[0] == scale[1] else None
    return parse_price(info.get("price"))


# --- SKUs ------------------------------------------------------------------------------


#: A SKU as read from the payload, before item-level price fallbacks: the fields
#: of :class:`Sku` in their order (``sku_id, spec_id, name, price, stock,
#: sold_out``), with ``price`` ``None`` when the SKU has none of its own. A plain
#: tuple: SKUs are many, and a tuple costs a fraction of a named one.
_RawSku = tuple[str, str | None, str, Decimal | None, int | None, bool]
_PRICE: Final = 3


def _skus(
    data: Mapping[Any, Any], item_id: int, tiers: tuple[Tier, ...], stock: int | None
) -> tuple[tuple[Sku, ...], bool]:
    """The offer's SKUs, and whether they are the one synthetic SKU of a SKU-less offer."""
    entries = data.get("skus")
    if is_no_value(entries) or (isinstance(entries, list | tuple) and not entries):
        return (_default_sku(data, item_id, tiers, stock),), True
    if not isinstance(entries, list | tuple):
        raise ParseError("skus is not a list", item_id=item_id)
    read = _SkuReader(data.get("sku_props"), item_id).read
    raw = [read(entry, index) for index, entry in enumerate(entries)]
    fallback: Decimal | None = None
    if any(sku[_PRICE] is None for sku in raw):
        fallback = _item_price(data, tiers)
        own = {sku[_PRICE] for sku in raw} - {None}
        if own and own != {fallback}:
            fallback = None
    result: dict[str, Sku] = {}
    for sku_id, spec_id, name, own_price, sku_stock, sold_out in raw:
        price = own_price if own_price is not None else fallback
        if price is None:
            raise ParseError(
                f"SKU {sku_id} has no price and the item has no single price", item_id=item_id
            )
        built = Sku(sku_id, spec_id, name, price, sku_stock, sold_out)
        known = result.setdefault(sku_id, built)
        if known is not built and known != built:
            raise ParseError(f"two different SKUs share the id {sku_id}", item_id=item_id)
    return tuple(result.values()), False


class _SkuReader:
    """Reads the SKU entries of one payload into :data:`_RawSku` tuples.

    Names from ``props_ids`` need :class:`PropNames`, built the first time a
    SKU has no usable ``props_names`` (most payloads name every SKU, and only
    those that do not pay for indexing ``sku_props``). Price strings are
    parsed once per payload: an offer's SKUs share a few prices.
    """

    __slots__ = ("_item_id", "_names", "_prices", "_sku_props")

    def __init__(self, sku_props: object, item_id: int) -> None:
        self._sku_props = sku_props
        self._item_id = item_id
        self._names: PropNames | None = None
        self._prices: dict[str, Decimal | None] = {}

    def read(self, entry: object, index: int) -> _RawSku:
        # ``dict`` first: the ABC check is several times slower, and SKUs are many.
        if type(entry) is not dict and not isinstance(entry, Mapping):
            raise ParseError(f"SKU #{index} is not a JSON object", item_id=self._item_id)
        spec_id = first_id(entry, _SPEC_ID_KEYS)
        sku_id = first_id(entry, _SKU_ID_KEYS) or spec_id
        if sku_id is None:
            raise ParseError(f"SKU #{index} has neither skuid nor specid", item_id=self._item_id)
        stock = parse_count(entry.get("stock"))
        flag = parse_bool(first_present(entry, "is_sold_out", "sold_out"))
        name = (
            name_from_props_names(entry.get("props_names"))
            or self._name_from_ids(entry.get("props_ids"))
            or sku_id
        )
        return (sku_id, spec_id, name, self._price(entry), stock, flag is True or stock == 0)

    def _name_from_ids(self, value: object) -> str | None:
        if self._names is None:
            self._names = PropNames(self._sku_props)
        return self._names.from_ids(value)

    def _price(self, entry: Mapping[Any, Any]) -> Decimal | None:
        """The SKU's own price: the first usable of ``_SKU_PRICE_KEYS``."""
        prices = self._prices
        for key in _SKU_PRICE_KEYS:
            value = entry.get(key)
            if type(value) is str:
                if value in prices:
                    price = prices[value]
                else:
                    price = prices[value] = parse_price(value)
            else:
                price = parse_price(value)
            if price is not None:
                return price
        return None


def _default_sku(
    data: Mapping[Any, Any], item_id: int, tiers: tuple[Tier, ...], stock: int | None
) -> Sku:
    price = _item_price(data, tiers)
    if price is None:
        raise ParseError("offer has no SKUs and no single item price", item_id=item_id)
    flag = parse_bool(data.get("is_sold_out"))
    return Sku(
        sku_id=str(item_id),
        spec_id=None,
        name=DEFAULT_SKU_NAME,
        price=price,
        stock=stock,
        sold_out=flag is True or stock == 0,
    )


def _total_stock(skus: Sequence[Sku]) -> int | None:
    total = 0
    for sku in skus:
        if sku.stock is None:
            return None
        total += sku.stock
    return total if total < MAX_INT else None
