"""One alert pipeline for every poll, whoever records it, and no made-up data unless asked.

The daemon is built by the function ``monitor run`` uses; ``monitor check``
runs as a user runs it (the click command), on the same database and the
same simulated TMAPI (which wants a token, as the real one does).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.daemon.app import Plumbing, open_daemon
from monitor.daemon.service import Daemon, DaemonOptions
from monitor.db.store import Store
from monitor.domain import PollSource
from monitor.errors import MixedSourcesError
from monitor.notify.sender import AppriseSender
from monitor.simulator.server import SimulatedTmapi
from monitor.tmapi.settings import TmapiSettings
from monitor.watchlist.load import load_watchlist
from tests.factories import apply_poll, at, offer
from tests.receivers import WebhookReceiver

ITEM = 652702302959
OTHER = 610947572360
TOKEN = "pipeline-canary-5521"


pytestmark = pytest.mark.sim(items=[ITEM, OTHER], token=TOKEN)


def write_watchlist(path: Path, webhook: WebhookReceiver) -> Path:
    path.write_text(
        f"""
[targets]
hook = "{webhook.json_url("/hook")}"

[defaults]
interval = "10m"
notify = ["hook"]
alert_on = ["sold_out", "back_in_stock", "price_drop"]

[[items]]
id = {ITEM}
name = "Leopard robe"
""",
        encoding="utf-8",
    )
    return path


@asynccontextmanager
async def daemon_on(store: Store, sim: SimulatedTmapi, path: Path) -> AsyncIterator[Daemon]:
    settings = TmapiSettings(token=TOKEN, base_url=sim.base_url, timeout=5, max_attempts=1)
    plumbing = Plumbing(rng=random.Random(1), sender=AppriseSender(min_interval=0))
    async with open_daemon(
        store,
        load_watchlist(path),
        settings,
        options=DaemonOptions(owner="daemon"),
        plumbing=plumbing,
    ) as daemon:
        yield daemon


def monitor(url: str, *args: str, token: str | None = TOKEN, **env: str) -> Result:
    environment: dict[str, str | None] = {"MONITOR_DATABASE_URL": url, "TMAPI_TOKEN": token}
    environment.update(env)
    return CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)


def count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


async def test_a_change_that_check_saw_first_is_alerted_exactly_once(
    migrated_url: str, sim: SimulatedTmapi, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    path = write_watchlist(tmp_path / "watchlist.toml", webhook)
    store = Store.open(migrated_url)
    try:
        async with daemon_on(store, sim, path) as daemon:
            first = await daemon.run_once()
            assert [r.outcome.value for r in first] == ["baseline"]

            sku = sim.sku_ids(ITEM)[0]
            sim.sell_out(ITEM, sku)
            checked = await asyncio.to_thread(
                monitor,
                migrated_url,
                "check",
                str(ITEM),
                "--watchlist",
                str(path),
                TMAPI_BASE_URL=sim.base_url,
            )
            assert checked.exit_code == 0, checked.output
            assert "sold out" in checked.stdout
            assert "Alert queued for hook" in checked.stdout

            again = await daemon.run_once()
            assert [r.outcome.value for r in again] == ["unchanged"]
            assert await daemon.deliver_all() == 1
            assert await daemon.deliver_all() == 0
    finally:
        store.close()
    (posted,) = webhook.received("/hook")
    assert "sold out" in posted.json()["message"].lower()


async def test_check_without_the_file_uses_the_settings_the_daemon_stored(
    migrated_url: str,
    sim: SimulatedTmapi,
    webhook: WebhookReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "conf").mkdir()
    path = write_watchlist(tmp_path / "conf" / "watchlist.toml", webhook)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no ./watchlist.toml here
    store = Store.open(migrated_url)
    try:
        async with daemon_on(store, sim, path) as daemon:
            await daemon.run_once()
            sim.sell_out(ITEM, sim.sku_ids(ITEM)[0])
            checked = await asyncio.to_thread(
                monitor, migrated_url, "check", str(ITEM), "--json", TMAPI_BASE_URL=sim.base_url
            )
            assert checked.exit_code == 0, checked.output
            assert '"alerted": [\n    "hook"\n  ]' in checked.stdout
            assert '"watched": true' in checked.stdout
            assert await daemon.deliver_all() == 1
    finally:
        store.close()
    assert len(webhook.received("/hook")) == 1


def test_check_of_an_item_on_no_watchlist_stores_it_and_says_no_rules_apply(
    migrated_url: str, sim: SimulatedTmapi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = monitor(migrated_url, "check", str(OTHER), TMAPI_BASE_URL=sim.base_url)
    assert result.exit_code == 0, result.output
    assert "no alert rules apply" in result.stdout
    assert count(migrated_url, "polls") == 1
    assert count(migrated_url, "notifications") == 0


@pytest.mark.parametrize("command", [["run", "--once"], ["check", str(ITEM)]])
@pytest.mark.parametrize("token", [None, "", "  "])
def test_without_a_token_nothing_polls_and_nothing_is_written(
    command: list[str], token: str | None, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    path = write_watchlist(tmp_path / "watchlist.toml", webhook)
    url = f"sqlite+pysqlite:///{tmp_path / 'real.db'}"
    result = monitor(url, *command, token=token, MONITOR_WATCHLIST=str(path))
    assert result.exit_code != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "TMAPI_TOKEN" in message and "TMAPI_TOKEN_FILE" in message and "--simulate" in message
    assert not (tmp_path / "real.db").exists()  # not even an empty database
    assert webhook.received() == []


def test_a_database_of_real_polls_refuses_simulated_ones_and_back(store: Store) -> None:
    apply_poll(store, ITEM, at(0), offer(item_id=ITEM), source=PollSource.TMAPI)
    with pytest.raises(MixedSourcesError, match="holds polls of the real TMAPI") as refused:
        apply_poll(store, ITEM, at(1), offer(item_id=ITEM), source=PollSource.SIMULATED)
    where = str(store.engine.url.render_as_string(hide_password=True))
    assert where in str(refused.value)
    with pytest.raises(MixedSourcesError):
        store.check_source(PollSource.SIMULATED, at(1))
    assert store.poll_counts(ITEM).total == 1
    store.check_source(PollSource.TMAPI, at(2))  # the same source goes on


def test_a_simulated_database_refuses_real_polls(store: Store) -> None:
    store.check_source(PollSource.SIMULATED, at(0))
    with pytest.raises(MixedSourcesError, match="holds simulated polls"):
        apply_poll(store, ITEM, at(1), offer(item_id=ITEM), source=PollSource.TMAPI)
    assert store.poll_counts(ITEM).total == 0


def test_simulate_into_a_real_history_is_refused_with_the_database_named(
    migrated_url: str, sim: SimulatedTmapi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    real = monitor(migrated_url, "check", str(ITEM), TMAPI_BASE_URL=sim.base_url)
    assert real.exit_code == 0, real.output
    before = count(migrated_url, "polls")
    simulated = monitor(migrated_url, "check", str(ITEM), "--simulate", token=None)
    assert simulated.exit_code != 0
    shown = sa.make_url(migrated_url).render_as_string(hide_password=True)
    assert shown in simulated.stderr and "holds polls of the real TMAPI" in simulated.stderr
    assert count(migrated_url, "polls") == before


def test_run_once_simulate_needs_no_token_and_marks_the_database(
    webhook: WebhookReceiver, tmp_path: Path
) -> None:
    path = write_watchlist(tmp_path / "watchlist.toml", webhook)
    url = f"sqlite+pysqlite:///{tmp_path / 'sim.db'}"
    result = monitor(url, "run", "--once", "--simulate", "--watchlist", str(path), token=None)
    assert result.exit_code == 0, result.output
    assert "polled 1 items" in result.stdout
    assert "simulated TMAPI" in result.stderr
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows: Any = conn.execute(sa.text("SELECT key, value FROM monitor_meta")).all()
    finally:
        engine.dispose()
    assert ("poll_source", "simulated") in [tuple(r) for r in rows]


def test_simulated_checks_go_on_where_the_last_one_left_the_market(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite+pysqlite:///{tmp_path / 'sim.db'}"
    outcomes = []
    for _ in range(4):
        result = monitor(url, "check", str(ITEM), "--simulate", "--json", token=None)
        assert result.exit_code == 0, result.output
        outcomes.append(json.loads(result.stdout)["outcome"])
    # every second answer of an item moves its market, in this process or the last one
    assert outcomes == ["baseline", "changed", "unchanged", "changed"]
