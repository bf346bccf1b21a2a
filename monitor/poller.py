"""One poll of one item: fetch → parse → (diff + store in one transaction).

This is the I/O edge around the pure core. The HTTP fetch runs on the event
loop; the database work, which uses a synchronous driver, runs in a worker
thread so the loop never blocks. A failed fetch or an unparseable payload is
recorded as a failed poll and never looks like a change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from monitor.db.store import PollResult, Store
from monitor.domain import Offer
from monitor.errors import ParseError, TmapiError
from monitor.tmapi.client import TmapiClient
from monitor.tmapi.parse import parse_item

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ExtraWrites = Callable[[Connection, PollResult], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PollOptions:
    language: str = "en"
    scene: str | None = None
    optimize_title: bool = False
    unavailable_after: int = 3


async def fetch_offer(
    client: TmapiClient, item_id: int, options: PollOptions
) -> Offer | TmapiError | ParseError:
    """Fetch and parse one item; a known failure is returned, not raised."""
    try:
        data = await client.fetch(
            item_id,
            language=options.language,
            scene=options.scene,
            optimize_title=options.optimize_title,
        )
        return parse_item(data, item_id=item_id)
    except TmapiError as exc:
        log.warning("poll of item %s failed: %s", item_id, exc)
        return exc
    except ParseError as exc:
        log.warning("item %s: TMAPI payload could not be parsed: %s", item_id, exc)
        return exc


async def poll_item(
    client: TmapiClient,
    store: Store,
    item_id: int,
    options: PollOptions = PollOptions(),  # frozen: a shared default is safe
    *,
    clock: Clock = utc_now,
    extra: ExtraWrites | None = None,
) -> PollResult:
    """Poll one item and record the outcome atomically; returns what was recorded."""
    result = await fetch_offer(client, item_id, options)
    return await asyncio.to_thread(
        store.apply_poll,
        item_id,
        clock(),
        result,
        unavailable_after=options.unavailable_after,
        extra=extra,
    )
