"""Tests of message rendering: every format, escaping, size limits, templates, digests."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any
from unittest import mock

import apprise
import pytest

from monitor.alerts.model import Alert, AlertGroup
from monitor.messages.formats import DEFAULT_LIMITS, FORMAT_NAMES
from monitor.messages.render import (
    Rendered,
    format_for_url,
    limit_for_url,
    render,
)
from monitor.messages.render import test_message as sample_message

D = Decimal
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
URL = "https://detail.1688.com/offer/1.html"

DROP = Alert(
    "price_drop", sku_id="s1", sku_name="White / L", old=D("29.89"), new=D("25.90"), pct=D("-13.3")
)
TIER = Alert("tier_change", min_qty=100, old=D("27.60"), new=D("27.00"), pct=D("-2.2"))
SMALL = AlertGroup(
    item_id=1,
    name="Robe",
    title="Leopard robe",
    url=URL,
    shop="Yiwu Shop",
    image="https://img.example/1.jpg",
    currency="CNY",
    detected_at=T0,
    alerts=(DROP, TIER),
)
CHANGES = "White / L: ¥29.89 → ¥25.90 (−13.3%)", "≥100 pcs: ¥27.60 → ¥27.00 (−2.2%)"

EXPECTED = {
    "text": (
        "Robe: 2 changes",
        f"Robe\nLeopard robe\n{URL}\nShop: Yiwu Shop\n\n• {CHANGES[0]}\n• {CHANGES[1]}",
        "text",
    ),
    "markdown": (
        "Robe: 2 changes",
        f"**Robe**\n[Leopard robe](<{URL}>)\nShop: Yiwu Shop\n\n- {CHANGES[0]}\n- {CHANGES[1]}",
        "markdown",
    ),
    "slack": (
        "Robe: 2 changes",
        f"**Robe**\n[Leopard robe](<{URL}>)\nShop: Yiwu Shop\n\n• {CHANGES[0]}\n• {CHANGES[1]}",
        "markdown",
    ),
    "telegram": (
        "",
        f'<b><a href="{URL}">Robe</a>: 2 changes</b>\nLeopard robe\nShop: Yiwu Shop\n\n'
        f"• {CHANGES[0]}\n• {CHANGES[1]}",
        "html",
    ),
    "html": (
        "Robe: 2 changes",
        f'<b>Robe</b><br>\n<a href="{URL}">Leopard robe</a><br>\nShop: Yiwu Shop<br>\n<br>\n'
        f"• {CHANGES[0]}<br>\n• {CHANGES[1]}",
        "html",
    ),
    "email": (
        "Robe: 2 changes",
        "<!DOCTYPE html>\n"
        '<html><head><meta charset="utf-8"><title>Robe: 2 changes</title></head>\n'
        '<body style="font-family: Arial, Helvetica, sans-serif; font-size: 14px;">\n'
        '<h3 style="margin: 0 0 4px;">Robe</h3>\n'
        f'<p style="margin: 0 0 8px;"><a href="{URL}">Leopard robe</a><br>Shop: Yiwu Shop</p>\n'
        f"<ul>\n<li>{CHANGES[0]}</li>\n<li>{CHANGES[1]}</li>\n</ul>\n"
        '<p><img src="https://img.example/1.jpg" alt="" width="160"></p>\n'
        "</body></html>\n",
        "html",
    ),
}


def group(**kw: Any) -> AlertGroup:
    return replace(SMALL, **kw)


def many(n: int, **kw: Any) -> AlertGroup:
    alerts = tuple(
        Alert("price_drop", sku_id=str(i), sku_name=f"Colour {i} / XL", old=D("30"), new=D("25"))
        for i in range(n)
    )
    return group(alerts=alerts, **kw)


class TagChecker(HTMLParser):
    """Collects tags and checks that every one is closed, in order."""

    VOID = frozenset({"br", "img", "meta", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def size(fmt: str, rendered: Rendered) -> int:
    """Title, a line break and body, as the service counts them (see render's measures)."""
    body = rendered.body
    total = len(rendered.title) + 1 if rendered.title else 0
    if fmt == "telegram":
        return total + len(body) + body.count("\n")
    if fmt == "slack":
        return total + len(body) + 4 * body.count("&") + 2 * (body.count("\\<") + body.count("\\>"))
    return total + len(body)


def check_html(body: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(body)
    checker.close()
    assert checker.stack == [], f"unclosed: {checker.stack}"
    return checker


# -- each format -------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_each_format_exactly(fmt: str) -> None:
    title, body, body_format = EXPECTED[fmt]
    rendered = render([SMALL], fmt=fmt)
    assert (rendered.title, rendered.body, rendered.body_format) == (title, body, body_format)


def test_email_has_a_plain_text_part() -> None:
    rendered = render([SMALL], fmt="email")
    assert rendered.text_body == EXPECTED["text"][1]
    assert render([SMALL], fmt="text").text_body is None


@pytest.mark.parametrize(
    ("fmt", "attach"),
    [
        ("telegram", "https://img.example/1.jpg"),
        ("markdown", "https://img.example/1.jpg"),
        ("slack", None),
        ("email", None),
        ("text", None),
        ("html", None),
    ],
)
def test_image_is_attached_where_the_service_takes_one(fmt: str, attach: str | None) -> None:
    assert render([SMALL], fmt=fmt).attach == attach
    assert render([SMALL, SMALL], fmt=fmt).attach is None
    assert render([group(image="javascript:alert(1)")], fmt=fmt).attach is None


def test_without_a_name_the_title_is_the_linked_heading() -> None:
    unnamed = group(name=None, shop=None, alerts=(DROP,))
    assert (
        render([unnamed], fmt="markdown").body == f"**[Leopard robe](<{URL}>)**\n\n- {CHANGES[0]}"
    )
    assert render([unnamed], fmt="telegram").body == (
        f'<b><a href="{URL}">Leopard robe</a>: price drop −13.3%</b>\n\n• {CHANGES[0]}'
    )
    assert render([unnamed], fmt="text").title == "Leopard robe: price drop −13.3%"


@pytest.mark.parametrize(
    ("alert", "line"),
    [
        (
            Alert("target_price", sku_id="s", sku_name="Red", old=D("26"), new=D("25.9")),
            "Red: ¥25.90, at or below your target ¥26.00",
        ),
        (
            Alert("low_stock", sku_id="s", sku_name="Red", old=10, new=4),
            "Red: low stock, 4 left (alert at 10 or less)",
        ),
        (
            Alert("poll_failing", note="3 failed polls in a row: timeout"),
            "polling is failing: 3 failed polls in a row: timeout",
        ),
        (Alert("poll_failing", note="recovered"), "polling works again"),
        (Alert("sold_out", sku_id="s", sku_name="Red", old=3, new=0), "Red: sold out"),
        (
            Alert("tier_change", min_qty=300, new=D("25.9")),
            "≥300 pcs: new quantity break at ¥25.90",
        ),
        (Alert("item_unavailable"), "offer can no longer be fetched (likely delisted)"),
        (Alert("future_kind", old=1, new=2, note="x"), "future kind: 1 → 2 (x)"),
    ],
)
def test_alert_lines(alert: Alert, line: str) -> None:
    assert render([group(alerts=(alert,))], fmt="text").body.endswith(f"\n• {line}")


# -- escaping ----------------------------------------------------------------

HOSTILE_TITLE = "<b>Robe</b> & *bold* _it_ [x](y) `c` \\<i> #1 &amp; <!channel>"
HOSTILE_SKU = "<script>red</script> *_~|>#+-=.!{}()[]` &"
HOSTILE = group(
    name=None,
    title=HOSTILE_TITLE,
    shop="Shop <@U123> & co",
    alerts=(replace(DROP, sku_name=HOSTILE_SKU),),
)


def test_telegram_escapes_html_and_leaves_markdown_specials_alone() -> None:
    body = render([HOSTILE], fmt="telegram").body
    checker = check_html(body)
    assert checker.tags == {"b", "a"}
    text = "".join(checker.text)
    assert HOSTILE_TITLE in text
    assert HOSTILE_SKU in text
    assert "&lt;script&gt;red&lt;/script&gt; *_~|&gt;#+-=.!{}()[]` &amp;" in body
    assert "&amp;amp;" in body


def test_email_and_html_escape_everything() -> None:
    for fmt in ("email", "html"):
        checker = check_html(render([HOSTILE], fmt=fmt).body)
        assert "script" not in checker.tags and "i" not in checker.tags
        assert HOSTILE_SKU in "".join(checker.text)


def test_markdown_escapes_commonmark() -> None:
    body = render([HOSTILE], fmt="markdown").body
    assert body.startswith(
        "**[\\<b\\>Robe\\</b\\> \\& \\*bold\\* \\_it\\_ \\[x\\](y) \\`c\\` \\\\\\<i\\> #1 \\&amp; "
        "\\<!channel\\>](<https://detail.1688.com/offer/1.html>)**\n"
    )
    assert "- \\<script\\>red\\</script\\> \\*\\_\\~\\|\\>#+-=.!{}()\\[\\]\\` \\&: " in body


def test_markdown_escapes_block_starts() -> None:
    body = render([group(name="# 1. not a heading", title="1. Robe")], fmt="markdown").body
    assert body.startswith("**\\# 1. not a heading**\n[1\\. Robe](<")


def test_slack_neutralises_links_and_mentions() -> None:
    body = render([HOSTILE], fmt="slack").body
    assert "<!channel>" not in body and "<@U123>" not in body
    assert "\\<!channel\\>" in body and "Shop: Shop \\<@U123\\> & co" in body
    # "&" stays raw: apprise's Slack conversion turns it into "&amp;" exactly once.
    assert "\\&" not in body


def test_line_breaks_in_names_cannot_forge_lines() -> None:
    forged = group(alerts=(replace(DROP, sku_name="Red\n• Blue: ¥1 → ¥0.01\r\x00"),))
    for fmt in FORMAT_NAMES:
        body = render([forged], fmt=fmt).body
        assert "\n• Blue" not in body and "\n- Blue" not in body and "<li>" + "Blue" not in body
        assert "\x00" not in body and "\r" not in body


# -- size limits -------------------------------------------------------------


def test_telegram_limit_with_300_changes() -> None:
    rendered = render([many(300)], fmt="telegram")
    body = rendered.body
    assert len(body) <= 4096
    assert len(body) + body.count("\n") <= 4096  # as apprise sends it, with "\r\n"
    shown = body.count("\n• ")
    assert 0 < shown < 300
    assert body.endswith(f"\n… and {300 - shown} more changes")
    check_html(body)
    # Nothing was left out that would still fit: one more line breaks the limit.
    line = "\n• Colour 299 / XL: ¥30.00 → ¥25.00"
    assert len(body) + body.count("\n") + len(line) + 1 > 4096


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("limit", [700, 1000, 2500])
def test_every_format_fits_an_explicit_limit(fmt: str, limit: int) -> None:
    rendered = render([many(200, title="&<>" * 10)], fmt=fmt, limit=limit)
    assert size(fmt, rendered) <= limit
    assert "more changes" in rendered.body
    if fmt in ("telegram", "email", "html"):
        check_html(rendered.body)


def test_default_limits() -> None:
    assert DEFAULT_LIMITS["telegram"] == 4096
    assert len(render([many(300)], fmt="text").body) <= 4000
    assert len(render([many(300)], fmt="slack").body) <= 3000
    email = render([many(300)], fmt="email")
    assert email.body.count("<li>") == 300
    assert email.text_body is not None and email.text_body.count("\n• ") == 300


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("limit", [0, 5, 40, 120])
def test_tiny_limits_never_fail(fmt: str, limit: int) -> None:
    rendered = render([many(5, title="x<" * 2500, name=None)], fmt=fmt, limit=limit)
    # The title alone may not fit: then the body is empty rather than over the limit.
    assert size(fmt, rendered) <= limit or rendered.body == ""
    if fmt in ("telegram", "html", "email"):
        check_html(rendered.body)


def test_long_titles_are_shortened_before_giving_up() -> None:
    rendered = render([many(3, name=None, title="长" * 6000)], fmt="telegram")
    assert len(rendered.body) <= 4096
    assert "长…" in rendered.body


# -- templates ---------------------------------------------------------------

TEMPLATE = "{count} change(s) for {name}: {title}\n{changes}\n{url} ({item_id}, {shop})"


def test_template_fills_the_body_with_escaped_values() -> None:
    hostile = group(title="A <b> & B")
    text = render([hostile], fmt="text", template=TEMPLATE).body
    assert text == (
        f"2 change(s) for Robe: A <b> & B\n• {CHANGES[0]}\n• {CHANGES[1]}\n{URL} (1, Yiwu Shop)"
    )
    telegram = render([hostile], fmt="telegram", template=TEMPLATE).body
    assert telegram == (
        "<b>Robe: 2 changes</b>\n\n"
        f"2 change(s) for Robe: A &lt;b&gt; &amp; B\n• {CHANGES[0]}\n• {CHANGES[1]}\n"
        f"{URL} (1, Yiwu Shop)"
    )
    email = render([hostile], fmt="email", template=TEMPLATE)
    assert "<div>2 change(s) for Robe: A &lt;b&gt; &amp; B<br>\n• " in email.body
    assert email.text_body is not None and email.text_body.startswith("2 change(s) for Robe: A <b>")


def test_template_format_specs_and_markup() -> None:
    body = render([SMALL], fmt="telegram", template="<i>{count:>3}</i> {name}").body
    assert body.endswith("<i>  2</i> Robe")


@pytest.mark.parametrize(
    "bad", ["{price}", "{0}", "{}", "{title.upper}", "{shop[0]}", "{count:q}", "{", "}"]
)
def test_broken_template_falls_back_to_the_built_in_layout(bad: str) -> None:
    assert render([SMALL], fmt="text", template=bad).body == EXPECTED["text"][1]


def test_template_changes_are_shortened_to_fit() -> None:
    rendered = render([many(300)], fmt="telegram", template="{name}\n{changes}\n{url}")
    assert len(rendered.body) + rendered.body.count("\n") <= 4096
    assert rendered.body.endswith(f"more changes\n{URL}")


# -- digests -----------------------------------------------------------------


def test_digest_lists_each_item() -> None:
    second = group(
        item_id=2, name=None, title="Silk scarf", url=URL.replace("1", "2"), alerts=(TIER,)
    )
    third = group(item_id=3, name="Mug", alerts=(DROP, TIER, DROP))
    text = render([SMALL, second, third], fmt="text")
    assert text.title == "1688 digest: 3 items, 6 changes"
    assert text.body.split("\n\n") == [
        f"Robe\nLeopard robe\n{URL}\nShop: Yiwu Shop",
        f"• {CHANGES[0]}\n• {CHANGES[1]}",
        "Silk scarf\nhttps://detail.2688.com/offer/2.html\nShop: Yiwu Shop",
        f"• {CHANGES[1]}",
        f"Mug\nLeopard robe\n{URL}\nShop: Yiwu Shop",
        f"• {CHANGES[0]}\n• {CHANGES[1]}\n• {CHANGES[0]}",
    ]
    telegram = render([SMALL, second, third], fmt="telegram").body
    assert telegram.startswith("<b>1688 digest: 3 items, 6 changes</b>\n\n<b>Robe</b>\n<a href=")
    check_html(telegram)


def test_digest_over_the_limit_shortens_lists_then_drops_items() -> None:
    groups = [many(40, item_id=i, name=f"Item {i}") for i in range(60)]
    rendered = render(groups, fmt="telegram")
    body = rendered.body
    assert len(body) + body.count("\n") <= 4096
    assert "<b>Item 0</b>" in body
    hidden = 60 - body.count("<b>Item ")
    assert hidden > 0
    assert body.endswith(f"… and {hidden} more items ({hidden * 40} changes)")
    check_html(body)


# -- formats -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "override", "fmt"),
    [
        ("slack://T1/B2/C3/#deals", None, "slack"),
        ("slacks://T1/B2/C3", None, "slack"),
        ("tgram://123:abc/456", None, "telegram"),
        ("mailto://user:pass@example.com", None, "email"),
        ("mailtos://user:pass@example.com", None, "email"),
        ("sendgrid://key:from@example.com/to@example.com", None, "email"),
        ("json://example.com/hook", None, "text"),
        ("form://example.com/hook", None, "text"),
        ("xml://example.com/hook", None, "text"),
        ("discord://id/token", None, "markdown"),
        ("ntfy://topic", None, "text"),
        ("SLACK://T1/B2/C3", None, "slack"),
        ("not a url", None, "text"),
        ("tgram://123:abc/456", "html", "telegram"),
        ("tgram://123:abc/456", "markdown", "markdown"),
        ("tgram://123:abc/456", "text", "text"),
        ("mailto://u:p@example.com", "html", "email"),
        ("mailto://u:p@example.com", "text", "text"),
        ("slack://T1/B2/C3", "markdown", "slack"),
        ("slack://T1/B2/C3", "text", "text"),
        ("json://example.com/hook", "html", "html"),
        ("json://example.com/hook", "markdown", "markdown"),
    ],
)
def test_format_for_url(url: str, override: str | None, fmt: str) -> None:
    assert format_for_url(url, override) == fmt
    assert fmt in FORMAT_NAMES


def test_unknown_override_names_it_but_not_the_url() -> None:
    with pytest.raises(ValueError, match="'rtf'") as caught:
        format_for_url("tgram://123:SECRET/456", "rtf")
    assert "SECRET" not in str(caught.value)


def test_limit_for_url() -> None:
    assert limit_for_url("discord://id/token") == 2000
    assert limit_for_url("tgram://123:abc/456") is None


def test_bad_calls() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render([], fmt="text")
    with pytest.raises(ValueError, match="unknown message format"):
        render([SMALL], fmt="rtf")


# -- the test message --------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_test_message_renders_everywhere(fmt: str) -> None:
    sample = sample_message(T0)
    assert sample.detected_at == T0
    assert AlertGroup.from_json(sample.to_json()) == sample
    rendered = render([sample], fmt=fmt)
    assert isinstance(rendered, Rendered)
    assert "¥29.89 → ¥25.90 (−13.3%)" in rendered.body
    assert "≥100 pcs: ¥27.60 → ¥27.00 (−2.2%)" in rendered.body
    assert "at or below your target ¥26.00" in rendered.body
    assert "4 left" in rendered.body


def test_test_message_default_time_is_fixed() -> None:
    assert sample_message() == sample_message()


# -- what the services receive through apprise --------------------------------


class _Answer:
    status_code = 200

    def __init__(self, content: bytes) -> None:
        self.headers: dict[str, str] = {}
        self.content = content
        self.text = content.decode()


SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
TELEGRAM = "tgram://123456789:abcdefg_hijklmnop/12345/"


def sent_through_apprise(url: str, rendered: Rendered) -> list[dict[str, Any]]:
    """The JSON payloads apprise posts for ``rendered`` (HTTP replaced by a fake)."""
    payloads: list[dict[str, Any]] = []

    def request(method: str, target: str, data: str = "", **_: Any) -> _Answer:
        payloads.append(json.loads(data))
        return _Answer(b"ok")

    def post(target: str, data: str = "", **_: Any) -> _Answer:
        payloads.append(json.loads(data))
        return _Answer(b'{"ok": true, "result": {"message_id": 1}}')

    with mock.patch("requests.request", request), mock.patch("requests.post", post):
        instance = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
        assert instance.add(url)
        assert instance.notify(
            body=rendered.body, title=rendered.title, body_format=rendered.body_format
        )
    return payloads


def test_slack_receives_mrkdwn() -> None:
    [payload] = sent_through_apprise(SLACK, render([HOSTILE], fmt="slack"))
    text = payload["attachments"][0]["text"]
    assert text.startswith("*<https://detail.1688.com/offer/1.html|")
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "Shop: Shop &lt;@U123&gt; &amp; co" in text
    [payload] = sent_through_apprise(SLACK, render([SMALL], fmt="slack"))
    assert payload["attachments"][0]["text"] == (
        f"*Robe*\n<{URL}|Leopard robe>\nShop: Yiwu Shop\n\n• {CHANGES[0]}\n• {CHANGES[1]}"
    )


def test_telegram_receives_html_within_its_limit() -> None:
    [payload] = sent_through_apprise(TELEGRAM, render([many(300)], fmt="telegram"))
    assert payload["parse_mode"] == "HTML"
    assert len(payload["text"]) <= 4096
    assert payload["text"].endswith("more changes")
    [payload] = sent_through_apprise(TELEGRAM, render([HOSTILE], fmt="telegram"))
    assert "&lt;script&gt;red&lt;/script&gt;" in payload["text"]
