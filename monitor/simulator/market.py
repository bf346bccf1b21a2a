"""How the simulated TMAPI's items change: seeded drift, and a market that moves as it is polled.

:func:`evolve_item` is one step of random but seeded change, as time would
make it (:meth:`SimulatedTmapi.evolve <monitor.simulator.server.SimulatedTmapi.evolve>`).

:class:`Market` makes items move by themselves (``SimulatedTmapi(market=True)``):
every :data:`MARKET_EVERY`-th successful request for an item applies that
item's next supplier move *before* the answer is rendered, so the poll that
triggered it sees it. The moves follow a cycle the default alert rules
report (``price_drop``, ``sold_out``, ``back_in_stock``, ``tier_change``):

1. ``price``: a promotion: one SKU (each in turn, in a seeded order,
   preferring SKUs in stock) gets 5-15 % cheaper; a single-spec item,
   whose price is its quantity breaks, gets every break 5-15 % cheaper;
2. ``sold_out``: that SKU (or the single-spec item) sells out;
3. ``restock``: it is restocked with its initial stock;
4. ``tiers``: the largest quantity break gets 3-8 % cheaper (items that
   have breaks besides a single-spec item's one-piece price);
5. ``price``: the promotion ends: the SKU's price and the breaks rise back
   to what they were before the cycle, unless a script changed them since.

A move that would change nothing (a SKU already sold out, an item without
quantity breaks, a price of 0.01 that cannot be cut) gives way to the next
one, so every move changes the answer. Cuts round down to the cent, so a
cut is never less than it says, and no price goes below 0.01 nor stock
below 0. Each item's moves come from a generator seeded with the
simulator's seed and the item's ID: they depend on how many requests that
item got, never on the clock or on the other items.

The alert rules measure a drop from the last price they told, and the end
of a promotion is a rise (not alerted by default), so a SKU cut again
later alerts only when the cut goes deeper; the other SKUs, sell-outs,
restocks and quantity breaks alert every cycle.

Pure state changes on :class:`~monitor.simulator.model.SimItem`; no I/O, no
clock, no locking (the simulator holds its lock around every call).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal

from monitor.simulator.model import CENT, Event, SimItem, SimSku, money

__all__ = ["MARKET_EVERY", "MOVES", "Market", "evolve_item"]

#: An item makes its next move on every this many successful requests for it.
MARKET_EVERY = 2
#: The moves of one cycle, in order (see the module docstring).
MOVES = ("price_cut", "sold_out", "restock", "tier_cut", "price_rise")
_LOG_SIZE = 10_000

Tiers = list[tuple[int, Decimal]]


def _scaled(price: Decimal, factor: Decimal) -> Decimal:
    return max(CENT, (price * factor).quantize(CENT))


def _cut(price: Decimal, pct: int) -> Decimal:
    """``price`` less at least ``pct`` %, to the cent, never below 0.01."""
    return max(CENT, (price * (100 - pct) / 100).quantize(CENT, rounding=ROUND_DOWN))


def _move(old: Decimal, new: Decimal) -> str:
    return f"{money(old)} -> {money(new)} ({(new - old) * 100 / old:+.1f} %)"


def evolve_item(item: SimItem, rng: random.Random) -> list[Event]:
    """One step of seeded change: price moves of 1-5 %, falling stock, occasional
    sell-out, restock, tier change, delisting (and relisting)."""
    events: list[Event] = []
    iid = item.item_id
    if item.delisted:
        if rng.random() < 0.3:
            item.delisted = False
            events.append(Event(iid, "relist", None, "listed again"))
    elif rng.random() < 0.01:
        item.delisted = True
        events.append(Event(iid, "delist", None, "delisted"))
    else:
        if rng.random() < 0.3:
            pct = rng.randint(1, 5) * rng.choice((-1, 1))
            factor = 1 + Decimal(pct) / 100
            targets = item.skus if item.tiers or rng.random() < 0.5 else [rng.choice(item.skus)]
            for sku in targets:
                sku.price = _scaled(sku.price, factor)
            if item.tiers and targets is item.skus:
                item.tiers = [(q, _scaled(p, factor)) for q, p in item.tiers]
            one = targets[0].sku_id if len(targets) == 1 else None
            events.append(Event(iid, "price", one, f"{pct:+d} %"))
        holders: list[SimSku | SimItem] = list(item.skus) or [item]
        for holder in holders:
            sku_id = holder.sku_id if isinstance(holder, SimSku) else None
            if holder.stock == 0:
                if rng.random() < 0.3:
                    holder.stock = holder.initial_stock
                    events.append(Event(iid, "restock", sku_id, f"stock {holder.stock}"))
            elif rng.random() < 0.05:
                holder.stock = 0
                events.append(Event(iid, "sold_out", sku_id, "stock 0"))
            elif rng.random() < 0.5:
                holder.stock -= rng.randint(1, max(1, holder.stock // 10))
                events.append(Event(iid, "stock", sku_id, f"stock {holder.stock}"))
        if item.tiers and rng.random() < 0.05:
            index = rng.randrange(len(item.tiers))
            qty, price = item.tiers[index]
            item.tiers[index] = (qty, _scaled(price, 1 + Decimal(rng.randint(-3, 3)) / 100))
            events.append(
                Event(iid, "tiers", None, f"tier {qty}+ now {money(item.tiers[index][1])}")
            )
    if events:
        item.version += 1
    return events


class Market:
    """The market of a simulator: each item's place in its cycle of moves.

    Call :meth:`tick` once for every successful request for an item, before
    rendering the answer; :meth:`drain` returns the moves made since the last
    call (the last 10,000 at most).
    """

    def __init__(self, seed: int, *, every: int = MARKET_EVERY) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.seed = seed
        self.every = every
        self._items: dict[int, _ItemMarket] = {}
        self._log: deque[Event] = deque(maxlen=_LOG_SIZE)

    def tick(self, item: SimItem) -> Event | None:
        """Count one successful request for ``item``; on every ``every``-th, make its next move.

        A move bumps ``item.version`` (so cached bodies are rendered again)
        and is returned; ``None`` when this request moves nothing.
        """
        market = self._items.get(item.item_id)
        if market is None:
            market = self._items[item.item_id] = _ItemMarket(self.seed, item)
        market.requests += 1
        if market.requests % self.every:
            return None
        event = market.next_move(item)
        if event is not None:
            item.version += 1
            self._log.append(event)
        return event

    def drain(self) -> list[Event]:
        """The moves made since the last call, oldest first."""
        events = list(self._log)
        self._log.clear()
        return events


class _ItemMarket:
    """One item's cycle: where it is, which SKU is on promotion, what to restore."""

    def __init__(self, seed: int, item: SimItem) -> None:
        self.rng = random.Random(f"tmapi-sim:{seed}:{item.item_id}:market")
        self.order = [sku.sku_id for sku in item.skus]
        self.rng.shuffle(self.order)
        self.requests = 0
        self.step = 0
        self.cycle = 0
        self.target: str | None = None  # the SKU on promotion; None: the single-spec item
        self.before: Decimal | None = None  # its price before the cut
        self.cut: Decimal | None = None  # the price the cut set
        self.tiers_before: Tiers | None = None  # the breaks before this cycle changed them
        self.tiers_set: Tiers | None = None  # the breaks as this cycle last set them

    def next_move(self, item: SimItem) -> Event | None:
        """Make the next move that changes something (at most one cycle's worth of tries)."""
        for _ in MOVES:
            move = self._moves[self.step]
            self.step = (self.step + 1) % len(MOVES)
            event = move(self, item)
            if event is not None:
                return event
        return None

    def _holder(self, item: SimItem) -> SimSku | SimItem:
        return item.sku(self.target) if self.target is not None else item

    def _choose(self, item: SimItem) -> None:
        """Start a cycle: the next SKU in the seeded order, the first in stock if any is."""
        self.before = self.cut = self.tiers_before = self.tiers_set = None
        self.target = None
        if not self.order:
            return
        by_id = {sku.sku_id: sku for sku in item.skus}
        count = len(self.order)
        turn = [self.order[(self.cycle + i) % count] for i in range(count)]
        self.cycle += 1
        self.target = next((s for s in turn if by_id[s].stock > 0), turn[0])

    def _set_tiers(self, item: SimItem, tiers: Tiers) -> None:
        if self.tiers_before is None or item.tiers != self.tiers_set:
            self.tiers_before = list(item.tiers)
        item.tiers = tiers
        self.tiers_set = list(tiers)

    def _price_cut(self, item: SimItem) -> Event | None:
        self._choose(item)
        pct = self.rng.randint(5, 15)
        if self.target is None:
            tiers = [(qty, _cut(price, pct)) for qty, price in item.tiers]
            if not tiers or tiers == item.tiers:
                return None
            old = item.tiers[0][1]
            self._set_tiers(item, tiers)
            return Event(item.item_id, "price", None, _move(old, tiers[0][1]))
        sku = item.sku(self.target)
        price = _cut(sku.price, pct)
        if price == sku.price:
            return None
        self.before, self.cut, sku.price = sku.price, price, price
        return Event(item.item_id, "price", sku.sku_id, _move(self.before, price))

    def _sold_out(self, item: SimItem) -> Event | None:
        holder = self._holder(item)
        if holder.stock == 0:
            return None
        holder.stock = 0
        return Event(item.item_id, "sold_out", self.target, "stock 0")

    def _restock(self, item: SimItem) -> Event | None:
        holder = self._holder(item)
        if holder.stock > 0:
            return None
        holder.stock = holder.initial_stock or 100
        return Event(item.item_id, "restock", self.target, f"stock {holder.stock}")

    def _tier_cut(self, item: SimItem) -> Event | None:
        pct = self.rng.randint(3, 8)
        if not item.tiers or (self.target is None and len(item.tiers) < 2):
            return None
        qty, old = item.tiers[-1]
        new = _cut(old, pct)
        if new == old:
            return None
        self._set_tiers(item, [*item.tiers[:-1], (qty, new)])
        return Event(item.item_id, "tiers", None, f"tier {qty}+ {_move(old, new)}")

    def _price_rise(self, item: SimItem) -> Event | None:
        details: list[str] = []
        kind = "tiers"
        if self.target is not None and self.before is not None:
            sku = item.sku(self.target)
            if sku.price == self.cut:
                details.append(_move(sku.price, self.before))
                sku.price, kind = self.before, "price"
        if self.tiers_before is not None and item.tiers == self.tiers_set:
            old, item.tiers = item.tiers, self.tiers_before
            changed = [(q, p, n) for (q, p), (_, n) in zip(old, item.tiers, strict=True) if p != n]
            details.extend(f"tier {q}+ {_move(p, n)}" for q, p, n in changed)
            if self.target is None and changed and changed[0][0] == item.tiers[0][0]:
                kind = "price"  # a single-spec item's one-piece price is its first break
        target = self.target
        self.before = self.cut = self.tiers_before = self.tiers_set = None
        if not details:
            return None
        return Event(item.item_id, kind, target, "promotion over: " + ", ".join(details))

    _moves: tuple[Callable[[_ItemMarket, SimItem], Event | None], ...] = (
        _price_cut,
        _sold_out,
        _restock,
        _tier_cut,
        _price_rise,
    )
