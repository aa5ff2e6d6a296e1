"""When a schedule fires: on the local wall clock of its time zone, then mapped to UTC.

:func:`next_fire_time` and :func:`latest_fire_time_at_or_before` compute fire times. Across
daylight saving changes:

* A local time that does not exist (the clock springs forward over it) fires at the first
  instant after the gap: a daily 02:30 in Europe/Berlin fires at 03:00 local on 2026-03-29.
* A local time that happens twice (the clock falls back over it) fires once, at its first
  occurrence (``fold=0``): a daily 01:30 in America/New_York fires at 01:30 EDT on 2026-11-01,
  not again at 01:30 EST. So an hourly schedule has no run in the repeated hour, as cron does.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from croniter import croniter

from uvm_reporting.domain.schedule.settings import DEFAULT_TIMEZONE, WEEKDAYS, ScheduleSettings


def next_fire_time(schedule: ScheduleSettings, after: dt.datetime) -> dt.datetime:
    """The first fire time strictly after ``after``, in UTC."""
    after = _utc(after, "after")
    zone = _zone(schedule.timezone)
    start = after.astimezone(zone).replace(tzinfo=None, fold=0)
    # Wall times go up, and so do their instants; the first instant past ``after`` is the answer.
    # Instants of wall times up to ``start`` are at or before ``after``, so none is skipped.
    for wall in _walls_after(schedule, start):
        instant = _instant(wall, zone)
        if instant > after:
            return instant
    raise AssertionError("unreachable: a schedule's wall times never run out")  # pragma: no cover


def latest_fire_time_at_or_before(
    schedule: ScheduleSettings, now: dt.datetime, not_before: dt.datetime
) -> dt.datetime | None:
    """The last fire time in [``not_before``, ``now``], in UTC; None when there is none.

    A scheduler that missed several fire times (it was down) runs once, for this one.
    """
    now = _utc(now, "now")
    not_before = _utc(not_before, "not_before")
    zone = _zone(schedule.timezone)
    local = now.astimezone(zone)
    # In the repeated hour of a fall-back night, wall times just after ``local`` are first
    # occurrences and so lie in the past: start that far later, and skip what is in the future.
    repeat = abs(
        (local.replace(fold=0).utcoffset() or dt.timedelta()) - (local.replace(fold=1).utcoffset() or dt.timedelta())
    )
    start = local.replace(tzinfo=None, fold=0) + repeat
    for wall in _walls_at_or_before(schedule, start):
        instant = _instant(wall, zone)
        if instant <= now:
            return instant if instant >= not_before else None
    raise AssertionError("unreachable: a schedule's wall times never run out")  # pragma: no cover


def _utc(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(dt.UTC)


def _zone(name: str) -> dt.tzinfo:
    # UTC needs no tz database, so the default works even where none is installed.
    return dt.UTC if name == DEFAULT_TIMEZONE else ZoneInfo(name)


def _cron_expression(schedule: ScheduleSettings) -> str | None:
    """The schedule as a cron expression; None for monthly (its "last day" rule is no cron)."""
    if schedule.frequency == "cron":
        return schedule.cron
    time = schedule.time or dt.time()
    if schedule.frequency == "hourly":
        return f"{time.minute} * * * *"
    if schedule.frequency == "daily":
        return f"{time.minute} {time.hour} * * *"
    if schedule.frequency == "weekly":
        cron_weekday = (WEEKDAYS.index(schedule.weekday or "monday") + 1) % 7  # cron: 0 is Sunday
        return f"{time.minute} {time.hour} * * {cron_weekday}"
    return None


def _walls_after(schedule: ScheduleSettings, start: dt.datetime) -> Iterator[dt.datetime]:
    """Naive local wall times of the schedule strictly after ``start``, ascending."""
    expression = _cron_expression(schedule)
    if expression is not None:
        # Naive datetimes: croniter does plain calendar arithmetic, with no DST of its own.
        iterator = croniter(expression, start)
        while True:
            yield iterator.get_next(dt.datetime)
    year, month = start.year, start.month
    while True:
        wall = _monthly_wall(schedule, year, month)
        if wall > start:
            yield wall
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _walls_at_or_before(schedule: ScheduleSettings, start: dt.datetime) -> Iterator[dt.datetime]:
    """Naive local wall times of the schedule at or before ``start``, descending."""
    expression = _cron_expression(schedule)
    if expression is not None:
        # croniter's get_prev is strictly before; a minute later includes ``start`` itself (the
        # caller skips anything after ``start``).
        iterator = croniter(expression, start + dt.timedelta(minutes=1))
        while True:
            yield iterator.get_prev(dt.datetime)
    year, month = start.year, start.month
    while True:
        wall = _monthly_wall(schedule, year, month)
        if wall <= start:
            yield wall
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)


def _monthly_wall(schedule: ScheduleSettings, year: int, month: int) -> dt.datetime:
    day = min(schedule.day or 1, calendar.monthrange(year, month)[1])
    return dt.datetime.combine(dt.date(year, month, day), schedule.time or dt.time())


def _instant(wall: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The UTC instant a local wall time fires at, by the DST rules in the module docstring."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # it exists; fold=0 is the first occurrence when it happens twice
    return _end_of_gap(wall, zone)


def _end_of_gap(wall: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The transition instant that skipped ``wall``: the first instant after the gap."""
    # With the offsets before and after the jump, ``wall`` maps to an instant before the
    # transition and one after it; bisect between them (transitions fall on whole seconds).
    bounds = [wall.replace(tzinfo=zone, fold=fold).astimezone(dt.UTC) for fold in (0, 1)]
    low, high = int(min(bounds).timestamp()), int(max(bounds).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if dt.datetime.fromtimestamp(middle, zone).replace(tzinfo=None) > wall:
            high = middle
        else:
            low = middle
    return dt.datetime.fromtimestamp(high, dt.UTC)
