"""``monitor run`` as real processes: signals, replicas, SIGKILL takeover, ``--once``.

Each test starts ``python -m monitor run`` subprocesses against ONE simulated
TMAPI served by the test process (``TMAPI_TOKEN`` + ``TMAPI_BASE_URL``), and a
database shared by all of them. Progress is observed by polling the
database and the simulator's counters; every process is killed by PID in a
``finally`` if it is still running.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import cast
from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.db import leases
from monitor.db.engine import make_engine, upgrade
from monitor.db.models import Poll
from monitor.simulator.item_detail import Mode
from monitor.simulator.loopback import Reply
from monitor.simulator.server import SimulatedTmapi
from tests.reliability.harness import MonitorProcess, assert_nothing_half_written

POLLS = cast(sa.Table, Poll.__table__)
REPO = Path(__file__).resolve().parent.parent
TOKEN = "sim-token-5f1c2a"
ITEMS = [1001, 1002, 1003, 1004, 1005, 1006]


class RecordingTmapi(SimulatedTmapi):
    """The simulator, also noting which item each request was for and when it came."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.starts: dict[int, list[float]] = defaultdict(list)
        self._record_lock = threading.Lock()

    def _answer(self, method: str, target: str, headers: dict[str, str]) -> Reply:
        item = dict(parse_qsl(target.partition("?")[2])).get("item_id", "")
        if item.isdigit():
            with self._record_lock:
                self.starts[int(item)].append(time.monotonic())
        return super()._answer(method, target, headers)


def watchlist(
    path: Path, items: Sequence[int], *, interval: str = "2s", concurrency: int = 4
) -> Path:
    lines = [
        "[settings]",
        f"max_concurrency = {concurrency}",
        "max_requests_per_second = 50",
        "",
        "[defaults]",
        f'interval = "{interval}"',
        "",
    ]
    for item_id in items:
        lines += ["[[items]]", f"id = {item_id}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def process_env(db_url: str, sim: SimulatedTmapi) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "TMAPI_"))}
    env.update(
        MONITOR_DATABASE_URL=db_url,
        TMAPI_TOKEN=TOKEN,
        TMAPI_BASE_URL=sim.base_url,
        PYTHONUNBUFFERED="1",
    )
    return env


@contextmanager
def replicas(
    tmp_path: Path, count: int, args: list[str], env: dict[str, str]
) -> Iterator[list[MonitorProcess]]:
    started: list[MonitorProcess] = []
    try:
        for index in range(count):
            log = tmp_path / f"replica-{index}.log"
            started.append(MonitorProcess(log, args, env, capture_stdout=True))
        yield started
    finally:
        for replica in started:
            replica.close()


def wait_for(
    what: str, check: Callable[[], bool], timeout: float, procs: Sequence[MonitorProcess] = ()
) -> None:
    """Poll ``check`` until it holds; fail early if a process died."""
    deadline = time.monotonic() + timeout
    while not check():
        for replica in procs:
            if replica.proc.poll() is not None:
                code = replica.proc.returncode
                pytest.fail(f"replica exited ({code}) waiting for {what}:\n{replica.stderr()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def scalar(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def lease_owners(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT item_id, lease_owner FROM items WHERE lease_owner IS NOT NULL")
        ).all()
    return {int(row.item_id): str(row.lease_owner) for row in rows}


def poll_times(engine: Engine) -> dict[int, list[float]]:
    """Each item's poll times (POSIX seconds), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(POLLS.c.item_id, POLLS.c.polled_at)).all()
    out: dict[int, list[float]] = defaultdict(list)
    for item_id, polled_at in sorted(rows, key=lambda row: row.polled_at):
        out[item_id].append(polled_at.timestamp())
    return out


pytestmark = pytest.mark.sim(RecordingTmapi, items=ITEMS, token=TOKEN)


@pytest.fixture
def db(migrated_url: str) -> Iterator[tuple[str, Engine]]:
    engine = make_engine(migrated_url)
    try:
        yield migrated_url, engine
    finally:
        engine.dispose()


# -- graceful shutdown ---------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_polls_lets_them_finish_and_exits_0(
    db: tuple[str, Engine], sim: RecordingTmapi, tmp_path: Path, sig: int
) -> None:
    url, engine = db
    sim.set_mode(None, Mode.SLOW, delay=1.0)
    args = ["--watchlist", str(watchlist(tmp_path / "w.toml", ITEMS)), "--lease", "10"]
    with replicas(tmp_path, 1, args, process_env(url, sim)) as [replica]:
        wait_for("polls in flight", lambda: sim.in_flight >= 2, 45, [replica])
        in_flight = sim.in_flight
        started = time.monotonic()
        assert replica.stop(sig) == 0, replica.stderr()
        took = time.monotonic() - started
        log = replica.stderr()
    assert took < 5
    assert "stopped" in log and "Traceback" not in log
    assert TOKEN not in log
    # The polls that were in flight were allowed to finish and were recorded.
    assert scalar(engine, "SELECT count(*) FROM polls") >= in_flight
    assert_nothing_half_written(engine, sim, ITEMS)


def test_polls_outlasting_the_grace_period_are_cancelled_cleanly(
    db: tuple[str, Engine], sim: RecordingTmapi, tmp_path: Path
) -> None:
    url, engine = db
    sim.set_mode(None, Mode.SLOW, delay=5.0)
    args = [
        "--watchlist",
        str(watchlist(tmp_path / "w.toml", ITEMS)),
        "--lease",
        "10",
        "--grace",
        "0.3",
    ]
    with replicas(tmp_path, 1, args, process_env(url, sim)) as [replica]:
        wait_for("polls in flight", lambda: sim.in_flight >= 2, 45, [replica])
        started = time.monotonic()
        assert replica.stop() == 0, replica.stderr()
        assert time.monotonic() - started < 3
    assert scalar(engine, "SELECT count(*) FROM polls") == 0
    assert_nothing_half_written(engine, sim, ITEMS)


# -- --once ----------------------------------------------------------------------------------------


def test_once_polls_every_item_once_and_exits_0(
    db: tuple[str, Engine], sim: RecordingTmapi, tmp_path: Path
) -> None:
    url, engine = db
    args = ["--watchlist", str(watchlist(tmp_path / "w.toml", ITEMS, interval="1h")), "--once"]
    with replicas(tmp_path, 1, args, process_env(url, sim)) as [replica]:
        assert replica.proc.wait(timeout=30) == 0, replica.stderr()
        assert replica.proc.stdout is not None
        out = replica.proc.stdout.read().decode()
    assert f"polled {len(ITEMS)} items: 0 changes, 0 failed" in out
    assert [sim.requests_for(i) for i in ITEMS] == [1] * len(ITEMS)
    assert {i: len(t) for i, t in poll_times(engine).items()} == dict.fromkeys(ITEMS, 1)
    assert_nothing_half_written(engine, sim, ITEMS)


# -- several processes on one database -------------------------------------------------------------


def run_two_replicas(url: str, engine: Engine, sim: RecordingTmapi, tmp_path: Path) -> None:
    """Two replicas poll the same six items (2 s interval, 0.3 s per request) until each
    item was polled at least three times; then both stop with SIGTERM."""
    sim.set_mode(None, Mode.SLOW, delay=0.3)
    args = ["--watchlist", str(watchlist(tmp_path / "w.toml", ITEMS)), "--lease", "10"]
    with replicas(tmp_path, 2, args, process_env(url, sim)) as procs:
        holders: set[int] = set()

        def progress() -> bool:
            for owner in lease_owners(engine).values():
                holders.update(r.pid for r in procs if r.owns(owner))
            counts = poll_times(engine)
            return all(len(counts.get(i, [])) >= 3 for i in ITEMS)

        # Which replica polls what is up to the claims: both run the whole time, and
        # lease sampling shows who held items when it looked.
        wait_for("three polls of every item", progress, 60, procs)
        codes = [replica.stop() for replica in procs]
        logs = [replica.stderr() for replica in procs]
    assert codes == [0, 0], logs
    assert holders, "no replica was ever seen holding a lease"
    for log in logs:
        assert "database is locked" not in log
        assert "Traceback" not in log
        assert TOKEN not in log
    # The simulator's view: no item ever had two requests out at once.
    for item_id in ITEMS:
        starts = sim.starts[item_id]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert min(gaps) >= 0.3, f"item {item_id} was polled concurrently: gaps {gaps}"
    # The database's view: polls of one item are an interval apart (2 s, jitter 10 %).
    for item_id, times in poll_times(engine).items():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 1.8, f"item {item_id}: polls {gaps} s apart"
    assert_nothing_half_written(engine, sim, ITEMS)


@pytest.mark.postgres
def test_two_replicas_on_postgresql_never_poll_an_item_twice_at_once(
    pg_schema_url: str, sim: RecordingTmapi, tmp_path: Path
) -> None:
    upgrade(pg_schema_url)
    engine = make_engine(pg_schema_url)
    try:
        run_two_replicas(pg_schema_url, engine, sim, tmp_path)
    finally:
        engine.dispose()


def test_two_processes_on_one_sqlite_file_coordinate(sim: RecordingTmapi, tmp_path: Path) -> None:
    url = f"sqlite+pysqlite:///{tmp_path / 'shared.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        run_two_replicas(url, engine, sim, tmp_path)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_killed_replicas_items_are_taken_over_after_its_lease(
    pg_schema_url: str, sim: RecordingTmapi, tmp_path: Path
) -> None:
    """SIGKILL one of two replicas while it holds leases: its items wait out the lease,
    then the survivor polls them. Prints the measured takeover time."""
    upgrade(pg_schema_url)
    engine = make_engine(pg_schema_url)
    lease, request = 10, 0.5
    sim.set_mode(None, Mode.SLOW, delay=request)
    args = ["--watchlist", str(watchlist(tmp_path / "w.toml", ITEMS)), "--lease", str(lease)]
    try:
        with replicas(tmp_path, 2, args, process_env(pg_schema_url, sim)) as procs:
            held: dict[int, str] = {}
            chosen: list[MonitorProcess] = []

            def a_replica_holds_leases() -> bool:
                # The victim is whichever replica is caught holding leases.
                for replica in procs:
                    owned = {i: o for i, o in lease_owners(engine).items() if replica.owns(o)}
                    if owned:
                        held.clear()
                        held.update(owned)
                        chosen[:] = [replica]
                        return True
                return False

            wait_for("a replica to hold a lease", a_replica_holds_leases, 45, procs)
            victim = chosen[0]
            survivor = procs[1] if victim is procs[0] else procs[0]
            victim.proc.kill()  # SIGKILL: no drain, its leases stay behind
            killed_at, killed_mono = time.time(), time.monotonic()
            victim.proc.wait(timeout=10)
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(leases.ITEMS.c.item_id, leases.ITEMS.c.lease_expires_at).where(
                        leases.ITEMS.c.lease_owner.in_(set(held.values()))
                    )
                ).all()
            expires = {int(r.item_id): r.lease_expires_at.timestamp() for r in rows}
            assert expires, "the victim's leases should outlive it"
            claimed_at: dict[int, float] = {}

            def survivor_took_over() -> bool:
                owners = lease_owners(engine)
                now = killed_at + time.monotonic() - killed_mono
                for item_id in expires.keys() - claimed_at.keys():
                    if survivor.owns(owners.get(item_id)):
                        claimed_at[item_id] = now
                times = poll_times(engine)
                return all(any(t > killed_at for t in times.get(i, [])) for i in expires)

            wait_for("the survivor to poll the victim's items", survivor_took_over, lease + 30)
            assert survivor.stop() == 0, survivor.stderr()

        times = poll_times(engine)
        first_polls = {i: min(t for t in times[i] if t > killed_at) for i in expires}
        expiry = min(expires.values())
        first_claim = min(claimed_at.values(), default=None)
        first_poll = min(first_polls.values())
        print(
            f"\ntakeover after SIGKILL (--lease {lease}, {request} s per request): "
            f"the lease ran out {expiry - killed_at:.2f} s after the kill; "
            + (f"survivor claimed at +{first_claim - killed_at:.2f} s; " if first_claim else "")
            + f"first poll recorded at +{first_poll - killed_at:.2f} s "
            f"({first_poll - expiry:.2f} s after the lease ran out)"
        )
        for item_id, polled in first_polls.items():
            # Not before the victim's lease ran out; soon after (a tick, the request, slack).
            assert expires[item_id] <= polled <= expires[item_id] + 1.0 + request + 2.0
            # While the lease was valid nobody sent a request for the item (a request
            # the victim wrote just before it was killed may be read a moment later).
            valid_until = killed_mono + expires[item_id] - killed_at
            in_flight = killed_mono + 1.0
            assert not [t for t in sim.starts[item_id] if in_flight < t < valid_until]
        assert_nothing_half_written(engine, sim, ITEMS)
    finally:
        engine.dispose()
