"""Turn alert groups into one message for one target format.

:func:`render` takes one :class:`~monitor.alerts.model.AlertGroup` (a
normal message) or several (a daily digest) and returns a :class:`Rendered`
ready for apprise: ``notify(title=r.title, body=r.body,
body_format=r.body_format, attach=r.attach)``. Pure: no I/O, no clock.

A message shows the item's name (if the watchlist gives one) and 1688
title, the link to the offer, the shop, and one line per alert (see
:mod:`monitor.messages.wording`). Formats and what apprise is told are listed
in :mod:`monitor.messages.formats`; escaping in :mod:`monitor.messages.markup`.

Size: each format has a limit (:data:`~monitor.messages.formats.DEFAULT_LIMITS`,
or ``limit=``) on the title, a line break and the body together, measured as
the service will count it. Over the limit, the change lists are shortened to
whole lines followed by "… and N more changes" (a digest first shortens
every item's list, then leaves out whole items: "… and N more items"), then
long titles are shortened, then a template is dropped for the built-in
layout. Rendering never fails on size and never cuts inside an escape
sequence or a tag, since only whole escaped lines are ever left out.

Templates (a target's ``template``) are ``str.format`` strings with the
fields ``{title} {url} {shop} {changes} {item_id} {name} {count}``; the
substituted values are escaped for the format, the template text itself is
taken as markup of that format. A template that fails to format falls back
to the built-in layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from string import Formatter

from monitor.alerts.model import Alert, AlertGroup
from monitor.domain import ChangeKind, offer_url
from monitor.messages.formats import BODY_FORMATS, DEFAULT_LIMITS, format_for_url, limit_for_url
from monitor.messages.markup import MARKUPS, Markup, safe_url
from monitor.messages.wording import count, describe_alert, message_title, shorten, summary
from monitor.watchlist.model import TEMPLATE_FIELDS

__all__ = ["Rendered", "format_for_url", "limit_for_url", "render", "test_message"]

#: Formats whose services take an image attachment (an image URL apprise fetches).
_ATTACHING = ("telegram", "markdown")
#: How long user texts may stay once a message has to be shortened.
_SHORT = 60


@dataclass(frozen=True, slots=True)
class Rendered:
    """One message for one target.

    ``title`` is plain text, or empty where the format puts it in the body
    (Telegram). ``body`` is written in ``body_format`` (``"markdown"``,
    ``"html"`` or ``"text"``, apprise's names). ``text_body`` is a
    plain-text alternative (e-mail only). ``attach`` is the URL of the
    item's main image, for formats whose services can attach one.
    """

    title: str
    body: str
    body_format: str
    text_body: str | None = None
    attach: str | None = None


def render(
    groups: Sequence[AlertGroup],
    *,
    fmt: str,
    template: str | None = None,
    limit: int | None = None,
) -> Rendered:
    """One message about ``groups`` in format ``fmt`` (see :func:`format_for_url`).

    ``limit`` overrides the format's size limit (None: the default, which
    for e-mail is no limit). Raises ValueError only for no groups or an
    unknown format.
    """
    if not groups:
        raise ValueError("render needs at least one alert group")
    if fmt not in MARKUPS:
        raise ValueError(f"unknown message format {fmt!r}")
    cap = DEFAULT_LIMITS[fmt] if limit is None else limit
    title = message_title(groups)
    shown_title = "" if fmt == "telegram" else title
    body = _fit(_writer(MARKUPS[fmt], groups, template, title), cap, shown_title, _MEASURES[fmt])
    text_body = None
    if fmt == "email":
        text_writer = _writer(MARKUPS["text"], groups, template, title)
        text_body = _fit(text_writer, cap, title, len)
    image = safe_url(groups[0].image) if len(groups) == 1 and fmt in _ATTACHING else None
    return Rendered(
        title=shown_title,
        body=body,
        body_format=BODY_FORMATS[fmt],
        text_body=text_body,
        attach=image,
    )


def test_message(now: datetime | None = None) -> AlertGroup:
    """A sample group for ``monitor notify test``: every kind of line a message can have.

    ``now`` stamps it (default: a fixed date, this module reads no clock).
    """
    item_id = 652702302959
    return AlertGroup(
        item_id=item_id,
        name="Leopard robe (test message)",
        title="跨境速卖通女式长款睡衣家居服豹纹款开衫法式浴袍长袖秋冬睡袍",
        url=offer_url(item_id),
        shop="灌云县伊山镇春霞服装厂",
        image="https://cbu01.alicdn.com/img/ibank/O1CN01gEiAAA1tfzhab0NhS_!!2214636595930-0-cib.jpg",
        currency="CNY",
        detected_at=now or datetime(2025, 1, 1, tzinfo=UTC),
        alerts=(
            Alert(
                ChangeKind.PRICE_DROP,
                sku_id="5674557541674",
                sku_name="白色豹纹 / L",
                old=Decimal("29.89"),
                new=Decimal("25.90"),
                pct=Decimal("-13.3"),
            ),
            Alert(
                ChangeKind.TARGET_PRICE,
                sku_id="5674557541674",
                sku_name="白色豹纹 / L",
                old=Decimal("26.00"),
                new=Decimal("25.90"),
            ),
            Alert(
                ChangeKind.LOW_STOCK,
                sku_id="5674557541667",
                sku_name="肤色豹纹 / S",
                old=10,
                new=4,
            ),
            Alert(
                ChangeKind.TIER_CHANGE,
                min_qty=100,
                old=Decimal("27.60"),
                new=Decimal("27.00"),
                pct=Decimal("-2.2"),
            ),
        ),
    )


# -- measuring ---------------------------------------------------------------


def _telegram_size(body: str) -> int:
    # apprise sends every line break as "\r\n".
    return len(body) + body.count("\n")


def _slack_size(body: str) -> int:
    # apprise's Slack conversion turns "&" into "&amp;" and "\<" / "\>" into "&lt;" / "&gt;".
    return len(body) + 4 * body.count("&") + 2 * (body.count("\\<") + body.count("\\>"))


_MEASURES: dict[str, Callable[[str], int]] = {
    "telegram": _telegram_size,
    "slack": _slack_size,
    "email": len,
    "markdown": len,
    "html": len,
    "text": len,
}


# -- layout ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cut:
    """How much of the message to show."""

    items: int  # groups shown, the rest summarised in one line
    changes: int  # most changes shown per group
    short: bool = False  # shorten titles, names and shops
    template: bool = True  # use the template (if there is one)


class _Writer:
    """Writes the body of one message for one format, cut as asked."""

    def __init__(
        self, markup: Markup, groups: Sequence[AlertGroup], template: str | None, title: str
    ) -> None:
        self.markup = markup
        self.groups = groups
        self.title = title
        self.lines = [[describe_alert(a, g.currency) for a in g.alerts] for g in groups]
        self.template = template if template and self._template_works(template) else None

    @property
    def most_changes(self) -> int:
        return max(len(lines) for lines in self.lines)

    def body(self, cut: _Cut) -> str:
        m = self.markup
        blocks = [self._block(i, cut) for i in range(cut.items)]
        hidden = self.groups[cut.items :]
        if hidden:
            blocks.append(m.text(_more_items(hidden)))
        head = [m.bold(m.text(self._title(cut)))] if self._titled_body(cut) else []
        return (m.newline * 2).join([*head, *blocks])

    def _titled_body(self, cut: _Cut) -> bool:
        """Telegram has no title field: a digest or a template gets it as a first line
        (a single item's heading says it all; see :meth:`_block`)."""
        templated = self.template is not None and cut.template
        return self.markup.name == "telegram" and (len(self.groups) > 1 or templated)

    def _title(self, cut: _Cut) -> str:
        return shorten(self.title, _SHORT) if cut.short else self.title

    def _text(self, text: str, cut: _Cut) -> str:
        return self.markup.text(shorten(text, _SHORT) if cut.short else text)

    def _changes(self, index: int, cut: _Cut) -> list[str]:
        """The escaped change lines of one group, cut to ``cut.changes`` plus a "more" line."""
        lines = self.lines[index]
        shown = [self.markup.bullet + self.markup.text(line) for line in lines[: cut.changes]]
        more = len(lines) - len(shown)
        if more:
            shown.append(self.markup.text(_more_changes(more)))
        return shown

    def _block(self, index: int, cut: _Cut) -> str:
        if self.template is not None and cut.template:
            return self._fill(self.template, index, cut).replace("\n", self.markup.newline)
        group, m = self.groups[index], self.markup
        title = self._text(group.title, cut) if group.name else None
        label, url = self._text(group.label, cut), safe_url(group.url)
        if m.name == "telegram" and len(self.groups) == 1:
            heading = m.link(url, label) if url else label
            lines = [m.bold(f"{heading}: {m.text(summary(group))}")] + ([title] if title else [])
        else:
            lines = m.header(label, title, url)
        if group.shop:
            lines.append(f"Shop: {self._text(group.shop, cut)}")
        return m.newline.join([*lines, "", *self._changes(index, cut)])

    def _fill(self, template: str, index: int, cut: _Cut) -> str:
        group, m = self.groups[index], self.markup
        return template.format(
            title=self._text(group.title, cut),
            url=m.attribute(safe_url(group.url) or ""),
            shop=self._text(group.shop or "", cut),
            changes="\n".join(self._changes(index, cut)),
            item_id=group.item_id,
            name=self._text(group.label, cut),
            count=len(group.alerts),
        )

    def _template_works(self, template: str) -> bool:
        """Only plain field names (``{title}``, ``{count:>3}``) and a template that formats."""
        try:
            fields = [field for _, field, _, _ in Formatter().parse(template) if field is not None]
            if any(field not in TEMPLATE_FIELDS for field in fields):
                return False
            self._fill(template, 0, _Cut(items=1, changes=1))
        except (KeyError, IndexError, ValueError, AttributeError, TypeError):
            return False
        return True


class _EmailWriter(_Writer):
    """An HTML page: one section per item, changes as a list, the main image."""

    def body(self, cut: _Cut) -> str:
        m = self.markup
        sections = [self._section(i, cut) for i in range(cut.items)]
        hidden = self.groups[cut.items :]
        if hidden:
            sections.append(f"<p>{m.text(_more_items(hidden))}</p>")
        return (
            "<!DOCTYPE html>\n"
            '<html><head><meta charset="utf-8">'
            f"<title>{m.text(self._title(cut))}</title></head>\n"
            '<body style="font-family: Arial, Helvetica, sans-serif; font-size: 14px;">\n'
            + "\n<hr>\n".join(sections)
            + "\n</body></html>\n"
        )

    def _section(self, index: int, cut: _Cut) -> str:
        if self.template is not None and cut.template:
            return f"<div>{self._block(index, cut)}</div>"
        group, m = self.groups[index], self.markup
        url = safe_url(group.url)
        label = self._text(group.label, cut)
        heading = m.link(url, label) if url and not group.name else label
        out = [f'<h3 style="margin: 0 0 4px;">{heading}</h3>']
        about = []
        if group.name:
            title = self._text(group.title, cut)
            about.append(m.link(url, title) if url else title)
        if group.shop:
            about.append(f"Shop: {self._text(group.shop, cut)}")
        if about:
            out.append(f'<p style="margin: 0 0 8px;">{"<br>".join(about)}</p>')
        lines = self.lines[index]
        out.append("<ul>")
        out.extend(f"<li>{m.text(line)}</li>" for line in lines[: cut.changes])
        out.append("</ul>")
        more = len(lines) - min(cut.changes, len(lines))
        if more:
            out.append(f"<p>{m.text(_more_changes(more))}</p>")
        image = safe_url(group.image)
        if image:
            out.append(f'<p><img src="{m.attribute(image)}" alt="" width="160"></p>')
        return "\n".join(out)


def _more_changes(n: int) -> str:
    return f"… and {n} more change" if n == 1 else f"… and {n} more changes"


def _more_items(groups: Sequence[AlertGroup]) -> str:
    changes = sum(len(g.alerts) for g in groups)
    return f"… and {count(len(groups), 'more item')} ({count(changes, 'change')})"


def _writer(
    markup: Markup, groups: Sequence[AlertGroup], template: str | None, title: str
) -> _Writer:
    cls = _EmailWriter if markup.name == "email" else _Writer
    return cls(markup, groups, template, title)


# -- fitting -----------------------------------------------------------------


def _largest(low: int, high: int, fits: Callable[[int], bool]) -> int:
    """The largest n in [low, high] with ``fits(n)``, given ``fits(low)`` and monotony."""
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _fit(writer: _Writer, cap: int | None, title: str, measure: Callable[[str], int]) -> str:
    """The fullest body of ``writer`` that keeps the message within ``cap``."""
    items, most = len(writer.groups), writer.most_changes
    if cap is None:
        return writer.body(_Cut(items, most))
    overhead = len(title) + 1 if title else 0

    def fits(cut: _Cut) -> bool:
        return overhead + measure(writer.body(cut)) <= cap

    for template in (True, False) if writer.template else (False,):
        for short in (False, True):
            cut = _best_cut(items, most, short, template, fits)
            if cut is not None:
                return writer.body(cut)
    # Not even one item's heading fits: the shortest message that does.
    for length in (200, 100, 50, 20):
        body = writer.markup.text(shorten(writer.title, length))
        if overhead + measure(body) <= cap:
            return body
    return ""


def _best_cut(
    items: int, most: int, short: bool, template: bool, fits: Callable[[_Cut], bool]
) -> _Cut | None:
    """The most items, then the most changes per item, that fit; None if one heading does not."""
    full = _Cut(items, most, short, template)
    if fits(full):
        return full
    if not fits(_Cut(1, 0, short, template)):
        return None
    shown = _largest(1, items, lambda n: fits(_Cut(n, 0, short, template)))
    changes = _largest(0, most, lambda n: fits(_Cut(shown, n, short, template)))
    return _Cut(shown, changes, short, template)
