"""Builders shared by the outbox, delivery and ``notify`` CLI tests."""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.alerts.model import Alert, AlertGroup
from monitor.db.engine import write_transaction
from monitor.db.models import Notification
from monitor.db.outbox import enqueue
from monitor.db.records import PollResult
from monitor.db.store import Store
from monitor.watchlist.model import QuietHours, Target
from tests.factories import ITEM_ID, apply_poll, offer

NOTIFICATIONS = cast(sa.Table, Notification.__table__)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def group(
    item_id: int = ITEM_ID,
    *,
    when: datetime,
    kinds: tuple[str, ...] = ("price_drop",),
    name: str | None = "Leopard robe",
) -> AlertGroup:
    """An alert group of ``item_id`` with one alert per kind."""
    alerts = tuple(
        Alert(
            kind,
            sku_id=f"5{index:012d}",
            sku_name=f"white / {index}",
            old=Decimal("29.89"),
            new=Decimal("25.90"),
            pct=Decimal("-13.3"),
        )
        for index, kind in enumerate(kinds)
    )
    return AlertGroup(
        item_id=item_id,
        name=name,
        title="Women's leopard print robe",
        url=f"https://detail.1688.com/offer/{item_id}.html",
        shop="Yiwu Example Garments",
        image=None,
        currency="CNY",
        detected_at=when,
        alerts=alerts,
    )


def target(
    name: str,
    url: str = "json://127.0.0.1:9/hook",
    *,
    quiet: tuple[time, time] | None = None,
    digest: time | None = None,
    zone: ZoneInfo = SHANGHAI,
    template: str | None = None,
) -> Target:
    return Target(
        name=name,
        url=url,
        url_template=url,
        quiet_hours=QuietHours(*quiet) if quiet else None,
        timezone=zone,
        digest=digest,
        template=template,
    )


def record_poll(
    store: Store, alerts: AlertGroup, targets: list[Target], when: datetime
) -> tuple[PollResult, int]:
    """Record a poll of the group's item at ``when`` (on no watchlist), then enqueue
    ``alerts`` for it as the alert step would. Returns the poll and how many
    outbox rows were inserted.
    """
    poll = apply_poll(store, alerts.item_id, when, offer(item_id=alerts.item_id))
    with write_transaction(store.engine) as conn:
        inserted = enqueue(conn, alerts, poll.poll_id, targets, when)
    return poll, inserted


def rows(engine: Engine) -> list[sa.Row[Any]]:
    """Every outbox row, by id."""
    with engine.connect() as conn:
        return list(conn.execute(sa.select(NOTIFICATIONS).order_by(NOTIFICATIONS.c.id)))
