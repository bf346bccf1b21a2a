"""Durations as people write them in the watchlist: ``30s``, ``15m``, ``6h``, ``1d``.

A duration is one or more ``<number><unit>`` parts, largest unit first and
each unit at most once (``1h30m``, ``1d 12h``), or a plain whole number of
seconds (the TOML integer ``90``, or the string ``"90"``). Units: ``d`` days,
``h`` hours, ``m`` minutes, ``s`` seconds; lower case only, so ``M`` can never
be mistaken for months.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    >>> format_duration(timedelta(seconds=5400))
    '1h30m'

Pure functions, no I/O. Errors are :class:`~monitor.errors.ConfigError` whose
message is the bare problem (``"10x" is not a duration (use 30s, 15m, 6h or
1d)``); the watchlist loader adds the file, entry and key in front.

The delays servers write in an HTTP ``Retry-After`` header (seconds, or an
HTTP date) are read here too, by :func:`parse_retry_after`, for both the
TMAPI client and notification delivery.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from monitor.errors import ConfigError

__all__ = [
    "MAX_DURATION",
    "MAX_RETRY_AFTER",
    "format_duration",
    "parse_duration",
    "parse_retry_after",
]

#: The longest duration accepted anywhere (a year is plenty for a poll interval).
MAX_DURATION = timedelta(days=365)
#: A ``Retry-After`` longer than this is taken as this (a misconfigured server
#: must not park a request or a message for weeks).
MAX_RETRY_AFTER = timedelta(hours=24)

_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION_RE = re.compile(
    r"(?:(?P<d>\d+)d)?\s*(?:(?P<h>\d+)h)?\s*(?:(?P<m>\d+)m)?\s*(?:(?P<s>\d+)s)?",
    re.ASCII,
)
_HINT = "(use 30s, 15m, 6h or 1d)"
#: ``Retry-After`` seconds: ASCII digits (RFC 9110's delay-seconds), plus an
#: optional fraction as some servers send; no sign, exponent, NaN or infinity.
_DELAY_SECONDS_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _show(value: object) -> str:
    """``value`` as written in TOML, on one line and cut short, for an error message."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a table"
    if not isinstance(value, str):
        return str(value)[:40]
    text = value[:40].replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text) + '"'


def parse_duration(value: object, *, minimum: timedelta = timedelta(seconds=1)) -> timedelta:
    """Turn ``"1h30m"``, ``"45s"`` or the integer ``90`` (seconds) into a ``timedelta``.

    Raises :class:`ConfigError` when ``value`` is not a duration, is shorter
    than ``minimum`` or longer than :data:`MAX_DURATION`.
    """
    seconds = _to_seconds(value)
    if seconds is None:
        raise ConfigError(f"{_show(value)} is not a duration {_HINT}")
    if seconds > MAX_DURATION.total_seconds():
        raise ConfigError(f"{_show(value)} is too long (at most {format_duration(MAX_DURATION)})")
    result = timedelta(seconds=seconds)
    if result < minimum:
        raise ConfigError(f"{_show(value)} is too short (at least {format_duration(minimum)})")
    return result


def format_duration(duration: timedelta) -> str:
    """Write a duration the way :func:`parse_duration` reads it: ``1h30m``, ``0s``.

    Fractions of a second are dropped; negative durations get a leading ``-``.
    """
    total = int(duration.total_seconds())
    if total < 0:
        return "-" + format_duration(-duration)
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _to_seconds(value: object) -> int | None:
    """Seconds in ``value``, or ``None`` when it is not written as a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) > 40:  # also keeps int() away from huge digit strings
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None or not any(match.groupdict().values()):
        return None
    return sum(
        int(count) * _UNIT_SECONDS[unit] for unit, count in match.groupdict().items() if count
    )


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A ``Retry-After`` value (delta-seconds or an HTTP date) as a delay from ``now``.

    ``now`` is timezone-aware; a date without a zone is taken as UTC.
    ``None`` when absent, blank or unreadable (``"soon"``, ``"-3"``,
    ``"nan"``, ``"1e9"``); capped at :data:`MAX_RETRY_AFTER`; a date in the
    past is a zero delay.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELAY_SECONDS_RE.fullmatch(text):
        seconds = float(text)  # a long digit string becomes a large float, or inf
        if not math.isfinite(seconds) or seconds >= MAX_RETRY_AFTER.total_seconds():
            return MAX_RETRY_AFTER
        return timedelta(seconds=seconds)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(when - now, timedelta(0)), MAX_RETRY_AFTER)
