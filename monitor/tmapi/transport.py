"""An httpx transport on aiohttp's connection pool: httpx's API, aiohttp's speed.

:class:`TmapiClient <monitor.tmapi.client.TmapiClient>` speaks httpx
(``httpx.Request`` in, ``httpx.Response`` out, httpx's exceptions, and
``httpx.MockTransport`` in tests), but httpcore's pool does work linear in
its size on every request and costs about a millisecond of CPU per request
at 50 connections. aiohttp keeps idle connections in a per-host queue and
parses responses in C, for a fraction of that. :class:`AiohttpTransport`
sends the request through an ``aiohttp.ClientSession``, reads the whole
body, and returns it as an ``httpx.Response``; compressed bodies are left
compressed, so httpx decodes them exactly as before.

aiohttp's exceptions become the httpx exceptions the client already maps
to its error tree::

    aiohttp                                     httpx
    ConnectionTimeoutError                      ConnectTimeout
    ServerTimeoutError (socket read)            ReadTimeout
    ClientConnectorError (refused, DNS, TLS)    ConnectError
    ServerDisconnectedError, ClientPayloadError,
    ClientResponseError (malformed reply)       RemoteProtocolError
    ClientOSError (reset, broken pipe)          ReadError
    InvalidURL                                  UnsupportedProtocol
    any other ClientError                       TransportError

Their messages never include the URL (it carries the API token).
"""

from __future__ import annotations

import ssl
import urllib.request
from typing import Any

import aiohttp
import httpx
from yarl import URL

__all__ = ["AiohttpTransport"]

_HTTP11: dict[str, Any] = {"http_version": b"HTTP/1.1"}

#: Most specific first: the first match decides.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.ClientOSError, httpx.ReadError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
)


def _translate(exc: aiohttp.ClientError) -> httpx.TransportError:
    """The httpx exception for an aiohttp one, with a message that quotes no URL."""
    cls: type[httpx.TransportError] = httpx.TransportError
    for source, target in _ERRORS:
        if isinstance(exc, source):
            cls = target
            break
    if isinstance(exc, aiohttp.ClientConnectorError):
        detail = f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}"
    elif isinstance(exc, aiohttp.ClientResponseError | aiohttp.InvalidURL):
        detail = type(exc).__name__  # their text includes the request URL
    else:
        detail = str(exc).strip()
        if "://" in detail:
            detail = ""
    return cls(f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Send httpx requests through one aiohttp session of at most ``max_connections``.

    The session is created on first use (it must be created inside the
    running event loop) and closed by :meth:`aclose`. Proxies come from the
    environment (``HTTPS_PROXY``, ``NO_PROXY`` …), as with httpx; they are
    looked up once per scheme and host (aiohttp's own ``trust_env`` looks
    them up, and ``~/.netrc``, in a worker thread on every request). The request's
    ``timeout`` extension sets the connect and per-read timeouts; an overall
    deadline is the caller's business.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self._limit = max_connections
        self._ssl = ssl_context
        self._keepalive = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], URL | None] = {}
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=0,
            keepalive_timeout=self._keepalive,
            ssl=self._ssl if self._ssl is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # httpx decodes Content-Encoding itself
            cookie_jar=aiohttp.DummyCookieJar(),  # an API client keeps no cookies
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    def _timeout(self, connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
        """aiohttp's timeout object for these values (built once per pair, not per request)."""
        key = (connect, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
            self._timeouts[key] = timeout
        return timeout

    def _proxy(self, url: URL) -> URL | None:
        """The proxy the environment names for ``url`` (cached per scheme and host)."""
        key = (url.scheme, url.host or "")
        if key not in self._proxies:
            proxy = urllib.request.getproxies().get(url.scheme)
            if proxy is None or urllib.request.proxy_bypass(url.host or ""):
                self._proxies[key] = None
            else:
                self._proxies[key] = URL(proxy)
        return self._proxies[key]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        url = URL(str(request.url), encoded=True)
        timeouts = request.extensions.get("timeout", {})
        timeout = self._timeout(timeouts.get("connect"), timeouts.get("read"))
        try:
            async with session.request(
                request.method,
                url,
                headers=request.headers.multi_items(),
                proxy=self._proxy(url),
                data=request.content or None,
                allow_redirects=False,
                timeout=timeout,
            ) as reply:
                body = await reply.read()
                status, headers, reason = reply.status, reply.raw_headers, reply.reason
        except aiohttp.ClientError as exc:
            raise _translate(exc) from None
        extensions = dict(_HTTP11)
        if reason:
            extensions["reason_phrase"] = reason.encode("latin-1", "replace")
        return httpx.Response(
            status, headers=headers, content=body, request=request, extensions=extensions
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
