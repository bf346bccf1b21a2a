"""Which message format a target gets, and how long its messages may be.

A format names both the markup :mod:`monitor.messages.render` writes and the
``body_format`` apprise is told (so apprise converts it correctly for the
service, or leaves it alone):

========  ===============  ===========================================================
format    apprise format   used for
========  ===============  ===========================================================
slack     markdown         ``slack://``, ``slacks://``: CommonMark that apprise turns
                           into Slack mrkdwn (``*bold*``, ``<url|text>``)
telegram  html             ``tgram://``: Telegram's HTML subset, title in the body
email     html             ``mailto://``, ``mailtos://`` and e-mail APIs: an HTML page
                           plus a plain-text alternative
markdown  markdown         Discord and services whose native format is Markdown
html      html             other HTML services, or a target with ``format = "html"``
text      text             everything else (``json://``, ``form://``, ``xml://``, …)
========  ===============  ===========================================================

No function here ever puts a URL in an error message: target URLs hold secrets.
"""

from __future__ import annotations

__all__ = [
    "BODY_FORMATS",
    "DEFAULT_LIMITS",
    "FORMAT_NAMES",
    "format_for_url",
    "limit_for_url",
]

#: Every format :func:`monitor.messages.render.render` understands.
FORMAT_NAMES = ("slack", "telegram", "email", "markdown", "html", "text")

#: The apprise ``body_format`` each format's body is written in.
BODY_FORMATS = {
    "slack": "markdown",
    "telegram": "html",
    "email": "html",
    "markdown": "markdown",
    "html": "html",
    "text": "text",
}

#: Default size limit (characters of title plus body) per format; None is unlimited.
#: Telegram refuses messages over 4,096 characters. Slack accepts ~40,000 in a
#: message but 3,000 in a Block Kit section (apprise's ``blocks=yes`` mode), and a
#: longer alert is unreadable anyway. E-mail has no practical limit.
DEFAULT_LIMITS: dict[str, int | None] = {
    "slack": 3000,
    "telegram": 4096,
    "email": None,
    "markdown": 4000,
    "html": 4000,
    "text": 4000,
}

_EMAIL_SCHEMES = [
    "mailto",
    "mailtos",
    "ses",
    "sendgrid",
    "mailgun",
    "sparkpost",
    "postmark",
    "resend",
    "smtp2go",
    "brevo",
    "mailersend",
    "sendpulse",
    "o365",
    "azure",
    "acs",
    "groundmail",
]
_MARKDOWN_SCHEMES = [
    "discord",
    "gchat",
    "rocket",
    "rockets",
    "cliq",
    "zcliq",
    "zohocliq",
    "webex",
    "wxteams",
    "github",
    "reddit",
    "twist",
    "kook",
    "squadcast",
]

#: Native format per apprise scheme; any other scheme gets "text".
_SCHEME_FORMATS: dict[str, str] = {
    "slack": "slack",
    "slacks": "slack",
    "tgram": "telegram",
    "pushplus": "html",
    "wecom": "html",
    **dict.fromkeys(_EMAIL_SCHEMES, "email"),
    **dict.fromkeys(_MARKDOWN_SCHEMES, "markdown"),
}

#: Services whose limit is below their format's default.
_SCHEME_LIMITS = {"discord": 2000}

#: What a target's ``format`` override turns into, per native format of its service.
_OVERRIDES: dict[str, dict[str, str]] = {
    "text": {},
    "markdown": {"slack": "slack"},
    "html": {"telegram": "telegram", "email": "email"},
}


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.strip().lower() if sep else ""


def format_for_url(url: str, override: str | None = None) -> str:
    """The message format for an apprise URL, honouring a target's ``format`` override.

    The override is one of the watchlist's ``"markdown"``, ``"text"``,
    ``"html"``; a service keeps its own dialect of that family (``"html"``
    for ``tgram://`` stays ``"telegram"``, for ``mailto://`` ``"email"``).
    Raises ValueError for another override (naming it, never the URL).
    """
    native = _SCHEME_FORMATS.get(_scheme(url), "text")
    if override is None:
        return native
    if override not in _OVERRIDES:
        raise ValueError(f"unknown message format {override!r} (use markdown, text or html)")
    return _OVERRIDES[override].get(native, override)


def limit_for_url(url: str) -> int | None:
    """A service-specific size limit stricter than its format's default, else None.

    Pass it as ``render(..., limit=...)``; None there means the format's default.
    """
    return _SCHEME_LIMITS.get(_scheme(url))
