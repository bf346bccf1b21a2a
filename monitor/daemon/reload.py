"""Hot reload of the watchlist file: notice edits, validate, keep the last good one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import ConfigError
from monitor.settings import environment
from monitor.watchlist.load import load_watchlist
from monitor.watchlist.model import Watchlist

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FileSignature:
    """What changes when the file is edited, replaced or removed."""

    mtime_ns: int
    size: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileSignature | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return cls(st.st_mtime_ns, st.st_size, st.st_ino)


class WatchlistReloader:
    """Holds the current watchlist and swaps in a new one when the file changes.

    A bad edit is logged once with the same message ``monitor validate``
    prints, and the previous watchlist stays in force until the file is
    fixed. A file that disappears is treated like a bad edit.
    """

    def __init__(
        self, path: Path, watchlist: Watchlist, env: Mapping[str, str] | None = None
    ) -> None:
        self.path = path
        self.current = watchlist
        self._env = environment() if env is None else env
        self._signature = FileSignature.of(path)
        self._failed_signature: FileSignature | None = None

    async def poll(self) -> Watchlist | None:
        """Return the new watchlist if the file changed and is valid, else None."""
        signature = FileSignature.of(self.path)
        if signature == self._signature:
            return None
        if signature is None:
            if self._failed_signature is not None or self._signature is None:
                return None
            log.error(
                "%s: the watchlist file is gone; still watching the last good version",
                self.path,
            )
            self._failed_signature = FileSignature(0, 0, 0)
            return None
        if signature == self._failed_signature:
            return None
        try:
            watchlist = await asyncio.to_thread(load_watchlist, self.path, self._env)
        except ConfigError as exc:
            self._failed_signature = signature
            log.error("watchlist not reloaded, still running the last good version:\n%s", exc)
            return None
        self._signature = signature
        self._failed_signature = None
        self.current = watchlist
        for warning in watchlist.warnings:
            log.warning("%s", warning)
        return watchlist
