"""The daemon's units of work, in process, against a real simulated TMAPI.

The daemon reads time only through its injected ``clock``: each test holds a
:class:`FakeClock` and moves it forward, then asks the daemon to claim and
poll what is due (``poll_due`` + ``wait_idle``), as the scheduler would on
its timer. HTTP goes over real loopback sockets to :class:`SimulatedTmapi`,
and the database is SQLite or PostgreSQL (every storage-touching test runs
on both). The throttle runs on the real monotonic clock, with ceilings high
enough that it never waits noticeably, except in the tests that measure it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.daemon.app import Plumbing, open_daemon
from monitor.daemon.reload import WatchlistReloader
from monitor.daemon.runner import RunnerOptions, serve
from monitor.daemon.service import Daemon, DaemonOptions
from monitor.db import leases
from monitor.db.engine import upgrade
from monitor.db.records import PollOutcome
from monitor.db.store import Store
from monitor.domain import ChangeKind
from monitor.errors import ConfigError, StorageError
from monitor.simulator.item_detail import Mode
from monitor.simulator.server import SimulatedTmapi
from monitor.tmapi.settings import TmapiSettings
from monitor.watchlist.load import load_watchlist
from monitor.watchlist.model import Watchlist
from tests.clocks import FakeClock, no_sleep

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
FAST = "max_concurrency = 4\nmax_requests_per_second = 1000\njitter = 0"


def watchlist_text(
    items: Iterable[int | tuple[int, str]], *, interval: str = "10m", settings: str = FAST
) -> str:
    """A watchlist: ``items`` are ids, or ``(id, interval)`` pairs."""
    lines = ["[settings]", settings, "", "[defaults]", f'interval = "{interval}"', ""]
    for entry in items:
        item_id, own = entry if isinstance(entry, tuple) else (entry, None)
        lines += ["[[items]]", f"id = {item_id}", f'name = "item {item_id}"']
        if own is not None:
            lines.append(f'interval = "{own}"')
        lines.append("")
    return "\n".join(lines)


def write_file(path: Path, text: str) -> None:
    """Replace the file the way editors do: a new file renamed over the old one."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


@dataclass
class Rig:
    daemon: Daemon
    reloader: WatchlistReloader
    sim: SimulatedTmapi
    clock: FakeClock
    store: Store
    path: Path

    async def tick(self) -> list[int]:
        """One scheduler tick: claim what is due, poll it, wait for the polls."""
        claimed = await self.daemon.poll_due()
        await self.daemon.wait_idle()
        return claimed

    async def run_until(self, end: datetime) -> None:
        """Jump from due time to due time up to ``end``, polling what is due at each."""
        while True:
            due = leases.next_due(self.store.engine)
            if due is None or due > end:
                break
            self.clock.now = max(self.clock.now, due)
            await self.tick()
        self.clock.now = max(self.clock.now, end)

    async def reload(self) -> Watchlist | None:
        """What the reload timer does."""
        watchlist = await self.reloader.poll()
        if watchlist is not None:
            await self.daemon.apply_watchlist(watchlist)
        return watchlist

    def poll_times(self, item_id: int) -> list[datetime]:
        return sorted(p.polled_at for p in self.store.recent_polls(item_id, limit=1000))

    def outcomes(self, item_id: int) -> list[PollOutcome]:
        polls = sorted(self.store.recent_polls(item_id, limit=1000), key=lambda p: p.polled_at)
        return [p.outcome for p in polls]


@asynccontextmanager
async def make_rig(
    store: Store,
    tmp_path: Path,
    text: str,
    sim_items: Iterable[int],
    *,
    attempts: int = 1,
    request_timeout: float = 5.0,
    options: DaemonOptions | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[Rig]:
    path = tmp_path / "watchlist.toml"
    write_file(path, text)
    watchlist = load_watchlist(path, env={})
    clock = FakeClock(T0)
    with SimulatedTmapi(items=list(sim_items)) as sim:
        tmapi = TmapiSettings(base_url=sim.base_url, timeout=request_timeout, max_attempts=attempts)
        plumbing = Plumbing(clock=clock, rng=rng or random.Random(1), sleep=no_sleep)
        async with open_daemon(
            store,
            watchlist,
            tmapi,
            options=options or DaemonOptions(owner="test-owner"),
            plumbing=plumbing,
        ) as daemon:
            rig = Rig(daemon, WatchlistReloader(path, watchlist, env={}), sim, clock, store, path)
            try:
                yield rig
            finally:
                await daemon.drain(grace=5)


def spacings(times: list[datetime]) -> list[timedelta]:
    return [b - a for a, b in itertools.pairwise(times)]


def errors_logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and text in r.getMessage()
    ]


# -- scheduling ----------------------------------------------------------------------------------


async def test_first_polls_are_spread_over_the_interval(store: Store, tmp_path: Path) -> None:
    ids = list(range(1001, 1021))
    async with make_rig(store, tmp_path, watchlist_text(ids, interval="10m"), ids) as rig:
        dues = sorted(row.next_poll_at for row in store.list_items() if row.next_poll_at)
        assert len(dues) == 20
        assert dues[0] >= T0 and dues[-1] < T0 + 10 * MINUTE
        assert dues[-1] - dues[0] > 8 * MINUTE
        per_minute = Counter((due - T0) // MINUTE for due in dues)
        assert max(per_minute.values()) <= 3  # no minute after start gets a burst

        assert await rig.tick() == []  # nothing is due the instant the daemon starts
        rig.clock.advance(MINUTE)
        assert len(await rig.tick()) <= 3
        await rig.run_until(T0 + 10 * MINUTE - timedelta(seconds=1))
        assert [rig.sim.requests_for(i) for i in ids] == [1] * 20


async def test_each_item_is_polled_at_its_own_interval(store: Store, tmp_path: Path) -> None:
    text = watchlist_text([(1001, "1m"), (1002, "3m")], interval="10m")
    async with make_rig(store, tmp_path, text, [1001, 1002]) as rig:
        await rig.run_until(T0 + 16 * MINUTE)
        fast, slow = rig.poll_times(1001), rig.poll_times(1002)
        assert set(spacings(fast)) == {MINUTE}
        assert set(spacings(slow)) == {3 * MINUTE}
        assert len(fast) in (15, 16) and len(slow) in (5, 6)
        assert rig.sim.requests_for(1001) == len(fast)


async def test_jitter_stretches_intervals_within_bounds(store: Store, tmp_path: Path) -> None:
    settings = "max_concurrency = 4\nmax_requests_per_second = 1000\njitter = 0.2"
    text = watchlist_text([1001], interval="1m", settings=settings)
    async with make_rig(store, tmp_path, text, [1001], rng=random.Random(3)) as rig:
        await rig.run_until(T0 + 30 * MINUTE)
        gaps = spacings(rig.poll_times(1001))
        assert len(gaps) >= 22
        assert all(0.8 * MINUTE <= gap <= 1.2 * MINUTE for gap in gaps)
        assert len(set(gaps)) > len(gaps) // 2  # really jittered, not one fixed delay


async def test_run_once_polls_every_item_exactly_once(store: Store, tmp_path: Path) -> None:
    ids = list(range(1001, 1011))
    async with make_rig(store, tmp_path, watchlist_text(ids, interval="10m"), ids) as rig:
        results = await rig.daemon.run_once()  # at T0, when nothing is due yet
        assert sorted(r.item_id for r in results) == ids
        assert {r.outcome for r in results} == {PollOutcome.BASELINE}
        # The offers are in the database, not held in the results.
        assert all(r.succeeded and r.offer is None for r in results)
        assert [rig.sim.requests_for(i) for i in ids] == [1] * 10
        rows = {row.item_id: row for row in store.list_items()}
        assert all(rows[i].lease_owner is None for i in ids)
        assert all(rows[i].next_poll_at == T0 + 10 * MINUTE for i in ids)
        assert rig.daemon.in_flight == {}


async def test_falling_behind_claims_the_most_overdue_and_never_piles_up(
    store: Store, tmp_path: Path
) -> None:
    ids = list(range(1001, 1013))
    settings = "max_concurrency = 3\nmax_requests_per_second = 1000\njitter = 0"
    async with make_rig(store, tmp_path, watchlist_text(ids, settings=settings), ids) as rig:
        rig.sim.set_mode(None, Mode.SLOW, delay=0.2)
        rig.clock.advance(60 * MINUTE)  # everything is overdue
        due = {row.item_id: row.next_poll_at or T0 for row in store.list_items()}
        order = sorted(ids, key=lambda i: (due[i], i))
        claimed = [await rig.daemon.poll_due() for _ in range(5)]  # ticks while polls run
        assert claimed[0] == order[:3]  # the three most overdue
        assert claimed[1:] == [[]] * 4  # no room: nothing more is claimed
        assert len(rig.daemon.in_flight) == 3
        await rig.daemon.wait_idle()
        assert await rig.daemon.poll_due() == order[3:6]
        await rig.daemon.wait_idle()
        assert rig.sim.max_in_flight == 3
        assert sum(rig.sim.requests_for(i) for i in ids) == 6


async def test_a_full_claim_asks_for_a_refill_once_half_the_room_is_free(
    store: Store, tmp_path: Path
) -> None:
    """A claim that got all it asked for may have left due items behind: as soon as
    half the concurrency limit is free again, the daemon wants to claim again rather
    than wait for the next tick; a claim that found fewer items than room does not."""
    ids = list(range(1001, 1011))
    async with make_rig(store, tmp_path, watchlist_text(ids), ids) as rig:  # 4 in flight
        rig.clock.advance(60 * MINUTE)  # all ten are overdue
        assert not rig.daemon.refill_due()  # nothing claimed yet
        assert len(await rig.daemon.poll_due()) == 4
        assert rig.daemon.backlog and not rig.daemon.refill_due()  # no room yet
        await asyncio.wait_for(rig.daemon.wait_refill(), timeout=10)  # polls ended
        assert rig.daemon.capacity() >= 2
        await rig.daemon.wait_idle()
        assert len(await rig.daemon.poll_due()) == 4
        await rig.daemon.wait_idle()
        assert len(await rig.daemon.poll_due()) == 2  # fewer than the room: all done
        assert not rig.daemon.backlog
        await rig.daemon.wait_idle()
        assert not rig.daemon.refill_due()
        assert sorted(i for i in ids if rig.sim.requests_for(i) == 1) == ids


async def test_serve_works_off_a_backlog_without_waiting_for_ticks(
    store: Store, tmp_path: Path
) -> None:
    """With a tick far away, only the first claim comes from the timer: the rest of
    the overdue items are claimed as polls end, four in flight at most."""
    ids = list(range(1001, 1013))
    async with make_rig(store, tmp_path, watchlist_text(ids), ids) as rig:
        now = T0 + 60 * MINUTE  # every first poll is due by then
        rig.daemon.clock = lambda: now
        stop = asyncio.Event()
        options = RunnerOptions(tick=3600, reload_every=3600, grace=2)
        task = asyncio.create_task(serve(rig.daemon, rig.reloader, options=options, stop=stop))
        await until(lambda: all(rig.sim.requests_for(i) == 1 for i in ids))
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        assert rig.sim.max_in_flight <= 4
        rows = store.list_items()
        assert all(row.lease_owner is None and row.last_polled_at == now for row in rows)


# -- hot reload ----------------------------------------------------------------------------------


async def test_reload_adds_removes_and_reschedules_items(store: Store, tmp_path: Path) -> None:
    text = watchlist_text([1001, 1002], interval="1h")
    async with make_rig(store, tmp_path, text, [1001, 1002, 1003]) as rig:
        await rig.daemon.run_once()
        assert rig.sim.requests_for(1001) == rig.sim.requests_for(1002) == 1
        rig.clock.advance(MINUTE)

        write_file(rig.path, watchlist_text([(1001, "2m"), 1003], interval="1h"))
        new = await rig.reload()
        assert new is not None and [item.id for item in new.items] == [1001, 1003]
        assert rig.daemon.watchlist is new
        assert await rig.reload() is None  # unchanged file: nothing to do

        await rig.run_until(rig.clock.now + 60 * MINUTE)
        # Added: polled (once, within its first interval).
        assert rig.sim.requests_for(1003) == 1
        # Removed: not polled again, but its history stays.
        assert rig.sim.requests_for(1002) == 1
        row = store.item_row(1002)
        assert row is not None and not row.watched
        assert store.load_offer(1002) is not None and store.poll_counts(1002).total == 1
        # Shorter interval: in force at once, not after the old hour runs out.
        times = rig.poll_times(1001)
        assert times[1] - T0 <= 3 * MINUTE
        assert set(spacings(times[1:])) == {2 * MINUTE}
        assert len(times) >= 29


async def test_reload_applies_changed_settings(store: Store, tmp_path: Path) -> None:
    async with make_rig(store, tmp_path, watchlist_text([1001]), [1001]) as rig:
        assert rig.daemon.throttle.gate.limit == 4
        slower = "max_concurrency = 2\nmax_requests_per_second = 7\njitter = 0"
        write_file(rig.path, watchlist_text([1001], settings=slower))
        assert await rig.reload() is not None
        assert rig.daemon.throttle.gate.limit == 2
        assert rig.daemon.throttle.limiter.rate == 7
        assert rig.daemon.capacity() == 2


async def test_an_invalid_edit_is_logged_like_validate_and_the_old_watchlist_stays(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with make_rig(store, tmp_path, watchlist_text([1001], interval="1m"), [1001]) as rig:
        good = rig.daemon.watchlist
        bad = (
            watchlist_text([1001, 1002], interval="1m") + '\n[[items]]\nid = 1001\ncolour = "red"\n'
        )
        write_file(rig.path, bad)
        with pytest.raises(ConfigError) as caught:
            load_watchlist(rig.path, env={})  # what `monitor validate` prints
        expected = str(caught.value)
        assert "colour" in expected and "items[2]" in expected

        assert await rig.reload() is None
        assert await rig.reload() is None  # the same bad file is reported once
        logged = errors_logged(caplog, "still running the last good version")
        assert len(logged) == 1 and expected in logged[0]
        assert rig.daemon.watchlist is good and rig.reloader.current is good

        await rig.run_until(T0 + 5 * MINUTE)  # polling goes on with the old list
        assert rig.sim.requests_for(1001) >= 4
        assert rig.sim.requests_for(1002) == 0

        write_file(rig.path, watchlist_text([1001, 1002], interval="1m"))  # fixed
        fixed = await rig.reload()
        assert fixed is not None and len(fixed.items) == 2
        await rig.run_until(rig.clock.now + 2 * MINUTE)
        assert rig.sim.requests_for(1002) >= 1


async def test_a_deleted_watchlist_file_keeps_the_last_good_one(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_rig(store, tmp_path, watchlist_text([1001]), [1001]) as rig:
        good = rig.daemon.watchlist
        rig.path.unlink()
        assert await rig.reload() is None
        assert await rig.reload() is None
        assert len(errors_logged(caplog, "the watchlist file is gone")) == 1
        assert rig.daemon.watchlist is good
        write_file(rig.path, watchlist_text([1001, 1002]))
        back = await rig.reload()
        assert back is not None and len(back.items) == 2


# -- failures --------------------------------------------------------------------------------------


async def test_a_failing_item_backs_off_and_shows_its_failure_streak(
    store: Store, tmp_path: Path
) -> None:
    async with make_rig(store, tmp_path, watchlist_text([1001], interval="1m"), [1001]) as rig:
        rig.sim.fail(1001, code=500, times=3)
        streaks = []
        for _ in range(4):
            await rig.run_until(leases.next_due(store.engine) or T0)
            row = store.item_row(1001)
            assert row is not None
            streaks.append(row.consecutive_failures)
        assert streaks == [1, 2, 3, 0]
        times = rig.poll_times(1001)
        assert spacings(times) == [MINUTE, 2 * MINUTE, 4 * MINUTE]  # 1, 2, 4 intervals
        assert rig.outcomes(1001) == [PollOutcome.FAILED] * 3 + [PollOutcome.BASELINE]
        row = store.item_row(1001)
        assert row is not None and row.next_poll_at == times[-1] + MINUTE  # back to normal
        assert store.changes_for(1001) == []  # failures never look like changes


async def test_repeated_417_records_the_item_unavailable(store: Store, tmp_path: Path) -> None:
    settings = FAST + "\nunavailable_after = 2"
    text = watchlist_text([1001], interval="1m", settings=settings)
    async with make_rig(store, tmp_path, text, [1001]) as rig:
        await rig.daemon.run_once()  # baseline
        rig.sim.delist(1001)
        await rig.run_until(rig.clock.now + 3 * MINUTE)  # two 417s (1 m, then 2 m later)
        row = store.item_row(1001)
        assert row is not None
        assert not row.available and row.consecutive_failures == 2
        assert rig.outcomes(1001) == [PollOutcome.BASELINE] + [PollOutcome.UNAVAILABLE] * 2
        kinds = [c.change.kind for c in store.changes_for(1001)]
        assert kinds == [ChangeKind.ITEM_UNAVAILABLE]

        rig.sim.relist(1001)
        await rig.run_until(rig.clock.now + 10 * MINUTE)
        kinds = [c.change.kind for c in store.changes_for(1001)]
        assert kinds == [ChangeKind.ITEM_UNAVAILABLE, ChangeKind.ITEM_AVAILABLE]


async def test_quota_exhausted_pauses_polling_logs_once_and_probes(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = list(range(1001, 1007))
    options = DaemonOptions(owner="test-owner", quota_probe=5 * MINUTE)
    text = watchlist_text(ids, interval="1m")
    async with make_rig(store, tmp_path, text, ids, options=options) as rig:
        rig.sim.fail(code=439, times=10_000)
        rig.clock.advance(MINUTE)  # everything due
        assert len(await rig.tick()) == 4  # a full batch goes out and meets 439
        assert rig.sim.requests_total == 4
        assert rig.daemon.paused_until == rig.clock.now + 5 * MINUTE
        for _ in range(4):  # nothing is sent until the probe is due
            rig.clock.advance(MINUTE)
            assert await rig.tick() == []
        assert rig.sim.requests_total == 4
        probes = []
        for _ in range(11):
            rig.clock.advance(MINUTE)
            probes.append(len(await rig.tick()))
        assert probes == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]  # one probe every 5 minutes
        assert rig.sim.requests_total == 7
        assert len(errors_logged(caplog, "code 439")) == 1

        rig.sim.clear_failures()
        rig.clock.advance(5 * MINUTE)
        assert len(await rig.tick()) == 1  # the probe succeeds ...
        assert rig.daemon.paused_until is None
        assert len(await rig.tick()) == 4  # ... and polling resumes at full speed
        assert any("polling resumed" in r.getMessage() for r in caplog.records)
        assert len(errors_logged(caplog, "code 439")) == 1


async def test_503_slows_the_throttle_down(store: Store, tmp_path: Path) -> None:
    async with make_rig(store, tmp_path, watchlist_text([1001]), [1001], attempts=2) as rig:
        throttle = rig.daemon.throttle
        assert (throttle.limiter.rate, throttle.gate.limit) == (1000, 4)
        rig.sim.fail(1001, code=503, times=1)
        [result] = await rig.daemon.run_once()
        assert result.outcome is PollOutcome.BASELINE  # the retry got through
        assert rig.sim.requests_for(1001) == 2
        assert (throttle.limiter.rate, throttle.gate.limit) == (500, 2)
        assert rig.daemon.capacity() == 2


async def test_repeated_timeouts_slow_the_throttle_down(store: Store, tmp_path: Path) -> None:
    ids = [1001, 1002, 1003]
    async with make_rig(store, tmp_path, watchlist_text(ids), ids, request_timeout=0.05) as rig:
        rig.sim.set_mode(None, Mode.SLOW, delay=0.5)
        results = await rig.daemon.run_once()
        assert {r.error_reason for r in results} == {"timeout"}
        assert rig.daemon.throttle.limiter.rate == 500


async def test_a_poll_whose_lease_was_taken_over_is_discarded(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = DaemonOptions(owner="test-owner", lease=MINUTE, poll_deadline=MINUTE)
    async with make_rig(store, tmp_path, watchlist_text([1001]), [1001], options=options) as rig:
        rig.sim.set_mode(None, Mode.SLOW, delay=0.3)
        rig.clock.advance(10 * MINUTE)
        assert await rig.daemon.poll_due() == [1001]
        # While the request is out, the lease runs out and another replica claims it.
        later = rig.clock.now + MINUTE
        taken = await asyncio.to_thread(
            leases.claim, store.engine, "other", later, limit=1, lease=MINUTE
        )
        assert taken == [1001]
        await rig.daemon.wait_idle()
        assert rig.sim.requests_for(1001) == 1
        assert store.poll_counts(1001).total == 0  # nothing recorded
        row = store.item_row(1001)
        assert row is not None and row.lease_owner == "other"
        assert any("taken over" in r.getMessage() for r in caplog.records)


# -- shutdown --------------------------------------------------------------------------------------


async def test_drain_lets_polls_in_flight_finish(store: Store, tmp_path: Path) -> None:
    ids = [1001, 1002, 1003]
    async with make_rig(store, tmp_path, watchlist_text(ids), ids) as rig:
        rig.sim.set_mode(None, Mode.SLOW, delay=0.2)
        rig.clock.advance(10 * MINUTE)
        assert len(await rig.daemon.poll_due()) == 3
        await rig.daemon.drain(grace=5)
        assert rig.daemon.in_flight == {}
        assert store.poll_counts().total == 3
        assert all(row.lease_owner is None for row in store.list_items())
        assert await rig.daemon.poll_due() == []  # stopped: claims nothing more


async def test_drain_cancels_polls_that_outlast_the_grace_period(
    store: Store, tmp_path: Path
) -> None:
    ids = [1001, 1002, 1003]
    async with make_rig(store, tmp_path, watchlist_text(ids), ids) as rig:
        rig.sim.set_mode(None, Mode.SLOW, delay=3)
        rig.clock.advance(10 * MINUTE)
        before = {row.item_id: row.next_poll_at for row in store.list_items()}
        assert len(await rig.daemon.poll_due()) == 3
        started = time.monotonic()
        await rig.daemon.drain(grace=0.2)
        assert time.monotonic() - started < 2
        assert rig.daemon.in_flight == {}
        assert store.poll_counts().total == 0  # nothing half-written
        rows = store.list_items()
        assert all(row.lease_owner is None for row in rows)  # free for others at once
        assert {row.item_id: row.next_poll_at for row in rows} == before


async def test_a_claim_racing_shutdown_leaves_no_lease_behind(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while the claim query runs: the scheduler cancels the job, but the claim
    still commits in its thread; drain must release those leases too."""
    ids = [1001, 1002]
    async with make_rig(store, tmp_path, watchlist_text(ids), ids) as rig:
        rig.clock.advance(10 * MINUTE)
        real_claim = leases.claim
        claimed: list[int] = []
        committed = threading.Event()

        def slow_claim(*args: object, **kwargs: object) -> list[int]:
            time.sleep(0.3)  # the query is slow; the job is cancelled meanwhile
            claimed.extend(real_claim(*args, **kwargs))  # type: ignore[arg-type]
            committed.set()
            return claimed

        monkeypatch.setattr(leases, "claim", slow_claim)
        job = asyncio.create_task(rig.daemon.poll_due())
        await asyncio.sleep(0.05)
        job.cancel()  # what scheduler.shutdown() does to a running job
        await rig.daemon.drain(grace=1)
        assert await asyncio.to_thread(committed.wait, 5)
        assert sorted(claimed) == ids  # the claim did commit ...
        assert all(row.lease_owner is None for row in store.list_items())  # ... and was undone
        assert rig.sim.requests_total == 0


# -- the runner: APScheduler timers, hot reload and stop ------------------------------------------


async def until(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait (on real time) until ``predicate`` holds; fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_serve_polls_reloads_and_stops(store: Store, tmp_path: Path) -> None:
    """The real scheduler on short real timers: items are polled, an edit is picked up,
    and setting ``stop`` drains and returns."""
    text = watchlist_text([1001], interval="1s")
    async with make_rig(store, tmp_path, text, [1001, 1002]) as rig:
        rig.daemon.clock = lambda: datetime.now(UTC)
        stop = asyncio.Event()
        options = RunnerOptions(tick=0.05, reload_every=0.05, grace=2)
        task = asyncio.create_task(serve(rig.daemon, rig.reloader, options=options, stop=stop))
        await until(lambda: rig.sim.requests_for(1001) >= 1)
        write_file(rig.path, watchlist_text([1001, 1002], interval="1s"))
        await until(lambda: rig.sim.requests_for(1002) >= 1)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        assert all(row.lease_owner is None for row in store.list_items())


async def test_a_reload_that_cannot_reach_the_database_is_retried(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edit is read once; if applying it fails (database down), the next reload run
    applies it, although the file has not changed since."""
    real_sync = leases.sync_watchlist
    calls: list[int] = []

    def flaky_sync(*args: Any, **kwargs: Any) -> leases.SyncReport:
        calls.append(1)
        if len(calls) == 2:  # the first sync after the edit
            raise StorageError("syncing the watchlist failed: the database is down")
        return real_sync(*args, **kwargs)

    monkeypatch.setattr(leases, "sync_watchlist", flaky_sync)
    text = watchlist_text([1001], interval="1s")
    async with make_rig(store, tmp_path, text, [1001, 1002]) as rig:
        rig.daemon.clock = lambda: datetime.now(UTC)
        stop = asyncio.Event()
        options = RunnerOptions(tick=0.05, reload_every=0.05, grace=2)
        task = asyncio.create_task(serve(rig.daemon, rig.reloader, options=options, stop=stop))
        await until(lambda: len(calls) == 1)
        write_file(rig.path, watchlist_text([1001, 1002], interval="1s"))
        await until(lambda: rig.sim.requests_for(1002) >= 1)
        assert len(calls) == 3
        stop.set()
        await asyncio.wait_for(task, timeout=5)


# -- the throttle against the simulator, over real sockets ---------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    url = f"sqlite+pysqlite:///{tmp_path / 'throttle.db'}"
    upgrade(url)
    return Store.open(url)


async def test_concurrency_limit_holds_at_the_server(sqlite_store: Store, tmp_path: Path) -> None:
    ids = list(range(1001, 1013))
    settings = "max_concurrency = 3\nmax_requests_per_second = 1000\njitter = 0"
    text = watchlist_text(ids, settings=settings)
    try:
        async with make_rig(sqlite_store, tmp_path, text, ids) as rig:
            rig.sim.set_mode(None, Mode.SLOW, delay=0.1)
            results = await rig.daemon.run_once()
            assert len(results) == 12
            assert rig.sim.max_in_flight == 3  # reached, never exceeded
    finally:
        sqlite_store.close()


async def test_rate_cap_holds_at_the_server(sqlite_store: Store, tmp_path: Path) -> None:
    ids = list(range(1001, 1041))
    settings = "max_concurrency = 8\nmax_requests_per_second = 20\njitter = 0"
    text = watchlist_text(ids, settings=settings)
    try:
        async with make_rig(sqlite_store, tmp_path, text, ids) as rig:
            results = await rig.daemon.run_once()
            assert len(results) == 40
            times = rig.sim.request_times
    finally:
        sqlite_store.close()
    assert len(times) == 40
    measured = (len(times) - 1) / (times[-1] - times[0])
    gaps = [b - a for a, b in itertools.pairwise(times)]
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    print(
        f"\nrate cap 20/s over {len(times)} requests: measured {measured:.3f}/s "
        f"= {measured / 20:.4f} of the cap; busiest 1 s window {busiest} requests; "
        f"gaps {min(gaps) * 1000:.1f}-{max(gaps) * 1000:.1f} ms (cap spacing 50 ms)"
    )
    assert measured <= 20 * 1.02
    assert measured >= 20 * 0.8  # the cap is the limit, not an accident of slowness
    assert busiest <= 21  # no burst in any one-second window
