"""Alert rules for a batch of polls: the same states and outbox rows as poll by poll."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.alerts.pipeline import record_alerts, record_alerts_batch
from monitor.alerts.state import RuleState
from monitor.alerts.state_store import (
    load_rule_state,
    load_rule_states,
    save_rule_state,
    save_rule_states,
)
from monitor.db.records import PollResult
from monitor.db.store import PollWrite, Store
from monitor.watchlist_model import AlertKind, Item, Rules, Watchlist
from tests.factories import at, offer, timeout, with_sku
from tests.outbox_helpers import target

D = Decimal
ITEMS = [3001, 3002, 3003, 3004]
RULES = Rules(
    interval=timedelta(minutes=10),
    notify=("hook",),
    alert_on=(
        AlertKind.PRICE_DROP,
        AlertKind.PRICE_RISE,
        AlertKind.SOLD_OUT,
        AlertKind.BACK_IN_STOCK,
        AlertKind.POLL_FAILING,
    ),
    price_drop_pct=D(1),
    price_rise_pct=D(1),
    failing_after=2,
)


def watchlist(tmp_path: Path) -> Watchlist:
    return Watchlist(
        path=tmp_path / "watchlist.toml",
        targets=MappingProxyType({"hook": target("hook")}),
        defaults=RULES,
        items=tuple(Item(i, f"item {i}", RULES) for i in ITEMS),
    )


def script() -> list[list[PollWrite]]:
    """Rounds of polls: baselines, drops, a sell-out, failures, a recovery."""
    first_sku = offer().skus[0].sku_id
    rounds = []
    for minute in range(6):
        writes = []
        for n, item_id in enumerate(ITEMS):
            base = offer(item_id=item_id)
            result: Any = base
            if minute in (1, 2) and n == 0:
                result = with_sku(base, first_sku, price=D("19.99"))
            if minute >= 2 and n == 1:
                result = with_sku(base, first_sku, stock=0, sold_out=True)
            if minute in (2, 3) and n == 2:
                result = timeout(item_id)
            if minute >= 4 and n == 3:
                result = with_sku(base, first_sku, price=D("39.99"))
            writes.append(PollWrite(item_id, at(minute, seconds=n), result))
        rounds.append(writes)
    return rounds


def recorded(store: Store) -> dict[str, Any]:
    with store.engine.connect() as conn:
        states: dict[int, str] = {
            int(row.item_id): str(row.state)
            for row in conn.execute(sa.text("SELECT item_id, state FROM rule_states"))
        }
        outbox = [
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "SELECT n.item_id, n.target, n.kinds, n.payload, n.state, p.polled_at"
                    " FROM notifications n JOIN polls p ON p.id = n.poll_id"
                    " ORDER BY n.item_id, p.polled_at"
                )
            )
        ]
    return {"states": states, "outbox": outbox}


def clear(store: Store) -> None:
    with store.engine.begin() as conn:
        for table in ("notifications", "rule_states", "changes", "polls"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
        for table in ("item_states", "sku_states", "tier_states", "items"):
            conn.execute(sa.text(f"DELETE FROM {table}"))


def test_a_batch_alerts_exactly_like_one_poll_at_a_time(store: Store, tmp_path: Path) -> None:
    wl = watchlist(tmp_path)
    items = {item.id: item for item in wl.items}
    one_by_one = []
    for writes in script():
        for w in writes:

            def extra(conn: Connection, poll: PollResult) -> None:
                one_by_one.append(record_alerts(conn, poll, items[poll.item_id], wl))

            store.apply_poll(w.item_id, w.polled_at, w.result, extra=extra)
    expected = recorded(store)
    assert expected["outbox"], "the script should alert"
    clear(store)

    batched: list[Any] = []

    def after(conn: Connection, polls: Sequence[PollResult]) -> None:
        batched.extend(record_alerts_batch(conn, [(p, items[p.item_id]) for p in polls], wl))

    for writes in script():
        store.apply_polls(writes, after=after)

    assert recorded(store) == expected
    assert batched == one_by_one


def test_an_unchanged_state_is_not_written_again(store: Store, tmp_path: Path) -> None:
    wl = watchlist(tmp_path)
    item = wl.items[0]

    def after(conn: Connection, polls: Sequence[PollResult]) -> None:
        record_alerts_batch(conn, [(p, item) for p in polls], wl)

    store.apply_polls([PollWrite(item.id, at(0), offer(item_id=item.id))], after=after)
    with store.engine.connect() as conn:
        written = conn.execute(sa.text("SELECT updated_at FROM rule_states")).scalar_one()
    store.apply_polls([PollWrite(item.id, at(1), offer(item_id=item.id))], after=after)
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT updated_at FROM rule_states")).scalar_one() == written


def test_states_of_many_items_round_trip(store: Store) -> None:
    store.apply_polls([PollWrite(i, at(0), offer(item_id=i)) for i in ITEMS])
    base = RuleState()
    seen = replace(base, seen=True)
    with store.engine.begin() as conn:
        save_rule_state(conn, ITEMS[0], seen, at(0))
        save_rule_states(conn, [(ITEMS[1], base, at(0)), (ITEMS[0], base, at(1))])
        loaded = load_rule_states(conn, [*ITEMS, ITEMS[0]])
        assert set(loaded) == {ITEMS[0], ITEMS[1]}
        assert loaded[ITEMS[0]].state == base == load_rule_state(conn, ITEMS[0])
        assert loaded[ITEMS[0]].unchanged(base)
        assert not loaded[ITEMS[0]].unchanged(seen)
        assert load_rule_state(conn, ITEMS[2]) == RuleState()
