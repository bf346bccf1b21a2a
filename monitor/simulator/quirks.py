"""The untidiness of real ``item_detail`` responses, for simulated items.

Real responses (see DESIGN.md, "Parsing TMAPI") send numbers as strings or
as numbers, even within one response; write "no value" as ``null``, the
string ``"null"``, ``""`` or a missing key; put currency signs in prices and
ranges in ``price_info.price``; use index-based or real numeric
``props_ids``; write ``props_names`` with or without property names and
with odd spacing; leave out whole sections; and sometimes omit ``skuid``.

:func:`pick_quirks` draws one seeded combination per item and
:func:`apply_quirks` rewrites a rendered ``data`` object accordingly. The
quirks never destroy information a careful parser needs: the item's tiers
and (for single-spec items) its stock always keep at least one source, and
a SKU without ``skuid`` keeps its ``specid``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["NOTHING_STYLES", "SECTIONS", "Quirks", "apply_quirks", "pick_quirks"]

#: How "no value" is written: JSON null, the string "null", "" or no key at all.
NOTHING_STYLES = ("null", "text-null", "empty", "missing")
#: Sections real responses sometimes leave out.
SECTIONS = ("price_info", "tiered_price_info", "sku_price_range", "stock")
#: Real 1688 property IDs (colour, size, style) used instead of indexes.
_REAL_PIDS = (1627207, 20509, 122216343)
_NOTHING_VALUES: dict[str, str | None] = {"null": None, "text-null": "null", "empty": ""}


@dataclass(frozen=True)
class Quirks:
    """One item's combination of real-world quirks."""

    stock_as_text: bool  # every stock count as a string
    mixed_numbers: bool  # every other SKU: sale_price a JSON number, stock a string
    price_sign: str  # "", "¥" or "￥" before price strings
    price_range: bool  # price_info.price as "low-high"
    nothing: str  # one of NOTHING_STYLES
    real_props_ids: bool  # props_ids / sku_props with real numeric IDs
    names: str  # props_names: "full", "values" (no property names) or "spaced"
    dropped: frozenset[str]  # sections of SECTIONS left out
    no_skuid: bool  # skuid absent (as ``nothing``): SKUs known by specid only
    begin_as_int: bool  # tier beginAmount as numbers
    id_base: int  # first real value ID


def pick_quirks(rng: random.Random, *, has_skus: bool, has_tiers: bool) -> Quirks:
    """A seeded combination of quirks for one item."""
    dropped = {section for section in SECTIONS if rng.random() < 0.25}
    if has_tiers and {"tiered_price_info", "sku_price_range"} <= dropped:
        dropped.discard("sku_price_range")
    if not has_skus and {"stock", "sku_price_range"} <= dropped:
        dropped.discard("sku_price_range")
    return Quirks(
        stock_as_text=rng.random() < 0.3,
        mixed_numbers=rng.random() < 0.3,
        price_sign=rng.choice(("", "", "¥", "￥")),
        price_range=rng.random() < 0.3,
        nothing=rng.choice(NOTHING_STYLES),
        real_props_ids=rng.random() < 0.5,
        names=rng.choice(("full", "values", "spaced")),
        dropped=frozenset(dropped),
        no_skuid=has_skus and rng.random() < 0.15,
        begin_as_int=rng.random() < 0.5,
        id_base=rng.randrange(10_000, 9_000_000),
    )


def _set_nothing(container: dict[str, Any], key: str, style: str) -> None:
    if style == "missing":
        container.pop(key, None)
    else:
        container[key] = _NOTHING_VALUES[style]


def _real_ids(props_ids: str, base: int) -> str:
    pairs = (pair.split(":") for pair in props_ids.split(";"))
    return ";".join(f"{_REAL_PIDS[int(p)]}:{base + int(p) * 1000 + int(v)}" for p, v in pairs)


def _names(props_names: str, style: str) -> str:
    pairs = [pair.split(":", 1) for pair in props_names.split(";")]
    if style == "values":
        return ";".join(value for _, value in pairs)
    if style == "spaced":
        return " ; ".join(f"{name} : {value}" for name, value in pairs) + " "
    return props_names


def _real_prop(prop: dict[str, Any], id_base: int) -> dict[str, Any]:
    pid = int(prop["pid"])
    values = [
        {**value, "vid": str(id_base + pid * 1000 + int(value["vid"]))} for value in prop["values"]
    ]
    return {**prop, "pid": str(_REAL_PIDS[pid]), "values": values}


def apply_quirks(data: dict[str, Any], quirks: Quirks) -> None:
    """Rewrite a freshly rendered ``data`` object in place."""
    q = quirks
    for index, sku in enumerate(data["skus"]):
        odd = q.mixed_numbers and index % 2 == 1
        if odd:
            sku["sale_price"] = Decimal(sku["sale_price"])
        elif q.price_sign:
            sku["sale_price"] = q.price_sign + sku["sale_price"]
        if q.stock_as_text or odd:
            sku["stock"] = str(sku["stock"])
        if q.real_props_ids:
            sku["props_ids"] = _real_ids(sku["props_ids"], q.id_base)
        sku["props_names"] = _names(sku["props_names"], q.names)
        _set_nothing(sku, "origin_price", q.nothing)
        if q.no_skuid:
            _set_nothing(sku, "skuid", q.nothing)
    if q.real_props_ids:  # new objects: the item's template shares the originals
        data["sku_props"] = [_real_prop(prop, q.id_base) for prop in data["sku_props"]]
    for tier in data["tiered_price_info"]["prices"] + data["sku_price_range"]["sku_param"]:
        if q.begin_as_int:
            tier["beginAmount"] = int(tier["beginAmount"])
        if q.price_sign:
            tier["price"] = q.price_sign + tier["price"]
    info = data["price_info"]
    if q.price_range and info["price_min"] != info["price_max"]:
        info["price"] = f"{info['price_min']}-{info['price_max']}"
    if q.price_sign:
        for key in ("price", "price_min", "price_max"):
            info[key] = q.price_sign + info[key]
    for key in ("origin_price_min", "origin_price_max", "discount_price"):
        _set_nothing(info, key, q.nothing)
    _set_nothing(data, "sku_price_scale_original", q.nothing)
    if not data["video_url"]:
        _set_nothing(data, "video_url", q.nothing)
    if q.stock_as_text:
        data["stock"] = str(data["stock"])
        data["sku_price_range"]["stock"] = str(data["sku_price_range"]["stock"])
    for section in SECTIONS:
        if section in q.dropped:
            del data[section]
