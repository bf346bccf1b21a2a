"""Recording polls in batches (``Store.apply_polls``) on SQLite and PostgreSQL.

A batch must record exactly what the same polls recorded one by one would,
each poll all-or-nothing, in a number of statements that does not grow
with the batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from monitor.db import leases, recording
from monitor.db.alerting import Alerting
from monitor.db.records import PollOutcome, PollResult
from monitor.db.store import Lease, PollWrite, Store
from monitor.domain import ChangeKind, Offer
from monitor.errors import StorageError
from tests.factories import (
    apply_poll,
    at,
    offer,
    parse_error,
    tier,
    timeout,
    unavailable,
    with_sku,
    with_tiers,
    write,
)

D = Decimal
ITEMS = [1001, 1002, 1003, 1004, 1005]
TABLES = ("items", "item_states", "sku_states", "tier_states", "polls", "changes")


def offers(minute: int) -> dict[int, Offer]:
    """Per item, an offer that changes a little from one minute to the next."""
    out = {}
    for n, item_id in enumerate(ITEMS):
        base = offer(item_id=item_id)
        first = base.skus[0].sku_id
        if minute >= 1 and n % 2 == 0:
            base = with_sku(base, first, price=D("19.99"))
        if minute >= 2 and n == 1:
            base = with_sku(base, first, stock=0, sold_out=True)
        if minute >= 3 and n == 3:
            base = with_tiers(base, [tier(1, "25.50"), tier(100, "21.00")])
        out[item_id] = base
    return out


def script() -> list[list[PollWrite]]:
    """Four rounds of polls of every item, with failures mixed in."""
    rounds = []
    for minute in range(4):
        polls = offers(minute)
        writes = []
        for n, item_id in enumerate(ITEMS):
            result: Any = polls[item_id]
            if minute == 2 and n == 4:
                result = unavailable(item_id)
            if minute == 3 and n == 2:
                result = timeout(item_id)
            if minute == 1 and n == 0:
                result = parse_error(item_id)
            writes.append(write(item_id, at(minute, seconds=n), result, unavailable_after=1))
        rounds.append(writes)
    return rounds


def snapshot(store: Store) -> dict[str, Any]:
    """Everything recorded, without row ids."""
    items = {r.item_id: r for r in store.list_items()}
    return {
        "items": items,
        "offers": {i: store.load_offer(i) for i in ITEMS},
        "history": {i: store.load_offer(i, at(1, seconds=30)) for i in ITEMS},
        "changes": {i: [(c.detected_at, c.change) for c in store.changes_for(i)] for i in ITEMS},
        "polls": {
            i: [(p.polled_at, p.outcome, p.error_reason) for p in store.recent_polls(i)]
            for i in ITEMS
        },
    }


@contextmanager
def counted(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements sent through ``engine`` while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def fails(result: PollResult | Exception) -> Exception:
    assert isinstance(result, Exception), result
    return result


def ok(result: PollResult | Exception) -> PollResult:
    assert isinstance(result, PollResult), result
    return result


def _clear(store: Store) -> None:
    """Remove everything recorded, to record the same script again."""
    with store.engine.begin() as conn:
        for table in ("changes", "polls", "item_states", "sku_states", "tier_states", "items"):
            conn.execute(sa.text(f"DELETE FROM {table}"))


def test_a_batch_records_exactly_what_one_by_one_records(store: Store) -> None:
    singles = [
        [apply_poll(store, w.item_id, w.polled_at, w.result, unavailable_after=1) for w in writes]
        for writes in script()
    ]
    expected = snapshot(store)
    _clear(store)

    batches = [store.apply_polls(writes) for writes in script()]

    assert snapshot(store) == expected
    for one_by_one, batch in zip(singles, batches, strict=True):
        assert [(r.item_id, r.outcome, r.changes, r.offer) for r in one_by_one] == [
            (r.item_id, r.outcome, r.changes, r.offer) for r in map(ok, batch)
        ]
    outcomes = {r.outcome for batch in batches for r in map(ok, batch)}
    assert outcomes == set(PollOutcome)  # the script covers every kind of poll


def test_statements_do_not_grow_with_the_batch(store: Store) -> None:
    store.apply_polls([write(i, at(0), offer(item_id=i)) for i in ITEMS])
    with counted(store.engine) as few:
        store.apply_polls([write(ITEMS[0], at(1), offer(item_id=ITEMS[0]))])
    with counted(store.engine) as many:
        results = store.apply_polls([write(i, at(2), offer(item_id=i)) for i in ITEMS])
    assert {ok(r).outcome for r in results} == {PollOutcome.UNCHANGED}
    assert len(many) == len(few) <= 6, many


def test_one_failing_poll_does_not_take_the_batch_down(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply_polls([write(i, at(0), offer(item_id=i)) for i in ITEMS])
    calls: list[int] = []

    def alert(conn: Connection, polls: Sequence[Alerting]) -> list[None]:
        calls.extend(entry.poll.item_id for entry in polls)
        if any(entry.poll.item_id == ITEMS[2] for entry in polls):
            raise RuntimeError("outbox write failed")
        return [None] * len(polls)

    monkeypatch.setattr(recording, "record_alerts", alert)
    changed = {
        i: with_sku(offer(item_id=i), offer().skus[0].sku_id, price=D("9.99")) for i in ITEMS
    }
    results = store.apply_polls([write(i, at(1), changed[i]) for i in ITEMS])

    assert isinstance(fails(results[2]), RuntimeError)
    assert [ok(r).outcome for n, r in enumerate(results) if n != 2] == [PollOutcome.CHANGED] * 4
    # The failed poll left nothing behind: its item still has the first offer.
    assert store.load_offer(ITEMS[2]) == offer(item_id=ITEMS[2])
    assert store.poll_counts(ITEMS[2]).total == 1
    assert store.changes_for(ITEMS[2]) == []
    for item_id in ITEMS[:2] + ITEMS[3:]:
        assert store.load_offer(item_id) == changed[item_id]
        assert store.poll_counts(item_id).total == 2
    assert calls.count(ITEMS[2]) == 2  # in the batch, then again on its own


def test_the_alert_step_runs_once_per_batch_in_its_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[int]] = []

    def spy(conn: Connection, polls: Sequence[Alerting]) -> list[None]:
        ids = [entry.poll.poll_id for entry in polls]
        query = sa.text("SELECT count(*) FROM polls WHERE id IN :ids").bindparams(
            sa.bindparam("ids", expanding=True)
        )
        assert conn.execute(query, {"ids": ids}).scalar_one() == len(ids)
        seen.append([entry.poll.item_id for entry in polls])
        return [None] * len(polls)

    with monkeypatch.context() as patched:
        patched.setattr(recording, "record_alerts", spy)
        store.apply_polls([write(i, at(0), offer(item_id=i)) for i in ITEMS])
    assert seen == [ITEMS]

    def broken(conn: Connection, polls: Sequence[Alerting]) -> list[None]:
        if any(entry.poll.item_id == ITEMS[0] for entry in polls):
            raise RuntimeError("rules state unreadable")
        return [None] * len(polls)

    monkeypatch.setattr(recording, "record_alerts", broken)
    results = store.apply_polls([write(i, at(1), offer(item_id=i)) for i in ITEMS])
    assert isinstance(fails(results[0]), RuntimeError)
    assert all(ok(r).outcome is PollOutcome.UNCHANGED for r in results[1:])
    assert store.poll_counts(ITEMS[0]).total == 1


def test_polls_of_one_item_in_one_batch_are_recorded_in_order(store: Store) -> None:
    first = offer(item_id=ITEMS[0])
    cheaper = with_sku(first, first.skus[0].sku_id, price=D("9.99"))
    results = store.apply_polls(
        [
            write(ITEMS[0], at(0), first),
            write(ITEMS[1], at(0), offer(item_id=ITEMS[1])),
            write(ITEMS[0], at(1), cheaper),
            write(ITEMS[0], at(2), cheaper),
        ]
    )
    assert [ok(r).outcome for r in results] == [
        PollOutcome.BASELINE,
        PollOutcome.BASELINE,
        PollOutcome.CHANGED,
        PollOutcome.UNCHANGED,
    ]
    assert [c.kind for c in ok(results[2]).changes] == [ChangeKind.PRICE_DROP]
    assert store.load_offer(ITEMS[0]) == cheaper


def test_a_poll_that_cannot_be_recorded_fails_alone(store: Store) -> None:
    store.apply_polls([write(i, at(5), offer(item_id=i)) for i in ITEMS])
    naive = at(6).replace(tzinfo=None)
    results = store.apply_polls(
        [
            write(ITEMS[0], at(1), offer(item_id=ITEMS[0])),  # older than the stored state
            write(ITEMS[1], naive, offer(item_id=ITEMS[1])),
            write(ITEMS[2], at(6), offer(item_id=ITEMS[3])),  # another item's offer
            write(ITEMS[3], at(6), offer(item_id=ITEMS[3])),
        ]
    )
    assert [type(fails(r)) for r in results[:3]] == [ValueError] * 3
    assert ok(results[3]).outcome is PollOutcome.UNCHANGED
    assert [store.poll_counts(i).total for i in ITEMS[:4]] == [1, 1, 1, 2]


def test_leases_are_given_back_and_a_lost_lease_records_nothing(store: Store) -> None:
    now = at(0)
    leases.sync_watchlist(store.engine, [(i, None) for i in ITEMS], now, lambda _i: now)
    assert (
        sorted(leases.claim(store.engine, "me", now, limit=10, lease=timedelta(minutes=5))) == ITEMS
    )
    # Another process takes over one item (our lease on it expired).
    with store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE items SET lease_owner = 'other' WHERE item_id = :i"), {"i": ITEMS[1]}
        )
    seen: list[tuple[PollOutcome, int]] = []

    def schedule(poll: PollResult, failures: int) -> datetime:
        seen.append((poll.outcome, failures))
        return poll.polled_at + timedelta(minutes=30 * (failures + 1))

    lease = Lease("me", schedule)
    results = store.apply_polls(
        [
            write(ITEMS[0], at(1), offer(item_id=ITEMS[0]), lease=lease),
            write(ITEMS[1], at(1), offer(item_id=ITEMS[1]), lease=lease),
            write(ITEMS[2], at(1), timeout(ITEMS[2]), lease=lease),
        ]
    )

    assert isinstance(fails(results[1]), leases.LeaseLost)
    assert store.poll_counts(ITEMS[1]).total == 0
    rows = {r.item_id: r for r in store.list_items()}
    assert rows[ITEMS[1]].lease_owner == "other"
    assert (rows[ITEMS[0]].lease_owner, rows[ITEMS[0]].next_poll_at) == (None, at(31))
    assert (rows[ITEMS[2]].lease_owner, rows[ITEMS[2]].next_poll_at) == (None, at(61))
    assert seen == [(PollOutcome.BASELINE, 0), (PollOutcome.FAILED, 1)]
    assert rows[ITEMS[3]].lease_owner == "me"  # not polled: still ours


def test_one_poll_still_raises_its_error(store: Store) -> None:
    apply_poll(store, ITEMS[0], at(5), offer(item_id=ITEMS[0]))
    with pytest.raises(ValueError, match="before the stored state"):
        apply_poll(store, ITEMS[0], at(1), offer(item_id=ITEMS[0]))


def test_a_database_failure_fails_every_poll_of_the_batch_without_retrying(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def locked(conn: Connection, polls: Sequence[Alerting]) -> None:
        calls.append(len(polls))
        raise sa.exc.OperationalError("UPDATE …", {}, Exception("database is locked"))

    monkeypatch.setattr(recording, "record_alerts", locked)
    results = store.apply_polls([write(i, at(0), offer(item_id=i)) for i in ITEMS])

    errors = [fails(r) for r in results]
    assert all(isinstance(e, StorageError) for e in errors)
    assert [str(ITEMS[n]) in str(e) for n, e in enumerate(errors)] == [True] * len(ITEMS)
    assert calls == [len(ITEMS)]  # one try: the database, not a poll, was the problem
    assert store.list_items() == []
