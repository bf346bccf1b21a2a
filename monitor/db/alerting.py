"""The alert step of recording: rules and outbox rows, in the poll's transaction.

:func:`monitor.db.recording.record` calls :func:`record_alerts` for every
batch of polls it records, after the store's own writes and before the
commit, whoever records (``monitor run``, ``run --once``, ``check``, the
demo, the bench). For each poll of an item on a watchlist it loads the
item's rule state, lets the pure rules (:mod:`monitor.alerts.rules`) decide
what alerts, saves the new state and writes one outbox row per target of
the item. Either all of it is committed with the poll, or none. A poll of
an item on no watchlist (``item`` is None) alerts nobody and leaves the
rule state alone.

One query reads every item's state and one executemany writes the states
that changed; a state that comes out of the rules exactly as it went in is
not written again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from monitor.alerts.groups import failure_group, group
from monitor.alerts.model import AlertGroup
from monitor.alerts.rules import evaluate, evaluate_failure
from monitor.alerts.state import RuleState
from monitor.db import scd
from monitor.db.outbox import enqueue
from monitor.db.records import PollResult
from monitor.db.rule_states import StoredState, load_rule_states, save_rule_states
from monitor.watchlist.model import Item, Target

__all__ = ["Alerting", "record_alerts"]


@dataclass(frozen=True, slots=True)
class Alerting:
    """What the alert step needs of one recorded poll: the watchlist entry whose
    rules apply (None: on no watchlist), its targets, and its failure streak."""

    poll: PollResult
    item: Item | None
    targets: tuple[Target, ...]
    failures: int


def record_alerts(conn: Connection, polls: Sequence[Alerting]) -> list[AlertGroup | None]:
    """Evaluate the rules for each poll in order and enqueue its message; return the messages."""
    watched = [p for p in polls if p.item is not None]
    stored = load_rule_states(conn, (p.poll.item_id for p in watched)) if watched else {}
    to_save: dict[int, tuple[int, RuleState, datetime]] = {}
    messages: list[AlertGroup | None] = []
    for entry in polls:
        item, poll = entry.item, entry.poll
        if item is None:
            messages.append(None)
            continue
        now = poll.polled_at
        before = stored.get(item.id) or StoredState(RuleState(), None)
        state = before.state
        if poll.offer is not None:
            alerts, new_state = evaluate(
                item.rules, item.name, poll.offer, poll.changes, state, now
            )
            message = group(item.name, poll.offer, alerts, now)
        else:
            reason = poll.error_reason or "error"
            alerts, new_state = evaluate_failure(
                item.rules, entry.failures, reason, state, now, changes=poll.changes
            )
            last = scd.load_offer_at(conn, item.id, None) if alerts else None
            message = failure_group(item.id, item.name, last, alerts, now)
        if not before.unchanged(new_state):
            to_save[item.id] = (item.id, new_state, now)
            stored[item.id] = StoredState(new_state, new_state.to_json(), as_read=True)
        if message is not None:
            enqueue(conn, message, poll.poll_id, entry.targets, now)
        messages.append(message)
    if to_save:
        save_rule_states(conn, list(to_save.values()))
    return messages
