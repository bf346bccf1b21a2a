"""Advice on a valid watchlist: what is allowed but probably not meant.

A 30-second interval (every TMAPI call is paid), an item that tells nobody,
a ``target_price`` that ``alert_on`` never lets through, a target no item
uses. The loader adds each line to ``Watchlist.warnings``. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from monitor.durations import format_duration
from monitor.watchlist.model import Item, Rules, Target

__all__ = ["SHORT_INTERVAL", "Advice", "advise"]

#: Intervals under this draw a warning.
SHORT_INTERVAL = timedelta(minutes=1)
_DAY = timedelta(days=1)

#: ``(entry, key, message)``: where the advice applies (``None`` for the whole file).
Advice = tuple[str | None, str | None, str]


def advise(
    defaults: Rules,
    own_defaults: Mapping[str, Any],
    items: Sequence[tuple[Item, Mapping[str, Any]]],
    targets: Mapping[str, Target],
) -> list[Advice]:
    """What is valid but probably not what the author wants, in file order.

    ``own_defaults`` and each item's mapping hold the keys written in the file
    (a default interval warns only where it is written)."""
    report: list[Advice] = []
    if "interval" in own_defaults and defaults.interval < SHORT_INTERVAL:
        report.append(("defaults", "interval", _short_interval(defaults.interval)))
    used = set(defaults.notify)
    for index, (item, own) in enumerate(items):
        used.update(item.rules.notify)
        rules, entry = item.rules, f"items[{index}] (id {item.id})"
        if not rules.enabled:
            continue
        if "interval" in own and rules.interval < SHORT_INTERVAL:
            report.append((entry, "interval", _short_interval(rules.interval)))
        if not rules.notify:
            report.append((entry, "notify", "empty: changes are recorded but nobody is told"))
        for key, kind in (("target_price", "target_price"), ("low_stock", "low_stock")):
            value = getattr(rules, key)
            if value is not None and kind not in rules.alert_on:
                report.append((entry, key, f'{value} never alerts: alert_on lacks "{kind}"'))
            if kind in own.get("alert_on", ()) and value is None:
                report.append((entry, "alert_on", f'"{kind}" never alerts: {key} is not set'))
    for name in targets:
        if name not in used:
            report.append((f"targets.{name}", None, "not used by any item"))
    if not any(item.rules.enabled for item, _ in items):
        report.append((None, None, "no enabled [[items]]: nothing will be polled"))
    return report


def _short_interval(interval: timedelta) -> str:
    calls = round(_DAY / interval)
    return (
        f"{format_duration(interval)} is under a minute; every TMAPI call is paid "
        f"(about {calls:,} calls a day per item)"
    )
