"""The process environment: the one module that reads ``os.environ``.

Every setting the monitor takes from the environment is read through a
mapping that starts here (:func:`environment`) and is handed down: the TMAPI
settings, the database URL, the watchlist's ``${VAR}`` values and its
``MONITOR_*`` overrides, the default watchlist path and the log level. Tests
hand in a plain dict instead.

A secret may come from a file, as Docker and Kubernetes secrets do:
:func:`env_secret` reads ``NAME`` or, when ``NAME`` is unset or empty, the
file named by ``NAME_FILE`` (stripped of surrounding whitespace). Setting
both is an error, and so are an unreadable or empty file; the messages name
variables and files, never values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from monitor.errors import ConfigError

__all__ = [
    "DEFAULT_LOG_LEVEL",
    "default_watchlist_path",
    "env_secret",
    "environment",
    "log_level",
]

DEFAULT_LOG_LEVEL = "WARNING"


def environment() -> Mapping[str, str]:
    """The process environment, as the monitor reads it."""
    return os.environ


def env_secret(env: Mapping[str, str], name: str, *, shown: str | None = None) -> str | None:
    """``env[name]``, else the content of the file named by ``env[name + "_FILE"]``.

    ``None`` when neither is set; ``""`` when ``name`` is set but empty and
    there is no file. ``shown`` prefixes the messages (the watchlist says
    ``${NAME}``).
    """
    label = f"{shown}: " if shown else ""
    direct = env.get(name)
    file_variable = f"{name}_FILE"
    file_name = env.get(file_variable, "").strip()
    if not file_name:
        return direct
    if direct:
        raise ConfigError(f"{label}{name} and {file_variable} are both set; keep one")
    try:
        text = Path(file_name).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = (exc.strerror or type(exc).__name__) if isinstance(exc, OSError) else None
        raise ConfigError(
            f"{label}{file_variable} names {_shown_path(file_name)}, "
            f"which cannot be read ({reason or 'not UTF-8 text'})"
        ) from None
    value = text.strip()
    if not value:
        raise ConfigError(f"{label}the file {_shown_path(file_name)} ({file_variable}) is empty")
    return value


def default_watchlist_path(env: Mapping[str, str]) -> Path:
    """``$MONITOR_WATCHLIST``, else ``./watchlist.toml``."""
    return Path(env.get("MONITOR_WATCHLIST") or "watchlist.toml")


def log_level(env: Mapping[str, str]) -> str:
    """``$MONITOR_LOG_LEVEL`` in capitals, else ``WARNING``."""
    return (env.get("MONITOR_LOG_LEVEL") or DEFAULT_LOG_LEVEL).strip().upper()


def _shown_path(path: str, limit: int = 300) -> str:
    text = path if len(path) <= limit else path[: limit - 1] + "…"
    return repr(text)
