"""``monitor status`` on SQLite and PostgreSQL; every new command's help and shell completion."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.db.outbox import claim, mark_dead
from monitor.db.queries import reading, status_report
from monitor.db.store import Store
from tests.factories import ITEM_ID, T0, apply_poll, offer, sku, timeout, unavailable, with_sku
from tests.outbox_helpers import target
from tests.test_views import OTHER_ITEM, alerting_poll

GONE, NEVER, PAUSED, YESTERDAY = 700000000001, 700000000002, 700000000003, 700000000004
NOW = T0 + timedelta(hours=2)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


@pytest.fixture
def busy_store(store: Store) -> Store:
    """A lowered price with alerts (one dead), a failing item, an unavailable one, and
    one polled only yesterday."""
    base = offer()
    apply_poll(store, ITEM_ID, T0, base)
    cheaper = with_sku(base, "5000000000003", price=Decimal("22.95"))
    cheaper = with_sku(cheaper, "5000000000004", stock=0, sold_out=True)
    alerting_poll(store, T0 + minutes(30), cheaper, [target("slack"), target("mail")])
    rows = {row.target: row for row in claim(store.engine, "w", T0 + minutes(30), 10)}
    assert mark_dead(store.engine, rows["mail"], "554 rejected")
    apply_poll(store, ITEM_ID, T0 + minutes(90), cheaper)

    apply_poll(store, OTHER_ITEM, T0, offer(item_id=OTHER_ITEM, skus=[sku("7", "8.80", 3)]))
    apply_poll(store, OTHER_ITEM, T0 + minutes(60), timeout(OTHER_ITEM))
    apply_poll(store, OTHER_ITEM, T0 + minutes(100), timeout(OTHER_ITEM))
    for n in range(3):
        apply_poll(store, GONE, T0 + minutes(10 * n), unavailable(GONE))
    apply_poll(store, YESTERDAY, T0 - timedelta(days=1), offer(item_id=YESTERDAY))
    with store.engine.begin() as conn:
        items = sa.table("items", sa.column("item_id"), sa.column("next_poll_at"))
        for item_id, due in ((ITEM_ID, NOW + minutes(10)), (OTHER_ITEM, NOW - minutes(1))):
            conn.execute(
                sa.text("UPDATE items SET watched = true, name = :n WHERE item_id = :i"),
                {"n": f"item {item_id}", "i": item_id},
            )
            conn.execute(
                sa.update(items).where(items.c.item_id == item_id).values(next_poll_at=due)
            )
    return store


def test_status_report_fields(busy_store: Store) -> None:
    with reading(busy_store.engine) as conn:
        report = status_report(conn, NOW)
    assert report.calls_today == 3 + 3 + 3  # polls since midnight UTC; yesterday's not
    assert (report.pending_notifications, report.dead_notifications) == (1, 1)
    robe = report.item(ITEM_ID)
    assert robe is not None
    assert (robe.price_min, robe.price_max, robe.first_price_min) == (
        Decimal("22.95"),
        Decimal("35.00"),
        Decimal("25.50"),
    )
    assert robe.change_pct == Decimal("-10.0")
    assert (robe.skus, robe.sold_out_skus, robe.stock) == (9, 1, sum(range(100, 109)) - 104)
    assert (robe.last_outcome, robe.pending_notifications, robe.dead_notifications) == (
        "unchanged",
        1,
        1,
    )
    other = report.item(OTHER_ITEM)
    assert other is not None
    assert (other.last_outcome, other.item.consecutive_failures) == ("failed", 2)
    assert other.change_pct == Decimal("0.0")
    gone = report.item(GONE)
    assert gone is not None
    assert (gone.item.available, gone.price_min, gone.skus, gone.change_pct) == (
        False,
        None,
        0,
        None,
    )


def run(store: Store, *args: str, watchlist: Path) -> Result:
    env = {
        "MONITOR_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
        "MONITOR_WATCHLIST": str(watchlist),
        "COLUMNS": "200",
    }
    return CliRunner().invoke(cli, list(args), env=env, obj={"now": NOW}, catch_exceptions=False)


def test_status_with_a_watchlist(busy_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "watchlist.toml"
    entries = [
        (ITEM_ID, "Leopard robe"),
        (OTHER_ITEM, "Khaki set"),
        (GONE, "Gone"),
        (NEVER, "Brand new"),
    ]
    text = "".join(f'[[items]]\nid = {i}\nname = "{n}"\n\n' for i, n in entries)
    text += f'[[items]]\nid = {PAUSED}\nname = "Autumn"\nenabled = false\n'
    path.write_text(text, encoding="utf-8")

    result = run(busy_store, "status", "--watchlist", str(path), watchlist=tmp_path / "other")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "1688 Monitor status at 2025-03-01 10:00 UTC" in out
    assert out.index("Leopard robe") < out.index("Khaki set") < out.index("Gone")
    assert out.index("Gone") < out.index("Brand new") < out.index("Autumn")
    for expected in (
        "¥22.95–¥35.00",  # current lowest–highest
        "−10.0%",  # lowest price since first seen
        "1/9 sold out",
        "30m ago",  # last poll of the robe (09:30)
        "unchanged",
        "next in 10m",
        "1 pending",
        "1 dead",
        "failed (timeout)",  # the khaki set's last poll
        "failing ×2",
        "next: due",
        "unavailable",
        "not polled",
        "paused",
        "TMAPI calls today (polls since 00:00 UTC): 9",
        "Notifications waiting: 1, 1 dead",
    ):
        assert expected in out, expected
    assert "No watchlist" not in out
    assert "1 item(s) still watched" not in out


def test_status_without_a_watchlist_shows_every_item(busy_store: Store, tmp_path: Path) -> None:
    result = run(busy_store, "status", watchlist=tmp_path / "absent.toml")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for item_id in (ITEM_ID, OTHER_ITEM, GONE, YESTERDAY):
        assert str(item_id) in out
    assert "item 652702302959" in out  # its name in the database
    assert "not watched" in out  # items only polled ad hoc
    assert "No watchlist: showing every item in the database." in out


def test_an_invalid_default_watchlist_is_noted_and_skipped(
    busy_store: Store, tmp_path: Path
) -> None:
    bad = tmp_path / "watchlist.toml"
    bad.write_text("[[items]]\nid = 1\ncolour = 'red'\n", encoding="utf-8")
    result = run(busy_store, "status", watchlist=bad)
    assert result.exit_code == 0, result.output
    assert f"note: not using {bad}, it is invalid:" in result.stderr
    assert "No watchlist" in result.stdout
    given = run(busy_store, "status", "--watchlist", str(bad), watchlist=tmp_path / "x")
    assert given.exit_code == 1
    assert 'unknown key "colour"' in given.output


# -- help and completion -----------------------------------------------------------

NEW_COMMANDS = [
    ["status"],
    ["history"],
    ["export"],
    ["chart"],
    ["items"],
    ["items", "add"],
    ["items", "remove"],
    ["completion"],
]


@pytest.mark.parametrize("path", NEW_COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(path: list[str]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert f"monitor {' '.join(path)}" in result.output.split("Example", 1)[1]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_clicks_script(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0, result.output
    assert f"_MONITOR_COMPLETE={shell}_complete" in result.output


def test_completion_completes_the_new_commands() -> None:
    from click.shell_completion import ShellComplete

    complete = ShellComplete(cli, {}, "monitor", "_MONITOR_COMPLETE")
    names = {item.value for item in complete.get_completions(["items"], "")}
    assert names == {"add", "remove"}
    top = {item.value for item in complete.get_completions([], "")}
    assert {"status", "history", "export", "chart", "items", "completion"} <= top
    formats = {item.value for item in complete.get_completions(["export", "--format"], "")}
    assert formats == {"csv", "json"}
