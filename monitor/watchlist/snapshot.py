"""The item settings of a watchlist as JSON, without a single secret.

The daemon stores this document in the database each time it applies a
watchlist (:func:`monitor.db.meta.save_watchlist_document`), so that
``monitor check`` run where the watchlist file is not at hand still
evaluates each item's rules and queues its alerts for the right targets;
the daemon, which has the file, delivers them.

The document holds the settings a poll needs (``unavailable_after``,
``scene``, ``optimize_title``), every item with its merged rules, and each
target's *name* and delivery options (quiet hours, time zone, digest,
template, format). It never holds a target's URL: targets read back from a
document have an empty URL and cannot send anything.
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from monitor.domain import ChangeKind
from monitor.watchlist.model import Item, QuietHours, Rules, Settings, Target, Watchlist

__all__ = ["FORMAT_VERSION", "from_document", "to_document"]

FORMAT_VERSION = 2
_DURATIONS = frozenset({"interval", "cooldown"})
_DECIMALS = frozenset(
    {"price_drop_pct", "price_drop_abs", "price_rise_pct", "price_rise_abs", "target_price"}
)
_TUPLES = frozenset({"notify", "skus"})
_SETTINGS = ("unavailable_after", "scene", "optimize_title")


def _rules_json(rules: Rules) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in fields(Rules):
        value = getattr(rules, field.name)
        if isinstance(value, timedelta):
            value = value.total_seconds()
        elif isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(v) for v in value]
        out[field.name] = value
    return out


def _rules(data: dict[str, Any]) -> Rules:
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name in _DURATIONS:
            values[name] = timedelta(seconds=float(value))
        elif name in _DECIMALS:
            values[name] = None if value is None else Decimal(value)
        elif name in _TUPLES:
            values[name] = tuple(value)
        elif name == "alert_on":
            values[name] = tuple(ChangeKind(v) for v in value)
        else:
            values[name] = value
    return Rules(**values)


def _clock(value: time | None) -> str | None:
    return None if value is None else f"{value:%H:%M}"


def _target_json(target: Target) -> dict[str, Any]:
    quiet = target.quiet_hours
    return {
        "name": target.name,
        "quiet_hours": None if quiet is None else [_clock(quiet.start), _clock(quiet.end)],
        "timezone": target.timezone.key,
        "digest": _clock(target.digest),
        "template": target.template,
        "format": target.format,
    }


def _time(value: str | None) -> time | None:
    return None if value is None else time.fromisoformat(value)


def _target(data: dict[str, Any]) -> Target:
    quiet = data["quiet_hours"]
    return Target(
        name=data["name"],
        url="",
        url_template="",
        quiet_hours=None
        if quiet is None
        else QuietHours(time.fromisoformat(quiet[0]), time.fromisoformat(quiet[1])),
        timezone=ZoneInfo(data["timezone"]),
        digest=_time(data["digest"]),
        template=data["template"],
        format=data["format"],
    )


def to_document(watchlist: Watchlist) -> str:
    """The watchlist's item settings as JSON text (stable for the same watchlist)."""
    settings = watchlist.settings
    # Items mostly share their rules: each distinct set is written once.
    index: dict[Rules, int] = {}
    for item in watchlist.items:
        index.setdefault(item.rules, len(index))
    distinct = list(index)
    document = {
        "version": FORMAT_VERSION,
        "path": str(watchlist.path),
        "settings": {name: getattr(settings, name) for name in _SETTINGS},
        "targets": [_target_json(target) for target in watchlist.targets.values()],
        "rules": [_rules_json(rules) for rules in distinct],
        "items": [[item.id, item.name, index[item.rules]] for item in watchlist.items],
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def from_document(text: str) -> Watchlist:
    """The watchlist a document describes (targets without URLs); ValueError if unreadable."""
    try:
        data = json.loads(text)
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"version {data.get('version')!r}")  # noqa: TRY301
        targets = [_target(entry) for entry in data["targets"]]
        rules = [_rules(entry) for entry in data["rules"]]
        return Watchlist(
            path=Path(data["path"]),
            settings=Settings(**data["settings"]),
            targets=MappingProxyType({target.name: target for target in targets}),
            items=tuple(
                Item(int(item_id), name, rules[position])
                for item_id, name, position in data["items"]
            ),
        )
    except (AttributeError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"unreadable stored watchlist ({type(exc).__name__}: {exc})") from None
