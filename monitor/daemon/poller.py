"""One poll of one item: fetch → parse → a :class:`PollWrite` to record.

This is the I/O edge around the pure core, shared by the daemon and
``monitor check``. The HTTP fetch runs on the event loop; a failed fetch or
an unparseable payload comes back as its error, recorded as a failed poll,
never as a change. :func:`poll_write` puts the item's watchlist settings
(its rules and targets) and the data's source on the poll, so that
recording (:meth:`monitor.db.store.Store.apply_polls`) alerts on it in the
same transaction, whoever recorded it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from monitor.db.poll_plan import Lease, PollWrite
from monitor.db.records import PollResult
from monitor.db.store import Store
from monitor.domain import Offer
from monitor.errors import ParseError, TmapiError
from monitor.tmapi.client import TmapiClient
from monitor.tmapi.parse import parse_item
from monitor.watchlist.model import Item, Watchlist

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PollOptions:
    language: str = "en"
    scene: str | None = None
    optimize_title: bool = False
    unavailable_after: int = 3

    @classmethod
    def of(cls, watchlist: Watchlist | None, item: Item | None) -> PollOptions:
        """The options the watchlist gives ``item`` (the defaults without either)."""
        if watchlist is None:
            return cls(language=item.rules.language if item is not None else "en")
        settings = watchlist.settings
        return cls(
            language=item.rules.language if item is not None else watchlist.defaults.language,
            scene=settings.scene,
            optimize_title=settings.optimize_title,
            unavailable_after=settings.unavailable_after,
        )


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


def poll_write(
    client: TmapiClient,
    item_id: int,
    polled_at: datetime,
    result: Offer | TmapiError | ParseError,
    *,
    watchlist: Watchlist | None,
    item: Item | None,
    options: PollOptions,
    lease: Lease | None = None,
) -> PollWrite:
    """The poll to record: the fetch's result with the item's rules, targets and source."""
    targets = watchlist.targets_of(item) if watchlist is not None and item is not None else ()
    return PollWrite(
        item_id,
        polled_at,
        result,
        item=item,
        targets=targets,
        source=client.settings.source,
        unavailable_after=options.unavailable_after,
        lease=lease,
    )


async def check_items(
    client: TmapiClient,
    store: Store,
    watchlist: Watchlist | None,
    item_ids: Sequence[int],
    *,
    language: str | None = None,
    clock: Clock = utc_now,
) -> list[PollResult | Exception]:
    """``monitor check``: poll ``item_ids`` now, one after the other, and record them.

    Each item on ``watchlist`` is polled with its settings and alerted on by
    its rules (the messages are queued; the daemon delivers them); an item
    on no watchlist is stored and alerts nobody. ``language`` overrides the
    item's language.
    """
    writes: list[PollWrite] = []
    for item_id in item_ids:
        item = watchlist.item(item_id) if watchlist is not None else None
        options = PollOptions.of(watchlist, item)
        if language is not None:
            options = replace(options, language=language)
        result = await fetch_offer(client, item_id, options)
        writes.append(
            poll_write(
                client,
                item_id,
                clock(),
                result,
                watchlist=watchlist,
                item=item,
                options=options,
            )
        )
    return await asyncio.to_thread(store.apply_polls, writes)
