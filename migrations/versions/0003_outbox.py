"""Notification outbox and the alert rules' per-item state.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03 00:00:00

Tables ``notifications`` (the outbox, see ``monitor/db/models.py``
for the life cycle of a row) and ``rule_states``. Plain SQLAlchemy types,
as in 0001: ``UtcDateTime`` is ``TIMESTAMP WITH TIME ZONE`` / SQLite
``DATETIME``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, *, nullable: bool) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", KEY, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=True),
        sa.Column("poll_id", sa.BigInteger(), nullable=True),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("kinds", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("digest", sa.Boolean(), nullable=False),
        sa.Column("digest_id", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("due_at", nullable=False),
        _ts("next_attempt_at", nullable=False),
        _ts("sent_at", nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        _ts("lease_expires_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint("key", name="uq_notifications_key"),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.item_id"],
            name="fk_notifications_item_id_items",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["poll_id"], ["polls.id"], name="fk_notifications_poll_id_polls", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["digest_id"],
            ["notifications.id"],
            name="fk_notifications_digest_id_notifications",
            ondelete="SET NULL",
        ),
    )
    op.create_index(
        "ix_notifications_state_next_attempt_at", "notifications", ["state", "next_attempt_at"]
    )
    op.create_index("ix_notifications_target_state", "notifications", ["target", "state"])
    op.create_index("ix_notifications_item_id", "notifications", ["item_id"])

    op.create_table(
        "rule_states",
        sa.Column("item_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("item_id", name="pk_rule_states"),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.item_id"], name="fk_rule_states_item_id_items", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("rule_states")
    op.drop_index("ix_notifications_item_id", table_name="notifications")
    op.drop_index("ix_notifications_target_state", table_name="notifications")
    op.drop_index("ix_notifications_state_next_attempt_at", table_name="notifications")
    op.drop_table("notifications")
