"""The simulated TMAPI's catalogue: which items exist and how each is generated.

:func:`generate_item` makes the :class:`~monitor.simulator.model.SimItem`
of an item ID; item 652702302959 *is* the documented example (with its
``item_id`` corrected, see :func:`example_data`) until something changes
it. :func:`default_item_ids` picks the IDs of a catalogue of a given size.

Everything is derived from ``random.Random`` seeded with the simulator's
seed and the item ID, so an item looks the same whichever other items exist.
With ``variants`` an item also gets :class:`~monitor.simulator.quirks.Quirks`
(see :mod:`monitor.simulator.quirks`), the untidiness of real responses.
How an item becomes JSON is :mod:`monitor.simulator.render`; how items
change (seeded drift, the market) is :mod:`monitor.simulator.market`.

No I/O besides reading the packaged example once; no clock.
"""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from monitor.domain import offer_url
from monitor.simulator.model import CENT, SimItem, SimSku
from monitor.simulator.quirks import pick_quirks

__all__ = ["EXAMPLE_ITEM_ID", "default_item_ids", "example_data", "generate_item"]

EXAMPLE_ITEM_ID = 652702302959

#: (product, unit, price range in cents, second SKU property, its values)
_PRODUCTS: list[tuple[str, str, tuple[int, int], str, tuple[str, ...]]] = [
    ("女式睡衣", "件", (1500, 8900), "尺码", ("S", "M", "L", "XL", "XXL")),
    ("男士纯棉T恤", "件", (990, 4500), "尺码", ("M", "L", "XL", "2XL", "3XL")),
    ("帆布手提包", "个", (650, 3800), "规格", ("小号", "中号", "大号")),
    ("不锈钢保温杯", "个", (1200, 6800), "容量", ("350ml", "500ml", "750ml")),
    ("休闲运动鞋", "双", (3500, 15900), "尺码", ("38", "39", "40", "41", "42", "43")),
    ("透明手机壳", "个", (150, 1200), "型号", ("iPhone 13", "iPhone 14", "iPhone 15")),
    ("珍珠发夹", "个", (80, 650), "规格", ("单个装", "3个装", "10个装")),
    ("纯棉毛巾", "条", (350, 2900), "尺寸", ("34x75cm", "70x140cm")),
    ("儿童玩具车", "套", (2200, 12800), "款式", ("标准款", "升级款", "豪华款")),
    ("加厚瑜伽垫", "张", (1800, 9900), "厚度", ("6mm", "8mm", "10mm", "15mm")),
]
_COLOURS = [
    "黑色",
    "白色",
    "红色",
    "蓝色",
    "灰色",
    "粉色",
    "绿色",
    "黄色",
    "紫色",
    "卡其色",
    "咖啡色",
    "米白色",
]
_PREFIXES = ("跨境", "2024新款", "爆款", "ins风", "韩版", "简约", "工厂直供", "外贸")
_SUFFIXES = ("厂家直销", "一件代发", "现货批发", "源头工厂", "批发", "")
_PLACES = [
    ("浙江省金华市", "义乌市"),
    ("广东省广州市", "广州市"),
    ("江苏省连云港市", "灌云县"),
    ("福建省泉州市", "晋江市"),
    ("广东省深圳市", "深圳市"),
]
_SHOP_NAMES = ["佳美", "盛达", "春霞", "鑫源", "优品", "恒丰"]
_SHOP_KINDS = ["服装厂", "日用品厂", "贸易商行", "电子商务有限公司", "工艺品厂"]
_SERVICE_TAGS = ["7天无理由退货", "晚发必赔", "48小时发货", "包邮"]
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@cache
def _example_raw() -> str:
    return (
        resources.files("monitor.simulator").joinpath("data/example_item.json").read_text("utf-8")
    )


def example_data() -> dict[str, Any]:
    """The documented example's ``data``, with ``item_id`` corrected to 652702302959."""
    data: dict[str, Any] = json.loads(_example_raw())["data"]
    data["item_id"] = EXAMPLE_ITEM_ID
    return data


def _from_data(item_id: int, data: dict[str, Any]) -> SimItem:
    skus = [
        SimSku(
            sku_id=raw["skuid"],
            spec_id=raw["specid"],
            props_ids=raw["props_ids"],
            props_names=raw["props_names"],
            price=Decimal(raw["sale_price"]),
            stock=raw["stock"],
            initial_stock=raw["stock"],
            extra={k: raw[k] for k in ("origin_price", "sale_count", "package_info")},
        )
        for raw in data["skus"]
    ]
    tiers = [
        (int(t["beginAmount"]), Decimal(t["price"])) for t in data["tiered_price_info"]["prices"]
    ]
    return SimItem(item_id, data, skus, tiers, data["stock"], data["stock"])


def default_item_ids(seed: int, count: int) -> list[int]:
    """``count`` distinct item IDs: the documented example first, then seeded 12-digit IDs."""
    rng = random.Random(f"tmapi-sim:{seed}:ids")
    ids = [EXAMPLE_ITEM_ID][:count]
    seen = set(ids)
    while len(ids) < count:
        candidate = rng.randrange(520_000_000_000, 1_000_000_000_000)
        if candidate not in seen:
            seen.add(candidate)
            ids.append(candidate)
    return ids


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(length))


def _colours(rng: random.Random, count: int) -> list[str]:
    names = list(_COLOURS)
    rng.shuffle(names)
    return [
        names[i % len(names)] + (f"{i // len(names)}号" if i >= len(names) else "")
        for i in range(count)
    ]


def _tiers(rng: random.Random, price: Decimal, count: int) -> list[tuple[int, Decimal]]:
    first = rng.choice((1, 1, 1, 2, 3, 5, 10))
    breaks = [
        first,
        *sorted(
            rng.sample([q for q in (20, 50, 100, 200, 300, 500, 1000) if q > first], count - 1)
        ),
    ]
    tiers = [(first, price)]
    for qty in breaks[1:]:
        cut = Decimal(rng.randint(3, 12)) / 100
        tiers.append((qty, max(CENT, (tiers[-1][1] * (1 - cut)).quantize(CENT))))
    return tiers


def _make_skus(
    rng: random.Random,
    *,
    count: int,
    base: Decimal,
    uniform: bool,
    prop2: str,
    values2: tuple[str, ...],
) -> tuple[list[SimSku], list[dict[str, Any]]]:
    """``count`` SKUs over colour x ``prop2``, and the ``sku_props`` describing them."""
    if not count:
        return [], []
    n_values2 = rng.randint(1, min(len(values2), count))
    colours = _colours(rng, math.ceil(count / n_values2))
    step = max(CENT, (base * rng.randint(3, 12) / 100).quantize(CENT))
    skus: list[SimSku] = []
    for index in range(count):
        c, v = divmod(index, n_values2)
        ids, names = f"0:{c}", f"颜色:{colours[c]}"
        if n_values2 > 1:
            ids, names = f"{ids};1:{v}", f"{names};{prop2}:{values2[v]}"
        stock = 0 if rng.random() < 0.05 else rng.randint(5, 9999)
        package = {"weight": rng.randint(5, 2000) / 1000, "length": 0, "width": 0, "height": 0}
        skus.append(
            SimSku(
                sku_id=str(rng.randrange(10**12, 10**13)),
                spec_id=f"{rng.getrandbits(128):032x}",
                props_ids=ids,
                props_names=names,
                price=base if uniform else base + step * v,
                stock=stock,
                initial_stock=stock or rng.randint(50, 999),
                extra={
                    "origin_price": None,
                    "sale_count": rng.randint(0, 500),
                    "package_info": {**package, "volume": 0},
                },
            )
        )
    named = [("颜色", colours)] + ([(prop2, list(values2[:n_values2]))] if n_values2 > 1 else [])
    props: list[dict[str, Any]] = [
        {
            "pid": str(pid),
            "prop_name": prop_name,
            "values": [
                {"vid": str(i), "name": name, "imageUrl": ""} for i, name in enumerate(names)
            ],
        }
        for pid, (prop_name, names) in enumerate(named)
    ]
    return skus, props


def _template(rng: random.Random, item_id: int, product: str, unit: str) -> dict[str, Any]:
    """The static fields of a generated item, in the documented example's key order."""
    seller = str(rng.randrange(10**12, 10**13))
    images = [
        f"https://cbu01.alicdn.com/img/ibank/O1CN01{_token(rng, 14)}_!!{seller}-0-cib.jpg"
        for _ in range(rng.randint(1, 8))
    ]
    video = f"https://cloud.video.taobao.com/play/u/{seller}/p/2/e/6/t/1/{rng.getrandbits(36)}.mp4"
    location, town = rng.choice(_PLACES)
    shop = f"{town}{rng.choice(_SHOP_NAMES)}{rng.choice(_SHOP_KINDS)}"
    member = f"b2b-{seller}{_token(rng, 5).lower()}"
    title = f"{rng.choice(_PREFIXES)}{rng.choice(_COLOURS)}{product}{rng.choice(_SUFFIXES)}"
    return {
        "item_id": item_id,
        "product_url": offer_url(item_id),
        "title": title,
        "category_id": rng.randrange(10**6, 10**9),
        "root_category_id": rng.randrange(1, 10**7),
        "currency": "CNY",
        "offer_unit": unit,
        "product_props": [
            {"品牌": "其他"},
            {"产地": town},
            {"货号": f"Y{rng.randint(1000, 9999)}"},
        ],
        "main_imgs": images,
        "video_url": "" if rng.random() < 0.5 else video,
        "detail_url": f"https://itemcdn.tmall.com/1688offer/icoss{rng.getrandbits(96):024x}",
        "sale_count": str(rng.randint(0, 50000)),
        "sale_info": {"sale_quantity_90days": rng.randint(0, 5000)},
        "price_info": {"origin_price_min": None, "origin_price_max": None, "discount_price": ""},
        "tiered_price_info": {"begin_num": rng.choice((1, 2, 3))},
        "mixed_batch": {
            "mix_amount": 10000,
            "mix_begin": 0,
            "mix_num": 1000,
            "shop_mix_num": 2147483647,
        },
        "shop_info": {
            "shop_name": shop,
            "shop_url": f"https://winport.m.1688.com/page/index.html?memberId={member}",
            "seller_login_id": shop,
            "seller_user_id": seller,
            "seller_member_id": member,
        },
        "delivery_info": {
            "location": location,
            "location_code": str(rng.randrange(10**7, 10**8)),
            "delivery_fee": rng.randint(0, 12),
            "unit_weight": 0,
            "template_id": str(rng.randrange(10**7, 10**8)),
        },
        "service_tags": rng.sample(_SERVICE_TAGS, rng.randint(0, 3)),
        "sku_price_scale": "",
        "sku_price_scale_original": "null",
        "sku_price_range": {
            "mix_param": {
                "mixNum": 1000,
                "mixAmount": 10000,
                "shopMixNum": 2147483647,
                "mixBegin": 0,
                "supportMix": rng.random() < 0.7,
            }
        },
        "sku_props": [],
        "skus": [],
        "is_sold_out": False,
        "stock": 0,
        "promotions": [],
    }


def generate_item(seed: int, item_id: int, *, variants: bool = False) -> SimItem:
    """The seeded item ``item_id``; 652702302959 is always the documented example.

    Prices are 2-decimal amounts in the product's usual range; 15 % of items
    are single-spec (no SKUs), the others have 1-12 SKUs (with ``variants``,
    one in ten has 100-300). 60 % have one price for all SKUs plus 1-3
    quantity breaks, the others a price per size and no tiers.
    """
    if item_id == EXAMPLE_ITEM_ID:
        return _from_data(item_id, example_data())
    rng = random.Random(f"tmapi-sim:{seed}:{item_id}")
    product, unit, (low, high), prop2, values2 = rng.choice(_PRODUCTS)
    template = _template(rng, item_id, product, unit)
    base = Decimal(rng.randint(low, high)) / 100
    count = 0 if rng.random() < 0.15 else rng.randint(1, 12)
    if variants and count and rng.random() < 0.1:
        count = rng.randint(100, 300)
    uniform = count == 0 or rng.random() < 0.6
    skus, template["sku_props"] = _make_skus(
        rng, count=count, base=base, uniform=uniform, prop2=prop2, values2=values2
    )
    tiers = _tiers(rng, base, rng.randint(1, 3)) if uniform else []
    stock = 0 if count or rng.random() < 0.03 else rng.randint(10, 99999)
    quirks = pick_quirks(rng, has_skus=bool(count), has_tiers=bool(tiers)) if variants else None
    return SimItem(item_id, template, skus, tiers, stock, stock or 100, quirks)
