"""Escaping and the few markup pieces messages use, one :class:`Markup` per format.

Every piece of text that comes from 1688 (titles, shop and SKU names) or
from the user (item names) passes through :meth:`Markup.text` before it is
placed in a message: control characters and line breaks become spaces (a
SKU name cannot forge a line of its own) and the characters the format
gives a meaning to are escaped. Markup itself (bold, links) is only ever
produced by the methods here, around text that is already escaped.

Escaping follows what the service finally receives through apprise:

* ``telegram``, ``html``, ``email``: HTML entities for ``& < >`` (and ``"``
  in attributes); Telegram's MarkdownV2 specials are plain text in HTML mode.
* ``markdown``: CommonMark backslash escapes for ``\\ ` * _ [ ] < > | ~ &``
  and for a leading ``# + - =`` or ``1.`` that would start a block.
* ``slack``: the body is CommonMark that apprise converts to Slack mrkdwn.
  ``\\<`` and ``\\>`` become ``&lt;`` / ``&gt;`` (no ``<!channel>`` or
  ``<url|…>`` can be forged), ``\\[ \\]`` become plain brackets, a raw ``&``
  becomes ``&amp;``. ``*``, ``_`` and ``~`` stay as they are: Slack has no
  escape for them, apprise would show the backslash, and at worst they
  emphasise a word.
* ``text``: nothing to escape.
"""

from __future__ import annotations

import html
import re

__all__ = ["MARKUPS", "Markup", "clean"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>|~&])")
_MARKDOWN_BLOCK_MARK = re.compile(r"^([#+\-=])")
_MARKDOWN_ORDERED = re.compile(r"^(\d+)([.)])")
_SLACK_SPECIALS = re.compile(r"([\\`\[\]<>])")
_HTTP_URL = re.compile(r"^https?://[^\s<>\"']+$", re.IGNORECASE)


def clean(text: str) -> str:
    """One line of plain text: control characters and line breaks become single spaces."""
    return _CONTROL.sub(" ", text).strip()


def safe_url(url: str | None) -> str | None:
    """``url`` if it is a plain http(s) URL, else None (no ``javascript:`` links or images)."""
    if url is None:
        return None
    url = url.strip()
    return url if _HTTP_URL.match(url) else None


class Markup:
    """Plain text: no markup at all. Subclasses add escaping, emphasis and links."""

    #: Format name (see :mod:`monitor.messages.formats`).
    name = "text"
    #: Line prefix of one change in a list.
    bullet = "• "
    #: Between two lines of the body.
    newline = "\n"

    def escape(self, text: str) -> str:
        """Escape one line of cleaned text for this format."""
        return text

    def text(self, text: str) -> str:
        """Untrusted text, made safe: :func:`clean` then :meth:`escape`."""
        return self.escape(clean(text))

    def attribute(self, value: str) -> str:
        """A value placed inside an HTML attribute (URLs); unchanged outside HTML."""
        return value

    def bold(self, inner: str) -> str:
        return inner

    def link(self, url: str, label: str) -> str:
        """A link to ``url`` (already checked by :func:`safe_url`) showing escaped ``label``."""
        del url
        return label

    def header(self, label: str, title: str | None, url: str | None) -> list[str]:
        """The first lines of an item's block: its label, the 1688 title if it
        differs, and the link. ``label`` and ``title`` are already escaped."""
        if url is None:
            return [self.bold(label)] + ([title] if title else [])
        if title:
            return [self.bold(label), self.link(url, title)]
        return [self.bold(self.link(url, label))]


class TextMarkup(Markup):
    def header(self, label: str, title: str | None, url: str | None) -> list[str]:
        return [label] + ([title] if title else []) + ([url] if url else [])


class MarkdownMarkup(Markup):
    name = "markdown"
    bullet = "- "

    def escape(self, text: str) -> str:
        text = _MARKDOWN_SPECIALS.sub(r"\\\1", text)
        text = _MARKDOWN_BLOCK_MARK.sub(r"\\\1", text)
        return _MARKDOWN_ORDERED.sub(r"\1\\\2", text)

    def bold(self, inner: str) -> str:
        return f"**{inner}**"

    def link(self, url: str, label: str) -> str:
        return f"[{label}](<{url}>)"


class SlackMarkup(MarkdownMarkup):
    name = "slack"
    bullet = "• "

    def escape(self, text: str) -> str:
        text = _SLACK_SPECIALS.sub(r"\\\1", text)
        return text.replace("#", "\\#", 1) if text.startswith("#") else text


class HtmlMarkup(Markup):
    name = "html"
    newline = "<br>\n"

    def escape(self, text: str) -> str:
        return html.escape(text, quote=False)

    def attribute(self, value: str) -> str:
        return html.escape(value, quote=True)

    def bold(self, inner: str) -> str:
        return f"<b>{inner}</b>"

    def link(self, url: str, label: str) -> str:
        return f'<a href="{self.attribute(url)}">{label}</a>'


class TelegramMarkup(HtmlMarkup):
    """Telegram's HTML subset: ``<b>``, ``<a href>``; line breaks are plain newlines."""

    name = "telegram"
    newline = "\n"


class EmailMarkup(HtmlMarkup):
    name = "email"


#: One markup per format name.
MARKUPS: dict[str, Markup] = {
    markup.name: markup
    for markup in (
        TextMarkup(),
        MarkdownMarkup(),
        SlackMarkup(),
        HtmlMarkup(),
        TelegramMarkup(),
        EmailMarkup(),
    )
}
