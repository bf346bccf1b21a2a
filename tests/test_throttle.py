"""The rate cap and concurrency gate, on a fake clock."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from monitor.daemon.throttle import (
    RECOVER_AFTER,
    TIMEOUTS_ARE_OVERLOAD,
    AdaptiveThrottle,
    ConcurrencyGate,
    RateLimiter,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_rate_limiter_spaces_calls() -> None:
    t = FakeTime()
    limiter = RateLimiter(5, clock=t.clock, sleep=t.sleep)
    starts = []
    for _ in range(11):
        await limiter.acquire()
        starts.append(t.now)
    assert starts[0] == 100.0
    assert starts[-1] - starts[0] == pytest.approx(2.0)  # 10 gaps of 0.2 s
    assert all(b - a == pytest.approx(0.2) for a, b in itertools.pairwise(starts))


async def test_concurrent_callers_get_distinct_slots() -> None:
    t = FakeTime()
    limiter = RateLimiter(2, clock=t.clock, sleep=t.sleep)
    delays = [limiter.reserve() for _ in range(4)]
    assert delays == pytest.approx([0.0, 0.5, 1.0, 1.5])


async def test_idle_time_does_not_build_up_a_burst() -> None:
    t = FakeTime()
    limiter = RateLimiter(1, clock=t.clock, sleep=t.sleep)
    await limiter.acquire()
    t.now += 60
    assert [limiter.reserve() for _ in range(3)] == pytest.approx([0.0, 1.0, 2.0])


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


async def test_gate_limits_concurrency_and_can_shrink() -> None:
    gate = ConcurrencyGate(3)
    peak = 0
    release = asyncio.Event()

    async def worker() -> None:
        nonlocal peak
        async with gate.slot():
            peak = max(peak, gate.active)
            await release.wait()

    tasks = [asyncio.create_task(worker()) for _ in range(10)]
    await asyncio.sleep(0)
    assert gate.active == 3
    await gate.set_limit(1)
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 3
    assert gate.active == 0


async def test_overload_halves_and_successes_recover() -> None:
    t = FakeTime()
    throttle = AdaptiveThrottle(8, 8, clock=t.clock, sleep=t.sleep)
    await throttle.on_overload("503")
    assert (throttle.limiter.rate, throttle.gate.limit) == (4, 4)
    await throttle.on_overload("503")
    assert (throttle.limiter.rate, throttle.gate.limit) == (2, 2)
    for _ in range(RECOVER_AFTER):
        await throttle.on_success()
    assert throttle.limiter.rate == pytest.approx(2.8)
    assert throttle.gate.limit == 3
    for _ in range(RECOVER_AFTER * 20):
        await throttle.on_success()
    assert (throttle.limiter.rate, throttle.gate.limit) == (8, 8)


async def test_rate_never_drops_below_the_floor() -> None:
    throttle = AdaptiveThrottle(1, 1, min_rate=0.2)
    for _ in range(10):
        await throttle.on_overload("503")
    assert throttle.limiter.rate == 0.2
    assert throttle.gate.limit == 1


async def test_timeouts_in_a_row_count_as_overload() -> None:
    throttle = AdaptiveThrottle(4, 4)
    for _ in range(TIMEOUTS_ARE_OVERLOAD - 1):
        await throttle.on_timeout()
    await throttle.on_success()
    for _ in range(TIMEOUTS_ARE_OVERLOAD - 1):
        await throttle.on_timeout()
    assert throttle.limiter.rate == 4
    await throttle.on_timeout()
    assert throttle.limiter.rate == 2


async def test_configure_raises_ceilings_but_keeps_a_slowdown() -> None:
    throttle = AdaptiveThrottle(4, 4)
    await throttle.configure(10, 6)
    assert (throttle.limiter.rate, throttle.gate.limit) == (10, 6)
    await throttle.on_overload("503")
    await throttle.configure(20, 12)
    assert (throttle.limiter.rate, throttle.gate.limit) == (5, 3)
    await throttle.configure(2, 2)
    assert (throttle.limiter.rate, throttle.gate.limit) == (2, 2)


async def test_call_learns_from_each_attempt() -> None:
    from monitor.errors import TmapiRateLimited, TmapiServerError, TmapiTimeout

    t = FakeTime()
    throttle = AdaptiveThrottle(8, 8, clock=t.clock, sleep=t.sleep)
    with pytest.raises(TmapiRateLimited):
        async with throttle.call():
            raise TmapiRateLimited("503", code=503)
    assert (throttle.limiter.rate, throttle.gate.limit) == (4, 4)
    with pytest.raises(TmapiServerError):
        async with throttle.call():
            raise TmapiServerError("500", code=500)
    assert throttle.limiter.rate == 4
    for _ in range(TIMEOUTS_ARE_OVERLOAD):
        with pytest.raises(TmapiTimeout):
            async with throttle.call():
                raise TmapiTimeout("slow")
    assert throttle.limiter.rate == 2
    for _ in range(RECOVER_AFTER):
        async with throttle.call():
            pass
    assert throttle.gate.limit == 3
    assert throttle.gate.active == 0
