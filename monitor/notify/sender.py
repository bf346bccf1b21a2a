"""Send one rendered message to one target through apprise.

:meth:`AppriseSender.send` blocks (apprise is synchronous): the delivery
loop runs it with :func:`asyncio.to_thread`. The sender keeps one
``apprise.Apprise`` object per target (and URL: an edited URL gets a new
one), so a message goes to exactly the one service of its target, two
targets never share a plugin object across threads, and plugin state
(throttling, tokens) is reused between messages.

The result says whether the service accepted the message and, if not, why
(from apprise's own per-call log, never with the URL) and how long the
service asked to be left alone (``Retry-After``, see
:mod:`monitor.notify.retry_after`).

Secrets: apprise plugins log the URLs they post to at DEBUG, and urllib3
logs request paths, in forms that differ from the apprise URL the watchlist
loader registered (``json://u:p@host/path/TOKEN`` is logged as
``http://host/path/TOKEN``). Before a URL is handed to apprise its parts
that can be secret are registered with :func:`monitor.logs.register_secret`
too (see :func:`url_secrets`), so the redacting log filter masks them
whatever form a library logs them in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import apprise

from monitor.logs import redact, register_secret
from monitor.messages.render import Rendered
from monitor.notify.retry_after import recording, retry_after_of
from monitor.watchlist.model import Target
from monitor.watchlist.urls import apprise_quietly, url_secrets

__all__ = ["SEND_TIMEOUT", "AppriseSender", "SendResult"]

log = logging.getLogger(__name__)

#: Seconds one send may take before apprise gives up on it.
SEND_TIMEOUT = 60.0
_REASON_MAX = 300


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one send.

    ``error`` is short and secret-free; ``retry_after`` is the delay the
    service asked for (HTTP 429/503 with ``Retry-After``); ``statuses`` are
    the HTTP statuses seen, for plugins that speak HTTP.
    """

    ok: bool
    error: str | None = None
    retry_after: timedelta | None = None
    statuses: tuple[int, ...] = ()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AppriseSender:
    """Sends rendered messages, one cached ``apprise.Apprise`` per target and URL.

    ``timeout`` bounds one send (apprise reports a timeout after it; the
    plugin's own connect/read timeouts usually end it sooner). ``clock``
    reads the time an HTTP-date ``Retry-After`` is measured from.

    Apprise paces consecutive sends through one plugin object (e-mail: at
    least 5.5 s apart, Slack 1.2 s); ``min_interval`` replaces that pause,
    in seconds, for every target (``None`` keeps apprise's own).
    """

    def __init__(
        self,
        *,
        timeout: float = SEND_TIMEOUT,
        clock: Callable[[], datetime] = _utcnow,
        min_interval: float | None = None,
    ) -> None:
        self._timeout = timeout
        self._clock = clock
        self._min_interval = min_interval
        self._lock = threading.Lock()
        # One apprise object per (target name, URL): never shared by two targets.
        self._cache: dict[tuple[str, str], Any] = {}

    def _apprise_for(self, target: Target) -> Any:
        key = (target.name, target.url)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            for secret in url_secrets(target.url):
                register_secret(secret)
            instance: Any = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
            with apprise_quietly():
                added = instance.add(target.url)
            if added and self._min_interval is not None:
                for plugin in instance:
                    plugin.request_rate_per_sec = self._min_interval
            self._cache[key] = instance if added else None
            return self._cache[key]

    def retain(self, targets: Iterable[Target]) -> None:
        """Forget the apprise objects of targets not among ``targets`` (or whose URL changed)."""
        keep = {(target.name, target.url) for target in targets}
        with self._lock:
            for key in [key for key in self._cache if key not in keep]:
                del self._cache[key]

    def send(self, target: Target, message: Rendered) -> SendResult:
        """Send ``message`` to ``target``; blocks until apprise is done.

        If a message with an image attachment fails, it is sent once more
        without the image (unless the service asked to be left alone with
        ``Retry-After``): an image host that is down must not keep the alert
        from going out. Where the image rides with the text (a caption) or
        the image failed to download, nothing was sent yet; where a service
        posts a long text before the image (Telegram), that text arrives a
        second time, but once only rather than on every retry.
        """
        instance = self._apprise_for(target)
        if instance is None:
            return SendResult(False, f"apprise cannot use the URL of target {target.name!r}")
        result = self._notify(instance, target, message, message.attach)
        if not result.ok and message.attach is not None and result.retry_after is None:
            log.info("sending to target %r failed; trying without the image", target.name)
            result = self._notify(instance, target, message, None)
        return result

    def _notify(
        self, instance: Any, target: Target, message: Rendered, attach: str | None
    ) -> SendResult:
        with recording() as answers:
            try:
                result = instance.notify(
                    body=message.body,
                    title=message.title,
                    body_format=message.body_format,
                    attach=attach,
                    timeout=self._timeout,
                )
            except Exception as exc:  # a plugin bug must not stop the delivery loop
                log.debug("apprise raised while sending to %r", target.name, exc_info=True)
                return SendResult(False, f"apprise raised {type(exc).__name__}")
        statuses = tuple(answer.status for answer in answers)
        if bool(result):
            return SendResult(True, statuses=statuses)
        return SendResult(
            False,
            _reason(result, statuses, self._timeout),
            retry_after_of(answers, self._clock()),
            statuses,
        )


def _reason(result: Any, statuses: tuple[int, ...], timeout: float) -> str:
    """Why apprise failed, from its captured warnings; secret-free and short."""
    if getattr(getattr(result, "status", None), "name", None) == "TIMEOUT":
        return f"no answer within {timeout:g} s"
    logs = getattr(result, "logs", None)
    messages: list[str] = []
    if callable(logs):
        messages = [
            str(entry.message).strip()
            for entry in logs()
            if getattr(entry, "level", "") in ("WARNING", "ERROR", "CRITICAL")
        ]
    text = "; ".join(dict.fromkeys(m for m in messages if m))
    if not text:
        failed = [s for s in statuses if not 200 <= s < 300]
        text = f"HTTP {failed[-1]}" if failed else "the service did not accept the message"
    return redact(text)[:_REASON_MAX]
