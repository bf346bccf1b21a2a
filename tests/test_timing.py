from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.daemon.timing import MAX_BACKOFF, first_poll_at, next_poll_at, spread_fraction

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_first_polls_spread_over_the_interval() -> None:
    interval = timedelta(minutes=10)
    offsets = sorted((first_poll_at(NOW, i, interval) - NOW) / interval for i in range(1, 1001))
    assert offsets[0] >= 0 and offsets[-1] < 1
    # roughly uniform: each tenth of the interval gets 60..140 of 1000 items
    buckets = [0] * 10
    for x in offsets:
        buckets[int(x * 10)] += 1
    assert all(60 <= b <= 140 for b in buckets), buckets


def test_spread_is_stable() -> None:
    assert spread_fraction(652702302959) == spread_fraction(652702302959)


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(0, 600), (1, 600), (2, 1200), (3, 2400), (4, 4800), (5, 9600), (9, MAX_BACKOFF.seconds)],
)
def test_failing_items_back_off(failures: int, expected: int) -> None:
    at = next_poll_at(NOW, timedelta(minutes=10), failures=failures, jitter=0, rng=random.Random(1))
    assert at - NOW == timedelta(seconds=expected)


def test_long_intervals_are_not_shortened_by_the_cap() -> None:
    at = next_poll_at(NOW, timedelta(days=1), failures=5, jitter=0, rng=random.Random(1))
    assert at - NOW == timedelta(days=1)


def test_jitter_stays_within_bounds() -> None:
    rng = random.Random(7)
    delays = [
        (next_poll_at(NOW, timedelta(minutes=30), failures=0, jitter=0.1, rng=rng) - NOW)
        for _ in range(500)
    ]
    assert min(delays) >= timedelta(minutes=27)
    assert max(delays) <= timedelta(minutes=33)
    assert len(set(delays)) > 400
