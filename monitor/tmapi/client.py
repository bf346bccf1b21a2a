"""Async HTTP client for TMAPI's ``GET /1688/item_detail``.

:class:`TmapiClient` sends the request, enforces one overall deadline per
attempt (connect, headers and the whole body), decodes the JSON with
``Decimal`` for every non-integer number, and returns the ``data`` object
untouched; turning it into an ``Offer`` is :mod:`monitor.tmapi.parse`'s job.

Every failure leaves this module as a :class:`~monitor.errors.TmapiError`,
decided in one place, :func:`error_for_code` (fed by :func:`interpret`)::

    TMAPI code (HTTP 200)   HTTP status           error                    retried
    417                     417                   TmapiItemUnavailable     yes
    422                     422, other 4xx        TmapiBadRequest          no
    439                     439                   TmapiQuotaExhausted      no
    499                     499                   TmapiTimeout             yes
    500                     500, other 5xx        TmapiServerError         yes
    503                     503, 429              TmapiRateLimited         yes (Retry-After)
    401, 403                401, 403              TmapiAuthError           no
    other                   3xx                   TmapiBadResponse         yes
    invalid/truncated JSON, non-object body,
    code 200 without data                         TmapiBadResponse         yes
    httpx timeouts, overall deadline              TmapiTimeout             yes
    connection errors                             TmapiTransportError      yes

The request URL carries ``apiToken``, so no message here quotes a URL or an
httpx exception unredacted, foreign exceptions are chained ``from None``,
and ``raise_for_status()`` (whose message contains the URL) is never used.
Paid calls are counted in :attr:`TmapiClient.calls`, one per request sent.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
import msgspec

from monitor.domain import LANGUAGES, PollSource
from monitor.errors import (
    ConfigError,
    TmapiAuthError,
    TmapiBadRequest,
    TmapiBadResponse,
    TmapiError,
    TmapiItemUnavailable,
    TmapiQuotaExhausted,
    TmapiRateLimited,
    TmapiServerError,
    TmapiTimeout,
    TmapiTransportError,
)
from monitor.logs import redact, register_secret

__all__ = [
    "TmapiClient",
    "TmapiSettings",
    "backoff_delay",
    "error_for_code",
    "interpret",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

ITEM_DETAIL_PATH = "/1688/item_detail"
USER_AGENT = "monitor-1688/0.1 (+httpx)"
#: Connections per ``httpx.AsyncClient`` shard (see :class:`TmapiClient`).
SHARD_SIZE = 4
#: Longest piece of TMAPI's own ``msg`` quoted in an error message.
_MSG_LIMIT = 200

#: What each documented TMAPI code means, and the error it becomes.
_TMAPI_CODES: dict[int, tuple[type[TmapiError], str]] = {
    417: (TmapiItemUnavailable, "TMAPI could not get the item (it may be delisted)"),
    422: (TmapiBadRequest, "TMAPI rejected a request parameter (is the item ID valid?)"),
    439: (TmapiQuotaExhausted, "subscription expired or balance exhausted"),
    499: (TmapiTimeout, "TMAPI timed out fetching the item from 1688"),
    500: (TmapiServerError, "TMAPI internal error"),
    503: (TmapiRateLimited, "TMAPI concurrency limit reached, slow down"),
}


@dataclass(frozen=True)
class TmapiSettings:
    """How to reach TMAPI and how hard to try.

    ``timeout`` is the overall deadline of one attempt (connect, headers and
    the whole body). ``fetch`` makes at most ``max_attempts`` attempts,
    sleeping a random time in ``[0, min(backoff_max, backoff_base * 2**n)]``
    between them ("full jitter"), or exactly the server's ``Retry-After``.
    """

    token: str | None = None
    base_url: str = "https://api.tmapi.io"
    timeout: float = 60.0
    max_attempts: int = 4
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    #: Whose answers these are: the real TMAPI, or the simulator (``--simulate``).
    source: PollSource = PollSource.TMAPI

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError("TMAPI base URL must start with http:// or https://")
        if self.base_url.endswith("/"):
            object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError(
                f"TMAPI timeout must be a positive number of seconds, not {self.timeout!r}"
            )
        if self.max_attempts < 1:
            raise ConfigError(f"TMAPI max_attempts must be at least 1, not {self.max_attempts!r}")
        if not (self.backoff_base >= 0 and self.backoff_max >= 0):
            raise ConfigError("TMAPI backoff_base and backoff_max must not be negative")

    def __repr__(self) -> str:
        token = "None" if self.token is None else "'***'"
        return (
            f"TmapiSettings(token={token}, base_url={redact(self.base_url)!r}, "
            f"timeout={self.timeout!r}, max_attempts={self.max_attempts!r}, "
            f"backoff_base={self.backoff_base!r}, backoff_max={self.backoff_max!r}, "
            f"source={self.source.value!r})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> TmapiSettings:
        """Read ``TMAPI_TOKEN`` (or ``TMAPI_TOKEN_FILE``), ``TMAPI_BASE_URL``, ``TMAPI_TIMEOUT``.

        ``TMAPI_TOKEN_FILE`` names a file holding the token (as Docker
        secrets provide); surrounding whitespace is stripped. Setting both
        token variables is an error, and so is an unreadable or empty file.
        """
        token = env.get("TMAPI_TOKEN", "").strip() or None
        token_file = env.get("TMAPI_TOKEN_FILE", "").strip()
        if token_file:
            if token is not None:
                raise ConfigError("TMAPI_TOKEN and TMAPI_TOKEN_FILE are both set; use one")
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ConfigError(
                    f"TMAPI_TOKEN_FILE: cannot read {token_file!r}: {reason}"
                ) from None
            if not token:
                raise ConfigError(f"TMAPI_TOKEN_FILE: {token_file!r} is empty")
        kwargs: dict[str, Any] = {"token": token}
        base_url = env.get("TMAPI_BASE_URL", "").strip()
        if base_url:
            if not base_url.startswith(("http://", "https://")):
                raise ConfigError("TMAPI_BASE_URL must start with http:// or https://")
            kwargs["base_url"] = base_url
        raw_timeout = env.get("TMAPI_TIMEOUT", "").strip()
        if raw_timeout:
            try:
                timeout = float(raw_timeout)
            except ValueError:
                timeout = math.nan
            if not (math.isfinite(timeout) and timeout > 0):
                raise ConfigError(
                    f"TMAPI_TIMEOUT must be a positive number of seconds, not {raw_timeout!r}"
                )
            kwargs["timeout"] = timeout
        return cls(**kwargs)


def error_for_code(
    code: int,
    *,
    item_id: int | None,
    msg: object = None,
    http_status: int | None = None,
    retry_after: float | None = None,
) -> TmapiError:
    """The error for a TMAPI ``code`` (or an HTTP status used as one)."""
    cls: type[TmapiError]
    if code in _TMAPI_CODES:
        cls, meaning = _TMAPI_CODES[code]
    elif code in (401, 403):
        cls, meaning = TmapiAuthError, "API token missing or rejected (check TMAPI_TOKEN)"
    elif code == 429:
        cls, meaning = TmapiRateLimited, "too many requests, slow down"
    elif 400 <= code < 500:
        cls, meaning = TmapiBadRequest, "request rejected"
    elif 500 <= code < 600:
        cls, meaning = TmapiServerError, "server error"
    else:
        cls, meaning = TmapiBadResponse, "unknown TMAPI code"
    detail = meaning
    if http_status is not None:
        detail += f" (HTTP {http_status})"
    if isinstance(msg, str) and msg.strip():
        detail += f"; TMAPI says: {redact(msg.strip()[:_MSG_LIMIT])!r}"
    return cls(detail, item_id=item_id, code=code, retry_after=retry_after)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date).

    ``now`` is the current Unix time, for dates. Unusable values give ``None``.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number TMAPI would send")


#: Strict JSON with every non-integer number as a ``Decimal`` (from its text, never a float).
_FAST_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def _decode(content: bytes) -> Any:
    """Decode a body; numbers with a fraction or exponent become ``Decimal``.

    msgspec decodes strict UTF-8 JSON about twice as fast as ``json``, with
    the same result. Whatever it rejects (invalid JSON, but also what
    ``json`` accepts and it does not: UTF-16 bodies, lone surrogates) goes
    through ``json``, so acceptance and error messages are ``json``'s.
    """
    try:
        return _FAST_DECODER.decode(content)
    except msgspec.DecodeError:
        return json.loads(content, parse_float=Decimal, parse_constant=_reject_constant)


def _as_code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def interpret(
    item_id: int, status: int, headers: httpx.Headers, content: bytes, *, now: float
) -> dict[str, Any]:
    """Return the ``data`` object of a TMAPI response, or raise the matching error."""
    if not 200 <= status < 300:
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        if 300 <= status < 400:
            raise TmapiBadResponse(
                f"unexpected redirect (HTTP {status}); check TMAPI_BASE_URL",
                item_id=item_id,
                code=status,
            )
        body_code, body_msg = None, None
        try:
            body = _decode(content)
        except (ValueError, RecursionError):
            body = None
        if isinstance(body, dict):
            body_code, body_msg = _as_code(body.get("code")), body.get("msg")
        # A documented TMAPI code in the body is more precise than the status.
        code = body_code if body_code is not None and body_code in _TMAPI_CODES else status
        raise error_for_code(
            code, item_id=item_id, msg=body_msg, http_status=status, retry_after=retry_after
        )
    try:
        body = _decode(content)
    except RecursionError:
        raise TmapiBadResponse(
            f"JSON nested too deeply in a {len(content)}-byte response", item_id=item_id
        ) from None
    except ValueError as exc:
        where = f" ({exc.msg} at char {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        raise TmapiBadResponse(
            f"invalid or truncated JSON in a {len(content)}-byte response{where}",
            item_id=item_id,
        ) from None
    if not isinstance(body, dict):
        raise TmapiBadResponse(
            f"response is a JSON {type(body).__name__}, not an object", item_id=item_id
        )
    tmapi_code = _as_code(body.get("code"))
    if tmapi_code is None:
        raise TmapiBadResponse("response has no numeric 'code'", item_id=item_id)
    if tmapi_code != 200:
        raise error_for_code(tmapi_code, item_id=item_id, msg=body.get("msg"))
    data = body.get("data")
    if not isinstance(data, dict) or not data:
        raise TmapiBadResponse(
            "code 200 without data (data is missing, null or empty)",
            item_id=item_id,
            code=tmapi_code,
        )
    return data


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
    text = redact(str(exc).strip())[:_MSG_LIMIT]
    if "://" in text:  # never quote a URL, even a redacted one
        text = ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
