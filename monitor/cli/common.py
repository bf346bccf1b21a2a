"""Pieces shared by several commands: TMAPI endpoint selection, the store."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import click

from monitor.tmapi.client import TmapiSettings
from monitor.tmapi.simulator import SimulatedTmapi

log = logging.getLogger(__name__)


@contextmanager
def tmapi_settings(item_ids: Iterable[int] = ()) -> Iterator[TmapiSettings]:
    """TMAPI settings from the environment; without a token, a simulated TMAPI.

    The simulated server runs on 127.0.0.1 for as long as the ``with`` block,
    and serves the requested items (generated from the documented example).
    """
    settings = TmapiSettings.from_env()
    if settings.token:
        yield settings
        return
    click.echo("TMAPI_TOKEN is not set: using the built-in simulated TMAPI on 127.0.0.1.", err=True)
    with SimulatedTmapi(items=sorted(set(item_ids)) or 5) as sim:
        yield replace(settings, base_url=sim.base_url)
