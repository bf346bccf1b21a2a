"""Test helpers for time: a clock that stands still, and a sleep that does not wait."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta


class FakeClock:
    """The daemon's clock: stands still until the test moves it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


async def no_sleep(_seconds: float) -> None:
    """The client's backoff sleep: retries happen at once."""
    await asyncio.sleep(0)
