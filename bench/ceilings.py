"""Ceilings: how fast raw HTTP fetch + JSON decode can go, with nothing else.

Both are measured in the same run, against the same simulated TMAPI, on the
same item IDs (so the same response bodies) and with the same number of
requests in flight as the pipeline benchmark:

* ``own_client``: the project's own HTTP client setup,
  :meth:`TmapiClient.with_aiohttp` as ``monitor run`` builds it, calling
  ``fetch_once`` (one request, status and TMAPI code checked, JSON decoded
  with ``Decimal`` numbers) on the event loop the daemon uses;
* ``aiohttp``: a bare ``aiohttp`` session with ``orjson.loads`` on uvloop,
  the fastest Python client on this machine.

Each is the requests per second (and process CPU per request) of a fixed
number of requests after a warm-up that opens the connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.tmapi.client import TmapiClient
from monitor.tmapi.settings import TmapiSettings

Fetch = Callable[[int], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Rate:
    """Requests per second and process CPU milliseconds per request of one run."""

    per_s: float
    cpu_ms: float


async def _drive(fetch: Fetch, ids: Sequence[int], requests: int, concurrency: int) -> Rate:
    """``requests`` fetches of ``ids`` (round robin) by ``concurrency`` workers."""
    counter = iter(range(requests))

    async def worker() -> None:
        for index in counter:
            await fetch(ids[index % len(ids)])

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Rate(requests / wall, cpu * 1000 / requests)


async def _own_client(
    base_url: str, ids: Sequence[int], requests: int, concurrency: int, runs: int
) -> list[Rate]:
    settings = TmapiSettings(token=None, base_url=base_url)
    async with TmapiClient.with_aiohttp(settings) as client:

        async def fetch(item_id: int) -> Any:
            return await client.fetch_once(item_id)

        await _drive(fetch, ids, min(requests, 4 * concurrency), concurrency)  # warm-up
        return [await _drive(fetch, ids, requests, concurrency) for _ in range(runs)]


async def _aiohttp(
    base_url: str, ids: Sequence[int], requests: int, concurrency: int, runs: int
) -> list[Rate]:
    import aiohttp
    import orjson

    url = base_url + "/1688/item_detail"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch(item_id: int) -> Any:
            params = {"item_id": str(item_id), "language": "en", "optimize_title": "false"}
            async with session.get(url, params=params) as response:
                return orjson.loads(await response.read())

        await _drive(fetch, ids, min(requests, 4 * concurrency), concurrency)  # warm-up
        return [await _drive(fetch, ids, requests, concurrency) for _ in range(runs)]


def own_client(
    base_url: str,
    ids: Sequence[int],
    *,
    requests: int,
    concurrency: int,
    runs: int,
    run: Callable[[Any], Any] = asyncio.run,
) -> list[Rate]:
    """The own-client ceiling; ``run`` runs a coroutine on the daemon's kind of loop."""
    result: list[Rate] = run(_own_client(base_url, ids, requests, concurrency, runs))
    return result


def aiohttp_orjson(
    base_url: str, ids: Sequence[int], *, requests: int, concurrency: int, runs: int
) -> list[Rate] | None:
    """The aiohttp + orjson (+ uvloop) ceiling; ``None`` when aiohttp or orjson is missing."""
    try:
        import aiohttp  # noqa: F401
        import orjson  # noqa: F401
    except ImportError:
        return None
    try:
        import uvloop

        result: list[Rate] = uvloop.run(_aiohttp(base_url, ids, requests, concurrency, runs))
    except ImportError:
        result = asyncio.run(_aiohttp(base_url, ids, requests, concurrency, runs))
    return result
