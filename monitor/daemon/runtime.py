"""Process-wide settings for a long-running daemon: its event loop and the garbage collector.

:func:`run` runs the daemon's coroutine on uvloop when it is installed (a
libuv-based loop that spends less CPU per request and per callback than
the default one) and on the default asyncio loop otherwise. Only that one
loop is affected: the global event loop policy stays as it is, so other
loops of the process (the built-in simulated TMAPI runs its own) keep the
default implementation.

:func:`settle_gc` is called once the watchlist and the database are set up.
It moves every object alive at that point (modules, the watchlist, the
schema) to the collector's permanent generation, where full collections no
longer walk it: with 100k watched items a full collection would otherwise
visit about a million objects, a pause of a tenth of a second on the event
loop, every few thousand polls. It also lets the youngest generation grow
larger before it is collected, since a poll allocates a few thousand
short-lived objects. Nothing stops being collected: objects that become
garbage are still freed by reference counting, and everything allocated
later is collected as usual.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["GEN0_THRESHOLD", "run", "settle_gc"]

T = TypeVar("T")

#: Allocations (minus deallocations) between two collections of the youngest generation.
GEN0_THRESHOLD = 20_000


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on a uvloop loop when uvloop is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def settle_gc() -> None:
    """Freeze what is alive now out of future collections; collect young objects less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
