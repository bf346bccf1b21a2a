"""Recording finished polls in batches, from one worker thread at a time.

Polls finish on the event loop, many per millisecond at full speed. Each
one hands its :class:`~monitor.db.recording.PollWrite` to :meth:`PollWriter.write`
and waits. The writer records everything waiting in one
:meth:`Store.apply_polls <monitor.db.store.Store.apply_polls>` call (one
transaction, each poll still all-or-nothing) in a worker thread, then
hands each poll its own result or error; polls that finish meanwhile
make up the next batch. When polls come one at a time, a batch is one
poll and nothing waits longer than it would have alone.

One batch at a time: SQLite has one writer anyway (parallel transactions
would only queue on its lock), and on PostgreSQL one transaction for many
polls costs far fewer round trips than one each. A poll whose task is
cancelled before its batch starts is dropped (nothing is written); once
the batch has started, it is recorded or not with the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from monitor.db.poll_plan import PollWrite
from monitor.db.records import PollResult
from monitor.db.store import Store

__all__ = ["PollWriter"]

log = logging.getLogger(__name__)

Waiting = tuple[PollWrite, "asyncio.Future[PollResult]"]


class PollWriter:
    """Batches :class:`PollWrite` requests into :meth:`Store.apply_polls` calls."""

    def __init__(self, store: Store, *, max_batch: int = 256):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.store = store
        self.max_batch = max_batch
        #: Batches recorded so far and the polls in them (for metrics and tests).
        self.batches = 0
        self.written = 0
        self._waiting: list[Waiting] = []
        self._task: asyncio.Task[None] | None = None

    async def write(self, poll: PollWrite) -> PollResult:
        """Record ``poll`` with whatever else is waiting; its result, or its error raised."""
        future: asyncio.Future[PollResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((poll, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="poll-writer")
        return await future

    async def wait_idle(self) -> None:
        """Wait until every poll handed over so far is recorded (or failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait([self._task])

    async def _run(self) -> None:
        while self._waiting:
            batch = [w for w in self._waiting[: self.max_batch] if not w[1].cancelled()]
            del self._waiting[: self.max_batch]
            if batch:
                await self._record(batch)

    async def _record(self, batch: Sequence[Waiting]) -> None:
        writes = [poll for poll, _ in batch]
        try:
            results = await asyncio.to_thread(self.store.apply_polls, writes)
        except asyncio.CancelledError:
            for _, future in [*batch, *self._waiting]:
                future.cancel()
            self._waiting.clear()
            raise
        except Exception as exc:  # apply_polls returns errors; this is a bug
            log.exception("recording a batch of %d polls failed", len(writes))
            results = [exc] * len(writes)
        self.batches += 1
        self.written += len(writes)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
