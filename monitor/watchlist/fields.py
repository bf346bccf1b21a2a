"""Checkers that turn one raw TOML value of the watchlist into its typed form.

Each checker takes the value as :mod:`tomllib` produced it and returns the
typed value, or raises :class:`~monitor.errors.ConfigError` whose message says
what is wrong with the value alone (``"10x" is not a duration …``); the
loader in :mod:`monitor.watchlist.load` puts the file, entry and key in front.

Values are shown in messages the way they are written in TOML (see
:func:`show_value`). A target URL is only ever shown as its scheme, because
a URL written without ``${VAR}`` placeholders may hold a token inline.
"""

from __future__ import annotations

import difflib
import math
import re
import string
from collections.abc import Collection, Mapping
from datetime import time
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import apprise

from monitor.errors import ConfigError
from monitor.settings import env_secret
from monitor.watchlist.model import TEMPLATE_FIELDS, QuietHours
from monitor.watchlist.urls import apprise_quietly

__all__ = [
    "check_apprise_url",
    "check_template",
    "expand_env",
    "expand_variables",
    "referenced_variables",
    "show_value",
    "suggest",
    "to_bool",
    "to_choice",
    "to_clock",
    "to_decimal",
    "to_int",
    "to_item_id",
    "to_number",
    "to_quiet_hours",
    "to_str",
    "to_str_list",
    "to_timezone",
    "variable_value",
]

#: Item ids are stored as 64-bit signed integers.
MAX_ITEM_ID = 2**63 - 1
APPRISE_WIKI = "https://github.com/caronc/apprise/wiki"

_OFFER_URL_RE = re.compile(
    r"(?:https?://)?(?:[a-z0-9-]+\.)*1688\.com/offer/(\d{1,19})\.html(?:[?#].*)?",
    re.IGNORECASE | re.ASCII,
)
_CLOCK_RE = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)", re.ASCII)
_QUIET_RE = re.compile(r"([\d:]+)\s*-\s*([\d:]+)", re.ASCII)
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}", re.ASCII)
#: ``$${`` (a literal ``${``), ``${NAME}``, or a ``${`` that starts neither.
_VAR_RE = re.compile(r"\$(\$\{)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|(\$\{)", re.ASCII)
_WIDE_SPEC_RE = re.compile(r"\d{4,}")
_TEMPLATE_SAMPLE: dict[str, object] = {
    "title": "title",
    "url": "https://detail.1688.com/offer/1.html",
    "shop": "shop",
    "changes": "changes",
    "item_id": 1,
    "name": "name",
    "count": 1,
}


def show_value(value: object, limit: int = 60) -> str:
    """``value`` as it would be written in TOML, on one line, cut to ``limit`` characters."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        text = '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped) + '"'
    elif isinstance(value, dict):
        text = "a table"
    elif isinstance(value, list):
        shown = [show_value(v, limit) for v in value[:4]]
        text = "[" + ", ".join(shown) + (", …]" if len(value) > 4 else "]")
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def suggest(word: str, choices: Collection[str]) -> str:
    """`` (did you mean "x"?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def to_int(value: object, *, minimum: int) -> int:
    """A TOML integer ≥ ``minimum`` (``true`` is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{show_value(value)} is not a whole number (need {minimum} or more)")
    if value < minimum:
        raise ConfigError(f"{value} is too small (need {minimum} or more)")
    return value


def to_number(
    value: object, *, above: float | None = None, minimum: float | None = None, maximum: float
) -> float:
    """A finite TOML integer or float, ``> above`` or ``≥ minimum``, and ``≤ maximum``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{show_value(value)} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ConfigError(f"{show_value(value)} is not a finite number")
    if above is not None and number <= above:
        raise ConfigError(f"{value} is too small (must be more than {above:g})")
    if minimum is not None and number < minimum:
        raise ConfigError(f"{value} is too small (must be {minimum:g} or more)")
    if number > maximum:
        raise ConfigError(f"{value} is too large (must be {maximum:g} or less)")
    return number


def to_decimal(value: object, *, positive: bool = False, maximum: Decimal | None = None) -> Decimal:
    """A money amount or percentage as ``Decimal``, never via a float's binary value.

    TOML ``3``, ``2.35`` and ``"2.35"`` are all accepted; a TOML float is read
    through ``str()`` so ``2.35`` stays exactly ``Decimal("2.35")``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{show_value(value)} is not a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigError(f"{show_value(value)} is not a number") from None
    if not number.is_finite():
        raise ConfigError(f"{show_value(value)} is not a finite number")
    if positive and number <= 0:
        raise ConfigError(f"{show_value(value)} must be more than 0")
    if number < 0:
        raise ConfigError(f"{show_value(value)} must not be negative")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{show_value(value)} is too large (at most {maximum})")
    return number


def to_bool(value: object) -> bool:
    """A TOML boolean (``true``/``false``, not a string)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{show_value(value)} is not true or false")
    return value


def to_str(value: object) -> str:
    """A non-blank string, stripped."""
    if not isinstance(value, str):
        raise ConfigError(f"{show_value(value)} is not a string")
    if not value.strip():
        raise ConfigError("must not be empty")
    return value.strip()


def to_choice(value: object, choices: Collection[str]) -> str:
    """One of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        hint = suggest(value, choices) if isinstance(value, str) else ""
        raise ConfigError(f"{show_value(value)} is not one of {', '.join(choices)}{hint}")
    return value


def to_str_list(value: object) -> tuple[str, ...]:
    """A list of non-blank strings, stripped, duplicates dropped, order kept."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{show_value(value)} is not a list of strings (like ["a", "b"])')
    if any(not v.strip() for v in value):
        raise ConfigError(f"{show_value(value)} contains an empty string")
    return tuple(dict.fromkeys(v.strip() for v in value))


def to_item_id(value: object) -> int:
    """A 1688 offer id: a positive integer, a numeric string, or an offer URL
    such as ``https://detail.1688.com/offer/652702302959.html``."""
    hint = "(like 652702302959 or https://detail.1688.com/offer/652702302959.html)"
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        match = _OFFER_URL_RE.fullmatch(text)
        if text.isascii() and text.isdigit() and len(text) <= 19:
            number = int(text)
        elif match is not None:
            number = int(match.group(1))
    if number is None:
        raise ConfigError(f"{show_value(value)} is not a 1688 offer id or offer URL {hint}")
    if not 0 < number <= MAX_ITEM_ID:
        raise ConfigError(
            f"{show_value(value)} is not a valid offer id (it must be a positive number)"
        )
    return number


def to_clock(value: object) -> time:
    """A wall-clock time: ``"09:00"`` (24-hour) or a TOML local time ``09:00:00``."""
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ConfigError(f"{value} must not carry a UTC offset (use the target's timezone)")
        return value
    match = _CLOCK_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f'{show_value(value)} is not a time of day (use "HH:MM", like "09:00")')
    return _clock(match)


def to_quiet_hours(value: object) -> QuietHours:
    """``"22:00-08:00"``: a daily window; it may span midnight."""
    bounds: tuple[time, time] | None = None
    if isinstance(value, str) and (match := _QUIET_RE.fullmatch(value.strip())):
        start, end = _CLOCK_RE.fullmatch(match.group(1)), _CLOCK_RE.fullmatch(match.group(2))
        if start and end:
            bounds = (_clock(start), _clock(end))
    if bounds is None:
        raise ConfigError(
            f'{show_value(value)} is not a time range (use "HH:MM-HH:MM", like "22:00-08:00")'
        )
    if bounds[0] == bounds[1]:
        raise ConfigError(f"{show_value(value)} is empty (start and end are the same)")
    return QuietHours(*bounds)


def _clock(match: re.Match[str]) -> time:
    return time(int(match.group(1)), int(match.group(2)))


def to_timezone(value: object) -> ZoneInfo:
    """An IANA time zone name such as ``"Asia/Shanghai"`` or ``"UTC"``."""
    if not isinstance(value, str):
        raise ConfigError(f"{show_value(value)} is not a time zone name")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError, UnicodeError):
        raise ConfigError(
            f'{show_value(value)} is not a known IANA time zone (like "Asia/Shanghai" or "UTC")'
        ) from None


def check_template(value: object) -> str:
    """A ``str.format`` template that uses only :data:`TEMPLATE_FIELDS`, by name."""
    if not isinstance(value, str):
        raise ConfigError(f"{show_value(value)} is not a string")
    allowed = ", ".join(f"{{{name}}}" for name in TEMPLATE_FIELDS)
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ConfigError(f"not a valid template ({exc}; write {{{{ and }}}} for braces)") from None
    for _, field_name, spec, _ in parts:
        if field_name is None:
            continue
        if field_name not in TEMPLATE_FIELDS:
            raise ConfigError(f"{{{field_name}}} is not a template field (use {allowed})")
        if spec and ("{" in spec or _WIDE_SPEC_RE.search(spec)):
            raise ConfigError(f"{{{field_name}:{spec}}} has an unsupported format spec")
    try:
        value.format(**_TEMPLATE_SAMPLE)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ConfigError(f"not a valid template ({exc})") from None
    return value


def referenced_variables(template: str) -> list[str]:
    """The ``${NAME}`` variables ``template`` uses, in order, without repeats."""
    names = (m.group(2) for m in _VAR_RE.finditer(template) if m.group(2))
    return list(dict.fromkeys(names))


def expand_env(template: str, env: Mapping[str, str]) -> str:
    """``template`` with its variables filled in (see :func:`expand_variables`)."""
    return expand_variables(template, env)[0]


def expand_variables(template: str, env: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """Fill each ``${NAME}`` from ``env``; ``$${`` stands for a literal ``${``.

    Returns the filled-in text and the values put into it (secrets: the
    caller registers them before anything may log the text).

    A variable may instead come from a file, as Docker and Kubernetes secrets
    do: when ``NAME`` is unset (or empty), ``NAME_FILE`` names a file whose
    content, stripped of surrounding whitespace, is the value. Setting both
    is an error, and so are an unreadable or empty file. Messages name
    variables and files, never values.
    """
    if any(m.group(3) for m in _VAR_RE.finditer(template)):
        raise ConfigError(
            '"${" must start a variable like ${SLACK_TOKEN} (write $${ for a literal "${")'
        )
    values: dict[str, str] = {}
    unset: list[str] = []
    empty: list[str] = []
    complaints: list[str] = []
    for name in referenced_variables(template):
        try:
            value = variable_value(name, env)
        except ConfigError as exc:
            complaints.append(str(exc))
            continue
        if value is None:
            unset.append(f"${{{name}}}")
        elif not value:
            empty.append(f"${{{name}}}")
        else:
            values[name] = value
    if unset:
        verb = "is" if len(unset) == 1 else "are"
        complaints.insert(0, f"{', '.join(unset)} {verb} not set in the environment")
    if empty:
        verb = "is" if len(empty) == 1 else "are"
        complaints.append(f"{', '.join(empty)} {verb} set but empty")
    if complaints:
        raise ConfigError("; ".join(complaints))

    def fill(match: re.Match[str]) -> str:
        return "${" if match.group(1) else values[match.group(2)]

    return _VAR_RE.sub(fill, template), tuple(values.values())


def variable_value(name: str, env: Mapping[str, str]) -> str | None:
    """The value of ``${name}``: ``env[name]``, else the content of the file named by
    ``env[name + "_FILE"]``; ``None`` when neither is set (see :func:`expand_variables`)."""
    return env_secret(env, name, shown=f"${{{name}}}")


def check_apprise_url(url: str, template: str) -> str:
    """Return ``url`` once apprise accepts it as exactly one notification service.

    ``template`` is the URL as written, before ``${VAR}`` expansion. Messages
    show only its scheme, and only when the scheme is written out literally:
    the rest of a URL, or anything that came from a variable, may be secret.
    """
    scheme, sep, _ = url.partition("://")
    if not sep or _SCHEME_RE.fullmatch(scheme) is None:
        raise ConfigError(
            f"not an apprise URL (it needs a service scheme like slack:// or mailtos://; "
            f"see {APPRISE_WIKI})"
        )
    literal = template.startswith(f"{scheme}://")
    known = True
    with apprise_quietly():
        try:
            known = _scheme_known(scheme.lower())
            plugin: Any = apprise.Apprise.instantiate(url)
            services = apprise.Apprise()
            added = bool(services.add(url)) and len(services) == 1
        except Exception:  # a plugin that blows up on a URL has rejected it
            plugin, added = None, False
    if not known:
        subject = f'"{scheme}://"' if literal else "its scheme"
        raise ConfigError(f"{subject} is not a service apprise knows (see {APPRISE_WIKI})")
    if plugin is None or not added:
        raise ConfigError(
            f"apprise does not accept this {f'{scheme}:// URL' if literal else 'URL'}"
            f" (check its form at {APPRISE_WIKI})"
        )
    return url


def _scheme_known(scheme: str) -> bool:
    """Does apprise have a plugin for ``scheme``? (True when this apprise cannot tell.)"""
    try:
        from apprise import manager_plugins
    except ImportError:  # older apprise: rely on instantiate() alone
        return True
    manager: Any = manager_plugins.NotificationManager  # a singleton; the call is untyped
    return bool(scheme in manager())
