"""The Store on SQLite and PostgreSQL: atomic polls, SCD2 history, reads."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from monitor.db import recording
from monitor.db.alerting import Alerting
from monitor.db.engine import make_engine
from monitor.db.records import PollOutcome
from monitor.db.store import Store
from monitor.domain import Change, ChangeKind, Offer
from monitor.errors import StorageError
from tests.factories import (
    ITEM_ID,
    apply_poll,
    at,
    offer,
    parse_error,
    plus_sku,
    sku,
    tier,
    timeout,
    unavailable,
    with_sku,
    with_tiers,
    without_sku,
)

D = Decimal
TABLES = ("items", "item_states", "sku_states", "tier_states", "polls", "changes")
STATE_TABLES = ("item_states", "sku_states", "tier_states")


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()
            for name in TABLES
        }


def open_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        query = sa.text(f"SELECT count(*) FROM {table} WHERE valid_to IS NULL")
        return int(conn.execute(query).scalar_one())


def sorted_skus(o: Offer | None) -> Offer | None:
    return None if o is None else replace(o, skus=tuple(sorted(o.skus, key=lambda s: s.sku_id)))


# -- baseline and unchanged polls -------------------------------------------------------------


def test_baseline_poll_stores_the_offer_and_reports_no_change(store: Store) -> None:
    first = offer()
    result = apply_poll(store, ITEM_ID, at(0), first)

    assert result.outcome is PollOutcome.BASELINE
    assert result.changes == ()
    assert result.offer == first
    assert result.polled_at == at(0)
    counts = row_counts(store.engine)
    assert counts == {
        "items": 1,
        "item_states": 1,
        "sku_states": 9,
        "tier_states": 3,
        "polls": 1,
        "changes": 0,
    }
    assert store.load_offer(ITEM_ID) == first
    item = store.item_row(ITEM_ID)
    assert item is not None
    assert (item.title, item.currency, item.url) == (first.title, "CNY", first.url)
    assert (item.first_seen_at, item.last_polled_at, item.last_success_at) == (at(0),) * 3
    assert item.last_changed_at is None
    assert (item.polls_total, item.polls_failed, item.consecutive_failures) == (1, 0, 0)
    assert item.available is True
    assert (item.watched, item.name) == (False, None)  # polled ad hoc, not from the watchlist


def _state_bytes(conn: Connection) -> dict[str, tuple[int, int]]:
    """Per table (with its indexes): (data bytes, bytes on disk).

    SQLite: record payload from ``dbstat`` and whole pages; PostgreSQL: the sum
    of the rows' ``pg_column_size`` and ``pg_total_relation_size`` (whole pages).
    """
    out: dict[str, tuple[int, int]] = {}
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        btrees = conn.exec_driver_sql(
            "SELECT tbl_name, name FROM sqlite_master WHERE type IN ('table', 'index')"
        ).all()
        for table in TABLES:
            names = [name for tbl, name in btrees if tbl == table]
            payload, pages = conn.execute(
                sa.text(
                    "SELECT coalesce(sum(payload), 0), coalesce(sum(pgsize), 0) FROM dbstat "
                    "WHERE name IN :names"
                ).bindparams(sa.bindparam("names", expanding=True)),
                {"names": names},
            ).one()
            out[table] = (int(payload), int(pages))
        return out
    for table in TABLES:
        data = conn.exec_driver_sql(
            f"SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t"
        ).scalar_one()
        disk = conn.execute(
            sa.text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": table}
        ).scalar_one()
        out[table] = (int(data), int(disk))
    return out


def test_unchanged_polls_add_only_poll_rows(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    first = offer()
    apply_poll(store, ITEM_ID, at(0), first)
    before = row_counts(store.engine)
    with store.engine.connect() as conn:
        bytes_before = _state_bytes(conn)

    outcomes = {apply_poll(store, ITEM_ID, at(i), offer()).outcome for i in range(1, 101)}

    assert outcomes == {PollOutcome.UNCHANGED}
    after = row_counts(store.engine)
    assert after["polls"] - before["polls"] == 100
    assert {t: after[t] - before[t] for t in (*STATE_TABLES, "changes", "items")} == {
        "item_states": 0,
        "sku_states": 0,
        "tier_states": 0,
        "changes": 0,
        "items": 0,
    }
    item = store.item_row(ITEM_ID)
    assert item is not None
    assert (item.polls_total, item.last_polled_at, item.last_changed_at) == (101, at(100), None)
    with store.engine.connect() as conn:
        bytes_after = _state_bytes(conn)
        dialect = conn.dialect.name
    grown = {
        t: (bytes_after[t][0] - bytes_before[t][0], bytes_after[t][1] - bytes_before[t][1])
        for t in TABLES
        if bytes_after[t] != bytes_before[t]
    }
    with capsys.disabled():
        print(f"\n[{dialect}] 100 unchanged polls added (data bytes, bytes on disk): {grown}")
    assert set(grown) <= {"polls", "items"}
    assert grown["polls"][0] > 0


def test_reordered_skus_and_rescaled_prices_are_no_change(store: Store) -> None:
    first = offer()
    apply_poll(store, ITEM_ID, at(0), first)
    last = first.skus[8]
    assert str(last.price) == "30.00"
    rescaled = (*first.skus[:8], replace(last, price=D("30.000")))
    shuffled = replace(first, skus=tuple(reversed(rescaled)), price_max=D("35.0"))
    before = row_counts(store.engine)

    result = apply_poll(store, ITEM_ID, at(1), shuffled)

    assert (result.outcome, result.changes) == (PollOutcome.UNCHANGED, ())
    after = row_counts(store.engine)
    assert {t: after[t] - before[t] for t in STATE_TABLES} == dict.fromkeys(STATE_TABLES, 0)


def test_full_comparison_when_the_state_digest_is_missing(store: Store) -> None:
    """``items.state_hash`` is only a shortcut: without it the rows are compared."""
    first = offer()
    apply_poll(store, ITEM_ID, at(0), first)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE items SET state_hash = NULL"))
    before = row_counts(store.engine)

    same = apply_poll(store, ITEM_ID, at(1), first)
    assert (same.outcome, same.changes) == (PollOutcome.UNCHANGED, ())
    after = row_counts(store.engine)
    assert {t: after[t] - before[t] for t in STATE_TABLES} == dict.fromkeys(STATE_TABLES, 0)

    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE items SET state_hash = 'stale'"))
    cheaper = with_sku(first, first.skus[2].sku_id, price=D("30.10"))
    changed = apply_poll(store, ITEM_ID, at(2), cheaper)
    assert [c.kind for c in changed.changes] == [ChangeKind.PRICE_DROP]
    assert store.load_offer(ITEM_ID) == cheaper
    again = apply_poll(store, ITEM_ID, at(3), cheaper)
    assert again.outcome is PollOutcome.UNCHANGED


# -- changes --------------------------------------------------------------------------------


def test_price_change_writes_one_sku_row_and_closes_one(store: Store) -> None:
    first = offer()
    apply_poll(store, ITEM_ID, at(0), first)
    target = first.skus[4]  # 27.00: neither the cheapest nor the dearest SKU
    second = with_sku(first, target.sku_id, price=D("26.10"))
    assert (second.price_min, second.price_max) == (first.price_min, first.price_max)
    before = row_counts(store.engine)

    result = apply_poll(store, ITEM_ID, at(5), second)

    assert result.outcome is PollOutcome.CHANGED
    assert result.changes == (
        Change(
            ChangeKind.PRICE_DROP,
            sku_id=target.sku_id,
            sku_name=target.name,
            old=D("27.00"),
            new=D("26.10"),
            pct=D("-3.3"),
        ),
    )
    after = row_counts(store.engine)
    assert {t: after[t] - before[t] for t in TABLES} == {
        "items": 0,
        "item_states": 0,
        "sku_states": 1,
        "tier_states": 0,
        "polls": 1,
        "changes": 1,
    }
    assert open_rows(store.engine, "sku_states") == 9
    with store.engine.connect() as conn:
        closed = conn.execute(
            sa.text("SELECT sku_id, price FROM sku_states WHERE valid_to IS NOT NULL")
        ).all()
    assert [c.sku_id for c in closed] == [target.sku_id]
    assert store.load_offer(ITEM_ID) == second
    stored = store.changes_for(ITEM_ID)
    assert [c.change for c in stored] == list(result.changes)
    assert stored[0].poll_id == result.poll_id
    assert stored[0].detected_at == at(5)
    item = store.item_row(ITEM_ID)
    assert item is not None and item.last_changed_at == at(5)


def test_state_at_any_time_is_rebuilt_exactly(store: Store) -> None:
    o1 = offer()
    ids = [s.sku_id for s in o1.skus]
    o2 = with_sku(o1, ids[3], price=D("24.99"))  # new cheapest SKU: item facts change too
    o3 = with_tiers(
        plus_sku(without_sku(o2, ids[4]), sku("5999999999999", "41.05", 7, name="blue / S")),
        [tier(1, "24.99"), tier(100, "23.80"), tier(500, "22.35")],
    )
    o4 = with_sku(o3, ids[0], stock=0, sold_out=True)
    o5 = replace(o4, title="Women's leopard T-shirt (new season)")
    timeline = [(at(0), o1), (at(10), o2), (at(20), o3), (at(30), o4), (at(40), o5)]
    for when, polled in timeline:
        apply_poll(store, ITEM_ID, when, polled)
        apply_poll(store, ITEM_ID, when.replace(second=30), polled)  # unchanged repeat

    assert store.load_offer(ITEM_ID, at=at(-1)) is None
    checks = [
        (at(0), o1),
        (at(9, seconds=59), o1),
        (at(10), o2),
        (at(15), o2),
        (at(20), o3),
        (at(30), o4),
        (at(35), o4),
        (at(40), o5),
        (at(600), o5),
    ]
    for when, expected in checks:
        rebuilt = store.load_offer(ITEM_ID, at=when)
        assert sorted_skus(rebuilt) == sorted_skus(expected), when
    # Without SKUs added or removed the polled order is kept exactly.
    assert store.load_offer(ITEM_ID, at=at(0)) == o1
    assert store.load_offer(ITEM_ID, at=at(10)) == o2
    assert store.load_offer(ITEM_ID) == store.load_offer(ITEM_ID, at=at(600))
    # The title is history too.
    earlier = store.load_offer(ITEM_ID, at=at(35))
    assert earlier is not None and earlier.title == o4.title != o5.title
    assert open_rows(store.engine, "item_states") == 1
    assert open_rows(store.engine, "sku_states") == 9
    assert open_rows(store.engine, "tier_states") == 3


def test_sku_removed_and_added_and_tiers_changed(store: Store) -> None:
    o1 = offer()
    apply_poll(store, ITEM_ID, at(0), o1)
    gone = o1.skus[8]
    new = sku("5888888888888", "30.00", 12, name="blue / M")
    o2 = with_tiers(
        plus_sku(without_sku(o1, gone.sku_id), new), [tier(1, "25.50"), tier(80, "24.00")]
    )

    result = apply_poll(store, ITEM_ID, at(1), o2)

    kinds = sorted((c.kind, c.sku_id or str(c.min_qty)) for c in result.changes)
    assert kinds == sorted(
        [
            (ChangeKind.SKU_ADDED, new.sku_id),
            (ChangeKind.SKU_REMOVED, gone.sku_id),
            (ChangeKind.TIER_CHANGE, "50"),
            (ChangeKind.TIER_CHANGE, "80"),
            (ChangeKind.TIER_CHANGE, "500"),
        ]
    )
    assert store.load_offer(ITEM_ID) == o2
    assert [c.change for c in store.changes_for(ITEM_ID)] == list(result.changes)
    with store.engine.connect() as conn:
        open_ids = conn.execute(
            sa.text("SELECT sku_id FROM sku_states WHERE valid_to IS NULL")
        ).scalars()
        assert gone.sku_id not in set(open_ids)


# -- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [timeout(), parse_error()], ids=["timeout", "parse"])
def test_failed_poll_writes_a_poll_row_only(store: Store, error: Exception) -> None:
    first = offer()
    apply_poll(store, ITEM_ID, at(0), first)
    before = row_counts(store.engine)

    result = apply_poll(store, ITEM_ID, at(1), error)  # type: ignore[arg-type]

    assert result.outcome is PollOutcome.FAILED
    assert result.changes == ()
    assert result.offer is None
    reason = "timeout" if isinstance(error, type(timeout())) else "parse"
    assert result.error_reason == reason
    assert result.error_code == (499 if reason == "timeout" else None)
    assert result.error_message == str(error)
    after = row_counts(store.engine)
    assert {t: after[t] - before[t] for t in TABLES} == {
        "items": 0,
        "item_states": 0,
        "sku_states": 0,
        "tier_states": 0,
        "polls": 1,
        "changes": 0,
    }
    assert store.load_offer(ITEM_ID) == first
    item = store.item_row(ITEM_ID)
    assert item is not None
    assert (item.polls_total, item.polls_failed, item.consecutive_failures) == (2, 1, 1)
    assert (item.last_error_reason, item.last_error) == (reason, str(error))
    assert (item.last_polled_at, item.last_success_at) == (at(1), at(0))
    polls = store.recent_polls(ITEM_ID)
    assert [(p.outcome, p.error_reason) for p in polls] == [
        (PollOutcome.FAILED, reason),
        (PollOutcome.BASELINE, None),
    ]

    # The next success with the same offer is no change: a failure never looks like one.
    again = apply_poll(store, ITEM_ID, at(2), first)
    assert (again.outcome, again.changes) == (PollOutcome.UNCHANGED, ())
    item = store.item_row(ITEM_ID)
    assert item is not None
    assert (item.consecutive_failures, item.last_error_reason, item.last_error) == (0, None, None)


def test_failure_before_any_success_creates_the_item_without_state(store: Store) -> None:
    result = apply_poll(store, ITEM_ID, at(0), timeout())
    assert result.outcome is PollOutcome.FAILED
    assert store.load_offer(ITEM_ID) is None
    counts = row_counts(store.engine)
    assert (counts["items"], counts["polls"], counts["sku_states"]) == (1, 1, 0)
    item = store.item_row(ITEM_ID)
    assert item is not None and item.title is None and item.first_seen_at == at(0)


def test_unavailable_after_n_417s_then_available_again(store: Store) -> None:
    first = offer()
    apply_poll(store, ITEM_ID, at(0), first)

    results = [
        apply_poll(store, ITEM_ID, at(i), unavailable(), unavailable_after=3) for i in (1, 2, 3, 4)
    ]

    assert [r.outcome for r in results] == [PollOutcome.UNAVAILABLE] * 4
    assert [r.changes for r in results] == [(), (), (Change(ChangeKind.ITEM_UNAVAILABLE),), ()]
    assert results[0].error_code == 417
    item = store.item_row(ITEM_ID)
    assert item is not None
    assert (item.available, item.unavailable_streak, item.consecutive_failures) == (False, 4, 4)
    assert item.last_changed_at == at(3)
    assert store.load_offer(ITEM_ID) == first

    back = apply_poll(store, ITEM_ID, at(5), first)

    assert back.outcome is PollOutcome.CHANGED
    assert back.changes == (Change(ChangeKind.ITEM_AVAILABLE),)
    item = store.item_row(ITEM_ID)
    assert item is not None
    assert (item.available, item.unavailable_streak, item.consecutive_failures) == (True, 0, 0)
    assert [c.change.kind for c in store.changes_for(ITEM_ID)] == [
        ChangeKind.ITEM_UNAVAILABLE,
        ChangeKind.ITEM_AVAILABLE,
    ]
    assert [c.detected_at for c in store.changes_for(ITEM_ID, since=at(4))] == [at(5)]


def test_first_success_after_417s_is_a_silent_baseline(store: Store) -> None:
    for i in range(3):
        apply_poll(store, ITEM_ID, at(i), unavailable(), unavailable_after=3)
    assert [c.change.kind for c in store.changes_for(ITEM_ID)] == [ChangeKind.ITEM_UNAVAILABLE]

    result = apply_poll(store, ITEM_ID, at(3), offer())

    assert (result.outcome, result.changes) == (PollOutcome.BASELINE, ())
    item = store.item_row(ITEM_ID)
    assert item is not None and item.available is True


# -- atomicity ------------------------------------------------------------------------------


def test_the_alert_step_runs_in_the_poll_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, str]] = []

    def spy(conn: Connection, polls: Sequence[Alerting]) -> list[None]:
        for entry in polls:
            row = conn.execute(
                sa.text("SELECT id, outcome FROM polls WHERE id = :id"),
                {"id": entry.poll.poll_id},
            ).one()
            seen.append((row.id, row.outcome))
        return [None] * len(polls)

    monkeypatch.setattr(recording, "record_alerts", spy)
    result = apply_poll(store, ITEM_ID, at(0), offer())
    assert seen == [(result.poll_id, "baseline")]


class Boom(RuntimeError):
    pass


def _explode(conn: Connection, polls: Sequence[Alerting]) -> list[None]:
    raise Boom("outbox write failed")


def test_nothing_is_written_when_the_alert_step_raises_on_the_first_poll(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recording, "record_alerts", _explode)
    with pytest.raises(Boom):
        apply_poll(store, ITEM_ID, at(0), offer())
    assert row_counts(store.engine) == dict.fromkeys(TABLES, 0)
    assert store.item_row(ITEM_ID) is None


def test_nothing_is_written_when_the_alert_step_raises_on_a_change(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = offer()
    apply_poll(store, ITEM_ID, at(0), first)
    before = row_counts(store.engine)
    item_before = store.item_row(ITEM_ID)
    changed = with_sku(first, first.skus[0].sku_id, price=D("19.99"), stock=0, sold_out=True)

    with monkeypatch.context() as patched:
        patched.setattr(recording, "record_alerts", _explode)
        with pytest.raises(Boom):
            apply_poll(store, ITEM_ID, at(1), changed)

    assert row_counts(store.engine) == before
    assert store.item_row(ITEM_ID) == item_before
    assert store.load_offer(ITEM_ID) == first
    # The same poll goes through afterwards and reports the change.
    result = apply_poll(store, ITEM_ID, at(2), changed)
    assert {c.kind for c in result.changes} == {ChangeKind.PRICE_DROP, ChangeKind.SOLD_OUT}


def test_concurrent_writers_do_not_collide(migrated_url: str) -> None:
    """Two stores (two pools) writing at once: the first poll of a new item races in
    both, then each polls items of its own. No lock errors, one baseline per item."""
    stores = [Store.open(migrated_url), Store.open(migrated_url)]
    barrier = threading.Barrier(2)
    outcomes: dict[int, list[PollOutcome]] = {ITEM_ID: [], 1: [], 2: []}
    errors: list[BaseException] = []

    def run(store: Store, own_item: int) -> None:
        try:
            barrier.wait()
            outcomes[ITEM_ID].append(apply_poll(store, ITEM_ID, at(0), offer()).outcome)
            for i in range(15):
                result = apply_poll(store, own_item, at(i), offer(item_id=own_item))
                outcomes[own_item].append(result.outcome)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s, n)) for n, s in enumerate(stores, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert sorted(outcomes[ITEM_ID]) == [PollOutcome.BASELINE, PollOutcome.UNCHANGED]
        for own in (1, 2):
            assert outcomes[own] == [PollOutcome.BASELINE] + [PollOutcome.UNCHANGED] * 14
        counts = row_counts(stores[0].engine)
        assert (counts["items"], counts["polls"], counts["sku_states"]) == (3, 32, 27)
        item = stores[0].item_row(ITEM_ID)
        assert item is not None and item.polls_total == 2
    finally:
        for s in stores:
            s.close()


# -- input checks and errors ----------------------------------------------------------------


def test_rejects_naive_time_and_wrong_item(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone"):
        apply_poll(store, ITEM_ID, at(0).replace(tzinfo=None), offer())
    with pytest.raises(ValueError, match="not 1"):
        apply_poll(store, 1, at(0), offer())
    assert row_counts(store.engine)["polls"] == 0


def test_rejects_a_poll_older_than_the_stored_state(store: Store) -> None:
    apply_poll(store, ITEM_ID, at(10), offer())
    with pytest.raises(ValueError, match="before the stored state"):
        apply_poll(store, ITEM_ID, at(5), offer())
    assert row_counts(store.engine)["polls"] == 1


def test_database_errors_become_storage_errors(db_url: str) -> None:
    store = Store(make_engine(db_url))
    try:
        with pytest.raises(StorageError, match=f"recording a poll of item {ITEM_ID}"):
            apply_poll(store, ITEM_ID, at(0), offer())  # no schema: the tables are missing
        with pytest.raises(StorageError, match="listing items"):
            store.list_items()
    finally:
        store.close()


# -- reads ----------------------------------------------------------------------------------


def test_poll_counts_and_item_listing(store: Store) -> None:
    other = 610947572360
    apply_poll(store, ITEM_ID, at(0), offer())
    apply_poll(store, ITEM_ID, at(1), offer())
    apply_poll(store, ITEM_ID, at(2), with_sku(offer(), offer().skus[0].sku_id, stock=3))
    apply_poll(store, ITEM_ID, at(3), timeout())
    apply_poll(store, ITEM_ID, at(4), unavailable())
    apply_poll(store, other, at(5), offer(item_id=other))

    mine = store.poll_counts(ITEM_ID)
    assert (mine.baseline, mine.unchanged, mine.changed, mine.failed, mine.unavailable) == (
        1,
        1,
        1,
        1,
        1,
    )
    assert mine.total == 5
    assert store.poll_counts().total == 6
    assert store.poll_counts(since=at(3)).total == 3
    assert [i.item_id for i in store.list_items()] == [other, ITEM_ID]
    assert [p.polled_at for p in store.recent_polls(ITEM_ID, limit=2)] == [at(4), at(3)]
    assert store.item_row(123) is None
    assert store.load_offer(123) is None
    assert store.changes_for(123) == []
