"""A report's scheduled export ("Schedule Export"): what to export, where to, and when.

Pure, no I/O (time zones come from the system's tz database through :mod:`zoneinfo`). The
``schedule`` object of a report definition is parsed by :func:`parse_schedule`, which collects
every problem with its location (``schedule.delivery.bucket``) the way the definition's parser
does. :func:`next_fire_time` and :func:`latest_fire_time_at_or_before` compute fire times.

Fire times are computed on the local wall clock of the schedule's time zone, then mapped to UTC:

* A local time that does not exist (the clock springs forward over it) fires at the first
  instant after the gap: a daily 02:30 in Europe/Berlin fires at 03:00 local on 2026-03-29.
* A local time that happens twice (the clock falls back over it) fires once, at its first
  occurrence (``fold=0``): a daily 01:30 in America/New_York fires at 01:30 EDT on 2026-11-01,
  not again at 01:30 EST. So an hourly schedule has no run in the repeated hour, as cron does.

The documented format lives in ``docs/report-definition.md`` ("Scheduled export").
"""

from __future__ import annotations

import calendar
import datetime as dt
import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, CroniterError, croniter

from uvm_reporting.domain.messages import json_kind, quoted
from uvm_reporting.domain.names import REPORT_NAME_SLUG_LENGTH, report_name_slug
from uvm_reporting.domain.s3_names import (
    bucket_name_problem,
    key_prefix_problem,
    region_partition,
    region_problem,
    role_arn_partition,
    role_arn_problem,
)

ExportFormat = Literal["csv", "json", "ndjson", "xlsx", "parquet"]
Compression = Literal["gzip"]
Frequency = Literal["hourly", "daily", "weekly", "monthly", "cron"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
DeliveryMethod = Literal["s3"]

# The same values as the export formats' own enum; kept here so the domain stays import-free.
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "json", "ndjson", "xlsx", "parquet")
COMPRESSIONS: tuple[Compression, ...] = ("gzip",)
# xlsx and parquet files are compressed inside already; gzip on top gains nothing.
GZIP_FORMATS: frozenset[ExportFormat] = frozenset({"csv", "json", "ndjson"})
FREQUENCIES: tuple[Frequency, ...] = ("hourly", "daily", "weekly", "monthly", "cron")
WEEKDAYS: tuple[Weekday, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DELIVERY_METHODS: tuple[DeliveryMethod, ...] = ("s3",)
DEFAULT_TIMEZONE = "UTC"

SCHEDULE_KEYS = (
    "format",
    "compression",
    "delivery",
    "frequency",
    "time",
    "weekday",
    "day",
    "cron",
    "timezone",
    "active",
)
DELIVERY_KEYS = ("method", "bucket", "path", "file_name", "region", "role_arn")

# Which of the timing keys each frequency needs; the others must be absent.
FREQUENCY_KEYS: dict[Frequency, tuple[str, ...]] = {
    "hourly": ("time",),
    "daily": ("time",),
    "weekly": ("time", "weekday"),
    "monthly": ("time", "day"),
    "cron": ("cron",),
}
TIMING_KEYS = ("time", "weekday", "day", "cron")

# {run_id} is required: S3 overwrites an object silently, and only the run id is unique to one
# run (two runs of a report can share a fire time's date and time: a retried or manual run).
DEFAULT_FILE_NAME = "{report_name}-{date}-{run_id}.{ext}"
FILE_NAME_PLACEHOLDERS = ("report_name", "report_id", "run_id", "date", "time", "ext")
REQUIRED_PLACEHOLDER = "run_id"
MAX_FILE_NAME_LENGTH = 255
MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
# The longest each placeholder renders to; checked against MAX_KEY_BYTES when saving.
_PLACEHOLDER_MAX_LENGTH = {
    "report_name": REPORT_NAME_SLUG_LENGTH,
    "report_id": 36,
    "run_id": 36,
    "date": 10,
    "time": 6,
    "ext": 16,
}
MAX_CRON_LENGTH = 200

Problems = list[tuple[str, str]]


# --- The parsed settings -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3Delivery:
    """Delivery to the customer's bucket through an IAM role they let us assume.

    ``path`` is the key prefix without a trailing "/" ("" for the bucket's root).
    """

    bucket: str
    region: str
    role_arn: str
    path: str = ""
    file_name: str = DEFAULT_FILE_NAME

    @property
    def method(self) -> DeliveryMethod:
        return "s3"

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "bucket": self.bucket,
            "path": self.path,
            "file_name": self.file_name,
            "region": self.region,
            "role_arn": self.role_arn,
        }


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    """A validated ``schedule`` object. Build it with :func:`parse_schedule`.

    Only the timing keys of ``frequency`` are set (see ``FREQUENCY_KEYS``); the others are None.
    ``time`` is local to ``timezone``; for hourly schedules only its minute counts.
    """

    format: ExportFormat
    delivery: S3Delivery
    frequency: Frequency
    time: dt.time | None = None
    weekday: Weekday | None = None
    day: int | None = None
    cron: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    active: bool = True
    compression: Compression | None = None

    @property
    def extension(self) -> str:
        """The exported file's extension: ``csv``, or ``csv.gz`` when gzip-compressed."""
        return f"{self.format}.gz" if self.compression == "gzip" else self.format

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form: parsing it again gives equal settings."""
        data: dict[str, Any] = {
            "format": self.format,
            "compression": self.compression,
            "delivery": self.delivery.to_json(),
            "frequency": self.frequency,
        }
        if self.time is not None:
            data["time"] = self.time.strftime("%H:%M")
        if self.weekday is not None:
            data["weekday"] = self.weekday
        if self.day is not None:
            data["day"] = self.day
        if self.cron is not None:
            data["cron"] = self.cron
        data["timezone"] = self.timezone
        data["active"] = self.active
        return data


def compression_problem(format: ExportFormat, compression: Compression | None) -> str | None:
    """Why ``compression`` does not apply to ``format``, or None."""
    if compression is not None and format not in GZIP_FORMATS:
        allowed = ", ".join(f for f in EXPORT_FORMATS if f in GZIP_FORMATS)
        return (
            f'"{compression}" does not apply to {format} files, which are compressed already; it applies to {allowed}'
        )
    return None


# --- Parsing -----------------------------------------------------------------------------------


class _Reader:
    """Reads the keys of one JSON object, recording each problem with its path."""

    def __init__(self, data: Mapping[Any, Any], path: str, keys: tuple[str, ...], problems: Problems) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        for key in data:
            if key not in keys:
                self.add(_key_text(key), f"unknown key; allowed keys are {', '.join(keys)}")

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def add(self, key: str, message: str) -> None:
        self.problems.append((self.where(key), message))

    def present(self, key: str) -> bool:
        # null means "not set", as omitting the key does.
        return self.data.get(key) is not None

    def string(self, key: str, *, required: bool) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.add(key, "is required")
            return None
        if not isinstance(value, str):
            self.add(key, f"must be a string, not {json_kind(value)}")
            return None
        return value

    def choice(self, key: str, choices: tuple[str, ...], *, required: bool) -> str | None:
        value = self.string(key, required=required)
        if value is not None and value not in choices:
            self.add(key, f"{quoted(value)} is not one of {', '.join(choices)}")
            return None
        return value


def parse_schedule(data: Any, path: str = "schedule") -> tuple[ScheduleSettings | None, Problems]:
    """Validate a ``schedule`` object (decoded JSON): the settings, or None and the problems.

    Every problem is ``(path, message)``; the paths start with ``path``. The settings are None
    exactly when there are problems.
    """
    problems: Problems = []
    if not isinstance(data, Mapping):
        return None, [(path, f"must be a JSON object, not {json_kind(data)}")]
    reader = _Reader(data, path, SCHEDULE_KEYS, problems)

    export_format = cast(ExportFormat | None, reader.choice("format", EXPORT_FORMATS, required=True))
    compression = cast(Compression | None, reader.choice("compression", COMPRESSIONS, required=False))
    if export_format is not None and (problem := compression_problem(export_format, compression)):
        reader.add("compression", problem)
    delivery = _parse_delivery(data.get("delivery"), reader)
    frequency = cast(Frequency | None, reader.choice("frequency", FREQUENCIES, required=True))
    timezone = reader.string("timezone", required=False)
    if timezone is not None and (problem := timezone_problem(timezone)):
        reader.add("timezone", problem)
        timezone = None
    active = _parse_active(reader)
    time, weekday, day, cron = _parse_timing(reader, frequency) if frequency is not None else _NO_TIMING

    if problems:
        return None, problems
    # No problems, so every required value was read.
    assert export_format is not None
    assert frequency is not None
    assert delivery is not None
    return ScheduleSettings(
        format=export_format,
        delivery=delivery,
        frequency=frequency,
        time=time,
        weekday=weekday,
        day=day,
        cron=cron,
        timezone=timezone or DEFAULT_TIMEZONE,
        active=active,
        compression=compression,
    ), problems


_Timing = tuple[dt.time | None, Weekday | None, int | None, str | None]
_NO_TIMING: _Timing = (None, None, None, None)


def _parse_timing(reader: _Reader, frequency: Frequency) -> _Timing:
    """time, weekday, day and cron: those of ``frequency`` are required, the others refused."""
    needed = FREQUENCY_KEYS[frequency]
    for key in TIMING_KEYS:
        if key in needed and not reader.present(key):
            reader.add(key, f'is required when frequency is "{frequency}"')
        elif key not in needed and reader.present(key):
            users = ", ".join(f for f, keys in FREQUENCY_KEYS.items() if key in keys)
            reader.add(key, f'is not used when frequency is "{frequency}" (only with {users})')
    return (
        _parse_time(reader) if "time" in needed else None,
        cast(Weekday | None, reader.choice("weekday", WEEKDAYS, required=False)) if "weekday" in needed else None,
        _parse_day(reader) if "day" in needed else None,
        _parse_cron(reader) if "cron" in needed else None,
    )


def _parse_active(reader: _Reader) -> bool:
    active = reader.data.get("active")
    if active is None:
        return True
    if not isinstance(active, bool):
        reader.add("active", f"must be true or false, not {json_kind(active)}")
        return True
    return active


def _parse_delivery(data: Any, parent: _Reader) -> S3Delivery | None:
    if data is None:
        parent.add("delivery", "is required")
        return None
    if not isinstance(data, Mapping):
        parent.add("delivery", f"must be a JSON object, not {json_kind(data)}")
        return None
    count = len(parent.problems)
    reader = _Reader(data, parent.where("delivery"), DELIVERY_KEYS, parent.problems)
    reader.choice("method", DELIVERY_METHODS, required=True)
    checked: dict[str, str] = {}
    checks = (
        ("bucket", bucket_name_problem, True),
        ("region", region_problem, True),
        ("role_arn", role_arn_problem, True),
        ("path", key_prefix_problem, False),
    )
    for key, check, required in checks:
        value = reader.string(key, required=required)
        if value is not None and (problem := check(value)):
            reader.add(key, problem)
        elif value is not None:
            checked[key] = value
    if "region" in checked and "role_arn" in checked:
        role_partition, region_part = role_arn_partition(checked["role_arn"]), region_partition(checked["region"])
        if role_partition != region_part:
            # A role of one partition cannot be assumed from another (aws-cn, aws-us-gov, aws).
            reader.add(
                "role_arn",
                f'is in partition {role_partition} but region "{checked["region"]}" is in partition {region_part}',
            )
    path = checked.get("path", "").removesuffix("/")
    file_name = reader.string("file_name", required=False)
    if file_name is None:
        file_name = DEFAULT_FILE_NAME
    elif problem := file_name_problem(file_name):
        reader.add("file_name", problem)
    else:
        worst = len(path.encode("utf-8")) + 1 + _longest_file_name(file_name)
        if path and worst > MAX_KEY_BYTES:
            reader.add(
                "file_name",
                f"with this path, object keys could be {worst} bytes long; S3 allows "
                f"{MAX_KEY_BYTES} (shorten the path or the file name)",
            )
    if len(parent.problems) > count:
        return None
    return S3Delivery(
        bucket=checked["bucket"], region=checked["region"], role_arn=checked["role_arn"], path=path, file_name=file_name
    )


_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


def _parse_time(reader: _Reader) -> dt.time | None:
    value = reader.string("time", required=False)
    if value is None:
        return None
    match = _TIME.fullmatch(value)
    if match is None:
        reader.add("time", f'{quoted(value)} is not a time of day as "HH:MM" (24-hour clock), e.g. "06:30"')
        return None
    return dt.time(int(match[1]), int(match[2]))


def _parse_day(reader: _Reader) -> int | None:
    value = reader.data.get("day")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        reader.add("day", f"must be an integer from 1 to 31, not {json_kind(value)}")
        return None
    if not 1 <= value <= 31:
        reader.add("day", f"must be from 1 to 31, not {value}; months without that day fire on their last day")
        return None
    return value


def _parse_cron(reader: _Reader) -> str | None:
    value = reader.string("cron", required=False)
    if value is None:
        return None
    problem = cron_problem(value)
    if problem:
        reader.add("cron", problem)
        return None
    return " ".join(value.split())


_CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_CRON_NUMERIC = re.compile(r"[0-9*,/-]+")
_CRON_NAMED = re.compile(r"[0-9A-Za-z*,/-]+")
# Spelt out rather than taken from ``calendar``, whose names follow the process's locale.
_MONTH_NAMES = frozenset({"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"})
_DAY_NAMES = frozenset({"sun", "mon", "tue", "wed", "thu", "fri", "sat"})
_CRON_NAMES: tuple[frozenset[str], ...] = (frozenset(), frozenset(), frozenset(), _MONTH_NAMES, _DAY_NAMES)


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a 5-field cron expression that fires, or None."""
    return next(_cron_problems(expression), None)


def _cron_problems(expression: str) -> Iterator[str]:
    # The caller takes the first problem only, so each check may assume the earlier ones passed.
    if len(expression) > MAX_CRON_LENGTH:
        yield f"must be at most {MAX_CRON_LENGTH} characters"
    fields = expression.split()
    if len(fields) != len(_CRON_FIELDS):
        yield (
            f'must have 5 fields (minute hour day-of-month month day-of-week), e.g. "0 6 * * 1-5"; '
            f"{quoted(expression)} has {len(fields)}"
        )
    for position, (field, label) in enumerate(zip(fields, _CRON_FIELDS, strict=True)):
        names = _CRON_NAMES[position]
        pattern = _CRON_NAMED if names else _CRON_NUMERIC
        words = {w.lower() for w in re.findall(r"[A-Za-z]+", field)}
        if not pattern.fullmatch(field) or not words <= names:
            allowed = 'numbers, names (jan, mon), "*", ",", "-" and "/"' if names else 'numbers, "*", ",", "-" and "/"'
            yield f"the {label} field {quoted(field)} is not valid; use {allowed}"
    normalised = " ".join(fields)
    if not croniter.is_valid(normalised):
        yield f"{quoted(expression)} is not a valid cron expression (a value is out of range?)"
    try:
        croniter(normalised, dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).get_next(dt.datetime)
    except CroniterBadDateError:
        yield f"{quoted(expression)} never fires (no such date)"
    except (CroniterError, ValueError) as error:
        yield f"{quoted(expression)} is not a valid cron expression: {error}"


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone name known here, or None."""
    if name == DEFAULT_TIMEZONE:
        return None
    known = _known_timezones()
    if name not in known:
        message = f'{quoted(name)} is not an IANA time zone name such as "Europe/Berlin"'
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.7)
        return message + (f' (did you mean "{close[0]}"?)' if close else "")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"{quoted(name)} cannot be loaded from this system's time zone database"
    return None


@cache
def _known_timezones() -> frozenset[str]:
    # Scanning the tz database takes a while; its content does not change while we run.
    return frozenset(available_timezones())


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# AWS's "safe characters" for object keys: nothing that needs encoding or special handling.
_FILE_NAME_LITERAL = re.compile(r"[A-Za-z0-9!_.*'()-]*")


def file_name_problem(template: str) -> str | None:
    """Why ``template`` is not a valid file-name template, or None."""
    return next(_file_name_problems(template), None)


def _file_name_problems(template: str) -> Iterator[str]:
    # The caller takes the first problem only, so each check may assume the earlier ones passed.
    if not template:
        yield "must not be empty"
    if len(template) > MAX_FILE_NAME_LENGTH:
        yield f"must be at most {MAX_FILE_NAME_LENGTH} characters, not {len(template)}"
    if "/" in template:
        yield 'must be a file name without "/"; put folders in "path"'
    placeholders = _PLACEHOLDER.findall(template)
    unknown = [p for p in placeholders if p not in FILE_NAME_PLACEHOLDERS]
    if unknown:
        known = ", ".join(f"{{{p}}}" for p in FILE_NAME_PLACEHOLDERS)
        yield f"unknown placeholder {quoted('{' + unknown[0] + '}')}; use {known}"
    literal = _PLACEHOLDER.sub("", template)
    if "{" in literal or "}" in literal:
        yield 'has an unmatched "{" or "}"'
    if not _FILE_NAME_LITERAL.fullmatch(literal):
        bad = next(c for c in literal if not _FILE_NAME_LITERAL.fullmatch(c))
        yield f"may contain only letters, digits, the characters !_.*'()- and placeholders, not {quoted(bad)}"
    if REQUIRED_PLACEHOLDER not in placeholders:
        yield "must contain {run_id}, so that no run overwrites another run's file"


def _longest_file_name(template: str) -> int:
    literal = len(_PLACEHOLDER.sub("", template))
    return literal + sum(_PLACEHOLDER_MAX_LENGTH[p] for p in _PLACEHOLDER.findall(template))


# --- Object keys -------------------------------------------------------------------------------


def render_object_key(
    delivery: S3Delivery, *, report_name: str, report_id: str, run_id: str, at: dt.datetime, extension: str
) -> str:
    """The object key of a run's file: ``path/`` then the file-name template filled in.

    ``at`` (the fire time, or the run's creation time) gives ``{date}`` and ``{time}`` in UTC;
    ``extension`` is the file's, e.g. ``csv.gz``.
    """
    if at.tzinfo is None:
        raise ValueError("at must be a timezone-aware datetime")
    at = at.astimezone(dt.UTC)
    values = {
        "report_name": report_name_slug(report_name),
        "report_id": report_id,
        "run_id": run_id,
        "date": at.strftime("%Y-%m-%d"),
        "time": at.strftime("%H%M%S"),
        "ext": extension,
    }
    try:
        name = _PLACEHOLDER.sub(lambda match: values[match[1]], delivery.file_name)
    except KeyError as error:  # only for settings built by hand, bypassing parsing
        raise ValueError(f"unknown placeholder {{{error.args[0]}}} in {delivery.file_name!r}") from None
    return f"{delivery.path}/{name}" if delivery.path else name


# --- Fire times --------------------------------------------------------------------------------


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


# --- Helpers -----------------------------------------------------------------------------------


def _key_text(key: Any) -> str:
    text = str(key)
    return text if len(text) <= 80 else text[:80] + "..."  # an unknown key can be any length


def delivery_destination(
    schedule: ScheduleSettings, *, report_name: str, report_id: str, run_id: str, at: dt.datetime
) -> dict[str, str]:
    """Where one run delivers: bucket, rendered key, region and role (a run's ``destination``)."""
    delivery = schedule.delivery
    key = render_object_key(
        delivery, report_name=report_name, report_id=report_id, run_id=run_id, at=at, extension=schedule.extension
    )
    return {"bucket": delivery.bucket, "key": key, "region": delivery.region, "role_arn": delivery.role_arn}
