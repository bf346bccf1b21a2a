"""TMAPI ``item_detail`` payloads for tests: the documented example and variants of it.

Every builder returns a fresh ``dict`` (the ``data`` object, not the
envelope) and never modifies its argument; pass ``data`` to stack variants,
e.g. ``with_string_numbers(without_sections(data=example_data()))``.

JSON is decoded the way the client decodes it: ``parse_float=Decimal``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, Final, Literal

JSON = dict[str, Any]

#: The documented example offer.
EXAMPLE_ITEM_ID: Final = 859086919394


class _Missing:
    """Marker for "remove the key" where a builder takes a replacement value."""

    def __repr__(self) -> str:
        return "MISSING"


#: Pass as a value to delete the key instead of setting it.
MISSING: Final = _Missing()

#: The "no value" spellings real payloads use, besides a missing key.
NO_VALUE_MARKERS: Final[tuple[object, ...]] = (None, "null", "", "  NULL ", MISSING)

#: Top-level fields the parser treats as optional (see ``with_no_values``).
OPTIONAL_FIELDS: Final = (
    "offer_unit",
    "product_url",
    "main_imgs",
    "shop_info",
    "is_sold_out",
    "stock",
    "video_url",
    "sale_count",
    "promotions",
)

#: The sections ``without_sections`` removes by default.
SECTIONS: Final = ("price_info", "tiered_price_info", "sku_price_range", "stock")

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


@cache
def _example_text() -> str:
    return (
        resources.files("monitor.simulator").joinpath("data/example_item.json").read_text("utf-8")
    )


def example_response() -> JSON:
    """The whole documented response: ``{"code": 200, "msg": ..., "data": {...}}``."""
    response: JSON = json.loads(_example_text(), parse_float=Decimal)
    return response


def example_data() -> JSON:
    """A fresh copy of the documented example's ``data`` object."""
    data: JSON = example_response()["data"]
    return data


def _base(data: JSON | None) -> JSON:
    return example_data() if data is None else copy.deepcopy(data)


def _map_leaves(value: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(value, dict):
        return {key: _map_leaves(item, fn) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_leaves(item, fn) for item in value]
    return fn(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _to_number(text: str, *, floats: bool) -> int | float | Decimal:
    if "." not in text:
        return int(text)
    return float(text) if floats else Decimal(text)


def with_string_numbers(data: JSON | None = None) -> JSON:
    """Every JSON number becomes a string (``4975`` -> ``"4975"``)."""

    def convert(value: Any) -> Any:
        if not _is_number(value):
            return value
        return repr(value) if isinstance(value, float) else str(value)

    return dict(_map_leaves(_base(data), convert))


def with_numeric_values(data: JSON | None = None, *, floats: bool = False) -> JSON:
    """Every numeric string becomes a JSON number (``"29.89"`` -> ``Decimal("29.89")``).

    With ``floats=True`` fractions become ``float``, as a client decoding
    without ``parse_float=Decimal`` would produce.
    """

    def convert(value: Any) -> Any:
        if isinstance(value, str) and _NUMBER.fullmatch(value):
            return _to_number(value, floats=floats)
        return value

    return dict(_map_leaves(_base(data), convert))


def with_mixed_numbers(data: JSON | None = None) -> JSON:
    """Numbers and numeric strings swap form on every other leaf, within one payload."""
    counter = iter(range(1 << 30))

    def convert(value: Any) -> Any:
        if _is_number(value) and next(counter) % 2 == 0:
            return str(value)
        if isinstance(value, str) and _NUMBER.fullmatch(value) and next(counter) % 2 == 0:
            return _to_number(value, floats=False)
        return value

    return dict(_map_leaves(_base(data), convert))


def _set(mapping: dict[str, Any], key: str, value: object) -> None:
    if value is MISSING:
        mapping.pop(key, None)
    else:
        mapping[key] = value


def with_no_values(marker: object, data: JSON | None = None) -> JSON:
    """``OPTIONAL_FIELDS`` and every ``null`` leaf become ``marker`` (``MISSING`` deletes them)."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            result: dict[str, Any] = {}
            for key, item in value.items():
                new = walk(item) if item is not None else marker
                _set(result, key, new)
            return result
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    result: JSON = walk(_base(data))
    for key in OPTIONAL_FIELDS:
        _set(result, key, marker)
    return result


def with_null_strings(data: JSON | None = None) -> JSON:
    """``with_no_values("null")``: the string ``"null"`` wherever a value is optional."""
    return with_no_values("null", data)


def without_sections(*sections: str, data: JSON | None = None) -> JSON:
    """Remove whole top-level sections (default: ``SECTIONS``)."""
    result = _base(data)
    for key in sections or SECTIONS:
        result.pop(key, None)
    return result


def without_skus(
    data: JSON | None = None, *, how: Literal["missing", "empty", "null", "null string"] = "missing"
) -> JSON:
    """A single-spec offer: ``skus`` (and ``sku_props``) absent, ``[]``, ``null`` or ``"null"``."""
    result = _base(data)
    replacement = {"missing": MISSING, "empty": [], "null": None, "null string": "null"}[how]
    _set(result, "skus", replacement)
    _set(result, "sku_props", replacement)
    return result


def with_sku_field(field: str, values: Sequence[object], data: JSON | None = None) -> JSON:
    """Set ``field`` of SKU ``i`` to ``values[i % len(values)]`` (``MISSING`` deletes it)."""
    result = _base(data)
    for index, sku in enumerate(result["skus"]):
        _set(sku, field, values[index % len(values)])
    return result


def with_sku_prices(prices: Sequence[object], data: JSON | None = None) -> JSON:
    """Set the SKUs' ``sale_price`` in turn from ``prices``."""
    return with_sku_field("sale_price", prices, data)


def with_props_names(transform: Callable[[str], object], data: JSON | None = None) -> JSON:
    """Replace every SKU's ``props_names`` with ``transform(props_names)``."""
    result = _base(data)
    for sku in result["skus"]:
        _set(sku, "props_names", transform(sku["props_names"]))
    return result


def bare_names(props_names: str) -> str:
    """``"颜色:白色豹纹;尺码:L"`` -> ``"白色豹纹;L"`` (values without property names)."""
    return ";".join(part.split(":", 1)[1] for part in props_names.split(";"))


def spaced_names(props_names: str) -> str:
    """``"颜色:白色豹纹;尺码:L"`` -> ``" 颜色 : 白色豹纹 ; 尺码 : L "``."""
    return " " + " ; ".join(" : ".join(part.split(":", 1)) for part in props_names.split(";")) + " "


def full_width_names(props_names: str) -> str:
    """``"颜色:白色豹纹;尺码:L"`` -> ``"颜色：白色豹纹；尺码：L"``."""
    return props_names.replace(":", "：").replace(";", "；")


def without_props_names(data: JSON | None = None) -> JSON:
    """Drop ``props_names``: names must come from ``props_ids`` + ``sku_props`` (index-based)."""
    return with_props_names(lambda _: MISSING, data)


#: Real-looking 1688 property/value ids for the example's index-based ones.
REAL_PIDS: Final = {"0": "1627207", "1": "20509"}
REAL_VIDS: Final = {
    "0": {"0": "28320", "1": "28321", "2": "28322"},
    "1": {"0": "28314", "1": "28315", "2": "28316"},
}


def with_real_prop_ids(data: JSON | None = None, *, keep_names: bool = False) -> JSON:
    """Use real numeric ``pid``/``vid`` ids (``"1627207:28321;20509:28316"``).

    ``props_names`` is dropped unless ``keep_names``; the order of
    ``sku_props`` values is reversed so that only a lookup by id (not by
    position) gives the right names.
    """
    result = _base(data)
    for prop in result["sku_props"]:
        old_pid = prop["pid"]
        prop["pid"] = REAL_PIDS[old_pid]
        for value in prop["values"]:
            value["vid"] = REAL_VIDS[old_pid][value["vid"]]
        prop["values"].reverse()
    for sku in result["skus"]:
        pairs = (part.split(":") for part in sku["props_ids"].split(";"))
        sku["props_ids"] = ";".join(f"{REAL_PIDS[p]}:{REAL_VIDS[p][v]}" for p, v in pairs)
        if not keep_names:
            del sku["props_names"]
    return result


def many_sku_price(index: int) -> Decimal:
    """The ``sale_price`` of SKU ``index`` in ``many_skus``: 10.00 .. 59.99."""
    return Decimal(f"{10 + index % 50}.{index % 100:02d}")


def many_sku_stock(index: int) -> int:
    """The ``stock`` of SKU ``index`` in ``many_skus``."""
    return (index * 37) % 1000


def many_skus(n: int, data: JSON | None = None) -> JSON:
    """The example with ``n`` SKUs over two properties (colour x size, 10 sizes per colour).

    SKU ``i`` has skuid ``str(7000000000000 + i)``, name ``"色{i // 10} / 码{i % 10}"``,
    price ``many_sku_price(i)`` and stock ``many_sku_stock(i)``; the
    top-level stock sections are removed so the total is the SKUs' sum.
    """
    result = _base(data)
    colours = (n + 9) // 10
    result["sku_props"] = [
        {"pid": "0", "prop_name": "颜色", "values": _values(f"色{c}" for c in range(colours))},
        {"pid": "1", "prop_name": "尺码", "values": _values(f"码{s}" for s in range(10))},
    ]
    result["skus"] = [
        {
            "skuid": str(7_000_000_000_000 + i),
            "specid": f"{i:032x}",
            "sale_price": str(many_sku_price(i)),
            "origin_price": None,
            "stock": many_sku_stock(i),
            "props_ids": f"0:{i // 10};1:{i % 10}",
            "props_names": f"颜色:色{i // 10};尺码:码{i % 10}",
            "sale_count": 0,
        }
        for i in range(n)
    ]
    result.pop("stock", None)
    result.get("sku_price_range", {}).pop("stock", None)
    return result


def _values(names: Iterable[str]) -> list[JSON]:
    return [{"vid": str(i), "name": name, "imageUrl": ""} for i, name in enumerate(names)]


def json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path into a decoded JSON document (for fuzzing edits)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += json_paths(item, (*prefix, index))
    return found
