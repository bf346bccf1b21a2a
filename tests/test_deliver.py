"""Delivery through real apprise to real receivers on 127.0.0.1, on SQLite and PostgreSQL.

Each test drives ``deliver_due`` with an injected ``now``; retry times are
checked in the database instead of waited for.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from monitor.db import outbox
from monitor.db.outbox import OutboxState
from monitor.db.outbox_list import list_notifications
from monitor.db.store import Store
from monitor.logs import register_secret, setup_logging
from monitor.messages.render import Rendered
from monitor.notify.deliver import (
    DeliveryReport,
    DeliveryStatus,
    RetryPolicy,
    deliver_due,
)
from monitor.notify.sender import AppriseSender, SendResult
from monitor.watchlist.model import Target
from monitor.watchlist.urls import url_secrets
from tests.factories import ITEM_ID, at
from tests.outbox_helpers import SHANGHAI, group, record_poll, rows, target
from tests.receivers import Answer, SmtpReceiver, WebhookReceiver

OTHER_ITEM = 610947572360
DEAD_AFTER = timedelta(hours=1)
NO_JITTER = RetryPolicy(jitter=0)


@pytest.fixture
def sender() -> AppriseSender:
    # No pause between two e-mails to the same server (apprise's default is 5.5 s).
    return AppriseSender(timeout=10, min_interval=0)


async def deliver(
    store: Store,
    sender: AppriseSender,
    targets: list[Target],
    now: datetime,
    *,
    owner: str = "w1",
    dead_after: timedelta = DEAD_AFTER,
    **options: Any,
) -> DeliveryReport:
    return await deliver_due(
        store.engine,
        {t.name: t for t in targets},
        owner=owner,
        now=now,
        dead_after=dead_after,
        sender=sender,
        policy=NO_JITTER,
        **options,
    )


def statuses(report: DeliveryReport) -> list[tuple[str, DeliveryStatus]]:
    return sorted((d.target, d.status) for d in report.deliveries)


async def test_webhook_gets_exactly_one_message_and_a_restart_sends_nothing(
    store: Store, webhook: WebhookReceiver, sender: AppriseSender
) -> None:
    hook = target("hook", webhook.json_url("/hook"))
    record_poll(store, group(when=at(0)), [hook], at(0))

    report = await deliver(store, sender, [hook], at(0))
    assert statuses(report) == [("hook", DeliveryStatus.SENT)]
    (post,) = webhook.received()
    body = post.json()
    assert "Leopard robe" in body["title"]
    assert "25.90" in body["message"]
    assert f"https://detail.1688.com/offer/{ITEM_ID}.html" in body["message"]
    (row,) = rows(store.engine)
    assert (row.state, row.attempts, row.sent_at) == ("sent", 1, at(0))

    # A restarted process (new sender, new owner) later on: nothing to send again.
    fresh = AppriseSender(timeout=10, min_interval=0)
    again = await deliver(store, fresh, [hook], at(30), owner="w2")
    assert again.deliveries == ()
    assert len(webhook.received()) == 1


async def test_email_arrives_once_with_html_and_plain_text(
    store: Store, smtp: SmtpReceiver, sender: AppriseSender
) -> None:
    mail = target("mail", smtp.mailto_url())
    record_poll(store, group(when=at(0), kinds=("price_drop", "sold_out")), [mail], at(0))

    report = await deliver(store, sender, [mail], at(0))
    assert statuses(report) == [("mail", DeliveryStatus.SENT)]
    (message,) = smtp.messages
    assert message["To"] == "buyer@example.com"
    assert message["From"] == "monitor@example.com"
    assert "Leopard robe" in str(message["Subject"])
    parts = {
        part.get_content_type(): str(part.get_content())
        for part in message.walk()
        if not part.is_multipart()
    }
    assert set(parts) == {"text/plain", "text/html"}
    assert "<li>" in parts["text/html"]
    assert "25.90" in parts["text/plain"]
    assert "<li>" not in parts["text/plain"]
    assert smtp.logins == [("monitor", "smtp-pass-4711")]


async def test_a_failing_target_recovers_and_never_resends_to_the_healthy_one(
    store: Store, webhook: WebhookReceiver, sender: AppriseSender
) -> None:
    flaky = target("flaky", webhook.json_url("/flaky"))
    healthy = target("healthy", webhook.json_url("/healthy"))
    webhook.script("/flaky", Answer(500), Answer(500))
    record_poll(store, group(when=at(0)), [flaky, healthy], at(0))

    first = await deliver(store, sender, [flaky, healthy], at(0))
    assert statuses(first) == [("flaky", DeliveryStatus.RETRY), ("healthy", DeliveryStatus.SENT)]
    (retry,) = [d for d in first.deliveries if d.status is DeliveryStatus.RETRY]
    assert retry.next_attempt_at == at(0, seconds=30)
    assert retry.error is not None and "500" in retry.error

    assert (await deliver(store, sender, [flaky, healthy], at(0, seconds=29))).deliveries == ()
    second = await deliver(store, sender, [flaky, healthy], at(0, seconds=30))
    assert statuses(second) == [("flaky", DeliveryStatus.RETRY)]
    assert second.deliveries[0].next_attempt_at == at(0, seconds=90)  # 60 s after the 2nd try
    third = await deliver(store, sender, [flaky, healthy], at(0, seconds=90))
    assert statuses(third) == [("flaky", DeliveryStatus.SENT)]

    assert len(webhook.received("/healthy")) == 1
    assert len(webhook.received("/flaky")) == 3  # two refused, one accepted
    by_target = {r.target: r for r in rows(store.engine)}
    assert (by_target["flaky"].state, by_target["flaky"].attempts) == ("sent", 3)
    assert by_target["flaky"].last_error is None
    assert (by_target["healthy"].state, by_target["healthy"].attempts) == ("sent", 1)


async def test_after_a_failure_the_targets_other_messages_wait_untried(
    store: Store, webhook: WebhookReceiver, sender: AppriseSender
) -> None:
    hook = target("hook", webhook.json_url("/hook"))
    webhook.script("/hook", Answer(503))
    record_poll(store, group(when=at(0)), [hook], at(0))
    record_poll(store, group(OTHER_ITEM, when=at(0)), [hook], at(0, seconds=1))

    report = await deliver(store, sender, [hook], at(1))
    assert [d.status for d in report.deliveries] == [DeliveryStatus.RETRY, DeliveryStatus.DEFERRED]
    assert len(webhook.received()) == 1
    first, second = rows(store.engine)
    assert (first.attempts, second.attempts) == (1, 0)
    assert first.next_attempt_at == second.next_attempt_at == at(1, seconds=30)

    done = await deliver(store, sender, [hook], at(1, seconds=30))
    assert [d.status for d in done.deliveries] == [DeliveryStatus.SENT, DeliveryStatus.SENT]
    accepted = [p.json()["message"] for p in webhook.received()[1:]]
    assert [f"/offer/{ITEM_ID}.html" in m for m in accepted] == [True, False]
    assert [f"/offer/{OTHER_ITEM}.html" in m for m in accepted] == [False, True]


async def test_smtp_server_down_then_up(store: Store, sender: AppriseSender) -> None:
    with SmtpReceiver() as smtp:
        mail = target("mail", smtp.mailto_url())
        smtp.stop()
        record_poll(store, group(when=at(0)), [mail], at(0))

        down = await deliver(store, sender, [mail], at(0))
        (failed,) = down.deliveries
        assert failed.status is DeliveryStatus.RETRY
        assert failed.error is not None and "Connection error" in failed.error
        assert smtp.messages == []

        smtp.start()
        up = await deliver(store, sender, [mail], at(1))
        assert [d.status for d in up.deliveries] == [DeliveryStatus.SENT]
        assert len(smtp.messages) == 1
        assert (await deliver(store, sender, [mail], at(30))).deliveries == ()
        assert len(smtp.messages) == 1


async def test_retry_after_is_honoured(
    store: Store, webhook: WebhookReceiver, sender: AppriseSender
) -> None:
    hook = target("hook", webhook.json_url("/hook"))
    webhook.script("/hook", Answer(429, {"Retry-After": "120"}))
    record_poll(store, group(when=at(0)), [hook], at(0))

    report = await deliver(store, sender, [hook], at(0))
    (limited,) = report.deliveries
    assert limited.status is DeliveryStatus.RETRY
    assert limited.next_attempt_at is not None
    assert limited.next_attempt_at >= at(0) + timedelta(seconds=120)  # not the 30 s backoff
    assert rows(store.engine)[0].next_attempt_at == limited.next_attempt_at

    assert (await deliver(store, sender, [hook], at(1, seconds=59))).deliveries == ()
    assert len(webhook.received()) == 1
    later = await deliver(store, sender, [hook], at(2))
    assert [d.status for d in later.deliveries] == [DeliveryStatus.SENT]
    assert len(webhook.received()) == 2


async def test_retry_after_as_an_http_date(store: Store, webhook: WebhookReceiver) -> None:
    wall = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    sender = AppriseSender(timeout=10, min_interval=0, clock=lambda: wall)
    hook = target("hook", webhook.json_url("/hook"))
    date = format_datetime(wall + timedelta(minutes=10), usegmt=True)
    webhook.script("/hook", Answer(503, {"Retry-After": date}))
    record_poll(store, group(when=at(0)), [hook], at(0))
    (limited,) = (await deliver(store, sender, [hook], at(0))).deliveries
    assert limited.next_attempt_at == at(10)


async def test_dead_after_dead_after_and_logged_without_the_url(
    store: Store, webhook: WebhookReceiver, sender: AppriseSender, caplog: pytest.LogCaptureFixture
) -> None:
    hook = target("hook", webhook.json_url("/hook"))
    webhook.always("/hook", Answer(500))
    record_poll(store, group(when=at(0)), [hook], at(0))
    dead_after = timedelta(minutes=10)

    now, tries = at(0), []
    with caplog.at_level(logging.ERROR, logger="monitor.notify.deliver"):
        for _ in range(20):
            (delivery,) = (
                await deliver(store, sender, [hook], now, dead_after=dead_after)
            ).deliveries
            tries.append(now)
            if delivery.status is DeliveryStatus.DEAD:
                break
            assert delivery.next_attempt_at is not None
            now = delivery.next_attempt_at
    assert delivery.status is DeliveryStatus.DEAD
    # 30 s, 60 s, 120 s, 240 s backoff; the last try is moved to the 10-minute deadline.
    assert tries == [at(0, seconds=s) for s in (0, 30, 90, 210, 450, 600)]
    (dead,) = list_notifications(store.engine, OutboxState.DEAD)
    assert dead.attempts == 6
    assert dead.last_error is not None and "500" in dead.last_error
    assert (await deliver(store, sender, [hook], at(120))).deliveries == ()

    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = record.getMessage()
    assert "'hook'" in message and "dead" in message
    assert str(webhook.port) not in message and "json://" not in message


async def test_a_target_gone_from_the_watchlist_is_retried_then_dead(
    store: Store, webhook: WebhookReceiver, sender: AppriseSender
) -> None:
    gone = target("gone", webhook.json_url("/gone"))
    record_poll(store, group(when=at(0)), [gone], at(0))
    (missing,) = (await deliver(store, sender, [], at(0))).deliveries
    assert missing.status is DeliveryStatus.RETRY
    assert missing.error == "target 'gone' is not in the watchlist (removed or renamed?)"
    (dead,) = (await deliver(store, sender, [], at(0) + DEAD_AFTER)).deliveries
    assert dead.status is DeliveryStatus.DEAD
    assert webhook.received() == []


async def test_quiet_hours_hold_then_release(
    store: Store, webhook: WebhookReceiver, sender: AppriseSender
) -> None:
    quiet = target("night", webhook.json_url("/night"), quiet=(time(22), time(8)))
    evening = datetime(2025, 3, 1, 23, 0, tzinfo=SHANGHAI).astimezone(UTC)
    morning = datetime(2025, 3, 2, 8, 0, tzinfo=SHANGHAI).astimezone(UTC)
    record_poll(store, group(when=evening), [quiet], evening)

    assert (await deliver(store, sender, [quiet], evening)).deliveries == ()
    assert (await deliver(store, sender, [quiet], morning - timedelta(minutes=1))).deliveries == ()
    assert webhook.received() == []
    report = await deliver(store, sender, [quiet], morning)
    assert [d.status for d in report.deliveries] == [DeliveryStatus.SENT]
    assert len(webhook.received()) == 1


async def test_a_retry_is_not_sent_inside_quiet_hours(
    store: Store, webhook: WebhookReceiver, sender: AppriseSender
) -> None:
    quiet = target("night", webhook.json_url("/night"), quiet=(time(22), time(8)))
    webhook.script("/night", Answer(500))
    just_before = datetime(2025, 3, 1, 21, 59, 50, tzinfo=SHANGHAI).astimezone(UTC)
    record_poll(store, group(when=just_before), [quiet], just_before)
    (failed,) = (await deliver(store, sender, [quiet], just_before)).deliveries
    assert failed.next_attempt_at == datetime(2025, 3, 2, 8, 0, tzinfo=SHANGHAI)


async def test_digest_is_one_message_with_every_item(
    store: Store, webhook: WebhookReceiver, sender: AppriseSender
) -> None:
    daily = target("daily", webhook.json_url("/daily"), digest=time(9))
    day = datetime(2025, 3, 1, tzinfo=SHANGHAI)
    for item_id, hour, name in ((ITEM_ID, 1, "Leopard robe"), (OTHER_ITEM, 2, "Silk scarf")):
        when = (day + timedelta(hours=hour)).astimezone(UTC)
        record_poll(store, group(item_id, when=when, name=name), [daily], when)
    nine = (day + timedelta(hours=9)).astimezone(UTC)

    assert (await deliver(store, sender, [daily], nine - timedelta(seconds=1))).deliveries == ()
    report = await deliver(store, sender, [daily], nine)
    assert [d.status for d in report.deliveries] == [DeliveryStatus.SENT]
    (post,) = webhook.received()
    message = post.json()["message"]
    assert "Leopard robe" in message and "Silk scarf" in message
    assert (await deliver(store, sender, [daily], nine + timedelta(hours=1))).deliveries == ()
    assert len(webhook.received()) == 1


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Everything logged, at DEBUG, through the monitor's redacting set-up; restored after."""
    root = logging.getLogger()
    chatty = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    saved_levels = [root.level, *(logger.level for logger in chatty)]
    saved_handlers = list(root.handlers)
    saved_filters = {handler: list(handler.filters) for handler in saved_handlers}
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            if handler not in saved_handlers:
                root.removeHandler(handler)
        for handler, filters in saved_filters.items():
            handler.filters = filters
        for logger, level in zip([root, *chatty], saved_levels, strict=True):
            logger.setLevel(level)


async def test_no_url_secret_reaches_the_logs_at_debug(
    store: Store, webhook: WebhookReceiver, sender: AppriseSender, debug_log: io.StringIO
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    token = f"tok{uuid.uuid4().hex[:24]}"
    url = webhook.json_url(f"/hooks/{token}", user="monitor", password=password)
    register_secret(url)  # as the watchlist loader does: the whole URL, not its parts
    hook = target("hook", url)
    webhook.script(f"/hooks/{token}", Answer(500))
    record_poll(store, group(when=at(0)), [hook], at(0))

    failed = await deliver(store, sender, [hook], at(0))
    sent = await deliver(store, sender, [hook], at(1))
    assert [d.status for d in (*failed.deliveries, *sent.deliveries)] == [
        DeliveryStatus.RETRY,
        DeliveryStatus.SENT,
    ]
    assert len(webhook.received(f"/hooks/{token}")) == 2
    assert webhook.received()[0].headers["Authorization"].startswith("Basic ")

    text = debug_log.getvalue()
    assert "JSON POST URL" in text  # apprise did log its request URL at DEBUG ...
    assert "POST /hooks/***" in text  # ... and urllib3 the path
    assert password not in text and token not in text
    stored = " ".join(str(r.last_error) for r in rows(store.engine))
    assert password not in stored and token not in stored
    assert all(token not in str(d.error) for d in failed.deliveries)


def test_url_secrets_covers_passwords_paths_and_token_hosts() -> None:
    found = url_secrets("json://monitor:s3cret-pw@127.0.0.1:8080/hooks/ab12cd34ef?x=1")
    assert {"s3cret-pw", "ab12cd34ef"} <= found
    assert not {"127.0.0.1", "8080", "hooks", "monitor", "1"} & found

    bot = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    found = url_secrets(f"tgram://{bot}/-100123456789")
    assert {bot, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"} <= found

    found = url_secrets("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general")
    assert {"T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7FQ"} <= found
    assert "general" not in found

    found = url_secrets("mailto://user:hunter2@smtp.example.com?to=a@example.com")
    assert "hunter2" in found and "smtp.example.com" not in found


def test_retry_policy_doubles_up_to_an_hour_with_bounded_jitter() -> None:
    rng = random.Random(7)
    delays = [NO_JITTER.delay(n, rng).total_seconds() for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    jittered = RetryPolicy(jitter=0.2)
    for attempt in range(1, 12):
        base = min(3600, 30 * 2 ** (attempt - 1))
        seconds = jittered.delay(attempt, rng).total_seconds()
        assert base * 0.8 <= seconds <= min(3600, base * 1.2)
    assert len({jittered.delay(3, rng) for _ in range(20)}) > 1


class _RecordingSender(AppriseSender):
    """Sends nothing; records which thread each send ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def send(self, target: Target, message: Rendered) -> SendResult:
        self.threads.append(threading.get_ident())
        return SendResult(True)


async def test_sends_and_database_calls_run_off_the_event_loop(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    db_threads: list[int] = []
    real_claim, real_mark = outbox.claim, outbox.mark_sent

    def claim(*args: Any, **kwargs: Any) -> Any:
        db_threads.append(threading.get_ident())
        return real_claim(*args, **kwargs)

    def mark_sent(*args: Any, **kwargs: Any) -> Any:
        db_threads.append(threading.get_ident())
        return real_mark(*args, **kwargs)

    monkeypatch.setattr(outbox, "claim", claim)
    monkeypatch.setattr(outbox, "mark_sent", mark_sent)
    fake = _RecordingSender()
    hook = target("hook")
    record_poll(store, group(when=at(0)), [hook], at(0))
    heartbeat = asyncio.create_task(asyncio.sleep(0))
    report = await deliver(store, fake, [hook], at(0))
    await heartbeat
    assert report.sent == 1
    assert len(fake.threads) == 1 and len(db_threads) == 2
    assert loop_thread not in fake.threads + db_threads


async def test_a_batch_out_of_time_hands_rows_back_unsent(store: Store) -> None:
    fake = _RecordingSender()
    hook = target("hook")
    record_poll(store, group(when=at(0)), [hook], at(0))
    record_poll(store, group(OTHER_ITEM, when=at(0)), [hook], at(0, seconds=1))
    ticks = iter([0.0, 10.0, 1000.0, 1000.0])
    report = await deliver(store, fake, [hook], at(1), monotonic=lambda: next(ticks))
    assert [d.status for d in report.deliveries] == [DeliveryStatus.SENT, DeliveryStatus.DEFERRED]
    assert len(fake.threads) == 1
    handed_back = rows(store.engine)[1]
    assert (handed_back.state, handed_back.attempts, handed_back.lease_owner) == (
        "pending",
        0,
        None,
    )
    (later,) = (await deliver(store, fake, [hook], at(1))).deliveries
    assert later.status is DeliveryStatus.SENT


def test_an_unreachable_image_does_not_keep_the_alert_from_going_out(
    webhook: WebhookReceiver, sender: AppriseSender
) -> None:
    hook = target("hook", webhook.json_url("/hook"))
    message = Rendered(
        title="Leopard robe: price drop",
        body="white / L: 29.89 -> 25.90",
        body_format="text",
        attach=f"http://127.0.0.1:{webhook.port}/no-such-image.jpg",
    )
    result = sender.send(hook, message)
    assert result.ok
    (post,) = webhook.received("/hook")  # the try with the image never reached the service
    assert post.json()["attachments"] == []
    assert post.json()["message"] == "white / L: 29.89 -> 25.90"
