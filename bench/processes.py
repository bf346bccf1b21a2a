"""``monitor run`` as a real process: time to the first poll, and peak memory.

Both start ``python -m monitor run --watchlist FILE`` (what the ``monitor``
console script runs) against the simulated TMAPI subprocess, with a SQLite
database of their own, and stop it with SIGTERM.

* Startup: seconds from just before the process is spawned to the first
  request the simulator receives (both read CLOCK_MONOTONIC, which is
  system-wide). Measured on an empty database (first start: schema
  migrations and 10k new items to insert) and again on the same database
  (a restart).
* Memory: peak RSS (``VmHWM`` of ``/proc/PID/status``) with the watchlist
  loaded, every item registered in the database and the scheduler polling
  for a while.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.sim import SimProcess


def write_watchlist(
    path: Path, ids: list[int], *, interval: str, concurrency: int, rate: int
) -> Path:
    """A watchlist file for ``ids`` (one ``[[items]]`` table each), notifying one target."""
    lines = [
        "[settings]",
        f"max_concurrency = {concurrency}",
        f"max_requests_per_second = {rate}",
        "",
        "[targets]",
        'ops = "json://127.0.0.1:9/bench"',
        "",
        "[defaults]",
        f'interval = "{interval}"',
        'notify = ["ops"]',
        "price_drop_pct = 1",
        "",
    ]
    for item_id in ids:
        lines += ["[[items]]", f"id = {item_id}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _env(db_url: str, sim: SimProcess, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "TMAPI_"))}
    env.update(
        MONITOR_DATABASE_URL=db_url,
        MONITOR_HOME=str(home),
        TMAPI_TOKEN="bench-token",
        TMAPI_BASE_URL=sim.base_url,
        MONITOR_LOG_LEVEL="WARNING",
    )
    return env


def _spawn(watchlist: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--watchlist", str(watchlist)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _first_request(sim: SimProcess, proc: subprocess.Popen[bytes], limit: float) -> float:
    """The monotonic time of the simulator's first request; fails after ``limit`` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        first = sim.stats()["first"]
        if first is not None:
            return float(first)
        if proc.poll() is not None:
            raise RuntimeError(f"monitor run exited with {proc.returncode} before polling")
        time.sleep(0.01)
    raise RuntimeError(f"no poll within {limit:g} s of starting monitor run")


@dataclass(frozen=True, slots=True)
class Startup:
    first_start_s: float
    restart_s: float


def startup(sim: SimProcess, items: int, workdir: Path) -> Startup:
    """Seconds from spawning ``monitor run`` to its first poll, cold then warm."""
    watchlist = write_watchlist(
        workdir / "startup.toml", sim.item_ids[:items], interval="10m", concurrency=8, rate=50
    )
    env = _env(f"sqlite+pysqlite:///{workdir}/startup.db", sim, workdir)
    times = []
    for _ in range(2):
        sim.reset()
        started = time.monotonic()
        proc = _spawn(watchlist, env, workdir / "startup.log")
        try:
            times.append(_first_request(sim, proc, 120) - started)
        finally:
            _stop(proc)
    return Startup(times[0], times[1])


@dataclass(frozen=True, slots=True)
class Memory:
    peak_rss_mb: float
    rss_mb: float
    polls: int
    seconds: float


def memory(sim: SimProcess, items: int, workdir: Path, *, run_for: float) -> Memory:
    """Peak RSS of ``monitor run`` with ``items`` items, polling for ``run_for`` seconds."""
    watchlist = write_watchlist(
        workdir / "memory.toml", sim.item_ids[:items], interval="1h", concurrency=16, rate=200
    )
    env = _env(f"sqlite+pysqlite:///{workdir}/memory.db", sim, workdir)
    sim.reset()
    proc = _spawn(watchlist, env, workdir / "memory.log")
    try:
        first = _first_request(sim, proc, 300)
        while time.monotonic() < first + run_for:
            if proc.poll() is not None:
                raise RuntimeError(f"monitor run exited with {proc.returncode}")
            time.sleep(0.2)
        peak = _status_kb(proc.pid, "VmHWM")
        now = _status_kb(proc.pid, "VmRSS")
        polls = int(sim.stats()["requests"])
    finally:
        _stop(proc)
    return Memory(peak / 1024, now / 1024, polls, run_for)
