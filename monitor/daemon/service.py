"""The daemon's units of work: sync, claim and poll, reload, deliver, housekeeping.

Each method does one bounded unit of work and returns, so tests drive them
directly with a fake clock; :mod:`monitor.daemon.runner` has APScheduler call
them on timers. The database coordinates everything that must hold across
processes (which item is due, who polls it); this process only keeps timers,
the throttle and the set of polls it has in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.daemon.metrics import Metrics
from monitor.daemon.poller import PollOptions, fetch_offer, poll_write, utc_now
from monitor.daemon.throttle import AdaptiveThrottle
from monitor.daemon.timing import first_poll_at, next_poll_at
from monitor.daemon.writer import PollWriter
from monitor.db import leases, meta
from monitor.db.store import Lease, PollResult, Store
from monitor.domain import Offer
from monitor.errors import MonitorError, ParseError, TmapiError, TmapiTimeout
from monitor.notify.deliver import DeliveryReport, default_sender, deliver_due
from monitor.notify.sender import AppriseSender
from monitor.tmapi.client import TmapiClient
from monitor.watchlist.model import Item, Watchlist, watched_items
from monitor.watchlist.snapshot import to_document

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _without_offer(poll: PollResult) -> PollResult:
    return poll if poll.offer is None else dataclasses.replace(poll, offer=None)


def default_owner() -> str:
    """A name for this process's leases: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    #: How long a claim on an item lasts; a dead replica's items wait this long.
    lease: timedelta = timedelta(minutes=5)
    #: A poll (with its retries) is cancelled after this long.
    poll_deadline: timedelta = timedelta(minutes=4)
    #: While TMAPI says the subscription or balance is exhausted (439), probe this often.
    quota_probe: timedelta = timedelta(minutes=5)
    owner: str = field(default_factory=default_owner)


class Daemon:
    """One process's share of the monitoring work."""

    def __init__(
        self,
        *,
        store: Store,
        client: TmapiClient,
        throttle: AdaptiveThrottle,
        watchlist: Watchlist,
        options: DaemonOptions | None = None,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        sender: AppriseSender | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.throttle = throttle
        self.watchlist = watchlist
        self.options = options or DaemonOptions()
        self.clock = clock
        self.rng = rng or random.Random()
        self.sender = sender
        #: Counts polls, changes and deliveries from their results (``/metrics``).
        self.metrics = metrics or Metrics()
        #: Records finished polls in batches (see :mod:`monitor.daemon.writer`).
        self.writer = PollWriter(store)
        self._index: tuple[Watchlist, dict[int, Item]] | None = None
        self.in_flight: dict[int, asyncio.Task[PollResult | None]] = {}
        #: Claim queries running in worker threads (see :meth:`_claim`).
        self._claims: set[asyncio.Future[list[int]]] = set()
        #: The watchlist last applied to the database (:meth:`apply_watchlist`).
        self.applied: Watchlist | None = None
        self.paused_until: datetime | None = None
        self.stopping = False
        self.polls_done = 0
        #: The last claim got every item it asked for: more may be due right now.
        self.backlog = False
        #: Set when a poll ends or a claim finds a backlog (see :meth:`wait_refill`).
        self._wake = asyncio.Event()

    # -- watchlist -------------------------------------------------------------

    async def apply_watchlist(self, watchlist: Watchlist) -> leases.SyncReport:
        """Make ``watchlist`` the one in force: throttle ceilings and watched items.

        An item whose interval got shorter is brought forward, so the new
        interval applies at once rather than after the old one runs out.
        """
        previous = self.watchlist
        self.watchlist = watchlist
        settings = watchlist.settings
        await self.throttle.configure(settings.max_requests_per_second, settings.max_concurrency)
        items = watched_items(watchlist)
        now = self.clock()
        intervals = {item.id: item.rules.interval for item in items}
        report = await asyncio.to_thread(
            leases.sync_watchlist,
            self.store.engine,
            [(item.id, item.name) for item in items],
            now,
            lambda item_id: first_poll_at(now, item_id, intervals[item_id]),
        )
        if previous is not watchlist:  # the first apply (at start) has nothing to compare
            before = {item.id: item.rules.interval for item in watched_items(previous)}
            shortened = {
                item_id: first_poll_at(now, item_id, interval)
                for item_id, interval in intervals.items()
                if item_id in before and interval < before[item_id]
            }
            del before
            await asyncio.to_thread(leases.bring_forward, self.store.engine, shortened)
        await asyncio.to_thread(
            meta.save_watchlist_document, self.store.engine, to_document(watchlist), now
        )
        self.applied = watchlist
        if report.added or report.removed:
            log.info(
                "watchlist: %d items watched (%d added, %d removed)",
                report.watched,
                len(report.added),
                len(report.removed),
            )
        return report

    # -- polling ---------------------------------------------------------------

    def capacity(self) -> int:
        """How many more polls this process should start now."""
        room = self.throttle.gate.limit - len(self.in_flight)
        # Claim no more than the rate cap lets start within about two seconds,
        # so claimed items do not sit waiting for the limiter past their lease.
        by_rate = max(1, int(self.throttle.limiter.rate * 2))
        return max(0, min(room, by_rate))

    async def poll_due(self, *, due_only: bool = True, limit: int | None = None) -> list[int]:
        """Claim due items (most overdue first) and start polling them."""
        if self.stopping:
            return []
        self.backlog = False  # until this claim says otherwise (a failed claim does not)
        now = self.clock()
        want = self.capacity() if limit is None else limit
        if self.paused_until is not None:
            if now < self.paused_until:
                return []
            want = min(want, 1)  # one probe per quota_probe while TMAPI says 439
            self.paused_until = now + self.options.quota_probe
        item_ids = await self._claim(now, limit=want, lease=self.options.lease, due_only=due_only)
        for item_id in item_ids:
            self.in_flight[item_id] = asyncio.create_task(
                self._poll(item_id), name=f"poll-{item_id}"
            )
        self.backlog = self.paused_until is None and 0 < want <= len(item_ids)
        if self.backlog:
            self._wake.set()
        return item_ids

    def refill_due(self) -> bool:
        """Whether to claim again before the next tick.

        When the last claim got all it asked for (more items may be due) and
        polls have ended since, so that at least half the concurrency limit
        could start now. Without this a process would start at most one
        concurrency limit of polls per tick, however fast TMAPI answers.
        """
        if not self.backlog or self.stopping:
            return False
        return self.capacity() >= max(1, self.throttle.gate.limit // 2)

    async def wait_refill(self) -> None:
        """Return once :meth:`refill_due` says to claim again."""
        while not self.refill_due():
            self._wake.clear()
            await self._wake.wait()

    async def _claim(
        self, now: datetime, *, limit: int, lease: timedelta, due_only: bool
    ) -> list[int]:
        """Run the claim query in a worker thread and return the claimed ids.

        The query is shielded: if the caller is cancelled (the scheduler's
        shutdown cancels running jobs), the thread still commits its claim,
        and :meth:`drain` waits for it before releasing this process's leases,
        so no lease is left behind. A claim that ends after shutdown began
        starts nothing.
        """
        claim = asyncio.ensure_future(
            asyncio.to_thread(
                leases.claim,
                self.store.engine,
                self.options.owner,
                now,
                limit=limit,
                lease=lease,
                due_only=due_only,
            )
        )
        self._claims.add(claim)
        claim.add_done_callback(self._claims.discard)
        item_ids = await asyncio.shield(claim)
        return [] if self.stopping else item_ids

    async def wait_idle(self) -> None:
        """Wait until no poll of this process is in flight."""
        while self.in_flight:
            await asyncio.gather(*self.in_flight.values(), return_exceptions=True)

    async def _poll(
        self, item_id: int, fetched: asyncio.Future[None] | None = None
    ) -> PollResult | None:
        """Poll one item; ``fetched`` (if given) is resolved once TMAPI has answered."""
        try:
            return await self._poll_item(item_id, fetched)
        except MonitorError as exc:
            log.error("item %s: poll not recorded: %s", item_id, exc)
            return None
        except Exception:
            log.exception("item %s: unexpected error while polling", item_id)
            return None
        finally:
            self.in_flight.pop(item_id, None)
            self._wake.set()
            if fetched is not None and not fetched.done():
                fetched.set_result(None)

    def _item(self, item_id: int) -> Item | None:
        """The watchlist's item ``item_id`` (indexed once per watchlist, not scanned)."""
        watchlist = self.watchlist
        if self._index is None or self._index[0] is not watchlist:
            self._index = (watchlist, {item.id: item for item in watchlist.items})
        return self._index[1].get(item_id)

    async def _poll_item(
        self, item_id: int, fetched: asyncio.Future[None] | None = None
    ) -> PollResult | None:
        item = self._item(item_id)
        if item is None or not item.rules.enabled:
            await asyncio.to_thread(
                leases.release, self.store.engine, self.options.owner, [item_id]
            )
            return None
        watchlist = self.watchlist
        settings = watchlist.settings
        options = PollOptions.of(watchlist, item)
        result = await self._fetch(item_id, options)
        if fetched is not None and not fetched.done():
            fetched.set_result(None)
        jitter = settings.jitter

        def schedule(poll: PollResult, failures: int) -> datetime:
            due = next_poll_at(
                poll.polled_at, item.rules.interval, failures=failures, jitter=jitter, rng=self.rng
            )
            if poll.error_reason == "quota_exhausted":
                due = poll.polled_at + self.options.quota_probe
            return due

        write = poll_write(
            self.client,
            item_id,
            self.clock(),
            result,
            watchlist=watchlist,
            item=item,
            options=options,
            lease=Lease(self.options.owner, schedule),
        )
        try:
            poll = await self.writer.write(write)
        except leases.LeaseLost as exc:
            log.warning("%s", exc)
            return None
        self.polls_done += 1
        self.metrics.record_poll(poll)
        self._after_poll(poll)
        return poll

    async def _fetch(self, item_id: int, options: PollOptions) -> Offer | TmapiError | ParseError:
        deadline = self.options.poll_deadline.total_seconds()
        try:
            async with asyncio.timeout(deadline):
                return await fetch_offer(self.client, item_id, options)
        except TimeoutError:
            log.warning("item %s: poll cancelled after its %g s deadline", item_id, deadline)
            return TmapiTimeout(f"poll deadline of {deadline:g} s exceeded", item_id=item_id)

    def _after_poll(self, poll: PollResult) -> None:
        if poll.error_reason == "quota_exhausted":
            if self.paused_until is None:
                log.error(
                    "TMAPI says the subscription has expired or the balance is used up "
                    "(code 439): polling is paused; probing again every %s",
                    self.options.quota_probe,
                )
            self.paused_until = poll.polled_at + self.options.quota_probe
        elif poll.offer is not None and self.paused_until is not None:
            log.warning("TMAPI answers again: polling resumed")
            self.paused_until = None

    # -- delivery ------------------------------------------------------------

    async def deliver(self) -> DeliveryReport:
        """Send the outbox rows that are due (one batch), recording each outcome."""
        watchlist = self.watchlist
        if self.sender is None:
            self.sender = default_sender()
        report = await deliver_due(
            self.store.engine,
            watchlist.targets,
            owner=self.options.owner,
            now=self.clock(),
            dead_after=watchlist.settings.dead_after,
            sender=self.sender,
            rng=self.rng,
        )
        self.metrics.record_deliveries(report)
        return report

    async def deliver_all(self, max_batches: int = 100) -> int:
        """Deliver batch after batch until nothing is due now; return how many were sent."""
        sent = 0
        for _ in range(max_batches):
            report = await self.deliver()
            sent += report.sent
            if not report.deliveries:
                break
        return sent

    # -- once ------------------------------------------------------------------

    async def run_once(self) -> list[PollResult]:
        """Poll every watched item once (due or not), wait for all, return the results.

        All items are claimed up front (with a lease long enough for the whole
        run at the rate cap), then polled by as many workers as the
        concurrency limit allows. A worker starts its next fetch as soon as
        TMAPI has answered the previous one, while that poll is recorded
        behind it (in the writer's batches); it waits for that recording
        before starting yet another, so at most one poll per worker is ever
        waiting to be recorded.

        The results carry each poll's outcome, changes and error, not the
        offer (``offer`` is None): the offers are in the database, and
        holding every one of a large watchlist until the end would cost
        memory and make the garbage collector walk them on every pass.
        """
        total = len(watched_items(self.watchlist))
        if total == 0:
            return []
        run_time = timedelta(seconds=total / self.throttle.limiter.rate)
        item_ids = await self._claim(
            self.clock(), limit=total, lease=self.options.lease + run_time, due_only=False
        )
        queue = list(reversed(item_ids))
        results: list[PollResult] = []
        loop = asyncio.get_running_loop()

        async def collect(task: asyncio.Task[PollResult | None]) -> None:
            if not task.done():
                await asyncio.wait([task])
            result = task.result()
            if result is not None:
                results.append(_without_offer(result))

        async def worker() -> None:
            previous: asyncio.Task[PollResult | None] | None = None
            while queue and not self.stopping:
                item_id = queue.pop()
                fetched: asyncio.Future[None] = loop.create_future()
                task = asyncio.create_task(self._poll(item_id, fetched), name=f"poll-{item_id}")
                self.in_flight[item_id] = task
                await fetched  # resolved once TMAPI answered, or when the poll ends early
                if previous is not None:
                    await collect(previous)
                previous = task
            if previous is not None:
                await collect(previous)

        workers = min(self.throttle.gate.limit, len(item_ids))
        await asyncio.gather(*(worker() for _ in range(workers)))
        if queue:
            await asyncio.to_thread(leases.release, self.store.engine, self.options.owner, queue)
        return results

    # -- shutdown --------------------------------------------------------------

    async def drain(self, grace: float) -> None:
        """Stop claiming; let polls in flight finish for ``grace`` seconds, then cancel."""
        self.stopping = True
        if self._claims:  # let claim queries commit, so the release below covers them
            await asyncio.gather(*self._claims, return_exceptions=True)
        tasks = list(self.in_flight.values())
        if tasks:
            log.info("waiting up to %g s for %d polls in flight", grace, len(tasks))
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        await self.writer.wait_idle()  # a batch being written gives its leases back itself
        await asyncio.to_thread(leases.release, self.store.engine, self.options.owner)
