"""Storage: SQLAlchemy models, Alembic-managed schema, and the Store that records polls.

``Store.open()`` is the entry point; see :mod:`monitor.db.store`. Engines and
schema migrations are in :mod:`monitor.db.engine`, database URLs in
:mod:`monitor.db.urls`, money and time column types in :mod:`monitor.db.types`.
"""

from __future__ import annotations

from monitor.db.engine import (
    current,
    ensure_schema,
    head_revision,
    make_engine,
    migrations_dir,
    upgrade,
    write_transaction,
)
from monitor.db.records import (
    ItemRecord,
    PollCounts,
    PollOutcome,
    PollRecord,
    PollResult,
    StoredChange,
)
from monitor.db.store import Store
from monitor.db.urls import database_url, safe_url

__all__ = [
    "ItemRecord",
    "PollCounts",
    "PollOutcome",
    "PollRecord",
    "PollResult",
    "Store",
    "StoredChange",
    "current",
    "database_url",
    "ensure_schema",
    "head_revision",
    "make_engine",
    "migrations_dir",
    "safe_url",
    "upgrade",
    "write_transaction",
]
