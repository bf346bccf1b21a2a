"""Poll → diff → rules → outbox → apprise, end to end through real local receivers.

The simulated TMAPI changes a price; the daemon polls it (fake clock) and
delivers through apprise to a real SMTP server (aiosmtpd) and a real webhook
receiver (``json://127.0.0.1:PORT``). Each gets the message exactly once,
also across a restart and while the other target is failing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.daemon.app import Plumbing, open_daemon
from monitor.daemon.service import Daemon, DaemonOptions
from monitor.db.engine import upgrade
from monitor.db.store import Store
from monitor.notify.sender import AppriseSender
from monitor.simulator.server import SimulatedTmapi
from monitor.tmapi.settings import TmapiSettings
from monitor.watchlist.load import load_watchlist
from tests.receivers import Answer, SmtpReceiver, WebhookReceiver

ITEM = 652702302959
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


pytestmark = pytest.mark.sim(items=[ITEM])


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    upgrade(db_url)
    opened = Store.open(db_url)
    yield opened
    opened.close()


def write_watchlist(path: Path, smtp: SmtpReceiver, webhook: WebhookReceiver) -> Path:
    path.write_text(
        f"""
[settings]
max_requests_per_second = 1000
jitter = 0

[targets]
mail = "{smtp.mailto_url()}"
hook = "{webhook.json_url("/hook")}"

[defaults]
interval = "10m"
notify = ["mail", "hook"]
alert_on = ["price_drop", "sold_out", "back_in_stock", "tier_change", "target_price"]
price_drop_pct = 3

[[items]]
id = {ITEM}
name = "Leopard robe"
target_price = 26
""",
        encoding="utf-8",
    )
    return path


@asynccontextmanager
async def daemon_for(
    store: Store, sim: SimulatedTmapi, path: Path, clock: Clock
) -> AsyncIterator[Daemon]:
    watchlist = load_watchlist(path)
    settings = TmapiSettings(base_url=sim.base_url, timeout=5, max_attempts=1)
    plumbing = Plumbing(clock=clock, rng=random.Random(1), sender=AppriseSender(min_interval=0))
    async with open_daemon(
        store, watchlist, settings, options=DaemonOptions(owner="e2e"), plumbing=plumbing
    ) as daemon:
        yield daemon


async def poll_and_deliver(daemon: Daemon) -> int:
    await daemon.run_once()
    return await daemon.deliver_all()


async def test_price_drop_reaches_mail_and_webhook_exactly_once(
    store: Store, sim: SimulatedTmapi, smtp: SmtpReceiver, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    path = write_watchlist(tmp_path / "watchlist.toml", smtp, webhook)
    clock = Clock()
    async with daemon_for(store, sim, path, clock) as daemon:
        assert await poll_and_deliver(daemon) == 0  # the baseline alerts nobody
        sku = sim.sku_ids(ITEM)[0]
        sim.set_price(ITEM, sku, "25.90")
        clock.now += timedelta(minutes=10)
        assert await poll_and_deliver(daemon) == 2
        clock.now += timedelta(minutes=10)
        assert await poll_and_deliver(daemon) == 0  # nothing new

    # A restart: a new daemon on the same database sends nothing again.
    async with daemon_for(store, sim, path, clock) as daemon:
        clock.now += timedelta(minutes=1)
        assert await daemon.deliver_all() == 0

    (mail,) = smtp.messages
    (posted,) = webhook.received("/hook")
    plain = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    html = next(p for p in mail.walk() if p.get_content_type() == "text/html")
    assert "¥29.89 → ¥25.90 (−13.3%)" in plain.get_content()
    assert "白色豹纹 / L" in plain.get_content()
    assert "25.90" in html.get_content()
    body = posted.json()["message"]
    assert "¥29.89 → ¥25.90" in body
    assert "≤ ¥26" in body or "target" in body.lower()


async def test_failing_target_gets_it_once_after_recovery_and_never_resends_the_other(
    store: Store, sim: SimulatedTmapi, smtp: SmtpReceiver, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    path = write_watchlist(tmp_path / "watchlist.toml", smtp, webhook)
    clock = Clock()
    webhook.script("/hook", Answer(500), Answer(500))
    async with daemon_for(store, sim, path, clock) as daemon:
        await poll_and_deliver(daemon)
        sim.sell_out(ITEM, sim.sku_ids(ITEM)[2])
        clock.now += timedelta(minutes=10)
        assert await poll_and_deliver(daemon) == 1  # mail at once, the webhook fails
        assert len(smtp.messages) == 1
        for _ in range(6):  # retries come due as time passes
            clock.now += timedelta(minutes=30)
            await daemon.deliver_all()
    assert len(smtp.messages) == 1
    # two scripted 500s, then the one delivery that succeeded, and nothing after it
    posts = webhook.received("/hook")
    assert len(posts) == 3
    assert "sold out" in posts[-1].json()["message"]


async def test_smtp_down_then_up(
    store: Store, sim: SimulatedTmapi, smtp: SmtpReceiver, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    path = write_watchlist(tmp_path / "watchlist.toml", smtp, webhook)
    clock = Clock()
    async with daemon_for(store, sim, path, clock) as daemon:
        await poll_and_deliver(daemon)
        smtp.stop()
        sim.set_tiers(ITEM, [(1, "29.89"), (100, "27.00"), (300, "25.90")])
        clock.now += timedelta(minutes=10)
        assert await poll_and_deliver(daemon) == 1  # the webhook only
        smtp.start()
        for _ in range(6):
            clock.now += timedelta(minutes=30)
            await daemon.deliver_all()
    (mail,) = smtp.messages
    plain = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    assert "≥100 pcs: ¥27.60 → ¥27.00" in plain.get_content()
    assert len(webhook.received("/hook")) == 1


def test_event_loop_not_needed_for_fixtures() -> None:
    # The receivers run in threads; this guards against a fixture leaking a loop.
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
TELEGRAM = "tgram://123456789:abcdefg_hijklmnop/12345/"
SERVICES = {"hooks.slack.com": "/slack", "api.telegram.org": "/telegram"}


@pytest.fixture
def services_on_loopback(webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack's and Telegram's hosts answered by the local receiver; nothing else reachable."""
    from urllib.parse import urlsplit, urlunsplit

    import requests

    original = requests.Session.send

    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: object) -> object:
        parts = urlsplit(request.url or "")
        prefix = SERVICES.get(parts.hostname or "")
        if prefix is None:
            raise requests.ConnectionError(f"no network in tests ({parts.hostname})")
        request.url = urlunsplit(
            ("http", f"127.0.0.1:{webhook.port}", prefix + parts.path, parts.query, "")
        )
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", send)


async def test_every_kind_reaches_slack_and_telegram_formats_once(
    store: Store,
    sim: SimulatedTmapi,
    smtp: SmtpReceiver,
    webhook: WebhookReceiver,
    tmp_path: Path,
    services_on_loopback: None,
) -> None:
    path = tmp_path / "watchlist.toml"
    write_watchlist(path, smtp, webhook)
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        f'hook = "{webhook.json_url("/hook")}"', f'slack = "{SLACK}"\ntelegram = "{TELEGRAM}"'
    ).replace('notify = ["mail", "hook"]', 'notify = ["mail", "slack", "telegram"]')
    path.write_text(text, encoding="utf-8")
    webhook.always(
        "/slack/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", Answer(body=b"ok")
    )
    clock = Clock()
    skus = sim.sku_ids(ITEM)
    async with daemon_for(store, sim, path, clock) as daemon:
        await poll_and_deliver(daemon)
        # price drop below the target, a quantity break, a SKU sold out: one message
        sim.set_price(ITEM, skus[0], "25.90")
        sim.set_tiers(ITEM, [(1, "29.89"), (100, "27.00"), (300, "25.90")])
        sim.sell_out(ITEM, skus[2])
        clock.now += timedelta(minutes=10)
        assert await poll_and_deliver(daemon) == 3
        # back in stock: a second message
        sim.restock(ITEM, skus[2])
        clock.now += timedelta(minutes=10)
        assert await poll_and_deliver(daemon) == 3
        clock.now += timedelta(minutes=10)
        assert await poll_and_deliver(daemon) == 0

    slack = [r.json() for r in webhook.received() if r.path.startswith("/slack/")]
    telegram = [r.json() for r in webhook.received() if r.path.startswith("/telegram/")]
    assert len(slack) == 2, slack
    assert len(telegram) == 2, telegram
    assert len(smtp.messages) == 2
    first_slack = str(slack[0])
    first_telegram = telegram[0]["text"]
    for line in ("¥29.89 → ¥25.90 (−13.3%)", "≥100 pcs: ¥27.60 → ¥27.00", "sold out", "target"):
        assert line in first_slack, line
        assert line in first_telegram, line
    assert telegram[0]["parse_mode"] == "HTML"
    assert "back in stock" in str(slack[1])
    assert "back in stock" in telegram[1]["text"]
