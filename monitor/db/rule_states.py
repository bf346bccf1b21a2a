"""Reading and writing the rules' per-item memory (table ``rule_states``).

Every function takes the connection of the poll's transaction: the state
the rules return is saved together with the snapshot and the outbox rows
it produced, so a rolled-back poll also forgets what it would have
remembered. The batch forms read the states of many items in one query and
write them with one executemany; ``updated_at`` is when the state was last
written.

A state read (or written) is kept, per item, with the exact JSON text it
came from, so reading the same text again reuses it instead of decoding it
anew. That is safe because a :class:`RuleState` cannot change and the same
text always means the same state; a text that differs in any character is
decoded as usual. :data:`kept` is that store (a :class:`Kept`); replacing it
with ``Kept(0)`` keeps nothing, so every read decodes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from monitor.alerts.state import RuleState
from monitor.db.engine import is_sqlite
from monitor.db.models import RuleStateRow
from monitor.errors import StorageError

__all__ = [
    "Kept",
    "StoredState",
    "kept",
    "load_rule_state",
    "load_rule_states",
    "save_rule_state",
    "save_rule_states",
]

RULE_STATES = cast(sa.Table, RuleStateRow.__table__)

_SELECT_ONE = sa.select(RULE_STATES.c.state).where(RULE_STATES.c.item_id == sa.bindparam("item_id"))
_SELECT_MANY = sa.select(RULE_STATES.c.item_id, RULE_STATES.c.state).where(
    RULE_STATES.c.item_id.in_(sa.bindparam("ids", expanding=True))
)
#: Most items read by one SELECT (SQLite builds before 3.32 allow 999 parameters).
_CHUNK = 500
_JSON = msgspec.json.Decoder()
#: Most items whose last read or written state is kept (see the module docstring).
_KEPT = 4096


def _upsert(dialect: Any) -> sa.Insert:
    insert = dialect.insert(RULE_STATES)
    return cast(
        sa.Insert,
        insert.on_conflict_do_update(
            index_elements=["item_id"],
            set_={"state": insert.excluded.state, "updated_at": insert.excluded.updated_at},
        ),
    )


_UPSERT = {"sqlite": _upsert(sqlite), "postgresql": _upsert(postgresql)}


class StoredState:
    """A state as read: the :class:`RuleState` and the JSON object it was read from.

    ``data`` lets a caller tell whether a new state would store anything
    different (``new.to_json() == stored.data``) without encoding it.
    """

    __slots__ = ("_as_read", "data", "state")

    def __init__(
        self, state: RuleState, data: dict[str, Any] | None, *, as_read: bool | None = None
    ) -> None:
        self.state = state
        self.data = data
        # Whether ``state.to_json() == data``; None until first asked.
        self._as_read = as_read

    def unchanged(self, state: RuleState) -> bool:
        """Whether saving ``state`` would write exactly what is stored."""
        if self.data is None:
            return False
        if state is self.state:
            # The state as read (the rules had nothing to change): it is stored
            # as is, unless the stored JSON was written differently (then a save
            # rewrites it in the current form).
            if self._as_read is None:
                self._as_read = state.to_json() == self.data
            return self._as_read
        return state.to_json() == self.data


class Kept:
    """The last state read or written per item, with its exact JSON text.

    At most ``size`` items are kept; ``Kept(0)`` keeps none.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._states: dict[int, tuple[str, StoredState]] = {}
        self._lock = threading.Lock()

    def get(self, item_id: int, text: str) -> StoredState | None:
        kept = self._states.get(item_id)
        if kept is not None and kept[0] == text:
            return kept[1]
        return None

    def put(self, item_id: int, text: str, stored: StoredState) -> None:
        if self._size <= 0:
            return
        with self._lock:
            states = self._states
            if item_id not in states and len(states) >= self._size:
                # The item kept last goes. Items are polled in turn, so with more
                # items than room, dropping the oldest would keep each one just
                # until before its next poll (nothing ever found); this way most
                # of the kept items stay and are found on every round.
                states.popitem()
            states[item_id] = (text, stored)

    def clear(self) -> None:
        with self._lock:
            self._states.clear()


#: The states kept by :func:`load_rule_states` and friends (see the module docstring).
kept = Kept(_KEPT)


def _read(item_id: int, text: str) -> StoredState:
    stored = kept.get(item_id, text)
    if stored is None:
        stored = _decode(item_id, text)
        kept.put(item_id, text, stored)
    return stored


def _decode(item_id: int, text: str) -> StoredState:
    try:
        # msgspec is about three times as fast as json.loads (the states hold no
        # floats); what it refuses, json gets to judge.
        data = _JSON.decode(text)
    except msgspec.DecodeError:
        try:
            data = json.loads(text)
        except ValueError:
            raise StorageError(f"rule state of item {item_id}: not JSON") from None
    if not isinstance(data, dict):
        raise StorageError(f"rule state of item {item_id}: not a JSON object")
    return StoredState(RuleState.from_json(data), data)


def _encode(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def load_rule_state(conn: Connection, item_id: int) -> RuleState:
    """The stored state of ``item_id``; a fresh :class:`RuleState` if there is none.

    Raises :class:`StorageError` if the stored JSON cannot be read.
    """
    text = conn.execute(_SELECT_ONE, {"item_id": item_id}).scalar()
    if text is None:
        return RuleState()
    return _read(item_id, text).state


def load_rule_states(conn: Connection, item_ids: Iterable[int]) -> dict[int, StoredState]:
    """The stored states of ``item_ids`` (one query per 500); items without one are absent.

    Raises :class:`StorageError` if a stored JSON cannot be read.
    """
    ids = list(dict.fromkeys(item_ids))
    found: dict[int, StoredState] = {}
    for start in range(0, len(ids), _CHUNK):
        for item_id, text in conn.execute(_SELECT_MANY, {"ids": ids[start : start + _CHUNK]}):
            found[item_id] = _read(item_id, text)
    return found


def save_rule_state(conn: Connection, item_id: int, state: RuleState, now: datetime) -> None:
    """Store ``state`` as the memory of ``item_id`` (insert or replace)."""
    save_rule_states(conn, [(item_id, state, now)])


def save_rule_states(conn: Connection, states: Sequence[tuple[int, RuleState, datetime]]) -> None:
    """Store each ``(item_id, state, now)`` (insert or replace), in one executemany."""
    if not states:
        return
    statement = _UPSERT["sqlite" if is_sqlite(conn) else "postgresql"]
    written = []
    for item_id, state, _ in states:
        data = state.to_json()
        written.append((item_id, _encode(data), StoredState(state, data, as_read=True)))
    conn.execute(
        statement,
        [
            {"item_id": item_id, "state": text, "updated_at": now}
            for (item_id, text, _), (_, _, now) in zip(written, states, strict=True)
        ],
    )
    for item_id, text, stored in written:
        # Should the transaction roll back, the stored text differs and is decoded.
        kept.put(item_id, text, stored)
