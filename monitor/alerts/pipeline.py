"""The alert side of a poll, run inside the poll's transaction.

``store.apply_poll`` records the poll and its changes; then, in the same
transaction, :func:`record_alerts` loads the item's rule state, lets the
pure rules decide what alerts, saves the new state and writes one outbox
row per target. Either all of it is committed with the poll, or none.

:func:`record_alerts_batch` does the same for the polls of one batch
(``Store.apply_polls``): one query reads every item's state, one
executemany writes the states that changed. A state that comes out of the
rules exactly as it went in is not written again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from monitor.alerts.model import AlertGroup
from monitor.alerts.outbox import enqueue
from monitor.alerts.rules import evaluate, evaluate_failure, failure_group, group
from monitor.alerts.state import RuleState
from monitor.alerts.state_store import StoredState, load_rule_states, save_rule_states
from monitor.db import leases, scd
from monitor.db.records import PollResult
from monitor.watchlist import Item, Watchlist

__all__ = ["record_alerts", "record_alerts_batch"]


def record_alerts(
    conn: Connection, poll: PollResult, item: Item, watchlist: Watchlist
) -> AlertGroup | None:
    """Evaluate the rules for ``poll`` and enqueue its message; return the message."""
    (message,) = record_alerts_batch(conn, [(poll, item)], watchlist)
    return message


def record_alerts_batch(
    conn: Connection, polls: Sequence[tuple[PollResult, Item]], watchlist: Watchlist
) -> list[AlertGroup | None]:
    """:func:`record_alerts` for each ``(poll, item)`` in order; return the messages."""
    stored = load_rule_states(conn, (item.id for _, item in polls))
    to_save: dict[int, tuple[int, RuleState, datetime]] = {}
    messages: list[AlertGroup | None] = []
    for poll, item in polls:
        now = poll.polled_at
        before = stored.get(item.id) or StoredState(RuleState(), None)
        state = before.state
        if poll.offer is not None:
            alerts, new_state = evaluate(
                item.rules, item.name, poll.offer, poll.changes, state, now
            )
            message = group(item.name, poll.offer, alerts, now)
        else:
            failures = leases.consecutive_failures(conn, item.id)
            reason = poll.error_reason or "error"
            alerts, new_state = evaluate_failure(
                item.rules, failures, reason, state, now, changes=poll.changes
            )
            last = scd.load_offer_at(conn, item.id, None) if alerts else None
            message = failure_group(item.id, item.name, last, alerts, now)
        if not before.unchanged(new_state):
            to_save[item.id] = (item.id, new_state, now)
            stored[item.id] = StoredState(new_state, new_state.to_json(), as_read=True)
        if message is not None:
            enqueue(conn, message, poll.poll_id, watchlist.targets_of(item), now)
        messages.append(message)
    save_rule_states(conn, list(to_save.values()))
    return messages
