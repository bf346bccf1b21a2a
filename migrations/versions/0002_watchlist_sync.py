"""Scheduling: an index for claiming due items of the watchlist.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 00:00:00

``monitor run`` claims the most overdue watched items with
``WHERE watched AND next_poll_at <= now ORDER BY next_poll_at``.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_items_watched_next_poll_at", "items", ["watched", "next_poll_at"])


def downgrade() -> None:
    op.drop_index("ix_items_watched_next_poll_at", table_name="items")
