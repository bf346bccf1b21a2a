"""``monitor history`` and ``monitor export`` over history recorded by the store,
on SQLite and PostgreSQL: table, CSV and JSON content, windows, SKU globs, streaming."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.cli.history import PRICE_FIELDS
from monitor.db.store import Store
from tests.factories import ITEM_ID, apply_poll, offer, sku
from tests.test_views import NEW_SKU, OTHER_ITEM, SKU0, SKU3, SKU8, T, build_history

NOW = T[4] + timedelta(minutes=5)


@pytest.fixture
def history_store(store: Store) -> Store:
    """The history of tests.test_views, plus a second item with one SKU."""
    build_history(store, T)
    apply_poll(
        store,
        OTHER_ITEM,
        T[1],
        offer(item_id=OTHER_ITEM, skus=[sku("7001", "0.015", None, name="tiny")]),
    )
    return store


def run(store: Store, *args: str, now: datetime = NOW) -> Result:
    env = {
        "MONITOR_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
        "COLUMNS": "200",
    }
    return CliRunner().invoke(cli, list(args), env=env, obj={"now": now}, catch_exceptions=False)


def csv_rows(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == PRICE_FIELDS
    return list(reader)


# -- history -----------------------------------------------------------------------


def test_history_table_shows_sku_rows_and_changes(history_store: Store) -> None:
    result = run(history_store, "history", str(ITEM_ID), "--since", "all")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Leopard robe — Women's leopard print T-shirt" in out
    assert "white / M" in out and "¥29.89" in out and "¥25.90" in out
    assert "blue / M" in out and "¥19.99" in out
    assert "2025-03-01 08:00" in out and "2025-03-01 08:30" in out
    assert "sold out" in out
    assert "white / M: ¥29.89 → ¥25.90 (−13.3%)" in out
    assert "black / M: sold out" in out
    assert "red / XL: SKU removed (was ¥30.00)" in out
    assert "blue / M: new SKU at ¥19.99" in out


def test_history_csv_has_the_header_and_exact_rows(history_store: Store) -> None:
    result = run(history_store, "history", str(ITEM_ID), "--since", "all", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = csv_rows(result.output)
    assert len(rows) == 12
    white_m = [r for r in rows if r["sku_id"] == SKU0]
    assert white_m == [
        {
            "item_id": str(ITEM_ID),
            "sku_id": SKU0,
            "sku_name": "white / M",
            "price": "29.89",
            "stock": "100",
            "sold_out": "false",
            "valid_from": "2025-03-01T08:00:00+00:00",
            "valid_to": "2025-03-01T08:30:00+00:00",
        },
        {
            "item_id": str(ITEM_ID),
            "sku_id": SKU0,
            "sku_name": "white / M",
            "price": "25.90",
            "stock": "100",
            "sold_out": "false",
            "valid_from": "2025-03-01T08:30:00+00:00",
            "valid_to": "",
        },
    ]
    # 30.00 is stored as the integer 30 by SQLite: still written with its cents.
    assert [(r["price"], r["valid_to"]) for r in rows if r["sku_id"] == SKU8] == [
        ("30.00", "2025-03-01T09:00:00+00:00")
    ]
    assert [(r["stock"], r["sold_out"]) for r in rows if r["sku_id"] == SKU3][-1] == ("0", "true")


def test_history_json_holds_prices_and_changes_as_exact_strings(history_store: Store) -> None:
    result = run(history_store, "history", "Leopard robe", "--since", "all", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert (document["item_id"], document["name"], document["currency"]) == (
        ITEM_ID,
        "Leopard robe",
        "CNY",
    )
    assert document["since"] is None
    assert len(document["prices"]) == 12
    new = next(p for p in document["prices"] if p["sku_id"] == NEW_SKU)
    assert new == {
        "item_id": ITEM_ID,
        "sku_id": NEW_SKU,
        "sku_name": "blue / M",
        "price": "19.99",
        "stock": 40,
        "sold_out": False,
        "valid_from": "2025-03-01T09:00:00+00:00",
        "valid_to": None,
    }
    kinds = [(c["kind"], c["sku_id"], c["old"], c["new"], c["pct"]) for c in document["changes"]]
    assert ("price_drop", SKU0, "29.89", "25.90", "-13.30") in kinds
    assert ("sku_removed", SKU8, "30.00", None, None) in kinds
    assert ("sku_added", NEW_SKU, None, "19.99", None) in kinds
    assert all(c["detected_at"].endswith("+00:00") for c in document["changes"])
    assert Decimal(new["price"]) == Decimal("19.99")


def test_history_sku_glob_matches_names_or_ids(history_store: Store) -> None:
    by_name = csv_rows(
        run(
            history_store,
            "history",
            str(ITEM_ID),
            "--sku",
            "white*",
            "--since",
            "all",
            "--format",
            "csv",
        ).output
    )
    assert {r["sku_name"] for r in by_name} == {"white / M", "white / L", "white / XL"}
    by_id = csv_rows(
        run(
            history_store,
            "history",
            str(ITEM_ID),
            "--sku",
            "5999",
            "--since",
            "all",
            "--format",
            "csv",
        ).output
    )
    assert [r["sku_name"] for r in by_id] == ["blue / M"]
    document = json.loads(
        run(
            history_store,
            "history",
            str(ITEM_ID),
            "--sku",
            "white / M",
            "--since",
            "all",
            "--format",
            "json",
        ).output
    )
    assert [c["kind"] for c in document["changes"]] == ["price_drop"]


def test_history_since_is_a_duration_back_from_now_or_a_date(history_store: Store) -> None:
    # 45 minutes before NOW (10:05) is 09:20: SKU0 and SKU3 changed, and SKU8 went, before it.
    recent = csv_rows(
        run(history_store, "history", str(ITEM_ID), "--since", "45m", "--format", "csv").output
    )
    assert len(recent) == 9
    assert [r["price"] for r in recent if r["sku_id"] == SKU0] == ["25.90"]
    dated = csv_rows(
        run(
            history_store, "history", str(ITEM_ID), "--since", "2025-03-01T08:45", "--format", "csv"
        ).output
    )
    assert len(dated) == 10
    assert SKU8 in {r["sku_id"] for r in dated}
    document = json.loads(
        run(history_store, "history", str(ITEM_ID), "--since", "45m", "--format", "json").output
    )
    assert document["since"] == "2025-03-01T09:20:00+00:00"
    assert [c["kind"] for c in document["changes"]] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "no such item"], "is not an offer id, an offer URL or the name"),
        (["history", "123"], "item 123 is not in the database"),
        (["history", str(ITEM_ID), "--since", "10x"], '"10x" is not a duration'),
        (["history", str(ITEM_ID), "--since", "400d"], '"400d" is too long'),
        (["history", str(ITEM_ID), "--format", "xml"], "'xml' is not one of"),
    ],
)
def test_history_usage_errors(history_store: Store, args: list[str], message: str) -> None:
    result = run(history_store, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_history_accepts_an_offer_url(history_store: Store) -> None:
    url = f"https://detail.1688.com/offer/{ITEM_ID}.html"
    result = run(history_store, "history", url, "--since", "all", "--format", "csv")
    assert len(csv_rows(result.output)) == 12


# -- export ------------------------------------------------------------------------


def test_export_csv_streams_every_row_in_order(history_store: Store) -> None:
    result = run(history_store, "export")
    assert result.exit_code == 0, result.output
    rows = csv_rows(result.output)
    assert len(rows) == 13
    keys = [(int(r["item_id"]), r["sku_id"], r["valid_from"]) for r in rows]
    assert keys == sorted(keys)
    assert rows[0] == {
        "item_id": str(OTHER_ITEM),
        "sku_id": "7001",
        "sku_name": "tiny",
        "price": "0.015",
        "stock": "",
        "sold_out": "false",
        "valid_from": "2025-03-01T08:30:00+00:00",
        "valid_to": "",
    }
    assert [r["price"] for r in rows if r["sku_id"] == SKU0] == ["29.89", "25.90"]


def test_export_json_lines(history_store: Store) -> None:
    result = run(history_store, "export", "--format", "json", "--since", "45m")
    lines = result.output.splitlines()
    objects: list[dict[str, Any]] = [json.loads(line) for line in lines]
    assert len(objects) == 10  # the open rows of both items
    assert all(set(o) == set(PRICE_FIELDS) for o in objects)
    assert objects[0]["price"] == "0.015" and objects[0]["stock"] is None
    assert {o["price"] for o in objects if o["item_id"] == ITEM_ID} >= {"25.90", "19.99"}
    assert all(o["valid_to"] is None for o in objects)


def test_export_to_a_file_with_a_progress_bar(history_store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "history.csv"
    target.write_text("old content\n", encoding="utf-8")
    result = run(history_store, "export", "-o", str(target), "--progress")
    assert result.exit_code == 0, result.output
    assert f"13 rows written to {target}" in result.stderr
    assert "13/13" in result.stderr and "exporting" in result.stderr
    assert result.stdout == ""
    assert csv_rows(target.read_text(encoding="utf-8")) == csv_rows(
        run(history_store, "export").output
    )
    assert [p.name for p in folder.iterdir()] == ["history.csv"]  # no temporary file left


def test_export_without_a_terminal_shows_no_progress(history_store: Store) -> None:
    result = run(history_store, "export", "--format", "json")
    assert "exporting" not in result.stderr
    assert len(result.stdout.splitlines()) == 13
