"""Measuring instruments for the pipeline benchmark: CPU split, loop lag, storage.

:class:`CpuSplit` wraps the pipeline's stages (by patching module attributes
for the duration of a ``with`` block, the code under test is unchanged) and
adds up the CPU time of each in the thread that runs it
(``time.thread_time``), so stages running in worker threads are measured as
exactly as those on the event loop. Fetching cannot be timed that way (it
interleaves with every other task on the loop), so the report derives it
from the own-client ceiling, which measures exactly fetch + decode.

:class:`LoopLag` is a task that asks to wake every few milliseconds and
records how late it wakes: a blocked loop shows up as lag.

:func:`storage` counts rows per table and, on SQLite, the bytes each table
and its indexes really use (``dbstat``: page size minus unused bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

#: The tables a poll can write to.
TABLES = (
    "items",
    "polls",
    "changes",
    "item_states",
    "sku_states",
    "tier_states",
    "rule_states",
    "notifications",
)


@dataclass
class CpuSplit:
    """Thread CPU seconds spent in each measured stage."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self._lock:
            self.seconds.clear()
            self.calls.clear()

    def timed(self, stage: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func``, adding its thread CPU time to ``stage``."""
        clock = time.thread_time

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return func(*args, **kwargs)
            finally:
                spent = clock() - start
                with self._lock:
                    self.seconds[stage] = self.seconds.get(stage, 0.0) + spent
                    self.calls[stage] = self.calls.get(stage, 0) + 1

        wrapper.__wrapped__ = func  # type: ignore[attr-defined]
        return wrapper

    @contextlib.contextmanager
    def patched(self, targets: list[tuple[object, str, str]]) -> Iterator[None]:
        """Wrap ``getattr(owner, name)`` as stage ``stage`` for each ``(owner, name, stage)``."""
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
        try:
            for owner, name, stage in targets:
                setattr(owner, name, self.timed(stage, getattr(owner, name)))
            yield
        finally:
            for owner, name, original in reversed(saved):
                setattr(owner, name, original)


class LoopLag:
    """Wakes every ``period`` seconds and records the worst lateness, in seconds."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.worst = 0.0
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.period)
            late = loop.time() - start - self.period
            self.samples.append(late)
            self.worst = max(self.worst, late)

    def start(self) -> None:
        self.worst = 0.0
        self.samples = []
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def percentile(self, q: float) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True, slots=True)
class Storage:
    """Rows per table and (SQLite only) bytes used per table with its indexes."""

    rows: dict[str, int]
    bytes: dict[str, int] | None

    def minus(self, before: Storage) -> Storage:
        rows = {t: self.rows[t] - before.rows.get(t, 0) for t in self.rows}
        used = None
        if self.bytes is not None and before.bytes is not None:
            used = {t: self.bytes[t] - before.bytes.get(t, 0) for t in self.bytes}
        return Storage(rows, used)

    @property
    def total_bytes(self) -> int | None:
        return None if self.bytes is None else sum(self.bytes.values())


def storage(engine: Engine) -> Storage:
    """Count rows (and on SQLite, used bytes) of every table a poll writes."""
    with engine.connect() as conn:
        rows = {
            t: int(conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar() or 0) for t in TABLES
        }
        used: dict[str, int] | None = None
        if engine.dialect.name == "sqlite":
            owner = {
                name: table
                for name, table in conn.exec_driver_sql(
                    "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"
                )
            }
            used = dict.fromkeys(TABLES, 0)
            for name, size in conn.exec_driver_sql(
                "SELECT name, sum(pgsize - unused) FROM dbstat GROUP BY name"
            ):
                table = owner.get(name, name)
                if table in used:
                    used[table] += int(size)
    return Storage(rows, used)


def process_cpu() -> float:
    """CPU seconds of this process, every thread included."""
    return time.process_time()
