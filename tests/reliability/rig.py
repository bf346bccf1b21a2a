"""An in-process daemon for fault scenarios: real sockets, real database, fake clock.

The daemon, built by :func:`monitor.daemon.app.open_daemon` as ``monitor run``
builds it, talks to a
:class:`SimulatedTmapi` over loopback and delivers through apprise to real
local receivers. Its clock is a :class:`FakeClock` the test moves; request
timeouts and poll deadlines are real (short) seconds. The client's retry
backoff does not sleep.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa

from monitor.daemon.app import Plumbing, open_daemon
from monitor.daemon.service import Daemon, DaemonOptions
from monitor.db.models import ChangeRow, Poll
from monitor.db.outbox import NOTIFICATIONS
from monitor.db.records import PollOutcome, PollResult
from monitor.db.store import Store
from monitor.domain import Offer
from monitor.notify.sender import AppriseSender
from monitor.simulator.server import SimulatedTmapi
from monitor.tmapi.settings import TmapiSettings
from monitor.watchlist.load import load_watchlist
from tests.clocks import FakeClock, no_sleep

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLLS = cast(sa.Table, Poll.__table__)
CHANGES = cast(sa.Table, ChangeRow.__table__)


def watchlist_text(
    items: Iterable[int],
    *,
    targets: dict[str, str] | None = None,
    notify: Sequence[str] = (),
    failing_after: int = 3,
    dead_after: str = "24h",
    interval: str = "10m",
) -> str:
    """A watchlist alerting every price, stock and tier change to ``notify``."""
    lines = [
        "[settings]",
        "max_concurrency = 8",
        "max_requests_per_second = 1000",
        "jitter = 0",
        f'dead_after = "{dead_after}"',
        "",
        "[targets]",
        *(f'{name} = "{url}"' for name, url in (targets or {}).items()),
        "",
        "[defaults]",
        f'interval = "{interval}"',
        "notify = [" + ", ".join(f'"{name}"' for name in notify) + "]",
        'alert_on = ["price_drop", "price_rise", "stock_change", "sold_out", "back_in_stock",'
        ' "tier_change", "poll_failing"]',
        f"failing_after = {failing_after}",
        "",
    ]
    for item_id in items:
        lines += ["[[items]]", f"id = {item_id}", f'name = "item {item_id}"', ""]
    return "\n".join(lines)


@dataclass
class Rig:
    daemon: Daemon
    sim: SimulatedTmapi
    clock: FakeClock
    store: Store

    @property
    def engine(self) -> sa.Engine:
        return self.store.engine

    async def poll_all(self) -> dict[int, PollResult]:
        """Poll every item once (due or not); the results by item id."""
        return {r.item_id: r for r in await self.daemon.run_once()}

    async def tick(self) -> list[int]:
        """What the scheduler's poll timer does: claim what is due, then wait for the polls."""
        claimed = await self.daemon.poll_due()
        await self.daemon.wait_idle()
        return claimed

    async def deliver(self) -> int:
        return await self.daemon.deliver_all()

    def offer(self, item_id: int) -> Offer | None:
        return self.store.load_offer(item_id)

    def rows(self, table: sa.Table, **where: Any) -> list[sa.Row[Any]]:
        query = sa.select(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        with self.engine.connect() as conn:
            return list(conn.execute(query.order_by(table.c.id)).all())

    def polls(self, item_id: int) -> list[sa.Row[Any]]:
        return self.rows(POLLS, item_id=item_id)

    def changes(self, item_id: int | None = None) -> list[sa.Row[Any]]:
        return self.rows(CHANGES) if item_id is None else self.rows(CHANGES, item_id=item_id)

    def notifications(self, item_id: int | None = None) -> list[sa.Row[Any]]:
        if item_id is None:
            return self.rows(NOTIFICATIONS)
        return self.rows(NOTIFICATIONS, item_id=item_id)

    def item_row(self, item_id: int) -> Any:
        return self.store.item_row(item_id)


def outcomes(rig: Rig, item_id: int) -> list[PollOutcome]:
    return [PollOutcome(row.outcome) for row in rig.polls(item_id)]


@asynccontextmanager
async def make_rig(
    store: Store,
    path: Path,
    text: str,
    sim_items: Iterable[int],
    *,
    attempts: int = 3,
    request_timeout: float = 5.0,
    backoff_max: float = 30.0,
    min_rate: float = 0.2,
    options: DaemonOptions | None = None,
) -> AsyncIterator[Rig]:
    """A daemon on ``store`` watching the watchlist ``text`` (written to ``path``).

    ``min_rate`` is the lowest rate the throttle slows down to on 503s and timeouts.
    """
    await asyncio.to_thread(path.write_text, text, encoding="utf-8")
    watchlist = load_watchlist(path, env={})
    clock = FakeClock(T0)
    with SimulatedTmapi(items=list(sim_items)) as sim:
        settings = TmapiSettings(
            base_url=sim.base_url,
            timeout=request_timeout,
            max_attempts=attempts,
            backoff_max=backoff_max,
        )
        plumbing = Plumbing(
            clock=clock,
            rng=random.Random(7),
            sleep=no_sleep,
            sender=AppriseSender(min_interval=0, timeout=10),
            min_rate=min_rate,
        )
        async with open_daemon(
            store,
            watchlist,
            settings,
            options=options or DaemonOptions(owner="reliability"),
            plumbing=plumbing,
        ) as daemon:
            try:
                yield Rig(daemon, sim, clock, store)
            finally:
                await daemon.drain(grace=5)
