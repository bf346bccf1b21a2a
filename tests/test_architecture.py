"""The shape of the house (docs/architecture.md), checked on the code itself.

The import contracts (stages import only downward; the pure core loads no
I/O library) are in ``pyproject.toml`` and run by ``lint-imports`` in CI;
these tests check what a static import graph cannot: what importing the
pure core really loads, and the size of each module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "monitor"

#: The pure core: parse -> diff -> rules -> render's inputs, and the watchlist model.
PURE_CORE = (
    "monitor.domain",
    "monitor.diff",
    "monitor.tmapi.parse",
    "monitor.alerts.rules",
    "monitor.alerts.thresholds",
    "monitor.alerts.schedule",
    "monitor.messages.render",
    "monitor.watchlist.model",
    "monitor.watchlist.advice",
)
IO_LIBRARIES = ("httpx", "sqlalchemy", "apprise", "aiohttp", "apscheduler", "msgspec")
MAX_LINES = 450


def loaded_after_import(modules: tuple[str, ...]) -> set[str]:
    """The top-level packages loaded by importing ``modules`` in a fresh interpreter."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(out))


def test_the_pure_core_loads_no_io_library() -> None:
    loaded = loaded_after_import(PURE_CORE)
    assert "monitor" in loaded
    assert loaded.isdisjoint(IO_LIBRARIES), sorted(loaded & set(IO_LIBRARIES))


def test_the_check_sees_an_io_library_when_one_is_loaded() -> None:
    # The same check on a module that does load I/O libraries must notice them.
    assert {"sqlalchemy", "apprise"} <= loaded_after_import(("monitor.notify.deliver",))


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE.parent))
)
def test_no_module_is_over_the_limit(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)}: {lines} lines"
