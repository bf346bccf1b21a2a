"""Operations: ``/metrics``, ``/healthz``, the probes behind them, and JSON logs.

Units with fake clocks first; then one real ``monitor --log-format json run
--metrics-port`` process against the simulated TMAPI, whose endpoint is
scraped and whose every log line must be a JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from monitor.cli.run import run
from monitor.daemon.health import Health, MetricsServer, probe_database
from monitor.daemon.metrics import Metrics, watch_loop_lag
from monitor.db.engine import make_engine, upgrade
from monitor.db.outbox import OutboxState
from monitor.db.records import PollOutcome, PollResult
from monitor.domain import Change, ChangeKind
from monitor.errors import ConfigError, TmapiTimeout
from monitor.notify.deliver import Delivery, DeliveryReport, DeliveryStatus
from monitor.simulator.server import SimulatedTmapi
from tests.receivers import free_port

T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Ticker:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def poll(
    item_id: int, outcome: PollOutcome, *changes: ChangeKind, reason: str | None = None
) -> PollResult:
    return PollResult(
        poll_id=1,
        item_id=item_id,
        polled_at=T,
        outcome=outcome,
        changes=tuple(Change(kind, sku_id="1", old=Decimal(2), new=Decimal(1)) for kind in changes),
        error_reason=reason,
    )


def parsed(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The exposition text, parsed back the way Prometheus reads it."""
    text = metrics.exposition().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# -- the instruments -------------------------------------------------------------------------------


def test_polls_failures_and_changes_are_counted_by_label() -> None:
    metrics = Metrics()
    metrics.record_poll(poll(1, PollOutcome.BASELINE))
    metrics.record_poll(poll(1, PollOutcome.CHANGED, ChangeKind.PRICE_DROP, ChangeKind.SOLD_OUT))
    metrics.record_poll(poll(2, PollOutcome.FAILED, reason="timeout"))
    metrics.record_poll(poll(2, PollOutcome.FAILED, reason="timeout"))
    metrics.record_poll(
        poll(3, PollOutcome.UNAVAILABLE, ChangeKind.ITEM_UNAVAILABLE, reason="unavailable")
    )
    samples = parsed(metrics)
    assert samples[("monitor_polls_total", (("outcome", "changed"),))] == 1
    assert samples[("monitor_polls_total", (("outcome", "failed"),))] == 2
    assert samples[("monitor_polls_total", (("outcome", "unchanged"),))] == 0  # present at 0
    assert samples[("monitor_poll_failures_total", (("reason", "timeout"),))] == 2
    assert samples[("monitor_poll_failures_total", (("reason", "unavailable"),))] == 1
    assert samples[("monitor_poll_failures_total", (("reason", "parse"),))] == 0
    assert samples[("monitor_changes_total", (("kind", "price_drop"),))] == 1
    assert samples[("monitor_changes_total", (("kind", "item_unavailable"),))] == 1
    assert not any(name.endswith("_created") for name, _ in samples)


def test_poll_latency_runs_from_the_claim_round_to_the_recording() -> None:
    clock = Ticker()
    metrics = Metrics(clock=clock, wall=lambda: 1_800_000_000.0)
    metrics.round_done([1, 2])
    clock.now += 0.2
    metrics.record_poll(poll(1, PollOutcome.UNCHANGED))
    clock.now += 2.0
    metrics.record_poll(poll(2, PollOutcome.UNCHANGED))
    metrics.record_poll(poll(3, PollOutcome.UNCHANGED))  # never claimed here (run --once): no time
    assert metrics.value("monitor_poll_duration_seconds_count") == 2
    assert metrics.value("monitor_poll_duration_seconds_sum") == pytest.approx(2.4)
    assert metrics.value("monitor_poll_duration_seconds_bucket", le="0.25") == 1
    assert metrics.value("monitor_poll_duration_seconds_bucket", le="2.5") == 2
    assert metrics.value("monitor_last_claim_round_timestamp_seconds") == 1_800_000_000.0


def test_deliveries_notifications_and_calls() -> None:
    metrics = Metrics()
    report = DeliveryReport(
        (
            Delivery(1, "hook", DeliveryStatus.SENT),
            Delivery(2, "hook", DeliveryStatus.RETRY, "HTTP 500"),
            Delivery(3, "mail", DeliveryStatus.SENT),
        )
    )
    metrics.record_deliveries(report)
    metrics.set_notification_counts({OutboxState.PENDING: 4, OutboxState.DEAD: 1})
    calls = [7]
    metrics.count_calls(lambda: calls[0])
    assert metrics.value("monitor_deliveries_total", status="sent") == 2
    assert metrics.value("monitor_deliveries_total", status="retry") == 1
    assert metrics.value("monitor_deliveries_total", status="dead") == 0
    assert metrics.value("monitor_notifications", state="pending") == 4
    assert metrics.value("monitor_notifications", state="sent") == 0
    assert metrics.value("monitor_tmapi_calls_total") == 7
    calls[0] = 9  # read at scrape time
    assert parsed(metrics)[("monitor_tmapi_calls_total", ())] == 9


async def test_the_timed_gate_times_every_request_and_lets_errors_through() -> None:
    clock = Ticker()
    metrics = Metrics(clock=clock)
    entered: list[str] = []

    @asynccontextmanager
    async def gate() -> AsyncIterator[None]:
        entered.append("in")
        yield
        entered.append("out")

    timed = metrics.timed_gate(gate)
    async with timed():
        clock.now += 0.3
    with pytest.raises(TmapiTimeout):
        async with timed():
            clock.now += 1.5
            raise TmapiTimeout("slow")
    assert entered == ["in", "out", "in"]  # the inner gate saw the error too
    assert metrics.value("monitor_tmapi_request_duration_seconds_count") == 2
    assert metrics.value("monitor_tmapi_request_duration_seconds_sum") == pytest.approx(1.8)


async def test_loop_lag_is_how_late_the_probe_woke() -> None:
    clock = Ticker()
    metrics = Metrics()
    lags = iter([0.0, 0.35, 0.02])

    async def late_sleep(seconds: float) -> None:
        try:
            clock.now += seconds + next(lags)
        except StopIteration:
            raise asyncio.CancelledError from None

    with pytest.raises(asyncio.CancelledError):
        await watch_loop_lag(metrics, 0.5, clock=clock, sleep=late_sleep)
    assert metrics.value("monitor_event_loop_lag_seconds") == pytest.approx(0.02)


# -- health ----------------------------------------------------------------------------------------


def test_health_fails_when_rounds_stall_or_the_database_is_down() -> None:
    clock = Ticker()
    health = Health(30, clock=clock)
    assert health.report().ok  # a fresh process has stall_after seconds to start
    health.database_checked(True)
    clock.now += 25
    health.round_done()
    report = health.report()
    assert (report.ok, report.database) == (True, "ok")

    clock.now += 31  # no round for 31 s, and the last probe is as old
    report = health.report()
    assert not report.ok
    assert any("polling has stalled" in p for p in report.problems)
    assert any("database not checked" in p for p in report.problems)

    health.round_done()
    health.database_checked(False, "connection refused")
    report = health.report()
    assert (report.ok, report.database) == (False, "unreachable")
    assert report.problems == ("database unreachable: connection refused",)
    health.database_checked(True)
    assert health.report().ok
    assert health.report().to_json()["status"] == "ok"


async def stop_after_one(_seconds: float) -> None:
    raise asyncio.CancelledError


async def test_the_database_probe_counts_the_outbox(tmp_path: Path) -> None:
    url = f"sqlite+pysqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = make_engine(url)
    health, metrics = Health(10), Metrics()
    try:
        with pytest.raises(asyncio.CancelledError):
            await probe_database(engine, health, metrics, sleep=stop_after_one)
    finally:
        engine.dispose()
    assert health.report().database == "ok"
    assert metrics.value("monitor_database_up") == 1
    assert metrics.value("monitor_notifications", state="pending") == 0


async def test_the_database_probe_notices_an_unreachable_database() -> None:
    engine = make_engine(f"postgresql+psycopg://postgres:probe-pw-1234@127.0.0.1:{free_port()}/x")
    health, metrics = Health(10), Metrics()
    try:
        with pytest.raises(asyncio.CancelledError):
            await probe_database(engine, health, metrics, sleep=stop_after_one)
    finally:
        engine.dispose()
    report = health.report()
    assert not report.ok and report.database == "unreachable"
    assert "Connection refused" in report.problems[0]
    assert "probe-pw-1234" not in report.problems[0]
    assert metrics.value("monitor_database_up") == 0


async def test_a_hanging_probe_is_a_failure_and_is_never_doubled() -> None:
    """The probe's thread cannot be cancelled: while it hangs, later rounds wait on it
    instead of starting more threads; when it answers, health comes back."""
    answer = threading.Event()
    calls: list[int] = []

    def count(_engine: object) -> dict[OutboxState, int]:
        calls.append(1)
        answer.wait(timeout=10)
        return {OutboxState.SENT: 3}

    health, metrics = Health(10), Metrics()
    reports: list[bool] = []

    async def next_round(_seconds: float) -> None:
        reports.append(health.report().ok)
        if len(reports) == 2:
            answer.set()  # the database answers at last
        if len(reports) == 4:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await probe_database(
            None,  # type: ignore[arg-type]  # ``count`` ignores it
            health,
            metrics,
            answer_within=0.05,
            sleep=next_round,
            count=count,
        )
    assert reports == [False, False, True, True]
    assert len(calls) == 2  # one thread through the whole hang, then a fresh probe
    assert health.report().problems == ()
    assert metrics.value("monitor_notifications", state="sent") == 3


@pytest.fixture
def server() -> Iterator[tuple[MetricsServer, Health, Ticker]]:
    clock = Ticker()
    health = Health(30, clock=clock)
    metrics = Metrics()
    metrics.record_poll(poll(1, PollOutcome.BASELINE))
    with MetricsServer(metrics, health, host="127.0.0.1", port=0) as running:
        yield running, health, clock


def test_the_endpoint_serves_healthz_and_metrics(
    server: tuple[MetricsServer, Health, Ticker],
) -> None:
    running, health, clock = server
    ok = httpx.get(f"{running.url}/healthz")
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    scraped = httpx.get(f"{running.url}/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    assert 'monitor_polls_total{outcome="baseline"} 1.0' in scraped.text
    assert httpx.get(f"{running.url}/other").status_code == 404

    health.database_checked(False, "connection refused")
    failing = httpx.get(f"{running.url}/healthz")
    assert failing.status_code == 503
    assert failing.json()["problems"] == ["database unreachable: connection refused"]
    health.database_checked(True)
    clock.now += 60
    assert httpx.get(f"{running.url}/healthz").status_code == 503  # stalled


def test_a_port_in_use_is_a_config_error(server: tuple[MetricsServer, Health, Ticker]) -> None:
    running, health, _ = server
    with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{running.port}"):
        MetricsServer(Metrics(), health, host="127.0.0.1", port=running.port)


# -- the real process ------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
TOKEN = "metrics-token-51a0"
ITEMS = [1001, 1002, 1003]


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_monitor_run_serves_metrics_and_logs_json_lines(tmp_path: Path) -> None:
    url = f"sqlite+pysqlite:///{tmp_path / 'm.db'}"
    watchlist = tmp_path / "w.toml"
    watchlist.write_text(
        '[settings]\nmax_requests_per_second = 50\n\n[defaults]\ninterval = "1s"\n\n'
        + "".join(f"[[items]]\nid = {item}\n\n" for item in ITEMS),
        encoding="utf-8",
    )
    port = free_port()
    log = tmp_path / "daemon.log"
    with SimulatedTmapi(items=ITEMS, token=TOKEN) as sim, log.open("wb") as sink:
        sim.fail(ITEMS[0], code=422, times=1_000)  # one item fails every poll
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "TMAPI_"))}
        env.update(MONITOR_DATABASE_URL=url, TMAPI_TOKEN=TOKEN, TMAPI_BASE_URL=sim.base_url)
        args = ["--watchlist", str(watchlist), "--metrics-port", str(port)]
        command = [sys.executable, "-m", "monitor", "--log-format", "json", "--log-level", "DEBUG"]
        proc = subprocess.Popen([*command, "run", *args], cwd=REPO, env=env, stderr=sink)
        try:
            samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

            def scraped_enough() -> bool:
                assert proc.poll() is None, log.read_text(encoding="utf-8")
                try:
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except httpx.HTTPError:
                    return False
                samples.clear()
                samples.update(samples_of(text))
                return samples.get(("monitor_polls_total", (("outcome", "unchanged"),)), 0) >= 2

            wait(scraped_enough, 30)
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            assert health.status_code == 200, health.text
            proc.terminate()
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert samples[("monitor_polls_total", (("outcome", "baseline"),))] == 2
    assert samples[("monitor_poll_failures_total", (("reason", "bad_request"),))] >= 1
    assert samples[("monitor_tmapi_calls_total", ())] >= 5
    assert samples[("monitor_poll_duration_seconds_count", ())] >= 5
    assert samples[("monitor_tmapi_request_duration_seconds_count", ())] >= 5
    assert samples[("monitor_database_up", ())] == 1
    assert ("monitor_event_loop_lag_seconds", ()) in samples
    assert ("monitor_notifications", (("state", "pending"),)) in samples

    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 20
    for line in lines:
        entry = json.loads(line)  # every line, from every library, is one JSON object
        assert {"ts", "level", "logger", "msg"} <= entry.keys(), line
    loggers = {json.loads(line)["logger"] for line in lines}
    assert {"monitor.daemon.health", "monitor.daemon.runner"} <= loggers, loggers
    assert TOKEN not in log.read_text(encoding="utf-8")


def wait(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_metrics_port_makes_no_sense_with_once() -> None:
    result = CliRunner().invoke(run, ["--once", "--metrics-port", "9999"])
    assert result.exit_code == 2
    assert "--metrics-port serves a running daemon" in result.output
