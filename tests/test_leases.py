"""Coordination through the database: watched items, claims with leases, takeover.

Every test runs on SQLite and on PostgreSQL. Times are fixed datetimes
passed in as ``now``; nothing here reads the wall clock.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.db import leases
from monitor.db.engine import make_engine, upgrade
from monitor.db.poll_plan import Lease
from monitor.db.records import PollResult
from monitor.db.store import Store
from monitor.errors import StorageError
from tests.factories import T0, apply_poll, at, offer, timeout

LEASE = timedelta(minutes=5)
A = "host-a:1:aaaa"
B = "host-b:2:bbbb"


def due_in(minutes: dict[int, float]) -> Callable[[int], datetime]:
    """A ``first_poll_at`` function: item -> T0 + its minutes."""
    return lambda item_id: at(minutes[item_id])


def sync(
    store: Store, entries: list[tuple[int, str | None]], minutes: dict[int, float] | None = None
) -> leases.SyncReport:
    when = minutes or {item_id: 0.0 for item_id, _ in entries}
    return leases.sync_watchlist(store.engine, entries, T0, due_in(when))


def items_table(engine: Engine) -> dict[int, sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(leases.ITEMS)).all()
    return {row.item_id: row for row in rows}


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


# -- sync_watchlist ----------------------------------------------------------------------------


def test_sync_adds_items_due_at_their_first_poll(store: Store) -> None:
    report = sync(store, [(1, "one"), (2, None)], {1: 3.0, 2: 7.5})
    assert report == leases.SyncReport(added=(1, 2), removed=(), watched=2)
    rows = items_table(store.engine)
    assert rows[1].watched and rows[2].watched
    assert rows[1].name == "one" and rows[2].name is None
    assert rows[1].next_poll_at == at(3) and rows[2].next_poll_at == at(7.5)
    assert rows[1].lease_owner is None and rows[1].polls_total == 0


def test_sync_removes_renames_and_re_adds_keeping_history(store: Store) -> None:
    sync(store, [(1, "one"), (2, "two")], {1: 1.0, 2: 2.0})
    apply_poll(store, 1, at(1), offer(item_id=1))

    removed = sync(store, [(2, "deux")])
    assert removed == leases.SyncReport(added=(), removed=(1,), watched=1)
    rows = items_table(store.engine)
    assert not rows[1].watched  # no longer watched ...
    assert store.poll_counts(1).total == 1  # ... but its history stays
    assert store.load_offer(1) == offer(item_id=1)
    assert rows[2].name == "deux" and rows[2].next_poll_at == at(2)  # rename keeps the schedule

    # Re-added: it keeps its due time instead of getting a new first poll.
    back = leases.sync_watchlist(store.engine, [(1, "one"), (2, "deux")], at(60), due_in({}))
    assert back == leases.SyncReport(added=(), removed=(), watched=2)
    assert items_table(store.engine)[1].watched
    assert items_table(store.engine)[1].next_poll_at == at(1)


def test_sync_of_an_item_known_only_from_an_ad_hoc_poll_makes_it_due_now(store: Store) -> None:
    apply_poll(store, 9, at(0), offer(item_id=9))  # `monitor check`: a row, not watched
    assert items_table(store.engine)[9].next_poll_at is None
    report = leases.sync_watchlist(store.engine, [(9, "nine")], at(5), due_in({}))
    assert report.added == ()  # the row existed already
    row = items_table(store.engine)[9]
    assert row.watched and row.name == "nine" and row.next_poll_at == at(5)


def test_sync_is_idempotent(store: Store) -> None:
    sync(store, [(1, "one"), (2, "two")])
    before = items_table(store.engine)
    again = sync(store, [(1, "one"), (2, "two")])
    assert again == leases.SyncReport(added=(), removed=(), watched=2)
    assert items_table(store.engine) == before


def test_replicas_starting_together_both_sync_the_same_new_items(migrated_url: str) -> None:
    """Two processes sync the same fresh watchlist at the same moment: neither fails."""
    entries = [(item_id, f"item {item_id}") for item_id in range(1, 41)]
    engines = [make_engine(migrated_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def start(engine: Engine) -> None:
        barrier.wait()
        try:
            leases.sync_watchlist(engine, entries, T0, at)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        rows = items_table(engines[0])
        assert sorted(rows) == list(range(1, 41))
        assert all(row.watched for row in rows.values())
    finally:
        for engine in engines:
            engine.dispose()


# -- claim -------------------------------------------------------------------------------------


def test_claim_takes_the_most_overdue_first_and_respects_the_limit(store: Store) -> None:
    sync(store, [(i, None) for i in (1, 2, 3, 4, 5)], {1: 4.0, 2: 1.0, 3: 3.0, 4: 2.0, 5: 9.0})
    now = at(5)
    first = leases.claim(store.engine, A, now, limit=2, lease=LEASE)
    assert first == [2, 4]
    rest = leases.claim(store.engine, A, now, limit=10, lease=LEASE)
    assert rest == [3, 1]  # 5 is not due until minute 9
    rows = items_table(store.engine)
    assert {i for i, r in rows.items() if r.lease_owner == A} == {1, 2, 3, 4}
    assert rows[2].lease_expires_at == now + LEASE
    assert rows[5].lease_owner is None


def test_claim_of_nothing_or_a_zero_limit_claims_nothing(store: Store) -> None:
    assert leases.claim(store.engine, A, at(0), limit=5, lease=LEASE) == []
    sync(store, [(1, None)])
    assert leases.claim(store.engine, A, at(0), limit=0, lease=LEASE) == []
    assert items_table(store.engine)[1].lease_owner is None


def test_a_leased_item_is_skipped_until_its_lease_expires(store: Store) -> None:
    sync(store, [(1, None), (2, None)], {1: 0.0, 2: 1.0})
    assert leases.claim(store.engine, A, at(2), limit=1, lease=LEASE) == [1]
    assert leases.claim(store.engine, B, at(2), limit=5, lease=LEASE) == [2]
    # Everything is leased now: nobody gets anything until the leases run out.
    assert leases.claim(store.engine, B, at(6), limit=5, lease=LEASE) == []
    assert (
        leases.claim(store.engine, B, at(2) + LEASE - timedelta(seconds=1), limit=5, lease=LEASE)
        == []
    )
    # A died; at expiry its item goes to B (B's own lease has expired too).
    taken = leases.claim(store.engine, B, at(2) + LEASE, limit=5, lease=LEASE)
    assert taken == [1, 2]
    assert {r.lease_owner for r in items_table(store.engine).values()} == {B}


def test_claim_never_returns_unwatched_items(store: Store) -> None:
    sync(store, [(1, None), (2, None)])
    apply_poll(store, 3, at(0), offer(item_id=3))  # polled ad hoc, never watched
    sync(store, [(2, None)])  # 1 removed
    assert leases.claim(store.engine, A, at(100), limit=10, lease=LEASE) == [2]
    assert leases.claim(store.engine, B, at(100), limit=10, lease=LEASE, due_only=False) == []


def test_claim_with_due_only_false_takes_items_not_yet_due(store: Store) -> None:
    sync(store, [(1, None), (2, None)], {1: 30.0, 2: 10.0})
    assert leases.claim(store.engine, A, at(0), limit=10, lease=LEASE) == []
    assert leases.claim(store.engine, A, at(0), limit=10, lease=LEASE, due_only=False) == [2, 1]


def test_concurrent_claimers_never_get_the_same_item(migrated_url: str) -> None:
    """Eight threads, each with its own engine, claim in small batches until nothing is
    left; every item is claimed exactly once."""
    setup = make_engine(migrated_url)
    items = list(range(1, 201))
    leases.sync_watchlist(setup, [(i, None) for i in items], T0, lambda i: T0)
    engines = [make_engine(migrated_url) for _ in range(8)]
    barrier = threading.Barrier(len(engines))
    got: list[list[int]] = [[] for _ in engines]
    errors: list[BaseException] = []

    def claimer(index: int, engine: Engine) -> None:
        barrier.wait()
        try:
            while batch := leases.claim(engine, f"owner-{index}", at(1), limit=3, lease=LEASE):
                got[index].extend(batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=pair) for pair in enumerate(engines)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        claimed = Counter(item for batch in got for item in batch)
        assert sorted(claimed) == items
        assert set(claimed.values()) == {1}
        assert sum(1 for batch in got if batch) >= 2  # the race really had contenders
        owners = {row.item_id: row.lease_owner for row in items_table(setup).values()}
        for index, batch in enumerate(got):
            assert all(owners[item] == f"owner-{index}" for item in batch)
    finally:
        setup.dispose()
        for engine in engines:
            engine.dispose()


@pytest.mark.postgres
def test_claim_skips_rows_locked_by_a_poll_in_progress_on_postgresql(
    pg_schema_url: str,
) -> None:
    """A poll transaction holds the item's row lock; claimers skip it instead of waiting."""
    upgrade(pg_schema_url)
    store = Store.open(pg_schema_url)
    try:
        sync(store, [(1, None), (2, None)], {1: 0.0, 2: 1.0})
        with store.engine.connect() as conn, conn.begin():
            conn.execute(
                sa.select(leases.ITEMS.c.item_id)
                .where(leases.ITEMS.c.item_id == 1)
                .with_for_update()
            )
            # With the lock held in this thread, a claim elsewhere returns at once.
            assert leases.claim(store.engine, A, at(5), limit=5, lease=LEASE) == [2]
    finally:
        store.close()


# -- finish_poll, release, reschedule --------------------------------------------------------------


def test_recording_sets_the_next_due_time_and_drops_the_lease(store: Store) -> None:
    sync(store, [(1, None)])
    leases.claim(store.engine, A, at(1), limit=1, lease=LEASE)
    apply_poll(store, 1, at(1), offer(item_id=1), lease=Lease(A, lambda poll, failures: at(31)))
    row = items_table(store.engine)[1]
    assert row.next_poll_at == at(31)
    assert row.lease_owner is None and row.lease_expires_at is None
    assert leases.next_due(store.engine) == at(31)


def test_a_poll_whose_lease_was_lost_is_rolled_back_whole(store: Store) -> None:
    sync(store, [(1, None)])
    leases.claim(store.engine, A, at(1), limit=1, lease=LEASE)
    # A stalls past its lease; B takes the item over.
    assert leases.claim(store.engine, B, at(1) + LEASE, limit=1, lease=LEASE) == [1]
    before = items_table(store.engine)[1]

    with pytest.raises(leases.LeaseLost, match="item 1 was taken over") as caught:
        apply_poll(store, 1, at(6), offer(item_id=1), lease=Lease(A, lambda p, f: at(40)))
    assert isinstance(caught.value, StorageError)
    assert count(store.engine, "polls") == 0
    assert count(store.engine, "sku_states") == 0
    assert count(store.engine, "item_states") == 0
    assert items_table(store.engine)[1] == before  # counters, lease and due time untouched


def test_the_schedule_is_told_the_failure_streak_after_the_poll(store: Store) -> None:
    sync(store, [(1, None)])
    seen: list[int] = []

    def schedule(poll: PollResult, failures: int) -> datetime:
        seen.append(failures)
        return at(100)

    for minute in (1, 2):
        leases.claim(store.engine, A, at(minute), limit=1, lease=LEASE, due_only=False)
        apply_poll(store, 1, at(minute), timeout(1), lease=Lease(A, schedule))
    leases.claim(store.engine, A, at(3), limit=1, lease=LEASE, due_only=False)
    apply_poll(store, 1, at(3), offer(item_id=1), lease=Lease(A, schedule))
    assert seen == [1, 2, 0]


def test_release_drops_only_our_leases(store: Store) -> None:
    sync(store, [(1, None), (2, None), (3, None)])
    leases.claim(store.engine, A, at(1), limit=2, lease=LEASE)
    leases.claim(store.engine, B, at(1), limit=1, lease=LEASE)
    assert leases.release(store.engine, A, [2, 3]) == 1
    owners = {i: r.lease_owner for i, r in items_table(store.engine).items()}
    assert owners == {1: A, 2: None, 3: B}
    assert leases.release(store.engine, A) == 1
    assert leases.release(store.engine, A) == 0
    assert {r.lease_owner for r in items_table(store.engine).values()} == {None, B}
    # Released items are due again at once.
    assert leases.claim(store.engine, A, at(1), limit=5, lease=LEASE) == [1, 2]


def test_reschedule_only_touches_an_item_we_hold(store: Store) -> None:
    sync(store, [(1, None), (2, None)])
    leases.claim(store.engine, A, at(1), limit=1, lease=LEASE)  # item 1
    leases.reschedule(store.engine, 1, A, at(20))
    leases.reschedule(store.engine, 2, A, at(20))  # not ours: ignored
    rows = items_table(store.engine)
    assert rows[1].next_poll_at == at(20) and rows[1].lease_owner is None
    assert rows[2].next_poll_at == at(0)


def test_next_due_ignores_unwatched_items(store: Store) -> None:
    assert leases.next_due(store.engine) is None
    sync(store, [(1, None), (2, None)], {1: 9.0, 2: 4.0})
    sync(store, [(1, None)])
    assert leases.next_due(store.engine) == at(9)
