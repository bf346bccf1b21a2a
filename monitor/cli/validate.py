"""``monitor validate``: check a watchlist file and show what it will watch."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from monitor.errors import ConfigError
from monitor.settings import default_watchlist_path, environment
from monitor.watchlist.load import load_watchlist
from monitor.watchlist.summary import summarize

WATCHLIST_OPTION_HELP = "The watchlist file (default ./watchlist.toml, or $MONITOR_WATCHLIST)."


def default_watchlist() -> Path:
    return default_watchlist_path(environment())


@click.command()
@click.argument("path", required=False, type=click.Path(path_type=Path, dir_okay=False))
def validate(path: Path | None) -> None:
    """Check the watchlist PATH; print every problem (exit 1) or a summary (exit 0).

    Problems name the file, the entry and the key. Secrets from ${VAR}s are
    never printed.

    \b
    Examples:
      monitor validate
      monitor validate watchlist.example.toml
    """
    target = path or default_watchlist()
    try:
        watchlist = load_watchlist(target)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    for line in summarize(watchlist):
        click.echo(line)
