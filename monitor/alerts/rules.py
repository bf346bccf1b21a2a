"""Alert rules: which facts of a poll are worth telling, given what was told before.

Pure functions: no I/O, no clock (``now`` is passed in, timezone-aware), no
globals but the :data:`SHORTCUTS` switch. One successful poll goes through
:func:`evaluate`, one failed poll through :func:`evaluate_failure`; both take
the item's :class:`RuleState` and return the alerts plus the next state, which
the caller stores with the poll. :func:`group` / :func:`failure_group`
(from :mod:`monitor.alerts.groups`) wrap the alerts into the one
:class:`~monitor.alerts.model.AlertGroup` message of that poll.

What alerts (``docs/alerts.md`` has the full reference):

* only kinds listed in ``rules.alert_on``; ``rules.skus`` limits the
  SKU-level kinds (price, stock, SKU sold out / back, SKU added / removed,
  target price, low stock); item-level ones (whole item sold out / back,
  unavailable / available, quantity breaks) are never filtered by SKU;
* ``price_drop`` / ``price_rise`` compare each watched SKU's price with the
  price the user last heard about (the last price alert of that SKU, or the
  first price seen), so small steps add up; the thresholds
  ``price_*_pct`` / ``price_*_abs`` must all pass; sending re-arms the
  baseline at the reported price;
* ``target_price``: a SKU in stock at or below the target, once per crossing;
  ``low_stock``: a SKU's stock at or below ``low_stock``, once per crossing
  (not when the same poll already says that SKU or the item sold out);
* the other kinds come straight from the diff's changes;
* ``cooldown``: an alert with the same :func:`~monitor.alerts.state.alert_key`
  as one sent less than ``cooldown`` ago is dropped, and so is one that
  undoes such an alert (sold out, then back in stock; a price drop 30 → 25,
  then a rise back to 30). A dropped price, target or low-stock alert leaves
  the memory as it was, so the news goes out once the cooldown is over if it
  is still true; a dropped change alert is gone;
* ``poll_failing`` once when ``rules.failing_after`` polls in a row failed,
  then one ``poll_failing`` alert with note ``"recovered"`` on the next
  success.

Alert value conventions beyond :class:`~monitor.domain.Change`'s:
``target_price`` has ``old`` = the target and ``new`` = the SKU's price;
``low_stock`` has ``old`` = the ``low_stock`` threshold and ``new`` = the
stock; ``poll_failing`` carries its text in ``note``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from monitor.alerts import thresholds
from monitor.alerts.model import RECOVERED, Alert
from monitor.alerts.state import RuleState, SentAlert, SkuMemory, alert_key
from monitor.diff import percent_change
from monitor.domain import Change, ChangeKind, Offer, Sku
from monitor.watchlist.model import Rules

__all__ = [
    "SHORTCUTS",
    "RuleState",
    "evaluate",
    "evaluate_failure",
]

#: Whether :func:`evaluate` takes its shortcuts: return the state as it is for
#: the usual unchanged poll (:func:`~monitor.alerts.thresholds.settled`), skip
#: the SKUs :class:`~monitor.alerts.thresholds.Quiet` finds nothing to tell
#: about, and keep a memory or state object that would come out equal. Set to
#: False, every poll is worked out in full (every SKU through every rule, new
#: memories and a new state each time); the alerts and the states' contents
#: are the same either way, which is what the tests compare. Read at each call.
SHORTCUTS = True

_PAIRS = (
    (ChangeKind.PRICE_DROP, ChangeKind.PRICE_RISE),
    (ChangeKind.SOLD_OUT, ChangeKind.BACK_IN_STOCK),
    (ChangeKind.ITEM_UNAVAILABLE, ChangeKind.ITEM_AVAILABLE),
    (ChangeKind.SKU_ADDED, ChangeKind.SKU_REMOVED),
)
#: Kinds that undo each other: within the cooldown, the second is flapping.
_OPPOSITE = {a: b for x, y in _PAIRS for a, b in ((x, y), (y, x))}
#: Of those, kinds that only undo the other when they return to its old value.
_VALUE_REVERSALS = {ChangeKind.PRICE_DROP, ChangeKind.PRICE_RISE}

#: Change kinds about the whole item (``sku_id`` None) that alert as they are.
_ITEM_CHANGES = {
    ChangeKind.SOLD_OUT,
    ChangeKind.BACK_IN_STOCK,
    ChangeKind.ITEM_UNAVAILABLE,
    ChangeKind.ITEM_AVAILABLE,
    ChangeKind.TIER_CHANGE,
}
#: Change kinds about one SKU that alert as they are (prices are judged by level).
_SKU_CHANGES = {
    ChangeKind.SKU_ADDED,
    ChangeKind.SOLD_OUT,
    ChangeKind.BACK_IN_STOCK,
    ChangeKind.STOCK_CHANGE,
}


def evaluate(  # noqa: PLR0917 (the poller's call mirrors the pipeline order)
    rules: Rules,
    item_name: str | None,
    offer: Offer,
    changes: Sequence[Change],
    state: RuleState | None,
    now: datetime,
) -> tuple[list[Alert], RuleState]:
    """The alerts of one successful poll of an item, and the item's next rule state.

    ``changes`` are the diff of this poll (including ``item_available`` from
    :func:`monitor.diff.on_success`). ``state`` None (or a state that never
    saw a successful poll) makes this poll the baseline: the state is taken
    from the offer and nothing alerts, except "recovered" when an earlier
    ``poll_failing`` alert needs its all-clear. ``item_name`` is accepted
    for symmetry with :func:`~monitor.alerts.groups.group`; rules never depend on it.
    """
    del item_name  # names label messages; they never change what alerts
    _check_aware(now)
    shortcuts = SHORTCUTS
    if (
        shortcuts
        and state is not None
        and not changes
        and thresholds.settled(rules, offer, state, now)
    ):
        # The usual unchanged poll: nothing to tell, nothing to remember differently.
        return [], state
    run = _Run(rules, state or RuleState(), now)
    run.recover()
    if state is None or not state.seen:
        return run.alerts, run.state(_baseline_skus(rules, offer))

    # Order of the message: the item as a whole, then SKU by SKU, then quantity breaks.
    sku_changes: dict[str, list[Change]] = {}
    for change in changes:
        if change.sku_id is not None:
            sku_changes.setdefault(change.sku_id, []).append(change)
        elif change.kind in _ITEM_CHANGES and change.kind is not ChangeKind.TIER_CHANGE:
            run.send_change(change)
    memories = state.skus
    quiet = thresholds.Quiet(rules)
    skus: dict[str, SkuMemory] = {}
    for sku in offer.skus:
        memory = memories.get(sku.sku_id)
        sku_change = sku_changes.get(sku.sku_id)
        if shortcuts and sku_change is None and memory is not None and quiet(sku, memory):
            skus[sku.sku_id] = memory
        else:
            skus[sku.sku_id] = run.sku(sku, memory, sku_change or ())
    for change in changes:
        removed = change.kind is ChangeKind.SKU_REMOVED and change.sku_id is not None
        if removed and rules.watches_sku(change.sku_id or "", change.sku_name or ""):
            run.send_change(change)
    for change in changes:
        if change.kind is ChangeKind.TIER_CHANGE and change.sku_id is None:
            run.send_change(change)
    return run.alerts, run.state(skus, previous=state)


def evaluate_failure(
    rules: Rules,
    consecutive_failures: int,
    reason: str,
    state: RuleState | None,
    now: datetime,
    *,
    changes: Sequence[Change] = (),
) -> tuple[list[Alert], RuleState]:
    """The alerts of one failed poll, and the item's next rule state.

    ``consecutive_failures`` counts this failure. ``poll_failing`` is sent
    once when it reaches ``rules.failing_after`` (note: ``"3 failed polls in
    a row: timeout"``), and the next successful :func:`evaluate` says
    "recovered". ``changes`` takes the item-level changes a failure can
    produce (``item_unavailable`` from :func:`monitor.diff.on_unavailable`).
    ``reason`` must be safe to show (an error's ``reason`` or message, never
    a URL).
    """
    _check_aware(now)
    run = _Run(rules, state or RuleState(), now)
    for change in changes:
        if change.sku_id is None and change.kind in _ITEM_CHANGES:
            run.send_change(change)
    failing = run.was_failing
    due = consecutive_failures >= rules.failing_after
    if due and not failing and run.on(ChangeKind.POLL_FAILING):
        polls = "poll" if consecutive_failures == 1 else "polls"
        note = f"{consecutive_failures} failed {polls} in a row: {reason}"
        failing = run.send(Alert(ChangeKind.POLL_FAILING, note=note))
    base = state or RuleState()
    return run.alerts, run.state(base.skus, failing=failing, seen=base.seen, previous=state)


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _baseline_skus(rules: Rules, offer: Offer) -> dict[str, SkuMemory]:
    """First sight: every SKU's memory from the offer, thresholds already crossed count as told."""
    return {sku.sku_id: _synced(rules, sku) for sku in offer.skus}


def _synced(rules: Rules, sku: Sku) -> SkuMemory:
    """A SKU's memory that matches the offer as it is, as if everything had been told."""
    return SkuMemory(
        baseline=sku.price,
        at_target=thresholds.is_at_target(rules, sku),
        low=thresholds.is_low(rules, sku) is True,
    )


class _Run:
    """One evaluation: the alerts sent so far and the cooldown memory."""

    def __init__(self, rules: Rules, state: RuleState, now: datetime) -> None:
        self.rules = rules
        self.now = now
        self.was_failing = state.failing
        self.alerts: list[Alert] = []
        self._enabled = set(rules.alert_on)
        self._sent = {key: sent for key, sent in state.sent.items() if self._recent(sent)}
        self._remembered = False

    # -- sending -------------------------------------------------------------

    def on(self, kind: ChangeKind | str) -> bool:
        return str(kind) in self._enabled

    def send(self, alert: Alert) -> bool:
        """Add ``alert`` unless the cooldown holds it back; True if it was added."""
        if self._held_back(alert):
            return False
        self.alerts.append(alert)
        if self.rules.cooldown:
            self._sent[alert_key(alert)] = SentAlert(at=self.now, old=alert.old, new=alert.new)
            self._remembered = True
        return True

    def send_change(self, change: Change) -> bool:
        """Send a change as it is, if its kind is enabled."""
        if not self.on(change.kind):
            return False
        return self.send(
            Alert(
                kind=change.kind,
                sku_id=change.sku_id,
                sku_name=change.sku_name,
                min_qty=change.min_qty,
                old=change.old,
                new=change.new,
                pct=change.pct,
            )
        )

    def sent_kind(self, kind: ChangeKind, *, sku_id: str | None) -> bool:
        return any(a.kind == kind and a.sku_id == sku_id for a in self.alerts)

    def recover(self) -> None:
        """A successful poll after a ``poll_failing`` alert: say so once."""
        if self.was_failing:
            self.was_failing = False
            if self.on(ChangeKind.POLL_FAILING):
                # Never held back by the cooldown: the all-clear must follow the alarm.
                self.alerts.append(Alert(ChangeKind.POLL_FAILING, note=RECOVERED))

    def _recent(self, sent: SentAlert) -> bool:
        return self.now - sent.at < self.rules.cooldown

    def _held_back(self, alert: Alert) -> bool:
        if not self.rules.cooldown:
            return False
        last = self._sent.get(alert_key(alert))
        if last is not None and self._recent(last):
            return True
        opposite = _OPPOSITE.get(alert.kind)
        if opposite is None:
            return False
        undoes = Alert(kind=opposite, sku_id=alert.sku_id, min_qty=alert.min_qty)
        undone = self._sent.get(alert_key(undoes))
        if undone is None or not self._recent(undone):
            return False
        return alert.kind not in _VALUE_REVERSALS or alert.new == undone.old

    # -- SKU rules -----------------------------------------------------------

    def sku(self, sku: Sku, memory: SkuMemory | None, changes: Iterable[Change]) -> SkuMemory:
        """Apply every SKU-level rule to one SKU of the current offer."""
        if not self.rules.watches_sku(sku.sku_id, sku.name):
            # Not watched: keep the memory in sync so watching it later starts quietly.
            return _synced(self.rules, sku)
        if memory is None:
            # A SKU the item did not have: its price is its baseline, thresholds are armed.
            memory = SkuMemory(baseline=sku.price)
        memory = self._price(sku, memory)
        for change in changes:
            if change.kind in _SKU_CHANGES:
                self.send_change(change)
        memory = self._target(sku, memory)
        return self._low_stock(sku, memory)

    def _price(self, sku: Sku, memory: SkuMemory) -> SkuMemory:
        base, price = memory.baseline, sku.price
        drop, rise = self.on(ChangeKind.PRICE_DROP), self.on(ChangeKind.PRICE_RISE)
        if not drop and not rise:
            return _with(memory, baseline=price)
        kind = thresholds.price_move(self.rules, price, base, drop=drop, rise=rise)
        if kind is None:
            return memory
        alert = Alert(
            kind=kind,
            sku_id=sku.sku_id,
            sku_name=sku.name,
            old=base,
            new=price,
            pct=percent_change(base, price),
        )
        return _with(memory, baseline=price) if self.send(alert) else memory

    def _target(self, sku: Sku, memory: SkuMemory) -> SkuMemory:
        target = self.rules.target_price
        if target is None or not self.on(ChangeKind.TARGET_PRICE):
            return _with(memory, at_target=thresholds.is_at_target(self.rules, sku))
        if sku.price > target:
            return _with(memory, at_target=False)
        if memory.at_target or sku.sold_out:
            # Told already, or cannot be bought now (it alerts once back in stock).
            return memory
        alert = Alert(
            kind=ChangeKind.TARGET_PRICE,
            sku_id=sku.sku_id,
            sku_name=sku.name,
            old=target,
            new=sku.price,
        )
        return _with(memory, at_target=self.send(alert))

    def _low_stock(self, sku: Sku, memory: SkuMemory) -> SkuMemory:
        threshold, low = self.rules.low_stock, thresholds.is_low(self.rules, sku)
        if low is None:
            return memory
        if threshold is None or not self.on(ChangeKind.LOW_STOCK) or not low:
            return _with(memory, low=low)
        if memory.low:
            return memory
        if self.sent_kind(ChangeKind.SOLD_OUT, sku_id=sku.sku_id) or self.sent_kind(
            ChangeKind.SOLD_OUT, sku_id=None
        ):
            # "sold out" (of this SKU or the whole item) already says it.
            return _with(memory, low=True)
        alert = Alert(
            kind=ChangeKind.LOW_STOCK,
            sku_id=sku.sku_id,
            sku_name=sku.name,
            old=threshold,
            new=sku.stock,
        )
        return _with(memory, low=self.send(alert))

    # -- result --------------------------------------------------------------

    def state(
        self,
        skus: Mapping[str, SkuMemory],
        *,
        failing: bool | None = None,
        seen: bool = True,
        previous: RuleState | None = None,
    ) -> RuleState:
        """The next state; ``previous`` itself when it would be equal to it.

        Equal here means the very same memory objects per SKU, the same
        cooldown entries and flags, so the stored JSON would not change either.
        """
        failing = self.was_failing if failing is None else failing
        kept = {key: sent for key, sent in self._sent.items() if self._recent(sent)}
        if (
            previous is not None
            and previous.seen == seen
            and previous.failing == failing
            and not self._remembered
            and len(kept) == len(previous.sent)
            and _same_memories(skus, previous.skus)
        ):
            return previous
        return RuleState(seen=seen, failing=failing, skus=skus, sent=kept)


def _same_memories(new: Mapping[str, SkuMemory], old: Mapping[str, SkuMemory]) -> bool:
    """The same SKUs with the very same memory objects."""
    if new is old:
        return True
    if len(new) != len(old):
        return False
    return all(old.get(sku_id) is memory for sku_id, memory in new.items())


def _with(
    memory: SkuMemory,
    *,
    baseline: Decimal | None = None,
    at_target: bool | None = None,
    low: bool | None = None,
) -> SkuMemory:
    """``memory`` with the given fields; ``memory`` itself when they are already so
    (unless :data:`SHORTCUTS` is off)."""
    new_baseline = memory.baseline if baseline is None else baseline
    new_at_target = memory.at_target if at_target is None else at_target
    new_low = memory.low if low is None else low
    if (
        SHORTCUTS
        and new_at_target is memory.at_target
        and new_low is memory.low
        and (baseline is None or thresholds.same_baseline(baseline, memory.baseline))
    ):
        return memory
    return SkuMemory(baseline=new_baseline, at_target=new_at_target, low=new_low)
