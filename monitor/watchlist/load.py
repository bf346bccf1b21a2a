"""Load and validate ``watchlist.toml`` into a frozen :class:`Watchlist`.

The file (reference: ``docs/watchlist.md``)::

    [settings]   how hard to hit TMAPI            -> Settings (environment overrides)
    [targets]    name = apprise URL, or a table   -> Target   (${VAR} from the environment)
    [defaults]   rules every item inherits        -> Rules
    [[items]]    id, name + rules of its own      -> Item     (rules merged key by key)

Validation is done once, here: unknown keys at any level, wrong types, bad
durations, duplicate ids, undefined target names, unset ``${VAR}``s and URLs
apprise rejects all end in one :class:`WatchlistError` (a ``ConfigError``)
whose ``problems`` hold one line per problem, each naming the file, the entry
and the key::

    watchlist.toml: items[2] (id 652702302959): interval: "10x" is not a duration (use 30s, …)

``items[N]`` counts ``[[items]]`` entries from 0, in file order. Things that
are valid but probably unwanted (a 30-second interval: every TMAPI call is
paid) go to ``Watchlist.warnings`` instead.

Secrets: expanded target URLs and the variable values put into them are
passed to :func:`monitor.logs.register_secret` before apprise sees them, and
no message, ``repr`` or summary line shows them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from monitor.domain import LANGUAGES, ChangeKind
from monitor.durations import parse_duration
from monitor.errors import ConfigError
from monitor.logs import register_secret
from monitor.settings import environment
from monitor.watchlist.advice import advise
from monitor.watchlist.fields import (
    check_apprise_url,
    check_template,
    expand_variables,
    show_value,
    suggest,
    to_bool,
    to_choice,
    to_clock,
    to_decimal,
    to_int,
    to_item_id,
    to_number,
    to_quiet_hours,
    to_str,
    to_str_list,
    to_timezone,
)
from monitor.watchlist.model import (
    FORMATS,
    SCENES,
    Item,
    Rules,
    Settings,
    Target,
    Watchlist,
    WatchlistError,
)

__all__ = ["ENV_OVERRIDES", "apply_env_overrides", "load_watchlist", "parse_watchlist"]

#: Environment variables that override ``[settings]`` keys.
ENV_OVERRIDES = {
    "MONITOR_MAX_CONCURRENCY": "max_concurrency",
    "MONITOR_MAX_REQUESTS_PER_SECOND": "max_requests_per_second",
}
#: Intervals below this are accepted with a warning: every TMAPI call is paid.
_ENV_NEEDS = {
    "max_concurrency": "a whole number, 1 or more",
    "max_requests_per_second": "a number above 0, at most 1000",
}
_TARGET_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)

Check = Callable[[Any], Any]

_SETTINGS_KEYS: dict[str, Check] = {
    "max_concurrency": lambda v: to_int(v, minimum=1),
    "max_requests_per_second": lambda v: to_number(v, above=0, maximum=1000),
    "jitter": lambda v: to_number(v, minimum=0, maximum=0.5),
    "unavailable_after": lambda v: to_int(v, minimum=1),
    "dead_after": parse_duration,
    "scene": lambda v: to_choice(v, SCENES),
    "optimize_title": to_bool,
}
_TARGET_KEYS = ("url", "quiet_hours", "timezone", "digest", "template", "format")
_TARGET_OPTIONS: dict[str, Check] = {
    "quiet_hours": to_quiet_hours,
    "timezone": to_timezone,
    "digest": to_clock,
    "template": check_template,
    "format": lambda v: to_choice(v, FORMATS),
}
_RULE_KEYS = tuple(field.name for field in dataclasses.fields(Rules))
_ITEM_ONLY_KEYS = ("id", "name")
_TOP_KEYS = ("settings", "targets", "defaults", "items")
#: Where a key that is unknown in one place does belong, for the hint.
_HOME_OF = {
    **dict.fromkeys(_SETTINGS_KEYS, "[settings]"),
    **dict.fromkeys(_TARGET_KEYS, "a [targets.NAME] table"),
    **dict.fromkeys(_RULE_KEYS, "[defaults] or [[items]]"),
    **dict.fromkeys(_ITEM_ONLY_KEYS, "[[items]]"),
}


def load_watchlist(path: Path, env: Mapping[str, str] | None = None) -> Watchlist:
    """Read and validate the watchlist at ``path``; ``${VAR}``s and setting
    overrides come from ``env`` (default: :func:`monitor.settings.environment`).
    Raises :class:`WatchlistError` (a ``ConfigError``)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WatchlistError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise WatchlistError([f"{path}: is a directory, not a file"]) from None
    except OSError as exc:
        raise WatchlistError([f"{path}: cannot be read ({exc.strerror or exc})"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WatchlistError(
            [f"{path}: is not UTF-8 text (bad byte at offset {exc.start})"]
        ) from None
    return parse_watchlist(text, path=path, env=env)


def parse_watchlist(
    text: str, *, path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> Watchlist:
    """Validate watchlist TOML ``text``; ``path`` is only used to name the file in messages."""
    env = environment() if env is None else env
    report = _Report(str(path))
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        detail = str(exc) if isinstance(exc, tomllib.TOMLDecodeError) else "nested too deeply"
        raise WatchlistError([f"{path}: not valid TOML: {detail}"]) from None
    for key in data:
        if key not in _TOP_KEYS:
            report.unknown_key("top level", key, _TOP_KEYS)

    settings = _parse_settings(_table(data, "settings", report), report)
    settings = _overridden(settings, env, report.problems)
    targets_raw = _table(data, "targets", report)
    targets = _parse_targets(targets_raw, env, report)
    # notify may name a target that failed its own checks: that is reported once, there.
    declared = list(targets_raw)
    own_defaults = _parse_rules(_table(data, "defaults", report), "defaults", declared, report)
    defaults = Rules(**own_defaults)
    items = _parse_items(data.get("items", []), defaults, declared, report)
    if report.problems:
        raise WatchlistError(report.problems)

    for where, about, message in advise(defaults, own_defaults, items, targets):
        report.warn(where, about, message)
    return Watchlist(
        path=Path(path),
        settings=settings,
        targets=MappingProxyType(dict(targets)),
        defaults=defaults,
        items=tuple(item for item, _ in items),
        warnings=tuple(report.warnings),
    )


def apply_env_overrides(settings: Settings, env: Mapping[str, str]) -> Settings:
    """``settings`` with :data:`ENV_OVERRIDES` applied from ``env`` (empty values are ignored).

    Raises :class:`WatchlistError` naming the variable when a value is invalid.
    """
    problems: list[str] = []
    result = _overridden(settings, env, problems)
    if problems:
        raise WatchlistError(problems)
    return result


class _Report:
    """Problems and warnings, each rendered as ``file: entry: key: message``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def line(self, entry: str | None, key: str | None, message: str) -> str:
        return ": ".join(part for part in (self.path, entry, key, message) if part)

    def problem(self, entry: str | None, key: str | None, message: str) -> None:
        self.problems.append(self.line(entry, key, message))

    def warn(self, entry: str | None, key: str | None, message: str) -> None:
        self.warnings.append(self.line(entry, key, message))

    def unknown_key(self, entry: str, key: str, allowed: tuple[str, ...]) -> None:
        home = _HOME_OF.get(key)
        if key == "url" and entry.startswith("items"):
            hint = ' (write the offer URL as id = "https://detail.1688.com/offer/….html")'
        else:
            hint = f" (it belongs in {home})" if home else suggest(key, allowed)
        self.problem(entry, None, f"unknown key {show_value(key)}{hint}")

    def check(self, entry: str, key: str, check: Check, value: object) -> Any:
        """``check(value)``, or record its complaint and return ``None``."""
        try:
            return check(value)
        except ConfigError as exc:
            self.problem(entry, key, str(exc))
            return None


def _table(data: Mapping[str, Any], key: str, report: _Report) -> dict[str, Any]:
    value = data.get(key, {})
    if isinstance(value, dict):
        return value
    report.problem(key, None, f"must be a table, written [{key}] (not {show_value(value)})")
    return {}


def _parse_settings(raw: Mapping[str, Any], report: _Report) -> Settings:
    values = {}
    for key, value in raw.items():
        if key not in _SETTINGS_KEYS:
            report.unknown_key("settings", key, tuple(_SETTINGS_KEYS))
            continue
        checked = report.check("settings", key, _SETTINGS_KEYS[key], value)
        if checked is not None:
            values[key] = checked
    return Settings(**values)


def _overridden(settings: Settings, env: Mapping[str, str], problems: list[str]) -> Settings:
    """Apply :data:`ENV_OVERRIDES`; a bad value adds a problem naming the variable."""
    values: dict[str, Any] = {}
    for variable, key in ENV_OVERRIDES.items():
        text = env.get(variable, "").strip()
        if not text:
            continue
        try:
            number: int | float = int(text) if key == "max_concurrency" else float(text)
            values[key] = _SETTINGS_KEYS[key](number)
        except (ValueError, ConfigError):
            problems.append(
                f"environment variable {variable}: {show_value(text)} is not valid for "
                f"settings.{key} (need {_ENV_NEEDS[key]})"
            )
    return dataclasses.replace(settings, **values)


def _parse_targets(
    raw: Mapping[str, Any], env: Mapping[str, str], report: _Report
) -> dict[str, Target]:
    targets: dict[str, Target] = {}
    for name, value in raw.items():
        if _TARGET_NAME_RE.fullmatch(name) is None:
            report.problem(
                f"targets.{show_value(name)}",
                None,
                "a target name may use only letters, digits, _ and - (at most 64 characters)",
            )
            continue
        target = _parse_target(name, value, env, report)
        if target is not None:
            targets[name] = target
    return targets


def _parse_target(
    name: str, value: object, env: Mapping[str, str], report: _Report
) -> Target | None:
    entry = f"targets.{name}"
    table = {"url": value} if isinstance(value, str) else value
    if not isinstance(table, dict):
        # Not shown: a URL put in the wrong place is still a secret.
        kind = _kind(value)
        report.problem(entry, None, f'must be an apprise URL or a table with url = "…", not {kind}')
        return None
    options: dict[str, Any] = {}
    for key, option in table.items():
        if key == "url":
            continue
        if key not in _TARGET_OPTIONS:
            report.unknown_key(entry, key, _TARGET_KEYS)
            continue
        checked = report.check(entry, key, _TARGET_OPTIONS[key], option)
        if checked is not None:
            options[key] = checked
    if "url" not in table:
        report.problem(entry, "url", "missing (the apprise URL to send to)")
        return None
    template = report.check(entry, "url", _url_string, table["url"])
    filled = None if template is None else report.check(entry, "url", _expander(env), template)
    if filled is None or template is None:
        return None
    url, values = filled
    # Register before apprise parses the URL: apprise logs what it is given.
    for secret in values:
        register_secret(secret)
    register_secret(url)
    if report.check(entry, "url", lambda u: check_apprise_url(u, template), url) is None:
        return None
    return Target(name=name, url=url, url_template=template, **options)


def _url_string(value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"must be a string (the apprise URL), not {_kind(value)}")
    if not value.strip():
        raise ConfigError("must not be empty")
    return value.strip()


def _kind(value: object) -> str:
    """What sort of TOML value ``value`` is, without showing it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    kinds = {str: "a string", list: "a list", dict: "a table"}
    return next((name for cls, name in kinds.items() if isinstance(value, cls)), "a date or time")


def _expander(env: Mapping[str, str]) -> Check:
    """``${VAR}`` (or the file named by ``VAR_FILE``) filled in: ``(url, values)``."""
    return lambda template: expand_variables(template, env)


def _rule_checks(targets: Collection[str]) -> dict[str, Check]:
    """The checker of every :class:`Rules` key; ``notify`` may name only ``targets``."""

    def notify(value: object) -> tuple[str, ...]:
        names = to_str_list(value)
        for name in names:
            if name not in targets:
                defined = ", ".join(targets) or "none: add a [targets] table"
                hint = suggest(name, targets) or f" (defined: {defined})"
                raise ConfigError(f"{show_value(name)} is not a defined target{hint}")
        return names

    def alert_on(value: object) -> tuple[ChangeKind, ...]:
        kinds = [str(kind) for kind in ChangeKind]
        for name in (names := to_str_list(value)):
            if name not in kinds:
                hint = suggest(name, kinds) or f" (use {', '.join(kinds)})"
                raise ConfigError(f"{show_value(name)} is not an alert kind{hint}")
        return tuple(ChangeKind(name) for name in names)

    return {
        "interval": parse_duration,
        "language": lambda v: to_choice(v, LANGUAGES),
        "notify": notify,
        "alert_on": alert_on,
        "price_drop_pct": lambda v: to_decimal(v, maximum=Decimal(100)),
        "price_drop_abs": to_decimal,
        "price_rise_pct": to_decimal,
        "price_rise_abs": to_decimal,
        "target_price": lambda v: to_decimal(v, positive=True),
        "low_stock": lambda v: to_int(v, minimum=0),
        "failing_after": lambda v: to_int(v, minimum=1),
        "skus": to_str_list,
        "cooldown": lambda v: parse_duration(v, minimum=timedelta(0)),
        "enabled": to_bool,
    }


def _parse_rules(
    raw: Mapping[str, Any],
    entry: str,
    targets: Collection[str],
    report: _Report,
    allowed: tuple[str, ...] = _RULE_KEYS,
) -> dict[str, Any]:
    """The rule keys ``raw`` sets itself, checked; unknown keys are reported."""
    checks = _rule_checks(targets)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _ITEM_ONLY_KEYS and key in allowed:
            continue
        if key not in checks or key not in allowed:
            report.unknown_key(entry, key, allowed)
            continue
        checked = report.check(entry, key, checks[key], value)
        if checked is not None:
            values[key] = checked
    return values


def _parse_items(
    raw: object, defaults: Rules, targets: Collection[str], report: _Report
) -> list[tuple[Item, dict[str, Any]]]:
    """Each valid item with the rule keys it sets itself (for the warnings)."""
    if not isinstance(raw, list):
        report.problem("items", None, "must be a list of tables, each written [[items]]")
        return []
    items: list[tuple[Item, dict[str, Any]]] = []
    seen: dict[int, str] = {}
    for index, table in enumerate(raw):
        entry = f"items[{index}]"
        if not isinstance(table, dict):
            report.problem(entry, None, f"{show_value(table)} is not a table (write [[items]])")
            continue
        item_id = None
        if "id" not in table:
            report.problem(entry, "id", "missing (the 1688 offer id or offer URL)")
        else:
            item_id = report.check(entry, "id", to_item_id, table["id"])
        if item_id is not None:
            entry = f"{entry} (id {item_id})"
            if item_id in seen:
                report.problem(entry, "id", f"{item_id} is already listed as {seen[item_id]}")
            seen.setdefault(item_id, f"items[{index}]")
        name = report.check(entry, "name", to_str, table["name"]) if "name" in table else None
        own = _parse_rules(table, entry, targets, report, _RULE_KEYS + _ITEM_ONLY_KEYS)
        if item_id is not None:
            item = Item(id=item_id, name=name, rules=dataclasses.replace(defaults, **own))
            items.append((item, own))
    return items
