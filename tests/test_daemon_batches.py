"""The daemon records polls in batches: hooks, leases and results stay per poll."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from monitor.alerts.pipeline import record_alerts_batch
from monitor.daemon.service import Daemon, DaemonOptions
from monitor.daemon.throttle import AdaptiveThrottle
from monitor.db import scd
from monitor.db.records import PollOutcome, PollResult
from monitor.db.store import Store
from monitor.tmapi.client import TmapiClient, TmapiSettings
from monitor.tmapi.simulator import SimulatedTmapi
from monitor.watchlist import Item, Watchlist, load_watchlist
from tests.factories import T0

ITEMS = list(range(4001, 4025))


def watchlist(tmp_path: Path) -> Watchlist:
    lines = [
        "[settings]",
        "max_concurrency = 6",
        "max_requests_per_second = 1000",
        "jitter = 0",
        "",
        "[targets]",
        'hook = "json://127.0.0.1:9/hook"',
        "",
        "[defaults]",
        'interval = "10m"',
        'notify = ["hook"]',
        "price_drop_pct = 1",
        "",
    ]
    for item_id in ITEMS:
        lines += ["[[items]]", f"id = {item_id}", ""]
    path = tmp_path / "watchlist.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return load_watchlist(path, env={})


async def test_run_once_records_in_batches_with_every_hook(store: Store, tmp_path: Path) -> None:
    wl = watchlist(tmp_path)
    per_poll: list[int] = []
    batches: list[list[int]] = []

    def on_poll(conn: Connection, poll: PollResult, item: Item, watchlist: Watchlist) -> None:
        assert item.id == poll.item_id and watchlist is wl
        per_poll.append(poll.item_id)

    def on_polls(
        conn: Connection, polls: Sequence[tuple[PollResult, Item]], watchlist: Watchlist
    ) -> Any:
        assert all(item.id == poll.item_id for poll, item in polls)
        batches.append([poll.item_id for poll, _ in polls])
        return record_alerts_batch(conn, polls, watchlist)

    throttle = AdaptiveThrottle(1000, 6)
    with SimulatedTmapi(items=ITEMS) as sim:
        settings = TmapiSettings(base_url=sim.base_url, max_attempts=1)
        async with TmapiClient.with_aiohttp(settings, gate=throttle.call) as client:
            daemon = Daemon(
                store=store,
                client=client,
                throttle=throttle,
                watchlist=wl,
                options=DaemonOptions(owner="me"),
                clock=lambda: T0,
                rng=random.Random(1),
                on_poll=on_poll,
                on_polls=on_polls,
            )
            await daemon.apply_watchlist(wl)
            results = await daemon.run_once()
            for item_id in ITEMS[::3]:
                sim.set_price(item_id, None, "1.00")
            again = await daemon.run_once()
            await daemon.drain(grace=1)

    assert sorted(r.item_id for r in results) == ITEMS == sorted(r.item_id for r in again)
    assert {r.outcome for r in results} == {PollOutcome.BASELINE}
    changed = sorted(r.item_id for r in again if r.outcome is PollOutcome.CHANGED)
    assert changed == ITEMS[::3]
    assert sorted(per_poll) == sorted(ITEMS * 2)
    assert sorted(i for batch in batches for i in batch) == sorted(ITEMS * 2)
    assert len(batches) < len(ITEMS)  # polls were recorded together
    rows = store.list_items()
    assert all(r.lease_owner is None and r.next_poll_at == T0 + timedelta(minutes=10) for r in rows)
    assert all(store.poll_counts(i).total == 2 for i in ITEMS)
    with store.engine.connect() as conn:
        states = scd.load_open_states(conn, ITEMS)
        assert states == {i: scd.load_open_state(conn, i) for i in ITEMS}
        outbox = conn.exec_driver_sql("SELECT item_id FROM notifications").scalars().all()
    assert sorted(outbox) == ITEMS[::3]  # one price-drop message per changed item
    assert daemon.writer.written == 2 * len(ITEMS)
