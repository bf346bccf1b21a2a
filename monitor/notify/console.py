"""A ``console://`` apprise target that prints messages on the terminal.

Used by ``monitor demo`` so that alerts can be seen without any account,
and handy while trying out a watchlist. Registering it is explicit
(:func:`register_console_target`), never a side effect of an import.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO, cast

from apprise.decorators import notify

SCHEME = "console"
_lock = threading.Lock()
_registered = False
_stream: TextIO | None = None


def _print(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
    stream = _stream or sys.stdout
    with _lock:
        if title:
            stream.write(f"\n🔔 {title}\n")
        stream.write(body.rstrip() + "\n")
        stream.flush()
    return True


def register_console_target(stream: TextIO | None = None) -> None:
    """Make ``console://`` a valid apprise URL that prints to ``stream`` (stdout)."""
    global _registered, _stream  # noqa: PLW0603 (apprise plugins are process-wide)
    _stream = stream
    with _lock:
        if _registered:
            return
        register = cast(Callable[..., Callable[[Callable[..., bool]], object]], notify)
        register(on=SCHEME, name="Console")(_print)
        _registered = True
