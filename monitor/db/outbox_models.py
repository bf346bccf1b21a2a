"""Tables of the alerting side: the notification outbox and the rules' memory.

Described on the same ``Base`` as :mod:`monitor.db.models`; created by the
Alembic migration ``0003``. Import this module wherever the metadata must be
complete (the migration environment, schema drift checks).

``notifications`` is the outbox. A poll that alerts inserts one row per
(alert group, target) in its own transaction; delivery claims due rows later,
outside any transaction, and records the outcome::

    pending ──sent──▶ sent
       │  └─failed──▶ pending (next_attempt_at = backoff)  … ──▶ dead (after dead_after)
    held ───(next_attempt_at reached)──▶ pending           quiet hours
    held, digest ──(digest time)──▶ merged (digest_id) + one new pending digest row

``key`` is unique: ``"{poll_id}:{target}"`` for a poll's alert group,
``"digest:{target}:{release time}"`` for a digest. ``payload`` is the JSON
list of :meth:`~monitor.alerts.model.AlertGroup.to_json` objects the message
is rendered from. ``kinds`` lists the alert kinds, comma-separated, for
status views. ``due_at`` is when the row first became deliverable (creation,
or the end of its hold): ``dead_after`` counts from there. ``last_error`` is
short and free of secrets; the target is stored by name, never by URL.
``lease_owner``/``lease_expires_at`` mark a row claimed by one worker.

``rule_states`` keeps the alert rules' per-item memory (cooldowns, streaks)
as JSON text, written in the poll transaction.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from monitor.db.models import Base, Key
from monitor.db.types import UtcDateTime

__all__ = ["NOTIFICATION_STATES", "Notification", "RuleStateRow"]

#: Every value of ``notifications.state``.
NOTIFICATION_STATES = ("pending", "held", "sent", "dead", "merged")


class Notification(Base):
    """One message to one target (see the module docstring for the life cycle)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(200))
    item_id: Mapped[int | None] = mapped_column(
        sa.BigInteger(), sa.ForeignKey("items.item_id", ondelete="SET NULL")
    )
    poll_id: Mapped[int | None] = mapped_column(
        sa.BigInteger(), sa.ForeignKey("polls.id", ondelete="SET NULL")
    )
    target: Mapped[str] = mapped_column(sa.String(64))
    kinds: Mapped[str] = mapped_column(sa.String(200))
    payload: Mapped[str] = mapped_column(sa.Text())
    state: Mapped[str] = mapped_column(sa.String(8))
    digest: Mapped[bool] = mapped_column(sa.Boolean())
    digest_id: Mapped[int | None] = mapped_column(
        sa.BigInteger(), sa.ForeignKey("notifications.id", ondelete="SET NULL")
    )
    attempts: Mapped[int] = mapped_column(sa.Integer())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    lease_owner: Mapped[str | None] = mapped_column(sa.String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        sa.UniqueConstraint("key", name="uq_notifications_key"),
        sa.Index("ix_notifications_state_next_attempt_at", "state", "next_attempt_at"),
        sa.Index("ix_notifications_target_state", "target", "state"),
        sa.Index("ix_notifications_item_id", "item_id"),
    )


class RuleStateRow(Base):
    """The alert rules' memory of one item, as JSON text."""

    __tablename__ = "rule_states"

    item_id: Mapped[int] = mapped_column(
        sa.BigInteger(),
        sa.ForeignKey("items.item_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    state: Mapped[str] = mapped_column(sa.Text())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
