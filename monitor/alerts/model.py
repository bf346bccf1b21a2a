"""What an alert is, independent of how and where it is sent.

An :class:`AlertGroup` is everything one poll of one item has to say to
people: one message per item per poll, however many SKUs changed. It is
stored in the outbox as JSON (:meth:`AlertGroup.to_json`) and rendered per
target format only when it is delivered. Money stays ``Decimal`` through the
JSON round trip (encoded as strings).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from monitor.domain import ChangeKind

AlertValue = Decimal | int | None

#: The ``note`` of the ``poll_failing`` alert that says polling works again.
RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alerting fact about an item.

    ``kind`` is a :class:`~monitor.domain.ChangeKind` (``price_drop``,
    ``target_price``, ``low_stock``, ``poll_failing``, …). ``old``/``new``
    are prices (Decimal) or stock counts (int) as for
    :class:`monitor.domain.Change`; ``note`` carries what the numbers cannot
    (e.g. ``"3 failed polls in a row: timeout"``, ``"recovered"``).
    """

    kind: ChangeKind
    sku_id: str | None = None
    sku_name: str | None = None
    min_qty: int | None = None
    old: AlertValue = None
    new: AlertValue = None
    pct: Decimal | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "sku_id": self.sku_id,
            "sku_name": self.sku_name,
            "min_qty": self.min_qty,
            "old": _encode(self.old),
            "new": _encode(self.new),
            "pct": None if self.pct is None else str(self.pct),
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        pct = data.get("pct")
        return cls(
            kind=ChangeKind(data["kind"]),
            sku_id=data.get("sku_id"),
            sku_name=data.get("sku_name"),
            min_qty=data.get("min_qty"),
            old=_decode(data.get("old")),
            new=_decode(data.get("new")),
            pct=None if pct is None else Decimal(pct),
            note=data.get("note"),
        )


@dataclass(frozen=True, slots=True)
class AlertGroup:
    """One message's worth: the alerts of one item from one poll."""

    item_id: int
    name: str | None
    title: str
    url: str
    shop: str | None
    image: str | None
    currency: str
    detected_at: datetime
    alerts: tuple[Alert, ...]

    @property
    def label(self) -> str:
        """The user's name for the item, else its title."""
        return self.name or self.title

    def to_json(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "name": self.name,
            "title": self.title,
            "url": self.url,
            "shop": self.shop,
            "image": self.image,
            "currency": self.currency,
            "detected_at": self.detected_at.isoformat(),
            "alerts": [a.to_json() for a in self.alerts],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertGroup:
        return cls(
            item_id=int(data["item_id"]),
            name=data.get("name"),
            title=str(data["title"]),
            url=str(data["url"]),
            shop=data.get("shop"),
            image=data.get("image"),
            currency=str(data.get("currency") or "CNY"),
            detected_at=datetime.fromisoformat(data["detected_at"]),
            alerts=tuple(Alert.from_json(a) for a in data["alerts"]),
        )


def _encode(value: AlertValue) -> str | int | None:
    # Prices travel as strings ("29.89"), stock counts as JSON integers.
    if isinstance(value, Decimal):
        return str(value)
    return value


def _decode(value: object) -> AlertValue:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("alert values are prices or counts, not booleans")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return Decimal(value)
    raise TypeError(f"unexpected alert value of type {type(value).__name__}")
