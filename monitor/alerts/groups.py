"""The message of one poll: its alerts wrapped into one :class:`AlertGroup`.

:func:`group` for a successful poll, :func:`failure_group` for a failed one
(described by the last known offer, if any). Both are re-exported by
:mod:`monitor.alerts.rules`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from monitor.alerts.model import Alert, AlertGroup
from monitor.domain import Offer, offer_url

__all__ = ["failure_group", "group"]


def group(
    item_name: str | None, offer: Offer, alerts: Sequence[Alert], now: datetime
) -> AlertGroup | None:
    """The message of one poll: ``alerts`` about ``offer``, or None when there are none."""
    if not alerts:
        return None
    return AlertGroup(
        item_id=offer.item_id,
        name=item_name,
        title=offer.title,
        url=offer.url,
        shop=offer.shop_name,
        image=offer.image,
        currency=offer.currency,
        detected_at=now,
        alerts=tuple(alerts),
    )


def failure_group(
    item_id: int,
    item_name: str | None,
    last_offer: Offer | None,
    alerts: Sequence[Alert],
    now: datetime,
) -> AlertGroup | None:
    """The message of a failed poll, described by the last known offer if there is one.

    Without one (the item never polled successfully), the title is the
    item's name or ``"1688 offer <id>"`` and the link is the public offer page.
    """
    if not alerts:
        return None
    if last_offer is not None:
        return group(item_name, last_offer, alerts, now)
    return AlertGroup(
        item_id=item_id,
        name=item_name,
        title=item_name or f"1688 offer {item_id}",
        url=offer_url(item_id),
        shop=None,
        image=None,
        currency="CNY",
        detected_at=now,
        alerts=tuple(alerts),
    )
