"""Notification services failing, end to end: poll → outbox → apprise → real receivers.

The in-process daemon (fake clock) detects a price drop and delivers it to
a real webhook receiver and a real SMTP server on loopback. Each outage
must end with the message delivered exactly once when the service is back,
never early, never twice, and never again to a target that already got it;
a target that stays down ends ``dead``, visibly. SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from monitor.db.outbox import OutboxState
from monitor.db.store import Store
from tests.receivers import Answer, SmtpReceiver, WebhookReceiver
from tests.reliability.rig import Rig, make_rig, watchlist_text

ITEM = 7001


async def drop_price(rig: Rig) -> Decimal:
    """Baseline, then a price drop recorded with its outbox rows (not yet delivered)."""
    await rig.poll_all()
    offer = rig.offer(ITEM)
    assert offer is not None
    sku = offer.skus[0]
    new = (sku.price / 2).quantize(Decimal("0.01"))
    rig.sim.set_price(ITEM, sku.sku_id, new)
    rig.clock.advance(timedelta(minutes=10))
    (result,) = (await rig.poll_all()).values()
    assert [c.kind for c in result.changes] == ["price_drop"]
    return new


def states(rig: Rig) -> dict[str, tuple[str, int]]:
    """Each target's outbox row: (state, attempts)."""
    return {row.target: (row.state, row.attempts) for row in rig.notifications()}


async def later(rig: Rig, delta: timedelta) -> int:
    """Let ``delta`` pass and run the delivery job; how many were sent."""
    rig.clock.advance(delta)
    return await rig.deliver()


async def test_webhook_500s_then_recovers_delivered_once(
    store: Store, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    webhook.script("/hook", Answer(500), Answer(500))
    text = watchlist_text([ITEM], targets={"hook": webhook.json_url("/hook")}, notify=["hook"])
    async with make_rig(store, tmp_path / "w.toml", text, [ITEM]) as rig:
        await drop_price(rig)
        assert await rig.deliver() == 0
        assert states(rig) == {"hook": ("pending", 1)}
        assert "500" in rig.notifications()[0].last_error
        assert await later(rig, timedelta(seconds=20)) == 0  # backoff: not before ~30 s
        assert len(webhook.received("/hook")) == 1
        assert await later(rig, timedelta(seconds=20)) == 0  # second try, second 500
        assert await later(rig, timedelta(seconds=80)) == 1  # third try goes through
        assert states(rig) == {"hook": ("sent", 3)}
        assert await later(rig, timedelta(hours=1)) == 0
    posts = webhook.received("/hook")
    assert len(posts) == 3
    assert len({post.body for post in posts}) == 1  # the same message, tried three times


async def test_smtp_server_down_then_up_delivered_once(
    store: Store, tmp_path: Path, smtp: SmtpReceiver
) -> None:
    text = watchlist_text([ITEM], targets={"mail": smtp.mailto_url()}, notify=["mail"])
    async with make_rig(store, tmp_path / "w.toml", text, [ITEM]) as rig:
        new_price = await drop_price(rig)
        smtp.stop()
        assert await rig.deliver() == 0
        assert await later(rig, timedelta(seconds=40)) == 0
        assert states(rig) == {"mail": ("pending", 2)}
        smtp.start()
        assert await later(rig, timedelta(seconds=80)) == 1
        assert await later(rig, timedelta(hours=1)) == 0
        assert states(rig) == {"mail": ("sent", 3)}
    (mail,) = smtp.messages
    assert f"¥{new_price}" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_429_with_retry_after_is_honoured(
    store: Store, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    webhook.script("/hook", Answer(429, {"Retry-After": "600"}))
    text = watchlist_text([ITEM], targets={"hook": webhook.json_url("/hook")}, notify=["hook"])
    async with make_rig(store, tmp_path / "w.toml", text, [ITEM]) as rig:
        await drop_price(rig)
        asked_at = rig.clock.now
        assert await rig.deliver() == 0
        (row,) = rig.notifications()
        assert row.next_attempt_at >= asked_at + timedelta(seconds=600)
        # The backoff alone would retry after ~30 s; the service asked for ten minutes.
        assert await later(rig, timedelta(minutes=5)) == 0
        assert await later(rig, timedelta(minutes=4, seconds=59)) == 0
        assert len(webhook.received("/hook")) == 1
        assert await later(rig, timedelta(seconds=2)) == 1
        assert states(rig) == {"hook": ("sent", 2)}
    assert len(webhook.received("/hook")) == 2


async def test_one_target_down_while_the_other_works(
    store: Store, tmp_path: Path, webhook: WebhookReceiver, smtp: SmtpReceiver
) -> None:
    """Mail gets the message once at once; the webhook, down for good, ends ``dead``
    after ``dead_after``, and its retries never send the mail again."""
    webhook.always("/hook", Answer(503))
    targets = {"hook": webhook.json_url("/hook"), "mail": smtp.mailto_url()}
    text = watchlist_text([ITEM], targets=targets, notify=["hook", "mail"], dead_after="1h")
    async with make_rig(store, tmp_path / "w.toml", text, [ITEM]) as rig:
        await drop_price(rig)
        assert await rig.deliver() == 1
        assert len(smtp.messages) == 1
        for _ in range(8):
            await later(rig, timedelta(minutes=10))
        assert states(rig)["mail"] == ("sent", 1)
        state, attempts = states(rig)["hook"]
        assert state == OutboxState.DEAD and attempts >= 3
        dead = next(row for row in rig.notifications() if row.target == "hook")
        assert "503" in dead.last_error
        assert await later(rig, timedelta(hours=1)) == 0
    assert len(smtp.messages) == 1
    assert len(webhook.received("/hook")) == attempts
