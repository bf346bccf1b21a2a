"""Logging set-up that never prints a secret.

Secrets reach log records by many roads: httpx logs every request URL (and
TMAPI wants its ``apiToken`` in the query string), apprise plugins log their
raw URLs (Slack/Telegram tokens, SMTP passwords) at DEBUG, and exceptions
from libraries quote URLs in their messages and tracebacks. So instead of
trusting every caller, :func:`setup_logging` installs handlers whose
:class:`RedactingFilter` rewrites each record before it is formatted:

* values of ``apiToken=``/``apikey=``/``token=``/``password=``-like
  parameters, and of such keys in dict/JSON text, become ``***``;
* URL credentials (``scheme://user:password@host``) become ``scheme://***@host``;
* every string passed to :func:`register_secret` (and its percent-encoded
  forms) becomes ``***``.

The rewriting covers the message with its arguments, the rendered
traceback (``exc_text``) and ``stack_info``. :func:`redact` applies the same
rules to any string, for code that builds messages from foreign text.

The registry of secrets is process-wide: the TMAPI client registers its
token, the watchlist loader registers apprise URLs and the variables
substituted into them. Strings shorter than :data:`MIN_SECRET_LENGTH`
characters are not registered (redacting every ``"ab"`` would garble all
output while protecting nothing worth protecting).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import quote, quote_plus

from monitor.errors import ConfigError

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "JsonFormatter",
    "RedactingFilter",
    "TextFormatter",
    "redact",
    "register_secret",
    "setup_logging",
]

REDACTED = "***"
MIN_SECRET_LENGTH = 4

_KEYS = r"api_?token|api_?key|access_?token|token|password|passwd|secret"
#: ``apiToken=VALUE`` in query strings, form bodies and ``key=value`` text.
_PARAM = re.compile(rf"(?i)((?:{_KEYS})=)[^&\s\"'#<>,;)\]}}]+")
#: ``'apikey': 'VALUE'`` / ``"token": "VALUE"`` / ``(b'apikey', b'VALUE')`` in reprs and JSON.
_QUOTED = re.compile(rf"(?i)(b?[\"'](?:{_KEYS})[\"']\s*[:,]\s*b?[\"'])[^\"']*")
#: ``scheme://user:password@`` (the authority part never contains ``/``).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#\"'<>]*@")


class _Secrets:
    """The process-wide set of registered secrets and one regex matching any of them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: set[str] = set()
        self.pattern: re.Pattern[str] | None = None


_registry = _Secrets()

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Libraries that log every request at INFO; quietened unless running at DEBUG.
_CHATTY_LOGGERS = ("httpx", "httpcore", "apscheduler", "alembic")


def register_secret(value: str) -> None:
    """Have every later log line show ``***`` instead of ``value``.

    The percent-encoded forms are registered too, since URLs carry them.
    Values shorter than :data:`MIN_SECRET_LENGTH` are ignored.
    """
    if len(value) < MIN_SECRET_LENGTH:
        return
    forms = {value, quote(value, safe=""), quote_plus(value, safe="")}
    with _registry.lock:
        if forms <= _registry.values:
            return
        _registry.values.update(forms)
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(_registry.values, key=len, reverse=True)
        _registry.pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """Return ``text`` with registered secrets and credential patterns replaced."""
    pattern = _registry.pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    if "=" in text:
        text = _PARAM.sub(r"\1" + REDACTED, text)
    if "://" in text:
        text = _USERINFO.sub(r"\1" + REDACTED + "@", text)
    if "'" in text or '"' in text:
        text = _QUOTED.sub(r"\1" + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrite a record so that nothing secret is left in it; never drops records.

    The message is rendered with its arguments and stored back with no
    arguments; the traceback is rendered (as the formatter would) and stored
    redacted in ``exc_text``, which formatters print instead of re-rendering.
    """

    _renderer = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not bypass redaction
            message = f"{record.msg!s} {record.args!r}"
        record.msg = redact(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._renderer.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class TextFormatter(logging.Formatter):
    """Plain ``time level logger: message`` lines, redacted once more as a whole."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


class _MonitorHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`setup_logging` installs (so a second call can replace it)."""


def _parse_level(level: str | int) -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str):
        name = level.strip().upper()
        if name.isdigit():
            return int(name)
        value = logging.getLevelNamesMapping().get(name)
        if value is not None:
            return value
    raise ConfigError(f"log level {level!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")


def setup_logging(
    level: str | int = "INFO",
    *,
    fmt: str = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Send all log records (every library's too) to ``stream`` (default stderr), redacted.

    ``level`` is a name (``"debug"``, case-insensitive) or a number; ``fmt``
    is ``"text"`` or ``"json"``; ``secrets`` are registered with
    :func:`register_secret`. Calling it again replaces the handler installed
    by the previous call. Handlers others attached to the root logger get a
    :class:`RedactingFilter` too. Below DEBUG verbosity, httpx, httpcore,
    APScheduler and Alembic (which log a line per request, job run or
    migration step) are limited to warnings.
    """
    numeric = _parse_level(level)
    if fmt == "text":
        formatter: logging.Formatter = TextFormatter()
    elif fmt == "json":
        formatter = JsonFormatter()
    else:
        raise ConfigError(f"log format {fmt!r} is not 'text' or 'json'")
    for secret in secrets:
        register_secret(secret)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _MonitorHandler)]:
        root.removeHandler(old)
    handler = _MonitorHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    for each in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in each.filters):
            each.addFilter(RedactingFilter())
    root.setLevel(numeric)
    chatty_level = logging.NOTSET if numeric <= logging.DEBUG else logging.WARNING
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(chatty_level)
