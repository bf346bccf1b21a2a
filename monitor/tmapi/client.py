"""Async HTTP client for TMAPI's ``GET /1688/item_detail``: requests, retries, pools.

:class:`TmapiClient` sends the request, enforces one overall deadline per
attempt (connect, headers and the whole body), retries retryable errors
with backoff (:func:`backoff_delay`), and returns the ``data`` object
untouched. What an answer means is :mod:`monitor.tmapi.answers`' job, how
to reach TMAPI :mod:`monitor.tmapi.settings`', and turning ``data`` into an
``Offer`` :mod:`monitor.tmapi.parse`'s.

Every failure leaves this module as a :class:`~monitor.errors.TmapiError`:
the answers as :mod:`monitor.tmapi.answers` maps them, and these::

    httpx timeouts, overall deadline              TmapiTimeout             yes
    connection errors                             TmapiTransportError      yes
    undecodable (Content-Encoding) body           TmapiBadResponse         yes

The request URL carries ``apiToken``, so no message here quotes a URL or an
httpx exception unredacted, foreign exceptions are chained ``from None``,
and ``raise_for_status()`` (whose message contains the URL) is never used.
Paid calls are counted in :attr:`TmapiClient.calls`, one per request sent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from monitor.domain import LANGUAGES
from monitor.errors import (
    ConfigError,
    TmapiBadRequest,
    TmapiBadResponse,
    TmapiError,
    TmapiTimeout,
    TmapiTransportError,
)
from monitor.logs import redact, register_secret
from monitor.tmapi.answers import MSG_LIMIT, interpret
from monitor.tmapi.settings import TmapiSettings

__all__ = ["TmapiClient", "backoff_delay"]

log = logging.getLogger(__name__)

ITEM_DETAIL_PATH = "/1688/item_detail"
USER_AGENT = "monitor-1688/0.1 (+httpx)"
#: Connections per ``httpx.AsyncClient`` shard (see :class:`TmapiClient`).
SHARD_SIZE = 4


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float | None:
    """How long to sleep after failed attempt number ``attempt`` (1-based).

    With a ``retry_after`` from the server that is exactly what it asked
    for, or ``None`` (do not retry now) when it asks for more than ``cap``.
    Otherwise full jitter: uniform in ``[0, min(cap, base * 2**(attempt-1))]``.
    """
    if retry_after is not None:
        return retry_after if retry_after <= cap else None
    return rng.uniform(0.0, min(cap, base * 2.0 ** (attempt - 1)))


class TmapiClient:
    """Fetch ``item_detail`` data; use as ``async with TmapiClient(settings) as client``.

    Connections are kept alive and reused, at most ``max_connections`` of
    them, and at most that many requests are in flight; waiting for a free
    connection does not count against the deadline. ``sleep`` and ``rng``
    drive the backoff and can be faked.

    How requests travel depends on ``transport``:

    * ``None`` (the default): through ``httpx.AsyncClient`` over httpx's own
      transport (httpcore). The pool is split into shards of
      :data:`SHARD_SIZE` connections, each its own ``AsyncClient`` built
      once: httpcore's pool does work linear in its size (including a
      readability check of every idle connection) for each request, so
      many small pools serve far more requests per second than one big pool.
    * an httpx transport (``httpx.MockTransport`` in tests, or the aiohttp
      one of :meth:`with_aiohttp`): each request is an ``httpx.Request``
      handed straight to it. The ``AsyncClient`` layer adds cookies, auth,
      redirect handling and a log line per request, none of which this
      client uses, for about 0.1 ms of CPU per request.

    The daemon uses :meth:`with_aiohttp`, the fastest of these by far (see
    :mod:`monitor.tmapi.transport`).
    """

    def __init__(
        self,
        settings: TmapiSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        max_connections: int = 100,
        gate: Callable[[], AbstractAsyncContextManager[object]] | None = None,
    ) -> None:
        if max_connections < 1:
            raise ConfigError("max_connections must be at least 1")
        self.settings = settings
        #: Requests sent (each one is a paid TMAPI call), successful or not.
        self.calls = 0
        self._sleep = sleep
        self._gate = gate
        self._rng = rng if rng is not None else random.Random()
        self._url = settings.base_url + ITEM_DETAIL_PATH
        self._token_param = ""
        if settings.token:
            register_secret(settings.token)
            self._token_param = "&apiToken=" + quote(settings.token, safe="")
        self._slots = asyncio.Semaphore(max_connections)
        self._transport = transport
        self._headers = httpx.Headers(
            {
                "accept": "application/json",
                "accept-encoding": "gzip, deflate",
                "user-agent": USER_AGENT,
            }
        )
        t = settings.timeout
        self._extensions = {"timeout": {"connect": t, "read": t, "write": t, "pool": t}}
        self._shards: list[httpx.AsyncClient] = []
        #: Free connection slots per shard; the semaphore guarantees one has room.
        self._free: list[int] = []
        if transport is None:
            full, rest = divmod(max_connections, SHARD_SIZE)
            self._free = [SHARD_SIZE] * full + ([rest] if rest else [])
            verify = httpx.create_ssl_context() if len(self._free) > 1 else True
            self._shards = [
                httpx.AsyncClient(
                    verify=verify,
                    limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                    timeout=httpx.Timeout(settings.timeout),
                    headers={"accept": "application/json", "user-agent": USER_AGENT},
                    follow_redirects=False,
                )
                for size in self._free
            ]

    @classmethod
    def with_aiohttp(
        cls, settings: TmapiSettings, *, max_connections: int = 100, **kwargs: Any
    ) -> TmapiClient:
        """A client whose requests go straight to an aiohttp connection pool.

        ``kwargs`` are the other keyword arguments of the constructor.
        aiohttp is imported here, not with this module, so commands that
        never call TMAPI do not pay for importing it.
        """
        from monitor.tmapi.transport import AiohttpTransport

        ssl_context = httpx.create_ssl_context() if settings.base_url.startswith("https:") else None
        transport = AiohttpTransport(max_connections=max_connections, ssl_context=ssl_context)
        return cls(settings, transport=transport, max_connections=max_connections, **kwargs)

    def __repr__(self) -> str:
        return f"TmapiClient(base_url={redact(self.settings.base_url)!r}, calls={self.calls})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        for shard in self._shards:
            await shard.aclose()
        if self._transport is not None:
            await self._transport.aclose()

    async def fetch(
        self,
        item_id: int,
        *,
        language: str = "en",
        scene: str | None = None,
        optimize_title: bool = False,
    ) -> dict[str, Any]:
        """Return the item's ``data``, retrying retryable errors with backoff.

        Raises the last error when attempts run out, at once for permanent
        errors, and without waiting when the server's ``Retry-After`` is
        longer than ``backoff_max`` (the error carries ``retry_after`` so the
        caller can schedule the next try).
        """
        settings = self.settings
        attempt = 1
        while True:
            try:
                if self._gate is None:
                    return await self.fetch_once(
                        item_id, language=language, scene=scene, optimize_title=optimize_title
                    )
                async with self._gate():
                    return await self.fetch_once(
                        item_id, language=language, scene=scene, optimize_title=optimize_title
                    )
            except TmapiError as exc:
                if not exc.retryable or attempt >= settings.max_attempts:
                    raise
                delay = backoff_delay(
                    attempt,
                    base=settings.backoff_base,
                    cap=settings.backoff_max,
                    rng=self._rng,
                    retry_after=exc.retry_after,
                )
                if delay is None:
                    raise
                log.info(
                    "%s; retrying in %.2f s (attempt %d of %d)",
                    exc,
                    delay,
                    attempt + 1,
                    settings.max_attempts,
                )
            await self._sleep(delay)
            attempt += 1

    async def fetch_once(
        self,
        item_id: int,
        *,
        language: str = "en",
        scene: str | None = None,
        optimize_title: bool = False,
    ) -> dict[str, Any]:
        """Make exactly one attempt; return the ``data`` object or raise a ``TmapiError``."""
        if isinstance(item_id, bool) or not isinstance(item_id, int) or item_id <= 0:
            raise TmapiBadRequest(f"item ID must be a positive integer, not {item_id!r}")
        if language not in LANGUAGES:
            raise TmapiBadRequest(
                f"language {language!r} is not one of {', '.join(LANGUAGES)}",
                item_id=item_id,
            )
        query = f"item_id={item_id}&language={language}"
        if scene is not None:
            query += "&scene=" + quote(scene, safe="")
        query += "&optimize_title=true" if optimize_title else "&optimize_title=false"
        url = f"{self._url}?{query}{self._token_param}"
        timeout = self.settings.timeout
        async with self._slots:
            self.calls += 1
            try:
                async with asyncio.timeout(timeout):
                    response = await self._send(url)
            except TimeoutError:
                raise TmapiTimeout(
                    f"no complete response within {timeout:g} s", item_id=item_id
                ) from None
            except httpx.TimeoutException as exc:
                raise TmapiTimeout(
                    f"{type(exc).__name__} within {timeout:g} s", item_id=item_id
                ) from None
            except httpx.DecodingError as exc:
                raise TmapiBadResponse(
                    f"undecodable response body ({type(exc).__name__})", item_id=item_id
                ) from None
            except httpx.RequestError as exc:
                raise TmapiTransportError(_describe(exc), item_id=item_id) from None
        return interpret(
            item_id, response.status_code, response.headers, response.content, now=time.time()
        )

    async def _send(self, url: str) -> httpx.Response:
        """GET ``url`` and read the whole body (see the class docstring for the two ways)."""
        if self._transport is None:
            free = self._free
            shard = max(range(len(free)), key=free.__getitem__)
            free[shard] -= 1
            try:
                return await self._shards[shard].get(url)
            finally:
                free[shard] += 1
        request = httpx.Request("GET", url, headers=self._headers, extensions=self._extensions)
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response


def _describe(exc: Exception) -> str:
    """A transport failure in words, without any URL or secret."""
    text = redact(str(exc).strip())[:MSG_LIMIT]
    if "://" in text:  # never quote a URL, even a redacted one
        text = ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
