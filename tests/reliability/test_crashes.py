"""``monitor run`` killed with SIGKILL at the three moments that matter, on both databases.

One process is brought to all three moments at once, deterministically, and
then killed:

* **(b) sent, not marked sent**: item X's price drop went out to the webhook,
  which received the POST and holds it without answering;
* **(a) committed, not delivered**: item Y's price drop was committed with its
  outbox row while the delivery job was busy with X, so nobody has claimed it;
* **(c) inside the poll transaction**: item Z's poll is stalled by a trigger
  the test put on ``changes``, after it wrote its poll, state and change rows
  and before it commits.

After the kill nothing of Z's poll may be visible, Y's row must be pending and
unclaimed, X's row still leased by the dead process. A new process (the dead
one's leases run out by hand rather than in 5 minutes) then delivers Y exactly
once, X once more (at most one duplicate) and records and delivers Z's change
exactly once.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.db.engine import make_engine
from monitor.db.store import Store
from monitor.simulator.server import SimulatedTmapi
from tests.reliability.harness import (
    HoldingWebhook,
    MonitorProcess,
    assert_nothing_half_written,
    changes_of,
    expire_leases_of,
    monitors,
    notifications_of,
    process_env,
    rows,
    scalar,
    wait_for,
    write_watchlist,
)

TOKEN = "crash-token-7c41"
X, Y, Z = 8001, 8002, 8003
ITEMS = [X, Y, Z]


pytestmark = pytest.mark.sim(items=ITEMS, token=TOKEN)


def drop_price(sim: SimulatedTmapi, item_id: int) -> Decimal:
    """Halve the first SKU's price; the new price."""
    truth = sim.truth(item_id)
    sku = truth.skus[0]
    new = (sku.price / 2).quantize(Decimal("0.01"))
    sim.set_price(item_id, sku.sku_id, new)
    return new


class PollStall:
    """A trigger that stalls the poll transaction of one item after it inserted its
    changes: ``pg_sleep`` on PostgreSQL, a huge cross join on SQLite."""

    def __init__(self, engine: Engine, url: str, item_id: int) -> None:
        self.engine = engine
        self.url = url
        self.item_id = item_id
        self.sqlite = engine.dialect.name == "sqlite"

    def install(self) -> None:
        with self.engine.begin() as conn:
            if self.sqlite:
                conn.exec_driver_sql("CREATE TABLE stall (n INTEGER)")
                conn.execute(
                    sa.text("INSERT INTO stall VALUES (:n)"), [{"n": n} for n in range(1000)]
                )
                conn.exec_driver_sql(
                    f"CREATE TRIGGER stall_poll AFTER INSERT ON changes"
                    f" WHEN NEW.item_id = {self.item_id}"
                    " BEGIN SELECT count(*) FROM stall a, stall b, stall c; END"
                )
            else:
                conn.exec_driver_sql(
                    "CREATE FUNCTION stall_poll() RETURNS trigger LANGUAGE plpgsql AS"
                    " $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$"
                )
                conn.exec_driver_sql(
                    "CREATE TRIGGER stall_poll AFTER INSERT ON changes FOR EACH ROW"
                    f" WHEN (NEW.item_id = {self.item_id}) EXECUTE FUNCTION stall_poll()"
                )

    def remove(self) -> None:
        with self.engine.begin() as conn:
            if self.sqlite:
                conn.exec_driver_sql("DROP TRIGGER stall_poll")
                conn.exec_driver_sql("DROP TABLE stall")
            else:
                conn.exec_driver_sql("DROP TRIGGER stall_poll ON changes")
                conn.exec_driver_sql("DROP FUNCTION stall_poll()")

    def stalled_backends(self) -> list[int]:
        """PostgreSQL: the monitor backends sleeping in the trigger."""
        found = rows(
            self.engine,
            "SELECT pid FROM pg_stat_activity"
            " WHERE wait_event = 'PgSleep' AND application_name = '1688-monitor'",
        )
        return [int(r.pid) for r in found]

    def write_lock_held(self) -> bool:
        """SQLite: is some connection holding the write lock right now?"""
        path = sa.make_url(self.url).database
        assert path is not None
        probe = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return True
        finally:
            probe.close()
        return False


def wait_until_stalled(
    stall: PollStall, sim: SimulatedTmapi, asked: int, p: MonitorProcess
) -> None:
    """Wait until Z's poll transaction is stuck in the trigger."""
    wait_for("Z to be fetched", lambda: sim.requests_for(Z) > asked, 10, [p])
    if not stall.sqlite:
        wait_for("Z's transaction in the trigger", lambda: bool(stall.stalled_backends()), 10, [p])
        return
    # The stall holds the write lock for many seconds; other writes hold it for milliseconds.
    streak: list[bool] = []

    def held_for_a_while() -> bool:
        streak.append(stall.write_lock_held())
        if not streak[-1]:
            streak.clear()
        return len(streak) >= 25

    wait_for("Z's transaction to hold the write lock", held_for_a_while, 10, [p])


def test_sigkill_after_commit_after_send_and_inside_a_poll(
    migrated_url: str, sim: SimulatedTmapi, tmp_path: Path
) -> None:
    engine = make_engine(migrated_url)
    stall = PollStall(engine, migrated_url, Z)
    try:
        with HoldingWebhook() as hook, monitors() as start:
            path = write_watchlist(tmp_path / "w.toml", ITEMS, hook_url=hook.json_url("/hook"))
            env = process_env(migrated_url, sim, TOKEN)
            args = ["--watchlist", str(path), "--lease", "10"]
            first = start(tmp_path / "first.log", args, env)

            def polled(item_id: int, times: int = 1) -> bool:
                n = scalar(engine, "SELECT count(*) FROM polls WHERE item_id = :i", i=item_id)
                return int(n) >= times

            wait_for("baselines", lambda: all(polled(i) for i in ITEMS), 20, [first])

            # (b) X's message is sent and the webhook holds it unanswered.
            hook.hold()
            drop_price(sim, X)
            wait_for("X's POST", hook.held.is_set, 15, [first])
            (x_row,) = notifications_of(engine, X)
            assert first.owns(x_row.lease_owner)

            # (a) Y's change is committed; the delivery job is stuck on X, so nobody claims it.
            drop_price(sim, Y)
            wait_for("Y's outbox row", lambda: bool(notifications_of(engine, Y)), 10, [first])

            # (c) Z's poll transaction stalls after writing its rows.
            z_before = Store(engine).load_offer(Z)
            z_polls = scalar(engine, "SELECT count(*) FROM polls WHERE item_id = :i", i=Z)
            stall.install()
            asked = sim.requests_for(Z)
            drop_price(sim, Z)
            wait_until_stalled(stall, sim, asked, first)

            first.kill()
            hook.release()
            if not stall.sqlite:  # the orphaned backend wakes, finds its client gone, rolls back
                wait_for("the stalled backend to end", lambda: not stall.stalled_backends(), 15)
            stall.remove()

            # (c) nothing of Z's poll is visible.
            assert changes_of(engine, Z) == []
            assert notifications_of(engine, Z) == []
            assert scalar(engine, "SELECT count(*) FROM polls WHERE item_id = :i", i=Z) == z_polls
            assert Store(engine).load_offer(Z) == z_before
            assert_nothing_half_written(engine, sim, [X, Y], leases=False)
            # (a) Y's row is committed, pending, unclaimed, untried.
            (y_row,) = notifications_of(engine, Y)
            assert (y_row.state, y_row.attempts, y_row.lease_owner) == ("pending", 0, None)
            assert hook.messages_about(Y) == []
            # (b) X's row was sent but not marked: still leased by the dead process.
            (x_row,) = notifications_of(engine, X)
            assert (x_row.state, x_row.attempts) == ("pending", 0)
            assert len(hook.messages_about(X)) == 1

            expire_leases_of(engine, first)
            second = start(tmp_path / "second.log", args, env)

            def all_sent() -> bool:
                found = [notifications_of(engine, item) for item in ITEMS]
                return all(len(n) == 1 and n[0].state == "sent" for n in found)

            wait_for("every message sent", all_sent, 20, [second])
            assert second.stop() == 0, second.stderr()
            log = first.stderr() + second.stderr()

        assert len(hook.messages_about(Y)) == 1, "Y: committed before the crash, sent once"
        x_messages = hook.messages_about(X)
        assert len(x_messages) == 2 and x_messages[0] == x_messages[1], "X: one duplicate at most"
        assert len(hook.messages_about(Z)) == 1, "Z: detected again after the crash, sent once"
        for item in ITEMS:
            assert changes_of(engine, item) == ["price_drop"], f"item {item}"
        assert_nothing_half_written(engine, sim, ITEMS)
        assert "Traceback" not in log
        assert TOKEN not in log
    finally:
        engine.dispose()
