"""``monitor validate`` and ``monitor run`` through the command line (click's CliRunner).

The loader's full table of messages is in ``test_watchlist.py``; here each
command is checked end to end: exit codes, which stream says what, secrets
never printed, and ``run --once`` polling for real against a simulated
TMAPI and a SQLite or PostgreSQL database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.db.store import Store
from monitor.simulator.server import SimulatedTmapi

TOKEN = "run-canary-token-41d7"
SLACK_SECRET = "slackSecretTokenC0ffee9"
ITEMS = [1001, 1002, 1003]


def invoke(env: dict[str, str | None], *args: str) -> Result:
    base: dict[str, str | None] = {
        "MONITOR_LOG_LEVEL": "WARNING",
        "TMAPI_TOKEN": None,
        "TMAPI_TOKEN_FILE": None,
        "TMAPI_BASE_URL": None,
        "MONITOR_WATCHLIST": None,
        "MONITOR_MAX_CONCURRENCY": None,
        "MONITOR_MAX_REQUESTS_PER_SECOND": None,
    }
    return CliRunner().invoke(cli, list(args), env={**base, **env}, catch_exceptions=False)


def everything(result: Result) -> str:
    return result.stdout + result.stderr


def good_watchlist(path: Path, items: list[int] = ITEMS) -> Path:
    lines = [
        "[settings]",
        "max_requests_per_second = 100",
        "[targets]",
        'deals = "slack://T0AAAA/B0BBBB/${SLACK_C}/#deals"',
        "[defaults]",
        'interval = "10m"',
        'notify = ["deals"]',
    ]
    for item_id in items:
        lines += ["[[items]]", f"id = {item_id}", f'name = "item {item_id}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- validate -------------------------------------------------------------------------------------


def test_validate_prints_a_summary_without_secrets(tmp_path: Path) -> None:
    path = good_watchlist(tmp_path / "watchlist.toml")
    result = invoke({"SLACK_C": SLACK_SECRET}, "validate", str(path))
    assert result.exit_code == 0, everything(result)
    assert f"{path}: 3 items (3 enabled), 1 target" in result.stdout
    assert "1001" in result.stdout and "every 10m" in result.stdout
    assert "about 432 TMAPI calls a day" in result.stdout
    assert SLACK_SECRET not in everything(result)


def test_validate_reads_monitor_watchlist_by_default(tmp_path: Path) -> None:
    path = good_watchlist(tmp_path / "elsewhere.toml")
    result = invoke({"SLACK_C": SLACK_SECRET, "MONITOR_WATCHLIST": str(path)}, "validate")
    assert result.exit_code == 0, everything(result)
    assert str(path) in result.stdout


BAD = [
    ('[[items]]\nid = 1001\ncolour = "red"\n', 'items[0] (id 1001): unknown key "colour"'),
    (
        "[[items]]\nid = 1001\n[[items]]\nid = 1001\n",
        "items[1] (id 1001): id: 1001 is already listed as items[0]",
    ),
    (
        '[[items]]\nid = 1001\ninterval = "soon"\n',
        'items[0] (id 1001): interval: "soon" is not a duration',
    ),
    (
        '[[items]]\nid = 1001\nnotify = ["nobody"]\n',
        'items[0] (id 1001): notify: "nobody" is not a defined target',
    ),
    (
        '[targets]\nx = "slack://${NOT_SET_ANYWHERE}"\n',
        "targets.x: url: ${NOT_SET_ANYWHERE} is not set in the environment",
    ),
    ("[settings]\nmax_concurrency = 0\n", "settings: max_concurrency: 0 is too small"),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_validate_reports_each_problem_and_exits_1(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    result = invoke({}, "validate", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"{path}: {expected}")
    assert result.stderr.count("\n") == 1  # one problem, one line
    assert "Traceback" not in result.stderr


def test_validate_never_prints_a_secret_of_a_rejected_url(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[targets]\nx = "nosuchscheme://${SECRET}@host"\n', encoding="utf-8")
    result = invoke({"SECRET": SLACK_SECRET}, "validate", str(path))
    assert result.exit_code == 1
    assert f"{path}: targets.x: url: " in result.stderr
    assert SLACK_SECRET not in everything(result)


def test_validate_of_a_missing_file(tmp_path: Path) -> None:
    result = invoke({}, "validate", str(tmp_path / "nope.toml"))
    assert result.exit_code == 1
    assert "nope.toml: file not found" in result.stderr


# -- run ------------------------------------------------------------------------------------------


pytestmark = pytest.mark.sim(items=ITEMS, token=TOKEN)


def run_env(db_url: str, sim: SimulatedTmapi) -> dict[str, str | None]:
    return {
        "MONITOR_DATABASE_URL": db_url,
        "TMAPI_TOKEN": TOKEN,
        "TMAPI_BASE_URL": sim.base_url,
        "SLACK_C": SLACK_SECRET,
        "MONITOR_LOG_LEVEL": "DEBUG",
    }


def test_run_once_polls_every_item_once(
    migrated_url: str, sim: SimulatedTmapi, tmp_path: Path
) -> None:
    path = good_watchlist(tmp_path / "watchlist.toml")
    result = invoke(run_env(migrated_url, sim), "run", "--watchlist", str(path), "--once")
    assert result.exit_code == 0, everything(result)
    assert "polled 3 items: 0 changes, 0 failed" in result.stdout
    assert [sim.requests_for(i) for i in ITEMS] == [1, 1, 1]
    assert TOKEN not in everything(result) and SLACK_SECRET not in everything(result)
    store = Store.open(migrated_url)
    try:
        rows = {row.item_id: row for row in store.list_items()}
        assert sorted(rows) == ITEMS
        assert all(row.watched and row.polls_total == 1 for row in rows.values())
        assert all(row.lease_owner is None for row in rows.values())
    finally:
        store.close()

    again = invoke(run_env(migrated_url, sim), "run", "--watchlist", str(path), "--once")
    assert again.exit_code == 0, everything(again)
    assert [sim.requests_for(i) for i in ITEMS] == [2, 2, 2]  # once = every item, due or not


def test_run_once_names_the_items_that_failed(
    migrated_url: str, sim: SimulatedTmapi, tmp_path: Path
) -> None:
    sim.delist(1002)
    path = good_watchlist(tmp_path / "watchlist.toml")
    result = invoke(run_env(migrated_url, sim), "run", "--watchlist", str(path), "--once")
    assert result.exit_code == 0, everything(result)
    assert "polled 3 items: 0 changes, 1 failed" in result.stdout
    assert "item 1002:" in result.stderr


def test_run_refuses_an_invalid_watchlist(tmp_path: Path) -> None:
    path = tmp_path / "watchlist.toml"
    path.write_text('[[items]]\nid = 1001\ninterval = "soon"\n', encoding="utf-8")
    env: dict[str, str | None] = {"MONITOR_DATABASE_URL": f"sqlite+pysqlite:///{tmp_path / 'm.db'}"}
    result = invoke(env, "run", "--watchlist", str(path))
    assert result.exit_code == 1
    assert f"{path}: items[0] (id 1001): interval:" in result.stderr
    assert not (tmp_path / "m.db").exists()  # refused before touching anything


def test_run_rejects_a_lease_too_short(tmp_path: Path) -> None:
    path = good_watchlist(tmp_path / "watchlist.toml")
    result = invoke({}, "run", "--watchlist", str(path), "--lease", "3")
    assert result.exit_code == 2
    assert "--lease" in result.stderr


def test_run_on_an_unreachable_database_fails_in_one_line_without_the_password(
    sim: SimulatedTmapi, tmp_path: Path
) -> None:
    path = good_watchlist(tmp_path / "watchlist.toml")
    env = run_env("postgresql+psycopg://postgres:hunter2secret@127.0.0.1:1/monitor", sim)
    result = invoke(env, "run", "--watchlist", str(path), "--once")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") or "\nerror: " in result.stderr
    assert "hunter2secret" not in everything(result)
    assert "Traceback" not in everything(result)


@pytest.mark.postgres
def test_run_on_postgresql_needs_migrate_for_an_empty_schema(
    pg_schema_url: str, sim: SimulatedTmapi, tmp_path: Path
) -> None:
    path = good_watchlist(tmp_path / "watchlist.toml")
    env = run_env(pg_schema_url, sim)
    refused = invoke(env, "run", "--watchlist", str(path), "--once")
    assert refused.exit_code == 1
    assert "--migrate" in refused.stderr
    assert sim.requests_total == 0
    migrated = invoke(env, "run", "--watchlist", str(path), "--once", "--migrate")
    assert migrated.exit_code == 0, everything(migrated)
    assert "polled 3 items" in migrated.stdout
