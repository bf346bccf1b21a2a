"""``monitor validate``'s view of a watchlist: what will be polled, how often, who is told.

Only safe things are shown: targets appear in apprise's privacy form, never
with their expanded URL.
"""

from __future__ import annotations

from datetime import timedelta

from monitor.durations import format_duration
from monitor.watchlist.model import Item, Target, Watchlist, watched_items
from monitor.watchlist.urls import privacy_url

__all__ = ["summarize"]

_DAY = timedelta(days=1)


def summarize(watchlist: Watchlist) -> list[str]:
    """Human-readable lines describing ``watchlist`` (for ``monitor validate``); no secrets."""
    enabled = watched_items(watchlist)
    s = watchlist.settings
    lines = [
        f"{watchlist.path}: {_count(len(watchlist.items), 'item')} "
        f"({len(enabled)} enabled), {_count(len(watchlist.targets), 'target')}",
        f"settings: max_concurrency={s.max_concurrency}, "
        f"max_requests_per_second={s.max_requests_per_second:g}, jitter={s.jitter:g}, "
        f"unavailable_after={s.unavailable_after}, dead_after={format_duration(s.dead_after)}, "
        f"scene={s.scene or '-'}, optimize_title={str(s.optimize_title).lower()}",
        "targets:",
    ]
    lines += [f"  {name}: {_describe_target(t)}" for name, t in watchlist.targets.items()]
    lines.append("items:")
    lines += [f"  {_describe_item(item)}" for item in watchlist.items]
    calls = sum(_DAY / item.rules.interval for item in enabled)
    lines.append(f"about {round(calls):,} TMAPI calls a day")
    if watchlist.warnings:
        lines.append("warnings:")
        lines += [f"  {warning}" for warning in watchlist.warnings]
    return lines


def _describe_target(target: Target) -> str:
    extras = [f"timezone {target.timezone.key}"]
    if target.quiet_hours:
        extras.append(f"quiet {target.quiet_hours}")
    if target.digest:
        extras.append(f"digest {target.digest:%H:%M}")
    if target.format:
        extras.append(f"format {target.format}")
    if target.template:
        extras.append("custom template")
    return f"{privacy_url(target.url)} ({', '.join(extras)})"


def _describe_item(item: Item) -> str:
    rules = item.rules
    parts = [
        f"every {format_duration(rules.interval)}",
        f"language {rules.language}",
        f"notify {', '.join(rules.notify) or 'nobody'}",
        f"alert on {', '.join(rules.alert_on) or 'nothing'}",
    ]
    for key in ("price_drop_pct", "price_drop_abs", "price_rise_pct", "price_rise_abs"):
        if (value := getattr(rules, key)) is not None:
            parts.append(f"{key}={value}")
    if rules.target_price is not None:
        parts.append(f"target_price={rules.target_price}")
    if rules.low_stock is not None:
        parts.append(f"low_stock={rules.low_stock}")
    if rules.skus:
        parts.append(f"skus {', '.join(rules.skus)}")
    if rules.cooldown:
        parts.append(f"cooldown {format_duration(rules.cooldown)}")
    disabled = " (disabled)" if not rules.enabled else ""
    return f"{item.label}{disabled}: {'; '.join(parts)}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
