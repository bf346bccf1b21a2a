"""End-to-end throughput: the daemon's real pipeline against the simulated TMAPI.

One *case* is a database (SQLite file or a fresh PostgreSQL database) and a
watchlist of ``n`` items. The daemon is built by the function ``monitor run``
uses (:func:`monitor.daemon.app.open_daemon`) and every round is
one :meth:`Daemon.run_once`: claim all items, then fetch → parse → diff →
store → rules → outbox for each, ``concurrency`` polls in flight. The rate
cap is set far above what the machine can do, so rounds run at full speed.

Rounds: one baseline round (first sight of every item), then ``runs``
rounds with nothing changed, then ``runs`` rounds before each of which the
simulator changes one SKU (price and stock) of ``change_fraction`` of the
items. Each round reports polls per second (wall clock), process CPU per
poll (all threads), the worst event-loop lag, the CPU split by stage, and
the rows and bytes it added.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bench.probes import CpuSplit, LoopLag, Storage, process_cpu, storage
from bench.sim import SimProcess
from monitor.daemon import poller, runtime
from monitor.daemon.app import open_daemon
from monitor.daemon.service import Daemon, DaemonOptions
from monitor.db import poll_plan, recording, scd
from monitor.db.store import Store
from monitor.domain import PollSource
from monitor.tmapi.settings import TmapiSettings
from monitor.watchlist.model import Item, Rules, Settings, Target, Watchlist

#: Far above anything this machine reaches: the benchmark measures the monitor, not the cap.
UNCAPPED_RATE = 1_000_000.0

#: Runs a coroutine on the same kind of event loop as ``monitor run``.
run_async = runtime.run


def bench_watchlist(path: Path, ids: list[int], *, concurrency: int) -> Watchlist:
    """A watchlist of ``ids`` with the example's rules, notifying one (never called) target."""
    url = "json://127.0.0.1:9/bench"
    rules = Rules(
        interval=timedelta(minutes=30),
        notify=("ops",),
        price_drop_pct=Decimal(1),
        price_rise_pct=Decimal(1),
    )
    return Watchlist(
        path=path,
        settings=Settings(max_concurrency=concurrency, max_requests_per_second=UNCAPPED_RATE),
        targets=MappingProxyType({"ops": Target("ops", url, url)}),
        defaults=rules,
        items=tuple(Item(item_id, f"item {n}", rules) for n, item_id in enumerate(ids)),
    )


@dataclass
class Round:
    """What one ``run_once`` round did and cost."""

    kind: str
    polls: int
    wall_s: float
    cpu_s: float
    lag_max_s: float
    lag_p99_s: float
    outcomes: dict[str, int]
    split_s: dict[str, float]
    added: Storage

    @property
    def polls_per_s(self) -> float:
        return self.polls / self.wall_s

    @property
    def cpu_ms_per_poll(self) -> float:
        return self.cpu_s * 1000 / self.polls


@dataclass
class Case:
    """Every round of one (database, size) case."""

    dialect: str
    items: int
    rounds: list[Round] = field(default_factory=list)

    def of(self, kind: str) -> list[Round]:
        return [r for r in self.rounds if r.kind == kind]

    def median(self, kind: str, attr: str) -> float | None:
        values = [float(getattr(r, attr)) for r in self.of(kind)]
        return statistics.median(values) if values else None


def _split_targets(daemon: Daemon) -> list[tuple[object, str, str]]:
    """What :class:`CpuSplit` wraps: parse, digest + diff, rules + outbox, the store call."""
    return [
        (poller, "parse_item", "parse"),
        (scd, "fingerprint", "diff"),
        (poll_plan, "diff", "diff"),
        (recording, "record_alerts", "alerts"),
        (daemon.store, "apply_polls", "store_total"),
    ]


async def _round(
    daemon: Daemon, kind: str, split: CpuSplit, lag: LoopLag, *, measure_storage: bool
) -> Round:
    engine = daemon.store.engine
    before = await asyncio.to_thread(storage, engine) if measure_storage else None
    split.reset()
    lag.start()
    cpu0, wall0 = process_cpu(), time.perf_counter()
    results = await daemon.run_once()
    wall, cpu = time.perf_counter() - wall0, process_cpu() - cpu0
    await lag.stop()
    split_s = dict(split.seconds)
    after = await asyncio.to_thread(storage, engine) if measure_storage else None
    added = after.minus(before) if after is not None and before is not None else Storage({}, None)
    outcomes = Counter(r.outcome.value for r in results)
    return Round(
        kind=kind,
        polls=len(results),
        wall_s=wall,
        cpu_s=cpu,
        lag_max_s=lag.worst,
        lag_p99_s=lag.percentile(0.99),
        outcomes=dict(outcomes),
        split_s=split_s,
        added=added,
    )


async def run_case(
    url: str,
    dialect: str,
    sim: SimProcess,
    *,
    items: int,
    runs: int,
    concurrency: int,
    change_fraction: float,
    workdir: Path,
    changed_runs: int | None = None,
    log: Any = print,
) -> Case:
    """Baseline, then ``runs`` unchanged and ``changed_runs`` (default ``runs``) changed
    rounds on a fresh database."""
    ids = sim.item_ids[:items]
    watchlist = bench_watchlist(workdir / "watchlist.toml", ids, concurrency=concurrency)
    store = await asyncio.to_thread(Store.open, url, migrate=True)
    settings = TmapiSettings(token=None, base_url=sim.base_url, source=PollSource.SIMULATED)
    case = Case(dialect, items)
    split, lag = CpuSplit(), LoopLag()
    try:
        options = DaemonOptions(lease=timedelta(minutes=30))
        async with open_daemon(store, watchlist, settings, options=options) as daemon:
            runtime.settle_gc()  # as ``monitor run`` does once it is set up
            with split.patched(_split_targets(daemon)):
                changed = runs if changed_runs is None else changed_runs
                plan = ["baseline"] + ["unchanged"] * runs + ["changed"] * changed
                for number, kind in enumerate(plan):
                    if kind == "changed":
                        await asyncio.to_thread(sim.change, change_fraction, number, items)
                    done = await _round(
                        daemon, kind, split, lag, measure_storage=kind != "baseline"
                    )
                    case.rounds.append(done)
                    log(
                        f"  {dialect:10} {items:>6} c={concurrency:<3} {kind:9} "
                        f"{done.polls_per_s:8.0f} polls/s "
                        f"{done.cpu_ms_per_poll:6.3f} ms CPU/poll  lag max "
                        f"{done.lag_max_s * 1000:6.1f} ms  {done.outcomes}"
                    )
    finally:
        await asyncio.to_thread(store.close)
    return case
