"""The database misbehaving under a running ``monitor run`` process.

PostgreSQL going away: the daemon reaches the server through a TCP proxy the
test controls. Mid-run every connection is cut and new ones are refused for
a while, and a price drops meanwhile. The process must not crash,
``/healthz`` must say 503 while the database is unreachable and 200 after,
the polls that could not be recorded are retried, and the price drop is
recorded and alerted exactly once. The machine's PostgreSQL server itself is
never stopped.

SQLite: an outside reader keeps a read transaction open the whole time;
the daemon's writes (polls, changes, outbox, delivery marks) all succeed.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.db.engine import make_engine, upgrade
from monitor.simulator.item_detail import Mode
from monitor.simulator.server import SimulatedTmapi
from tests.receivers import free_port
from tests.reliability.harness import (
    HoldingWebhook,
    TcpProxy,
    assert_nothing_half_written,
    changes_of,
    health,
    monitors,
    notifications_of,
    process_env,
    scalar,
    through_proxy,
    wait_for,
    write_watchlist,
)

TOKEN = "outage-token-93be"
ITEMS = [9001, 9002, 9003, 9004]
CHANGED = 9001


pytestmark = pytest.mark.sim(items=ITEMS, token=TOKEN)


def drop_price(sim: SimulatedTmapi, item_id: int) -> None:
    sku = sim.truth(item_id).skus[0]
    sim.set_price(item_id, sku.sku_id, (sku.price / 2).quantize(Decimal("0.01")))


def polls_after(engine: sa.Engine, poll_id: int) -> dict[int, int]:
    with engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT item_id, count(*) AS n FROM polls WHERE id > :p GROUP BY item_id"),
            {"p": poll_id},
        ).all()
    return {int(r.item_id): int(r.n) for r in found}


@pytest.mark.postgres
def test_postgresql_going_away_and_coming_back(
    pg_schema_url: str, sim: SimulatedTmapi, tmp_path: Path
) -> None:
    upgrade(pg_schema_url)
    engine = make_engine(pg_schema_url)  # the test's own view, not through the proxy
    url = sa.make_url(pg_schema_url)
    port = free_port()
    try:
        with (
            TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy,
            HoldingWebhook() as hook,
            monitors() as start,
        ):
            path = write_watchlist(tmp_path / "w.toml", ITEMS, hook_url=hook.json_url("/hook"))
            env = process_env(through_proxy(pg_schema_url, proxy), sim, TOKEN)
            args = ["--watchlist", str(path), "--lease", "10"]
            args += ["--metrics-port", str(port), "--stall-after", "3"]
            daemon = start(tmp_path / "daemon.log", args, env)

            def every_item_polled() -> bool:
                return set(polls_after(engine, 0)) == set(ITEMS)

            wait_for("baselines", every_item_polled, 20, [daemon])
            wait_for("/healthz 200", lambda: health(port) == 200, 10, [daemon])

            # Cut while a poll is in flight: it fetches, then cannot record.
            sim.set_mode(None, Mode.SLOW, delay=0.5)
            wait_for("a poll in flight", lambda: sim.in_flight >= 1, 10, [daemon])
            proxy.cut()
            drop_price(sim, CHANGED)
            last_poll = int(scalar(engine, "SELECT max(id) FROM polls"))

            def failures_logged() -> bool:
                log = daemon.stderr()
                return (
                    "poll not recorded" in log  # the poll in flight fetched, then failed
                    and log.count("claiming due items failed") >= 2
                    and "claiming notifications failed" in log
                )

            # The outage lasts until every job has run into it (some seconds).
            wait_for("the daemon to run into the outage", failures_logged, 20, [daemon])
            wait_for("/healthz 503", lambda: health(port) == 503, 10, [daemon])
            assert polls_after(engine, last_poll) == {}
            proxy.restore()
            sim.set_mode(None, Mode.NORMAL)

            def recovered() -> bool:
                after = polls_after(engine, last_poll)
                sent = [n for n in notifications_of(engine, CHANGED) if n.state == "sent"]
                return set(after) == set(ITEMS) and len(sent) == 1

            # Items claimed just before the cut wait for their lease (10 s) to run out.
            wait_for("every item polled and the drop sent", recovered, 30, [daemon])
            wait_for("/healthz 200 again", lambda: health(port) == 200, 10, [daemon])
            assert daemon.stop() == 0, daemon.stderr()
            log = daemon.stderr()

        assert changes_of(engine, CHANGED) == ["price_drop"]
        assert len(hook.messages_about(CHANGED)) == 1
        assert_nothing_half_written(engine, sim, ITEMS)
        assert "Traceback" not in log, log
        assert proxy.accepted >= 2  # it reconnected
    finally:
        engine.dispose()


def test_sqlite_writes_succeed_under_a_long_read_transaction(
    sim: SimulatedTmapi, tmp_path: Path
) -> None:
    db_path = tmp_path / "monitor.db"
    url = f"sqlite+pysqlite:///{db_path}"
    upgrade(url)
    engine = make_engine(url)
    reader = sqlite3.connect(db_path, isolation_level=None)
    try:
        with HoldingWebhook() as hook, monitors() as start:
            path = write_watchlist(tmp_path / "w.toml", ITEMS, hook_url=hook.json_url("/hook"))
            # The reader's snapshot is taken before the daemon writes anything, and held.
            reader.execute("BEGIN")
            assert reader.execute("SELECT count(*) FROM polls").fetchone() == (0,)
            daemon = start(
                tmp_path / "daemon.log", ["--watchlist", str(path)], process_env(url, sim, TOKEN)
            )
            wait_for("baselines", lambda: set(polls_after(engine, 0)) == set(ITEMS), 20, [daemon])
            drop_price(sim, CHANGED)

            def alerted_and_polled_on() -> bool:
                sent = [n for n in notifications_of(engine, CHANGED) if n.state == "sent"]
                return len(sent) == 1 and min(polls_after(engine, 0).values()) >= 4

            wait_for("the drop sent and more polls", alerted_and_polled_on, 20, [daemon])
            # The reader was there all along, still seeing its old snapshot.
            assert reader.execute("SELECT count(*) FROM polls").fetchone() == (0,)
            assert reader.in_transaction
            assert daemon.stop() == 0
            log = daemon.stderr()
        assert "database is locked" not in log and "failed" not in log, log
        assert changes_of(engine, CHANGED) == ["price_drop"]
        assert len(hook.messages_about(CHANGED)) == 1
        assert_nothing_half_written(engine, sim, ITEMS)
    finally:
        reader.close()
        engine.dispose()
