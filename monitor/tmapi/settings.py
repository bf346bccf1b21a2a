"""How to reach TMAPI: :class:`TmapiSettings`, and reading them from the environment.

:meth:`TmapiSettings.from_env` reads ``TMAPI_TOKEN`` (or ``TMAPI_TOKEN_FILE``),
``TMAPI_BASE_URL`` and ``TMAPI_TIMEOUT`` from an environment mapping; the
constructor checks every value and raises :class:`~monitor.errors.ConfigError`.
The token never appears in the ``repr``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.domain import PollSource
from monitor.errors import ConfigError
from monitor.logs import redact
from monitor.settings import env_secret, environment

__all__ = ["TmapiSettings"]


@dataclass(frozen=True)
class TmapiSettings:
    """How to reach TMAPI and how hard to try.

    ``timeout`` is the overall deadline of one attempt (connect, headers and
    the whole body). ``fetch`` makes at most ``max_attempts`` attempts,
    sleeping a random time in ``[0, min(backoff_max, backoff_base * 2**n)]``
    between them ("full jitter"), or exactly the server's ``Retry-After``.
    """

    token: str | None = None
    base_url: str = "https://api.tmapi.io"
    timeout: float = 60.0
    max_attempts: int = 4
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    #: Whose answers these are: the real TMAPI, or the simulator (``--simulate``).
    source: PollSource = PollSource.TMAPI

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError("TMAPI base URL must start with http:// or https://")
        if self.base_url.endswith("/"):
            object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError(
                f"TMAPI timeout must be a positive number of seconds, not {self.timeout!r}"
            )
        if self.max_attempts < 1:
            raise ConfigError(f"TMAPI max_attempts must be at least 1, not {self.max_attempts!r}")
        if not (self.backoff_base >= 0 and self.backoff_max >= 0):
            raise ConfigError("TMAPI backoff_base and backoff_max must not be negative")

    def __repr__(self) -> str:
        token = "None" if self.token is None else "'***'"
        return (
            f"TmapiSettings(token={token}, base_url={redact(self.base_url)!r}, "
            f"timeout={self.timeout!r}, max_attempts={self.max_attempts!r}, "
            f"backoff_base={self.backoff_base!r}, backoff_max={self.backoff_max!r}, "
            f"source={self.source.value!r})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TmapiSettings:
        """Read ``TMAPI_TOKEN`` (or ``TMAPI_TOKEN_FILE``), ``TMAPI_BASE_URL``, ``TMAPI_TIMEOUT``.

        ``TMAPI_TOKEN_FILE`` names a file holding the token (as Docker
        secrets provide); surrounding whitespace is stripped. Setting both
        token variables is an error, and so is an unreadable or empty file
        (:func:`monitor.settings.env_secret`). ``env`` defaults to
        :func:`monitor.settings.environment`.
        """
        env = environment() if env is None else env
        token = (env_secret(env, "TMAPI_TOKEN") or "").strip() or None
        kwargs: dict[str, Any] = {"token": token}
        base_url = env.get("TMAPI_BASE_URL", "").strip()
        if base_url:
            if not base_url.startswith(("http://", "https://")):
                raise ConfigError("TMAPI_BASE_URL must start with http:// or https://")
            kwargs["base_url"] = base_url
        raw_timeout = env.get("TMAPI_TIMEOUT", "").strip()
        if raw_timeout:
            try:
                timeout = float(raw_timeout)
            except ValueError:
                timeout = math.nan
            if not (math.isfinite(timeout) and timeout > 0):
                raise ConfigError(
                    f"TMAPI_TIMEOUT must be a positive number of seconds, not {raw_timeout!r}"
                )
            kwargs["timeout"] = timeout
        return cls(**kwargs)
