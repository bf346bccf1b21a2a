"""What the alert rules remember about one item between polls.

:class:`RuleState` is the memory of :mod:`monitor.alerts.rules` for one
item. It is stored as one JSON value per item (:meth:`RuleState.to_json`,
:meth:`RuleState.from_json`); prices travel as strings so they come back as
the exact same ``Decimal``.

It remembers what people were *told*, not what the offer looked like (the
snapshots already keep that):

* per SKU (:class:`SkuMemory`): the price the last ``price_drop`` /
  ``price_rise`` alert reported (before any such alert: the first price
  seen), whether a ``target_price`` alert was sent since the SKU last went
  above the target, and likewise for ``low_stock``;
* per alert key (:func:`alert_key`: kind, plus the SKU or quantity break it
  is about) the last alert sent and when (:class:`SentAlert`), for
  ``cooldown`` and flapping; entries older than the cooldown are dropped;
* whether ``poll_failing`` was alerted and not yet followed by "recovered";
* whether a successful poll was ever evaluated (the first one is a baseline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from monitor.alerts.model import Alert, AlertValue
from monitor.errors import StorageError

__all__ = ["STATE_VERSION", "RuleState", "SentAlert", "SkuMemory", "alert_key"]

#: Version of the JSON form; :meth:`RuleState.from_json` rejects others.
STATE_VERSION = 1


def alert_key(alert: Alert) -> str:
    """The cooldown key of an alert: its kind, plus the SKU or quantity break it is about.

    ``price_drop:sku:5674557541674``, ``tier_change:tier:100``, ``sold_out``.
    """
    if alert.sku_id is not None:
        return f"{alert.kind}:sku:{alert.sku_id}"
    if alert.min_qty is not None:
        return f"{alert.kind}:tier:{alert.min_qty}"
    return alert.kind


@dataclass(frozen=True, slots=True)
class SkuMemory:
    """What the rules remember about one SKU.

    ``baseline`` is the price the user last heard about for this SKU (the
    first price seen until a price alert is sent). ``at_target`` / ``low``
    are true once a ``target_price`` / ``low_stock`` alert was sent (or the
    condition already held when the SKU was first seen), and false again once
    the SKU goes back above the threshold, which re-arms the alert.
    """

    baseline: Decimal
    at_target: bool = False
    low: bool = False


@dataclass(frozen=True, slots=True)
class SentAlert:
    """The last alert sent under one :func:`alert_key`: when, and what it reported."""

    at: datetime
    old: AlertValue = None
    new: AlertValue = None


@dataclass(frozen=True)
class RuleState:
    """The rules' memory of one item; see the module docstring.

    ``skus`` and ``sent`` are read-only mappings (copied on construction), so
    a state can be shared freely; :func:`monitor.alerts.rules.evaluate`
    returns a new one instead of changing it.
    """

    seen: bool = False
    failing: bool = False
    skus: Mapping[str, SkuMemory] = field(default_factory=dict)
    sent: Mapping[str, SentAlert] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "skus", MappingProxyType(dict(self.skus)))
        object.__setattr__(self, "sent", MappingProxyType(dict(self.sent)))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; money as strings, times as ISO 8601."""
        return {
            "version": STATE_VERSION,
            "seen": self.seen,
            "failing": self.failing,
            "skus": {
                sku_id: {
                    "baseline": str(memory.baseline),
                    "at_target": memory.at_target,
                    "low": memory.low,
                }
                for sku_id, memory in self.skus.items()
            },
            "sent": {
                key: {"at": sent.at.isoformat(), "old": _encode(sent.old), "new": _encode(sent.new)}
                for key, sent in self.sent.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleState:
        """The state :meth:`to_json` wrote. Raises :class:`StorageError` on anything else."""
        version = data.get("version") if isinstance(data, Mapping) else None
        if version != STATE_VERSION:
            raise StorageError(f"rule state: unsupported version {version!r}")
        try:
            skus = {
                str(sku_id): SkuMemory(
                    baseline=_decimal(memory["baseline"]),
                    at_target=_bool(memory.get("at_target", False)),
                    low=_bool(memory.get("low", False)),
                )
                for sku_id, memory in _mapping(data.get("skus", {})).items()
            }
            sent = {
                str(key): SentAlert(
                    at=datetime.fromisoformat(str(entry["at"])),
                    old=_decode(entry.get("old")),
                    new=_decode(entry.get("new")),
                )
                for key, entry in _mapping(data.get("sent", {})).items()
            }
            return cls(
                seen=_bool(data.get("seen", False)),
                failing=_bool(data.get("failing", False)),
                skus=skus,
                sent=sent,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StorageError(f"rule state: malformed JSON ({type(exc).__name__})") from exc


def _mapping(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError("expected an object")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected a boolean")
    return value


def _decimal(value: object) -> Decimal:
    if not isinstance(value, str):
        raise TypeError("prices are stored as strings")
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise ValueError("not a decimal number") from exc


def _encode(value: AlertValue) -> str | int | None:
    # Prices as strings ("29.89"), stock counts as JSON integers.
    return str(value) if isinstance(value, Decimal) else value


def _decode(value: object) -> AlertValue:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("alert values are prices or counts, not booleans")
    if isinstance(value, int):
        return value
    return _decimal(value)
