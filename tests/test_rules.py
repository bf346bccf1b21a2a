"""Table-driven tests of the alert rules: scenarios of polls with an injected clock."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.alerts.groups import failure_group, group
from monitor.alerts.model import Alert
from monitor.alerts.rules import RECOVERED, RuleState, evaluate, evaluate_failure
from monitor.alerts.state import SentAlert, SkuMemory
from monitor.diff import diff
from monitor.domain import Change, ChangeKind, Offer, Sku, Tier
from monitor.errors import StorageError
from monitor.watchlist.model import ChangeKind as K
from monitor.watchlist.model import Rules
from tests.rules_helpers import worked_out_in_full

D = Decimal
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
SkuSpec = str | tuple[str, int]


def sku(sku_id: str, price: str, stock: int = 100, name: str | None = None) -> Sku:
    return Sku(sku_id, None, name or f"SKU {sku_id}", D(price), stock, stock == 0)


def offer(*skus: Sku, tiers: Sequence[tuple[int, str]] = ()) -> Offer:
    prices = [s.price for s in skus]
    return Offer(
        item_id=652702302959,
        title="Leopard robe",
        currency="CNY",
        unit="件",
        url="https://detail.1688.com/offer/652702302959.html",
        image=None,
        shop_name="Shop",
        shop_url=None,
        sold_out=all(s.sold_out for s in skus),
        stock=sum(s.stock or 0 for s in skus),
        price_min=min(prices),
        price_max=max(prices),
        skus=skus,
        tiers=tuple(Tier(q, D(p)) for q, p in tiers),
    )


def poll(minute: float, **specs: SkuSpec) -> tuple[float, Offer]:
    """A poll ``minute`` minutes after T0 seeing SKUs ``id=price`` or ``id=(price, stock)``."""
    skus = [
        sku(sku_id, spec) if isinstance(spec, str) else sku(sku_id, spec[0], spec[1])
        for sku_id, spec in specs.items()
    ]
    return minute, offer(*skus)


Brief = tuple[object, ...]


def brief(alert: Alert) -> Brief:
    subject = alert.sku_id if alert.sku_id is not None else alert.min_qty
    return (alert.kind, subject, alert.old, alert.new)


def play(rules: Rules, polls: Sequence[tuple[float, Offer]]) -> list[list[Brief]]:
    """Run polls through diff + rules, storing the state as JSON between polls."""
    state: RuleState | None = None
    previous: Offer | None = None
    out = []
    for minute, current in polls:
        alerts, state = evaluate(
            rules, "robe", current, diff(previous, current), state, T0 + timedelta(minutes=minute)
        )
        state = RuleState.from_json(json.loads(json.dumps(state.to_json())))
        out.append([brief(a) for a in alerts])
        previous = current
    return out


def rules(*alert_on: K, **kw: object) -> Rules:
    return replace(Rules(), alert_on=alert_on, **kw)  # type: ignore[arg-type]


DROP, RISE = K.PRICE_DROP.value, K.PRICE_RISE.value

SCENARIOS: list[tuple[str, Rules, list[tuple[float, Offer]], list[list[Brief]]]] = [
    (
        "first sight is a baseline, whatever it shows",
        rules(*K, target_price=D("50"), low_stock=500),
        [poll(0, a="30", b=("20", 0))],
        [[]],
    ),
    (
        "any drop alerts without thresholds",
        rules(K.PRICE_DROP),
        [poll(0, a="30"), poll(10, a="29.99")],
        [[], [(DROP, "a", D("30"), D("29.99"))]],
    ),
    (
        "slow drift alerts once it adds up, then re-arms at the alerted price",
        rules(K.PRICE_DROP, price_drop_pct=D("5")),
        [
            poll(0, a="100"),
            poll(10, a="98"),
            poll(20, a="96"),
            poll(30, a="95"),  # exactly 5 % below the first price seen
            poll(40, a="93"),  # 2.1 % below the alerted 95
            poll(50, a="90.25"),  # exactly 5 % below 95
        ],
        [
            [],
            [],
            [],
            [(DROP, "a", D("100"), D("95"))],
            [],
            [(DROP, "a", D("95"), D("90.25"))],
        ],
    ),
    (
        "absolute threshold",
        rules(K.PRICE_DROP, price_drop_abs=D("2")),
        [poll(0, a="30"), poll(10, a="29"), poll(20, a="28"), poll(30, a="27")],
        [[], [], [(DROP, "a", D("30"), D("28"))], []],
    ),
    (
        "percent and absolute must both pass",
        rules(K.PRICE_DROP, price_drop_pct=D("10"), price_drop_abs=D("5")),
        [
            poll(0, a="100", b="10"),
            poll(10, a="94", b="8.50"),  # a: 6 % (pct fails); b: 15 % but ¥1.50 (abs fails)
            poll(20, a="89", b="1"),  # a: 11 % and ¥11; b: 90 % and ¥9
        ],
        [[], [], [(DROP, "a", D("100"), D("89")), (DROP, "b", D("10"), D("1"))]],
    ),
    (
        "rises with their own thresholds; drops not asked for are silent",
        rules(K.PRICE_RISE, price_rise_pct=D("10")),
        [
            poll(0, a="30"),
            poll(10, a="20"),
            poll(20, a="32"),
            poll(30, a="33.5"),
            poll(40, a="36.8"),  # 9.9 % above the alerted 33.5
            poll(50, a="36.85"),  # exactly 10 %
        ],
        [[], [], [], [(RISE, "a", D("30"), D("33.5"))], [], [(RISE, "a", D("33.5"), D("36.85"))]],
    ),
    (
        "a rise after a drop is measured from the price the user was told",
        rules(K.PRICE_DROP, K.PRICE_RISE),
        [poll(0, a="30"), poll(10, a="25"), poll(20, a="28")],
        [[], [(DROP, "a", D("30"), D("25"))], [(RISE, "a", D("25"), D("28"))]],
    ),
    (
        "target price alerts once per crossing, inclusive, re-armed above the target",
        rules(K.TARGET_PRICE, target_price=D("26")),
        [
            poll(0, a="30"),
            poll(10, a="25.90"),
            poll(20, a="25"),
            poll(30, a="27"),
            poll(40, a="26"),
        ],
        [
            [],
            [("target_price", "a", D("26"), D("25.90"))],
            [],
            [],
            [("target_price", "a", D("26"), D("26"))],
        ],
    ),
    (
        "a sold-out SKU at the target alerts once it can be bought again",
        rules(K.TARGET_PRICE, target_price=D("26")),
        [poll(0, a="30"), poll(10, a=("25", 0)), poll(20, a=("25", 7))],
        [[], [], [("target_price", "a", D("26"), D("25"))]],
    ),
    (
        "low stock alerts once per crossing (at or below), re-armed above",
        rules(K.LOW_STOCK, low_stock=10),
        [
            poll(0, a=("30", 100)),
            poll(10, a=("30", 50)),
            poll(20, a=("30", 10)),
            poll(30, a=("30", 5)),
            poll(40, a=("30", 20)),
            poll(50, a=("30", 8)),
        ],
        [[], [], [("low_stock", "a", 10, 10)], [], [], [("low_stock", "a", 10, 8)]],
    ),
    (
        "a SKU selling out says 'sold out', not also 'low stock'",
        rules(K.LOW_STOCK, K.SOLD_OUT, low_stock=10),
        [poll(0, a=("30", 100), b=("30", 100)), poll(10, a=("30", 0), b=("30", 3))],
        [[], [("sold_out", "a", 100, 0), ("low_stock", "b", 10, 3)]],
    ),
    (
        "the whole item selling out is one line",
        rules(K.LOW_STOCK, K.SOLD_OUT, low_stock=10),
        [poll(0, a=("30", 100), b=("30", 100)), poll(10, a=("30", 0), b=("30", 0))],
        [[], [("sold_out", None, 200, 0), ("sold_out", "a", 100, 0), ("sold_out", "b", 100, 0)]],
    ),
    (
        "alert_on filters kinds (the defaults: drop, sold out, back, tiers)",
        Rules(),
        [poll(0, a=("30", 100), b="20"), poll(10, a=("31", 90), b="19")],
        [[], [(DROP, "b", D("20"), D("19"))]],
    ),
    (
        "stock changes and back in stock map straight from the diff",
        rules(K.STOCK_CHANGE, K.BACK_IN_STOCK),
        [poll(0, a=("30", 0), b=("30", 5)), poll(10, a=("30", 4), b=("30", 3))],
        [[], [("back_in_stock", "a", 0, 4), ("stock_change", "b", 5, 3)]],
    ),
    (
        "cooldown holds a second drop back and sends it once the cooldown is over",
        rules(K.PRICE_DROP, cooldown=timedelta(hours=1)),
        [poll(0, a="30"), poll(10, a="25"), poll(20, a="20"), poll(69, a="20"), poll(70, a="20")],
        [[], [(DROP, "a", D("30"), D("25"))], [], [], [(DROP, "a", D("25"), D("20"))]],
    ),
    (
        "cooldown is per SKU",
        rules(K.PRICE_DROP, cooldown=timedelta(hours=1)),
        [poll(0, a="30", b="30"), poll(10, a="25", b="30"), poll(20, a="20", b="25")],
        [[], [(DROP, "a", D("30"), D("25"))], [(DROP, "b", D("30"), D("25"))]],
    ),
    (
        "flapping A -> B -> A -> B within the cooldown alerts once",
        rules(K.PRICE_DROP, K.PRICE_RISE, cooldown=timedelta(hours=1)),
        [
            poll(0, a="30"),
            poll(10, a="25"),
            poll(20, a="30"),
            poll(30, a="25"),
            poll(40, a="30"),
            poll(50, a="25"),
            poll(200, a="25"),
        ],
        [[], [(DROP, "a", D("30"), D("25"))], [], [], [], [], []],
    ),
    (
        "after flapping, the price it settled at is told once the cooldown is over",
        rules(K.PRICE_DROP, K.PRICE_RISE, cooldown=timedelta(hours=1)),
        [poll(0, a="30"), poll(10, a="25"), poll(20, a="30"), poll(80, a="30")],
        [[], [(DROP, "a", D("30"), D("25"))], [], [(RISE, "a", D("25"), D("30"))]],
    ),
    (
        "a rise past the old price is news, not flapping",
        rules(K.PRICE_DROP, K.PRICE_RISE, cooldown=timedelta(hours=1)),
        [poll(0, a="30"), poll(10, a="25"), poll(20, a="32")],
        [[], [(DROP, "a", D("30"), D("25"))], [(RISE, "a", D("25"), D("32"))]],
    ),
    (
        "sold out / back in stock flapping within the cooldown alerts once",
        rules(K.SOLD_OUT, K.BACK_IN_STOCK, cooldown=timedelta(minutes=30)),
        [
            poll(0, a=("30", 5), b=("30", 5)),
            poll(10, a=("30", 0), b=("30", 5)),
            poll(15, a=("30", 5), b=("30", 5)),
            poll(20, a=("30", 0), b=("30", 5)),
            poll(45, a=("30", 3), b=("30", 5)),
        ],
        [[], [("sold_out", "a", 5, 0)], [], [], [("back_in_stock", "a", 0, 3)]],
    ),
    (
        "no cooldown: every flap alerts",
        rules(K.PRICE_DROP, K.PRICE_RISE),
        [poll(0, a="30"), poll(1, a="25"), poll(2, a="30"), poll(3, a="25")],
        [
            [],
            [(DROP, "a", D("30"), D("25"))],
            [(RISE, "a", D("25"), D("30"))],
            [(DROP, "a", D("30"), D("25"))],
        ],
    ),
    (
        "cooldown holds a low-stock re-crossing back until it is over",
        rules(K.LOW_STOCK, low_stock=10, cooldown=timedelta(hours=1)),
        [
            poll(0, a=("30", 100)),
            poll(10, a=("30", 5)),
            poll(20, a=("30", 50)),
            poll(30, a=("30", 4)),
            poll(75, a=("30", 4)),
            poll(80, a=("30", 3)),
        ],
        [[], [("low_stock", "a", 10, 5)], [], [], [("low_stock", "a", 10, 4)], []],
    ),
    (
        "cooldown holds a target re-crossing back until it is over",
        rules(K.TARGET_PRICE, target_price=D("26"), cooldown=timedelta(hours=1)),
        [poll(0, a="30"), poll(10, a="25"), poll(20, a="27"), poll(30, a="25"), poll(75, a="25")],
        [
            [],
            [("target_price", "a", D("26"), D("25"))],
            [],
            [],
            [("target_price", "a", D("26"), D("25"))],
        ],
    ),
]


@pytest.mark.parametrize(
    ("rules_", "polls", "expected"),
    [pytest.param(r, p, e, id=name) for name, r, p, e in SCENARIOS],
)
def test_scenarios(
    rules_: Rules, polls: list[tuple[float, Offer]], expected: list[list[Brief]]
) -> None:
    assert play(rules_, polls) == expected


SKUS = {"503101": "red / M", "503102": "blue / M", "600001": "red / L"}


@pytest.mark.parametrize(
    ("patterns", "alerted"),
    [
        ((), ["503101", "503102", "600001"]),
        (("5031*",), ["503101", "503102"]),
        (("600001",), ["600001"]),
        (("red*",), ["503101", "600001"]),
        (("red / M", "blue*"), ["503101", "503102"]),
        (("nothing*",), []),
    ],
)
def test_skus_filter_by_glob_and_id(patterns: tuple[str, ...], alerted: list[str]) -> None:
    watch = rules(K.PRICE_DROP, K.TIER_CHANGE, K.SOLD_OUT, K.SKU_REMOVED, skus=patterns)
    before = offer(*(sku(i, "30", 5, n) for i, n in SKUS.items()), tiers=[(1, "30"), (100, "28")])
    after = offer(*(sku(i, "25", 0, n) for i, n in SKUS.items()), tiers=[(1, "30"), (100, "27")])
    _, state = evaluate(watch, None, before, [], None, T0)
    alerts, _ = evaluate(watch, None, after, diff(before, after), state, T0 + timedelta(hours=1))
    kinds = [(a.kind, a.sku_id) for a in alerts]
    # Item-level news is never filtered by skus.
    assert kinds[0] == ("sold_out", None)
    assert kinds[-1] == ("tier_change", None)
    assert [s for k, s in kinds if k == DROP] == alerted
    assert [s for k, s in kinds if k == "sold_out" and s] == alerted


def test_removed_and_added_skus() -> None:
    watch = rules(
        K.SKU_ADDED, K.SKU_REMOVED, K.TARGET_PRICE, K.PRICE_DROP, target_price=D("26"), skus=("a*",)
    )
    before = offer(sku("a1", "30"), sku("b1", "30"))
    after = offer(sku("a2", "25"), sku("b2", "25"))
    _, state = evaluate(watch, None, before, [], None, T0)
    alerts, state = evaluate(watch, None, after, diff(before, after), state, T0)
    # A new SKU's first price is its baseline (no drop), its thresholds are armed.
    assert [brief(a) for a in alerts] == [
        ("sku_added", "a2", None, D("25")),
        ("target_price", "a2", D("26"), D("25")),
        ("sku_removed", "a1", D("30"), None),
    ]
    assert set(state.skus) == {"a2", "b2"}


def test_unwatched_skus_start_quietly_when_watched_later() -> None:
    only_a = rules(K.PRICE_DROP, K.TARGET_PRICE, target_price=D("26"), skus=("a",))
    both = replace(only_a, skus=())
    first, second = offer(sku("a", "30"), sku("b", "30")), offer(sku("a", "30"), sku("b", "25"))
    _, state = evaluate(only_a, None, first, [], None, T0)
    alerts, state = evaluate(only_a, None, second, diff(first, second), state, T0)
    assert alerts == []
    alerts, _ = evaluate(both, None, second, [], state, T0 + timedelta(hours=1))
    assert alerts == []


def test_tier_changes_alert_with_their_quantity() -> None:
    before = offer(sku("a", "30"), tiers=[(1, "29.89"), (100, "27.60")])
    after = offer(sku("a", "30"), tiers=[(1, "29.89"), (100, "27.00"), (300, "25.90")])
    _, state = evaluate(Rules(), None, before, [], None, T0)
    alerts, _ = evaluate(Rules(), None, after, diff(before, after), state, T0)
    assert alerts == [
        Alert("tier_change", min_qty=100, old=D("27.60"), new=D("27.00"), pct=D("-2.2")),
        Alert("tier_change", min_qty=300, new=D("25.90")),
    ]


def test_price_alert_carries_name_and_rounded_percent() -> None:
    watch = rules(K.PRICE_DROP)
    first = offer(sku("a", "29.89", name="白色豹纹 / L"))
    second = offer(sku("a", "25.90", name="白色豹纹 / L"))
    _, state = evaluate(watch, None, first, [], None, T0)
    alerts, state = evaluate(watch, None, second, diff(first, second), state, T0)
    assert alerts == [
        Alert(
            "price_drop",
            sku_id="a",
            sku_name="白色豹纹 / L",
            old=D("29.89"),
            new=D("25.90"),
            pct=D("-13.3"),
        )
    ]
    assert state.skus["a"].baseline == D("25.90")


FAIL = rules(K.POLL_FAILING, K.PRICE_DROP, K.ITEM_UNAVAILABLE, K.ITEM_AVAILABLE, failing_after=3)


def fail_then_succeed(
    watch: Rules, failures: int, state: RuleState | None
) -> list[list[tuple[str, str | None]]]:
    out = []
    for n in range(1, failures + 1):
        alerts, state = evaluate_failure(watch, n, "timeout", state, T0 + timedelta(minutes=n))
        out.append([(a.kind, a.note) for a in alerts])
    for minute in (100, 200):
        alerts, state = evaluate(
            watch, None, offer(sku("a", "30")), [], state, T0 + timedelta(minutes=minute)
        )
        out.append([(a.kind, a.note) for a in alerts])
    return out


def seen() -> RuleState:
    return evaluate(FAIL, None, offer(sku("a", "30")), [], None, T0)[1]


def test_poll_failing_once_then_recovered_once() -> None:
    assert fail_then_succeed(FAIL, 5, seen()) == [
        [],
        [],
        [("poll_failing", "3 failed polls in a row: timeout")],
        [],
        [],
        [("poll_failing", RECOVERED)],
        [],
    ]


def test_short_failure_streak_is_silent() -> None:
    assert fail_then_succeed(FAIL, 2, seen()) == [[], [], [], []]


def test_poll_failing_not_in_alert_on_is_silent_and_never_recovers() -> None:
    assert fail_then_succeed(rules(K.PRICE_DROP), 4, seen()) == [[]] * 6


def test_failing_from_the_start_then_first_success_is_baseline_plus_recovered() -> None:
    watch = replace(
        FAIL, failing_after=1, target_price=D("50"), alert_on=(*FAIL.alert_on, K.TARGET_PRICE)
    )
    assert fail_then_succeed(watch, 1, None) == [
        [("poll_failing", "1 failed poll in a row: timeout")],
        [("poll_failing", RECOVERED)],
        [],
    ]


def test_failure_passes_item_unavailable_through() -> None:
    alerts, state = evaluate_failure(
        FAIL, 3, "TMAPI code 417", seen(), T0, changes=[Change(ChangeKind.ITEM_UNAVAILABLE)]
    )
    assert [(a.kind, a.note) for a in alerts] == [
        ("item_unavailable", None),
        ("poll_failing", "3 failed polls in a row: TMAPI code 417"),
    ]
    alerts, _ = evaluate(
        FAIL, None, offer(sku("a", "30")), [Change(ChangeKind.ITEM_AVAILABLE)], state, T0
    )
    assert [(a.kind, a.note) for a in alerts] == [
        ("poll_failing", RECOVERED),
        ("item_available", None),
    ]


def test_poll_failing_flapping_within_cooldown_alerts_once() -> None:
    watch = replace(FAIL, failing_after=1, cooldown=timedelta(hours=1))
    state = seen()
    kinds = []
    for minute in (0, 10, 20, 30):
        alerts, state = evaluate_failure(watch, 1, "timeout", state, T0 + timedelta(minutes=minute))
        kinds += [(a.kind, a.note) for a in alerts]
        alerts, state = evaluate(
            watch, None, offer(sku("a", "30")), [], state, T0 + timedelta(minutes=minute + 5)
        )
        kinds += [(a.kind, a.note) for a in alerts]
    assert kinds == [
        ("poll_failing", "1 failed poll in a row: timeout"),
        ("poll_failing", RECOVERED),
    ]


def test_evaluate_never_mutates_the_state_it_gets() -> None:
    watch = rules(K.PRICE_DROP, cooldown=timedelta(hours=1))
    state = seen()
    before = state.to_json()
    evaluate(watch, None, offer(sku("a", "20")), [], state, T0 + timedelta(minutes=1))
    assert state.to_json() == before


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(Rules(), None, offer(sku("a", "1")), [], None, datetime(2025, 1, 1))


def test_cooldown_memory_is_pruned() -> None:
    watch = rules(K.PRICE_DROP, cooldown=timedelta(hours=1))
    state = seen()
    _, state = evaluate(watch, None, offer(sku("a", "20")), [], state, T0 + timedelta(minutes=1))
    assert set(state.sent) == {"price_drop:sku:a"}
    _, state = evaluate(watch, None, offer(sku("a", "20")), [], state, T0 + timedelta(hours=2))
    assert state.sent == {}


# -- shortcuts: the same answers as the rules worked out in full -------------


def stored_text(state: RuleState) -> str:
    return json.dumps(state.to_json(), sort_keys=True)


def same_as_in_full(
    watch: Rules, current: Offer, changes: Sequence[Change], state: RuleState | None, now: datetime
) -> tuple[list[Alert], RuleState]:
    """``evaluate``, checked against the rules worked out in full."""
    alerts, new = evaluate(watch, None, current, changes, state, now)
    with worked_out_in_full():
        full_alerts, full = evaluate(watch, None, current, changes, state, now)
    assert alerts == full_alerts
    assert new == full
    assert stored_text(new) == stored_text(full)
    assert list(new.skus) == list(full.skus) or new is state
    return alerts, new


PRICES = ["9.5", "9.90", "10", "10.00", "10.10", "10.2", "11", "12", "20"]
SKU_IDS = ["a", "b", "c", "d"]
ALL_KINDS = list(K)


@st.composite
def skus_of(draw: st.DrawFn) -> list[Sku]:
    ids = draw(st.lists(st.sampled_from(SKU_IDS), min_size=1, max_size=4, unique=True))
    out = []
    for sku_id in ids:
        stock = draw(st.none() | st.integers(0, 15))
        sold_out = stock == 0 or draw(st.booleans()) if stock is not None else draw(st.booleans())
        name = draw(st.sampled_from([f"SKU {sku_id}", f"red / {sku_id}"]))
        out.append(Sku(sku_id, None, name, D(draw(st.sampled_from(PRICES))), stock, sold_out))
    return out


@st.composite
def rules_of(draw: st.DrawFn) -> Rules:
    money = st.none() | st.sampled_from([D("1"), D("5"), D("0.5"), D("10")])
    return Rules(
        alert_on=tuple(draw(st.lists(st.sampled_from(ALL_KINDS), unique=True))),
        price_drop_pct=draw(money),
        price_drop_abs=draw(money),
        price_rise_pct=draw(money),
        price_rise_abs=draw(money),
        target_price=draw(st.none() | st.sampled_from([D("10"), D("10.00"), D("11"), D("9")])),
        low_stock=draw(st.none() | st.integers(0, 10)),
        failing_after=draw(st.integers(1, 3)),
        skus=draw(st.sampled_from([(), ("a",), ("b*",), ("SKU c",), ("red*",), ("x",)])),
        cooldown=draw(st.sampled_from([timedelta(0), timedelta(minutes=30), timedelta(hours=2)])),
    )


@st.composite
def states_of(draw: st.DrawFn) -> RuleState:
    memories = {
        sku_id: SkuMemory(
            D(draw(st.sampled_from(PRICES))), draw(st.booleans()), draw(st.booleans())
        )
        for sku_id in draw(st.lists(st.sampled_from(SKU_IDS), unique=True))
    }
    keys = [f"{kind}:sku:{sku_id}" for kind in ALL_KINDS for sku_id in SKU_IDS]
    keys += ["sold_out", "back_in_stock", "tier_change:tier:100", "poll_failing"]
    values = st.none() | st.sampled_from([D("10"), D("10.00"), D("12"), 5])
    sent = {
        key: SentAlert(
            at=T0 + timedelta(minutes=draw(st.integers(0, 200))),
            old=draw(values),
            new=draw(values),
        )
        for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True))
    }
    return RuleState(
        seen=draw(st.booleans()), failing=draw(st.booleans()), skus=memories, sent=sent
    )


PROPERTY = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def tweaked(state: RuleState, draw: st.DrawFn) -> RuleState:
    """``state`` with at most one thing remembered differently."""
    skus, sent = dict(state.skus), dict(state.sent)
    tweak = draw(st.sampled_from(["none", "extra", "target", "low", "baseline", "sent", "fail"]))
    if tweak == "extra":
        skus[draw(st.sampled_from(SKU_IDS))] = SkuMemory(D(draw(st.sampled_from(PRICES))))
    elif tweak == "sent":
        at = T0 + timedelta(minutes=draw(st.integers(0, 500)))
        sent[draw(st.sampled_from(["sold_out", "stock_change:sku:a"]))] = SentAlert(at=at)
    elif tweak == "fail":
        return replace(state, failing=not state.failing)
    elif skus:
        sku_id = draw(st.sampled_from(sorted(skus)))
        memory = skus[sku_id]
        if tweak == "target":
            skus[sku_id] = replace(memory, at_target=not memory.at_target)
        elif tweak == "low":
            skus[sku_id] = replace(memory, low=not memory.low)
        elif tweak == "baseline":
            skus[sku_id] = replace(memory, baseline=D(draw(st.sampled_from(PRICES))))
    return RuleState(seen=state.seen, failing=state.failing, skus=skus, sent=sent)


@PROPERTY
@given(
    before=rules_of(),
    other=st.none() | rules_of(),
    made_up=st.none() | states_of(),
    previous=skus_of(),
    current=st.none() | skus_of(),
    minutes=st.integers(200, 500),
    data=st.data(),
)
def test_shortcuts_give_what_the_rules_give_in_full(
    before: Rules,
    other: Rules | None,
    made_up: RuleState | None,
    previous: list[Sku],
    current: list[Sku] | None,
    minutes: int,
    data: st.DataObject,
) -> None:
    """Random rules, memories and polls: every answer is the one of the rules in full.

    The state is made up, or what an earlier poll left (under the same rules
    or others), perhaps with one thing remembered differently. The poll sees
    the same offer (no changes, the usual case) or another one (with its
    changes).
    """
    now = T0 + timedelta(minutes=minutes)
    watch = before if other is None else other
    first = offer(*previous)
    state = made_up
    if data.draw(st.booleans()):
        with worked_out_in_full():
            _, state = evaluate(before, None, first, [], state, now - timedelta(minutes=10))
        state = tweaked(state, data.draw)
    polled = first if current is None else offer(*current)
    _, new = same_as_in_full(watch, polled, diff(first, polled), state, now)
    # The same poll again, at once and later (when cooldowns may be over).
    same_as_in_full(watch, polled, [], new, now + timedelta(minutes=1))
    same_as_in_full(watch, polled, [], new, now + timedelta(hours=3))
    # A poll that failed, with the state of either.
    for failures in (1, 3):
        for memory in (state, new):
            got = evaluate_failure(watch, failures, "timeout", memory, now)
            with worked_out_in_full():
                full = evaluate_failure(watch, failures, "timeout", memory, now)
            assert got == full
            assert stored_text(got[1]) == stored_text(full[1])


TARGET_ON = (K.TARGET_PRICE, K.PRICE_DROP)
LOW_ON = (K.LOW_STOCK, K.PRICE_DROP)
#: (why, rules, remembered (baseline, at_target, low), polled (price, stock, sold out), kept)
ONE_SKU: list[tuple[str, Rules, tuple[str, bool, bool], tuple[str, int | None, bool], bool]] = [
    ("same price", rules(K.PRICE_DROP), ("30", False, False), ("30", 5, False), True),
    (
        "same price, other digits",
        rules(K.PRICE_RISE),
        ("30", False, False),
        ("30.00", 5, False),
        True,
    ),
    (
        "no price alerts: digits follow",
        rules(K.SOLD_OUT),
        ("30", False, False),
        ("30.00", 5, False),
        False,
    ),
    ("no price alerts: price follows", rules(), ("30", False, False), ("29", 5, False), False),
    (
        "drop under threshold",
        rules(K.PRICE_DROP, price_drop_pct=D(5)),
        ("30", False, False),
        ("29", 5, False),
        True,
    ),
    (
        "drop past threshold",
        rules(K.PRICE_DROP, price_drop_pct=D(5)),
        ("30", False, False),
        ("28", 5, False),
        False,
    ),
    ("rise not asked for", rules(K.PRICE_DROP), ("30", False, False), ("31", 5, False), True),
    ("rise asked for", rules(K.PRICE_RISE), ("30", False, False), ("31", 5, False), False),
    (
        "above target, told",
        rules(*TARGET_ON, target_price=D(26)),
        ("30", True, False),
        ("30", 5, False),
        False,
    ),
    (
        "above target",
        rules(*TARGET_ON, target_price=D(26)),
        ("30", False, False),
        ("30", 5, False),
        True,
    ),
    (
        "at target, told",
        rules(*TARGET_ON, target_price=D(30)),
        ("30", True, False),
        ("30", 5, False),
        True,
    ),
    (
        "at target, sold out",
        rules(*TARGET_ON, target_price=D(30)),
        ("30", False, False),
        ("30", 0, True),
        True,
    ),
    (
        "at target, not told",
        rules(*TARGET_ON, target_price=D(30)),
        ("30", False, False),
        ("30", 5, False),
        False,
    ),
    (
        "target set, alert off: flag follows",
        rules(K.PRICE_DROP, target_price=D(30)),
        ("30", False, False),
        ("30", 5, False),
        False,
    ),
    (
        "target set, alert off: in step",
        rules(K.PRICE_DROP, target_price=D(30)),
        ("30", True, False),
        ("30", 5, False),
        True,
    ),
    ("no target: flag cleared", rules(*TARGET_ON), ("30", True, False), ("30", 5, False), False),
    ("low, told", rules(*LOW_ON, low_stock=5), ("30", False, True), ("30", 5, False), True),
    ("low, not told", rules(*LOW_ON, low_stock=5), ("30", False, False), ("30", 5, False), False),
    (
        "low, sold out, not told",
        rules(*LOW_ON, K.SOLD_OUT, low_stock=5),
        ("30", False, False),
        ("30", 0, True),
        False,
    ),
    ("stock back up", rules(*LOW_ON, low_stock=5), ("30", False, True), ("30", 6, False), False),
    ("stock unknown", rules(*LOW_ON, low_stock=5), ("30", False, True), ("30", None, False), True),
    ("no threshold: flag cleared", rules(*LOW_ON), ("30", False, True), ("30", 5, False), False),
    (
        "threshold, alert off: flag follows",
        rules(K.PRICE_DROP, low_stock=5),
        ("30", False, False),
        ("30", 5, False),
        False,
    ),
    (
        "threshold, alert off: in step",
        rules(K.PRICE_DROP, low_stock=5),
        ("30", False, True),
        ("30", 5, False),
        True,
    ),
    (
        "unwatched, in step",
        rules(*TARGET_ON, target_price=D(30), low_stock=5, skus=("b",)),
        ("30", True, True),
        ("30", 5, False),
        True,
    ),
    (
        "unwatched, target flag behind",
        rules(*TARGET_ON, target_price=D(30), skus=("b",)),
        ("30", False, False),
        ("30", 5, False),
        False,
    ),
    (
        "unwatched, low flag behind",
        rules(K.PRICE_DROP, low_stock=5, skus=("b",)),
        ("30", False, False),
        ("30", 5, False),
        False,
    ),
    (
        "unwatched, price behind",
        rules(K.PRICE_DROP, skus=("b",)),
        ("30", False, False),
        ("29", 5, False),
        False,
    ),
    (
        "unwatched, digits behind",
        rules(K.PRICE_DROP, skus=("b",)),
        ("30", False, False),
        ("30.00", 5, False),
        False,
    ),
    (
        "watched by name",
        rules(K.PRICE_DROP, skus=("SKU*",)),
        ("30", False, False),
        ("29", 5, False),
        False,
    ),
]


@pytest.mark.parametrize(
    ("why", "watch", "remembered", "polled", "kept"), ONE_SKU, ids=[case[0] for case in ONE_SKU]
)
def test_an_unchanged_poll_of_one_sku(
    why: str,
    watch: Rules,
    remembered: tuple[str, bool, bool],
    polled: tuple[str, int | None, bool],
    kept: bool,
) -> None:
    del why
    baseline, at_target, low = remembered
    price, stock, sold_out = polled
    state = RuleState(seen=True, skus={"a": SkuMemory(D(baseline), at_target, low)})
    current = offer(Sku("a", None, "SKU a", D(price), stock, sold_out))
    _, new = same_as_in_full(watch, current, [], state, T0)
    assert (new is state) is kept
    assert (new == state and stored_text(new) == stored_text(state)) is kept


def test_an_unchanged_poll_returns_the_very_same_state() -> None:
    watch = rules(
        K.PRICE_DROP, K.PRICE_RISE, K.TARGET_PRICE, K.LOW_STOCK, target_price=D("20"), low_stock=5
    )
    current = offer(sku("a", "30"), sku("b", "19", stock=3), sku("c", "25", stock=0))
    _, state = evaluate(watch, None, current, [], None, T0)
    for minute in (10, 20):
        alerts, again = evaluate(watch, None, current, [], state, T0 + timedelta(minutes=minute))
        assert alerts == [] and again is state


def test_a_changed_poll_that_changes_no_memory_returns_the_very_same_state() -> None:
    watch = rules(K.STOCK_CHANGE, K.PRICE_DROP)
    first, second = offer(sku("a", "30", stock=50)), offer(sku("a", "30", stock=40))
    _, state = evaluate(watch, None, first, [], None, T0)
    alerts, again = same_as_in_full(watch, second, diff(first, second), state, T0 + timedelta(1))
    assert [brief(a) for a in alerts] == [("stock_change", "a", 50, 40)]
    assert again is state


NOTHING_CHANGED: list[tuple[str, Rules, Rules, Offer, list[Brief]]] = [
    (
        "a target just added is checked against the current price",
        rules(K.PRICE_DROP),
        rules(K.PRICE_DROP, K.TARGET_PRICE, target_price=D("26")),
        offer(sku("a", "25"), sku("b", "30")),
        [("target_price", "a", D("26"), D("25"))],
    ),
    (
        "a low-stock threshold just added is checked against the current stock",
        rules(K.PRICE_DROP),
        rules(K.PRICE_DROP, K.LOW_STOCK, low_stock=10),
        offer(sku("a", "25", stock=4), sku("b", "30")),
        [("low_stock", "a", 10, 4)],
    ),
    (
        "a lowered price threshold lets a drop already seen through",
        rules(K.PRICE_DROP, price_drop_pct=D("50")),
        rules(K.PRICE_DROP, price_drop_pct=D("1")),
        offer(sku("a", "25")),
        [(DROP, "a", D("30"), D("25"))],
    ),
    (
        "price alerts just turned on measure from the price already remembered",
        rules(K.SOLD_OUT),
        rules(K.PRICE_RISE),
        offer(sku("a", "25")),
        [],
    ),
    (
        "a SKU no longer watched follows the offer quietly",
        rules(K.PRICE_DROP, K.TARGET_PRICE, target_price=D("26")),
        rules(K.PRICE_DROP, K.TARGET_PRICE, target_price=D("26"), skus=("b",)),
        offer(sku("a", "25"), sku("b", "30")),
        [],
    ),
    (
        "a SKU watched again starts from the offer as it is",
        rules(K.PRICE_DROP, skus=("b",)),
        rules(K.PRICE_DROP),
        offer(sku("a", "25"), sku("b", "30")),
        [],
    ),
]


@pytest.mark.parametrize(
    ("why", "before", "watch", "current", "expected"),
    NOTHING_CHANGED,
    ids=[case[0] for case in NOTHING_CHANGED],
)
def test_an_unchanged_poll_still_applies_the_rules_as_they_are_now(
    why: str, before: Rules, watch: Rules, current: Offer, expected: list[Brief]
) -> None:
    del why
    first = offer(sku("a", "30"), sku("b", "30"))
    _, state = evaluate(before, None, first, [], None, T0)
    _, state = evaluate(before, None, current, diff(first, current), state, T0 + timedelta(1))
    alerts, _ = same_as_in_full(watch, current, [], state, T0 + timedelta(2))
    assert [brief(a) for a in alerts] == expected


def test_an_unchanged_poll_still_recovers_and_prunes() -> None:
    watch = replace(FAIL, cooldown=timedelta(hours=1))
    current = offer(sku("a", "30"))
    state = seen()
    _, failing = evaluate_failure(watch, 3, "timeout", state, T0 + timedelta(minutes=1))
    assert failing.failing and set(failing.sent) == {"poll_failing"}
    alerts, state = same_as_in_full(watch, current, [], failing, T0 + timedelta(minutes=2))
    assert [(a.kind, a.note) for a in alerts] == [("poll_failing", RECOVERED)]
    assert not state.failing and set(state.sent) == {"poll_failing"}
    _, pruned = same_as_in_full(watch, current, [], state, T0 + timedelta(hours=2))
    assert pruned.sent == {}


def test_a_baseline_written_differently_is_rewritten_as_the_offer_writes_it() -> None:
    # Without price alerts the baseline follows the price, digit for digit.
    watch = rules(K.SOLD_OUT)
    state = RuleState(seen=True, skus={"a": SkuMemory(D("30"))})
    _, new = same_as_in_full(watch, offer(sku("a", "30.00")), [], state, T0)
    assert str(new.skus["a"].baseline) == "30.00"
    # With them, an equal price is no move and the baseline stays as told.
    _, kept = same_as_in_full(rules(K.PRICE_DROP), offer(sku("a", "30.00")), [], state, T0)
    assert kept is state


def test_a_sent_alert_replacing_an_expired_one_is_remembered() -> None:
    watch = rules(K.STOCK_CHANGE, cooldown=timedelta(hours=1))
    first, second = offer(sku("a", "30", stock=50)), offer(sku("a", "30", stock=40))
    _, state = evaluate(watch, None, first, [], None, T0)
    state = replace(state, sent={"sold_out": SentAlert(at=T0)})
    now = T0 + timedelta(hours=2)
    alerts, new = same_as_in_full(watch, second, diff(first, second), state, now)
    assert [brief(a) for a in alerts] == [("stock_change", "a", 50, 40)]
    assert set(new.sent) == {"stock_change:sku:a"}


def test_a_sku_remembered_but_no_longer_offered_is_forgotten() -> None:
    state = RuleState(seen=True, skus={"a": SkuMemory(D("30")), "b": SkuMemory(D("30"))})
    _, new = same_as_in_full(rules(K.PRICE_DROP), offer(sku("a", "30")), [], state, T0)
    assert set(new.skus) == {"a"}


def test_an_offer_listing_a_sku_twice_keeps_one_memory() -> None:
    watch = rules(K.PRICE_DROP)
    state = RuleState(seen=True, skus={"a": SkuMemory(D("30")), "b": SkuMemory(D("30"))})
    _, new = same_as_in_full(watch, offer(sku("a", "30"), sku("a", "30")), [], state, T0)
    assert set(new.skus) == {"a"}


# -- state JSON --------------------------------------------------------------


def test_state_json_round_trip_is_exact() -> None:
    state = RuleState(
        seen=True,
        failing=True,
        skus={
            "5674557541674": SkuMemory(baseline=D("25.90"), at_target=True),
            "x": SkuMemory(baseline=D("0.015"), low=True),
        },
        sent={
            "price_drop:sku:x": SentAlert(at=T0, old=D("30.00"), new=D("25.90")),
            "low_stock:sku:x": SentAlert(at=T0 + timedelta(seconds=1), old=10, new=3),
            "sold_out": SentAlert(at=T0),
        },
    )
    text = json.dumps(state.to_json())
    back = RuleState.from_json(json.loads(text))
    assert back == state
    assert str(back.skus["5674557541674"].baseline) == "25.90"
    assert isinstance(back.sent["low_stock:sku:x"].new, int)
    assert json.loads(text)["skus"]["x"]["baseline"] == "0.015"


def test_state_is_read_only() -> None:
    state = RuleState(skus={"a": SkuMemory(D("1"))})
    with pytest.raises(TypeError):
        state.skus["b"] = SkuMemory(D("2"))  # type: ignore[index]


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"version": 2},
        [],
        {"version": 1, "skus": {"a": {"baseline": 1.5}}},
        {"version": 1, "skus": {"a": {"baseline": "abc"}}},
        {"version": 1, "skus": {"a": {}}},
        {"version": 1, "sent": {"k": {"at": "yesterday"}}},
        {"version": 1, "seen": "yes"},
        {"version": 1, "sent": {"k": {"at": T0.isoformat(), "old": True}}},
    ],
)
def test_bad_state_json_is_a_storage_error(data: object) -> None:
    with pytest.raises(StorageError, match="rule state"):
        RuleState.from_json(data)  # type: ignore[arg-type]


# -- groups ------------------------------------------------------------------


def test_group_is_none_without_alerts_and_describes_the_offer() -> None:
    current = offer(sku("a", "30"))
    assert group("robe", current, [], T0) is None
    built = group("robe", current, [Alert("sold_out")], T0)
    assert built is not None
    assert (built.item_id, built.name, built.title, built.url, built.shop, built.detected_at) == (
        652702302959,
        "robe",
        "Leopard robe",
        "https://detail.1688.com/offer/652702302959.html",
        "Shop",
        T0,
    )


def test_failure_group_without_a_known_offer() -> None:
    alert = Alert("poll_failing", note="3 failed polls in a row: timeout")
    assert failure_group(42, None, None, [], T0) is None
    built = failure_group(42, None, None, [alert], T0)
    assert built is not None
    assert (built.title, built.url, built.label) == (
        "1688 offer 42",
        "https://detail.1688.com/offer/42.html",
        "1688 offer 42",
    )
    named = failure_group(42, "robe", None, [alert], T0)
    assert named is not None and named.title == "robe"
    known = failure_group(42, "robe", offer(sku("a", "1")), [alert], T0)
    assert known is not None and known.title == "Leopard robe" and known.alerts == (alert,)
