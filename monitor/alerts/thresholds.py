"""The thresholds of the alert rules, and the test for a poll with nothing to tell.

Pure functions of the rules and the offer. :mod:`monitor.alerts.rules` uses
the threshold checks (target price, low stock, price moves) to decide what
alerts; :func:`settled` and :class:`Quiet` use the same checks to recognise
the usual unchanged poll, where working the rules out in full would send
nothing and remember nothing new, so :func:`~monitor.alerts.rules.evaluate`
can return the state as it is.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from monitor.alerts.state import RuleState, SkuMemory
from monitor.domain import ChangeKind, Offer, Sku
from monitor.watchlist.model import Rules

__all__ = ["Quiet", "is_at_target", "is_low", "price_move", "same_baseline", "settled"]

_HUNDRED = Decimal(100)


def is_at_target(rules: Rules, sku: Sku) -> bool:
    """In stock at or below ``target_price`` (False when no target is set)."""
    return rules.target_price is not None and not sku.sold_out and sku.price <= rules.target_price


def is_low(rules: Rules, sku: Sku) -> bool | None:
    """Stock at or below ``low_stock``; None when the stock count is unknown."""
    if rules.low_stock is None:
        return False
    if sku.stock is None:
        return None
    return sku.stock <= rules.low_stock


def _passes(amount: Decimal, base: Decimal, pct: Decimal | None, absolute: Decimal | None) -> bool:
    """Does a move of ``amount`` (> 0) away from ``base`` pass both thresholds that are set?"""
    if pct is not None and amount * _HUNDRED < pct * base:
        return False
    return absolute is None or amount >= absolute


def price_move(
    rules: Rules, price: Decimal, base: Decimal, *, drop: bool, rise: bool
) -> ChangeKind | None:
    """The price alert a SKU at ``price`` is due, measured from ``base``; None if none."""
    if price < base and drop:
        if _passes(base - price, base, rules.price_drop_pct, rules.price_drop_abs):
            return ChangeKind.PRICE_DROP
        return None
    if price > base and rise:
        if _passes(price - base, base, rules.price_rise_pct, rules.price_rise_abs):
            return ChangeKind.PRICE_RISE
        return None
    return None


def same_baseline(a: Decimal, b: Decimal) -> bool:
    """Equal and written alike (``30`` and ``30.00`` are equal, not the same baseline)."""
    return a == b and str(a) == str(b)


def settled(rules: Rules, offer: Offer, state: RuleState, now: datetime) -> bool:
    """Would a poll of ``offer`` with no changes tell nothing and leave ``state`` as it is?

    True only when :func:`~monitor.alerts.rules.evaluate` would return no alert and a state equal to
    ``state``: seen before, no ``poll_failing`` to clear, every cooldown entry
    still running, and every SKU of the offer remembered as :class:`Quiet`
    finds it, with no other SKU remembered. False means "work it out".
    """
    if not state.seen or state.failing:
        return False
    if state.sent:
        cooldown = rules.cooldown
        for sent in state.sent.values():
            if not now - sent.at < cooldown:
                return False
    memories, skus = state.skus, offer.skus
    if len(memories) != len(skus):
        return False
    quiet = Quiet(rules)
    for sku in skus:
        memory = memories.get(sku.sku_id)
        if memory is None or not quiet(sku, memory):
            return False
    # Every SKU of the offer is remembered; with no id twice, nothing else is.
    return len(skus) < 2 or len({sku.sku_id for sku in skus}) == len(skus)


class Quiet:
    """Would the SKU rules, with no change about a SKU, tell nothing and keep its memory?

    ``quiet(sku, memory)`` is True only when :meth:`monitor.alerts.rules._Run.sku` would send no
    alert and return a memory equal to ``memory`` (same baseline digits, same
    flags). It re-checks the thresholds against the current values exactly as
    the rules do, so a target just added, or a price past a threshold whose
    alert is still due, is not quiet.
    """

    __slots__ = (
        "_drop",
        "_low_stock",
        "_price_alerts",
        "_rise",
        "_rules",
        "_target",
        "_target_price",
        "_watch_all",
    )

    def __init__(self, rules: Rules) -> None:
        kinds = rules.alert_on
        self._rules = rules
        self._drop = ChangeKind.PRICE_DROP in kinds
        self._rise = ChangeKind.PRICE_RISE in kinds
        self._price_alerts = self._drop or self._rise
        self._target_price = rules.target_price
        #: The target price when ``target_price`` alerts are on.
        self._target = rules.target_price if ChangeKind.TARGET_PRICE in kinds else None
        self._low_stock = rules.low_stock
        self._watch_all = not rules.skus

    def __call__(self, sku: Sku, memory: SkuMemory) -> bool:
        if not self._watch_all and not self._rules.watches_sku(sku.sku_id, sku.name):
            # Not watched: the memory must already follow the offer.
            return (
                same_baseline(memory.baseline, sku.price)
                and memory.at_target is is_at_target(self._rules, sku)
                and memory.low is (is_low(self._rules, sku) is True)
            )
        # As the rules' _price: with price alerts on, a price alert due; else a new baseline.
        price, base = sku.price, memory.baseline
        if price != base:
            if not self._price_alerts:
                return False
            move = price_move(self._rules, price, base, drop=self._drop, rise=self._rise)
            if move is not None:
                return False
        elif not self._price_alerts and str(price) != str(base):
            return False
        # As the rules' _target: with target alerts on, an alert due; else the flag follows.
        target = self._target
        if target is None:
            target_price = self._target_price
            at_target = target_price is not None and not sku.sold_out and price <= target_price
            if memory.at_target is not at_target:
                return False
        elif price > target:
            if memory.at_target is not False:
                return False
        elif not memory.at_target and not sku.sold_out:
            return False
        # As the rules' _low_stock: the flag follows the stock unless the alert is due.
        threshold = self._low_stock
        if threshold is None:
            return memory.low is False
        stock = sku.stock
        return stock is None or memory.low is (stock <= threshold)
