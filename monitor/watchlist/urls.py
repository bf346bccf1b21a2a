"""apprise URLs without leaks: which of their parts are secret, and apprise kept quiet.

:func:`url_secrets` lists the parts of an apprise URL that must never be
logged (the sender registers them with the redacting log filter before a
URL reaches apprise; ``monitor notify`` and the watchlist's display of a
target mask them). :func:`apprise_quietly` silences apprise's own logger
for the current thread while a URL is probed, since apprise logs bad URLs
raw. Shared by the watchlist (loading, display) and delivery, so it sits
below both.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote

import apprise

from monitor.logs import MIN_SECRET_LENGTH

__all__ = ["apprise_quietly", "privacy_url", "url_secrets"]

_TOKEN_SPLIT = re.compile(r"[/:@?&=#,\s]+")


class _OtherThreads(logging.Filter):
    """Drop records logged by one thread (apprise's complaints while we probe a URL)."""

    def __init__(self, thread_id: int) -> None:
        super().__init__()
        self.thread_id = thread_id

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread_id


@contextmanager
def apprise_quietly() -> Iterator[None]:
    """Silence the ``apprise`` logger for the current thread only.

    Probing a URL makes apprise log it (raw, at ERROR, when it is bad); the
    loader reports the problem itself, without the secret. Deliveries running
    in other threads keep their apprise logs.
    """
    apprise_logger = logging.getLogger("apprise")
    quiet = _OtherThreads(threading.get_ident())
    apprise_logger.addFilter(quiet)
    try:
        yield
    finally:
        apprise_logger.removeFilter(quiet)


def _looks_secret(part: str) -> bool:
    """A URL part that may be a token: long, or mixing letters and digits."""
    if len(part) >= 16:
        return True
    return len(part) >= 6 and any(c.isdigit() for c in part) and any(c.isalpha() for c in part)


def url_secrets(url: str) -> set[str]:
    """The strings of an apprise URL that must never be logged.

    The whole URL; its password; every user name, host-position token, path
    segment, query value and fragment that looks like a token (see
    :func:`_looks_secret`; host names with dots are addresses, not secrets);
    and every part apprise itself masks in its privacy form.
    """
    found = {url}
    candidates: list[str] = []
    _, _, rest = url.partition("://")
    rest, _, fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, _, password = userinfo.partition(":")
        found.update({password, unquote(password)})
        candidates.append(user)
    if not hostport.startswith("["):
        host, _, port = hostport.partition(":")
        if "." not in host and host != "localhost":
            candidates.append(host)
        if port and not port.isdigit():
            found.add(port)
    candidates.extend(path.split("/"))
    for _key, value in parse_qsl(query, keep_blank_values=False):
        candidates.extend([value, *value.split()])
    candidates.append(fragment)
    for part in candidates:
        if _looks_secret(part):
            found.update({part, unquote(part)})
    found.update(_masked_by_apprise(url))
    return {s for s in found if len(s) >= MIN_SECRET_LENGTH}


def _masked_by_apprise(url: str) -> set[str]:
    """Parts of ``url`` that apprise hides in its privacy form."""
    with apprise_quietly():
        try:
            plugin: Any = apprise.Apprise.instantiate(url)
            if plugin is None:
                return set()
            raw, private = plugin.url(privacy=False), plugin.url(privacy=True)
        except Exception:  # an unparseable URL has no plugin to ask
            return set()
    if not isinstance(raw, str) or not isinstance(private, str):
        return set()
    shown = set(_TOKEN_SPLIT.split(private))
    return {unquote(part) for part in _TOKEN_SPLIT.split(raw) if part and part not in shown}


def privacy_url(url: str) -> str:
    """``url`` in apprise's privacy form (tokens and passwords masked)."""
    with apprise_quietly():
        try:
            plugin: Any = apprise.Apprise.instantiate(url)
            shown = plugin.url(privacy=True) if plugin is not None else None
        except Exception:  # a URL apprise cannot even render is shown by scheme only
            shown = None
    if isinstance(shown, str):
        # apprise leaves the path of json://, xml://, form:// … in clear: mask
        # every part that looks like a token there too.
        for secret in sorted(url_secrets(url) - {url}, key=len, reverse=True):
            shown = shown.replace(secret, "***")
        return shown
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://…" if sep else "…"
