"""Pieces shared by the commands that poll: where TMAPI is, which watchlist applies."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from monitor.cli.validate import default_watchlist
from monitor.db import meta
from monitor.db.store import Store
from monitor.domain import PollSource
from monitor.errors import ConfigError
from monitor.simulator.server import SimulatedTmapi
from monitor.tmapi.settings import TmapiSettings
from monitor.watchlist.load import load_watchlist
from monitor.watchlist.model import Watchlist
from monitor.watchlist.snapshot import from_document

log = logging.getLogger(__name__)

SIMULATE_HELP = (
    "Poll the built-in simulated TMAPI on 127.0.0.1 instead of the real one: made-up "
    "offers whose suppliers cut prices, sell out and restock every few polls. Needs no "
    "token; a database holding real polls refuses simulated ones."
)
NO_CREDENTIALS = (
    "TMAPI_TOKEN is not set (nor TMAPI_TOKEN_FILE): set it to poll TMAPI, "
    "or add --simulate to try the built-in simulated TMAPI (made-up prices, no account)"
)


def answered_polls(item_ids: Iterable[int], *, migrate: bool = False) -> dict[int, int]:
    """How many successful polls the database holds of each item (for ``--simulate``,
    so that the simulator's market goes on where the last run left it)."""
    wanted = set(item_ids)
    store = Store.open(None, migrate=migrate)
    try:
        rows = store.list_items()  # one query, whatever the number of items
    finally:
        store.close()
    return {r.item_id: r.polls_total - r.polls_failed for r in rows if r.item_id in wanted}


@contextmanager
def tmapi_settings(
    item_ids: Iterable[int] = (), *, simulate: bool, answered: Mapping[int, int] | None = None
) -> Iterator[TmapiSettings]:
    """How to reach TMAPI: from the environment, or the simulator with ``simulate``.

    Without a token and without ``simulate`` nothing is polled: ConfigError
    naming ``TMAPI_TOKEN``, ``TMAPI_TOKEN_FILE`` and ``--simulate``. The
    simulated server runs on 127.0.0.1 for as long as the ``with`` block,
    serves the requested items and moves their prices and stock by itself,
    from where ``answered`` (successful polls per item so far) left them.
    """
    if not simulate:
        settings = TmapiSettings.from_env()
        if not settings.token:
            raise ConfigError(NO_CREDENTIALS)
        yield settings
        return
    with SimulatedTmapi(items=sorted(set(item_ids)) or 5, market=True) as sim:
        sim.resume_market(answered or {})
        click.echo(
            f"--simulate: polling the built-in simulated TMAPI at {sim.base_url} "
            "(made-up offers; no TMAPI call is made)",
            err=True,
        )
        yield TmapiSettings(base_url=sim.base_url, timeout=10, source=PollSource.SIMULATED)


@dataclass(frozen=True, slots=True)
class FoundWatchlist:
    """The watchlist whose rules a ``monitor check`` applies, and where it came from."""

    watchlist: Watchlist | None
    origin: str


def watchlist_for_check(path: Path | None, store: Store) -> FoundWatchlist:
    """The watchlist the way ``monitor run`` finds it, else the one the last run stored.

    ``path`` (``--watchlist``) must exist and be valid. Without it,
    ``$MONITOR_WATCHLIST`` or ``./watchlist.toml`` is used when it exists,
    else the item settings the last ``monitor run`` stored in the database;
    with none of them, no rules apply.
    """
    file = path or default_watchlist()
    if path is not None or file.is_file():
        watchlist = load_watchlist(file)
        return FoundWatchlist(watchlist, str(file))
    document = meta.load_watchlist_document(store.engine)
    if document is not None:
        try:
            stored = from_document(document)
        except ValueError as exc:
            log.warning("the item settings stored by the last monitor run: %s", exc)
        else:
            return FoundWatchlist(
                stored, f"the item settings stored by the last monitor run ({stored.path})"
            )
    return FoundWatchlist(None, f"no watchlist ({file} does not exist)")
