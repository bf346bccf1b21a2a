"""Initial schema: items, SCD2 state tables, poll log, changes.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

Column types are spelled with plain SQLAlchemy types, which is the DDL the
model types (``Money`` = NUMERIC, ``UtcDateTime`` = TIMESTAMP WITH TIME ZONE /
SQLite DATETIME) produce; the migration does not depend on application code.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN = sa.text("valid_to IS NULL")


def _ts(name: str, *, nullable: bool) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _item_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["item_id"],
        ["items.item_id"],
        name=f"fk_{table}_item_id_items",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("item_id", KEY, autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("watched", sa.Boolean(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("currency", sa.String(8), nullable=True),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("image", sa.Text(), nullable=True),
        sa.Column("shop_name", sa.Text(), nullable=True),
        sa.Column("shop_url", sa.Text(), nullable=True),
        _ts("first_seen_at", nullable=False),
        _ts("last_polled_at", nullable=True),
        _ts("last_success_at", nullable=True),
        _ts("last_changed_at", nullable=True),
        sa.Column("polls_total", sa.Integer(), nullable=False),
        sa.Column("polls_failed", sa.Integer(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("unavailable_streak", sa.Integer(), nullable=False),
        sa.Column("last_error_reason", sa.String(32), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        _ts("next_poll_at", nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        _ts("lease_expires_at", nullable=True),
        sa.Column("state_hash", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("item_id", name="pk_items"),
    )
    op.create_index("ix_items_next_poll_at", "items", ["next_poll_at"])

    op.create_table(
        "item_states",
        sa.Column("id", KEY, autoincrement=True, nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("sold_out", sa.Boolean(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=True),
        sa.Column("price_min", sa.Numeric(), nullable=False),
        sa.Column("price_max", sa.Numeric(), nullable=False),
        _ts("valid_from", nullable=False),
        _ts("valid_to", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_item_states"),
        _item_fk("item_states"),
    )
    op.create_index("ix_item_states_validity", "item_states", ["item_id", "valid_to", "valid_from"])
    op.create_index(
        "uq_item_states_open",
        "item_states",
        ["item_id"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )

    op.create_table(
        "sku_states",
        sa.Column("id", KEY, autoincrement=True, nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("sku_id", sa.Text(), nullable=False),
        sa.Column("spec_id", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=True),
        sa.Column("sold_out", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        _ts("valid_from", nullable=False),
        _ts("valid_to", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sku_states"),
        _item_fk("sku_states"),
    )
    op.create_index("ix_sku_states_validity", "sku_states", ["item_id", "valid_to", "valid_from"])
    op.create_index(
        "uq_sku_states_open",
        "sku_states",
        ["item_id", "sku_id"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )

    op.create_table(
        "tier_states",
        sa.Column("id", KEY, autoincrement=True, nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("min_qty", sa.Integer(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        _ts("valid_from", nullable=False),
        _ts("valid_to", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tier_states"),
        _item_fk("tier_states"),
    )
    op.create_index("ix_tier_states_validity", "tier_states", ["item_id", "valid_to", "valid_from"])
    op.create_index(
        "uq_tier_states_open",
        "tier_states",
        ["item_id", "min_qty"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )

    op.create_table(
        "polls",
        sa.Column("id", KEY, autoincrement=True, nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        _ts("polled_at", nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_reason", sa.String(32), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_polls"),
        _item_fk("polls"),
    )
    op.create_index("ix_polls_item_id_polled_at", "polls", ["item_id", "polled_at"])

    op.create_table(
        "changes",
        sa.Column("id", KEY, autoincrement=True, nullable=False),
        sa.Column("poll_id", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        _ts("detected_at", nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("sku_id", sa.Text(), nullable=True),
        sa.Column("sku_name", sa.Text(), nullable=True),
        sa.Column("min_qty", sa.Integer(), nullable=True),
        sa.Column("old_price", sa.Numeric(), nullable=True),
        sa.Column("new_price", sa.Numeric(), nullable=True),
        sa.Column("old_stock", sa.Integer(), nullable=True),
        sa.Column("new_stock", sa.Integer(), nullable=True),
        sa.Column("pct", sa.Numeric(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_changes"),
        sa.ForeignKeyConstraint(
            ["poll_id"], ["polls.id"], name="fk_changes_poll_id_polls", ondelete="CASCADE"
        ),
        _item_fk("changes"),
    )
    op.create_index("ix_changes_item_id_detected_at", "changes", ["item_id", "detected_at"])
    op.create_index("ix_changes_poll_id", "changes", ["poll_id"])


def downgrade() -> None:
    op.drop_table("changes")
    op.drop_table("polls")
    op.drop_table("tier_states")
    op.drop_table("sku_states")
    op.drop_table("item_states")
    op.drop_index("ix_items_next_poll_at", table_name="items")
    op.drop_table("items")
