"""Database URLs: where the database is, and how to show a URL without its password.

The URL comes from ``MONITOR_DATABASE_URL``, or from the file named by
``MONITOR_DATABASE_URL_FILE`` (for secrets mounted as files). Without either
the monitor uses a per-user SQLite file:

* ``$MONITOR_HOME/monitor.db`` if ``MONITOR_HOME`` is set,
* else ``$XDG_DATA_HOME/1688-monitor/monitor.db`` if ``XDG_DATA_HOME`` is set,
* else ``~/.local/share/1688-monitor/monitor.db``.

Error messages built here never contain the database password; use
:func:`safe_url` to show a URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from monitor.errors import ConfigError, StorageError
from monitor.settings import env_secret, environment

__all__ = [
    "database_url",
    "default_sqlite_path",
    "parse_url",
    "safe_url",
    "storage_error",
]

_APP_DIR = "1688-monitor"
_DB_FILE = "monitor.db"


def default_sqlite_path(env: Mapping[str, str]) -> Path:
    """The per-user SQLite file used when no database URL is configured."""
    if home := env.get("MONITOR_HOME"):
        return Path(home).expanduser() / _DB_FILE
    if xdg := env.get("XDG_DATA_HOME"):
        return Path(xdg).expanduser() / _APP_DIR / _DB_FILE
    return Path.home() / ".local" / "share" / _APP_DIR / _DB_FILE


def database_url(env: Mapping[str, str] | None = None) -> str:
    """The configured database URL (see the module docstring for the rules);
    ``env`` defaults to :func:`monitor.settings.environment`."""
    env = environment() if env is None else env
    configured = (env_secret(env, "MONITOR_DATABASE_URL") or "").strip()
    if configured:
        return configured
    return f"sqlite+pysqlite:///{default_sqlite_path(env)}"


def parse_url(url: str | URL) -> URL:
    """Parse a database URL and pin the driver (pysqlite or psycopg 3).

    ``sqlite://`` and ``postgresql://`` (or ``postgres://``) are accepted as
    shorthands; any other driver or database is a ConfigError.
    """
    try:
        parsed = sa.make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError("the database URL cannot be parsed") from None
    backend = parsed.get_backend_name()
    driver = parsed.get_driver_name() if "+" in parsed.drivername else None
    if backend == "sqlite" and driver in (None, "pysqlite"):
        return parsed.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres") and driver in (None, "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    raise ConfigError(
        f"unsupported database URL scheme {parsed.drivername!r}: "
        "use sqlite:///path or postgresql+psycopg://…"
    )


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, for logs and CLI output."""
    try:
        parsed = sa.make_url(url)
    except (ArgumentError, ValueError):
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)


def storage_error(exc: BaseException, action: str, url: str | URL | None = None) -> StorageError:
    """A StorageError describing ``exc`` without the SQL, the parameters or the password.

    Raise it ``from None``: the original exception can carry connection
    strings and statement parameters.
    """
    detail = _first_line(getattr(exc, "orig", None) or exc)
    where = f" ({safe_url(url)})" if url is not None else ""
    message = f"{action} failed{where}: {type(exc).__name__}: {detail}"
    return StorageError(_scrub(message, url))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:300]


def _scrub(message: str, url: str | URL | None) -> str:
    if url is None:
        return message
    try:
        password = sa.make_url(url).password
    except (ArgumentError, ValueError):
        return message
    if password:
        for form in {str(password), quote(str(password), safe="")}:
            message = message.replace(form, "***")
    return message
