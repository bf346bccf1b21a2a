"""The tables, as typed SQLAlchemy models.

The schema is created and changed only by the Alembic migrations in
``migrations/versions``; these models describe the same schema for queries,
and a test checks that the two never drift apart.

History grows with changes, not with polls. ``items`` holds one mutable row
per watched item (counters, timestamps, the scheduler's lease). The state of
an offer is kept as type-2 slowly changing dimensions: ``item_states``,
``sku_states`` and ``tier_states`` rows are valid from ``valid_from`` up to
(not including) ``valid_to``, and ``valid_to IS NULL`` marks the current row.
A poll that sees something new closes the old row and opens a new one; an
unchanged poll adds one ``polls`` row and updates ``items``, nothing else.

Reading the history with SQL::

    -- current price of every SKU of an item
    SELECT sku_id, name, price FROM sku_states
     WHERE item_id = :item AND valid_to IS NULL;
    -- the same at a point in time
    SELECT sku_id, name, price FROM sku_states
     WHERE item_id = :item AND valid_from <= :t AND (valid_to IS NULL OR valid_to > :t);

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
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from monitor.db.types import Money, UtcDateTime

__all__ = [
    "NOTIFICATION_STATES",
    "Base",
    "ChangeRow",
    "Item",
    "ItemState",
    "MetaRow",
    "Notification",
    "Poll",
    "RuleStateRow",
    "SkuState",
    "TierState",
]

#: Deterministic constraint names, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: A 64-bit key that is SQLite's rowid (``INTEGER PRIMARY KEY``) on SQLite.
Key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_OPEN = sa.text("valid_to IS NULL")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _item_fk() -> sa.ForeignKey:
    return sa.ForeignKey("items.item_id", ondelete="CASCADE")


class Item(Base):
    """One 1688 item: watchlist status, descriptive fields of the last success, counters,
    and the scheduler's due time and lease.

    ``name`` is the watchlist's label for the item; ``watched`` is false for
    items polled ad hoc (``monitor check``) or removed from the watchlist
    (their history stays). ``state_hash`` is the digest of the current state
    rows (see :func:`monitor.db.scd.fingerprint`).
    """

    __tablename__ = "items"

    item_id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=False)
    name: Mapped[str | None] = mapped_column(sa.Text())
    watched: Mapped[bool] = mapped_column(sa.Boolean())
    title: Mapped[str | None] = mapped_column(sa.Text())
    currency: Mapped[str | None] = mapped_column(sa.String(8))
    unit: Mapped[str | None] = mapped_column(sa.Text())
    url: Mapped[str | None] = mapped_column(sa.Text())
    image: Mapped[str | None] = mapped_column(sa.Text())
    shop_name: Mapped[str | None] = mapped_column(sa.Text())
    shop_url: Mapped[str | None] = mapped_column(sa.Text())
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_polled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    polls_total: Mapped[int] = mapped_column(sa.Integer())
    polls_failed: Mapped[int] = mapped_column(sa.Integer())
    consecutive_failures: Mapped[int] = mapped_column(sa.Integer())
    available: Mapped[bool] = mapped_column(sa.Boolean())
    unavailable_streak: Mapped[int] = mapped_column(sa.Integer())
    last_error_reason: Mapped[str | None] = mapped_column(sa.String(32))
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    next_poll_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    lease_owner: Mapped[str | None] = mapped_column(sa.String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    state_hash: Mapped[str | None] = mapped_column(sa.String(64))

    __table_args__ = (
        sa.Index("ix_items_next_poll_at", "next_poll_at"),
        sa.Index("ix_items_watched_next_poll_at", "watched", "next_poll_at"),
    )


class ItemState(Base):
    """SCD2 of the item-level facts: title, sold-out flag, total stock, price range."""

    __tablename__ = "item_states"

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    item_id: Mapped[int] = mapped_column(sa.BigInteger(), _item_fk())
    title: Mapped[str] = mapped_column(sa.Text())
    sold_out: Mapped[bool] = mapped_column(sa.Boolean())
    stock: Mapped[int | None] = mapped_column(sa.Integer())
    price_min: Mapped[Decimal] = mapped_column(Money())
    price_max: Mapped[Decimal] = mapped_column(Money())
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        sa.Index("ix_item_states_validity", "item_id", "valid_to", "valid_from"),
        sa.Index(
            "uq_item_states_open",
            "item_id",
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        ),
    )


class SkuState(Base):
    """SCD2 per SKU. ``position`` is the SKU's index in the offer when the row was written."""

    __tablename__ = "sku_states"

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    item_id: Mapped[int] = mapped_column(sa.BigInteger(), _item_fk())
    sku_id: Mapped[str] = mapped_column(sa.Text())
    spec_id: Mapped[str | None] = mapped_column(sa.Text())
    name: Mapped[str] = mapped_column(sa.Text())
    price: Mapped[Decimal] = mapped_column(Money())
    stock: Mapped[int | None] = mapped_column(sa.Integer())
    sold_out: Mapped[bool] = mapped_column(sa.Boolean())
    position: Mapped[int] = mapped_column(sa.Integer())
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        sa.Index("ix_sku_states_validity", "item_id", "valid_to", "valid_from"),
        sa.Index(
            "uq_sku_states_open",
            "item_id",
            "sku_id",
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        ),
    )


class TierState(Base):
    """SCD2 per quantity break (keyed by ``min_qty``)."""

    __tablename__ = "tier_states"

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    item_id: Mapped[int] = mapped_column(sa.BigInteger(), _item_fk())
    min_qty: Mapped[int] = mapped_column(sa.Integer())
    price: Mapped[Decimal] = mapped_column(Money())
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        sa.Index("ix_tier_states_validity", "item_id", "valid_to", "valid_from"),
        sa.Index(
            "uq_tier_states_open",
            "item_id",
            "min_qty",
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        ),
    )


class Poll(Base):
    """The poll log: the only row an unchanged poll adds, so it is kept small.

    ``outcome`` is one of ``baseline``, ``unchanged``, ``changed``, ``failed``,
    ``unavailable``; ``error_reason`` is the short reason of a failure
    (``timeout``, ``parse``, …) and ``error_code`` the TMAPI/HTTP code.
    """

    __tablename__ = "polls"

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    item_id: Mapped[int] = mapped_column(sa.BigInteger(), _item_fk())
    polled_at: Mapped[datetime] = mapped_column(UtcDateTime())
    outcome: Mapped[str] = mapped_column(sa.String(16))
    error_reason: Mapped[str | None] = mapped_column(sa.String(32))
    error_code: Mapped[int | None] = mapped_column(sa.Integer())

    __table_args__ = (sa.Index("ix_polls_item_id_polled_at", "item_id", "polled_at"),)


class ChangeRow(Base):
    """One detected change. Prices go to ``*_price``, stock counts to ``*_stock``."""

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    poll_id: Mapped[int] = mapped_column(
        sa.BigInteger(), sa.ForeignKey("polls.id", ondelete="CASCADE")
    )
    item_id: Mapped[int] = mapped_column(sa.BigInteger(), _item_fk())
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(sa.String(32))
    sku_id: Mapped[str | None] = mapped_column(sa.Text())
    sku_name: Mapped[str | None] = mapped_column(sa.Text())
    min_qty: Mapped[int | None] = mapped_column(sa.Integer())
    old_price: Mapped[Decimal | None] = mapped_column(Money())
    new_price: Mapped[Decimal | None] = mapped_column(Money())
    old_stock: Mapped[int | None] = mapped_column(sa.Integer())
    new_stock: Mapped[int | None] = mapped_column(sa.Integer())
    pct: Mapped[Decimal | None] = mapped_column(Money())

    __table_args__ = (
        sa.Index("ix_changes_item_id_detected_at", "item_id", "detected_at"),
        sa.Index("ix_changes_poll_id", "poll_id"),
    )


class MetaRow(Base):
    """Facts about the database as a whole, one row per ``key``.

    ``poll_source``: ``tmapi`` or ``simulated``, set by the first poll ever
    recorded; polls of the other source are refused from then on.
    ``watchlist``: the item settings (rules, target names and delivery
    options, never target URLs) of the last watchlist a daemon applied, as
    JSON, so ``monitor check`` alerts the right targets without the file.
    """

    __tablename__ = "monitor_meta"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


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
