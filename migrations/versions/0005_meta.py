"""Facts about the database: the source of its polls, the last applied watchlist.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 00:00:00

Table ``monitor_meta`` (``key`` → ``value``). ``poll_source`` says whether
the polls come from the real TMAPI or from the simulator (set by the first
poll recorded; a database never mixes the two). ``watchlist`` holds the item
settings of the last watchlist a daemon applied (no target URL), read by
``monitor check`` when no watchlist file is at hand.

A database that already holds polls gets no ``poll_source`` here: its first
poll after the upgrade sets it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monitor_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_monitor_meta")),
    )


def downgrade() -> None:
    op.drop_table("monitor_meta")
