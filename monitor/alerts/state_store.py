"""Reading and writing the rules' per-item memory (table ``rule_states``).

Both functions take the connection of the poll's transaction: the state the
rules return is saved together with the snapshot and the outbox rows it
produced, so a rolled-back poll also forgets what it would have remembered.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from monitor.alerts.state import RuleState
from monitor.db.engine import is_sqlite
from monitor.db.outbox_models import RuleStateRow
from monitor.errors import StorageError

__all__ = ["load_rule_state", "save_rule_state"]

RULE_STATES = cast(sa.Table, RuleStateRow.__table__)


def load_rule_state(conn: Connection, item_id: int) -> RuleState:
    """The stored state of ``item_id``; a fresh :class:`RuleState` if there is none.

    Raises :class:`StorageError` if the stored JSON cannot be read.
    """
    text = conn.execute(
        sa.select(RULE_STATES.c.state).where(RULE_STATES.c.item_id == item_id)
    ).scalar()
    if text is None:
        return RuleState()
    try:
        data = json.loads(text)
    except ValueError:
        raise StorageError(f"rule state of item {item_id}: not JSON") from None
    if not isinstance(data, dict):
        raise StorageError(f"rule state of item {item_id}: not a JSON object")
    return RuleState.from_json(data)


def save_rule_state(conn: Connection, item_id: int, state: RuleState, now: datetime) -> None:
    """Store ``state`` as the memory of ``item_id`` (insert or replace)."""
    text = json.dumps(state.to_json(), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    insert = (sqlite.insert if is_sqlite(conn) else postgresql.insert)(RULE_STATES)
    conn.execute(
        insert.values(item_id=item_id, state=text, updated_at=now).on_conflict_do_update(
            index_elements=["item_id"], set_={"state": text, "updated_at": now}
        )
    )
