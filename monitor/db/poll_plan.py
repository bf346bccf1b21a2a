"""Planning a poll's writes: what one poll will record, decided from the item's row.

:func:`look` plans a failure, or a success whose digest equals the stored
one, from the locked ``items`` row alone; any other success is
:class:`Pending` until :func:`compare` has read the open state rows of all
of them, diffed them (:mod:`monitor.diff`) and written what changed
(:mod:`monitor.db.scd`). A :class:`Plan` holds the outcome, the changes and
the ``items`` columns that differ; :mod:`monitor.db.recording` writes it.
A poll that cannot be recorded as asked raises :class:`Refused` here,
before it wrote anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.db import scd
from monitor.db.records import PollOutcome, PollResult
from monitor.diff import Availability, diff, on_success, on_unavailable
from monitor.domain import Change, Offer, PollSource
from monitor.errors import ParseError, TmapiError, TmapiItemUnavailable
from monitor.watchlist.model import Item, Target

__all__ = ["Lease", "Pending", "Plan", "PollWrite", "Refused", "check", "compare", "look"]

_MESSAGE_MAX = 500


@dataclass(frozen=True, slots=True)
class Lease:
    """The lease a poll gives back when it is recorded.

    The poll is recorded only while ``owner`` holds the item's lease (else
    :class:`~monitor.db.leases.LeaseLost`); ``schedule`` says when to poll
    next, given the recorded poll and the item's failure streak after it.
    """

    owner: str
    schedule: Callable[[PollResult, int], datetime]


@dataclass(frozen=True, slots=True)
class PollWrite:
    """One poll to record: the item, when, what the fetch gave, and where from.

    ``item`` is the watchlist entry whose rules alert on the poll and
    ``targets`` the targets it notifies (both travel with the poll, so
    nothing looks them up again); ``item`` None means the item is on no
    watchlist: the poll is stored and alerts nobody. ``source`` is where the
    data came from (the real TMAPI or the simulator).
    """

    item_id: int
    polled_at: datetime
    result: Offer | TmapiError | ParseError
    item: Item | None
    targets: tuple[Target, ...]
    source: PollSource
    unavailable_after: int = 3
    lease: Lease | None = None


@dataclass(slots=True)
class Plan:
    """What one poll will write, before its poll id is known."""

    write: PollWrite
    outcome: PollOutcome
    changes: list[Change]
    #: The ``items`` columns to set, only those that differ from the row.
    values: dict[str, Any]
    failures: int
    reason: str | None = None
    code: int | None = None
    message: str | None = None


def check(write: PollWrite) -> None:
    """Reject a request that can never be recorded (ValueError), before any I/O."""
    polled_at = write.polled_at
    if polled_at.tzinfo is None or polled_at.utcoffset() is None:
        raise ValueError("polled_at must be timezone-aware")
    item_id = write.item_id
    if write.item is not None and write.item.id != item_id:
        raise ValueError(f"poll of item {item_id} carries the settings of item {write.item.id}")
    offer = write.result
    if isinstance(offer, Offer):
        if offer.item_id != item_id:
            raise ValueError(f"offer is for item {offer.item_id}, not {item_id}")
        if len({sku.sku_id for sku in offer.skus}) != len(offer.skus):
            raise ValueError(f"item {item_id}: offer has duplicate SKU ids")
        if len({tier.min_qty for tier in offer.tiers}) != len(offer.tiers):
            raise ValueError(f"item {item_id}: offer has duplicate tier quantities")


class Refused(Exception):
    """A poll that cannot be recorded; raised before it wrote anything."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(slots=True)
class Pending:
    """A success whose digest differs from the stored one: it needs the open state rows."""

    write: PollWrite
    row: sa.Row[Any]
    offer: Offer
    digest: str
    availability: Availability
    back: list[Change]


def look(row: sa.Row[Any], write: PollWrite) -> Plan | Pending:
    """Plan a failure or an unchanged success from the item's row alone."""
    availability = Availability(row.available, row.unavailable_streak)
    offer = write.result
    if not isinstance(offer, Offer):
        return plan_failure(row, write, offer, availability)
    at = write.polled_at
    if row.last_success_at is not None and at < row.last_success_at:
        raise Refused(
            ValueError(
                f"item {offer.item_id}: poll time {at.isoformat()} is before the stored state "
                f"({row.last_success_at.isoformat()}); clocks out of order?"
            )
        )
    new_availability, back = on_success(availability)
    digest = scd.fingerprint(offer)
    if row.state_hash is not None and row.state_hash == digest:
        # Same state as stored: nothing to read, compare or write.
        outcome = PollOutcome.CHANGED if back else PollOutcome.UNCHANGED
        return plan_success(
            row,
            write,
            offer,
            digest=digest,
            availability=new_availability,
            changes=list(back),
            outcome=outcome,
        )
    return Pending(write, row, offer, digest, new_availability, list(back))


def compare(conn: Connection, looks: list[Plan | Pending | Exception]) -> list[Plan | Exception]:
    """Diff every pending success against its open state rows and write what changed.

    The open rows of all of them are read in three queries, and the rows
    to close and open are written a few statements per table.
    """
    pending = [look for look in looks if isinstance(look, Pending)]
    if not pending:
        return [look for look in looks if not isinstance(look, Pending)]
    states = scd.load_open_states(conn, [p.write.item_id for p in pending])
    writes: list[scd.OfferWrites] = []
    planned: dict[int, Plan] = {}
    for p in pending:
        at = p.write.polled_at
        state = states.get(p.offer.item_id) or scd.OpenState()
        previous = state.to_offer(p.row)
        changes = [] if previous is None else [*p.back, *diff(previous, p.offer)]
        offer_writes = scd.plan_offer(p.offer.item_id, at, state, p.offer)
        if not offer_writes.empty:
            writes.append(offer_writes)
        if previous is None:
            outcome = PollOutcome.BASELINE
        elif changes or not offer_writes.empty:
            outcome = PollOutcome.CHANGED
        else:
            outcome = PollOutcome.UNCHANGED
        planned[id(p)] = plan_success(
            p.row,
            p.write,
            p.offer,
            digest=p.digest,
            availability=p.availability,
            changes=changes,
            outcome=outcome,
        )
    scd.apply_offers(conn, writes)
    return [planned[id(look)] if isinstance(look, Pending) else look for look in looks]


def plan_success(
    row: sa.Row[Any],
    write: PollWrite,
    offer: Offer,
    *,
    digest: str,
    availability: Availability,
    changes: list[Change],
    outcome: PollOutcome,
) -> Plan:
    at = write.polled_at
    wanted: dict[str, Any] = {
        "title": offer.title,
        "currency": offer.currency,
        "unit": offer.unit,
        "url": offer.url,
        "image": offer.image,
        "shop_name": offer.shop_name,
        "shop_url": offer.shop_url,
        "last_changed_at": at if outcome is PollOutcome.CHANGED else row.last_changed_at,
        "consecutive_failures": 0,
        "available": availability.available,
        "unavailable_streak": availability.unavailable_streak,
        "last_error_reason": None,
        "last_error": None,
        "state_hash": digest,
    }
    values = {key: value for key, value in wanted.items() if getattr(row, key) != value}
    values["last_polled_at"] = at
    values["last_success_at"] = at
    values["polls_total"] = row.polls_total + 1
    return Plan(write, outcome, changes, values, failures=0)


def plan_failure(
    row: sa.Row[Any], write: PollWrite, error: TmapiError | ParseError, availability: Availability
) -> Plan:
    at = write.polled_at
    reason = error.reason if isinstance(error, TmapiError) else "parse"
    code = error.code if isinstance(error, TmapiError) else None
    message = str(error)[:_MESSAGE_MAX]
    changes: list[Change] = []
    failures = row.consecutive_failures + 1
    values: dict[str, Any] = {
        "last_polled_at": at,
        "polls_total": row.polls_total + 1,
        "polls_failed": row.polls_failed + 1,
        "consecutive_failures": failures,
        "last_error_reason": reason[:32],
        "last_error": message,
    }
    if isinstance(error, TmapiItemUnavailable):
        outcome = PollOutcome.UNAVAILABLE
        new_availability, changes = on_unavailable(availability, write.unavailable_after)
        values["available"] = new_availability.available
        values["unavailable_streak"] = new_availability.unavailable_streak
        if changes:
            values["last_changed_at"] = at
    else:
        outcome = PollOutcome.FAILED
    return Plan(write, outcome, changes, values, failures, reason, code, message)
