"""What the benchmark ran on: CPU, memory, load, versions."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from importlib import metadata
from typing import Any

import sqlalchemy as sa

PACKAGES = (
    "httpx",
    "aiohttp",
    "msgspec",
    "orjson",
    "uvloop",
    "sqlalchemy",
    "psycopg",
    "apscheduler",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_times() -> list[int] | None:
    """The machine's cumulative CPU times (``/proc/stat``: user … steal), in ticks."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            return [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


def contention(since: list[int] | None) -> dict[str, Any]:
    """How busy the machine was: load average, CPU pressure, and (since ``since``) the
    share of CPU time that was busy and that the hypervisor stole."""
    info: dict[str, Any] = {"load_average": load_average()}
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as pressure:
            fields = dict(kv.split("=") for kv in pressure.readline().split()[1:])
            info["cpu_pressure_some_avg60_pct"] = float(fields["avg60"])
    except (OSError, KeyError, ValueError):
        pass
    now = cpu_times()
    if since is not None and now is not None:
        delta = [b - a for a, b in zip(since, now, strict=True)]
        total = sum(delta) or 1
        idle = delta[3] + delta[4]
        info["busy_pct"] = round(100 * (total - idle) / total, 1)
        info["steal_pct"] = round(100 * delta[7] / total, 1)
    return info


def postgres_version(url: str | None) -> str | None:
    if url is None:
        return None
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SHOW server_version").scalar())
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def describe(pg_url: str | None) -> dict[str, Any]:
    """A JSON-ready description of this machine and software."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gb": _memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version(pg_url),
        "packages": {name: _version(name) for name in PACKAGES},
        "at_start": contention(None),
    }
