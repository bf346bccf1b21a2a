"""``monitor notify``: test notification targets, look into the outbox."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from monitor.cli.validate import WATCHLIST_OPTION_HELP, default_watchlist
from monitor.db.outbox import OutboxState
from monitor.db.outbox_list import OutboxRow, count_by_state, list_notifications
from monitor.db.store import Store
from monitor.errors import ConfigError
from monitor.logs import redact, register_secret
from monitor.messages.render import test_message
from monitor.notify.deliver import render_for
from monitor.notify.sender import AppriseSender
from monitor.watchlist.load import load_watchlist
from monitor.watchlist.model import Target
from monitor.watchlist.urls import privacy_url, url_secrets

__all__ = ["notify"]


@click.group()
def notify() -> None:
    """Test notification targets and list the notification outbox.

    \b
    Examples:
      monitor notify test                  send a test message to every target
      monitor notify test team-slack       send it to one target
      monitor notify list --state dead     notifications that could not be delivered
    """


@notify.command("test")
@click.argument("target", required=False)
@click.option(
    "--watchlist",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=WATCHLIST_OPTION_HELP,
)
def test_cmd(target: str | None, path: Path | None) -> None:
    """Send a test message to TARGET, or to every target of the watchlist.

    Prints each target's result, with its URL in apprise's privacy form
    (tokens and passwords masked). Exits 1 if any target failed.

    \b
    Examples:
      monitor notify test
      monitor notify test team-slack --watchlist /etc/1688-monitor/watchlist.toml
    """
    try:
        watchlist = load_watchlist(path or default_watchlist())
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    targets = list(watchlist.targets.values())
    if target is not None:
        if target not in watchlist.targets:
            known = ", ".join(watchlist.targets) or "none"
            raise click.BadParameter(
                f"no target named {target!r} in the watchlist (targets: {known})",
                param_hint="TARGET",
            )
        targets = [watchlist.targets[target]]
    if not targets:
        click.echo(f"{watchlist.path}: no [targets] to test", err=True)
        sys.exit(1)
    failed = _send_tests(targets)
    if failed:
        click.echo(f"{failed} of {len(targets)} targets failed", err=True)
        sys.exit(1)


def _send_tests(targets: Sequence[Target]) -> int:
    """Send the test message to each target, print one line each; return the failures."""
    sender = AppriseSender()
    groups = [test_message(datetime.now(UTC))]
    width = max(len(t.name) for t in targets)
    failed = 0
    for target in targets:
        for secret in url_secrets(target.url):
            register_secret(secret)
        result = sender.send(target, render_for(target, groups))
        shown = f"{target.name:<{width}}  {privacy_url(target.url)}"
        if result.ok:
            click.echo(redact(f"ok      {shown}"))
        else:
            failed += 1
            click.echo(redact(f"FAILED  {shown}: {result.error}"))
    return failed


@notify.command("list")
@click.option(
    "--state",
    type=click.Choice([state.value for state in OutboxState]),
    default=None,
    help="Only notifications in this state.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Newest N."
)
def list_cmd(state: str | None, limit: int) -> None:
    """List outbox notifications, newest first: target, item, kinds, state, attempts, error.

    States: pending (waiting or retrying), held (quiet hours or digest),
    sent, dead (gave up: see the error), merged (went out in a digest).

    \b
    Examples:
      monitor notify list
      monitor notify list --state dead
    """
    store = Store.open()
    try:
        counts = count_by_state(store.engine)
        rows = list_notifications(store.engine, OutboxState(state) if state else None, limit)
    finally:
        store.close()
    summary = ", ".join(f"{n} {s.value}" for s, n in sorted(counts.items())) or "empty"
    click.echo(f"outbox: {summary}")
    for line in _table(rows):
        click.echo(line)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")


def _table(rows: Sequence[OutboxRow]) -> list[str]:
    """Aligned columns, one line per row; the last error goes last, uncut."""
    header = ("ID", "CREATED", "TARGET", "ITEM", "KINDS", "STATE", "TRIES", "NEXT/SENT", "ERROR")
    cells = [
        (
            str(row.id),
            _when(row.created_at),
            row.target,
            "-" if row.item_id is None else str(row.item_id),
            ",".join(row.kinds),
            row.state.value if row.digest_id is None else f"{row.state.value}->{row.digest_id}",
            str(row.attempts),
            _when(row.sent_at if row.state is OutboxState.SENT else row.next_attempt_at),
            row.last_error or "",
        )
        for row in rows
    ]
    if not cells:
        return []
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)), line[-1]]).rstrip()
        for line in [header, *cells]
    ]
