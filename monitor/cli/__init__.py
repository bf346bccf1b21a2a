"""The ``monitor`` command line.

Every subcommand lives in its own module and is registered here explicitly.
Known failures (``MonitorError``) end as one line on stderr and a non-zero
exit code, never as a traceback.
"""

from __future__ import annotations

from typing import IO, Any

import click

from monitor import __version__
from monitor.cli.chart import chart
from monitor.cli.check import check
from monitor.cli.completion import completion
from monitor.cli.dbcmd import db
from monitor.cli.demo import demo
from monitor.cli.export import export
from monitor.cli.history import history
from monitor.cli.items import items
from monitor.cli.notify import notify
from monitor.cli.run import run
from monitor.cli.status import status
from monitor.cli.validate import validate
from monitor.errors import MonitorError
from monitor.logs import setup_logging
from monitor.notify.console import register_console_target
from monitor.settings import environment, log_level

LOG_LEVELS = ["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]


class Failure(click.ClickException):
    """A known failure: one line on stderr, exit code 1, no traceback."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class MonitorGroup(click.Group):
    """Turns every ``MonitorError`` of a subcommand into a :class:`Failure`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MonitorError as exc:
            raise Failure(str(exc)) from None


@click.group(
    cls=MonitorGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="monitor")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=lambda: log_level(environment()),
    show_default="WARNING, or $MONITOR_LOG_LEVEL",
    help="How much to log on stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log line format: human text or one JSON object per line.",
)
def cli(log_level: str, log_format: str) -> None:
    """1688 Monitor: watch 1688.com offers and get told when they change.

    \b
    Examples:
      monitor check 652702302959          fetch, store and diff one offer
      monitor validate                    check watchlist.toml
      monitor run                         poll the watchlist, alert on changes
      monitor db upgrade                  bring the database schema up to date
    """
    setup_logging(log_level, fmt=log_format)
    register_console_target()  # ``console://`` prints alerts on the terminal


cli.add_command(check)
cli.add_command(db)
cli.add_command(demo)
cli.add_command(notify)
cli.add_command(run)
cli.add_command(validate)
cli.add_command(status)
cli.add_command(history)
cli.add_command(export)
cli.add_command(chart)
cli.add_command(items)
cli.add_command(completion)


def main() -> None:
    """Console entry point."""
    cli(prog_name="monitor")
