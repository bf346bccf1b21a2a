"""The alert side of a poll, run inside the poll's transaction.

``store.apply_poll`` records the poll and its changes; then, in the same
transaction, :func:`record_alerts` loads the item's rule state, lets the
pure rules decide what alerts, saves the new state and writes one outbox
row per target. Either all of it is committed with the poll, or none.
"""

from __future__ import annotations

from sqlalchemy import Connection

from monitor.alerts.model import AlertGroup
from monitor.alerts.outbox import enqueue
from monitor.alerts.rules import evaluate, evaluate_failure, failure_group, group
from monitor.alerts.state_store import load_rule_state, save_rule_state
from monitor.db import leases, scd
from monitor.db.records import PollResult
from monitor.watchlist import Item, Watchlist


def record_alerts(
    conn: Connection, poll: PollResult, item: Item, watchlist: Watchlist
) -> AlertGroup | None:
    """Evaluate the rules for ``poll`` and enqueue its message; return the message."""
    now = poll.polled_at
    state = load_rule_state(conn, item.id)
    if poll.offer is not None:
        alerts, new_state = evaluate(item.rules, item.name, poll.offer, poll.changes, state, now)
        message = group(item.name, poll.offer, alerts, now)
    else:
        failures = leases.consecutive_failures(conn, item.id)
        reason = poll.error_reason or "error"
        alerts, new_state = evaluate_failure(
            item.rules, failures, reason, state, now, changes=poll.changes
        )
        last = scd.load_offer_at(conn, item.id, None) if alerts else None
        message = failure_group(item.id, item.name, last, alerts, now)
    save_rule_state(conn, item.id, new_state, now)
    if message is not None:
        enqueue(conn, message, poll.poll_id, watchlist.targets_of(item), now)
    return message
