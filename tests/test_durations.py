"""``Retry-After`` values read as delays, for the TMAPI client and notification delivery.

Both read the header through :func:`monitor.durations.parse_retry_after`:
delta-seconds (with an optional fraction) or an HTTP date, capped at a day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor.durations import MAX_RETRY_AFTER, parse_retry_after

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", timedelta(seconds=7)),
        ("120", timedelta(seconds=120)),
        (" 5 ", timedelta(seconds=5)),
        (" 0.5 ", timedelta(seconds=0.5)),
        ("0", timedelta(0)),
        ("000000000000005", timedelta(seconds=5)),
        ("86400", MAX_RETRY_AFTER),
        ("999999999", MAX_RETRY_AFTER),
        ("9" * 400, MAX_RETRY_AFTER),
        ("Sat, 01 Mar 2025 08:10:00 GMT", timedelta(minutes=10)),
        ("Sat, 01 Mar 2025 08:01:30 -0000", timedelta(seconds=90)),
        ("Sat, 01 Mar 2025 07:00:00 GMT", timedelta(0)),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
    ],
)
def test_parse_retry_after(value: str, expected: timedelta) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "-3",
        "+5",
        "nan",
        "inf",
        "1e9",
        "1_0",
        "5.",
        "²",
        "٣",
        "Mon, 01 Jan 99999",
    ],
)
def test_unusable_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_retry_after_dates_are_relative_to_now() -> None:
    assert parse_retry_after(format_datetime(NOW + timedelta(seconds=90), usegmt=True), NOW) == (
        timedelta(seconds=90)
    )
    assert parse_retry_after(format_datetime(NOW - timedelta(seconds=90), usegmt=True), NOW) == (
        timedelta(0)
    )
