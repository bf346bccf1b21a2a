"""The daemon's PollWriter: polls that finish together are recorded in one batch."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from monitor.daemon.writer import PollWriter
from monitor.db import leases
from monitor.db.records import PollOutcome, PollResult
from monitor.db.store import Lease, PollWrite, Store
from tests.factories import at, offer, write

ITEMS = [2001, 2002, 2003, 2004, 2005, 2006]


class CountingStore:
    """A Store whose ``apply_polls`` can be held back, counting the batches it gets."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def apply_polls(self, writes: Sequence[PollWrite]) -> list[PollResult | Exception]:
        self.entered.set()
        self.release.wait(10)
        self.batches.append([w.item_id for w in writes])
        return self.store.apply_polls(writes)


def writer_for(store: CountingStore, **kwargs: Any) -> PollWriter:
    return PollWriter(store, **kwargs)  # type: ignore[arg-type]


async def held(counting: CountingStore) -> None:
    """Wait until a batch is inside ``apply_polls``, held there."""
    assert await asyncio.to_thread(counting.entered.wait, 10)


async def settle() -> None:
    """Let every task that is ready run up to its next wait (no time passes)."""
    for _ in range(5):
        await asyncio.sleep(0)


def ok(result: PollResult | BaseException) -> PollResult:
    assert isinstance(result, PollResult), result
    return result


async def test_polls_waiting_together_share_one_batch(store: Store) -> None:
    counting = CountingStore(store)
    writer = writer_for(counting)
    counting.release.clear()  # the first batch is held while the others queue up
    first = asyncio.create_task(writer.write(write(ITEMS[0], at(0), offer(item_id=ITEMS[0]))))
    await held(counting)
    rest = [asyncio.create_task(writer.write(write(i, at(0), offer(item_id=i)))) for i in ITEMS[1:]]
    await settle()
    counting.release.set()
    results = await asyncio.gather(first, *rest)
    assert [r.item_id for r in results] == ITEMS
    assert {r.outcome for r in results} == {PollOutcome.BASELINE}
    assert counting.batches == [ITEMS[:1], ITEMS[1:]]
    assert (writer.batches, writer.written) == (2, len(ITEMS))


async def test_batches_are_capped(store: Store) -> None:
    counting = CountingStore(store)
    writer = writer_for(counting, max_batch=4)
    counting.release.clear()
    tasks = [asyncio.create_task(writer.write(write(i, at(0), offer(item_id=i)))) for i in ITEMS]
    await settle()
    counting.release.set()
    await asyncio.gather(*tasks)
    assert [len(b) for b in counting.batches] == [4, 2]


async def test_each_poll_gets_its_own_error(store: Store) -> None:
    now = at(0)
    leases.sync_watchlist(store.engine, [(i, None) for i in ITEMS[:2]], now, lambda _i: now)
    leases.claim(store.engine, "other", now, limit=1, lease=timedelta(minutes=5))

    def schedule(poll: PollResult, failures: int) -> datetime:
        return poll.polled_at + timedelta(minutes=30)

    writer = writer_for(CountingStore(store))
    lease = Lease("me", schedule)
    lost, fine = await asyncio.gather(
        writer.write(write(ITEMS[0], at(1), offer(item_id=ITEMS[0]), lease=lease)),
        writer.write(write(ITEMS[2], at(1), offer(item_id=ITEMS[2]))),
        return_exceptions=True,
    )
    assert isinstance(lost, leases.LeaseLost)
    assert ok(fine).outcome is PollOutcome.BASELINE


async def test_a_poll_cancelled_before_its_batch_is_not_recorded(store: Store) -> None:
    counting = CountingStore(store)
    writer = writer_for(counting)
    counting.release.clear()
    first = asyncio.create_task(writer.write(write(ITEMS[0], at(0), offer(item_id=ITEMS[0]))))
    await held(counting)
    doomed = asyncio.create_task(writer.write(write(ITEMS[1], at(0), offer(item_id=ITEMS[1]))))
    await settle()
    doomed.cancel()
    counting.release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await doomed
    await writer.wait_idle()
    assert counting.batches == [ITEMS[:1]]
    assert store.poll_counts(ITEMS[1]).total == 0


async def test_wait_idle_waits_for_the_batch_being_written(store: Store) -> None:
    counting = CountingStore(store)
    writer = writer_for(counting)
    counting.release.clear()
    task = asyncio.create_task(writer.write(write(ITEMS[0], at(0), offer(item_id=ITEMS[0]))))
    await held(counting)
    task.cancel()  # the batch has started: it is recorded anyway
    idle = asyncio.create_task(writer.wait_idle())
    await settle()
    assert not idle.done()
    counting.release.set()
    await idle
    assert store.poll_counts(ITEMS[0]).total == 1


def test_max_batch_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        PollWriter(store, max_batch=0)
