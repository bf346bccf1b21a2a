"""The daemon records polls in batches: alerts, leases and results stay per poll."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

from monitor.daemon.app import Plumbing, open_daemon
from monitor.daemon.service import DaemonOptions
from monitor.db import scd
from monitor.db.records import PollOutcome
from monitor.db.store import Store
from monitor.simulator.server import SimulatedTmapi
from monitor.tmapi.settings import TmapiSettings
from monitor.watchlist.load import load_watchlist
from monitor.watchlist.model import Watchlist
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


async def test_run_once_records_in_batches_and_alerts_on_every_poll(
    store: Store, tmp_path: Path
) -> None:
    wl = watchlist(tmp_path)
    with SimulatedTmapi(items=ITEMS) as sim:
        settings = TmapiSettings(base_url=sim.base_url, max_attempts=1)
        plumbing = Plumbing(clock=lambda: T0, rng=random.Random(1))
        async with open_daemon(
            store, wl, settings, options=DaemonOptions(owner="me"), plumbing=plumbing
        ) as daemon:
            results = await daemon.run_once()
            for item_id in ITEMS[::3]:
                sim.set_price(item_id, None, "1.00")
            again = await daemon.run_once()
            batches = daemon.writer.batches
            counted = daemon.metrics.value("monitor_polls_total", outcome="changed")
            baselines = daemon.metrics.value("monitor_polls_total", outcome="baseline")

    assert sorted(r.item_id for r in results) == ITEMS == sorted(r.item_id for r in again)
    assert {r.outcome for r in results} == {PollOutcome.BASELINE}
    changed = sorted(r.item_id for r in again if r.outcome is PollOutcome.CHANGED)
    assert changed == ITEMS[::3]
    assert (baselines, counted) == (len(ITEMS), len(changed))  # metrics read the results
    assert batches < 2 * len(ITEMS)  # polls were recorded together
    assert sorted(r.item_id for r in again if r.alerted == ("hook",)) == ITEMS[::3]
    rows = store.list_items()
    assert all(r.lease_owner is None and r.next_poll_at == T0 + timedelta(minutes=10) for r in rows)
    assert all(store.poll_counts(i).total == 2 for i in ITEMS)
    with store.engine.connect() as conn:
        states = scd.load_open_states(conn, ITEMS)
        assert states == {i: scd.load_open_state(conn, i) for i in ITEMS}
        outbox = conn.exec_driver_sql("SELECT item_id FROM notifications").scalars().all()
    assert sorted(outbox) == ITEMS[::3]  # one price-drop message per changed item
    assert daemon.writer.written == 2 * len(ITEMS)
