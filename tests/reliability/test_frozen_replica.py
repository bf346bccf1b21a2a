"""Two replicas on PostgreSQL; one is frozen (SIGSTOP) past its lease, then resumed.

The replica holding the lease of item T is frozen while its request for T is
in flight, after T's price dropped (so the answer it will read carries the
drop). The other replica takes T over once the lease runs out, records the
drop and sends it. When the frozen one resumes it reads that answer and
tries to record it: the poll must be discarded (its lease is gone), so the
drop is recorded once and sent once, and no item is ever polled by both at
the same time.
"""

from __future__ import annotations

import itertools
import signal
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.db.engine import make_engine, upgrade
from monitor.simulator.item_detail import Mode
from monitor.simulator.server import SimulatedTmapi
from tests.reliability.harness import (
    HoldingWebhook,
    MonitorProcess,
    assert_nothing_half_written,
    changes_of,
    lease_owners,
    monitors,
    notifications_of,
    process_env,
    wait_for,
    write_watchlist,
)

TOKEN = "frozen-token-2d8e"
ITEMS = [9101, 9102, 9103, 9104, 9105, 9106]
T = 9101
LEASE = 10


pytestmark = pytest.mark.sim(items=ITEMS, token=TOKEN)


def poll_times(engine: sa.Engine) -> dict[int, list[float]]:
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT item_id, polled_at FROM polls")).all()
    out: dict[int, list[float]] = {}
    for row in sorted(found, key=lambda r: r.polled_at):
        out.setdefault(int(row.item_id), []).append(row.polled_at.timestamp())
    return out


@pytest.mark.postgres
def test_a_replica_frozen_past_its_lease_polls_nothing_twice_and_sends_nothing_twice(
    pg_schema_url: str, sim: SimulatedTmapi, tmp_path: Path
) -> None:
    upgrade(pg_schema_url)
    engine = make_engine(pg_schema_url)
    try:
        with HoldingWebhook() as hook, monitors() as start:
            path = write_watchlist(
                tmp_path / "w.toml", ITEMS, hook_url=hook.json_url("/hook"), interval="2s"
            )
            env = process_env(pg_schema_url, sim, TOKEN)
            args = ["--watchlist", str(path), "--lease", str(LEASE)]
            procs = [start(tmp_path / f"replica-{n}.log", args, env) for n in range(2)]
            wait_for("baselines", lambda: set(poll_times(engine)) == set(ITEMS), 20, procs)

            sku = sim.truth(T).skus[0]
            sim.set_price(T, sku.sku_id, (sku.price / 2).quantize(Decimal("0.01")))
            sim.set_mode(T, Mode.SLOW, delay=1.0)
            asked = sim.requests_for(T)
            frozen: list[MonitorProcess] = []

            def freeze_the_holder() -> bool:
                if sim.requests_for(T) <= asked or sim.in_flight < 1:
                    return False
                owner = lease_owners(engine).get(T)
                holder = next((p for p in procs if p.owns(owner)), None)
                if holder is None:
                    return False
                holder.signal(signal.SIGSTOP)
                frozen.append(holder)
                return True

            wait_for("T's request in flight", freeze_the_holder, 15, procs)
            (victim,) = frozen
            (survivor,) = [p for p in procs if p is not victim]

            def taken_over_and_sent() -> bool:
                sent = [n for n in notifications_of(engine, T) if n.state == "sent"]
                return changes_of(engine, T) == ["price_drop"] and len(sent) == 1

            wait_for("the survivor to record and send", taken_over_and_sent, LEASE + 15, [survivor])
            resumed_at = max(max(times) for times in poll_times(engine).values())
            victim.signal(signal.SIGCONT)
            wait_for(
                "the victim to discard its stale poll",
                lambda: "poll discarded" in victim.stderr(),
                10,
                procs,
            )

            def polled_again_after_resume() -> bool:
                return all(max(t) > resumed_at for t in poll_times(engine).values())

            wait_for("everything polled again", polled_again_after_resume, 15, procs)
            codes = [p.stop() for p in procs]
            logs = [p.stderr() for p in procs]

        assert codes == [0, 0], logs
        assert changes_of(engine, T) == ["price_drop"]
        assert len(hook.messages_about(T)) == 1
        assert "taken over by another process; poll discarded" in victim.stderr()
        # Polls of one item are an interval apart (2 s, no jitter): never two at once.
        for item_id, times in poll_times(engine).items():
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert min(gaps) >= 1.9, f"item {item_id}: polls {gaps} s apart"
        assert_nothing_half_written(engine, sim, ITEMS)
        for log in logs:
            assert "Traceback" not in log and TOKEN not in log
    finally:
        engine.dispose()
