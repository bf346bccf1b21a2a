"""The simulated TMAPI: seeded items, scripting, failure modes, HTTP behaviour, counters.

HTTP tests use a plain sync ``httpx.Client`` (and a raw socket for the
keep-alive and parser cases) against the real loopback server.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Iterator
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.simulator.catalog import EXAMPLE_ITEM_ID, default_item_ids, example_data
from monitor.simulator.item_detail import Mode
from monitor.simulator.render import encode
from monitor.simulator.server import SimulatedTmapi
from monitor.tmapi.parse import parse_item

EXAMPLE_FILE_DATA: dict[str, Any] = example_data()


pytestmark = pytest.mark.sim(seed=11, items=6)


@pytest.fixture
def http(sim: SimulatedTmapi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url) as client:
        yield client


def get(http: httpx.Client, item_id: int | str, **params: str) -> httpx.Response:
    return http.get("/1688/item_detail", params={"item_id": item_id, "language": "en", **params})


def body(response: httpx.Response) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(response.content, parse_float=Decimal)
    return decoded


def generated(sim: SimulatedTmapi) -> list[int]:
    return [i for i in sim.item_ids if i != EXAMPLE_ITEM_ID]


# ---------------------------------------------------------------- the catalogue


def test_example_item_is_the_documented_example_with_its_id_corrected() -> None:
    example_file = Path(__file__).parents[1] / "monitor/simulator/data/example_item.json"
    raw = json.loads(example_file.read_text(encoding="utf-8"))["data"]
    assert raw["item_id"] == 859086919394
    expected = {**raw, "item_id": EXAMPLE_ITEM_ID}
    simulator = SimulatedTmapi(items=[EXAMPLE_ITEM_ID], variants=True)
    assert simulator.payload(EXAMPLE_ITEM_ID) == expected


def test_default_ids_start_with_the_example_and_are_distinct() -> None:
    ids = default_item_ids(5, 40)
    assert ids[0] == EXAMPLE_ITEM_ID
    assert len(set(ids)) == 40
    assert all(100_000_000_000 <= i < 1_000_000_000_000 for i in ids)
    assert default_item_ids(5, 40) == ids
    assert default_item_ids(6, 40) != ids
    assert SimulatedTmapi(items=[7, 8]).item_ids == [7, 8]


def test_same_seed_same_items_other_seed_other_items() -> None:
    a, b, c = (SimulatedTmapi(seed=s, items=20) for s in (4, 4, 5))
    assert [a.payload(i) for i in a.item_ids] == [b.payload(i) for i in b.item_ids]
    shared = set(a.item_ids) & set(c.item_ids)
    assert shared == {EXAMPLE_ITEM_ID}
    # An item depends on the seed and its own ID only, not on the other items.
    alone = SimulatedTmapi(seed=4, items=[a.item_ids[7]])
    assert alone.payload(a.item_ids[7]) == a.payload(a.item_ids[7])


def test_generated_items_are_realistic_and_consistent() -> None:
    sim = SimulatedTmapi(seed=2, items=80)
    sku_counts = []
    for item_id in generated(sim):
        data = sim.payload(item_id)
        assert data["item_id"] == item_id
        assert data["product_url"].endswith(f"/{item_id}.html")
        assert data["title"]
        skus = data["skus"]
        sku_counts.append(len(skus))
        prices = [Decimal(s["sale_price"]) for s in skus]
        prices += [Decimal(t["price"]) for t in data["tiered_price_info"]["prices"]]
        for text in [s["sale_price"] for s in skus] + [data["price_info"]["price_min"]]:
            assert re.fullmatch(r"\d+\.\d\d", text), text
        assert all(Decimal("0.5") <= p <= Decimal("500") for p in prices)
        assert Decimal(data["price_info"]["price_min"]) == min(prices)
        assert Decimal(data["price_info"]["price_max"]) == max(prices)
        if skus:
            assert data["stock"] == sum(s["stock"] for s in skus)
            assert len({s["skuid"] for s in skus}) == len(skus)
        else:
            assert data["tiered_price_info"]["prices"], "a single-spec item is priced by its tiers"
        assert data["is_sold_out"] == (data["stock"] == 0)
        tiers = [int(t["beginAmount"]) for t in data["tiered_price_info"]["prices"]]
        assert tiers == sorted(set(tiers))
    assert max(sku_counts) <= 12
    assert 0 in sku_counts
    assert len(set(sku_counts)) > 5


def test_variants_have_the_real_world_quirks_deterministically() -> None:
    sim = SimulatedTmapi(seed=9, items=60, variants=True)
    again = SimulatedTmapi(seed=9, items=60, variants=True)
    payloads = [sim.payload(i) for i in generated(sim)]
    assert payloads == [again.payload(i) for i in generated(again)]
    text = encode(payloads).decode()
    # numbers as strings and as numbers
    assert re.search(r'"stock":"\d+"', text) and re.search(r'"stock":\d+', text)
    assert re.search(r'"sale_price":\d+\.\d\d[,}]', text)
    # "no value" in all its spellings
    assert '"origin_price":null' in text and '"origin_price":"null"' in text
    assert '"origin_price":""' in text
    assert any("origin_price" not in s for p in payloads for s in p["skus"])
    # currency signs and ranges
    assert '"¥' in text or '"￥' in text
    assert any(
        re.fullmatch(r"\D?\d+\.\d\d-\d+\.\d\d", p.get("price_info", {}).get("price", ""))
        for p in payloads
    )
    # real numeric props ids, names without property names, odd spacing
    assert re.search(r'"props_ids":"1627207:\d+', text)
    assert re.search(r'"props_names":"[^":;]+;[^":;]+"', text)
    assert " : " in text
    # missing sections, SKUs known by specid only, hundreds of SKUs
    for section in ("price_info", "tiered_price_info", "sku_price_range", "stock"):
        assert any(section not in p for p in payloads), section
    assert any(
        p["skus"] and all(not s.get("skuid") or s["skuid"] == "null" for s in p["skus"])
        for p in payloads
    )
    assert max(len(p["skus"]) for p in payloads) >= 100


def test_a_variant_renders_the_same_every_time() -> None:
    """Quirks rewrite the rendered copy, never the item's template: the tenth answer
    for an item is the first one again (and still parses)."""
    sim = SimulatedTmapi(seed=3, items=50, variants=True)
    for item_id in generated(sim):
        first = sim.payload(item_id)
        assert [sim.payload(item_id) for _ in range(3)] == [first] * 3
        parse_item(first, item_id=item_id)


def test_variants_keep_the_truth_recoverable() -> None:
    sim = SimulatedTmapi(seed=9, items=60, variants=True)
    for item_id in generated(sim):
        data, truth = sim.payload(item_id), sim.truth(item_id)
        by_spec = {s["specid"]: s for s in data["skus"]}
        for sku in truth.skus:
            raw = by_spec[sku.spec_id]
            price = raw["sale_price"]
            assert Decimal(str(price).lstrip("¥￥")) == sku.price
            assert int(raw["stock"]) == sku.stock
        assert truth.tiers == () or "tiered_price_info" in data or "sku_price_range" in data


# ---------------------------------------------------------------- HTTP answers


def test_serves_the_payload_over_http(sim: SimulatedTmapi, http: httpx.Client) -> None:
    response = get(http, EXAMPLE_ITEM_ID)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    envelope = body(response)
    assert (envelope["code"], envelope["msg"]) == (200, "success")
    assert envelope["data"] == json.loads(
        json.dumps(sim.payload(EXAMPLE_ITEM_ID)), parse_float=Decimal
    )


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"item_id": "abc"}, 422),
        ({"item_id": "0"}, 422),
        ({"item_id": "-1"}, 422),
        ({"item_id": "123", "language": "xx"}, 422),
        ({"item_id": "123"}, 417),
    ],
)
def test_bad_and_unknown_items(http: httpx.Client, params: dict[str, str], code: int) -> None:
    response = http.get("/1688/item_detail", params=params)
    assert response.status_code == 200
    assert body(response)["code"] == code


def test_missing_item_id_is_422(http: httpx.Client) -> None:
    assert body(http.get("/1688/item_detail"))["code"] == 422


def test_other_paths_and_methods(http: httpx.Client) -> None:
    assert http.get("/1688/nothing").status_code == 404
    assert http.post("/1688/item_detail", params={"item_id": 1}).status_code == 405


def test_token_is_required_when_set() -> None:
    with (
        SimulatedTmapi(items=1, token="good-token") as sim,
        httpx.Client(base_url=sim.base_url) as http,
    ):
        missing = get(http, EXAMPLE_ITEM_ID)
        wrong = get(http, EXAMPLE_ITEM_ID, apiToken="bad-token")
        right = get(http, EXAMPLE_ITEM_ID, apiToken="good-token")
        header = http.get(
            "/1688/item_detail",
            params={"item_id": EXAMPLE_ITEM_ID},
            headers={"apikey": "good-token"},
        )
    assert (missing.status_code, body(missing)["code"]) == (401, 401)
    assert wrong.status_code == 401
    assert right.status_code == header.status_code == 200
    assert body(right)["code"] == 200


# ---------------------------------------------------------------- scripting


def test_set_price_and_stock(sim: SimulatedTmapi, http: httpx.Client) -> None:
    sku = "5674557541674"
    sim.set_price(EXAMPLE_ITEM_ID, sku, "27.50")
    sim.set_stock(EXAMPLE_ITEM_ID, sku, 3)
    data = body(get(http, EXAMPLE_ITEM_ID))["data"]
    changed = next(s for s in data["skus"] if s["skuid"] == sku)
    assert (changed["sale_price"], changed["stock"]) == ("27.50", 3)
    assert data["price_info"]["price_max"] == "29.89"
    assert data["stock"] == 44732 - 4975 + 3
    assert sim.truth(EXAMPLE_ITEM_ID).skus[0].price == Decimal("27.50")
    with pytest.raises(ValueError, match="2 decimals"):
        sim.set_price(EXAMPLE_ITEM_ID, sku, "1.005")
    with pytest.raises(KeyError):
        sim.set_price(EXAMPLE_ITEM_ID, "no-such-sku", "1.00")
    with pytest.raises(KeyError):
        sim.set_stock(123, None, 1)


def test_sell_out_and_restock(sim: SimulatedTmapi, http: httpx.Client) -> None:
    sim.sell_out(EXAMPLE_ITEM_ID, "5674557541674")
    one = body(get(http, EXAMPLE_ITEM_ID))["data"]
    assert one["skus"][0]["stock"] == 0 and not one["is_sold_out"]
    sim.sell_out(EXAMPLE_ITEM_ID)
    all_gone = body(get(http, EXAMPLE_ITEM_ID))["data"]
    assert all_gone["is_sold_out"] and all_gone["stock"] == 0
    assert all_gone["sku_price_range"]["stock"] == 0
    sim.restock(EXAMPLE_ITEM_ID)
    assert sim.payload(EXAMPLE_ITEM_ID) == EXAMPLE_FILE_DATA
    sim.restock(EXAMPLE_ITEM_ID, "5674557541674", stock=10)
    assert sim.payload(EXAMPLE_ITEM_ID)["skus"][0]["stock"] == 10


def test_single_spec_items_are_scripted_through_the_item(sim: SimulatedTmapi) -> None:
    single = SimulatedTmapi(seed=2, items=80)
    item_id = next(i for i in generated(single) if not single.payload(i)["skus"])
    single.set_price(item_id, None, "9.99")
    single.set_stock(item_id, None, 0)
    data = single.payload(item_id)
    assert data["tiered_price_info"]["prices"][0]["price"] == "9.99"
    assert data["is_sold_out"] and data["stock"] == 0


def test_set_tiers(sim: SimulatedTmapi) -> None:
    sim.set_tiers(EXAMPLE_ITEM_ID, [(500, "24.00"), (1, Decimal("29.89")), (50, "28.00")])
    data = sim.payload(EXAMPLE_ITEM_ID)
    assert data["tiered_price_info"]["prices"] == [
        {"beginAmount": "1", "price": "29.89"},
        {"beginAmount": "50", "price": "28.00"},
        {"beginAmount": "500", "price": "24.00"},
    ]
    assert data["sku_price_range"]["sku_param"] == data["tiered_price_info"]["prices"]
    assert data["price_info"]["price"] == "24.00"
    assert data["price_info"]["price_min"] == "24.00"


def test_delist_and_relist(sim: SimulatedTmapi, http: httpx.Client) -> None:
    sim.delist(EXAMPLE_ITEM_ID)
    assert body(get(http, EXAMPLE_ITEM_ID))["code"] == 417
    assert sim.truth(EXAMPLE_ITEM_ID).delisted
    sim.relist(EXAMPLE_ITEM_ID)
    assert body(get(http, EXAMPLE_ITEM_ID))["code"] == 200


def test_failures_are_queued_per_item_then_global(sim: SimulatedTmapi, http: httpx.Client) -> None:
    other = generated(sim)[0]
    sim.fail(EXAMPLE_ITEM_ID, code=499, times=2)
    sim.fail(code=500)
    assert body(get(http, other))["code"] == 500
    assert body(get(http, other))["code"] == 200
    assert [body(get(http, EXAMPLE_ITEM_ID))["code"] for _ in range(3)] == [499, 499, 200]


def test_http_failures_with_retry_after(sim: SimulatedTmapi, http: httpx.Client) -> None:
    sim.fail(EXAMPLE_ITEM_ID, http_status=429, retry_after=3)
    sim.fail(EXAMPLE_ITEM_ID, http_status=500, code=439)
    limited = get(http, EXAMPLE_ITEM_ID)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"
    assert body(limited)["code"] == 429
    quota = get(http, EXAMPLE_ITEM_ID)
    assert (quota.status_code, body(quota)["code"]) == (500, 439)
    assert get(http, EXAMPLE_ITEM_ID).status_code == 200
    sim.fail(code=503, times=10)
    sim.clear_failures()
    assert body(get(http, EXAMPLE_ITEM_ID))["code"] == 200
    with pytest.raises(ValueError):
        sim.fail(times=0)


def test_modes(sim: SimulatedTmapi, http: httpx.Client) -> None:
    normal = get(http, EXAMPLE_ITEM_ID).content
    sim.set_mode(EXAMPLE_ITEM_ID, Mode.INVALID_JSON)
    with pytest.raises(ValueError):
        json.loads(get(http, EXAMPLE_ITEM_ID).content)
    sim.set_mode(EXAMPLE_ITEM_ID, "truncated_json")
    truncated = get(http, EXAMPLE_ITEM_ID).content
    assert normal.startswith(truncated) and 0 < len(truncated) < len(normal)
    sim.set_mode(EXAMPLE_ITEM_ID, Mode.EMPTY_DATA)
    assert body(get(http, EXAMPLE_ITEM_ID)) == {"code": 200, "msg": "success", "data": {}}
    sim.set_mode(EXAMPLE_ITEM_ID, Mode.NO_PRICES)
    data = body(get(http, EXAMPLE_ITEM_ID))["data"]
    assert not {"price_info", "tiered_price_info", "sku_price_range"} & data.keys()
    assert all(s["sale_price"] is None for s in data["skus"])
    sim.set_mode(EXAMPLE_ITEM_ID, Mode.SLOW, delay=0.001)
    assert get(http, EXAMPLE_ITEM_ID).content == normal
    # A global mode applies to items without a mode of their own.
    sim.set_mode(EXAMPLE_ITEM_ID, Mode.NORMAL)
    sim.set_mode(None, Mode.EMPTY_DATA)
    assert body(get(http, generated(sim)[0]))["data"] == {}
    sim.set_mode(generated(sim)[1], Mode.NORMAL)  # no own mode: follows the global one
    assert body(get(http, generated(sim)[1]))["data"] == {}
    sim.set_mode(None, Mode.NORMAL)
    assert get(http, EXAMPLE_ITEM_ID).content == normal


def test_drip_sends_the_head_then_the_body_byte_by_byte(sim: SimulatedTmapi) -> None:
    normal = sim.payload(EXAMPLE_ITEM_ID)
    sim.set_mode(EXAMPLE_ITEM_ID, Mode.DRIP, delay=0.001)
    request = f"GET /1688/item_detail?item_id={EXAMPLE_ITEM_ID} HTTP/1.1\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < 40:
            received += sock.recv(65536)
    head, _, start = received.partition(b"\r\n\r\n")
    full = encode({"code": 200, "msg": "success", "data": normal})
    assert f"Content-Length: {len(full)}".encode() in head
    assert full.startswith(start)
    assert len(start) < len(full)


def test_evolve_is_deterministic_and_changes_things() -> None:
    a, b = SimulatedTmapi(seed=21, items=30), SimulatedTmapi(seed=21, items=30)
    before = {i: a.payload(i) for i in a.item_ids}
    events = a.evolve(rng_steps=25)
    assert events == b.evolve(rng_steps=25)
    assert [a.payload(i) for i in a.item_ids] == [b.payload(i) for i in b.item_ids]
    kinds = {e.kind for e in events}
    assert {"price", "stock", "sold_out", "restock"} <= kinds
    changed = [i for i in a.item_ids if a.payload(i) != before[i]]
    assert len(changed) > 20
    for item_id in a.item_ids:
        data = a.payload(item_id)
        for sku in data["skus"]:
            assert re.fullmatch(r"\d+\.\d\d", sku["sale_price"])
            assert Decimal(sku["sale_price"]) > 0 and sku["stock"] >= 0
    assert SimulatedTmapi(seed=22, items=30).evolve(rng_steps=25) != events


def test_evolve_delists_and_relists_over_http() -> None:
    with SimulatedTmapi(seed=1, items=40) as sim, httpx.Client(base_url=sim.base_url) as http:
        events = sim.evolve(rng_steps=30)
        delisted = {e.item_id for e in events if e.kind == "delist"}
        assert delisted
        codes = {i: body(get(http, i))["code"] for i in sim.item_ids}
    for item_id, code in codes.items():
        assert code == (417 if sim.truth(item_id).delisted else 200)


def poll(http: httpx.Client, item_id: int, times: int) -> list[dict[str, Any]]:
    return [body(get(http, item_id))["data"] for _ in range(times)]


def holders(data: dict[str, Any]) -> dict[str, tuple[Decimal, int]]:
    """Each SKU's (price, stock); a single-spec item's price is its first quantity break."""
    if data["skus"]:
        return {s["skuid"]: (Decimal(s["sale_price"]), s["stock"]) for s in data["skus"]}
    return {"-": (Decimal(data["tiered_price_info"]["prices"][0]["price"]), data["stock"])}


def test_market_moves_each_item_by_itself_as_it_is_polled() -> None:
    with (
        SimulatedTmapi(seed=3, items=4, market=True) as sim,
        httpx.Client(base_url=sim.base_url) as http,
    ):
        for item_id in sim.item_ids:
            payloads = poll(http, item_id, 12)
            seen: set[str] = set()
            for before, after in pairwise(payloads):
                old = holders(before)
                for key, (price, stock) in holders(after).items():
                    was_price, was_stock = old[key]
                    if price < was_price:
                        seen.add("drop")
                    if was_stock > 0 == stock:
                        seen.add("sold_out")
                    if was_stock == 0 < stock:
                        seen.add("restock")
            assert {"drop", "sold_out", "restock"} <= seen, item_id
            # The poll that made the move sees it: every 2nd answer differs from the one before.
            assert all(payloads[i] != payloads[i - 1] for i in range(1, 12, 2))
            assert all(payloads[i] == payloads[i - 1] for i in range(2, 12, 2))
            for data in payloads:
                for sku in data["skus"]:
                    assert re.fullmatch(r"\d+\.\d\d", sku["sale_price"])
                    assert Decimal(sku["sale_price"]) > 0 and sku["stock"] >= 0
        moves = sim.market_moves()
        assert {m.kind for m in moves} >= {"price", "sold_out", "restock", "tiers"}
        assert len(moves) == 6 * len(sim.item_ids) and sim.market_moves() == []
        cut = next(m for m in moves if m.kind == "price")
        old, new = (Decimal(p) for p in cut.detail.split(" (")[0].split(" -> "))
        assert new <= old * Decimal("0.95")


def test_market_is_deterministic_and_off_by_default() -> None:
    def sequence(seed: int = 8, *, market: bool = True) -> list[bytes]:
        with (
            SimulatedTmapi(seed=seed, items=3, market=market) as sim,
            httpx.Client(base_url=sim.base_url) as http,
        ):
            return [get(http, i).content for i in sim.item_ids for _ in range(10)]

    first = sequence()
    assert sequence() == first
    assert sequence(seed=9) != first
    # Each item: as served, cut, sold out (restocked: as cut), cheaper break (back: as served).
    assert len(set(first)) == 3 * 4
    assert len(set(sequence(market=False))) == 3  # off: the same bytes every time


def test_market_skips_failed_answers_and_respects_scripted_prices() -> None:
    with (
        SimulatedTmapi(seed=5, items=[EXAMPLE_ITEM_ID], market=True) as sim,
        httpx.Client(base_url=sim.base_url) as http,
    ):
        sim.fail(EXAMPLE_ITEM_ID, code=500, times=3)
        sim.set_mode(EXAMPLE_ITEM_ID, Mode.EMPTY_DATA)
        for _ in range(3):
            assert body(get(http, EXAMPLE_ITEM_ID))["code"] == 500
        assert body(get(http, EXAMPLE_ITEM_ID))["data"] == {}
        sim.set_mode(EXAMPLE_ITEM_ID, Mode.NORMAL)
        assert get(http, EXAMPLE_ITEM_ID).json()["data"] == EXAMPLE_FILE_DATA
        assert sim.market_moves() == []
        cut = get(http, EXAMPLE_ITEM_ID).json()["data"]  # the 2nd answer with data: a cut
        assert cut != EXAMPLE_FILE_DATA
        (move,) = sim.market_moves()
        assert move.kind == "price" and move.sku_id is not None
        sim.set_price(EXAMPLE_ITEM_ID, move.sku_id, "20.00")
        poll(http, EXAMPLE_ITEM_ID, 8)  # sold out, restock, tiers, promotion over
        truth = {s.sku_id: s.price for s in sim.truth(EXAMPLE_ITEM_ID).skus}
        assert truth[move.sku_id] == Decimal("20.00")  # the end of the promotion kept it
        assert sim.truth(EXAMPLE_ITEM_ID).tiers == tuple(
            (int(t["beginAmount"]), Decimal(t["price"]))
            for t in EXAMPLE_FILE_DATA["tiered_price_info"]["prices"]
        )


# ---------------------------------------------------------------- counters and HTTP details


def test_counters(sim: SimulatedTmapi, http: httpx.Client) -> None:
    for _ in range(3):
        get(http, EXAMPLE_ITEM_ID)
    get(http, "abc")
    assert sim.requests_total == 4
    assert sim.requests_for(EXAMPLE_ITEM_ID) == 3
    times = sim.request_times
    assert len(times) == 4 and times == sorted(times)
    assert sim.in_flight == 0 and sim.max_in_flight == 1
    sim.reset_counters()
    assert (sim.requests_total, sim.requests_for(EXAMPLE_ITEM_ID), sim.request_times) == (0, 0, [])


async def test_in_flight_counts_concurrent_requests(sim: SimulatedTmapi) -> None:
    sim.set_mode(None, Mode.SLOW, delay=0.05)
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        responses = await asyncio.gather(
            *(client.get("/1688/item_detail", params={"item_id": i}) for i in sim.item_ids)
        )
    assert all(r.status_code == 200 for r in responses)
    assert sim.max_in_flight == len(sim.item_ids)
    assert sim.in_flight == 0


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[bytes, bytes]:
    """Read one Content-Length response; return (head, body)."""
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end])
    match = re.search(rb"Content-Length: (\d+)", head)
    assert match is not None
    length = int(match.group(1))
    while len(buffer) < end + 4 + length:
        buffer += sock.recv(65536)
    payload = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return head, payload


def test_keep_alive_and_pipelining(sim: SimulatedTmapi) -> None:
    request = (
        f"GET /1688/item_detail?item_id={EXAMPLE_ITEM_ID} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as sock:
        sock.sendall(request * 3)
        buffer = bytearray()
        bodies = [read_response(sock, buffer)[1] for _ in range(3)]
        sock.sendall(request)
        bodies.append(read_response(sock, buffer)[1])
    assert len(set(bodies)) == 1
    assert json.loads(bodies[0])["code"] == 200
    assert sim.requests_total == 4


def test_http_1_0_and_connection_close_end_the_connection(sim: SimulatedTmapi) -> None:
    for request in (
        f"GET /1688/item_detail?item_id={EXAMPLE_ITEM_ID} HTTP/1.0\r\n\r\n",
        f"GET /1688/item_detail?item_id={EXAMPLE_ITEM_ID} HTTP/1.1\r\nConnection: close\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as sock:
            sock.sendall(request.encode())
            head, _ = read_response(sock, bytearray())
            assert b"Connection: close" in head
            assert sock.recv(1) == b""  # the server closed it


@pytest.mark.parametrize(
    "request_bytes",
    [b"NONSENSE\r\n\r\n", b"GET / SPDY/9\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"],
)
def test_malformed_requests_get_400(sim: SimulatedTmapi, request_bytes: bytes) -> None:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as sock:
        sock.sendall(request_bytes)
        head, _ = read_response(sock, bytearray())
    assert head.startswith(b"HTTP/1.1 400 ")


def test_lifecycle() -> None:
    sim = SimulatedTmapi(items=1)
    with pytest.raises(RuntimeError):
        _ = sim.base_url
    sim.start()
    assert sim.base_url == f"http://127.0.0.1:{sim.port}"
    assert "serving" in repr(sim)
    with pytest.raises(RuntimeError):
        sim.start()
    sim.stop()
    sim.stop()
    assert "stopped" in repr(sim)


def test_stop_with_a_request_in_progress() -> None:
    sim = SimulatedTmapi(items=1).start()
    sim.set_mode(None, Mode.DRIP, delay=0.05)
    sock = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    sock.sendall(f"GET /1688/item_detail?item_id={EXAMPLE_ITEM_ID} HTTP/1.1\r\n\r\n".encode())
    assert sock.recv(5) == b"HTTP/"
    sim.stop()
    sock.close()
    assert sim.in_flight == 0


def test_encode_writes_decimals_as_exact_numbers() -> None:
    value = {"a": Decimal("29.90"), "b": [Decimal("1"), "x", None, True, 0.5], "c": "中"}
    assert encode(value) == '{"a":29.90,"b":[1,"x",null,true,0.5],"c":"中"}'.encode()
    assert json.loads(encode(value), parse_float=Decimal)["a"] == Decimal("29.90")
