"""What a TMAPI HTTP answer means: its ``data`` object, or the error to raise.

:func:`interpret` reads one answer (status, headers and body) and
:func:`error_for_code` picks the :class:`~monitor.errors.TmapiError`
subclass; the table below is the whole mapping (transport failures are
:mod:`monitor.tmapi.client`'s)::

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

The body is decoded with ``Decimal`` for every non-integer number. No
message quotes a URL, and TMAPI's own ``msg`` is redacted and cut short.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import msgspec

from monitor.durations import parse_retry_after
from monitor.errors import (
    TmapiAuthError,
    TmapiBadRequest,
    TmapiBadResponse,
    TmapiError,
    TmapiItemUnavailable,
    TmapiQuotaExhausted,
    TmapiRateLimited,
    TmapiServerError,
    TmapiTimeout,
)
from monitor.logs import redact

__all__ = ["MSG_LIMIT", "error_for_code", "interpret"]

#: Longest piece of TMAPI's own ``msg`` (or of a transport error) quoted in an error message.
MSG_LIMIT = 200

#: What each documented TMAPI code means, and the error it becomes.
_TMAPI_CODES: dict[int, tuple[type[TmapiError], str]] = {
    417: (TmapiItemUnavailable, "TMAPI could not get the item (it may be delisted)"),
    422: (TmapiBadRequest, "TMAPI rejected a request parameter (is the item ID valid?)"),
    439: (TmapiQuotaExhausted, "subscription expired or balance exhausted"),
    499: (TmapiTimeout, "TMAPI timed out fetching the item from 1688"),
    500: (TmapiServerError, "TMAPI internal error"),
    503: (TmapiRateLimited, "TMAPI concurrency limit reached, slow down"),
}


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
        detail += f"; TMAPI says: {redact(msg.strip()[:MSG_LIMIT])!r}"
    return cls(detail, item_id=item_id, code=code, retry_after=retry_after)


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
    """Return the ``data`` object of a TMAPI response, or raise the matching error.

    ``now`` is the current Unix time, for a ``Retry-After`` given as a date;
    the error's ``retry_after`` is in seconds.
    """
    if not 200 <= status < 300:
        delay = parse_retry_after(headers.get("retry-after"), datetime.fromtimestamp(now, UTC))
        retry_after = None if delay is None else delay.total_seconds()
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
