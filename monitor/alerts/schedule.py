"""When a target may be told: quiet hours and digest times.

Pure functions of ``(target, now)``: no clock, no I/O. ``now`` and every
returned instant are timezone-aware datetimes in UTC; the target's
``quiet_hours`` and ``digest`` are wall-clock times in ``target.timezone``.

Wall-clock times are turned into instants day by day in the target's zone,
so a daylight-saving change never shifts a window by an hour:

* a time skipped by a spring-forward change (02:30 on a night that jumps
  from 02:00 to 03:00) resolves with the offset in force before the change,
  i.e. to 03:30 on the new clock, which is still after ``now``;
* a time that occurs twice on a fall-back night resolves to its first
  occurrence.

    hold_until(target, now)     None: send now. Else the instant to release the message:
                                the next digest time (moved past quiet hours), or the
                                end of the quiet window ``now`` falls in.
    quiet_release(target, at)   end of the quiet window containing ``at``, or None
    next_digest(target, now)    first digest instant strictly after ``now``, or None
    not_quiet(target, at)       ``at``, moved to the end of its quiet window if inside one
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitor.watchlist.model import Target

__all__ = ["hold_until", "local_instant", "next_digest", "not_quiet", "quiet_release"]

_ONE_DAY = timedelta(days=1)


def _check_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("schedule functions need timezone-aware datetimes")


def local_instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant at which the wall clock of ``zone`` shows ``clock`` on ``day``.

    DST-safe as described in the module docstring (``fold=0``).
    """
    wall = datetime.combine(day, clock.replace(tzinfo=None), tzinfo=zone).replace(fold=0)
    return wall.astimezone(UTC)


def quiet_release(target: Target, at: datetime) -> datetime | None:
    """When the quiet window that ``at`` falls in ends; ``None`` outside quiet hours."""
    _check_aware(at)
    window = target.quiet_hours
    if window is None:
        return None
    local = at.astimezone(target.timezone)
    if not window.contains(local.time()):
        return None
    end_day = local.date()
    if window.start > window.end and local.time() >= window.start:
        # A window spanning midnight, entered before midnight: it ends tomorrow.
        end_day += _ONE_DAY
    release = local_instant(end_day, window.end, target.timezone)
    # Only a clock oddity could put the end at or before ``at``; never hold into the past.
    return release if release > at else None


def not_quiet(target: Target, at: datetime) -> datetime:
    """``at``, or the end of the quiet window it falls in."""
    return quiet_release(target, at) or at


def next_digest(target: Target, now: datetime) -> datetime | None:
    """The first digest time strictly after ``now``; ``None`` if the target has no digest."""
    _check_aware(now)
    if target.digest is None:
        return None
    day = now.astimezone(target.timezone).date()
    candidate = local_instant(day, target.digest, target.timezone)
    while candidate <= now:
        day += _ONE_DAY
        candidate = local_instant(day, target.digest, target.timezone)
    return candidate


def hold_until(target: Target, now: datetime) -> datetime | None:
    """When a message created at ``now`` for ``target`` may go out; ``None`` means now.

    A digest target collects messages until its next digest time (moved to
    the end of the quiet window if the digest time falls inside one); any
    other target holds messages only while ``now`` is inside quiet hours.
    """
    digest_at = next_digest(target, now)
    if digest_at is not None:
        return not_quiet(target, digest_at)
    return quiet_release(target, now)
