"""Test helper: the alert rules with their shortcuts switched off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest

from monitor.alerts import rules as rules_module
from monitor.alerts import thresholds
from monitor.alerts.state import SkuMemory


@contextmanager
def worked_out_in_full() -> Iterator[None]:
    """Evaluate every SKU through every rule and always build a new state and new memories."""

    def rebuilt(
        memory: SkuMemory,
        *,
        baseline: Decimal | None = None,
        at_target: bool | None = None,
        low: bool | None = None,
    ) -> SkuMemory:
        return SkuMemory(
            baseline=memory.baseline if baseline is None else baseline,
            at_target=memory.at_target if at_target is None else at_target,
            low=memory.low if low is None else low,
        )

    patches = pytest.MonkeyPatch()
    patches.setattr(thresholds, "settled", lambda *args: False)
    patches.setattr(thresholds.Quiet, "__call__", lambda self, sku, memory: False)
    patches.setattr(rules_module, "_with", rebuilt)
    try:
        yield
    finally:
        patches.undo()
