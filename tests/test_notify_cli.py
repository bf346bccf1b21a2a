"""``monitor notify test`` against real receivers, ``monitor notify list`` on both databases."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli.notify import notify
from monitor.db.outbox import claim, mark_dead, mark_sent
from monitor.db.store import Store
from tests.factories import at
from tests.outbox_helpers import group, record_poll, target
from tests.receivers import Answer, WebhookReceiver


def watchlist(tmp_path: Path, targets: dict[str, str]) -> Path:
    lines = ["[targets]", *(f'{name} = "{url}"' for name, url in targets.items())]
    path = tmp_path / "watchlist.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_notify_test_reports_each_target_and_fails_if_one_failed(
    tmp_path: Path, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    token = f"tok{uuid.uuid4().hex[:20]}"
    monkeypatch.setenv("HOOK_PASSWORD", password)
    good = webhook.json_url(f"/hooks/{token}", user="monitor").replace(
        "monitor:@", "monitor:${HOOK_PASSWORD}@"
    )
    path = watchlist(tmp_path, {"team": good, "broken": webhook.json_url("/broken")})
    webhook.script("/broken", Answer(500))

    result = CliRunner().invoke(notify, ["test", "--watchlist", str(path)])

    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    team = next(line for line in lines if " team " in f" {line} ")
    broken = next(line for line in lines if " broken " in f" {line} ")
    assert team.startswith("ok ")
    # apprise's privacy form, with the token in the path masked as well
    assert f"json://***@127.0.0.1:{webhook.port}/hooks/***?" in team
    assert broken.startswith("FAILED ") and "500" in broken
    assert "1 of 2 targets failed" in result.output
    assert password not in result.output and token not in result.output
    (post,) = webhook.received(f"/hooks/{token}")
    assert "test message" in post.json()["title"]
    assert len(webhook.received("/broken")) == 1


def test_notify_test_one_target(tmp_path: Path, webhook: WebhookReceiver) -> None:
    path = watchlist(tmp_path, {"a": webhook.json_url("/a"), "b": webhook.json_url("/b")})
    result = CliRunner().invoke(notify, ["test", "b", "--watchlist", str(path)])
    assert result.exit_code == 0, result.output
    assert [line.split()[:2] for line in result.output.splitlines()] == [["ok", "b"]]
    assert webhook.received("/a") == []
    assert len(webhook.received("/b")) == 1


def test_notify_test_unknown_target_names_the_known_ones(
    tmp_path: Path, webhook: WebhookReceiver
) -> None:
    path = watchlist(tmp_path, {"team": webhook.json_url("/a")})
    result = CliRunner().invoke(notify, ["test", "tema", "--watchlist", str(path)])
    assert result.exit_code == 2
    assert "no target named 'tema'" in result.output and "team" in result.output
    assert webhook.received() == []


def test_notify_test_bad_watchlist_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(notify, ["test", "--watchlist", str(tmp_path / "missing.toml")])
    assert result.exit_code == 1
    assert "file not found" in result.output


def test_notify_list_shows_dead_notifications(
    store: Store, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_poll(
        store,
        group(when=at(0), kinds=("price_drop", "sold_out")),
        [target("slack"), target("mail")],
        at(0),
    )
    slack, mail = claim(store.engine, "w", at(0), 10, timedelta(minutes=5))
    mark_dead(store.engine, slack, "Failed to send Slack notification: error=404.")
    mark_sent(store.engine, mail, at(1))
    monkeypatch.setenv("MONITOR_DATABASE_URL", migrated_url)
    runner = CliRunner()

    dead = runner.invoke(notify, ["list", "--state", "dead"])
    assert dead.exit_code == 0, dead.output
    lines = dead.output.splitlines()
    assert lines[0] == "outbox: 1 dead, 1 sent"
    assert lines[1].split()[:7] == ["ID", "CREATED", "TARGET", "ITEM", "KINDS", "STATE", "TRIES"]
    (row,) = lines[2:]
    assert "slack" in row and "price_drop,sold_out" in row and " dead " in row
    assert row.endswith("Failed to send Slack notification: error=404.")

    everything = runner.invoke(notify, ["list"])
    assert everything.exit_code == 0
    assert len(everything.output.splitlines()) == 4  # summary, header, two rows

    assert runner.invoke(notify, ["list", "--state", "nonsense"]).exit_code == 2
