"""The typed, immutable form of ``watchlist.toml``.

:func:`monitor.watchlist.load.load_watchlist` validates the file once and returns a
:class:`Watchlist`; everything downstream (scheduler, rules, delivery) reads
only these frozen objects, never the raw TOML.

    Watchlist
    ├── settings: Settings          how hard to hit TMAPI, retry horizons
    ├── targets:  name -> Target    where notifications go (apprise URL + delivery options)
    ├── defaults: Rules             [defaults] over the built-in defaults
    ├── items:    (Item, ...)       each with its Rules already merged with defaults
    └── warnings: (str, ...)        accepted but probably unwanted (e.g. a 30 s interval)

A :class:`Target` holds its expanded apprise URL, which is a secret: its
``repr`` shows the scheme only, :func:`monitor.watchlist.urls.privacy_url`
apprise's masked form. This module imports nothing outside the standard
library and :mod:`monitor.domain`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo

from monitor.domain import ChangeKind, offer_url
from monitor.errors import ConfigError

__all__ = [
    "DEFAULT_ALERT_ON",
    "FORMATS",
    "SCENES",
    "TEMPLATE_FIELDS",
    "Item",
    "QuietHours",
    "Rules",
    "Settings",
    "Target",
    "Watchlist",
    "WatchlistError",
    "watched_items",
]

UTC = ZoneInfo("UTC")

#: ``settings.scene`` values TMAPI accepts.
SCENES = ("drop_shipping",)
#: Message formats a target may force (apprise's ``NotifyFormat`` names).
FORMATS = ("markdown", "text", "html")
#: The ``{fields}`` a target's ``template`` may use.
TEMPLATE_FIELDS = ("title", "url", "shop", "changes", "item_id", "name", "count")


DEFAULT_ALERT_ON = (
    ChangeKind.PRICE_DROP,
    ChangeKind.SOLD_OUT,
    ChangeKind.BACK_IN_STOCK,
    ChangeKind.TIER_CHANGE,
)


class WatchlistError(ConfigError):
    """The watchlist is invalid. ``problems`` lists every problem found, one line each;
    the message is those lines joined by newlines. Each line names the file,
    the entry and the key, and never contains an expanded secret."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class Settings:
    """``[settings]``, after environment overrides."""

    max_concurrency: int = 8
    max_requests_per_second: float = 5.0
    jitter: float = 0.1
    unavailable_after: int = 3
    dead_after: timedelta = timedelta(hours=24)
    scene: str | None = None
    optimize_title: bool = False


@dataclass(frozen=True, slots=True)
class Rules:
    """When to poll an item and what to tell whom. ``[defaults]`` and each
    ``[[items]]`` entry hold these keys; an item's keys win key by key."""

    interval: timedelta = timedelta(hours=1)
    language: str = "en"
    notify: tuple[str, ...] = ()
    alert_on: tuple[ChangeKind, ...] = DEFAULT_ALERT_ON
    price_drop_pct: Decimal | None = None
    price_drop_abs: Decimal | None = None
    price_rise_pct: Decimal | None = None
    price_rise_abs: Decimal | None = None
    target_price: Decimal | None = None
    low_stock: int | None = None
    failing_after: int = 3
    skus: tuple[str, ...] = ()
    cooldown: timedelta = timedelta(0)
    enabled: bool = True

    def watches_sku(self, sku_id: str, sku_name: str = "") -> bool:
        """True when ``skus`` is empty or one of its patterns matches the SKU id or
        its display name (shell-style globs, case-sensitive: ``"黄色*"``, ``"5*"``)."""
        if not self.skus:
            return True
        return any(
            fnmatch.fnmatchcase(sku_id, pattern) or fnmatch.fnmatchcase(sku_name, pattern)
            for pattern in self.skus
        )


@dataclass(frozen=True, slots=True)
class Item:
    """One watched 1688 offer; ``rules`` already include ``[defaults]``."""

    id: int
    name: str | None
    rules: Rules

    @property
    def url(self) -> str:
        """The offer's page on 1688.com."""
        return offer_url(self.id)

    @property
    def label(self) -> str:
        """``652702302959 "Leopard robe"``, or just the id when there is no name."""
        return f'{self.id} "{self.name}"' if self.name else str(self.id)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window, in the target's time zone, in which nothing is sent.

    ``end`` is exclusive. ``start > end`` means the window spans midnight
    (``22:00-08:00``); ``start == end`` is rejected by the loader."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        """Is the local wall-clock time ``moment`` inside the window?"""
        moment = moment.replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True, repr=False)
class Target:
    """A named notification destination.

    ``url`` is the apprise URL with ``${VAR}``s filled in: a secret, never to
    be printed. ``url_template`` is the URL as written in the file. For
    display use :func:`monitor.watchlist.urls.privacy_url`; ``repr`` shows the
    scheme only.
    """

    name: str
    url: str
    url_template: str
    quiet_hours: QuietHours | None = None
    timezone: ZoneInfo = UTC
    digest: time | None = None
    template: str | None = None
    format: str | None = None

    def scheme_url(self) -> str:
        """``slack://…``: the URL's scheme alone, safe to print anywhere. The
        masked full form is :func:`monitor.watchlist.urls.privacy_url`."""
        scheme, sep, _ = self.url.partition("://")
        return f"{scheme}://…" if sep else "…"

    def __repr__(self) -> str:
        options = [
            f"{label}={value!r}"
            for label, value in (
                ("quiet_hours", str(self.quiet_hours) if self.quiet_hours else None),
                ("timezone", self.timezone.key),
                ("digest", f"{self.digest:%H:%M}" if self.digest else None),
                ("template", self.template),
                ("format", self.format),
            )
            if value is not None
        ]
        return (
            f"Target({', '.join([f'name={self.name!r}', f'url={self.scheme_url()!r}', *options])})"
        )


@dataclass(frozen=True, slots=True)
class Watchlist:
    """The whole validated watchlist. ``targets`` is a read-only mapping in file order."""

    path: Path
    settings: Settings = field(default_factory=Settings)
    targets: Mapping[str, Target] = field(default_factory=lambda: MappingProxyType({}))
    defaults: Rules = field(default_factory=Rules)
    items: tuple[Item, ...] = ()
    warnings: tuple[str, ...] = ()

    def item(self, item_id: int) -> Item | None:
        """The item with this 1688 offer id, or ``None``."""
        return next((item for item in self.items if item.id == item_id), None)

    def targets_of(self, item: Item) -> tuple[Target, ...]:
        """The targets ``item`` notifies, in its ``notify`` order."""
        return tuple(self.targets[name] for name in item.rules.notify)


def watched_items(watchlist: Watchlist) -> tuple[Item, ...]:
    """The items to poll: those with ``enabled = true``."""
    return tuple(item for item in watchlist.items if item.rules.enabled)
