"""What the store hands back: small frozen records, never ORM objects or dicts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from monitor.domain import Change, Offer, PollSource

__all__ = [
    "ItemRecord",
    "PollCounts",
    "PollOutcome",
    "PollRecord",
    "PollResult",
    "StoredChange",
]


class PollOutcome(StrEnum):
    """How a poll ended, as written to ``polls.outcome``.

    ``baseline``: first successful poll of the item, nothing to compare with.
    ``unchanged``: the offer is exactly as stored; only the poll log and the
    item's counters were written. ``changed``: something stored changed (a
    change was detected, or a fact without an alert, such as the title, was
    updated). ``unavailable``: TMAPI answered 417 (the item could not be
    fetched). ``failed``: any other fetch or parse error.
    """

    BASELINE = "baseline"
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    FAILED = "failed"
    UNAVAILABLE = "unavailable"


#: The outcomes of a poll that fetched and parsed the offer.
_SUCCESSES = frozenset({PollOutcome.BASELINE, PollOutcome.UNCHANGED, PollOutcome.CHANGED})


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one recorded poll saw and wrote.

    ``offer`` is the polled offer (``None`` for failures, and where the
    offer is not kept, as in :meth:`Daemon.run_once`'s results); ``changes`` are the
    changes recorded in the same transaction. For failures ``error_reason``
    is a short machine-readable reason (``timeout``, ``unavailable``,
    ``parse``, …), ``error_code`` the TMAPI/HTTP code if any, and
    ``error_message`` a printable explanation free of secrets. ``alerted``
    names the targets a message was queued for; ``source`` is where the
    data came from.
    """

    poll_id: int
    item_id: int
    polled_at: datetime
    outcome: PollOutcome
    changes: tuple[Change, ...] = ()
    offer: Offer | None = None
    error_reason: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    #: The targets a message about this poll was queued for (the outbox rows).
    alerted: tuple[str, ...] = ()
    source: PollSource = PollSource.TMAPI

    @property
    def succeeded(self) -> bool:
        """Whether the poll fetched and parsed the offer (also when ``offer`` is not kept)."""
        return self.outcome in _SUCCESSES


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """The ``items`` row of one watched item."""

    item_id: int
    name: str | None
    watched: bool
    title: str | None
    currency: str | None
    unit: str | None
    url: str | None
    image: str | None
    shop_name: str | None
    shop_url: str | None
    first_seen_at: datetime
    last_polled_at: datetime | None
    last_success_at: datetime | None
    last_changed_at: datetime | None
    polls_total: int
    polls_failed: int
    consecutive_failures: int
    available: bool
    unavailable_streak: int
    last_error_reason: str | None
    last_error: str | None
    next_poll_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredChange:
    """A row of ``changes``: a change with the poll and time it was detected at."""

    id: int
    poll_id: int
    item_id: int
    detected_at: datetime
    change: Change


@dataclass(frozen=True, slots=True)
class PollRecord:
    """A row of the poll log."""

    id: int
    item_id: int
    polled_at: datetime
    outcome: PollOutcome
    error_reason: str | None
    error_code: int | None


@dataclass(frozen=True, slots=True)
class PollCounts:
    """How many polls ended each way."""

    baseline: int = 0
    unchanged: int = 0
    changed: int = 0
    failed: int = 0
    unavailable: int = 0

    @property
    def total(self) -> int:
        return self.baseline + self.unchanged + self.changed + self.failed + self.unavailable
