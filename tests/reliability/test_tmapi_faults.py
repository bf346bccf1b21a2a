"""TMAPI misbehaving, against the in-process daemon, on SQLite and PostgreSQL.

Every way TMAPI can fail (each documented code, HTTP errors, 5xx bursts,
timeouts, a body dripping one byte at a time, broken JSON, ``code`` 200
with empty ``data``, a payload without prices) must end as a failed poll
with the right reason, after the right number of attempts, with the stored
state untouched, no change recorded and nobody alerted; the next good
answer is an ordinary unchanged poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from monitor.daemon.service import DaemonOptions
from monitor.db.records import PollOutcome
from monitor.db.store import Store
from monitor.simulator.item_detail import Mode
from monitor.simulator.server import SimulatedTmapi
from tests.receivers import WebhookReceiver
from tests.reliability.rig import make_rig, outcomes, watchlist_text

Inject = Callable[[SimulatedTmapi, int], None]


def _nothing(_sim: SimulatedTmapi, _item: int) -> None:
    return None


def _normal(sim: SimulatedTmapi, item: int) -> None:
    sim.set_mode(item, Mode.NORMAL)


def code(value: int, times: int = 1) -> Inject:
    return lambda sim, item: sim.fail(item, code=value, times=times)


def status(value: int, times: int = 1, retry_after: float | None = None) -> Inject:
    return lambda sim, item: sim.fail(item, http_status=value, times=times, retry_after=retry_after)


def mode(value: Mode, delay: float = 0.1) -> Inject:
    return lambda sim, item: sim.set_mode(item, value, delay=delay)


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Inject
    reason: str
    #: Requests the failed poll makes (3 attempts for retryable errors).
    requests: int
    outcome: PollOutcome = PollOutcome.FAILED
    heal: Inject = field(default=_nothing)


ATTEMPTS = 3
#: Every documented TMAPI code (HTTP 200 + {"code": N}), HTTP errors, broken bodies, timeouts.
FAULTS = [
    Fault("code 417", code(417, 3), "unavailable", 3, PollOutcome.UNAVAILABLE),
    Fault("code 422", code(422), "bad_request", 1),
    Fault("code 439", code(439), "quota_exhausted", 1),
    Fault("code 499", code(499, 3), "timeout", 3),
    Fault("code 500", code(500, 3), "server_error", 3),
    Fault("code 503", code(503, 3), "rate_limited", 3),
    Fault("undocumented code 600", code(600, 3), "bad_response", 3),
    Fault("HTTP 401", status(401), "auth", 1),
    Fault("HTTP 403", status(403), "auth", 1),
    Fault("HTTP 404", status(404), "bad_request", 1),
    Fault("HTTP 417", status(417, 3), "unavailable", 3, PollOutcome.UNAVAILABLE),
    Fault("HTTP 429 Retry-After 0", status(429, 3, retry_after=0), "rate_limited", 3),
    # Retry-After beyond the client's backoff cap: give up now, the scheduler tries later.
    Fault("HTTP 503 Retry-After 120", status(503, 1, retry_after=120), "rate_limited", 1),
    Fault("HTTP 500", status(500, 3), "server_error", 3),
    Fault("HTTP 502", status(502, 3), "server_error", 3),
    Fault("HTTP 504", status(504, 3), "server_error", 3),
    Fault("invalid JSON", mode(Mode.INVALID_JSON), "bad_response", 3, heal=_normal),
    Fault("truncated JSON", mode(Mode.TRUNCATED_JSON), "bad_response", 3, heal=_normal),
    Fault("code 200, empty data", mode(Mode.EMPTY_DATA), "bad_response", 3, heal=_normal),
    Fault("every price missing", mode(Mode.NO_PRICES), "parse", 1, heal=_normal),
    Fault("no answer in time", mode(Mode.SLOW, 3.0), "timeout", 3, heal=_normal),
    Fault("one byte every 50 ms", mode(Mode.DRIP, 0.05), "timeout", 3, heal=_normal),
]


async def test_every_tmapi_failure_is_a_failed_poll_never_a_change(
    store: Store, tmp_path: Path
) -> None:
    items = {fault.name: 2001 + index for index, fault in enumerate(FAULTS)}
    text = watchlist_text(items.values())
    # The throttle halves its concurrency on the 503s and timeouts, but its rate stays
    # high here so the round does not crawl (its slow-down is tested in test_daemon).
    async with make_rig(
        store,
        tmp_path / "w.toml",
        text,
        items.values(),
        attempts=ATTEMPTS,
        request_timeout=0.3,
        min_rate=1000,
    ) as rig:
        first = await rig.poll_all()
        assert {r.outcome for r in first.values()} == {PollOutcome.BASELINE}
        stored = {item: rig.offer(item) for item in items.values()}
        sent = {item: rig.sim.requests_for(item) for item in items.values()}
        for fault in FAULTS:
            fault.inject(rig.sim, items[fault.name])

        started = time.monotonic()
        failed = await rig.poll_all()
        took = time.monotonic() - started

        wrong: list[str] = []
        for fault in FAULTS:
            item = items[fault.name]
            result = failed[item]
            requests = rig.sim.requests_for(item) - sent[item]
            seen = (result.outcome, result.error_reason, requests, result.changes)
            wanted = (fault.outcome, fault.reason, fault.requests, ())
            if seen != wanted:
                wrong.append(f"{fault.name}: got {seen}, expected {wanted}")
            if rig.offer(item) != stored[item]:
                wrong.append(f"{fault.name}: the stored offer changed")
            row = rig.item_row(item)
            if row.consecutive_failures != 1 or row.last_error_reason != fault.reason:
                wrong.append(f"{fault.name}: item row {row}")
        assert not wrong, "\n".join(wrong)
        assert rig.changes() == [] and rig.notifications() == []
        # The request deadline ends the slow and dripping answers (a drip alone would take
        # minutes), one request at a time once the throttle has slowed down, as it should.
        assert took < 10.0
        assert rig.daemon.throttle.gate.limit < 8
        assert rig.daemon.paused_until is not None  # code 439 paused polling
        await rig.daemon.throttle.gate.set_limit(8)  # not waiting for it to recover slowly
        for fault in FAULTS:
            fault.heal(rig.sim, items[fault.name])
        healed = await rig.poll_all()
        assert {i: r.outcome for i, r in healed.items()} == dict.fromkeys(
            items.values(), PollOutcome.UNCHANGED
        )
        for item in items.values():
            assert rig.item_row(item).consecutive_failures == 0
            assert rig.offer(item) == stored[item]
        assert rig.changes() == [] and rig.notifications() == []
        assert rig.daemon.paused_until is None  # a good answer resumed polling


async def test_bursts_of_5xx_are_retried_and_lose_nothing(store: Store, tmp_path: Path) -> None:
    short, long_burst, others = 3001, 3002, [3003, 3004, 3005, 3006]
    items = [short, long_burst, *others]
    async with make_rig(
        store, tmp_path / "w.toml", watchlist_text(items), items, attempts=4
    ) as rig:
        await rig.poll_all()
        stored = {item: rig.offer(item) for item in items}

        # Per item: a burst shorter than the attempts is absorbed by the retries; a longer
        # one fails the poll and the rest of it is absorbed by the next poll.
        rig.sim.fail(short, http_status=502, times=2)
        rig.sim.fail(long_burst, code=500, times=6)
        before = rig.sim.requests_total
        results = await rig.poll_all()
        assert results[short].outcome is PollOutcome.UNCHANGED
        assert rig.sim.requests_for(short) == 1 + 3
        assert (results[long_burst].outcome, results[long_burst].error_reason) == (
            PollOutcome.FAILED,
            "server_error",
        )
        assert rig.sim.requests_total - before == 3 + 4 + len(others)
        results = await rig.poll_all()
        assert results[long_burst].outcome is PollOutcome.UNCHANGED
        assert rig.sim.requests_for(long_burst) == 1 + 4 + 3

        # A burst across all items: whoever meets it retries; every failure is accounted for.
        rig.sim.fail(None, http_status=503, times=5)
        rig.sim.fail(None, code=500, times=9)
        before = rig.sim.requests_total
        results = await rig.poll_all()
        succeeded = [r for r in results.values() if r.outcome is PollOutcome.UNCHANGED]
        failed = [r for r in results.values() if r.outcome is PollOutcome.FAILED]
        assert len(succeeded) + len(failed) == len(items)
        assert {r.error_reason for r in failed} <= {"server_error", "rate_limited"}
        assert rig.sim.requests_total - before == 14 + len(succeeded)
        assert len(failed) <= 14 // 4

        results = await rig.poll_all()
        assert {r.outcome for r in results.values()} == {PollOutcome.UNCHANGED}
        assert {item: rig.offer(item) for item in items} == stored
        assert rig.changes() == [] and rig.notifications() == []


async def test_a_dripping_body_is_cut_off_by_the_request_deadline(
    store: Store, tmp_path: Path
) -> None:
    item = 4001
    async with make_rig(
        store, tmp_path / "w.toml", watchlist_text([item]), [item], attempts=1, request_timeout=0.5
    ) as rig:
        await rig.poll_all()
        rig.sim.set_mode(item, Mode.DRIP, delay=0.2)  # the 3 kB body would take ten minutes
        started = time.monotonic()
        result = (await rig.poll_all())[item]
        took = time.monotonic() - started
        assert (result.outcome, result.error_reason) == (PollOutcome.FAILED, "timeout")
        assert "no complete response within 0.5 s" in (result.error_message or "")
        assert 0.5 <= took < 2.0
        rig.sim.set_mode(item, Mode.NORMAL)
        assert (await rig.poll_all())[item].outcome is PollOutcome.UNCHANGED


async def test_tmapi_unreachable_is_a_transport_failure(store: Store, tmp_path: Path) -> None:
    items = [4101, 4102]
    async with make_rig(store, tmp_path / "w.toml", watchlist_text(items), items) as rig:
        await rig.poll_all()
        stored = {item: rig.offer(item) for item in items}
        rig.sim.stop()  # connections refused from now on
        results = await rig.poll_all()
        assert {(r.outcome, r.error_reason) for r in results.values()} == {
            (PollOutcome.FAILED, "transport")
        }
        assert {item: rig.offer(item) for item in items} == stored
        assert rig.changes() == [] and rig.notifications() == []


async def test_a_payload_without_prices_marks_the_item_failing_and_it_recovers(
    store: Store, tmp_path: Path
) -> None:
    """No "price dropped to 0": the item is failing (alerted once), then recovers (once)."""
    item = 5001
    with WebhookReceiver() as hook:
        text = watchlist_text(
            [item], targets={"hook": hook.json_url("/hook")}, notify=["hook"], failing_after=2
        )
        async with make_rig(store, tmp_path / "w.toml", text, [item]) as rig:
            await rig.poll_all()
            stored = rig.offer(item)
            rig.sim.set_mode(item, Mode.NO_PRICES)
            for _ in range(3):
                result = (await rig.poll_all())[item]
                assert (result.outcome, result.error_reason) == (PollOutcome.FAILED, "parse")
                rig.clock.advance(timedelta(minutes=10))
            row = rig.item_row(item)
            assert (row.consecutive_failures, row.last_error_reason) == (3, "parse")
            assert rig.offer(item) == stored
            assert rig.changes() == []
            assert [n.kinds for n in rig.notifications(item)] == ["poll_failing"]
            assert await rig.deliver() == 1

            rig.sim.set_mode(item, Mode.NORMAL)
            result = (await rig.poll_all())[item]
            assert result.outcome is PollOutcome.UNCHANGED and result.changes == ()
            assert rig.item_row(item).consecutive_failures == 0
            assert [n.kinds for n in rig.notifications(item)] == ["poll_failing", "poll_failing"]
            assert await rig.deliver() == 1
            assert outcomes(rig, item) == [
                PollOutcome.BASELINE,
                *[PollOutcome.FAILED] * 3,
                PollOutcome.UNCHANGED,
            ]
        messages = [post.json()["message"] for post in hook.received("/hook")]
    assert len(messages) == 2
    assert "failed" in messages[0] and "polling works again" in messages[1]
    assert not any("0.00" in message or "¥0" in message for message in messages)


async def test_a_hanging_poll_is_cancelled_by_its_deadline_and_later_polls_run(
    store: Store, tmp_path: Path
) -> None:
    hanging, healthy = 6001, 6002
    options = DaemonOptions(owner="deadline", poll_deadline=timedelta(seconds=0.5))
    async with make_rig(
        store,
        tmp_path / "w.toml",
        watchlist_text([hanging, healthy]),
        [hanging, healthy],
        attempts=1,
        request_timeout=60,
        options=options,
    ) as rig:
        await rig.poll_all()
        rig.sim.set_mode(hanging, Mode.SLOW, delay=60)  # answers after a minute
        for _ in range(2):
            rig.clock.advance(timedelta(minutes=10))
            started = time.monotonic()
            assert sorted(await rig.tick()) == [hanging, healthy]
            assert time.monotonic() - started < 3
            polls = {item: rig.polls(item)[-1] for item in (hanging, healthy)}
            assert (polls[hanging].outcome, polls[hanging].error_reason) == ("failed", "timeout")
            assert polls[healthy].outcome == "unchanged"
        assert "poll deadline of 0.5 s exceeded" in rig.item_row(hanging).last_error
        assert rig.daemon.in_flight == {}

        rig.sim.set_mode(hanging, Mode.NORMAL)
        rig.clock.advance(timedelta(minutes=20))  # two failures: the item waits two intervals
        assert sorted(await rig.tick()) == [hanging, healthy]
        assert rig.polls(hanging)[-1].outcome == "unchanged"
        assert all(row.lease_owner is None for row in store.list_items())
        assert rig.changes() == []
