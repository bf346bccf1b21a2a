"""The one error tree of 1688 Monitor.

Every failure the monitor knows about is a ``MonitorError``. Code that talks
to the outside world turns foreign exceptions (httpx, json, sqlalchemy) into
one of these at the edge, with a message that is safe to print: no token, no
apprise URL, no database password.

    MonitorError
    ├── ConfigError                 bad watchlist / settings (names file, entry, key)
    ├── StorageError                database unreachable or a query failed
    │   └── MixedSourcesError       simulated polls into a database of real ones, or back
    ├── ParseError                  a TMAPI payload we cannot turn into an Offer
    └── TmapiError                  anything that went wrong fetching an item
        ├── TmapiTransportError     connection refused / reset, DNS, TLS   (retryable)
        ├── TmapiTimeout            overall deadline hit, or TMAPI code 499 (retryable)
        ├── TmapiServerError        HTTP 5xx or TMAPI code 500             (retryable)
        ├── TmapiRateLimited        TMAPI code 503 / HTTP 429: slow down    (retryable)
        ├── TmapiItemUnavailable    TMAPI code 417: item could not be fetched (retryable,
        │                           repeated means the offer is likely delisted)
        ├── TmapiBadRequest         TMAPI code 422 / HTTP 4xx: bad parameter (permanent)
        ├── TmapiQuotaExhausted     TMAPI code 439: subscription or balance used up (permanent)
        ├── TmapiAuthError          HTTP 401/403: token missing or rejected (permanent)
        └── TmapiBadResponse        invalid JSON, unknown code, code 200 without data (retryable)

``retryable`` tells the retry loop whether trying again can help;
``code`` is the TMAPI (or HTTP) code when there was one.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base class of every error the monitor raises on purpose."""


class ConfigError(MonitorError):
    """The watchlist or a setting is invalid. The message names file, entry and key."""


class StorageError(MonitorError):
    """The database could not be reached or refused an operation."""


class MixedSourcesError(StorageError):
    """A database holds polls of one source (real TMAPI or the simulator) and was
    asked to record polls of the other. The message names the database."""


class ParseError(MonitorError):
    """A TMAPI payload could not be turned into an Offer."""

    def __init__(self, message: str, *, item_id: int | None = None) -> None:
        self.item_id = item_id
        prefix = f"item {item_id}: " if item_id is not None else ""
        super().__init__(f"{prefix}{message}")


class TmapiError(MonitorError):
    """Fetching an item from TMAPI failed."""

    retryable: bool = True
    #: Short machine-readable reason, used in poll logs and metrics.
    reason: str = "error"

    def __init__(
        self,
        message: str,
        *,
        item_id: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.item_id = item_id
        self.code = code
        self.retry_after = retry_after
        self.detail = message
        super().__init__(message)

    def __str__(self) -> str:
        parts = []
        if self.item_id is not None:
            parts.append(f"item {self.item_id}")
        if self.code is not None:
            parts.append(f"TMAPI code {self.code}")
        head = " / ".join(parts)
        return f"{head}: {self.detail}" if head else self.detail


class TmapiTransportError(TmapiError):
    reason = "transport"


class TmapiTimeout(TmapiError):
    reason = "timeout"


class TmapiServerError(TmapiError):
    reason = "server_error"


class TmapiRateLimited(TmapiError):
    reason = "rate_limited"


class TmapiItemUnavailable(TmapiError):
    reason = "unavailable"


class TmapiBadRequest(TmapiError):
    retryable = False
    reason = "bad_request"


class TmapiQuotaExhausted(TmapiError):
    retryable = False
    reason = "quota_exhausted"


class TmapiAuthError(TmapiError):
    retryable = False
    reason = "auth"


class TmapiBadResponse(TmapiError):
    reason = "bad_response"
