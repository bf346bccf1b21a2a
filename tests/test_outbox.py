"""The outbox on SQLite and PostgreSQL: enqueue in the poll transaction, claim, mark, digests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from monitor.alerts.state import RuleState, SentAlert, SkuMemory
from monitor.db.engine import make_engine, write_transaction
from monitor.db.outbox import (
    OutboxState,
    claim,
    decode_groups,
    encode_groups,
    enqueue,
    mark_dead,
    mark_retry,
    mark_sent,
    release,
)
from monitor.db.outbox_list import count_by_state, list_notifications, purge
from monitor.db.rule_states import load_rule_state, save_rule_state
from monitor.db.store import Store
from monitor.errors import StorageError
from tests.factories import ITEM_ID, apply_poll, at, offer
from tests.outbox_helpers import NOTIFICATIONS, SHANGHAI, group, record_poll, rows, target

OTHER_ITEM = 610947572360
LEASE = timedelta(minutes=5)


class Boom(Exception):
    pass


def test_enqueue_in_a_rolled_back_transaction_leaves_nothing(store: Store) -> None:
    poll = apply_poll(store, ITEM_ID, at(0), offer())
    with pytest.raises(Boom), write_transaction(store.engine) as conn:
        assert enqueue(conn, group(when=at(0)), poll.poll_id, [target("a"), target("b")], at(0))
        raise Boom
    assert rows(store.engine) == []


def test_one_row_per_target_and_duplicates_are_ignored(store: Store) -> None:
    targets = [target("slack"), target("mail"), target("slack")]
    poll, inserted = record_poll(store, group(when=at(0)), targets, at(0))
    assert inserted == 2
    stored = rows(store.engine)
    assert [(r.target, r.key, r.state) for r in stored] == [
        ("slack", f"{poll.poll_id}:slack", "pending"),
        ("mail", f"{poll.poll_id}:mail", "pending"),
    ]
    assert all(r.item_id == ITEM_ID and r.poll_id == poll.poll_id for r in stored)
    assert stored[0].kinds == "price_drop"

    # The same group for the same poll again (a replayed write): nothing new.
    with write_transaction(store.engine) as conn:
        again = enqueue(conn, group(when=at(0)), poll.poll_id, targets, at(1))
    assert again == 0
    assert len(rows(store.engine)) == 2


def test_payload_round_trips_the_alert_groups_exactly(store: Store) -> None:
    alerts = group(when=at(0), kinds=("price_drop", "tier_change", "sold_out"))
    record_poll(store, alerts, [target("a")], at(0))
    (claimed,) = claim(store.engine, "w1", at(0), 10, LEASE)
    assert claimed.groups() == (alerts,)
    assert claimed.kinds == ("price_drop", "tier_change", "sold_out")
    assert isinstance(claimed.groups()[0].alerts[0].new, Decimal)


def test_unreadable_payloads_are_refused() -> None:
    for bad in ("", "{}", "[]", '[{"item_id": 1}]', "not json"):
        with pytest.raises(ValueError, match="unreadable notification payload"):
            decode_groups(bad)
    assert decode_groups(encode_groups([group(when=at(0))])) == (group(when=at(0)),)


def test_claim_leases_rows_oldest_first_and_a_second_claimer_gets_none(store: Store) -> None:
    for minute in range(3):
        record_poll(store, group(when=at(minute)), [target("a")], at(minute))
    first = claim(store.engine, "w1", at(5), 2, LEASE)
    assert [c.due_at for c in first] == [at(0), at(1)]
    assert all(c.lease_owner == "w1" and c.lease_expires_at == at(5) + LEASE for c in first)
    second = claim(store.engine, "w2", at(5), 10, LEASE)
    assert [c.due_at for c in second] == [at(2)]
    assert claim(store.engine, "w3", at(5), 10, LEASE) == []


def test_an_expired_lease_is_taken_over_and_the_old_owner_can_no_longer_mark(
    store: Store,
) -> None:
    record_poll(store, group(when=at(0)), [target("a")], at(0))
    (old,) = claim(store.engine, "w1", at(0), 10, LEASE)
    assert claim(store.engine, "w2", at(4), 10, LEASE) == []  # lease still running
    (new,) = claim(store.engine, "w2", at(6), 10, LEASE)
    assert new.id == old.id

    assert mark_sent(store.engine, old, at(7)) is False
    assert mark_retry(store.engine, old, "late", at(8)) is False
    assert mark_dead(store.engine, old, "late") is False
    assert rows(store.engine)[0].lease_owner == "w2"

    assert mark_sent(store.engine, new, at(7)) is True
    (row,) = rows(store.engine)
    assert (row.state, row.attempts, row.sent_at, row.lease_owner) == ("sent", 1, at(7), None)
    assert mark_sent(store.engine, new, at(8)) is False  # marks happen once
    assert claim(store.engine, "w3", at(60), 10, LEASE) == []


def test_retry_makes_the_row_due_later_and_counts_the_attempt(store: Store) -> None:
    record_poll(store, group(when=at(0)), [target("a")], at(0))
    (claimed,) = claim(store.engine, "w1", at(0), 10, LEASE)
    assert mark_retry(store.engine, claimed, "HTTP 500", at(10)) is True
    (row,) = rows(store.engine)
    assert (row.state, row.attempts, row.last_error, row.lease_owner) == (
        "pending",
        1,
        "HTTP 500",
        None,
    )
    assert claim(store.engine, "w1", at(9), 10, LEASE) == []
    (again,) = claim(store.engine, "w1", at(10), 10, LEASE)
    assert again.attempts == 1
    # Handing a row back does not count an attempt.
    assert release(store.engine, again, at(20)) is True
    assert rows(store.engine)[0].attempts == 1
    assert claim(store.engine, "w1", at(19), 10, LEASE) == []


def test_dead_rows_stay_visible(store: Store) -> None:
    record_poll(store, group(when=at(0)), [target("a"), target("b")], at(0))
    first, _ = claim(store.engine, "w1", at(0), 10, LEASE)
    assert mark_dead(store.engine, first, "HTTP 404: no such webhook") is True
    (dead,) = list_notifications(store.engine, OutboxState.DEAD)
    assert (dead.target, dead.item_id, dead.kinds, dead.attempts) == (
        "a",
        ITEM_ID,
        ("price_drop",),
        1,
    )
    assert dead.last_error == "HTTP 404: no such webhook"
    assert [r.state for r in list_notifications(store.engine)] == [
        OutboxState.PENDING,
        OutboxState.DEAD,
    ]
    assert count_by_state(store.engine) == {OutboxState.PENDING: 1, OutboxState.DEAD: 1}
    assert claim(store.engine, "w2", at(60), 10, LEASE)[0].target == "b"


def test_quiet_hours_hold_then_release(store: Store) -> None:
    quiet = target("night", quiet=(time(22), time(8)))
    loud = target("day")
    evening = datetime(2025, 3, 1, 23, 30, tzinfo=SHANGHAI).astimezone(UTC)
    morning = datetime(2025, 3, 2, 8, 0, tzinfo=SHANGHAI).astimezone(UTC)
    record_poll(store, group(when=evening), [quiet, loud], evening)
    held, pending = rows(store.engine)
    assert (held.target, held.state, held.next_attempt_at) == ("night", "held", morning)
    assert held.due_at == morning
    assert (pending.state, pending.next_attempt_at) == ("pending", evening)

    (now,) = claim(store.engine, "w", evening, 10, LEASE)
    assert now.target == "day"
    assert mark_sent(store.engine, now, evening)
    assert claim(store.engine, "w", morning - timedelta(seconds=1), 10, LEASE) == []
    (released,) = claim(store.engine, "w", morning, 10, LEASE)
    assert released.target == "night"
    assert rows(store.engine)[0].state == "pending"


def test_digest_rows_merge_into_one_message_at_digest_time(store: Store) -> None:
    daily = target("daily", digest=time(9))
    instant = target("instant")
    day = datetime(2025, 3, 1, tzinfo=SHANGHAI)
    nine = (day + timedelta(hours=9)).astimezone(UTC)
    groups = [
        group(ITEM_ID, when=(day + timedelta(hours=1)).astimezone(UTC)),
        group(OTHER_ITEM, when=(day + timedelta(hours=2)).astimezone(UTC), kinds=("sold_out",)),
        group(ITEM_ID, when=(day + timedelta(hours=3)).astimezone(UTC), kinds=("tier_change",)),
    ]
    for alerts in groups:
        record_poll(store, alerts, [daily, instant], alerts.detected_at)
    members = [r for r in rows(store.engine) if r.target == "daily"]
    assert [(r.state, r.digest, r.next_attempt_at) for r in members] == [("held", True, nine)] * 3

    before = claim(store.engine, "w", nine - timedelta(seconds=1), 10, LEASE)
    assert [c.target for c in before] == ["instant"] * 3
    for claimed in before:
        mark_sent(store.engine, claimed, nine)

    (digest,) = claim(store.engine, "w", nine + timedelta(minutes=1), 10, LEASE)
    assert digest.is_digest and digest.target == "daily"
    assert digest.key == "digest:daily:2025-03-01T01:00Z"
    assert digest.groups() == tuple(groups)
    assert digest.kinds == ("price_drop", "sold_out", "tier_change")
    assert digest.item_id is None  # two items
    assert digest.due_at == nine
    merged = [r for r in rows(store.engine) if r.target == "daily" and r.id != digest.id]
    assert [(r.state, r.digest_id) for r in merged] == [("merged", digest.id)] * 3

    assert claim(store.engine, "w2", nine + timedelta(minutes=2), 10, LEASE) == []  # leased
    assert mark_sent(store.engine, digest, nine + timedelta(minutes=1)) is True
    assert count_by_state(store.engine) == {OutboxState.SENT: 4, OutboxState.MERGED: 3}


def test_digests_are_per_target_and_unreadable_members_die_alone(store: Store) -> None:
    a, b = target("a", digest=time(9)), target("b", digest=time(9))
    day = datetime(2025, 3, 1, 1, tzinfo=SHANGHAI).astimezone(UTC)
    record_poll(store, group(when=day), [a, b], day)
    record_poll(store, group(OTHER_ITEM, when=day), [a], day + timedelta(minutes=1))
    with store.engine.begin() as conn:
        first_a = min(r.id for r in rows(store.engine) if r.target == "a")
        conn.execute(
            sa.update(NOTIFICATIONS).where(NOTIFICATIONS.c.id == first_a).values(payload="{oops")
        )
    digests = claim(store.engine, "w", day + timedelta(days=1), 10, LEASE)
    assert sorted((d.target, len(d.groups()), d.item_id) for d in digests) == [
        ("a", 1, OTHER_ITEM),
        ("b", 1, ITEM_ID),
    ]
    broken = next(r for r in rows(store.engine) if r.id == first_a)
    assert (broken.state, broken.last_error) == (
        "dead",
        "unreadable notification payload (JSONDecodeError)",
    )


def test_a_second_digest_for_the_same_time_gets_its_own_key(store: Store) -> None:
    daily = target("daily", digest=time(9))
    early = datetime(2025, 3, 1, 8, tzinfo=SHANGHAI).astimezone(UTC)
    nine = datetime(2025, 3, 1, 9, tzinfo=SHANGHAI).astimezone(UTC)
    record_poll(store, group(when=early), [daily], early)
    (first,) = claim(store.engine, "w", nine, 10, LEASE)
    # A replica whose clock lags enqueues for the 09:00 digest after it was made.
    record_poll(store, group(OTHER_ITEM, when=early), [daily], early + timedelta(minutes=1))
    (second,) = claim(store.engine, "w", nine + timedelta(minutes=1), 10, LEASE)
    assert first.key == "digest:daily:2025-03-01T01:00Z"
    assert second.key.startswith(f"{first.key}+")
    assert [g.item_id for g in second.groups()] == [OTHER_ITEM]


def test_concurrent_claimers_never_claim_the_same_row(store: Store, migrated_url: str) -> None:
    for minute in range(30):
        record_poll(store, group(when=at(minute)), [target("a"), target("b")], at(minute))
    engines = [make_engine(migrated_url) for _ in range(4)]
    start = threading.Barrier(len(engines))
    claimed: list[list[int]] = [[] for _ in engines]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            start.wait()
            while batch := claim(engines[index], f"w{index}", at(60), 3, LEASE):
                claimed[index].extend(c.id for c in batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    assert errors == []
    every = [row_id for ids in claimed for row_id in ids]
    assert len(every) == len(set(every)) == 60


@pytest.mark.postgres
def test_postgres_claim_skips_rows_locked_by_another_transaction(pg_schema_url: str) -> None:
    from monitor.db.engine import upgrade

    upgrade(pg_schema_url)
    store = Store.open(pg_schema_url)
    try:
        for minute in range(3):
            record_poll(store, group(when=at(minute)), [target("a")], at(minute))
        oldest = rows(store.engine)[0].id
        with store.engine.connect() as locker, locker.begin():
            locker.execute(
                sa.select(NOTIFICATIONS.c.id).where(NOTIFICATIONS.c.id == oldest).with_for_update()
            ).one()
            # Another worker neither waits for the locked row nor takes it.
            got = claim(store.engine, "w2", at(10), 10, LEASE)
        assert [c.id for c in got] == [r.id for r in rows(store.engine)][1:]
        (late,) = claim(store.engine, "w3", at(10), 10, LEASE)
        assert late.id == oldest
    finally:
        store.close()


def test_purge_removes_old_sent_rows_only(store: Store) -> None:
    record_poll(store, group(when=at(0)), [target("a"), target("b")], at(0))
    sent, _ = claim(store.engine, "w", at(0), 10, LEASE)
    mark_sent(store.engine, sent, at(1))
    assert purge(store.engine, at(0)) == 0
    assert purge(store.engine, at(10)) == 1
    assert [r.target for r in rows(store.engine)] == ["b"]


# -- rule states -------------------------------------------------------------------


def test_rule_state_round_trip_in_the_poll_transaction(store: Store) -> None:
    state = RuleState(
        seen=True,
        skus={"5000000000001": SkuMemory(Decimal("29.89"), at_target=True)},
        sent={"price_drop:sku:5000000000001": SentAlert(at(0), Decimal("31.00"), Decimal("29.89"))},
    )
    apply_poll(store, ITEM_ID, at(0), offer())
    with write_transaction(store.engine) as conn:
        assert load_rule_state(conn, ITEM_ID) == RuleState()
        save_rule_state(conn, ITEM_ID, state, at(0))
        assert load_rule_state(conn, ITEM_ID) == state

    newer = RuleState(seen=True, failing=True)
    apply_poll(store, ITEM_ID, at(1), offer())
    with write_transaction(store.engine) as conn:
        save_rule_state(conn, ITEM_ID, newer, at(1))
    with store.engine.connect() as conn:
        assert load_rule_state(conn, ITEM_ID) == newer


def test_unreadable_rule_state_is_a_storage_error(store: Store) -> None:
    apply_poll(store, ITEM_ID, at(0), offer())
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO rule_states (item_id, state, updated_at) "
            f"VALUES ({ITEM_ID}, 'not json', '2025-03-01 08:00:00')"
        )
    with store.engine.connect() as conn, pytest.raises(StorageError, match="not JSON"):
        load_rule_state(conn, ITEM_ID)
