"""When to poll: pure functions of the item, its interval, its failures and the clock."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

#: A failing item waits at most this long between tries (or its interval, if longer).
MAX_BACKOFF = timedelta(hours=6)
_GOLDEN = 0x9E3779B1


def spread_fraction(item_id: int) -> float:
    """A stable number in [0, 1) per item, so first polls spread evenly over the
    interval and every replica computes the same offset."""
    return ((item_id * _GOLDEN) & 0xFFFFFFFF) / 2**32


def first_poll_at(now: datetime, item_id: int, interval: timedelta) -> datetime:
    """The first poll after start: somewhere in the first interval, not all at once."""
    return now + interval * spread_fraction(item_id)


def jittered(interval: timedelta, jitter: float, rng: random.Random) -> timedelta:
    """``interval`` stretched or shrunk by up to ``jitter`` (a fraction), never below 1 s."""
    factor = 1.0 + rng.uniform(-jitter, jitter) if jitter > 0 else 1.0
    return max(timedelta(seconds=1), interval * factor)


def next_poll_at(
    polled_at: datetime,
    interval: timedelta,
    *,
    failures: int,
    jitter: float,
    rng: random.Random,
) -> datetime:
    """After a poll: one interval later; a failing item backs off exponentially.

    ``failures`` is the item's consecutive failure count after this poll:
    1 failure waits one interval, 2 wait two, 3 wait four …, capped at
    ``max(interval, MAX_BACKOFF)``.
    """
    delay = interval
    if failures > 1:
        delay = min(interval * 2 ** min(failures - 1, 16), max(interval, MAX_BACKOFF))
    return polled_at + jittered(delay, jitter, rng)
