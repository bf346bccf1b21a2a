"""Typed descriptions of the SQL views, for querying them with SQLAlchemy.

The views themselves are created by the Alembic migration ``0004`` (their
SQL lives there, so the migration never changes with the application). Here
each view is a :class:`sqlalchemy.Table` on a :data:`VIEWS_METADATA` of its
own, never on ``Base.metadata``: ``alembic check`` compares tables only and
must not be told to create these. A test checks that the columns below are
the columns the database reports.

Selecting through these tables is what keeps money exact: ``price`` is a
:class:`~monitor.db.types.Money` column, so on SQLite it is read through the
text rendering that turns into an exact ``Decimal``; timestamps are
:class:`~monitor.db.types.UtcDateTime`, so they come back UTC-aware.

    price_history   one row per SKU state (valid_from … valid_to)
    latest_prices   the current row of every SKU still offered, with item names
    alert_log       one row per alert per target, with its delivery state
"""

from __future__ import annotations

import sqlalchemy as sa

from monitor.db.types import Money, UtcDateTime

__all__ = ["ALERT_LOG", "LATEST_PRICES", "PRICE_HISTORY", "VIEWS_METADATA"]

#: Holds the views only; kept apart from ``Base.metadata`` on purpose.
VIEWS_METADATA = sa.MetaData()

PRICE_HISTORY = sa.Table(
    "price_history",
    VIEWS_METADATA,
    sa.Column("item_id", sa.BigInteger()),
    sa.Column("sku_id", sa.Text()),
    sa.Column("sku_name", sa.Text()),
    sa.Column("price", Money()),
    sa.Column("stock", sa.Integer()),
    sa.Column("sold_out", sa.Boolean()),
    sa.Column("valid_from", UtcDateTime()),
    sa.Column("valid_to", UtcDateTime()),
)

LATEST_PRICES = sa.Table(
    "latest_prices",
    VIEWS_METADATA,
    sa.Column("item_id", sa.BigInteger()),
    sa.Column("item_name", sa.Text()),
    sa.Column("title", sa.Text()),
    sa.Column("currency", sa.String(8)),
    sa.Column("watched", sa.Boolean()),
    sa.Column("sku_id", sa.Text()),
    sa.Column("sku_name", sa.Text()),
    sa.Column("price", Money()),
    sa.Column("stock", sa.Integer()),
    sa.Column("sold_out", sa.Boolean()),
    sa.Column("valid_from", UtcDateTime()),
    sa.Column("checked_at", UtcDateTime()),
)

ALERT_LOG = sa.Table(
    "alert_log",
    VIEWS_METADATA,
    sa.Column("notification_id", sa.BigInteger()),
    sa.Column("created_at", UtcDateTime()),
    sa.Column("item_id", sa.BigInteger()),
    sa.Column("item_name", sa.Text()),
    sa.Column("title", sa.Text()),
    sa.Column("poll_id", sa.BigInteger()),
    sa.Column("target", sa.String(64)),
    sa.Column("kinds", sa.String(200)),
    sa.Column("state", sa.String(8)),
    sa.Column("delivery_state", sa.String(8)),
    sa.Column("sent_at", UtcDateTime()),
    sa.Column("attempts", sa.Integer()),
    sa.Column("last_error", sa.String(500)),
    sa.Column("digest_id", sa.BigInteger()),
    sa.Column("payload", sa.Text()),
)
