"""Tests of the TMAPI ``item_detail`` parser: the documented example, the shapes
real payloads take, the errors, 500 SKUs, and fuzzing with arbitrary JSON."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from decimal import Decimal
from functools import partial
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.domain import Offer, Sku, Tier, offer_url
from monitor.errors import ParseError
from monitor.simulator.catalog import default_item_ids, generate_item
from monitor.simulator.render import render
from monitor.tmapi.names import PropNames, name_from_props_names
from monitor.tmapi.parse import DEFAULT_SKU_NAME, parse_item
from monitor.tmapi.values import (
    MAX_PRICE,
    MIN_PRICE,
    first_id,
    first_present,
    parse_bool,
    parse_count,
    parse_decimal,
    parse_id,
    parse_int,
    parse_price,
    parse_price_range,
    parse_url,
)
from tests.payloads import (
    EXAMPLE_ITEM_ID,
    JSON,
    MISSING,
    NO_VALUE_MARKERS,
    bare_names,
    example_data,
    full_width_names,
    json_paths,
    many_sku_price,
    many_sku_stock,
    many_skus,
    spaced_names,
    with_mixed_numbers,
    with_no_values,
    with_null_strings,
    with_numeric_values,
    with_props_names,
    with_real_prop_ids,
    with_sku_field,
    with_sku_prices,
    with_string_numbers,
    without_props_names,
    without_sections,
    without_skus,
)

D = Decimal
ID = EXAMPLE_ITEM_ID

# --- the documented example, written out ------------------------------------------------

EXAMPLE_SKUS = [
    ("5674557541674", "6f5320c016c03d575ad1034b79869a28", "白色豹纹 / L", 4975),
    ("5674557541667", "bdcae134f48c5b5edfdffb3e79612418", "肤色豹纹 / S", 4996),
    ("5674557541669", "c36b443e8f1551db7843a489cc62ca1f", "黄色豹纹 / S", 4966),
    ("5674557541671", "67fabdabdec80a01cb571951061d314f", "白色豹纹 / M", 4991),
    ("5674557541675", "2e4af15b48d5e0426c9fb9b30311e944", "黄色豹纹 / L", 4872),
    ("5674557541672", "19e11750558f8465d67e7da1fbda7afe", "黄色豹纹 / M", 4948),
    ("5674557541668", "ddc44276e54d3bce6c16f7e9dd785b38", "白色豹纹 / S", 4997),
    ("5674557541673", "592510a700d02b945eb5f96e6b3e55fd", "肤色豹纹 / L", 4992),
    ("5674557541670", "96c1c66eeb4dcead3fc716bfabb1d236", "肤色豹纹 / M", 4995),
]

EXAMPLE = Offer(
    item_id=ID,
    title="跨境速卖通女式长款睡衣家居服豹纹款开衫法式浴袍长袖秋冬睡袍",
    currency="CNY",
    unit="件",
    url="https://detail.1688.com/offer/859086919394.html",
    image="https://cbu01.alicdn.com/img/ibank/O1CN01gEiAAA1tfzhab0NhS_!!2214636595930-0-cib.jpg",
    shop_name="灌云县伊山镇春霞服装厂",
    shop_url="https://winport.m.1688.com/page/index.html?memberId=b2b-22146365959302bc20",
    sold_out=False,
    stock=44732,
    # price_info says 25.90-29.89, but every SKU sells at 29.89.
    price_min=D("29.89"),
    price_max=D("29.89"),
    skus=tuple(
        Sku(sku_id=s, spec_id=spec, name=name, price=D("29.89"), stock=stock, sold_out=False)
        for s, spec, name, stock in EXAMPLE_SKUS
    ),
    tiers=(Tier(1, D("29.89")), Tier(100, D("27.60")), Tier(300, D("25.90"))),
)


def parse(data: object, item_id: int | None = ID) -> Offer:
    return parse_item(cast(Any, data), item_id=item_id)


def edit(data: JSON, fn: Callable[[JSON], object]) -> JSON:
    """Apply an in-place edit to ``data`` and return it (for one-line table entries)."""
    fn(data)
    return data


def each_sku(fn: Callable[[int, JSON], object]) -> Callable[[JSON], None]:
    def apply(data: JSON) -> None:
        for index, sku in enumerate(data["skus"]):
            fn(index, sku)

    return apply


def with_prices(*prices: str) -> Callable[[Offer], Offer]:
    """Expected-offer edit: SKU ``i`` costs ``prices[i % len(prices)]``."""

    def apply(offer: Offer) -> Offer:
        skus = tuple(
            replace(sku, price=D(prices[i % len(prices)])) for i, sku in enumerate(offer.skus)
        )
        values = [sku.price for sku in skus]
        return replace(offer, skus=skus, price_min=min(values), price_max=max(values))

    return apply


def test_documented_example() -> None:
    assert parse(example_data()) == EXAMPLE


def test_documented_example_without_requested_id() -> None:
    assert parse(example_data(), item_id=None) == EXAMPLE


def test_the_link_is_the_polled_items_own_page_never_the_payloads() -> None:
    data = example_data()
    assert parse(data).url == offer_url(ID) == f"https://detail.1688.com/offer/{ID}.html"
    for elsewhere in ("https://detail.1688.com/offer/652702302959.html", "https://x.example/1"):
        data["product_url"] = elsewhere
        assert parse(data).url == offer_url(ID)


def test_money_is_decimal_from_the_string_form() -> None:
    offer = parse(with_numeric_values(floats=True))
    for sku in offer.skus:
        assert type(sku.price) is Decimal
        assert str(sku.price) == "29.89"
    # A float keeps no trailing zeros, but never gains binary noise like 27.600000000000001.
    assert [str(t.price) for t in offer.tiers] == ["29.89", "27.6", "25.9"]


# --- variants that must not change the result --------------------------------------------

SAME_AS_EXAMPLE: list[tuple[str, Callable[[], JSON]]] = [
    ("numbers as strings", with_string_numbers),
    ("numbers as JSON numbers", with_numeric_values),
    ("numbers as floats", lambda: with_numeric_values(floats=True)),
    ("numbers and strings mixed", with_mixed_numbers),
    (
        "currency signs and spacing",
        lambda: with_sku_prices(["¥29.89", "￥ 29.89", "29.89元", " 29.89 ", "RMB 29.89"]),
    ),
    ("index-based props_ids only", without_props_names),
    ("real numeric props_ids only", with_real_prop_ids),
    ("real numeric props_ids and names", lambda: with_real_prop_ids(keep_names=True)),
    ("names without property names", lambda: with_props_names(bare_names)),
    ("names with odd spacing", lambda: with_props_names(spaced_names)),
    ("names with full-width separators", lambda: with_props_names(full_width_names)),
    ("without price_info", lambda: without_sections("price_info")),
    ("tiers only in sku_price_range", lambda: without_sections("tiered_price_info")),
    ("empty tier list falls back", lambda: edit(example_data(), _empty_tier_list)),
    ("stock only in sku_price_range", lambda: without_sections("stock")),
    ("stock summed from SKUs", lambda: without_sections("stock", "sku_price_range")),
    ("skuid as a JSON number", lambda: edit(example_data(), each_sku(_numeric_skuid))),
    ("unknown fields", lambda: edit(example_data(), _add_unknown_fields)),
    ("tiers shuffled and repeated", lambda: edit(example_data(), _shuffle_tiers)),
    ("price_info.price nonsense", lambda: edit(example_data(), _price_info_nonsense)),
    ("SKU price zero uses tier price", lambda: with_sku_prices(["0", "0.00", "-1", 0])),
    ("SKU price as a range", lambda: with_sku_prices(["25.90-29.89"])),
    ("SKU price in price field", lambda: _move_price("price")),
    ("SKU price in discount_price", lambda: _move_price("discount_price")),
    ("no SKU prices at all, tiers", lambda: with_sku_prices([MISSING])),
    ("some SKU prices missing", lambda: with_sku_prices([MISSING, "29.89", "null"])),
    ("is_sold_out as a string", lambda: edit(example_data(), lambda d: d.update(is_sold_out="0"))),
    ("product_url not a URL", lambda: edit(example_data(), lambda d: d.update(product_url="x"))),
    (
        "repeated identical SKU",
        lambda: edit(example_data(), lambda d: d["skus"].append(d["skus"][0])),
    ),
]


def _empty_tier_list(data: JSON) -> None:
    data["tiered_price_info"]["prices"] = []


def _numeric_skuid(_: int, sku: JSON) -> None:
    sku["skuid"] = int(sku["skuid"])


def _add_unknown_fields(data: JSON) -> None:
    data["brand_new_section"] = {"x": [1, 2, {"y": None}]}
    data["skus"][0]["mystery"] = "¥1"
    data["tiered_price_info"]["prices"][0]["extra"] = True


def _shuffle_tiers(data: JSON) -> None:
    prices = data["tiered_price_info"]["prices"]
    data["tiered_price_info"]["prices"] = [prices[2], prices[0], prices[1], dict(prices[0])]


def _price_info_nonsense(data: JSON) -> None:
    data["price_info"] = {"price": "1.00", "price_min": "abc", "price_max": None}
    data["sku_price_scale"] = "garbage"


def _move_price(field: str) -> JSON:
    data = with_sku_prices([""])
    for sku in data["skus"]:
        sku[field] = "29.89"
    return data


@pytest.mark.parametrize(
    "build", [b for _, b in SAME_AS_EXAMPLE], ids=[name for name, _ in SAME_AS_EXAMPLE]
)
def test_variant_parses_like_the_example(build: Callable[[], JSON]) -> None:
    assert parse(build()) == EXAMPLE


# --- variants with a known, different result ---------------------------------------------

NO_TIERS = ("tiered_price_info", "sku_price_range")

CHANGED: list[tuple[str, Callable[[], JSON], Callable[[Offer], Offer]]] = [
    (
        "no tiers anywhere",
        lambda: without_sections(*NO_TIERS),
        lambda o: replace(o, tiers=()),
    ),
    (
        "all optional sections missing",
        without_sections,
        lambda o: replace(o, tiers=()),
    ),
    (
        "empty tiers while SKU prices differ",
        lambda: with_sku_prices(["20.00", "25.50", "29.89"], without_sections(*NO_TIERS)),
        lambda o: with_prices("20.00", "25.50", "29.89")(replace(o, tiers=())),
    ),
    (
        "SKU prices differ, price_info.price ignored",
        lambda: with_sku_prices(["31.00", "32.00"]),
        with_prices("31.00", "32.00"),
    ),
    (
        "one SKU stock unknown, no item stock",
        lambda: with_sku_field(
            "stock", ["null", *[1] * 8], without_sections("stock", "sku_price_range")
        ),
        lambda o: replace(
            o,
            stock=None,
            skus=tuple(replace(s, stock=None if i == 0 else 1) for i, s in enumerate(o.skus)),
        ),
    ),
    (
        "negative SKU stock is unknown",
        lambda: with_sku_field("stock", ["-5"]),
        lambda o: replace(o, skus=tuple(replace(s, stock=None) for s in o.skus)),
    ),
    (
        "every SKU out of stock",
        lambda: with_sku_field("stock", [0, "0"], without_sections("stock", "sku_price_range")),
        lambda o: replace(
            o,
            stock=0,
            sold_out=True,
            skus=tuple(replace(s, stock=0, sold_out=True) for s in o.skus),
        ),
    ),
    (
        "one SKU out of stock",
        lambda: with_sku_field("stock", [0, *[s[3] for s in EXAMPLE_SKUS[1:]]]),
        lambda o: replace(o, skus=(replace(o.skus[0], stock=0, sold_out=True), *o.skus[1:])),
    ),
    (
        "explicit SKU sold-out flag",
        lambda: with_sku_field(
            "is_sold_out", [True, False, "false", None, "0", 0, "no", MISSING, False]
        ),
        lambda o: replace(o, skus=(replace(o.skus[0], sold_out=True), *o.skus[1:])),
    ),
    (
        "item flagged sold out",
        lambda: edit(example_data(), lambda d: d.update(is_sold_out=True)),
        lambda o: replace(o, sold_out=True),
    ),
    (
        "item stock zero",
        lambda: edit(example_data(), lambda d: d.update(stock="0")),
        lambda o: replace(o, stock=0, sold_out=True),
    ),
    (
        "title missing",
        lambda: edit(example_data(), lambda d: d.pop("title")),
        lambda o: replace(o, title=f"1688 offer {ID}"),
    ),
    (
        "currency given",
        lambda: edit(example_data(), lambda d: d.update(currency=" USD ")),
        lambda o: replace(o, currency="USD"),
    ),
    (
        "protocol-relative image, bad first image",
        lambda: edit(example_data(), lambda d: d.update(main_imgs=[None, "", "//img/a.jpg"])),
        lambda o: replace(o, image="https://img/a.jpg"),
    ),
    (
        "main_imgs as a single string",
        lambda: edit(example_data(), lambda d: d.update(main_imgs="https://img/b.jpg")),
        lambda o: replace(o, image="https://img/b.jpg"),
    ),
    (
        "unresolvable props_ids fall back to the SKU id",
        lambda: edit(without_props_names(), each_sku(lambda i, s: s.update(props_ids="9:9"))),
        lambda o: replace(o, skus=tuple(replace(s, name=s.sku_id) for s in o.skus)),
    ),
    (
        "skuid missing: specid identifies the SKU",
        lambda: with_sku_field("skuid", [MISSING, "null"]),
        lambda o: replace(o, skus=tuple(replace(s, sku_id=s.spec_id or "") for s in o.skus)),
    ),
    (
        "no SKU prices, no tiers, single price range",
        lambda: edit(
            with_sku_prices([MISSING], without_sections(*NO_TIERS)),
            lambda d: d.update(price_info={"price_min": "27.00", "price_max": "¥27.00"}),
        ),
        lambda o: with_prices("27.00")(replace(o, tiers=())),
    ),
    (
        "no SKU prices, no tiers, single sku_price_scale",
        lambda: edit(
            with_sku_prices([MISSING], without_sections(*NO_TIERS, "price_info")),
            lambda d: d.update(sku_price_scale="¥26.00"),
        ),
        lambda o: with_prices("26.00")(replace(o, tiers=())),
    ),
    (
        "no SKU prices, no tiers, lone price_info.price",
        lambda: edit(
            with_sku_prices([MISSING], without_sections(*NO_TIERS)),
            lambda d: d.update(price_info={"price": "25.90"}, sku_price_scale=None),
        ),
        lambda o: with_prices("25.90")(replace(o, tiers=())),
    ),
]


@pytest.mark.parametrize(
    ("build", "expect"),
    [(b, e) for _, b, e in CHANGED],
    ids=[name for name, _, _ in CHANGED],
)
def test_variant_with_known_result(
    build: Callable[[], JSON], expect: Callable[[Offer], Offer]
) -> None:
    assert parse(build()) == expect(EXAMPLE)


@pytest.mark.parametrize("marker", NO_VALUE_MARKERS, ids=repr)
def test_no_value_markers_are_all_the_same(marker: object) -> None:
    expected = replace(EXAMPLE, unit=None, image=None, shop_name=None, shop_url=None)
    assert parse(with_no_values(marker)) == expected


def test_null_strings_builder() -> None:
    assert parse(with_null_strings()) == parse(with_no_values(None))


# --- tiers -------------------------------------------------------------------------------

TIER_CASES: list[tuple[str, list[Any], list[tuple[int, str]]]] = [
    ("empty", [], []),
    (
        "sorted and de-duplicated",
        [
            {"beginAmount": "300", "price": "25.90"},
            {"beginAmount": 1, "price": D("29.89")},
            {"beginAmount": "100", "price": "27.60"},
            {"beginAmount": "1", "price": "29.89"},
        ],
        [(1, "29.89"), (100, "27.60"), (300, "25.90")],
    ),
    (
        "same quantity twice keeps the lower price",
        [{"beginAmount": "2", "price": "9.00"}, {"beginAmount": "2", "price": "8.50"}],
        [(2, "8.50")],
    ),
    (
        "invalid entries skipped",
        [
            "junk",
            None,
            {"beginAmount": "0", "price": "5"},
            {"beginAmount": "-3", "price": "5"},
            {"beginAmount": "5", "price": "0"},
            {"beginAmount": "5", "price": "abc"},
            {"beginAmount": "5.5", "price": "4"},
            {"price": "5"},
            {"begin_amount": "10", "price": "¥4.00"},
        ],
        [(10, "4.00")],
    ),
]


@pytest.mark.parametrize(
    ("entries", "expected"),
    [(e, x) for _, e, x in TIER_CASES],
    ids=[name for name, _, _ in TIER_CASES],
)
def test_tiers(entries: list[Any], expected: list[tuple[int, str]]) -> None:
    data = without_sections("sku_price_range")
    data["tiered_price_info"]["prices"] = entries
    assert parse(data).tiers == tuple(Tier(q, D(p)) for q, p in expected)


def test_tiers_fall_back_to_sku_param_only_when_primary_yields_none() -> None:
    data = example_data()
    data["tiered_price_info"]["prices"] = [{"beginAmount": "x", "price": "1"}]
    data["sku_price_range"]["sku_param"] = [{"beginAmount": "1", "price": "29.89"}]
    assert parse(data).tiers == (Tier(1, D("29.89")),)


# --- offers without SKUs ------------------------------------------------------------------

DEFAULT_SKU = Sku(str(ID), None, DEFAULT_SKU_NAME, D("29.89"), 44732, False)


@pytest.mark.parametrize("how", ["missing", "empty", "null", "null string"])
def test_offer_without_skus_gets_one_synthetic_sku(how: Any) -> None:
    assert parse(without_skus(how=how)) == replace(EXAMPLE, skus=(DEFAULT_SKU,))


NO_SKU_CASES: list[tuple[str, Callable[[JSON], object], Sku | None]] = [
    ("price from the lowest tier", lambda d: None, DEFAULT_SKU),
    (
        "price from tiers in sku_price_range",
        lambda d: d.pop("tiered_price_info"),
        DEFAULT_SKU,
    ),
    (
        "price from a single price_info range",
        lambda d: (
            [d.pop(k) for k in NO_TIERS],
            d.update(price_info={"price_min": "12.50", "price_max": 12.5}),
        ),
        replace(DEFAULT_SKU, price=D("12.50"), stock=44732),
    ),
    (
        "ambiguous price_info range",
        lambda d: [d.pop(k) for k in NO_TIERS],
        None,
    ),
    (
        "ambiguous sku_price_scale",
        lambda d: [d.pop(k) for k in (*NO_TIERS, "price_info")],
        None,
    ),
    (
        "stock zero means sold out",
        lambda d: d.update(stock=0),
        replace(DEFAULT_SKU, stock=0, sold_out=True),
    ),
    (
        "stock unknown",
        lambda d: (d.pop("stock"), d["sku_price_range"].pop("stock")),
        replace(DEFAULT_SKU, stock=None),
    ),
    (
        "no price anywhere",
        lambda d: [d.pop(k) for k in (*NO_TIERS, "price_info", "sku_price_scale")],
        None,
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [(c, x) for _, c, x in NO_SKU_CASES],
    ids=[name for name, _, _ in NO_SKU_CASES],
)
def test_offer_without_skus(change: Callable[[JSON], object], expected: Sku | None) -> None:
    data = without_skus()
    change(data)
    if expected is None:
        with pytest.raises(ParseError, match="no single item price") as info:
            parse(data)
        assert info.value.item_id == ID
        return
    offer = parse(data)
    assert offer.skus == (expected,)
    assert (offer.price_min, offer.price_max) == (expected.price, expected.price)
    assert offer.stock == expected.stock
    assert offer.sold_out is expected.sold_out


# --- errors --------------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, Callable[[], object], str]] = [
    ("data is not an object", lambda: ["not", "a", "dict"], "not a JSON object"),
    ("data is null", lambda: None, "not a JSON object"),
    ("missing everything", dict, "no SKUs and no single item price"),
    (
        "payload for another item",
        lambda: edit(example_data(), lambda d: d.update(item_id=123)),
        "payload is for item 123",
    ),
    (
        "skus is not a list",
        lambda: edit(example_data(), lambda d: d.update(skus={"a": 1})),
        "not a list",
    ),
    ("SKU is not an object", lambda: edit(example_data(), lambda d: d["skus"].append(7)), "SKU #9"),
    (
        "SKU without any id",
        lambda: with_sku_field("specid", [MISSING], with_sku_field("skuid", [""])),
        "SKU #0 has neither skuid nor specid",
    ),
    (
        "two different SKUs with one id",
        lambda: with_sku_field("skuid", ["same"]),
        "two different SKUs share the id same",
    ),
    (
        "no SKU prices, no tiers, ambiguous range",
        lambda: with_sku_prices([MISSING], without_sections(*NO_TIERS)),
        "has no price and the item has no single price",
    ),
    (
        "priceless SKU beside SKUs priced unlike the tiers",
        lambda: with_sku_prices([MISSING, "30.00"]),
        "SKU 5674557541674 has no price",
    ),
    (
        "no SKU prices, no tiers, ambiguous sku_price_scale",
        lambda: with_sku_prices([MISSING], without_sections(*NO_TIERS, "price_info")),
        "has no price",
    ),
    (
        "every price zero",
        lambda: edit(
            with_sku_prices(["0.00"], without_sections(*NO_TIERS)),
            lambda d: d.update(price_info={"price": "0", "price_min": "0", "price_max": "0"}),
        ),
        "has no price",
    ),
]


@pytest.mark.parametrize(
    ("build", "message"),
    [(b, m) for _, b, m in ERROR_CASES],
    ids=[name for name, _, _ in ERROR_CASES],
)
def test_parse_errors(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ParseError, match=message) as info:
        parse(build())
    assert info.value.item_id == ID
    assert str(info.value).startswith(f"item {ID}: ")
    assert info.value.__cause__ is None


ITEM_ID_CASES: list[tuple[str, object, int | None, int | None]] = [
    ("payload id only", ID, None, ID),
    ("payload id as string", f" {ID} ", ID, ID),
    ("requested id stands in for a missing one", MISSING, ID, ID),
    ("requested id stands in for garbage", "abc", ID, ID),
    ("requested id stands in for zero", 0, ID, ID),
    ("neither", MISSING, None, None),
]


@pytest.mark.parametrize(
    ("payload_id", "requested", "expected"),
    [(p, r, x) for _, p, r, x in ITEM_ID_CASES],
    ids=[name for name, _, _, _ in ITEM_ID_CASES],
)
def test_item_id(payload_id: object, requested: int | None, expected: int | None) -> None:
    data = example_data()
    if payload_id is MISSING:
        del data["item_id"]
    else:
        data["item_id"] = payload_id
    if expected is None:
        with pytest.raises(ParseError, match="no usable item_id"):
            parse(data, item_id=requested)
        return
    offer = parse(data, item_id=requested)
    assert offer.item_id == expected
    assert offer.url == offer_url(expected)


# --- SKU names ------------------------------------------------------------------------------

PROPS_NAMES: list[tuple[object, str | None]] = [
    ("颜色:白色豹纹;尺码:L", "白色豹纹 / L"),
    ("白色豹纹;L", "白色豹纹 / L"),
    (" 颜色 : 白色豹纹 ; 尺码:L ", "白色豹纹 / L"),
    ("颜色：白色豹纹；尺码：L", "白色豹纹 / L"),
    ("颜色:白色豹纹;", "白色豹纹"),
    ("颜色:;尺码:L", "L"),
    ("款式:A:B", "A:B"),
    ("单色", "单色"),
    (";;", None),
    ("", None),
    ("null", None),
    (None, None),
    (42, None),
]


@pytest.mark.parametrize(("value", "expected"), PROPS_NAMES)
def test_name_from_props_names(value: object, expected: str | None) -> None:
    assert name_from_props_names(value) == expected


SKU_PROPS = example_data()["sku_props"]
REAL_SKU_PROPS = with_real_prop_ids()["sku_props"]
POSITIONAL_SKU_PROPS = [
    {"prop_name": "颜色", "values": [{"name": "黄"}, {"name": "白"}]},
    {"prop_name": "尺码", "values": [{"name": "S"}, {"name": "M"}]},
]

PROPS_IDS: list[tuple[object, object, str | None]] = [
    (SKU_PROPS, "0:1;1:2", "白色豹纹 / L"),
    (SKU_PROPS, " 0 : 2 ; 1 : 0 ", "肤色豹纹 / S"),
    (REAL_SKU_PROPS, "1627207:28321;20509:28316", "白色豹纹 / L"),
    # Index-based ids are positions in sku_props (whose values with_real_prop_ids reversed).
    (REAL_SKU_PROPS, "0:1;1:2", "白色豹纹 / S"),
    (POSITIONAL_SKU_PROPS, "0:1;1:0", "白 / S"),
    (SKU_PROPS, "0:1;1:9", None),
    (SKU_PROPS, "0-1", None),
    (SKU_PROPS, "7:1", None),
    (SKU_PROPS, "", None),
    (SKU_PROPS, 5, None),
    ("not a list", "0:1", None),
    ([None, {"values": "x"}, {"pid": 0, "values": [None, {"vid": 1, "name": 3}]}], "0:0", None),
]


@pytest.mark.parametrize(("sku_props", "props_ids", "expected"), PROPS_IDS)
def test_names_from_props_ids(sku_props: object, props_ids: object, expected: str | None) -> None:
    assert PropNames(sku_props).from_ids(props_ids) == expected


# --- value coercion -------------------------------------------------------------------------

DECIMALS: list[tuple[object, Decimal | None]] = [
    ("29.89", D("29.89")),
    (" 29.89 ", D("29.89")),
    ("¥29.89", D("29.89")),
    ("￥ 29.89", D("29.89")),
    ("29.89元", D("29.89")),
    ("RMB29.89", D("29.89")),
    ("1,299.00", D("1299.00")),
    ("-3.5", D("-3.5")),
    (".5", D("0.5")),
    (29.89, D("29.89")),
    (0.1, D("0.1")),
    (D("29.89"), D("29.89")),
    (30, D(30)),
    ("25.90-29.89", None),
    ("1e5", None),
    ("1_000", None),
    ("２９.８９", None),
    ("9" * 50, None),
    (10**30, None),
    ("NaN", None),
    (D("NaN"), None),
    (D("sNaN"), None),
    (float("inf"), None),
    (True, None),
    ("null", None),
    ("", None),
    (None, None),
    ([1], None),
]


@pytest.mark.parametrize(("value", "expected"), DECIMALS, ids=repr)
def test_parse_decimal(value: object, expected: Decimal | None) -> None:
    result = parse_decimal(value)
    assert result == expected
    if expected is not None:
        assert str(result) == str(expected)


INTS: list[tuple[object, int | None]] = [
    ("4975", 4975),
    (" 4975 ", 4975),
    (4975, 4975),
    ("4975.0", 4975),
    ("4,975", 4975),
    ("-12", -12),
    (D("4975"), 4975),
    (D("1E+3"), 1000),
    (4975.0, 4975),
    ("4975.5", None),
    (4975.5, None),
    (D("1E+999999"), None),
    (2**63, None),
    (-(2**63), -(2**63)),
    ("9" * 50, None),
    (True, None),
    ("null", None),
    ("", None),
    (None, None),
    ({}, None),
]


@pytest.mark.parametrize(("value", "expected"), INTS, ids=repr)
def test_parse_int(value: object, expected: int | None) -> None:
    assert parse_int(value) == expected


PRICES: list[tuple[object, Decimal | None]] = [
    ("29.89", D("29.89")),
    ("0.01", D("0.01")),
    ("0", None),
    ("0.00", None),
    ("-1", None),
    ("0.00001", None),
    (MIN_PRICE, MIN_PRICE),
    (MAX_PRICE, None),
    ("25.90-29.89", None),
]


@pytest.mark.parametrize(("value", "expected"), PRICES, ids=repr)
def test_parse_price(value: object, expected: Decimal | None) -> None:
    assert parse_price(value) == expected


RANGES: list[tuple[object, tuple[str, str] | None]] = [
    ("25.90-29.89", ("25.90", "29.89")),
    ("29.89 - 25.90", ("25.90", "29.89")),
    ("¥25.90 ~ ¥29.89", ("25.90", "29.89")),
    ("25.90～29.89", ("25.90", "29.89")),
    ("29.89", ("29.89", "29.89")),
    (D("29.89"), ("29.89", "29.89")),
    ("0-29.89", None),
    ("a-b", None),
    ("-5", None),
    ("1-2-3", None),
    (None, None),
]


@pytest.mark.parametrize(("value", "expected"), RANGES, ids=repr)
def test_parse_price_range(value: object, expected: tuple[str, str] | None) -> None:
    result = parse_price_range(value)
    assert result == (None if expected is None else (D(expected[0]), D(expected[1])))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), (1, True), (0, False), ("true", True), (" False ", False),
     ("1", True), ("no", False), (2, None), ("maybe", None), (None, None)],
    ids=repr,
)  # fmt: skip
def test_parse_bool(value: object, expected: bool | None) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5674557541674", "5674557541674"), (5674557541674, "5674557541674"),
     (D("5674557541674"), "5674557541674"), ("  ab  ", "ab"), ("null", None), (-1, None),
     (True, None), ("x" * 65, None), (None, None)],
    ids=repr,
)  # fmt: skip
def test_parse_id(value: object, expected: str | None) -> None:
    assert parse_id(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("https://a/b", "https://a/b"), (" http://a ", "http://a"), ("//a/b", "https://a/b"),
     ("ftp://a", None), ("javascript:x", None), ("", None), (3, None)],
    ids=repr,
)  # fmt: skip
def test_parse_url(value: object, expected: str | None) -> None:
    assert parse_url(value) == expected


# --- hundreds of SKUs -------------------------------------------------------------------------


def test_many_skus_parse_correctly() -> None:
    n = 500
    offer = parse(many_skus(n))
    assert len(offer.skus) == n
    assert len({sku.sku_id for sku in offer.skus}) == n
    assert offer.skus[0].name == "色0 / 码0"
    assert offer.skus[-1].name == f"色{(n - 1) // 10} / 码{(n - 1) % 10}"
    assert [sku.price for sku in offer.skus] == [many_sku_price(i) for i in range(n)]
    assert offer.price_min == min(many_sku_price(i) for i in range(n))
    assert offer.price_max == max(many_sku_price(i) for i in range(n))
    assert offer.stock == sum(many_sku_stock(i) for i in range(n))
    assert offer.sold_out is False


def test_500_skus_parse_fast() -> None:
    data = many_skus(500)
    parse(data)  # warm up
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        parse(data)
        best = min(best, time.perf_counter() - start)
    assert best < 0.010, f"500 SKUs took {best * 1000:.1f} ms"


# --- fuzzing: an Offer or a ParseError, nothing else ---------------------------------------

KEYS = [
    "item_id", "title", "currency", "offer_unit", "product_url", "main_imgs", "shop_info",
    "shop_name", "shop_url", "is_sold_out", "sold_out", "stock", "price_info", "price",
    "price_min", "price_max", "discount_price", "tiered_price_info", "prices", "beginAmount",
    "sku_price_range", "sku_param", "sku_price_scale", "sku_props", "pid", "vid", "values",
    "name", "skus", "skuid", "specid", "sale_price", "props_ids", "props_names",
]  # fmt: skip
TRICKY_STRINGS = [
    "null", "", " ", "29.89", "¥29.89", "￥ 0", "25.90-29.89", "0", "-1", "1e400", "NaN",
    "0:1;1:2", "1627207:28320", "颜色:白;尺码:L", ";:", "4975", "9" * 45, str(ID), "//x",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.decimals()
    | st.sampled_from(TRICKY_STRINGS)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=6)
    ),
    max_leaves=30,
)
FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def check_offer_or_parse_error(data: object, requested: int | None) -> None:
    try:
        offer = parse(data, item_id=requested)
    except ParseError as err:
        assert err.__cause__ is None, f"unexpected {err.__cause__!r}"
        if requested is not None:
            assert err.item_id == requested
        return
    assert isinstance(offer, Offer)
    assert offer.skus
    prices = [sku.price for sku in offer.skus]
    assert all(isinstance(p, Decimal) and MIN_PRICE <= p < MAX_PRICE for p in prices)
    assert (offer.price_min, offer.price_max) == (min(prices), max(prices))
    assert len({sku.sku_id for sku in offer.skus}) == len(offer.skus)
    assert [t.min_qty for t in offer.tiers] == sorted({t.min_qty for t in offer.tiers})
    assert offer.stock is None or offer.stock >= 0
    if requested is not None:
        assert offer.item_id == requested


@FUZZ
@given(data=JSON_VALUES, requested=st.none() | st.integers(1, 10**12))
def test_fuzz_arbitrary_json(data: object, requested: int | None) -> None:
    check_offer_or_parse_error(data, requested)


EXAMPLE_PATHS = json_paths(example_data())


def _mutate(data: Any, path: tuple[Any, ...], new: object) -> None:
    parent = data
    for step in path[:-1]:
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):
            return
    last = path[-1]
    if isinstance(parent, dict):
        if new is MISSING:
            parent.pop(last, None)
        else:
            parent[last] = new
    elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        if new is MISSING:
            del parent[last]
        else:
            parent[last] = new


@FUZZ
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(EXAMPLE_PATHS), JSON_VALUES | st.just(MISSING)),
        min_size=1,
        max_size=4,
    ),
    requested=st.none() | st.just(ID),
)
def test_fuzz_mutated_example(
    edits: list[tuple[tuple[Any, ...], object]], requested: int | None
) -> None:
    data = example_data()
    for path, new in edits:
        _mutate(data, path, new)
    check_offer_or_parse_error(data, requested)


@FUZZ
@given(value=SCALARS | st.lists(SCALARS, max_size=3))
def test_fuzz_value_helpers_never_raise(value: object) -> None:
    for helper in (parse_decimal, parse_int, parse_price, parse_price_range, parse_bool, parse_id):
        helper(value)
    name_from_props_names(value)
    PropNames(value).from_ids(value)


class _BrokenMapping(Mapping[str, Any]):
    """A mapping whose every lookup fails: stands in for shapes the parser does not foresee."""

    def __getitem__(self, key: str) -> Any:
        raise TypeError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_unforeseen_failures_still_end_as_parse_error() -> None:
    with pytest.raises(ParseError, match="malformed payload") as info:
        parse(_BrokenMapping())
    assert info.value.item_id == ID
    assert isinstance(info.value.__cause__, TypeError)


# --- fast paths agree with the general path ------------------------------------------------
#
# Common values take shortcuts: a plain "29.89" or "4975" skips the regexes, an int stock
# skips the cleaning, SKU price strings are parsed once per payload. Spaces around a value
# change nothing it means, but send it down the general path.

NUMBER_TEXT = st.text(alphabet="0123456789.,+-_e ¥元٣２²", max_size=14) | st.sampled_from(
    ["9" * 40, "9" * 41, "0." + "0" * 38 + "1", "12.", ".5", "0.0001", "0.00009", "1" + "0" * 10]
)


@FUZZ
@given(text=NUMBER_TEXT)
def test_number_text_fast_paths_agree_with_the_general_path(text: str) -> None:
    padded = f" {text} "
    assert repr(parse_price(text)) == repr(parse_price(padded))
    assert repr(parse_decimal(text)) == repr(parse_decimal(padded))
    assert parse_int(text) == parse_int(padded)
    assert parse_count(text) == parse_count(padded)


@FUZZ
@given(number=st.integers() | st.sampled_from([2**63 - 1, 2**63, -(2**63)]))
def test_integer_fast_paths_agree_with_the_general_path(number: int) -> None:
    assert parse_count(number) == parse_count(f" {number} ")
    assert parse_int(number) == parse_int(f" {number} ")


@FUZZ
@given(
    mapping=st.dictionaries(st.sampled_from(["a", "b", "c"]), SCALARS, max_size=3),
    keys=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
)
def test_first_id_is_the_id_of_the_first_present_value(
    mapping: dict[str, object], keys: list[str]
) -> None:
    assert first_id(mapping, tuple(keys)) == parse_id(first_present(mapping, *keys))


FULL_WIDTH = str.maketrans({";": "；", ":": "："})


@FUZZ
@given(text=st.text(alphabet="颜色白L0123 ;:；：", max_size=16))
def test_full_width_separators_change_no_name(text: str) -> None:
    assert name_from_props_names(text) == name_from_props_names(text.translate(FULL_WIDTH))
    for sku_props in (SKU_PROPS, REAL_SKU_PROPS, POSITIONAL_SKU_PROPS):
        names = PropNames(sku_props)
        assert names.from_ids(text) == names.from_ids(text.translate(FULL_WIDTH))


def _padded(value: Any) -> Any:
    """``value`` with every string and non-negative integer as text between spaces."""
    if isinstance(value, dict):
        return {key: _padded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_padded(item) for item in value]
    if isinstance(value, str) or (type(value) is int and value >= 0):
        return f" {value} "
    return value


def _outcome(data: JSON) -> str:
    try:
        return repr(parse(data, item_id=None))
    except ParseError as err:
        return f"ParseError: {err}"


def _shared_price_strings(data: JSON) -> None:
    for index, sku in enumerate(data["skus"]):
        sku["sale_price"] = "0" if index % 2 else "27.60"
        sku["price"] = "27.60"


def _simulated(item_id: int, variants: bool) -> JSON:
    return render(generate_item(0, item_id, variants=variants))


FAST_PATH_PAYLOADS: list[tuple[str, Callable[[], JSON]]] = [
    *SAME_AS_EXAMPLE,
    ("many SKUs", lambda: many_skus(120)),
    ("no SKUs", without_skus),
    ("shared price strings", lambda: edit(example_data(), _shared_price_strings)),
    *[
        (f"simulated {item_id}{' with quirks' * variants}", partial(_simulated, item_id, variants))
        for item_id in default_item_ids(0, 40)
        for variants in (False, True)
    ],
]


@pytest.mark.parametrize(
    "build", [b for _, b in FAST_PATH_PAYLOADS], ids=[name for name, _ in FAST_PATH_PAYLOADS]
)
def test_payload_parses_the_same_through_the_general_path(build: Callable[[], JSON]) -> None:
    data = build()
    assert _outcome(data) == _outcome(_padded(data))


def test_sku_price_strings_shared_by_skus() -> None:
    offer = parse(edit(example_data(), _shared_price_strings))
    assert [str(sku.price) for sku in offer.skus] == ["27.60"] * len(EXAMPLE_SKUS)
