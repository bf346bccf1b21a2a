"""The offer's state as type-2 slowly changing dimension rows: read it, rebuild it, update it.

An offer is spread over three tables (see :mod:`monitor.db.models`):
``item_states`` (one row for the item-level facts), ``sku_states`` (one row
per SKU, keyed by ``sku_id``) and ``tier_states`` (one row per quantity
break, keyed by ``min_qty``). A row is valid from ``valid_from`` up to, not
including, ``valid_to``; the current rows have ``valid_to IS NULL``.

:func:`plan_offer` compares the polled offer with the open rows in Python
(no I/O) and lists only what differs: for each changed or removed key the
open row is closed (``valid_to`` = poll time), for each changed or new key
a row is opened. An unchanged offer lists nothing. :func:`apply_offers`
writes the plans of many items at once, a few statements per table, and
:func:`load_open_states` reads the open rows of many items in three
queries; :func:`write_offer` and :func:`load_open_state` are the same for
one item.

:func:`fingerprint` digests everything the open rows hold; the store keeps
the digest of the current state in ``items.state_hash``, so an unchanged
poll is recognized without reading the state rows at all. The digest is only
a shortcut: a mismatch (or NULL) means "compare the rows", which finds
whether anything really changed.

The descriptive fields that are not history (currency, unit, URL, image,
shop) come from the ``items`` row, so an offer rebuilt for an earlier time
shows today's values of those. SKUs come back in the order of ``position``
(their index in the offer when their row was written), then ``sku_id``:
the polled order as long as SKUs are not added or removed in the middle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.db.models import Item, ItemState, SkuState, TierState
from monitor.domain import Offer, Sku, Tier

__all__ = [
    "ItemFacts",
    "OfferWrites",
    "OpenState",
    "apply_offers",
    "fingerprint",
    "load_offer_at",
    "load_open_state",
    "load_open_states",
    "plan_offer",
    "write_offer",
]

ITEMS = cast(sa.Table, Item.__table__)
ITEM_STATES = cast(sa.Table, ItemState.__table__)
SKU_STATES = cast(sa.Table, SkuState.__table__)
TIER_STATES = cast(sa.Table, TierState.__table__)

#: Most ids in one IN list (SQLite builds before 3.32 allow 999 parameters).
_CHUNK = 500
_JSON = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """The item-level facts historized in ``item_states``."""

    title: str
    sold_out: bool
    stock: int | None
    price_min: Decimal
    price_max: Decimal

    @classmethod
    def of(cls, offer: Offer) -> ItemFacts:
        return cls(offer.title, offer.sold_out, offer.stock, offer.price_min, offer.price_max)


@dataclass(frozen=True, slots=True)
class OpenState:
    """The current (open) state rows of one item, with their row ids."""

    item: tuple[int, ItemFacts] | None = None
    skus: dict[str, tuple[int, Sku]] = field(default_factory=dict)
    tiers: dict[int, tuple[int, Tier]] = field(default_factory=dict)

    def to_offer(self, item: sa.Row[Any]) -> Offer | None:
        """The stored offer, given the item's ``items`` row; ``None`` before any success."""
        if self.item is None:
            return None
        skus = [sku for _, sku in self.skus.values()]
        tiers = sorted((tier for _, tier in self.tiers.values()), key=lambda t: t.min_qty)
        return _offer(item, self.item[1], skus, tiers)


def fingerprint(offer: Offer) -> str:
    """A digest of the offer's historized state: facts, SKUs by id, tiers by quantity.

    Equal amounts give equal digests whatever their scale (30.00 and 30).
    SKU order is not part of it, as it is not part of the comparison.
    """
    facts = (
        offer.title,
        offer.sold_out,
        offer.stock,
        _canonical(offer.price_min),
        _canonical(offer.price_max),
    )
    skus = [
        (s.sku_id, s.spec_id, s.name, _canonical(s.price), s.stock, s.sold_out)
        for s in sorted(offer.skus, key=lambda s: s.sku_id)
    ]
    tiers = [(t.min_qty, _canonical(t.price)) for t in sorted(offer.tiers, key=lambda t: t.min_qty)]
    # JSON keeps null, booleans, numbers and strings apart, so equal text means equal state.
    return hashlib.blake2b(_JSON.encode((facts, skus, tiers)), digest_size=16).hexdigest()


def _canonical(amount: Decimal) -> str:
    return str(amount.normalize())


def _offer(
    item: sa.Row[Any], facts: ItemFacts, skus: Sequence[Sku], tiers: Sequence[Tier]
) -> Offer:
    return Offer(
        item_id=item.item_id,
        title=facts.title,
        currency=item.currency or "",
        unit=item.unit,
        url=item.url or "",
        image=item.image,
        shop_name=item.shop_name,
        shop_url=item.shop_url,
        sold_out=facts.sold_out,
        stock=facts.stock,
        price_min=facts.price_min,
        price_max=facts.price_max,
        skus=tuple(skus),
        tiers=tuple(tiers),
    )


def _valid(table: sa.Table, at: datetime | None) -> sa.ColumnElement[bool]:
    """Rows of ``:item_id`` valid now (``at`` None) or at ``at``."""
    clause = table.c.item_id == sa.bindparam("item_id")
    if at is None:
        return sa.and_(clause, table.c.valid_to.is_(None))
    return sa.and_(
        clause,
        table.c.valid_from <= sa.bindparam("at", type_=table.c.valid_from.type),
        sa.or_(
            table.c.valid_to.is_(None),
            table.c.valid_to > sa.bindparam("at", type_=table.c.valid_to.type),
        ),
    )


def _facts_query(at: datetime | None) -> sa.Select[Any]:
    t = ITEM_STATES
    cols = (t.c.id, t.c.title, t.c.sold_out, t.c.stock, t.c.price_min, t.c.price_max)
    return sa.select(*cols).where(_valid(t, at))


def _skus_query(at: datetime | None) -> sa.Select[Any]:
    t = SKU_STATES
    cols = (t.c.id, t.c.sku_id, t.c.spec_id, t.c.name, t.c.price, t.c.stock, t.c.sold_out)
    return sa.select(*cols).where(_valid(t, at)).order_by(t.c.position, t.c.sku_id)


def _tiers_query(at: datetime | None) -> sa.Select[Any]:
    t = TIER_STATES
    cols = (t.c.id, t.c.min_qty, t.c.price)
    return sa.select(*cols).where(_valid(t, at)).order_by(t.c.min_qty)


_OPEN_FACTS = _facts_query(None)
_OPEN_SKUS = _skus_query(None)
_OPEN_TIERS = _tiers_query(None)
_ITEM = sa.select(ITEMS).where(ITEMS.c.item_id == sa.bindparam("item_id"))


_OPEN_MANY = {
    table.name: sa.select(*cols).where(
        table.c.item_id.in_(sa.bindparam("ids", expanding=True)), table.c.valid_to.is_(None)
    )
    for table, cols in (
        (
            ITEM_STATES,
            (ITEM_STATES.c.item_id, *_OPEN_FACTS.selected_columns),
        ),
        (SKU_STATES, (SKU_STATES.c.item_id, SKU_STATES.c.position, *_OPEN_SKUS.selected_columns)),
        (TIER_STATES, (TIER_STATES.c.item_id, *_OPEN_TIERS.selected_columns)),
    )
}


def _close_stmt(table: sa.Table) -> sa.Update:
    return (
        sa.update(table)
        .where(table.c.id == sa.bindparam("row_id"))
        .values(valid_to=sa.bindparam("at", type_=table.c.valid_to.type))
    )


_STATE_TABLES = (ITEM_STATES, SKU_STATES, TIER_STATES)
_INSERT = {table.name: sa.insert(table) for table in _STATE_TABLES}
_CLOSE = {table.name: _close_stmt(table) for table in _STATE_TABLES}


def _facts(row: sa.Row[Any]) -> ItemFacts:
    return ItemFacts(row.title, row.sold_out, row.stock, row.price_min, row.price_max)


def _sku(row: sa.Row[Any]) -> Sku:
    return Sku(row.sku_id, row.spec_id, row.name, row.price, row.stock, row.sold_out)


def load_open_state(conn: Connection, item_id: int) -> OpenState:
    """The open state rows of ``item_id`` (three indexed queries)."""
    params = {"item_id": item_id}
    facts = conn.execute(_OPEN_FACTS, params).first()
    if facts is None:
        return OpenState()
    skus = {row.sku_id: (row.id, _sku(row)) for row in conn.execute(_OPEN_SKUS, params)}
    tiers = {
        row.min_qty: (row.id, Tier(row.min_qty, row.price))
        for row in conn.execute(_OPEN_TIERS, params)
    }
    return OpenState(item=(facts.id, _facts(facts)), skus=skus, tiers=tiers)


def load_open_states(conn: Connection, item_ids: Sequence[int]) -> dict[int, OpenState]:
    """:func:`load_open_state` of each item (three queries per 500 items).

    SKUs come in the same order as :func:`load_open_state` gives them.
    """
    states: dict[int, OpenState] = {}
    ids = list(dict.fromkeys(item_ids))
    for start in range(0, len(ids), _CHUNK):
        params = {"ids": ids[start : start + _CHUNK]}
        facts = {row.item_id: row for row in conn.execute(_OPEN_MANY["item_states"], params)}
        skus: dict[int, list[sa.Row[Any]]] = {}
        for row in conn.execute(_OPEN_MANY["sku_states"], params):
            skus.setdefault(row.item_id, []).append(row)
        tiers: dict[int, list[sa.Row[Any]]] = {}
        for row in conn.execute(_OPEN_MANY["tier_states"], params):
            tiers.setdefault(row.item_id, []).append(row)
        for item_id, fact in facts.items():
            sku_rows = sorted(skus.get(item_id, ()), key=lambda r: (r.position, r.sku_id))
            tier_rows = sorted(tiers.get(item_id, ()), key=lambda r: r.min_qty)
            states[item_id] = OpenState(
                item=(fact.id, _facts(fact)),
                skus={row.sku_id: (row.id, _sku(row)) for row in sku_rows},
                tiers={row.min_qty: (row.id, Tier(row.min_qty, row.price)) for row in tier_rows},
            )
    return states


def load_offer_at(conn: Connection, item_id: int, at: datetime | None = None) -> Offer | None:
    """The offer as stored now (``at`` None) or as it was at ``at``; None if unknown then."""
    item = conn.execute(_ITEM, {"item_id": item_id}).first()
    if item is None:
        return None
    if at is None:
        return load_open_state(conn, item_id).to_offer(item)
    params = {"item_id": item_id, "at": at}
    facts = conn.execute(_facts_query(at), params).first()
    if facts is None:
        return None
    skus = [_sku(row) for row in conn.execute(_skus_query(at), params)]
    tiers = [Tier(row.min_qty, row.price) for row in conn.execute(_tiers_query(at), params)]
    return _offer(item, _facts(facts), skus, tiers)


@dataclass(frozen=True, slots=True)
class OfferWrites:
    """What :func:`plan_offer` found to write for one item: rows to close, rows to open."""

    at: datetime
    close: dict[str, list[int]]
    open: dict[str, list[dict[str, Any]]]

    @property
    def empty(self) -> bool:
        return not any(self.close.values()) and not any(self.open.values())


def plan_offer(item_id: int, at: datetime, state: OpenState, offer: Offer) -> OfferWrites:
    """The rows to close and to open so that the open rows describe ``offer`` (no I/O)."""
    close: dict[str, list[int]] = {table.name: [] for table in _STATE_TABLES}
    opened: dict[str, list[dict[str, Any]]] = {table.name: [] for table in _STATE_TABLES}
    facts = ItemFacts.of(offer)
    if state.item is None or state.item[1] != facts:
        if state.item is not None:
            close[ITEM_STATES.name].append(state.item[0])
        opened[ITEM_STATES.name].append(
            {"item_id": item_id, "valid_from": at, "valid_to": None, **_asdict(facts)}
        )

    polled_skus = {sku.sku_id: sku for sku in offer.skus}
    close[SKU_STATES.name] = [
        row_id for key, (row_id, old) in state.skus.items() if polled_skus.get(key) != old
    ]
    opened[SKU_STATES.name] = [
        {
            "item_id": item_id,
            "sku_id": sku.sku_id,
            "spec_id": sku.spec_id,
            "name": sku.name,
            "price": sku.price,
            "stock": sku.stock,
            "sold_out": sku.sold_out,
            "position": position,
            "valid_from": at,
            "valid_to": None,
        }
        for position, sku in enumerate(offer.skus)
        if (known := state.skus.get(sku.sku_id)) is None or known[1] != sku
    ]

    polled_tiers = {tier.min_qty: tier for tier in offer.tiers}
    close[TIER_STATES.name] = [
        row_id for key, (row_id, old) in state.tiers.items() if polled_tiers.get(key) != old
    ]
    opened[TIER_STATES.name] = [
        {
            "item_id": item_id,
            "min_qty": tier.min_qty,
            "price": tier.price,
            "valid_from": at,
            "valid_to": None,
        }
        for tier in offer.tiers
        if (known_tier := state.tiers.get(tier.min_qty)) is None or known_tier[1] != tier
    ]
    return OfferWrites(at, close, opened)


def apply_offers(conn: Connection, plans: Iterable[OfferWrites]) -> None:
    """Write the plans of distinct items: per table, every close, then every insert.

    Closing first keeps the one-open-row-per-key index satisfied.
    """
    plans = list(plans)
    for table in _STATE_TABLES:
        name = table.name
        closes = [
            {"row_id": row_id, "at": plan.at} for plan in plans for row_id in plan.close[name]
        ]
        if closes:
            conn.execute(_CLOSE[name], closes)
        rows = [row for plan in plans for row in plan.open[name]]
        if rows:
            conn.execute(_INSERT[name], rows)


def write_offer(
    conn: Connection, item_id: int, at: datetime, state: OpenState, offer: Offer
) -> bool:
    """Close and open state rows so that the open rows describe ``offer``.

    Returns whether anything was written.
    """
    plan = plan_offer(item_id, at, state, offer)
    if plan.empty:
        return False
    apply_offers(conn, [plan])
    return True


def _asdict(facts: ItemFacts) -> dict[str, Any]:
    return {
        "title": facts.title,
        "sold_out": facts.sold_out,
        "stock": facts.stock,
        "price_min": facts.price_min,
        "price_max": facts.price_max,
    }
