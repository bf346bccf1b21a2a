"""Throttling of TMAPI calls: a requests-per-second cap and a concurrency gate.

Both adapt: when TMAPI answers 503 (its concurrency limit) or requests keep
timing out, the rate and the concurrency are halved (multiplicative
decrease); every run of successes brings them back up step by step
(additive increase) to the configured ceilings. Time comes from injected
``clock``/``sleep`` functions so tests never wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from monitor.errors import TmapiError, TmapiRateLimited, TmapiTimeout

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: Successes needed before the rate and concurrency grow by one step.
RECOVER_AFTER = 20
#: Timeouts in a row that count as overload.
TIMEOUTS_ARE_OVERLOAD = 3


class RateLimiter:
    """Spaces calls at least ``1 / rate`` seconds apart (no bursts).

    Each caller reserves the next free slot synchronously, then sleeps until
    it comes, so concurrent callers never share a slot.
    """

    def __init__(self, rate: float, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate

    def reserve(self) -> float:
        """Take the next slot; return how long to wait for it (0 when it is now)."""
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + 1.0 / self._rate
        return slot - now

    async def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)


class ConcurrencyGate:
    """Like a semaphore whose limit can be changed while tasks hold it."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._active = 0
        self._waiting = 0
        self._cond = asyncio.Condition()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def active(self) -> int:
        return self._active

    @property
    def free(self) -> int:
        return max(0, self._limit - self._active)

    async def set_limit(self, limit: int) -> None:
        async with self._cond:
            self._limit = max(1, limit)
            self._cond.notify_all()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        # The event loop runs one task at a time, so while nobody waits and
        # there is room, a slot is taken and given back without the condition
        # (the usual case); waiters queue on it in order.
        if not self._waiting and self._active < self._limit:
            self._active += 1
        else:
            self._waiting += 1
            try:
                async with self._cond:
                    await self._cond.wait_for(lambda: self._active < self._limit)
                    self._active += 1
            finally:
                self._waiting -= 1
        try:
            yield
        finally:
            self._active -= 1
            if self._waiting:
                async with self._cond:
                    self._cond.notify_all()


class AdaptiveThrottle:
    """The rate cap and concurrency gate for one process, adapting to TMAPI's answers."""

    def __init__(
        self,
        max_rate: float,
        max_concurrency: int,
        *,
        min_rate: float = 0.2,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.max_rate = max_rate
        self.max_concurrency = max_concurrency
        self.min_rate = min(min_rate, max_rate)
        self.limiter = RateLimiter(max_rate, clock=clock, sleep=sleep)
        self.gate = ConcurrencyGate(max_concurrency)
        self._successes = 0
        self._timeouts = 0

    async def configure(self, max_rate: float, max_concurrency: int) -> None:
        """Apply new ceilings (after a watchlist reload); a slowed-down throttle stays slow."""
        at_ceiling = self.limiter.rate >= self.max_rate and self.gate.limit >= self.max_concurrency
        self.max_rate = max_rate
        self.max_concurrency = max_concurrency
        self.min_rate = min(self.min_rate, max_rate)
        rate = max_rate if at_ceiling else min(self.limiter.rate, max_rate)
        limit = max_concurrency if at_ceiling else min(self.gate.limit, max_concurrency)
        self.limiter.set_rate(rate)
        await self.gate.set_limit(limit)

    @asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """Hold a concurrency slot and a rate slot for one TMAPI request, and
        learn from its outcome (503 and timeouts slow down, successes speed up)."""
        async with self.gate.slot():
            await self.limiter.acquire()
            try:
                yield
            except TmapiRateLimited:
                await self.on_overload("TMAPI answered 503: concurrency limit exceeded")
                raise
            except TmapiTimeout:
                await self.on_timeout()
                raise
            except TmapiError:
                raise
            else:
                await self.on_success()

    async def on_success(self) -> None:
        self._timeouts = 0
        self._successes += 1
        if self._successes < RECOVER_AFTER:
            return
        self._successes = 0
        rate = min(self.max_rate, self.limiter.rate + max(self.max_rate / 10, 0.1))
        self.limiter.set_rate(rate)
        await self.gate.set_limit(min(self.max_concurrency, self.gate.limit + 1))

    async def on_overload(self, why: str) -> None:
        """TMAPI said 503, or timeouts piled up: halve rate and concurrency."""
        self._successes = 0
        rate = max(self.min_rate, self.limiter.rate / 2)
        limit = max(1, self.gate.limit // 2)
        if rate < self.limiter.rate or limit < self.gate.limit:
            log.warning(
                "TMAPI is overloaded (%s): slowing down to %.2f requests/s, %d in flight",
                why,
                rate,
                limit,
            )
        self.limiter.set_rate(rate)
        await self.gate.set_limit(limit)

    async def on_timeout(self) -> None:
        self._successes = 0
        self._timeouts += 1
        if self._timeouts >= TIMEOUTS_ARE_OVERLOAD:
            self._timeouts = 0
            await self.on_overload(f"{TIMEOUTS_ARE_OVERLOAD} timeouts in a row")
