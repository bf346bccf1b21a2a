"""The SQL views of migration 0004 and the queries documented in docs/schema.md,
on SQLite and PostgreSQL, over history recorded through ``Store.apply_poll``."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from monitor.db.engine import make_engine, upgrade, write_transaction
from monitor.db.models import Base
from monitor.db.outbox import claim, enqueue, mark_dead, mark_sent
from monitor.db.queries import (
    alert_marks,
    count_price_history,
    item_changes,
    iter_price_history,
    price_rows,
    reading,
)
from monitor.db.records import PollResult
from monitor.db.store import Store
from monitor.db.views import ALERT_LOG, LATEST_PRICES, PRICE_HISTORY, VIEWS_METADATA
from monitor.domain import Offer
from tests.factories import (
    ITEM_ID,
    apply_poll,
    at,
    offer,
    plus_sku,
    sku,
    timeout,
    with_sku,
    without_sku,
)
from tests.outbox_helpers import group, target

REPO = Path(__file__).resolve().parent.parent
SKU0, SKU3, SKU8 = "5000000000000", "5000000000003", "5000000000008"
NEW_SKU = "5999"
OTHER_ITEM = 610947572360


def _names(engine: Engine, item_id: int, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE items SET name = :n WHERE item_id = :i"), {"n": name, "i": item_id}
        )


def build_history(store: Store, times: list[datetime]) -> list[Offer]:
    """Four successful polls and one failed one at ``times``; returns the offers.

    0: baseline (9 SKUs); 1: SKU0 29.89 → 25.90 and SKU3 sold out;
    2: SKU8 removed and a new SKU at 19.99; 3: a failed poll; 4: unchanged.
    """
    base = offer()
    second = with_sku(with_sku(base, SKU0, price=Decimal("25.90")), SKU3, stock=0, sold_out=True)
    third = plus_sku(without_sku(second, SKU8), sku(NEW_SKU, "19.99", 40, name="blue / M"))
    apply_poll(store, ITEM_ID, times[0], base)
    apply_poll(store, ITEM_ID, times[1], second)
    apply_poll(store, ITEM_ID, times[2], third)
    apply_poll(store, ITEM_ID, times[3], timeout())
    apply_poll(store, ITEM_ID, times[4], third)
    _names(store.engine, ITEM_ID, "Leopard robe")
    return [base, second, third]


T = [at(0), at(30), at(60), at(90), at(120)]


def _select(conn: Connection, table: sa.Table, *where: Any) -> list[sa.Row[Any]]:
    stmt = sa.select(table).where(*where)
    return list(conn.execute(stmt))


def test_views_exist_with_the_described_columns_and_stay_out_of_the_models(
    migrated_url: str,
) -> None:
    engine = make_engine(migrated_url)
    try:
        inspector = sa.inspect(engine)
        assert set(inspector.get_view_names()) == set(VIEWS_METADATA.tables)
        for view in VIEWS_METADATA.tables.values():
            reflected = [c["name"] for c in inspector.get_columns(view.name)]
            assert reflected == [c.name for c in view.columns], view.name
        assert set(inspector.get_table_names()).isdisjoint(VIEWS_METADATA.tables)
    finally:
        engine.dispose()
    assert set(Base.metadata.tables).isdisjoint(VIEWS_METADATA.tables)


def test_price_history_has_one_row_per_sku_state(store: Store) -> None:
    build_history(store, T)
    with reading(store.engine) as conn:
        rows = _select(conn, PRICE_HISTORY, PRICE_HISTORY.c.item_id == ITEM_ID)
        sku0 = [r for r in rows if r.sku_id == SKU0]
        sku8 = [r for r in rows if r.sku_id == SKU8]
        new = [r for r in rows if r.sku_id == NEW_SKU]
    # 9 baseline rows, new rows for SKU0 and SKU3, one for the new SKU; nothing
    # for the failed and the unchanged poll.
    assert len(rows) == 12
    assert sorted((r.price, r.valid_from, r.valid_to) for r in sku0) == [
        (Decimal("25.90"), T[1], None),
        (Decimal("29.89"), T[0], T[1]),
    ]
    assert all(isinstance(r.price, Decimal) for r in rows)
    assert [str(r.price) for r in sku0 if r.valid_to] == ["29.89"]
    assert [(r.sku_name, r.price, r.stock, r.sold_out, r.valid_to) for r in sku8] == [
        ("red / XL", Decimal("30.00"), 108, False, T[2])
    ]
    assert [(r.sku_name, r.price, r.stock, r.valid_from, r.valid_to) for r in new] == [
        ("blue / M", Decimal("19.99"), 40, T[2], None)
    ]


def test_latest_prices_is_the_current_row_of_every_offered_sku(store: Store) -> None:
    build_history(store, T)
    with reading(store.engine) as conn:
        rows = {r.sku_id: r for r in _select(conn, LATEST_PRICES)}
    assert len(rows) == 9
    assert SKU8 not in rows
    assert rows[SKU0].price == Decimal("25.90")
    assert rows[SKU0].valid_from == T[1]
    assert (rows[SKU3].stock, rows[SKU3].sold_out) == (0, True)
    assert rows[NEW_SKU].price == Decimal("19.99")
    first = rows[NEW_SKU]
    assert (first.item_name, first.title, first.currency) == (
        "Leopard robe",
        "Women's leopard print T-shirt",
        "CNY",
    )
    assert first.checked_at == T[4]
    assert first.watched is False


def alerting_poll(store: Store, when: datetime, item: Offer, targets: list[Any]) -> PollResult:
    """Record a poll of ``item`` and enqueue an alert group for it, as the alert step does."""
    poll = apply_poll(store, item.item_id, when, item)
    with write_transaction(store.engine) as conn:
        enqueue(conn, group(item.item_id, when=when), poll.poll_id, targets, when)
    return poll


def test_alert_log_shows_each_alert_per_target_with_its_delivery_state(store: Store) -> None:
    base = offer()
    apply_poll(store, ITEM_ID, T[0], base)
    _names(store.engine, ITEM_ID, "Leopard robe")
    slack, mail, daily = target("slack"), target("mail"), target("daily", digest=time(9, 0))
    poll = alerting_poll(
        store, T[1], with_sku(base, SKU0, price=Decimal("25.90")), [slack, mail, daily]
    )
    engine = store.engine
    claimed = {row.target: row for row in claim(engine, "w1", T[1], 10)}
    assert set(claimed) == {"slack", "mail"}
    assert mark_sent(engine, claimed["slack"], T[1] + timedelta(seconds=2))
    assert mark_dead(engine, claimed["mail"], "554 mailbox unavailable")
    # 09:00 in Shanghai, the next day: the digest row takes the held alert.
    digest_time = datetime(2025, 3, 2, 1, 0, tzinfo=UTC)
    (digest,) = claim(engine, "w1", digest_time, 10)
    assert digest.key.startswith("digest:daily:")
    assert mark_dead(engine, digest, "HTTP 500 from the webhook")

    with reading(engine) as conn:
        rows = conn.execute(sa.select(ALERT_LOG).order_by(ALERT_LOG.c.notification_id)).all()
        marks = alert_marks(conn, ITEM_ID)
    assert [(r.target, r.state, r.delivery_state) for r in rows] == [
        ("slack", "sent", "sent"),
        ("mail", "dead", "dead"),
        ("daily", "merged", "dead"),
    ]
    assert {r.poll_id for r in rows} == {poll.poll_id}
    assert {r.item_name for r in rows} == {"Leopard robe"}
    assert {r.kinds for r in rows} == {"price_drop"}
    assert rows[0].sent_at == T[1] + timedelta(seconds=2)
    assert rows[1].last_error == "554 mailbox unavailable"
    assert (rows[2].last_error, rows[2].digest_id) == ("HTTP 500 from the webhook", digest.id)
    assert [(m.target, m.kinds, m.delivery_state) for m in marks] == [
        ("slack", ("price_drop",), "sent"),
        ("mail", ("price_drop",), "dead"),
        ("daily", ("price_drop",), "dead"),
    ]
    assert all(m.created_at == T[1] for m in marks)


def test_price_rows_window_and_sku_glob(store: Store) -> None:
    build_history(store, T)
    with reading(store.engine) as conn:
        everything = price_rows(conn, ITEM_ID)
        # A window opening after the first change: SKU0's old row ended before it.
        later = price_rows(conn, ITEM_ID, since=T[1] + timedelta(minutes=1))
        white = price_rows(conn, ITEM_ID, sku_pattern="white *")
        by_id = price_rows(conn, ITEM_ID, sku_pattern="5999")
        changes = item_changes(conn, ITEM_ID, sku_pattern="white / M")
    assert len(everything) == 12
    assert [(r.sku_id, r.price) for r in later if r.sku_id == SKU0] == [(SKU0, Decimal("25.90"))]
    assert len(later) == 10  # all open rows, plus SKU8 which ended at T[2]
    assert {r.sku_name for r in white} == {"white / M", "white / L", "white / XL"}
    assert [(r.sku_id, r.price) for r in white if r.sku_name == "white / M"] == [
        (SKU0, Decimal("29.89")),
        (SKU0, Decimal("25.90")),
    ]
    assert [r.sku_name for r in by_id] == ["blue / M"]
    assert [(c.change.kind, c.change.old, c.change.new) for c in changes] == [
        ("price_drop", Decimal("29.89"), Decimal("25.90"))
    ]


def test_iter_price_history_streams_every_row(store: Store) -> None:
    build_history(store, T)
    other = offer(item_id=OTHER_ITEM, skus=[sku("7001", "8.80", 5, name="only")])
    apply_poll(store, OTHER_ITEM, T[1], other)
    statements: list[tuple[str, dict[str, Any], type]] = []

    def spy(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if "price_history" in statement:
            statements.append((statement, dict(context.execution_options), type(cursor)))

    sa.event.listen(store.engine, "before_cursor_execute", spy)
    try:
        with reading(store.engine) as conn:
            total = count_price_history(conn)
            streamed = iter_price_history(conn, batch=3)
            first = next(streamed)
            rest = list(streamed)
            recent = list(iter_price_history(conn, since=T[2] + timedelta(minutes=1)))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", spy)
    rows = [first, *rest]
    assert total == len(rows) == 13
    assert [(r.item_id, r.sku_id, r.valid_from) for r in rows] == sorted(
        (r.item_id, r.sku_id, r.valid_from) for r in rows
    )
    assert (rows[0].item_id, rows[0].price) == (OTHER_ITEM, Decimal("8.80"))
    assert len(recent) == 10  # the open rows only: every other row ended by T[2]
    streamed_runs = [options for _, options, _ in statements if "yield_per" in options]
    assert streamed_runs and streamed_runs[0]["yield_per"] == 3
    if store.engine.dialect.name == "postgresql":
        import psycopg

        assert any(issubclass(kind, psycopg.ServerCursor) for _, _, kind in statements)


# -- outside readers while the daemon writes (SQLite WAL) ----------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[tuple[Store, Path]]:
    path = tmp_path / "monitor.db"
    url = f"sqlite+pysqlite:///{path}"
    upgrade(url)
    store = Store.open(url)
    yield store, path
    store.close()


def _outside_reader(path: Path) -> sqlite3.Connection:
    """What sqlite3 -readonly or Datasette open: read-only, and no busy wait at all."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0, isolation_level=None)
    return conn


def test_outside_reader_and_the_store_writing_do_not_block_each_other(
    sqlite_store: tuple[Store, Path],
) -> None:
    store, path = sqlite_store
    base = offer()
    apply_poll(store, ITEM_ID, at(0), base)
    reader = _outside_reader(path)
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        reader.execute("BEGIN")
        before = reader.execute("SELECT count(*) FROM price_history").fetchone()
        # The store records polls while the outside read transaction is open.
        current = base
        for minute in range(1, 6):
            current = with_sku(current, SKU0, price=Decimal(f"{29 - minute}.50"))
            apply_poll(store, ITEM_ID, at(minute), current)
        # The reader still sees its snapshot, then the new rows once it ends.
        assert reader.execute("SELECT count(*) FROM price_history").fetchone() == before
        reader.execute("COMMIT")
        latest = reader.execute(
            "SELECT price FROM latest_prices WHERE sku_id = ?", (SKU0,)
        ).fetchone()
        assert reader.execute("SELECT count(*) FROM price_history").fetchone() == (before[0] + 5,)
        assert latest == (24.5,)
    finally:
        reader.close()
    polls = store.poll_counts(ITEM_ID)
    assert (polls.baseline, polls.changed) == (1, 5)


def test_outside_reader_reads_while_a_write_transaction_is_open(
    sqlite_store: tuple[Store, Path],
) -> None:
    store, path = sqlite_store
    apply_poll(store, ITEM_ID, at(0), offer())
    reader = _outside_reader(path)
    try:
        with write_transaction(store.engine) as conn:
            conn.execute(
                sa.text("UPDATE items SET name = 'renamed' WHERE item_id = :i"), {"i": ITEM_ID}
            )
            # The write lock is held (BEGIN IMMEDIATE): reading does not wait for it.
            seen = reader.execute("SELECT name FROM items").fetchone()
            count = reader.execute("SELECT count(*) FROM latest_prices").fetchone()
        assert seen == (None,)
        assert count == (9,)
        assert reader.execute("SELECT name FROM items").fetchone() == ("renamed",)
    finally:
        reader.close()


# -- the queries of docs/schema.md -------------------------------------------------

_BLOCK_RE = re.compile(r"```sql\n-- ([a-z0-9-]+) \(([^)]*)\)\n(.*?)```", re.DOTALL)


def doc_queries(dialect: str) -> dict[str, str]:
    """The documented queries for ``dialect``, by name."""
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[dialect]
    text = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    found: dict[str, str] = {}
    for name, dialects, sql in _BLOCK_RE.findall(text):
        if label in [d.strip() for d in dialects.split(",")]:
            assert name not in found, f"{name} documented twice for {label}"
            found[name] = sql.strip().rstrip(";")
    return found


def test_every_documented_query_has_both_dialects() -> None:
    sqlite_names, pg_names = set(doc_queries("sqlite")), set(doc_queries("postgresql"))
    assert sqlite_names == pg_names
    assert sqlite_names == {
        "state-at-item",
        "state-at-skus",
        "state-at-tiers",
        "lowest-90-days",
        "dropped-this-week",
        "sold-out-items",
        "sold-out-skus",
        "dead-alerts",
    }


def _run(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(sql)]


def _money(value: Any) -> Decimal:
    """A price as a raw driver returns it: Decimal on PostgreSQL, int/float on SQLite."""
    return value if isinstance(value, Decimal) else Decimal(repr(value))


def test_documented_state_at_time_queries(store: Store) -> None:
    build_history(store, T)
    queries = doc_queries(store.engine.dialect.name)
    # The documented T is 08:30 UTC on 1 March 2025: T[1], the first change, exactly.
    assert T[1] == datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    (facts,) = _run(store.engine, queries["state-at-item"])
    skus = _run(store.engine, queries["state-at-skus"])
    tiers = _run(store.engine, queries["state-at-tiers"])
    assert facts[0] == "Women's leopard print T-shirt"
    assert (_money(facts[3]), _money(facts[4])) == (Decimal("25.50"), Decimal("35.00"))
    assert len(skus) == 9
    assert (skus[0][0], _money(skus[0][2])) == (SKU0, Decimal("25.90"))
    assert [(s[0], s[3], bool(s[4])) for s in skus if s[0] == SKU3] == [(SKU3, 0, True)]
    assert [(q, _money(p)) for q, p in tiers] == [
        (1, Decimal("25.50")),
        (50, Decimal("24.00")),
        (500, Decimal("22.35")),
    ]
    expected = store.load_offer(ITEM_ID, T[1])
    assert expected is not None
    assert [(s.sku_id, s.price) for s in expected.skus] == [(s[0], _money(s[2])) for s in skus]


def test_documented_queries_relative_to_now(store: Store) -> None:
    now = datetime.now(UTC).replace(microsecond=0)

    def days(n: int) -> datetime:
        return now - timedelta(days=n)

    base = offer(
        skus=[
            sku("a", "30.00", 10, name="A"),
            sku("b", "20.00", 10, name="B"),
            sku("c", "50.00", 10, name="C"),
            sku("d", "10.00", 10, name="D"),
        ]
    )
    apply_poll(store, ITEM_ID, days(120), base)
    step = with_sku(base, "a", price=Decimal("12.00"))  # long ago: outside 90 days
    apply_poll(store, ITEM_ID, days(100), step)
    step = with_sku(step, "a", price=Decimal("29.00"))
    apply_poll(store, ITEM_ID, days(95), step)
    step = with_sku(step, "b", price=Decimal("22.00"))
    apply_poll(store, ITEM_ID, days(40), step)
    # This week: b drops exactly 10 %, c by 9.8 %, d by 30 % and then sells out.
    step = with_sku(step, "b", price=Decimal("19.80"))
    step = with_sku(step, "c", price=Decimal("45.10"))
    step = with_sku(step, "d", price=Decimal("7.00"))
    apply_poll(store, ITEM_ID, days(3), step)
    step = with_sku(step, "d", stock=0, sold_out=True)
    apply_poll(store, ITEM_ID, days(1), step)
    gone = replace(
        offer(item_id=OTHER_ITEM, skus=[sku("z", "5.00", 0, name="Z")]), title="Sold out robe"
    )
    apply_poll(store, OTHER_ITEM, days(2), gone)
    _names(store.engine, OTHER_ITEM, "Gone")

    queries = doc_queries(store.engine.dialect.name)
    lowest = _run(store.engine, queries["lowest-90-days"])
    assert [(r[0], r[1], r[2], _money(r[3])) for r in lowest] == [
        (OTHER_ITEM, "z", "Z", Decimal("5.00")),
        (ITEM_ID, "a", "A", Decimal("29.00")),
        (ITEM_ID, "b", "B", Decimal("19.80")),
        (ITEM_ID, "c", "C", Decimal("45.10")),
        (ITEM_ID, "d", "D", Decimal("7.00")),
    ]
    dropped = _run(store.engine, queries["dropped-this-week"])
    assert [(r[2], _money(r[4]), _money(r[5]), _money(r[6])) for r in dropped] == [
        ("d", Decimal("10.00"), Decimal("7.00"), Decimal("-30.0")),
        ("b", Decimal("22.00"), Decimal("19.80"), Decimal("-10.0")),
    ]
    items = _run(store.engine, queries["sold-out-items"])
    assert [(r[0], r[1], r[2]) for r in items] == [(OTHER_ITEM, "Gone", "Sold out robe")]
    skus = _run(store.engine, queries["sold-out-skus"])
    assert [(r[0], r[2]) for r in skus] == [(OTHER_ITEM, "z"), (ITEM_ID, "d")]
    assert _run(store.engine, queries["dead-alerts"]) == []
