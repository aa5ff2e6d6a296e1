"""Validating a ``schedule`` object: :func:`parse_schedule`.

The object is a pydantic model (:class:`_ScheduleModel`) whose validators carry the messages
and take each value from decoded JSON to its typed form. pydantic checks every key, so all
problems are named at once, in a fixed order: an object's unknown keys first, then its fields
in the order they are declared. A key that depends on another (``compression`` on
``format``, the timing keys on ``frequency``) reads the other's value once that one passed its
own check; a key checked twice (whether the frequency uses ``time``, then its value) has a
second field that reads the same key (``validation_alias``).

A minimum interval between fire times (an operator's setting) is passed as ``min_interval`` and
reaches the validators as pydantic's validation context. Only saving a schedule checks it: a
report saved under a lower minimum still loads and runs.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from itertools import pairwise
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, CroniterError, croniter
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from uvm_reporting.domain.formats import Compression, ExportFormat, compression_problem
from uvm_reporting.domain.messages import json_kind, quoted
from uvm_reporting.domain.problems import problem, problems_from
from uvm_reporting.domain.s3_names import (
    bucket_name_problem,
    key_prefix_problem,
    region_partition,
    region_problem,
    role_arn_partition,
    role_arn_problem,
)
from uvm_reporting.domain.schedule.settings import (
    DEFAULT_FILE_NAME,
    DEFAULT_TIMEZONE,
    DELIVERY_KEYS,
    DELIVERY_METHODS,
    FILE_NAME_PLACEHOLDERS,
    FREQUENCIES,
    FREQUENCY_KEYS,
    MAX_CRON_LENGTH,
    MAX_FILE_NAME_LENGTH,
    MAX_KEY_BYTES,
    PLACEHOLDER,
    PLACEHOLDER_MAX_LENGTH,
    REQUIRED_PLACEHOLDER,
    SCHEDULE_KEYS,
    WEEKDAYS,
    Frequency,
    S3Delivery,
    ScheduleSettings,
    Weekday,
)

Problems = list[tuple[str, str]]

_FORMATS = tuple(ExportFormat)
_COMPRESSIONS = tuple(Compression)


def parse_schedule(
    data: Any, path: str = "schedule", *, min_interval: dt.timedelta | None = None
) -> tuple[ScheduleSettings | None, Problems]:
    """Validate a ``schedule`` object (decoded JSON): the settings, or None and the problems.

    Every problem is ``(path, message)``; the paths start with ``path``. The settings are None
    exactly when there are problems. With ``min_interval``, a schedule whose fire times can be
    closer together than that is refused.
    """
    if not isinstance(data, Mapping):
        return None, [(path, f"must be a JSON object, not {json_kind(data)}")]
    try:
        model = _ScheduleModel.model_validate(dict(data), context={"min_interval": min_interval})
    except ValidationError as error:
        found = problems_from(
            error,
            allowed_keys={"": SCHEDULE_KEYS, "delivery": DELIVERY_KEYS},
            prefix=path,
            unknown_keys_first=True,
            aliases=_ALIASES,
            message=_message,
        )
        return None, [(p.path, p.message) for p in found]
    return model.settings(), []


def _message(error: Mapping[str, Any]) -> str:
    # The validators word every problem but one: a key without a default that is missing.
    return "is required" if error["type"] == "missing" else str(error["msg"])


# --- The models --------------------------------------------------------------------------------


class _Document(BaseModel):
    # Every field is validated, set or not: a missing key and null both mean "not set", and a
    # validator says whether that is allowed. frozen: parsed input is data.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, validate_default=True)


def _string(value: Any, *, required: bool) -> str | None:
    # null means "not set", as omitting the key does.
    if value is None:
        if required:
            raise problem("is required")
        return None
    if not isinstance(value, str):
        raise problem(f"must be a string, not {json_kind(value)}")
    return value


def _choice(value: Any, choices: tuple[str, ...], *, required: bool) -> str | None:
    text = _string(value, required=required)
    if text is not None and text not in choices:
        raise problem(f"{quoted(text)} is not one of {', '.join(choices)}")
    return text


def _checked(value: Any, check: Callable[[str], str | None], *, required: bool) -> str | None:
    text = _string(value, required=required)
    if text is not None and (found := check(text)):
        raise problem(found)
    return text


class _DeliveryModel(_Document):
    method: Any = None
    bucket: Any = None
    region: Any = None
    role_arn: Any = None
    path: Any = None
    # The role's partition must be the region's; named after a problem with the path.
    role_arn_partition: Any = Field(default=None, validation_alias=AliasChoices("role_arn"))
    file_name: Any = None

    @field_validator("method", mode="plain")
    @classmethod
    def _method(cls, value: Any) -> str | None:
        return _choice(value, DELIVERY_METHODS, required=True)

    @field_validator("bucket", mode="plain")
    @classmethod
    def _bucket(cls, value: Any) -> str | None:
        return _checked(value, bucket_name_problem, required=True)

    @field_validator("region", mode="plain")
    @classmethod
    def _region(cls, value: Any) -> str | None:
        return _checked(value, region_problem, required=True)

    @field_validator("role_arn", mode="plain")
    @classmethod
    def _role_arn(cls, value: Any) -> str | None:
        return _checked(value, role_arn_problem, required=True)

    @field_validator("path", mode="plain")
    @classmethod
    def _path(cls, value: Any) -> str:
        return (_checked(value, key_prefix_problem, required=False) or "").removesuffix("/")

    @field_validator("role_arn_partition", mode="plain")
    @classmethod
    def _role_arn_partition(cls, _value: Any, info: ValidationInfo) -> None:
        if "region" in info.data and "role_arn" in info.data:
            region, role_arn = info.data["region"], info.data["role_arn"]
            role_partition, region_part = role_arn_partition(role_arn), region_partition(region)
            if role_partition != region_part:
                # A role of one partition cannot be assumed from another (aws-cn, aws-us-gov, aws).
                raise problem(f'is in partition {role_partition} but region "{region}" is in partition {region_part}')

    @field_validator("file_name", mode="plain")
    @classmethod
    def _file_name(cls, value: Any, info: ValidationInfo) -> str:
        file_name = _checked(value, file_name_problem, required=False)
        if file_name is None:
            return DEFAULT_FILE_NAME
        path: str = info.data.get("path", "")
        worst = len(path.encode("utf-8")) + 1 + _longest_file_name(file_name)
        if path and worst > MAX_KEY_BYTES:
            raise problem(
                f"with this path, object keys could be {worst} bytes long; S3 allows "
                f"{MAX_KEY_BYTES} (shorten the path or the file name)"
            )
        return file_name

    def delivery(self) -> S3Delivery:
        return S3Delivery(
            bucket=self.bucket, region=self.region, role_arn=self.role_arn, path=self.path, file_name=self.file_name
        )


class _ScheduleModel(_Document):
    format: Any = None
    compression: Any = None
    delivery: _DeliveryModel  # missing: pydantic's "missing" (see _message); null: refused by _delivery
    frequency: Any = None
    timezone: Any = None
    active: Any = None
    # First whether the frequency uses each timing key, then (below) the values it uses.
    time_used: Any = Field(default=None, validation_alias=AliasChoices("time"))
    weekday_used: Any = Field(default=None, validation_alias=AliasChoices("weekday"))
    day_used: Any = Field(default=None, validation_alias=AliasChoices("day"))
    cron_used: Any = Field(default=None, validation_alias=AliasChoices("cron"))
    time: Any = None
    weekday: Any = None
    day: Any = None
    cron: Any = None

    @field_validator("format", mode="plain")
    @classmethod
    def _format(cls, value: Any) -> ExportFormat | None:
        text = _choice(value, _FORMATS, required=True)
        return None if text is None else ExportFormat(text)

    @field_validator("compression", mode="plain")
    @classmethod
    def _compression(cls, value: Any, info: ValidationInfo) -> Compression | None:
        text = _choice(value, _COMPRESSIONS, required=False)
        compression = None if text is None else Compression(text)
        if "format" in info.data and (found := compression_problem(info.data["format"], compression)):
            raise problem(found)
        return compression

    @field_validator("delivery", mode="before")
    @classmethod
    def _delivery(cls, value: Any) -> Any:
        if value is None:
            raise problem("is required")
        if not isinstance(value, Mapping):
            raise problem(f"must be a JSON object, not {json_kind(value)}")
        return dict(value)

    @field_validator("frequency", mode="plain")
    @classmethod
    def _frequency(cls, value: Any, info: ValidationInfo) -> str | None:
        frequency = _choice(value, FREQUENCIES, required=True)
        gap = _FREQUENCY_GAP_MINUTES.get(frequency or "")
        if gap is not None and (found := _interval_problem(f'"{frequency}"', gap, info)):
            raise problem(found)
        return frequency

    @field_validator("timezone", mode="plain")
    @classmethod
    def _timezone(cls, value: Any) -> str:
        return _checked(value, timezone_problem, required=False) or DEFAULT_TIMEZONE

    @field_validator("active", mode="plain")
    @classmethod
    def _active(cls, value: Any) -> bool:
        if value is None:
            return True
        if not isinstance(value, bool):
            raise problem(f"must be true or false, not {json_kind(value)}")
        return value

    @field_validator("time_used", "weekday_used", "day_used", "cron_used", mode="plain")
    @classmethod
    def _used(cls, value: Any, info: ValidationInfo) -> None:
        frequency = info.data.get("frequency")
        if frequency is None:  # no valid frequency: its timing keys are not checked
            return
        key = str(info.field_name).removesuffix("_used")
        needed = FREQUENCY_KEYS[frequency]
        if key in needed and value is None:
            raise problem(f'is required when frequency is "{frequency}"')
        if key not in needed and value is not None:
            users = ", ".join(f for f, keys in FREQUENCY_KEYS.items() if key in keys)
            raise problem(f'is not used when frequency is "{frequency}" (only with {users})')

    @field_validator("time", mode="plain")
    @classmethod
    def _time(cls, value: Any, info: ValidationInfo) -> dt.time | None:
        text = _string(value, required=False) if _uses(info, "time") else None
        if text is None:
            return None
        match = _TIME.fullmatch(text)
        if match is None:
            raise problem(f'{quoted(text)} is not a time of day as "HH:MM" (24-hour clock), e.g. "06:30"')
        return dt.time(int(match[1]), int(match[2]))

    @field_validator("weekday", mode="plain")
    @classmethod
    def _weekday(cls, value: Any, info: ValidationInfo) -> str | None:
        return _choice(value, WEEKDAYS, required=False) if _uses(info, "weekday") else None

    @field_validator("day", mode="plain")
    @classmethod
    def _day(cls, value: Any, info: ValidationInfo) -> int | None:
        if value is None or not _uses(info, "day"):
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise problem(f"must be an integer from 1 to 31, not {json_kind(value)}")
        if not 1 <= value <= 31:
            raise problem(f"must be from 1 to 31, not {value}; months without that day fire on their last day")
        return value

    @field_validator("cron", mode="plain")
    @classmethod
    def _cron(cls, value: Any, info: ValidationInfo) -> str | None:
        text = _checked(value, cron_problem, required=False) if _uses(info, "cron") else None
        if text is None:
            return None
        normalised = " ".join(text.split())
        if found := _interval_problem(quoted(text), cron_min_gap_minutes(normalised), info):
            raise problem(found)
        return normalised

    def settings(self) -> ScheduleSettings:
        return ScheduleSettings(
            format=self.format,
            delivery=self.delivery.delivery(),
            frequency=cast("Frequency", self.frequency),
            time=self.time,
            weekday=cast("Weekday | None", self.weekday),
            day=self.day,
            cron=self.cron,
            timezone=self.timezone,
            active=self.active,
            compression=self.compression,
        )


_ALIASES = {
    name: str(field.validation_alias.choices[0])
    for model in (_ScheduleModel, _DeliveryModel)
    for name, field in model.model_fields.items()
    if isinstance(field.validation_alias, AliasChoices)
}


# The shortest time between two fire times of the fixed frequencies that can be short; daily and
# longer are over the largest minimum the setting allows (a day).
_FREQUENCY_GAP_MINUTES = {"hourly": 60}


def _interval_problem(what: str, gap_minutes: int, info: ValidationInfo) -> str | None:
    minimum: dt.timedelta | None = (info.context or {}).get("min_interval")
    if not minimum or dt.timedelta(minutes=gap_minutes) >= minimum:
        return None
    return (
        f"{what} fires as often as every {_minutes(gap_minutes)}; schedules may fire at most every "
        f"{_minutes(minimum // dt.timedelta(minutes=1))}"
    )


def _minutes(count: int) -> str:
    return f"{count} minute" if count == 1 else f"{count} minutes"


def _uses(info: ValidationInfo, key: str) -> bool:
    frequency = info.data.get("frequency")
    return frequency is not None and key in FREQUENCY_KEYS[frequency]


_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


# --- Value checks ------------------------------------------------------------------------------

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


def cron_min_gap_minutes(expression: str) -> int:
    """The shortest time between two fire times of a valid 5-field cron expression, in minutes
    of wall time: between two minutes of an hour, or from an hour's last minute to the first of
    the next hour that fires (from 23:xx to 00:xx too, whether or not the next day fires)."""
    minute_field, hour_field = croniter(expression).expanded[:2]
    minutes = list(range(60)) if minute_field == ["*"] else sorted({int(m) for m in minute_field})
    hours = list(range(24)) if hour_field == ["*"] else sorted({int(h) for h in hour_field})
    hour_steps = [b - a for a, b in pairwise(hours)] + [24 - hours[-1] + hours[0]]
    gaps = [b - a for a, b in pairwise(minutes)]
    gaps.append(min(hour_steps) * 60 - minutes[-1] + minutes[0])
    return min(gaps)


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
    placeholders = PLACEHOLDER.findall(template)
    unknown = [p for p in placeholders if p not in FILE_NAME_PLACEHOLDERS]
    if unknown:
        known = ", ".join(f"{{{p}}}" for p in FILE_NAME_PLACEHOLDERS)
        yield f"unknown placeholder {quoted('{' + unknown[0] + '}')}; use {known}"
    literal = PLACEHOLDER.sub("", template)
    if "{" in literal or "}" in literal:
        yield 'has an unmatched "{" or "}"'
    if not _FILE_NAME_LITERAL.fullmatch(literal):
        bad = next(c for c in literal if not _FILE_NAME_LITERAL.fullmatch(c))
        yield f"may contain only letters, digits, the characters !_.*'()- and placeholders, not {quoted(bad)}"
    if REQUIRED_PLACEHOLDER not in placeholders:
        yield "must contain {run_id}, so that no run overwrites another run's file"


def _longest_file_name(template: str) -> int:
    literal = len(PLACEHOLDER.sub("", template))
    return literal + sum(PLACEHOLDER_MAX_LENGTH[p] for p in PLACEHOLDER.findall(template))
