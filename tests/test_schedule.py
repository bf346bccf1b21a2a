"""Quiet hours and digest times: pure functions of (target, now), DST-safe."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.alerts.schedule import (
    hold_until,
    local_instant,
    next_digest,
    not_quiet,
    quiet_release,
)
from monitor.watchlist.model import QuietHours, Target

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def target(
    *,
    quiet: tuple[time, time] | None = None,
    zone: ZoneInfo = SHANGHAI,
    digest: time | None = None,
) -> Target:
    return Target(
        name="team",
        url="json://127.0.0.1:9/hook",
        url_template="json://127.0.0.1:9/hook",
        quiet_hours=QuietHours(*quiet) if quiet else None,
        timezone=zone,
        digest=digest,
    )


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


NIGHT = (time(22), time(8))
LUNCH = (time(12), time(14))


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        # Spanning midnight, entered in the evening: ends tomorrow morning.
        (NIGHT, local(SHANGHAI, 2025, 3, 1, 23, 30), local(SHANGHAI, 2025, 3, 2, 8, 0)),
        # ... entered after midnight: ends this morning.
        (NIGHT, local(SHANGHAI, 2025, 3, 2, 3, 0), local(SHANGHAI, 2025, 3, 2, 8, 0)),
        (NIGHT, local(SHANGHAI, 2025, 3, 1, 22, 0), local(SHANGHAI, 2025, 3, 2, 8, 0)),
        # The end is exclusive; daytime is not quiet.
        (NIGHT, local(SHANGHAI, 2025, 3, 2, 8, 0), None),
        (NIGHT, local(SHANGHAI, 2025, 3, 2, 12, 0), None),
        (NIGHT, local(SHANGHAI, 2025, 3, 1, 21, 59), None),
        # A window within one day.
        (LUNCH, local(SHANGHAI, 2025, 3, 1, 13, 0), local(SHANGHAI, 2025, 3, 1, 14, 0)),
        (LUNCH, local(SHANGHAI, 2025, 3, 1, 14, 0), None),
    ],
)
def test_quiet_release(window: tuple[time, time], now: datetime, expected: datetime | None) -> None:
    release = quiet_release(target(quiet=window), now.astimezone(UTC))
    assert release == expected
    if release is not None:
        assert release.tzinfo is UTC
        assert hold_until(target(quiet=window), now) == release


def test_no_quiet_hours_and_no_digest_never_hold() -> None:
    now = utc(2025, 3, 1, 18, 0)
    assert quiet_release(target(), now) is None
    assert next_digest(target(), now) is None
    assert hold_until(target(), now) is None
    assert not_quiet(target(), now) == now


def test_spring_forward_night_is_an_hour_shorter() -> None:
    # Berlin, 2025-03-30: clocks jump from 02:00 CET to 03:00 CEST.
    quiet = target(quiet=NIGHT, zone=BERLIN)
    now = local(BERLIN, 2025, 3, 29, 23, 0)  # 22:00 UTC
    release = quiet_release(quiet, now)
    assert release == utc(2025, 3, 30, 6, 0)  # 08:00 CEST
    assert release - now == timedelta(hours=8)  # 23:00 to 08:00 on a night with no 02:00


def test_fall_back_night_is_an_hour_longer() -> None:
    # Berlin, 2025-10-26: clocks go back from 03:00 CEST to 02:00 CET.
    quiet = target(quiet=NIGHT, zone=BERLIN)
    now = local(BERLIN, 2025, 10, 25, 23, 0)  # 21:00 UTC
    release = quiet_release(quiet, now)
    assert release == utc(2025, 10, 26, 7, 0)  # 08:00 CET
    assert release - now == timedelta(hours=10)


def test_window_ending_in_the_skipped_hour_ends_after_the_jump() -> None:
    quiet = target(quiet=(time(22), time(2, 30)), zone=BERLIN)
    now = utc(2025, 3, 30, 0, 30)  # 01:30 CET, inside the window
    release = quiet_release(quiet, now)
    # 02:30 does not exist that night: it resolves to 03:30 CEST (01:30 UTC), still later.
    assert release == utc(2025, 3, 30, 1, 30)
    assert local_instant(datetime(2025, 3, 30).date(), time(2, 30), BERLIN) == release


def test_next_digest_is_strictly_after_now_and_follows_dst() -> None:
    daily = target(zone=NEW_YORK, digest=time(9))
    # New York switches to EDT on 2025-03-09.
    assert next_digest(daily, local(NEW_YORK, 2025, 3, 8, 10, 0)) == utc(2025, 3, 9, 13, 0)
    assert next_digest(daily, local(NEW_YORK, 2025, 3, 8, 8, 0)) == utc(2025, 3, 8, 14, 0)
    # Exactly at digest time: that digest is being made, the next one is tomorrow.
    assert next_digest(daily, local(NEW_YORK, 2025, 3, 10, 9, 0)) == utc(2025, 3, 11, 13, 0)


def test_digest_inside_quiet_hours_waits_for_their_end() -> None:
    both = target(quiet=NIGHT, digest=time(7))
    now = local(SHANGHAI, 2025, 3, 1, 15, 0)
    assert hold_until(both, now) == local(SHANGHAI, 2025, 3, 2, 8, 0)
    # A digest target holds even outside quiet hours.
    digest_only = target(digest=time(18))
    assert hold_until(digest_only, now) == local(SHANGHAI, 2025, 3, 1, 18, 0)


def test_not_quiet_moves_a_retry_out_of_the_window() -> None:
    quiet = target(quiet=NIGHT)
    inside = local(SHANGHAI, 2025, 3, 1, 23, 0)
    outside = local(SHANGHAI, 2025, 3, 1, 20, 0)
    assert not_quiet(quiet, inside) == local(SHANGHAI, 2025, 3, 2, 8, 0)
    assert not_quiet(quiet, outside) == outside


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        quiet_release(target(quiet=NIGHT), datetime(2025, 3, 1, 23, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        next_digest(target(digest=time(9)), datetime(2025, 3, 1, 23, 0))
