"""The item settings a daemon stores for ``monitor check``: complete, and free of secrets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from monitor.watchlist.load import load_watchlist
from monitor.watchlist.snapshot import from_document, to_document

SECRET = "xoxb-snapshot-canary-8812"

TEXT = """
[settings]
unavailable_after = 5
scene = "drop_shipping"
optimize_title = true

[targets]
deals = "json://127.0.0.1:9/${HOOK_TOKEN}"

[targets.buyer]
url = "json://user:${HOOK_TOKEN}@127.0.0.1:9/mail"
timezone = "Asia/Shanghai"
quiet_hours = "22:00-08:00"
digest = "09:30"
format = "markdown"
template = "{count} change(s) for {name}"

[defaults]
interval = "30m"
notify = ["deals"]
alert_on = ["price_drop", "sold_out", "target_price", "low_stock", "poll_failing"]
price_drop_pct = 3.5
price_drop_abs = 0.10

[[items]]
id = 652702302959
name = "Leopard robe"
interval = "1h30m"
notify = ["deals", "buyer"]
target_price = 26
low_stock = 20
skus = ["白色*", "5000*"]
cooldown = "2h"
language = "zh"

[[items]]
id = 610947572360
enabled = false
price_rise_pct = 10
price_rise_abs = 1.5
failing_after = 4
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "watchlist.toml"
    file.write_text(TEXT, encoding="utf-8")
    return file


def test_items_settings_and_delivery_options_round_trip(path: Path) -> None:
    watchlist = load_watchlist(path, env={"HOOK_TOKEN": SECRET})
    back = from_document(to_document(watchlist))
    assert back.items == watchlist.items
    assert back.path == watchlist.path
    for name in ("unavailable_after", "scene", "optimize_title"):
        assert getattr(back.settings, name) == getattr(watchlist.settings, name)
    assert list(back.targets) == list(watchlist.targets) == ["deals", "buyer"]
    for name, target in watchlist.targets.items():
        assert back.targets[name] == replace(target, url="", url_template="")
    assert back.targets_of(back.items[0]) == tuple(back.targets[n] for n in ("deals", "buyer"))


def test_the_document_holds_no_url_and_no_secret(path: Path) -> None:
    document = to_document(load_watchlist(path, env={"HOOK_TOKEN": SECRET}))
    assert SECRET not in document
    assert "json://" not in document and "HOOK_TOKEN" not in document


def test_the_same_watchlist_gives_the_same_document(path: Path) -> None:
    env = {"HOOK_TOKEN": SECRET}
    assert to_document(load_watchlist(path, env=env)) == to_document(load_watchlist(path, env=env))


@pytest.mark.parametrize("text", ["", "[]", '{"version": 99}', '{"version": 1}', "not json"])
def test_an_unreadable_document_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="unreadable stored watchlist"):
        from_document(text)
