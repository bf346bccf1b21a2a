"""The JSON of the simulated TMAPI: an item's ``data`` object and the bytes of an answer.

:func:`render` builds an item's ``item_detail`` ``data`` object from its
template and moving state, shaped exactly like the documented example, with
the item's quirks applied (:mod:`monitor.simulator.quirks`).
:func:`strip_prices` makes the ``data`` of the NO_PRICES mode and
:func:`encode` the bytes of an answer.

Pure functions; no I/O.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

from monitor.simulator.model import SimItem, money
from monitor.simulator.quirks import apply_quirks

__all__ = ["encode", "render", "strip_prices"]


def render(item: SimItem) -> dict[str, Any]:
    """The item's current ``data`` object (a new dict; quirks applied when it has some)."""
    t = item.template
    prices = [s.price for s in item.skus] + [p for _, p in item.tiers]
    low, high = min(prices), max(prices)
    stock = item.total_stock()
    tiers = [{"beginAmount": str(q), "price": money(p)} for q, p in item.tiers]
    begin = item.tiers[0][0] if item.tiers else t["tiered_price_info"]["begin_num"]
    data = dict(t)
    data["price_info"] = {
        "price": money(item.tiers[-1][1] if item.tiers else low),
        "price_min": money(low),
        "price_max": money(high),
        "origin_price_min": t["price_info"]["origin_price_min"],
        "origin_price_max": t["price_info"]["origin_price_max"],
        "discount_price": t["price_info"]["discount_price"],
    }
    data["tiered_price_info"] = {"begin_num": begin, "prices": tiers}
    data["sku_price_scale"] = money(low) if low == high else f"{money(low)}-{money(high)}"
    data["sku_price_range"] = {
        "begin_num": begin,
        "stock": stock,
        "sku_param": copy.deepcopy(tiers),
        "mix_param": dict(t["sku_price_range"]["mix_param"]),
    }
    data["skus"] = [
        {
            "skuid": s.sku_id,
            "specid": s.spec_id,
            "sale_price": money(s.price),
            "origin_price": s.extra["origin_price"],
            "stock": s.stock,
            "props_ids": s.props_ids,
            "props_names": s.props_names,
            "sale_count": s.extra["sale_count"],
            "package_info": dict(s.extra["package_info"]),
        }
        for s in item.skus
    ]
    data["is_sold_out"] = stock == 0
    data["stock"] = stock
    if item.quirks is not None:
        apply_quirks(data, item.quirks)
    return data


def strip_prices(data: dict[str, Any]) -> None:
    """Remove every price from a rendered ``data`` object (the NO_PRICES mode)."""
    for key in ("price_info", "tiered_price_info", "sku_price_range", "sku_price_scale"):
        data.pop(key, None)
    for sku in data.get("skus", []):
        sku["sale_price"] = None
        sku.pop("origin_price", None)


def encode(value: Any) -> bytes:
    """Compact UTF-8 JSON; a ``Decimal`` becomes a JSON number with exactly its digits."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    except TypeError:
        parts: list[str] = []
        _encode_into(value, parts)
        return "".join(parts).encode()


def _encode_into(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        out.append(f"{value:f}")
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            out.append(("," if index else "") + json.dumps(str(key), ensure_ascii=False) + ":")
            _encode_into(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode_into(item, out)
        out.append("]")
    else:
        out.append(json.dumps(value, ensure_ascii=False))
