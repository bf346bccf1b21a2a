"""History views for SQL users: price_history, latest_prices, alert_log.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04 00:00:00

Plain ``CREATE VIEW`` statements, the same text on SQLite and PostgreSQL
(documented column by column in ``docs/schema.md``). Views hold no data, so
the upgrade is instant on any database size.

The views are not part of the SQLAlchemy metadata (``alembic check`` only
compares tables). ``monitor/db/views.py`` describes their columns for
typed queries and a test keeps the two in step.

A later migration that rebuilds ``items``, ``sku_states`` or
``notifications`` with SQLite batch mode (copy, drop, rename) must drop
these views first and create them again afterwards: SQLite refuses to
rename a table while a view refers to a table that is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: One row per SKU state: the SKU's price, stock and sold-out flag from
#: ``valid_from`` up to (not including) ``valid_to``; NULL ``valid_to`` = now.
PRICE_HISTORY = """
CREATE VIEW price_history AS
SELECT s.item_id    AS item_id,
       s.sku_id     AS sku_id,
       s.name       AS sku_name,
       s.price      AS price,
       s.stock      AS stock,
       s.sold_out   AS sold_out,
       s.valid_from AS valid_from,
       s.valid_to   AS valid_to
  FROM sku_states AS s
"""

#: The current row of every SKU still offered, with its item's names.
LATEST_PRICES = """
CREATE VIEW latest_prices AS
SELECT s.item_id         AS item_id,
       i.name            AS item_name,
       i.title           AS title,
       i.currency        AS currency,
       i.watched         AS watched,
       s.sku_id          AS sku_id,
       s.name            AS sku_name,
       s.price           AS price,
       s.stock           AS stock,
       s.sold_out        AS sold_out,
       s.valid_from      AS valid_from,
       i.last_success_at AS checked_at
  FROM sku_states AS s
  JOIN items AS i ON i.item_id = s.item_id
 WHERE s.valid_to IS NULL
"""

#: One row per alert per target. A row merged into a digest takes its
#: delivery state, time and error from the digest message that carried it.
ALERT_LOG = """
CREATE VIEW alert_log AS
SELECT n.id                               AS notification_id,
       n.created_at                       AS created_at,
       n.item_id                          AS item_id,
       i.name                             AS item_name,
       i.title                            AS title,
       n.poll_id                          AS poll_id,
       n.target                           AS target,
       n.kinds                            AS kinds,
       n.state                            AS state,
       COALESCE(d.state, n.state)         AS delivery_state,
       COALESCE(d.sent_at, n.sent_at)     AS sent_at,
       COALESCE(d.attempts, n.attempts)   AS attempts,
       COALESCE(d.last_error, n.last_error) AS last_error,
       n.digest_id                        AS digest_id,
       n.payload                          AS payload
  FROM notifications AS n
  LEFT JOIN items AS i ON i.item_id = n.item_id
  LEFT JOIN notifications AS d ON d.id = n.digest_id
 WHERE n.key NOT LIKE 'digest:%'
"""

VIEWS = {"price_history": PRICE_HISTORY, "latest_prices": LATEST_PRICES, "alert_log": ALERT_LOG}


def upgrade() -> None:
    for sql in VIEWS.values():
        op.execute(sql)


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
