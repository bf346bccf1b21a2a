"""``monitor db``: schema management through Alembic."""

from __future__ import annotations

import click

from monitor.db.engine import current, database_url, head_revision, safe_url, upgrade


@click.group()
def db() -> None:
    """Manage the database schema (Alembic migrations).

    \b
    The database is $MONITOR_DATABASE_URL, or the default SQLite file.
    Examples:
      monitor db current
      MONITOR_DATABASE_URL=postgresql+psycopg://monitor@db/monitor monitor db upgrade
    """


@db.command("upgrade")
def upgrade_cmd() -> None:
    """Apply every pending migration.

    \b
    Example:
      monitor db upgrade
    """
    url = database_url()
    upgrade(url)
    click.echo(f"{safe_url(url)}: schema at {current(url)}")


@db.command("current")
def current_cmd() -> None:
    """Show the schema revision of the database and the newest one known.

    \b
    Example:
      monitor db current
    """
    url = database_url()
    rev = current(url)
    head = head_revision()
    state = "up to date" if rev == head else "needs `monitor db upgrade`"
    click.echo(
        f"{safe_url(url)}: schema at {rev or 'nothing (empty database)'}, head {head} ({state})"
    )
