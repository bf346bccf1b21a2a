"""Prometheus metrics of one ``monitor run`` process.

:class:`Metrics` owns a private ``CollectorRegistry`` (so tests can build as
many as they like) and the instruments below. Every daemon owns one
(``Daemon.metrics``) and feeds it the results it already has: each recorded
poll as it comes back from the store, each delivery report::

    monitor_polls_total{outcome}                recorded polls (baseline/unchanged/changed/
                                                failed/unavailable)
    monitor_poll_failures_total{reason}         failed polls by reason (timeout, parse, auth, …)
    monitor_changes_total{kind}                 recorded changes by kind
    monitor_poll_duration_seconds               claim round → poll recorded (histogram)
    monitor_tmapi_calls_total                   TMAPI requests sent (each one is paid)
    monitor_tmapi_request_duration_seconds      one TMAPI attempt inside the throttle (histogram)
    monitor_deliveries_total{status}            delivery outcomes (sent/retry/deferred/dead/lost)
    monitor_notifications{state}                outbox rows by state, as last counted
    monitor_database_up                         1 if the last database probe answered
    monitor_last_claim_round_timestamp_seconds  Unix time of the last successful claim round
    monitor_event_loop_lag_seconds              how late the event loop woke a timer

Polls are counted from the results the store returns
(:meth:`Metrics.record_poll`), so only committed polls count. TMAPI calls are read from the
client's own counter at scrape time; request times come from wrapping the
throttle's gate (:meth:`Metrics.timed_gate`). Nothing here carries a URL or
any other secret: labels are fixed vocabularies.

The health endpoint and the HTTP server are in :mod:`monitor.daemon.health`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric

from monitor.db.outbox import OutboxState
from monitor.db.records import PollOutcome, PollResult
from monitor.domain import OFFER_CHANGES
from monitor.errors import (
    TmapiAuthError,
    TmapiBadRequest,
    TmapiBadResponse,
    TmapiItemUnavailable,
    TmapiQuotaExhausted,
    TmapiRateLimited,
    TmapiServerError,
    TmapiTimeout,
    TmapiTransportError,
)
from monitor.notify.deliver import DeliveryReport, DeliveryStatus

__all__ = [
    "FAILURE_REASONS",
    "POLL_BUCKETS",
    "Gate",
    "Metrics",
    "watch_loop_lag",
]

#: The throttle's per-request gate, as ``TmapiClient(gate=...)`` takes it.
Gate = Callable[[], AbstractAsyncContextManager[object]]

#: Failure reasons shown (at 0) before the first failure of each kind.
_TMAPI_ERRORS = (
    TmapiTransportError,
    TmapiTimeout,
    TmapiServerError,
    TmapiRateLimited,
    TmapiItemUnavailable,
    TmapiBadRequest,
    TmapiQuotaExhausted,
    TmapiAuthError,
    TmapiBadResponse,
)
FAILURE_REASONS = (*(cls.reason for cls in _TMAPI_ERRORS), "parse")
#: Seconds; a poll includes the client's retries and backoff, so the tail is long.
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_FAILED = (PollOutcome.FAILED, PollOutcome.UNAVAILABLE)


class _CallsCollector:
    """``monitor_tmapi_calls_total``, read from a callable at scrape time."""

    def __init__(self) -> None:
        self.source: Callable[[], int] | None = None

    def describe(self) -> Iterable[Metric]:
        yield CounterMetricFamily("monitor_tmapi_calls", "TMAPI requests sent (each is paid).")

    def collect(self) -> Iterable[Metric]:
        value = self.source() if self.source is not None else 0
        yield CounterMetricFamily(
            "monitor_tmapi_calls", "TMAPI requests sent (each is paid).", value=value
        )


class Metrics:
    """The instruments of one process; see the module docstring.

    ``clock`` (monotonic seconds) times polls; ``wall`` (Unix seconds) stamps
    the last claim round. Recording methods are thread-safe: the poll hook
    runs in worker threads, everything else on the event loop.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        # The ``*_created`` series would double the output for no use here
        # (a process-wide switch of prometheus-client).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry()
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._started: dict[int, float] = {}
        reg = self.registry
        self.polls = Counter(
            "monitor_polls", "Recorded polls by outcome.", ["outcome"], registry=reg
        )
        self.failures = Counter(
            "monitor_poll_failures", "Failed polls by reason.", ["reason"], registry=reg
        )
        self.changes = Counter(
            "monitor_changes", "Recorded changes by kind.", ["kind"], registry=reg
        )
        self.poll_duration = Histogram(
            "monitor_poll_duration_seconds",
            "Seconds from a poll's claim round to its recording.",
            buckets=POLL_BUCKETS,
            registry=reg,
        )
        self.request_duration = Histogram(
            "monitor_tmapi_request_duration_seconds",
            "Seconds one TMAPI attempt held its throttle slot.",
            buckets=REQUEST_BUCKETS,
            registry=reg,
        )
        self.deliveries = Counter(
            "monitor_deliveries", "Delivery outcomes by status.", ["status"], registry=reg
        )
        self.notifications = Gauge(
            "monitor_notifications",
            "Outbox rows by state, as last counted.",
            ["state"],
            registry=reg,
        )
        self.database_up = Gauge(
            "monitor_database_up", "1 if the last database probe answered, else 0.", registry=reg
        )
        self.last_round = Gauge(
            "monitor_last_claim_round_timestamp_seconds",
            "Unix time of the last successful claim round.",
            registry=reg,
        )
        self.loop_lag = Gauge(
            "monitor_event_loop_lag_seconds",
            "How late the event loop woke the last lag probe.",
            registry=reg,
        )
        self._calls = _CallsCollector()
        reg.register(self._calls)
        for outcome in PollOutcome:
            self.polls.labels(outcome.value)
        for reason in FAILURE_REASONS:
            self.failures.labels(reason)
        for kind in OFFER_CHANGES:
            self.changes.labels(kind.value)
        for status in DeliveryStatus:
            self.deliveries.labels(status.value)
        for state in OutboxState:
            self.notifications.labels(state.value)

    # -- polls -----------------------------------------------------------------

    def round_done(self, item_ids: Iterable[int]) -> None:
        """A claim round succeeded and started polls of ``item_ids`` (times them).

        A poll that is never recorded (the database refused it) leaves its
        start behind until the item is claimed again: at most one per item.
        """
        now = self._clock()
        with self._lock:
            for item_id in item_ids:
                self._started[item_id] = now
        self.last_round.set(self._wall())

    def record_poll(self, poll: PollResult) -> None:
        """Count one recorded poll, its failure reason and its changes."""
        self.polls.labels(poll.outcome.value).inc()
        if poll.outcome in _FAILED:
            self.failures.labels(poll.error_reason or "error").inc()
        for change in poll.changes:
            self.changes.labels(change.kind.value).inc()
        with self._lock:
            started = self._started.pop(poll.item_id, None)
        if started is not None:
            self.poll_duration.observe(max(0.0, self._clock() - started))

    # -- TMAPI -----------------------------------------------------------------

    def count_calls(self, source: Callable[[], int]) -> None:
        """Read ``monitor_tmapi_calls_total`` from ``source`` (``lambda: client.calls``)."""
        self._calls.source = source

    def timed_gate(self, gate: Gate) -> Gate:
        """``gate`` that also times each request it lets through."""
        histogram = self.request_duration
        clock = self._clock

        @asynccontextmanager
        async def call() -> AsyncIterator[None]:
            async with gate():
                started = clock()
                try:
                    yield
                finally:
                    histogram.observe(max(0.0, clock() - started))

        return call

    # -- delivery --------------------------------------------------------------

    def record_deliveries(self, report: DeliveryReport) -> None:
        for delivery in report.deliveries:
            self.deliveries.labels(delivery.status.value).inc()

    def set_notification_counts(self, counts: Mapping[OutboxState, int]) -> None:
        for state in OutboxState:
            self.notifications.labels(state.value).set(counts.get(state, 0))

    # -- exposition ------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def samples(self) -> Iterator[tuple[str, dict[str, str], float]]:
        """Every sample as ``(name, labels, value)`` (what a scrape would show)."""
        for family in self.registry.collect():
            for sample in family.samples:
                yield sample.name, dict(sample.labels), sample.value

    def value(self, name: str, **labels: Any) -> float | None:
        """One sample's value (``None`` if absent)."""
        wanted = {key: str(value) for key, value in labels.items()}
        for sample_name, sample_labels, value in self.samples():
            if sample_name == name and sample_labels == wanted:
                return value
        return None


async def watch_loop_lag(
    metrics: Metrics,
    interval: float = 0.5,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Forever: sleep ``interval`` seconds and record how much later than asked we woke.

    A loop blocked by synchronous work (which invariant 8 forbids) shows up
    here as lag of about the blocked time.
    """
    while True:
        started = clock()
        await sleep(interval)
        metrics.loop_lag.set(max(0.0, clock() - started - interval))
