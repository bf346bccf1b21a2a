"""What HTTP answered while apprise was sending: the status codes and ``Retry-After``.

Apprise plugins talk HTTP through ``requests`` and only tell their caller
"it failed" (with a log line such as ``error=429``); the ``Retry-After``
header a rate-limited service sends is dropped. To honour it anyway,
:func:`recording` wraps ``requests.Session.send`` once per process (every
``requests.post``/``requests.request`` goes through it) and, only inside a
``with recording() as answers:`` block, appends each response's status and
``Retry-After`` to ``answers``. Everything else about the request is left
alone, and outside such a block the wrapper only passes the response on.

The recording follows the context (a :class:`contextvars.ContextVar`):
apprise runs a service's ``send()`` in a worker thread started with a copy
of the caller's context, so answers reach the right block even then, and
concurrent sends in other threads never mix.

This covers the plugins built on ``requests`` (``json://``, ``xml://``,
``form://``, Slack, Discord, Telegram, ntfy, …). Plugins on other
transports (e-mail over SMTP, XMPP, MQTT, …) have no ``Retry-After``;
their failures get the normal backoff. The header is read by
:func:`monitor.durations.parse_retry_after` (capped at a day).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests

from monitor.durations import parse_retry_after

__all__ = ["HttpAnswer", "recording", "retry_after_of"]

#: Statuses whose ``Retry-After`` means "try again later" (RFC 9110 §10.2.3).
_THROTTLING = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """One HTTP response: its status and raw ``Retry-After`` header (if any)."""

    status: int
    retry_after: str | None


_answers: ContextVar[list[HttpAnswer] | None] = ContextVar("monitor_http_answers", default=None)
_install_lock = threading.Lock()
#: Marks the wrapper, so it is installed once however often recording() runs.
_MARK = "_monitor_records_answers"


def _install() -> None:
    """Wrap ``requests.Session.send`` (once per process)."""
    with _install_lock:
        original = requests.Session.send
        if getattr(original, _MARK, False):
            return

        @functools.wraps(original)
        def send(self: Any, request: Any, **kwargs: Any) -> Any:
            response = original(self, request, **kwargs)
            answers = _answers.get()
            if answers is not None:
                retry_after = response.headers.get("Retry-After")
                answers.append(HttpAnswer(response.status_code, retry_after))
            return response

        setattr(send, _MARK, True)
        requests.Session.send = send  # type: ignore[method-assign]


@contextmanager
def recording() -> Iterator[list[HttpAnswer]]:
    """Collect the HTTP answers received inside the block (see the module docstring)."""
    _install()
    answers: list[HttpAnswer] = []
    token = _answers.set(answers)
    try:
        yield answers
    finally:
        _answers.reset(token)


def retry_after_of(answers: list[HttpAnswer], now: datetime) -> timedelta | None:
    """The longest ``Retry-After`` of the throttling answers (429, 503), if any.

    Each is read by :func:`~monitor.durations.parse_retry_after`, so none
    is longer than :data:`~monitor.durations.MAX_RETRY_AFTER`.
    """
    delays = [
        delay
        for answer in answers
        if answer.status in _THROTTLING
        and (delay := parse_retry_after(answer.retry_after, now)) is not None
    ]
    return max(delays, default=None)
