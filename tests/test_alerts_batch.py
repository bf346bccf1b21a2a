"""Alert rules for a batch of polls: the same states and outbox rows as poll by poll."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import sqlalchemy as sa

from monitor.alerts.state import RuleState, SkuMemory
from monitor.db import rule_states as state_store
from monitor.db.engine import write_transaction
from monitor.db.records import PollResult
from monitor.db.rule_states import (
    StoredState,
    load_rule_state,
    load_rule_states,
    save_rule_state,
    save_rule_states,
)
from monitor.db.store import PollWrite, Store
from monitor.domain import ChangeKind
from monitor.errors import StorageError
from monitor.watchlist.model import Item, Rules, Watchlist
from tests.factories import apply_poll, at, offer, timeout, with_sku, write
from tests.outbox_helpers import target
from tests.rules_helpers import worked_out_in_full

D = Decimal
ITEMS = [3001, 3002, 3003, 3004]
RULES = Rules(
    interval=timedelta(minutes=10),
    notify=("hook",),
    alert_on=(
        ChangeKind.PRICE_DROP,
        ChangeKind.PRICE_RISE,
        ChangeKind.SOLD_OUT,
        ChangeKind.BACK_IN_STOCK,
        ChangeKind.POLL_FAILING,
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
            writes.append(write(item_id, at(minute, seconds=n), result))
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


def watched(writes: Sequence[PollWrite], wl: Watchlist) -> list[PollWrite]:
    """``writes`` as the daemon makes them: each with its watchlist item and targets."""
    out = []
    for w in writes:
        item = wl.item(w.item_id)
        assert item is not None
        out.append(replace(w, item=item, targets=wl.targets_of(item)))
    return out


def alerted(results: Sequence[PollResult | Exception]) -> list[tuple[str, ...]]:
    assert not [r for r in results if isinstance(r, Exception)]
    return [r.alerted for r in results if isinstance(r, PollResult)]


def test_a_batch_alerts_exactly_like_one_poll_at_a_time(store: Store, tmp_path: Path) -> None:
    wl = watchlist(tmp_path)
    one_by_one = []
    for writes in script():
        for w in watched(writes, wl):
            one_by_one.extend(alerted(store.apply_polls([w])))
    expected = recorded(store)
    assert expected["outbox"], "the script should alert"
    clear(store)

    batched: list[Any] = []
    for writes in script():
        batched.extend(alerted(store.apply_polls(watched(writes, wl))))

    assert recorded(store) == expected
    assert batched == one_by_one
    assert ("hook",) in batched and () in batched


def test_an_unchanged_state_is_not_written_again(store: Store, tmp_path: Path) -> None:
    wl = watchlist(tmp_path)
    item = wl.items[0]
    store.apply_polls(watched([write(item.id, at(0), offer(item_id=item.id))], wl))
    with store.engine.connect() as conn:
        written = conn.execute(sa.text("SELECT updated_at FROM rule_states")).scalar_one()
    store.apply_polls(watched([write(item.id, at(1), offer(item_id=item.id))], wl))
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT updated_at FROM rule_states")).scalar_one() == written


def test_a_poll_of_an_item_on_no_watchlist_alerts_nobody(store: Store) -> None:
    first = offer(item_id=ITEMS[0])
    apply_poll(store, ITEMS[0], at(0), first)
    cheaper = with_sku(first, first.skus[0].sku_id, price=D("1.00"))
    result = apply_poll(store, ITEMS[0], at(1), cheaper)
    assert result.changes and result.alerted == ()
    assert recorded(store) == {"states": {}, "outbox": []}


def test_states_of_many_items_round_trip(store: Store) -> None:
    store.apply_polls([write(i, at(0), offer(item_id=i)) for i in ITEMS])
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


# -- shortcuts: a batch stores and sends what the rules worked out in full give --

#: Rules with every kind of memory: thresholds, cooldown entries, a SKU filter.
WIDE = replace(
    RULES,
    alert_on=(*RULES.alert_on, ChangeKind.TARGET_PRICE, ChangeKind.LOW_STOCK),
    target_price=D("20"),
    low_stock=101,
    cooldown=timedelta(minutes=90),
)
NARROW = replace(
    RULES,
    alert_on=(*RULES.alert_on, ChangeKind.LOW_STOCK),
    low_stock=50,
    skus=("5000000000000", "*/ L"),
    failing_after=1,
)


def mixed_watchlist(tmp_path: Path) -> Watchlist:
    rules = [WIDE, NARROW, RULES, WIDE]
    return replace(
        watchlist(tmp_path),
        items=tuple(Item(i, f"item {i}", r) for i, r in zip(ITEMS, rules, strict=True)),
    )


def long_script() -> list[list[PollWrite]]:
    """The rounds of :func:`script`, then quiet rounds past the cooldown."""
    rounds = script()
    last = rounds[-1]
    for minute in (7, 8, 100, 101, 200):
        rounds.append([replace(w, polled_at=at(minute, seconds=n)) for n, w in enumerate(last)])
    return rounds


def recorded_with_times(store: Store) -> dict[str, Any]:
    out = recorded(store)
    with store.engine.connect() as conn:
        out["updated"] = sorted(
            tuple(row)
            for row in conn.execute(sa.text("SELECT item_id, updated_at FROM rule_states"))
        )
    return out


def restyle(store: Store) -> None:
    """Rewrite two stored states as another writer could have: same meaning, other text."""
    with store.engine.begin() as conn:
        for item_id, drop_flags in ((ITEMS[0], False), (ITEMS[1], True)):
            text = conn.execute(
                sa.text("SELECT state FROM rule_states WHERE item_id = :i"), {"i": item_id}
            ).scalar_one()
            data = json.loads(text)
            if drop_flags:
                # Flags left out read as false; the rules' own writing spells them out.
                for memory in data["skus"].values():
                    if not memory["low"]:
                        del memory["low"]
            conn.execute(
                sa.text("UPDATE rule_states SET state = :s WHERE item_id = :i"),
                {"s": json.dumps(data, indent=1), "i": item_id},
            )


def run_script(store: Store, wl: Watchlist) -> tuple[list[Any], dict[str, Any]]:
    messages: list[Any] = []
    for n, writes in enumerate(long_script()):
        messages.extend(alerted(store.apply_polls(watched(writes, wl))))
        if n == 0:
            restyle(store)
    return messages, recorded_with_times(store)


def test_a_batch_with_shortcuts_stores_and_sends_what_the_full_rules_do(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wl = mixed_watchlist(tmp_path)
    fast = run_script(store, wl)
    assert fast[1]["outbox"], "the script should alert"
    clear(store)

    def compared(self: StoredState, state: RuleState) -> bool:
        return self.data is not None and state.to_json() == self.data

    monkeypatch.setattr(state_store, "kept", state_store.Kept(0))
    monkeypatch.setattr(StoredState, "unchanged", compared)
    with worked_out_in_full():
        full = run_script(store, wl)
    assert fast == full


def test_a_state_read_again_is_not_decoded_again(store: Store) -> None:
    store.apply_polls([write(ITEMS[0], at(0), offer(item_id=ITEMS[0]))])
    seen = RuleState(seen=True, skus={"a": SkuMemory(D("1.50"))})
    with store.engine.begin() as conn:
        save_rule_state(conn, ITEMS[0], seen, at(0))
    with store.engine.connect() as conn:
        first = load_rule_states(conn, [ITEMS[0]])[ITEMS[0]]
        again = load_rule_states(conn, [ITEMS[0]])[ITEMS[0]]
    assert again is first and first.state == seen
    assert first.unchanged(first.state) and first.unchanged(seen)
    assert not first.unchanged(RuleState(seen=True))


def test_a_state_written_elsewhere_is_read_as_written(store: Store) -> None:
    store.apply_polls([write(ITEMS[0], at(0), offer(item_id=ITEMS[0]))])
    with store.engine.begin() as conn:
        save_rule_state(conn, ITEMS[0], RuleState(seen=True), at(0))
        assert load_rule_state(conn, ITEMS[0]) == RuleState(seen=True)
    other = RuleState(seen=True, failing=True)
    with store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE rule_states SET state = :s"), {"s": json.dumps(other.to_json())}
        )
    with store.engine.connect() as conn:
        assert load_rule_state(conn, ITEMS[0]) == other


def test_a_state_whose_save_was_rolled_back_is_not_read(store: Store) -> None:
    store.apply_polls([write(ITEMS[0], at(0), offer(item_id=ITEMS[0]))])
    kept = RuleState(seen=True)
    with store.engine.begin() as conn:
        save_rule_state(conn, ITEMS[0], kept, at(0))
    with pytest.raises(RuntimeError), write_transaction(store.engine) as conn:
        save_rule_state(conn, ITEMS[0], RuleState(seen=True, failing=True), at(1))
        raise RuntimeError("the poll's transaction fails")
    with store.engine.connect() as conn:
        assert load_rule_state(conn, ITEMS[0]) == kept


def test_a_state_written_another_way_is_rewritten_even_when_unchanged(store: Store) -> None:
    store.apply_polls([write(ITEMS[0], at(0), offer(item_id=ITEMS[0]))])
    state = RuleState(seen=True, skus={"a": SkuMemory(D("1.50"))})
    short = {"version": 1, "seen": True, "skus": {"a": {"baseline": "1.50"}}}
    with store.engine.begin() as conn:
        save_rule_state(conn, ITEMS[0], state, at(0))
        conn.execute(sa.text("UPDATE rule_states SET state = :s"), {"s": json.dumps(short)})
    with store.engine.connect() as conn:
        (stored,) = load_rule_states(conn, [ITEMS[0]]).values()
    assert stored.state == state
    assert not stored.unchanged(stored.state)
    assert not stored.unchanged(state)


def test_a_bad_state_fails_every_read(store: Store) -> None:
    store.apply_polls([write(ITEMS[0], at(0), offer(item_id=ITEMS[0]))])
    with store.engine.begin() as conn:
        save_rule_state(conn, ITEMS[0], RuleState(), at(0))
        conn.execute(sa.text("UPDATE rule_states SET state = '[1'"))
    for _ in range(2):
        with store.engine.connect() as conn, pytest.raises(StorageError, match="not JSON"):
            load_rule_states(conn, [ITEMS[0]])


def test_kept_states_survive_rounds_over_more_items_than_room() -> None:
    """Polled in turn, five items through a cache of three: on the next round the
    items kept first are still found (dropping the oldest would find none)."""
    kept = state_store.Kept(3)
    stored = {i: state_store.StoredState(RuleState(), {}) for i in range(5)}
    for _ in range(3):
        found = []
        for i in range(5):  # one poll after the other: read, and keep what was missing
            if kept.get(i, f"text {i}") is stored[i]:
                found.append(i)
            else:
                kept.put(i, f"text {i}", stored[i])
    assert found == [0, 1]  # two stay for good, the last place goes round
    assert kept.get(0, "another text") is None  # a different text is never served
