"""Tests of the watchlist format: loading, validation messages, merging, secrets."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import threading
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.domain import ChangeKind
from monitor.durations import format_duration, parse_duration
from monitor.errors import ConfigError
from monitor.watchlist import load as watchlist_module
from monitor.watchlist.load import (
    ENV_OVERRIDES,
    apply_env_overrides,
    load_watchlist,
    parse_watchlist,
)
from monitor.watchlist.model import (
    Item,
    QuietHours,
    Rules,
    Settings,
    Target,
    Watchlist,
    WatchlistError,
    watched_items,
)
from monitor.watchlist.summary import summarize
from monitor.watchlist.urls import apprise_quietly, privacy_url

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "watchlist.example.toml"

# Values shaped like the real thing, so apprise accepts the URLs built from them.
SLACK_A = "T0SECRETA1"
SLACK_B = "B0SECRETB2"
SLACK_C = "slacksecretwebhooktokenC3"
SMTP_PASS = "hunter2-smtp-password"
ENV = {
    "SLACK_A": SLACK_A,
    "SLACK_B": SLACK_B,
    "SLACK_C": SLACK_C,
    "SMTP_USER": "monitor",
    "SMTP_PASS": SMTP_PASS,
    "EMPTY": "",
}
SECRETS = (SLACK_A, SLACK_B, SLACK_C, SMTP_PASS)

TARGETS = """
[targets]
deals = "slack://${SLACK_A}/${SLACK_B}/${SLACK_C}/#deals"
buyer = "mailtos://${SMTP_USER}:${SMTP_PASS}@smtp.example.com?to=buyer@example.com"
"""

BRIEF_EXAMPLE = (
    """
[settings]
max_concurrency = 8
max_requests_per_second = 5
"""
    + TARGETS
    + """
[defaults]
interval = "30m"
language = "en"
notify = ["deals"]
alert_on = ["price_drop", "sold_out", "back_in_stock", "tier_change"]
price_drop_pct = 3

[[items]]
id = 652702302959
name = "Leopard robe"
interval = "10m"
notify = ["deals", "buyer"]
"""
)


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record register_secret calls instead of filling the process-wide registry."""
    calls: list[str] = []
    monkeypatch.setattr(watchlist_module, "register_secret", calls.append)
    return calls


def parse(text: str, env: dict[str, str] | None = None) -> Watchlist:
    return parse_watchlist(text, path="watchlist.toml", env=ENV if env is None else env)


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(WatchlistError) as caught:
        parse(text, env)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def item(body: str) -> str:
    """A watchlist with the standard targets and one item made of ``body``."""
    return TARGETS + "\n[[items]]\n" + body


# --------------------------------------------------------------------------- errors

BAD_INPUTS = [
    # (case id, TOML text, the one problem line expected)
    (
        "bad interval",
        TARGETS
        + '[[items]]\nid = 1\n[[items]]\nid = 2\n[[items]]\nid = 652702302959\ninterval = "10x"',
        'watchlist.toml: items[2] (id 652702302959): interval: "10x" is not a duration '
        "(use 30s, 15m, 6h or 1d)",
    ),
    ("toml syntax", "interval = ", "watchlist.toml: not valid TOML: Invalid value"),
    (
        "toml duplicate key",
        "[settings]\njitter = 0.1\njitter = 0.2",
        "watchlist.toml: not valid TOML",
    ),
    (
        "unknown top-level",
        "[item]\nid = 1",
        'watchlist.toml: top level: unknown key "item" (did you mean "items"?)',
    ),
    (
        "unknown settings key",
        "[settings]\nmax_concurency = 3",
        'watchlist.toml: settings: unknown key "max_concurency" (did you mean "max_concurrency"?)',
    ),
    (
        "unknown item key",
        item('id = 1\nintervall = "5m"'),
        'watchlist.toml: items[0] (id 1): unknown key "intervall" (did you mean "interval"?)',
    ),
    (
        "settings key in item",
        item("id = 1\nmax_concurrency = 2"),
        'items[0] (id 1): unknown key "max_concurrency" (it belongs in [settings])',
    ),
    (
        "url in item",
        item('id = 1\nurl = "https://detail.1688.com/offer/1.html"'),
        'items[0] (id 1): unknown key "url" (write the offer URL as id = ',
    ),
    (
        "item key in defaults",
        "[defaults]\nid = 5",
        'watchlist.toml: defaults: unknown key "id" (it belongs in [[items]])',
    ),
    (
        "unknown target key",
        '[targets.ops]\nurl = "json://localhost"\ncolour = "red"',
        'watchlist.toml: targets.ops: unknown key "colour"',
    ),
    (
        "settings not a table",
        "settings = 3",
        "watchlist.toml: settings: must be a table, written [settings] (not 3)",
    ),
    (
        "items not an array",
        "[items]\nid = 1",
        "watchlist.toml: items: must be a list of tables, each written [[items]]",
    ),
    (
        "item not a table",
        'items = ["652702302959"]',
        'watchlist.toml: items[0]: "652702302959" is not a table (write [[items]])',
    ),
    (
        "duplicate ids",
        TARGETS + '[[items]]\nid = 652702302959\n[[items]]\nid = "652702302959"',
        "watchlist.toml: items[1] (id 652702302959): id: 652702302959 is already listed as "
        "items[0]",
    ),
    (
        "duplicate ids via URL",
        TARGETS + '[[items]]\nid = 5\n[[items]]\nid = "https://detail.1688.com/offer/5.html"',
        "items[1] (id 5): id: 5 is already listed as items[0]",
    ),
    ("missing id", item('name = "x"'), "watchlist.toml: items[0]: id: missing"),
    (
        "bad id string",
        item('id = "abc"'),
        'items[0]: id: "abc" is not a 1688 offer id or offer URL (like 652702302959 or ',
    ),
    ("zero id", item("id = 0"), "items[0]: id: 0 is not a valid offer id"),
    ("negative id", item("id = -5"), "items[0]: id: -5 is not a valid offer id"),
    ("boolean id", item("id = true"), "items[0]: id: true is not a 1688 offer id"),
    ("float id", item("id = 652702302959.0"), "items[0]: id: 652702302959.0 is not a 1688"),
    ("huge id", item("id = 99999999999999999999"), "is not a valid offer id"),
    (
        "other site's URL",
        item('id = "https://item.taobao.com/offer/5.html"'),
        'id: "https://item.taobao.com/offer/5.html" is not a 1688 offer id',
    ),
    ("empty name", item('id = 1\nname = "  "'), "items[0] (id 1): name: must not be empty"),
    ("name not a string", item("id = 1\nname = 5"), "items[0] (id 1): name: 5 is not a string"),
    (
        "undefined target in item",
        item('id = 1\nnotify = ["ops"]'),
        'items[0] (id 1): notify: "ops" is not a defined target (defined: deals, buyer)',
    ),
    (
        "misspelt target in defaults",
        TARGETS + '[defaults]\nnotify = ["dels"]',
        'watchlist.toml: defaults: notify: "dels" is not a defined target (did you mean "deals"?)',
    ),
    (
        "notify without targets",
        '[defaults]\nnotify = ["deals"]',
        '"deals" is not a defined target (defined: none: add a [targets] table)',
    ),
    (
        "notify not a list",
        TARGETS + '[defaults]\nnotify = "deals"',
        'defaults: notify: "deals" is not a list of strings (like ["a", "b"])',
    ),
    (
        "unset variable",
        '[targets]\ndeals = "slack://${SLACK_A}/${NOPE}/${SLACK_C}/#deals"',
        "watchlist.toml: targets.deals: url: ${NOPE} is not set in the environment",
    ),
    (
        "several unset variables",
        '[targets]\ndeals = "slack://${NOPE1}/${NOPE2}/x/#deals"',
        "targets.deals: url: ${NOPE1}, ${NOPE2} are not set in the environment",
    ),
    (
        "empty variable",
        '[targets]\ndeals = "slack://${EMPTY}/${SLACK_B}/${SLACK_C}/#deals"',
        "targets.deals: url: ${EMPTY} is set but empty",
    ),
    (
        "malformed variable",
        '[targets]\ndeals = "slack://${SLACK A}/x/y"',
        'targets.deals: url: "${" must start a variable like ${SLACK_TOKEN} (write $${ for a',
    ),
    (
        "unknown apprise scheme",
        '[targets]\npager = "foo://bar"',
        'watchlist.toml: targets.pager: url: "foo://" is not a service apprise knows',
    ),
    (
        "apprise rejects URL",
        '[targets]\ndeals = "slack://${SLACK_A}"',
        "targets.deals: url: apprise does not accept this slack:// URL (check its form at",
    ),
    (
        "two URLs in one",
        '[targets]\ndeals = "json://localhost/a, json://localhost/b"',
        "targets.deals: url: apprise does not accept this json:// URL",
    ),
    (
        "unknown scheme from a variable",
        '[targets]\ndeals = "${SLACK_C}://x"',
        "targets.deals: url: its scheme is not a service apprise knows",
    ),
    (
        "variable in the rejected URL",
        '[targets]\ndeals = "slack://${SLACK_A}"',
        "targets.deals: url: apprise does not accept this slack:// URL",
    ),
    ("no scheme", '[targets]\nx = "localhost"', "targets.x: url: not an apprise URL (it needs"),
    ("empty url", '[targets]\nx = ""', "watchlist.toml: targets.x: url: must not be empty"),
    ("missing url", '[targets.x]\nformat = "text"', "watchlist.toml: targets.x: url: missing"),
    (
        "url not a string",
        "[targets.x]\nurl = 5",
        "targets.x: url: must be a string (the apprise URL), not a number",
    ),
    (
        "target neither string nor table",
        "[targets]\nx = 5",
        'targets.x: must be an apprise URL or a table with url = "…", not a number',
    ),
    (
        "bad target name",
        '[targets]\n"my target" = "json://localhost"',
        'targets."my target": a target name may use only letters, digits, _ and -',
    ),
    (
        "bad timezone",
        '[targets.ops]\nurl = "json://localhost"\ntimezone = "Asia/Shanghia"',
        'targets.ops: timezone: "Asia/Shanghia" is not a known IANA time zone',
    ),
    (
        "path as timezone",
        '[targets.ops]\nurl = "json://localhost"\ntimezone = "../../etc/passwd"',
        'targets.ops: timezone: "../../etc/passwd" is not a known IANA time zone',
    ),
    (
        "bad quiet hours",
        '[targets.ops]\nurl = "json://localhost"\nquiet_hours = "10pm-8am"',
        'targets.ops: quiet_hours: "10pm-8am" is not a time range (use "HH:MM-HH:MM"',
    ),
    (
        "empty quiet hours",
        '[targets.ops]\nurl = "json://localhost"\nquiet_hours = "22:00-22:00"',
        'quiet_hours: "22:00-22:00" is empty (start and end are the same)',
    ),
    (
        "bad digest",
        '[targets.ops]\nurl = "json://localhost"\ndigest = "24:00"',
        'targets.ops: digest: "24:00" is not a time of day (use "HH:MM", like "09:00")',
    ),
    (
        "digest with offset",
        '[targets.ops]\nurl = "json://localhost"\ndigest = 1979-05-27T07:32:00Z',
        "targets.ops: digest: 1979-05-27 07:32:00+00:00 is not a time of day",
    ),
    (
        "bad format",
        '[targets.ops]\nurl = "json://localhost"\nformat = "rtf"',
        'targets.ops: format: "rtf" is not one of markdown, text, html',
    ),
    (
        "unknown template field",
        '[targets.ops]\nurl = "json://localhost"\ntemplate = "{title} {price}"',
        "targets.ops: template: {price} is not a template field (use {title}, {url}, {shop}, "
        "{changes}, {item_id}, {name}, {count})",
    ),
    (
        "template attribute access",
        '[targets.ops]\nurl = "json://localhost"\ntemplate = "{title.__class__}"',
        "template: {title.__class__} is not a template field",
    ),
    (
        "positional template field",
        '[targets.ops]\nurl = "json://localhost"\ntemplate = "{} {0}"',
        "template: {} is not a template field",
    ),
    (
        "unbalanced template",
        '[targets.ops]\nurl = "json://localhost"\ntemplate = "{title"',
        "template: not a valid template (expected '}' before end of string; write {{ and }}",
    ),
    (
        "template format spec for the wrong type",
        '[targets.ops]\nurl = "json://localhost"\ntemplate = "{title:d}"',
        "template: not a valid template (Unknown format code 'd'",
    ),
    (
        "template huge width",
        '[targets.ops]\nurl = "json://localhost"\ntemplate = "{title:>999999999}"',
        "template: {title:>999999999} has an unsupported format spec",
    ),
    (
        "settings wrong type",
        '[settings]\nmax_concurrency = "8"',
        'watchlist.toml: settings: max_concurrency: "8" is not a whole number (need 1 or more)',
    ),
    (
        "settings zero concurrency",
        "[settings]\nmax_concurrency = 0",
        "settings: max_concurrency: 0 is too small (need 1 or more)",
    ),
    (
        "settings zero rate",
        "[settings]\nmax_requests_per_second = 0",
        "settings: max_requests_per_second: 0 is too small (must be more than 0)",
    ),
    (
        "settings infinite rate",
        "[settings]\nmax_requests_per_second = inf",
        "settings: max_requests_per_second: inf is not a finite number",
    ),
    ("jitter too big", "[settings]\njitter = 0.6", "settings: jitter: 0.6 is too large (must be"),
    ("jitter nan", "[settings]\njitter = nan", "settings: jitter: nan is not a finite number"),
    ("jitter negative", "[settings]\njitter = -0.1", "settings: jitter: -0.1 is too small"),
    (
        "unavailable_after zero",
        "[settings]\nunavailable_after = 0",
        "settings: unavailable_after: 0 is too small (need 1 or more)",
    ),
    (
        "dead_after not a duration",
        '[settings]\ndead_after = "forever"',
        'settings: dead_after: "forever" is not a duration',
    ),
    ("bad scene", '[settings]\nscene = "retail"', 'settings: scene: "retail" is not one of drop_'),
    (
        "optimize_title string",
        '[settings]\noptimize_title = "yes"',
        'settings: optimize_title: "yes" is not true or false',
    ),
    (
        "bad language",
        '[defaults]\nlanguage = "fr"',
        'defaults: language: "fr" is not one of en, zh, ru, th, pt, es, tr, vi, ja, ko',
    ),
    (
        "misspelt alert kind",
        '[defaults]\nalert_on = ["price_dorp"]',
        'defaults: alert_on: "price_dorp" is not an alert kind (did you mean "price_drop"?)',
    ),
    (
        "unknown alert kind",
        '[defaults]\nalert_on = ["everything"]',
        'alert_on: "everything" is not an alert kind (use price_drop, price_rise,',
    ),
    (
        "negative percentage",
        "[defaults]\nprice_drop_pct = -1",
        "defaults: price_drop_pct: -1 must not be negative",
    ),
    (
        "drop over 100 %",
        "[defaults]\nprice_drop_pct = 150",
        "defaults: price_drop_pct: 150 is too large (at most 100)",
    ),
    (
        "amount not a number",
        '[defaults]\nprice_rise_abs = "cheap"',
        'defaults: price_rise_abs: "cheap" is not a number',
    ),
    (
        "amount infinite",
        "[defaults]\nprice_drop_abs = inf",
        "defaults: price_drop_abs: inf is not a finite number",
    ),
    ("amount boolean", "[defaults]\nprice_rise_pct = true", "price_rise_pct: true is not a number"),
    ("zero target price", item("id = 1\ntarget_price = 0"), "target_price: 0 must be more than 0"),
    ("negative low_stock", "[defaults]\nlow_stock = -1", "low_stock: -1 is too small (need 0 or"),
    ("float low_stock", "[defaults]\nlow_stock = 1.5", "low_stock: 1.5 is not a whole number"),
    ("zero failing_after", "[defaults]\nfailing_after = 0", "failing_after: 0 is too small"),
    (
        "skus not strings",
        "[defaults]\nskus = [1, 2]",
        "skus: [1, 2] is not a list of strings (like",
    ),
    ("skus empty string", '[defaults]\nskus = [""]', 'skus: [""] contains an empty string'),
    ("negative cooldown", "[defaults]\ncooldown = -5", "cooldown: -5 is not a duration"),
    ("enabled as int", "[defaults]\nenabled = 1", "defaults: enabled: 1 is not true or false"),
    ("interval zero", item("id = 1\ninterval = 0"), "interval: 0 is too short (at least 1s)"),
    ("interval 0s", item('id = 1\ninterval = "0s"'), 'interval: "0s" is too short (at least 1s)'),
    ("interval too long", item('id = 1\ninterval = "400d"'), 'interval: "400d" is too long (at'),
    ("interval upper case", item('id = 1\ninterval = "1H"'), 'interval: "1H" is not a duration'),
    ("interval float", item("id = 1\ninterval = 1.5"), "interval: 1.5 is not a duration"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_has_one_clear_message(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    assert expected in problems[0]
    assert problems[0].startswith("watchlist.toml: ")


def test_the_message_from_the_format_description_is_exact() -> None:
    text = TARGETS + "[[items]]\nid = 1\n[[items]]\nid = 2\n[[items]]\n"
    text += 'id = 652702302959\ninterval = "10x"\n'
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert str(caught.value) == (
        'watchlist.toml: items[2] (id 652702302959): interval: "10x" is not a duration '
        "(use 30s, 15m, 6h or 1d)"
    )


def test_every_problem_is_reported_once_one_per_line() -> None:
    text = """
[settings]
jitter = 2
bogus = 1
[targets]
deals = "slack://${NOPE}/b/c/#x"
[defaults]
notify = ["deals"]
[[items]]
id = 1
interval = "soon"
[[items]]
id = 1
notify = ["deals", "nobody"]
"""
    assert problems_of(text) == [
        "watchlist.toml: settings: jitter: 2 is too large (must be 0.5 or less)",
        'watchlist.toml: settings: unknown key "bogus"',
        "watchlist.toml: targets.deals: url: ${NOPE} is not set in the environment",
        'watchlist.toml: items[0] (id 1): interval: "soon" is not a duration '
        "(use 30s, 15m, 6h or 1d)",
        "watchlist.toml: items[1] (id 1): id: 1 is already listed as items[0]",
        'watchlist.toml: items[1] (id 1): notify: "nobody" is not a defined target '
        "(defined: deals)",
    ]


def test_a_target_that_failed_its_checks_is_not_also_undefined() -> None:
    # "deals" is reported once, for its URL, not again by every notify naming it.
    problems = problems_of('[targets]\ndeals = "foo://x"\n[[items]]\nid = 1\nnotify = ["deals"]')
    assert problems == [
        'watchlist.toml: targets.deals: url: "foo://" is not a service apprise knows '
        "(see https://github.com/caronc/apprise/wiki)"
    ]


def test_messages_name_the_path_as_given() -> None:
    with pytest.raises(WatchlistError, match=r"^/etc/monitor/wl\.toml: settings: jitter: "):
        parse_watchlist("[settings]\njitter = 1", path="/etc/monitor/wl.toml", env={})


def test_control_characters_in_values_stay_on_one_line() -> None:
    problems = problems_of('[defaults]\ninterval = "1h\\n2h"')
    assert problems == [
        'watchlist.toml: defaults: interval: "1h\\u000a2h" is not a duration '
        "(use 30s, 15m, 6h or 1d)"
    ]


# --------------------------------------------------------------------------- files


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "watchlist.toml"
    with pytest.raises(ConfigError, match=r"watchlist\.toml: file not found$"):
        load_watchlist(path, env={})


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory, not a file"):
        load_watchlist(tmp_path, env={})


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "watchlist.toml"
    path.write_bytes(b'[defaults]\nlanguage = "\xff"\n')
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(bad byte at offset 23\)"):
        load_watchlist(path, env={})


def test_file_with_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "watchlist.toml"
    path.write_bytes("\ufeff[[items]]\nid = 7\n".encode())
    loaded = load_watchlist(path, env={})
    assert loaded.path == path
    assert [i.id for i in loaded.items] == [7]


# --------------------------------------------------------------------------- values


def test_brief_example_parses_into_typed_objects() -> None:
    loaded = parse(BRIEF_EXAMPLE)
    assert loaded.settings == Settings(max_concurrency=8, max_requests_per_second=5.0)
    assert list(loaded.targets) == ["deals", "buyer"]
    (robe,) = loaded.items
    assert robe == Item(
        id=652702302959,
        name="Leopard robe",
        rules=Rules(
            interval=timedelta(minutes=10),
            language="en",
            notify=("deals", "buyer"),
            alert_on=(
                ChangeKind.PRICE_DROP,
                ChangeKind.SOLD_OUT,
                ChangeKind.BACK_IN_STOCK,
                ChangeKind.TIER_CHANGE,
            ),
            price_drop_pct=Decimal("3"),
        ),
    )
    assert loaded.defaults.interval == timedelta(minutes=30)
    assert loaded.warnings == ()


def test_targets_mapping_is_read_only() -> None:
    loaded = parse(BRIEF_EXAMPLE)
    with pytest.raises(TypeError):
        loaded.targets["x"] = loaded.targets["deals"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.items[0].rules.interval = timedelta(0)  # type: ignore[misc]


def test_item_keys_override_defaults_key_by_key() -> None:
    text = (
        TARGETS
        + """
[defaults]
interval = "30m"
language = "zh"
notify = ["deals"]
price_drop_pct = 3
skus = ["A*"]
cooldown = "1h"

[[items]]
id = 1
language = "en"
notify = ["buyer"]

[[items]]
id = 2
price_drop_pct = 0
enabled = false
"""
    )
    loaded = parse(text)
    first, second = loaded.items
    assert first.rules == Rules(
        interval=timedelta(minutes=30),
        language="en",
        notify=("buyer",),  # lists are replaced, not merged
        price_drop_pct=Decimal(3),
        skus=("A*",),
        cooldown=timedelta(hours=1),
    )
    assert second.rules.language == "zh"
    assert second.rules.notify == ("deals",)
    assert second.rules.price_drop_pct == Decimal(0)
    assert second.rules.enabled is False
    assert watched_items(loaded) == (first,)
    assert loaded.item(2) is second
    assert loaded.item(3) is None
    assert loaded.targets_of(first) == (loaded.targets["buyer"],)


def test_built_in_defaults_apply_without_defaults_table() -> None:
    loaded = parse("[[items]]\nid = 1")
    assert loaded.defaults == Rules()
    assert loaded.items[0].rules == Rules()
    assert Rules().interval == timedelta(hours=1)
    assert Rules().cooldown == timedelta(0)
    assert Rules().failing_after == 3
    assert Rules().enabled is True
    assert loaded.settings == Settings()
    assert Settings().dead_after == timedelta(hours=24)
    assert (Settings().jitter, Settings().unavailable_after) == (0.1, 3)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("652702302959", 652702302959),
        ('"652702302959"', 652702302959),
        ('" 652702302959 "', 652702302959),
        ('"https://detail.1688.com/offer/652702302959.html"', 652702302959),
        ('"http://detail.1688.com/offer/652702302959.html?spm=a26352.13672862.0"', 652702302959),
        ('"https://m.1688.com/offer/652702302959.html"', 652702302959),
        ('"detail.1688.com/offer/652702302959.html#sku"', 652702302959),
    ],
)
def test_item_id_forms(written: str, expected: int) -> None:
    assert parse(f"[[items]]\nid = {written}").items[0].id == expected


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("3", Decimal("3")),
        ("2.35", Decimal("2.35")),
        ('"2.35"', Decimal("2.35")),
        ("0.1", Decimal("0.1")),
        ("25.80", Decimal("25.8")),
        ("1e2", Decimal("100.0")),
    ],
)
def test_amounts_are_exact_decimals(written: str, expected: Decimal) -> None:
    rules = parse(f"[[items]]\nid = 1\ntarget_price = {written}\nprice_rise_abs = {written}")
    assert rules.items[0].rules.target_price == expected
    assert rules.items[0].rules.price_rise_abs == expected
    assert str(rules.items[0].rules.target_price) == str(expected)


def test_list_values_are_stripped_and_deduplicated() -> None:
    rules = (
        parse(
            '[[items]]\nid = 1\nalert_on = ["sold_out", "sold_out", "low_stock"]\nlow_stock = 0\n'
            'skus = [" 5031* ", "黄色*", "5031*"]'
        )
        .items[0]
        .rules
    )
    assert rules.alert_on == (ChangeKind.SOLD_OUT, ChangeKind.LOW_STOCK)
    assert rules.skus == ("5031*", "黄色*")
    assert rules.low_stock == 0


def test_every_alert_kind_is_accepted() -> None:
    kinds = json.dumps([str(kind) for kind in ChangeKind])
    rules = parse(f"[[items]]\nid = 1\nalert_on = {kinds}").items[0].rules
    assert rules.alert_on == tuple(ChangeKind)
    assert len(ChangeKind) == 13


def test_target_table_options() -> None:
    loaded = parse(
        """
[targets.ops]
url = "json://localhost:8080/hook"
quiet_hours = "22:00 - 08:30"
timezone = "Asia/Shanghai"
digest = "9:05"
template = "{count} for {name}: {title} {url} {shop} {item_id} {changes} {{literal}} {count:>3}"
format = "html"

[targets.plain]
url = "json://localhost/plain"
digest = 07:45:00
"""
    )
    ops, plain = loaded.targets["ops"], loaded.targets["plain"]
    assert ops.quiet_hours == QuietHours(time(22, 0), time(8, 30))
    assert ops.timezone == ZoneInfo("Asia/Shanghai")
    assert ops.digest == time(9, 5)
    assert ops.template is not None and ops.template.startswith("{count} for {name}")
    assert ops.format == "html"
    # A plain string target is a table with only url.
    assert plain == Target(
        name="plain",
        url="json://localhost/plain",
        url_template="json://localhost/plain",
        digest=time(7, 45),
    )
    assert plain.timezone == ZoneInfo("UTC")
    assert parse('[targets]\nplain = "json://localhost/plain"').targets["plain"] == Target(
        name="plain", url="json://localhost/plain", url_template="json://localhost/plain"
    )


@pytest.mark.parametrize(
    ("window", "moment", "inside"),
    [
        ("22:00-08:00", time(23, 59), True),
        ("22:00-08:00", time(0, 0), True),
        ("22:00-08:00", time(7, 59), True),
        ("22:00-08:00", time(8, 0), False),
        ("22:00-08:00", time(21, 59), False),
        ("22:00-08:00", time(22, 0), True),
        ("12:00-13:30", time(12, 0), True),
        ("12:00-13:30", time(13, 29), True),
        ("12:00-13:30", time(13, 30), False),
        ("12:00-13:30", time(11, 0), False),
    ],
)
def test_quiet_hours_contains(window: str, moment: time, inside: bool) -> None:
    text = f'[targets.ops]\nurl = "json://localhost"\nquiet_hours = "{window}"'
    quiet = parse(text).targets["ops"].quiet_hours
    assert quiet is not None
    assert str(quiet) == window
    assert quiet.contains(moment) is inside
    assert quiet.contains(moment.replace(tzinfo=ZoneInfo("UTC"))) is inside


@pytest.mark.parametrize(
    ("patterns", "sku_id", "name", "watched"),
    [
        ((), "1", "", True),
        (("5031*",), "503112", "red", True),
        (("5031*",), "403112", "red", False),
        (("黄色*",), "1", "黄色豹纹;S", True),
        (("黄色*",), "1", "白色豹纹;S", False),
        (("*;S",), "1", "黄色豹纹;S", True),
        (("RED",), "1", "red", False),  # case-sensitive
        (("12", "34"), "34", "", True),
    ],
)
def test_rules_watches_sku(
    patterns: tuple[str, ...], sku_id: str, name: str, watched: bool
) -> None:
    assert Rules(skus=patterns).watches_sku(sku_id, name) is watched


def test_item_helpers() -> None:
    named = Item(id=652702302959, name="Leopard robe", rules=Rules())
    assert named.url == "https://detail.1688.com/offer/652702302959.html"
    assert named.label == '652702302959 "Leopard robe"'
    assert Item(id=5, name=None, rules=Rules()).label == "5"


# --------------------------------------------------------------------------- durations

DURATIONS = [
    ("30s", timedelta(seconds=30), "30s"),
    ("15m", timedelta(minutes=15), "15m"),
    ("6h", timedelta(hours=6), "6h"),
    ("1d", timedelta(days=1), "1d"),
    ("1h30m", timedelta(minutes=90), "1h30m"),
    ("1d 12h", timedelta(hours=36), "1d12h"),
    ("2h0m5s", timedelta(hours=2, seconds=5), "2h5s"),
    (" 45s ", timedelta(seconds=45), "45s"),
    ("90", timedelta(seconds=90), "1m30s"),
    (90, timedelta(seconds=90), "1m30s"),
    (1, timedelta(seconds=1), "1s"),
    ("365d", timedelta(days=365), "365d"),
]


@pytest.mark.parametrize(("written", "expected", "formatted"), DURATIONS)
def test_durations(written: str | int, expected: timedelta, formatted: str) -> None:
    assert parse_duration(written) == expected
    assert format_duration(expected) == formatted


BAD_DURATIONS = [
    ("10x", '"10x" is not a duration (use 30s, 15m, 6h or 1d)'),
    ("30m1h", '"30m1h" is not a duration'),
    ("1h1h", '"1h1h" is not a duration'),
    ("1.5h", '"1.5h" is not a duration'),
    ("1H", '"1H" is not a duration'),
    ("", '"" is not a duration'),
    ("h", '"h" is not a duration'),
    ("-5s", '"-5s" is not a duration'),
    ("٣s", '"٣s" is not a duration'),
    ("9" * 5000, "is not a duration"),
    (1.5, "1.5 is not a duration"),
    (True, "true is not a duration"),
    (-1, "-1 is not a duration"),
    ([], "[] is not a duration"),
    (0, "0 is too short (at least 1s)"),
    ("0s", '"0s" is too short (at least 1s)'),
    ("366d", '"366d" is too long (at most 365d)'),
    (10**30, "is too long (at most 365d)"),
]


@pytest.mark.parametrize(("written", "message"), BAD_DURATIONS)
def test_bad_durations(written: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(written)
    assert message in str(caught.value)


def test_duration_minimum_can_be_zero() -> None:
    assert parse_duration("0s", minimum=timedelta(0)) == timedelta(0)
    assert format_duration(timedelta(0)) == "0s"
    assert format_duration(timedelta(seconds=-90)) == "-1m30s"


@given(st.integers(min_value=1, max_value=365 * 86_400))
def test_format_and_parse_duration_round_trip(seconds: int) -> None:
    duration = timedelta(seconds=seconds)
    assert parse_duration(format_duration(duration)) == duration


# --------------------------------------------------------------------------- environment


def test_env_overrides_settings() -> None:
    base = Settings(max_concurrency=2, max_requests_per_second=1.0)
    overridden = apply_env_overrides(
        base, {"MONITOR_MAX_CONCURRENCY": "12", "MONITOR_MAX_REQUESTS_PER_SECOND": " 2.5 "}
    )
    assert overridden == Settings(max_concurrency=12, max_requests_per_second=2.5)
    assert apply_env_overrides(base, {"MONITOR_MAX_CONCURRENCY": ""}) == base
    assert apply_env_overrides(base, {}) == base
    assert set(ENV_OVERRIDES) == {"MONITOR_MAX_CONCURRENCY", "MONITOR_MAX_REQUESTS_PER_SECOND"}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "MONITOR_MAX_CONCURRENCY",
            "abc",
            'environment variable MONITOR_MAX_CONCURRENCY: "abc" is not valid for '
            "settings.max_concurrency (need a whole number, 1 or more)",
        ),
        ("MONITOR_MAX_CONCURRENCY", "0", 'MONITOR_MAX_CONCURRENCY: "0" is not valid'),
        ("MONITOR_MAX_CONCURRENCY", "2.5", 'MONITOR_MAX_CONCURRENCY: "2.5" is not valid'),
        ("MONITOR_MAX_CONCURRENCY", "9" * 5000, "MONITOR_MAX_CONCURRENCY: "),
        (
            "MONITOR_MAX_REQUESTS_PER_SECOND",
            "0",
            'environment variable MONITOR_MAX_REQUESTS_PER_SECOND: "0" is not valid for '
            "settings.max_requests_per_second (need a number above 0, at most 1000)",
        ),
        ("MONITOR_MAX_REQUESTS_PER_SECOND", "nan", '"nan" is not valid'),
        ("MONITOR_MAX_REQUESTS_PER_SECOND", "fast", '"fast" is not valid'),
    ],
)
def test_bad_env_override_names_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        apply_env_overrides(Settings(), {variable: value})
    assert message in str(caught.value)
    assert problems_of("", {variable: value}) == [str(caught.value)]


def test_parse_applies_env_overrides_over_the_file() -> None:
    env = {**ENV, "MONITOR_MAX_CONCURRENCY": "3"}
    loaded = parse("[settings]\nmax_concurrency = 20\nmax_requests_per_second = 9", env)
    assert loaded.settings.max_concurrency == 3
    assert loaded.settings.max_requests_per_second == 9.0


def test_variables_are_expanded_and_registered_as_secrets(registered: list[str]) -> None:
    loaded = parse(TARGETS)
    deals = loaded.targets["deals"]
    assert deals.url == f"slack://{SLACK_A}/{SLACK_B}/{SLACK_C}/#deals"
    assert deals.url_template == "slack://${SLACK_A}/${SLACK_B}/${SLACK_C}/#deals"
    buyer = loaded.targets["buyer"]
    assert buyer.url == f"mailtos://monitor:{SMTP_PASS}@smtp.example.com?to=buyer@example.com"
    assert set(registered) == {
        SLACK_A,
        SLACK_B,
        SLACK_C,
        deals.url,
        "monitor",
        SMTP_PASS,
        buyer.url,
    }


def test_values_are_registered_even_when_apprise_rejects_the_url(registered: list[str]) -> None:
    problems_of('[targets]\nbad = "slack://${SLACK_A}"')
    assert registered == [SLACK_A, f"slack://{SLACK_A}"]


def test_dollar_brace_escape_and_lone_dollars() -> None:
    url = parse('[targets]\nx = "json://localhost/a$b/$${SLACK_A}"').targets["x"].url
    assert url == "json://localhost/a$b/${SLACK_A}"


def test_variable_used_twice_is_filled_twice() -> None:
    loaded = parse('[targets]\nx = "json://localhost/${SLACK_A}/${SLACK_A}"')
    assert loaded.targets["x"].url == f"json://localhost/{SLACK_A}/{SLACK_A}"


# --------------------------------------------------------------------------- secrets


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_secrets_absent_from_repr_and_summary() -> None:
    loaded = parse(BRIEF_EXAMPLE)
    assert_no_secret(repr(loaded))
    assert_no_secret(str(loaded))
    assert_no_secret("\n".join(summarize(loaded)))
    deals = loaded.targets["deals"]
    assert repr(deals).startswith("Target(name='deals', url='slack://")
    assert privacy_url(deals.url).startswith("slack://T...1/B...2/")
    assert "****" in privacy_url(loaded.targets["buyer"].url)


def test_repr_hides_secrets_written_inline() -> None:
    target = Target(name="x", url=f"slack://{SLACK_A}/{SLACK_B}/{SLACK_C}", url_template="…")
    assert_no_secret(repr(target))
    broken = Target(name="y", url=f"slack://{SLACK_C}", url_template="…")
    assert repr(broken) == "Target(name='y', url='slack://…', timezone='UTC')"


@pytest.mark.parametrize(
    "text",
    [
        '[targets]\ndeals = "slack://${SLACK_A}/${SLACK_B}"',  # rejected by apprise
        '[targets]\ndeals = "slack://${SMTP_PASS}"',  # apprise logs the bad token itself
        '[targets]\ndeals = "nonsense-${SMTP_PASS}"',  # no scheme
        '[targets]\ndeals = "${SLACK_C}://x"',  # unknown scheme from a variable
        f'[targets]\ndeals = "slack://{SLACK_A}/{SLACK_B}"',  # inline secrets
        f'[targets]\ndeals = ["slack://{SLACK_A}/{SLACK_B}/{SLACK_C}"]',  # wrong type
        f'[targets.deals]\nurl = ["mailto://u:{SMTP_PASS}@x"]',  # wrong type in a table
        f'[targets]\ndeals = "foo://{SMTP_PASS}@host"',  # unknown scheme, inline password
    ],
)
def test_secrets_absent_from_errors_and_apprise_logs(
    text: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    problems = problems_of(text)
    assert len(problems) == 1
    assert_no_secret(problems[0])
    assert_no_secret(caplog.text)


def test_apprise_is_silenced_only_in_the_validating_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="apprise")
    apprise_logger = logging.getLogger("apprise")
    with apprise_quietly():
        apprise_logger.error("probe in this thread")
        other = threading.Thread(target=apprise_logger.error, args=("probe in another thread",))
        other.start()
        other.join()
    apprise_logger.error("probe after")
    assert [r.getMessage() for r in caplog.records] == [
        "probe in another thread",
        "probe after",
    ]
    parse(TARGETS)
    assert apprise_logger.filters == []


# --------------------------------------------------------------------------- warnings


WARNINGS = [
    (
        item('id = 1\ninterval = "30s"\nnotify = ["deals", "buyer"]'),
        "watchlist.toml: items[0] (id 1): interval: 30s is under a minute; every TMAPI call "
        "is paid (about 2,880 calls a day per item)",
    ),
    (
        TARGETS + '[defaults]\ninterval = 20\nnotify = ["deals", "buyer"]\n[[items]]\nid = 1',
        "watchlist.toml: defaults: interval: 20s is under a minute; every TMAPI call is paid "
        "(about 4,320 calls a day per item)",
    ),
    (
        "[[items]]\nid = 1",
        "watchlist.toml: items[0] (id 1): notify: empty: changes are recorded but nobody is told",
    ),
    (
        item('id = 1\nnotify = ["deals"]'),
        "watchlist.toml: targets.buyer: not used by any item",
    ),
    (
        item('id = 1\nnotify = ["deals", "buyer"]\ntarget_price = 25.80'),
        "watchlist.toml: items[0] (id 1): target_price: 25.8 never alerts: "
        'alert_on lacks "target_price"',
    ),
    (
        item('id = 1\nnotify = ["deals", "buyer"]\nalert_on = ["low_stock"]'),
        'watchlist.toml: items[0] (id 1): alert_on: "low_stock" never alerts: low_stock is not set',
    ),
    ("", "watchlist.toml: no enabled [[items]]: nothing will be polled"),
    (
        "[[items]]\nid = 1\nenabled = false",
        "watchlist.toml: no enabled [[items]]: nothing will be polled",
    ),
]


@pytest.mark.parametrize(("text", "warning"), WARNINGS)
def test_warnings(text: str, warning: str) -> None:
    assert parse(text).warnings == (warning,)


def test_disabled_items_do_not_warn_about_their_interval() -> None:
    loaded = parse(item('id = 1\ninterval = "10s"\nenabled = false\nnotify = ["deals", "buyer"]'))
    assert loaded.warnings == ("watchlist.toml: no enabled [[items]]: nothing will be polled",)


# --------------------------------------------------------------------------- summary


def test_summary_lines() -> None:
    text = BRIEF_EXAMPLE + '\n[[items]]\nid = 5\ninterval = "1d"\nenabled = false\n'
    text += '[[items]]\nid = 6\ninterval = "30s"\ntarget_price = 9.5\nalert_on = ["target_price"]\n'
    loaded = parse(text)
    lines = summarize(loaded)
    assert lines[0] == "watchlist.toml: 3 items (2 enabled), 2 targets"
    assert lines[1] == (
        "settings: max_concurrency=8, max_requests_per_second=5, jitter=0.1, "
        "unavailable_after=3, dead_after=1d, scene=-, optimize_title=false"
    )
    assert lines[2] == "targets:"
    assert lines[3].startswith("  deals: slack://T...1/B...2/s...3/%23deals/")
    assert lines[3].endswith("(timezone UTC)")
    assert lines[4].startswith("  buyer: mailtos://monitor:****@smtp.example.com/")
    assert lines[5:9] == [
        "items:",
        '  652702302959 "Leopard robe": every 10m; language en; notify deals, buyer; '
        "alert on price_drop, sold_out, back_in_stock, tier_change; price_drop_pct=3",
        "  5 (disabled): every 1d; language en; notify deals; "
        "alert on price_drop, sold_out, back_in_stock, tier_change; price_drop_pct=3",
        "  6: every 30s; language en; notify deals; alert on target_price; "
        "price_drop_pct=3; target_price=9.5",
    ]
    assert lines[9] == "about 3,024 TMAPI calls a day"  # 144 + 2880
    assert lines[10] == "warnings:"
    assert lines[11:] == [f"  {warning}" for warning in loaded.warnings]
    assert len(loaded.warnings) == 1


# --------------------------------------------------------------------------- example file

EXAMPLE_ENV = {
    "SLACK_TOKEN_A": "T0EXAMPLEA",
    "SLACK_TOKEN_B": "B0EXAMPLEB",
    "SLACK_TOKEN_C": "examplewebhooktokenvalueC",
    "SMTP_USER": "monitor",
    "SMTP_PASS": "example-smtp-password",
    "TELEGRAM_BOT_TOKEN": "123456789:AAexampleTelegramBotTokenValue123",
    "TELEGRAM_CHAT_ID": "987654321",
}


def test_example_file_loads() -> None:
    loaded = load_watchlist(EXAMPLE, env=EXAMPLE_ENV)
    assert loaded.warnings == ()
    assert list(loaded.targets) == ["deals", "buyer", "ops"]
    ops = loaded.targets["ops"]
    assert ops.url == f"tgram://{EXAMPLE_ENV['TELEGRAM_BOT_TOKEN']}/987654321"
    assert (ops.timezone.key, str(ops.quiet_hours), ops.digest, ops.format) == (
        "Asia/Shanghai",
        "22:00-08:00",
        time(9, 0),
        "markdown",
    )
    robe, pyjamas, seasonal = loaded.items
    assert (robe.id, robe.rules.interval, robe.rules.notify) == (
        652702302959,
        timedelta(minutes=10),
        ("deals", "buyer"),
    )
    assert pyjamas.id == 859086919394
    assert pyjamas.rules.target_price == Decimal("25.80")
    assert pyjamas.rules.skus == ("黄色*",)
    assert seasonal.rules.enabled is False
    assert watched_items(loaded) == (robe, pyjamas)
    summary = "\n".join(summarize(loaded))
    for secret in EXAMPLE_ENV.values():
        if len(secret) > 9:
            assert secret not in summary


def test_example_file_needs_its_variables() -> None:
    env = {k: v for k, v in EXAMPLE_ENV.items() if k != "SMTP_PASS"}
    with pytest.raises(ConfigError, match=r"targets\.buyer: url: \$\{SMTP_PASS\} is not set"):
        load_watchlist(EXAMPLE, env=env)


def _documented_keys() -> set[str]:
    rule_keys = {f.name for f in dataclasses.fields(Rules)}
    settings_keys = {f.name for f in dataclasses.fields(Settings)}
    target_keys = {"url", "quiet_hours", "timezone", "digest", "template", "format"}
    return rule_keys | settings_keys | target_keys | {"id", "name"}


def test_example_file_shows_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    written = set(re.findall(r"^[# ]*([a-z_]+) *=", text, flags=re.MULTILINE))
    assert _documented_keys() <= written


def test_reference_documents_every_key_and_alert_kind() -> None:
    text = (ROOT / "docs" / "watchlist.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE))
    assert _documented_keys() <= documented
    assert {str(kind) for kind in ChangeKind} <= documented


# --------------------------------------------------------------------------- fuzzing


def outcome(text: str) -> None:
    """Parsing ``text`` gives a Watchlist (whose views work) or a WatchlistError."""
    try:
        loaded = parse(text)
    except WatchlistError as exc:
        assert exc.problems
        assert all(p and "\n" not in p for p in exc.problems)
        return
    assert isinstance(loaded, Watchlist)
    summarize(loaded)
    repr(loaded)


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_arbitrary_text(text: str) -> None:
    outcome(text)


_KEYS = sorted(_documented_keys() | {"bogus", "settings", "items"})
_WORDS = [
    "30m", "1h30m", "10s", "0s", "10x", "json://localhost", "slack://${SLACK_A}/${SLACK_B}/${SLACK_C}",
    "${NOPE}", "${", "22:00-08:00", "Asia/Shanghai", "Nowhere/Else", "09:00", "{title} {count}",
    "{price}", "{", "markdown", "en", "xx", "price_drop", "target_price", "deals", "buyer",
    "652702302959", "https://detail.1688.com/offer/652702302959.html", "drop_shipping", "",
]  # fmt: skip
_scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(_WORDS),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=3)
    ),
    max_leaves=6,
)
_table = st.dictionaries(st.sampled_from(_KEYS), _values, max_size=5)
_document = st.fixed_dictionaries(
    {},
    optional={
        "settings": _table,
        "targets": st.dictionaries(
            st.sampled_from(["deals", "buyer", "ops", "bad name"]),
            st.one_of(st.sampled_from(_WORDS), _table),
            max_size=3,
        ),
        "defaults": _table,
        "items": st.lists(_table, max_size=3),
        "bogus": _values,
    },
)


def to_toml(value: object) -> str:
    """``value`` as a TOML inline value (tables inline, keys quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(to_toml(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {to_toml(v)}" for k, v in value.items()) + "}"


@FUZZ
@given(_document)
def test_fuzz_structured_documents(document: dict[str, object]) -> None:
    text = "\n".join(f"{json.dumps(key)} = {to_toml(value)}" for key, value in document.items())
    outcome(text)
