"""Deliver due outbox rows: claim, render per target, send through apprise, record.

One call of :func:`deliver_due` is one unit of work::

    claim (lease) ─▶ per target, oldest first: render ─▶ send ─▶ mark sent
                                                           └─ failed ─▶ retry later / dead

Database calls and apprise sends run in worker threads
(:func:`asyncio.to_thread`); the event loop never blocks. Targets are
served concurrently, each target's messages in order. Every row belongs to
one target, so a failing target never causes a message to be sent again to
another one.

Retries: exponential backoff with jitter (30 s, 1 min, 2 min, … capped at
1 h, see :class:`RetryPolicy`), never earlier than a ``Retry-After`` the
service sent, and moved past the target's quiet hours. After a failure the
target's remaining rows of this batch are not tried; they are handed back
for the same time without counting an attempt. A row still failing
``dead_after`` after it became due (``due_at``: creation, or the end of its
hold) is marked ``dead`` and logged at ERROR with the target's name, never
its URL; ``monitor notify list --state dead`` shows it.

A row whose target is no longer in the watchlist is treated as a failed
attempt with a clear error ("not in the watchlist"): it is retried with the
same backoff, so a target renamed back or restored by a later edit still
gets it, and ends ``dead`` after ``dead_after`` like any other failure.
A row whose payload cannot be read is marked ``dead`` at once.

At-least-once: a row is marked sent after the service accepted it; a crash
between the two sends that message again once the lease expires.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.engine import Engine

from monitor.alerts.model import AlertGroup
from monitor.alerts.schedule import not_quiet
from monitor.db import outbox
from monitor.db.outbox import DEFAULT_LEASE, Claimed
from monitor.messages.render import Rendered, format_for_url, limit_for_url, render
from monitor.notify.sender import AppriseSender, SendResult
from monitor.watchlist.model import Target

__all__ = [
    "Delivery",
    "DeliveryReport",
    "DeliveryStatus",
    "RetryPolicy",
    "default_sender",
    "deliver_due",
    "render_for",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: ``first`` doubled per attempt, capped at ``cap``.

    Each delay is multiplied by a random factor in ``1 ± jitter`` (and still
    capped), so messages failing together do not retry in lockstep.
    """

    first: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random) -> timedelta:
        """The wait after failed attempt number ``attempt`` (1 for the first)."""
        exponent = min(max(attempt - 1, 0), 30)
        base = min(self.cap, self.first * (2**exponent))
        factor = 1 + rng.uniform(-self.jitter, self.jitter)
        return min(self.cap, timedelta(seconds=base.total_seconds() * factor))


class DeliveryStatus(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # failed, due again at next_attempt_at
    DEFERRED = "deferred"  # not tried: its target failed earlier in this batch
    DEAD = "dead"
    LOST = "lost"  # our lease was taken over before the outcome could be recorded


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one claimed row."""

    id: int
    target: str
    status: DeliveryStatus
    error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one :func:`deliver_due` call did, row by row."""

    deliveries: tuple[Delivery, ...] = ()

    def count(self, status: DeliveryStatus) -> int:
        return sum(1 for d in self.deliveries if d.status is status)

    @property
    def sent(self) -> int:
        return self.count(DeliveryStatus.SENT)

    @property
    def dead(self) -> int:
        return self.count(DeliveryStatus.DEAD)


_RNG = random.Random()


@functools.cache
def default_sender() -> AppriseSender:
    """The process-wide sender (one apprise object per target, kept between calls)."""
    return AppriseSender()


def render_for(target: Target, groups: Sequence[AlertGroup]) -> Rendered:
    """Render alert groups in the format, template and size limit of ``target``."""
    return render(
        groups,
        fmt=format_for_url(target.url, target.format),
        template=target.template,
        limit=limit_for_url(target.url),
    )


@dataclass(frozen=True, slots=True)
class _Batch:
    """What every row of one call shares."""

    engine: Engine
    sender: AppriseSender
    now: datetime
    dead_after: timedelta
    policy: RetryPolicy
    rng: random.Random
    #: Real seconds after which no new send starts (half the lease).
    budget: float
    started: float
    monotonic: Callable[[], float]

    def out_of_time(self) -> bool:
        return self.monotonic() - self.started > self.budget


async def deliver_due(
    engine: Engine,
    targets: Mapping[str, Target],
    *,
    owner: str,
    now: datetime,
    dead_after: timedelta,
    limit: int = 50,
    lease: timedelta = DEFAULT_LEASE,
    sender: AppriseSender | None = None,
    policy: RetryPolicy | None = None,
    rng: random.Random | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> DeliveryReport:
    """Claim up to ``limit`` due rows as ``owner``, send them, record each outcome.

    ``now`` is the time used for claiming and recorded outcomes. No send
    starts once half the ``lease`` has passed (real time, read with
    ``monotonic``): rows not reached by then are handed back unsent, so a
    slow batch never outlives its claim. See the module docstring.
    """
    sender = sender or default_sender()
    sender.retain(targets.values())
    rows = await asyncio.to_thread(outbox.claim, engine, owner, now, limit, lease)
    by_target: dict[str, list[Claimed]] = {}
    for row in rows:
        by_target.setdefault(row.target, []).append(row)
    batch = _Batch(
        engine=engine,
        sender=sender,
        now=now,
        dead_after=dead_after,
        policy=policy or RetryPolicy(),
        rng=rng or _RNG,
        budget=lease.total_seconds() / 2,
        started=monotonic(),
        monotonic=monotonic,
    )
    results = await asyncio.gather(
        *(_deliver_to(batch, name, targets.get(name), queue) for name, queue in by_target.items()),
        return_exceptions=True,
    )
    # Every target ran to its end (outcomes recorded) before any error is raised.
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return DeliveryReport(
        tuple(d for deliveries in results if isinstance(deliveries, list) for d in deliveries)
    )


async def _deliver_to(
    batch: _Batch, name: str, target: Target | None, rows: list[Claimed]
) -> list[Delivery]:
    """Send ``rows`` (all for target ``name``) in order; stop trying after a failure."""
    done: list[Delivery] = []
    blocked: Delivery | None = None
    for row in rows:
        if blocked is not None:
            done.append(await _defer(batch, row, blocked))
            continue
        if batch.out_of_time():
            done.append(await _hand_back(batch, row))
            continue
        if target is None:
            error = f"target {name!r} is not in the watchlist (removed or renamed?)"
            outcome = await _failed(batch, row, None, SendResult(False, error))
        else:
            outcome = await _deliver_one(batch, row, target)
        done.append(outcome)
        if outcome.status is DeliveryStatus.RETRY:
            blocked = outcome
    return done


async def _deliver_one(batch: _Batch, row: Claimed, target: Target) -> Delivery:
    try:
        groups = row.groups()
    except ValueError as exc:
        return await _dead(batch, row, str(exc), attempted=False)
    try:
        message = render_for(target, groups)
    except ValueError as exc:
        # A format the renderer does not know: a later watchlist edit can fix it.
        return await _failed(batch, row, target, SendResult(False, f"cannot render: {exc}"))
    result = await asyncio.to_thread(batch.sender.send, target, message)
    if not result.ok:
        return await _failed(batch, row, target, result)
    if await asyncio.to_thread(outbox.mark_sent, batch.engine, row, batch.now):
        log.info("notification %d (%s) sent to target %r", row.id, ",".join(row.kinds), target.name)
        return Delivery(row.id, row.target, DeliveryStatus.SENT)
    log.warning(
        "notification %d was sent to target %r but another worker took it over meanwhile; "
        "it may be sent twice",
        row.id,
        target.name,
    )
    return Delivery(row.id, row.target, DeliveryStatus.LOST)


async def _failed(
    batch: _Batch, row: Claimed, target: Target | None, result: SendResult
) -> Delivery:
    """Record a failed attempt: retry later, or dead once ``dead_after`` has passed."""
    error = result.error or "delivery failed"
    deadline = row.due_at + batch.dead_after
    if batch.now >= deadline:
        return await _dead(batch, row, error, attempted=True)
    attempt = row.attempts + 1
    next_at = min(batch.now + batch.policy.delay(attempt, batch.rng), deadline)
    if result.retry_after is not None:
        next_at = max(next_at, batch.now + result.retry_after)
    if target is not None:
        next_at = not_quiet(target, next_at)
    if not await asyncio.to_thread(outbox.mark_retry, batch.engine, row, error, next_at):
        return _lost(row)
    log.warning(
        "notification %d to target %r failed (attempt %d), next try at %s: %s",
        row.id,
        row.target,
        attempt,
        next_at.isoformat(timespec="seconds"),
        error,
    )
    return Delivery(row.id, row.target, DeliveryStatus.RETRY, error, next_at)


async def _defer(batch: _Batch, row: Claimed, failure: Delivery) -> Delivery:
    """Hand back a row not tried because its target just failed."""
    error = f"not tried: target failed on notification {failure.id}: {failure.error}"
    if batch.now >= row.due_at + batch.dead_after:
        return await _dead(batch, row, error, attempted=False)
    next_at = failure.next_attempt_at or batch.now
    if not await asyncio.to_thread(outbox.release, batch.engine, row, next_at):
        return _lost(row)
    return Delivery(row.id, row.target, DeliveryStatus.DEFERRED, failure.error, next_at)


async def _hand_back(batch: _Batch, row: Claimed) -> Delivery:
    """Release a row this batch had no time left for; it is due again at once."""
    if not await asyncio.to_thread(outbox.release, batch.engine, row, batch.now):
        return _lost(row)
    return Delivery(row.id, row.target, DeliveryStatus.DEFERRED, None, batch.now)


async def _dead(batch: _Batch, row: Claimed, error: str, *, attempted: bool) -> Delivery:
    if not await asyncio.to_thread(outbox.mark_dead, batch.engine, row, error, attempted=attempted):
        return _lost(row)
    log.error(
        "notification %d (%s) to target %r is dead after %d attempts since %s: %s",
        row.id,
        ",".join(row.kinds),
        row.target,
        row.attempts + (1 if attempted else 0),
        row.due_at.isoformat(timespec="seconds"),
        error,
    )
    return Delivery(row.id, row.target, DeliveryStatus.DEAD, error)


def _lost(row: Claimed) -> Delivery:
    log.warning("notification %d: lease lost to another worker; outcome not recorded", row.id)
    return Delivery(row.id, row.target, DeliveryStatus.LOST)
