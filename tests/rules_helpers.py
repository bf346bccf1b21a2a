"""Test helper: the alert rules with their shortcuts switched off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from monitor.alerts import rules as rules_module


@contextmanager
def worked_out_in_full() -> Iterator[None]:
    """Evaluate every SKU through every rule and always build a new state and new memories."""
    patches = pytest.MonkeyPatch()
    patches.setattr(rules_module, "SHORTCUTS", False)
    try:
        yield
    finally:
        patches.undo()
