"""Scheduled-export settings: parsing, fire times across DST changes, object keys, S3 names."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uvm_reporting.domain.formats import GZIP_FORMATS, Compression, ExportFormat, compression_problem
from uvm_reporting.domain.names import report_name_slug
from uvm_reporting.domain.report_definition.parsing import parse_report_definition
from uvm_reporting.domain.s3_names import (
    bucket_name_problem,
    key_prefix_problem,
    region_problem,
    role_arn_problem,
)
from uvm_reporting.domain.schedule.fire_times import latest_fire_time_at_or_before, next_fire_time
from uvm_reporting.domain.schedule.object_keys import render_object_key
from uvm_reporting.domain.schedule.settings import DEFAULT_FILE_NAME, S3Delivery, ScheduleSettings
from uvm_reporting.domain.schedule.validation import cron_min_gap_minutes, parse_schedule
from uvm_reporting.errors import BadUserInput

ROLE = "arn:aws:iam::123456789012:role/uvm-export"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def delivery(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "method": "s3",
        "bucket": "acme-exports",
        "path": "uvm/reports",
        "region": "eu-west-1",
        "role_arn": ROLE,
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not ...}


def schedule_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"format": "csv", "delivery": delivery(), "frequency": "daily", "time": "06:30"}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not ...}


def parsed(**overrides: Any) -> ScheduleSettings:
    settings_, problems = parse_schedule(schedule_data(**overrides))
    assert problems == []
    assert settings_ is not None
    return settings_


def problems_of(data: Any) -> list[tuple[str, str]]:
    settings_, problems = parse_schedule(data)
    assert settings_ is None
    assert problems
    return problems


def only_problem(**overrides: Any) -> tuple[str, str]:
    problems = problems_of(schedule_data(**overrides))
    assert len(problems) == 1, problems
    return problems[0]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def fires(schedule: ScheduleSettings, after: datetime, count: int) -> list[datetime]:
    times = []
    for _ in range(count):
        after = next_fire_time(schedule, after)
        times.append(after)
    return times


def fires_between(schedule: ScheduleSettings, start: datetime, end: datetime) -> list[datetime]:
    times = []
    while (start := next_fire_time(schedule, start)) <= end:
        times.append(start)
    return times


# --- parsing: valid settings -------------------------------------------------------------------


def test_minimal_schedule_gets_defaults() -> None:
    schedule = parsed()
    assert schedule == ScheduleSettings(
        format=ExportFormat.CSV,
        delivery=S3Delivery(bucket="acme-exports", region="eu-west-1", role_arn=ROLE, path="uvm/reports"),
        frequency="daily",
        time=time(6, 30),
    )
    assert schedule.timezone == "UTC"
    assert schedule.active is True
    assert schedule.compression is None
    assert schedule.delivery.file_name == DEFAULT_FILE_NAME == "{report_name}-{date}-{run_id}.{ext}"
    assert schedule.delivery.method == "s3"
    assert schedule.extension == "csv"


@pytest.mark.parametrize(
    "overrides",
    [
        {"frequency": "hourly", "time": "00:15"},
        {"frequency": "daily", "time": "23:59", "timezone": "Europe/Berlin"},
        {"frequency": "weekly", "time": "06:30", "weekday": "sunday", "timezone": "America/New_York"},
        {"frequency": "monthly", "time": "00:00", "day": 31},
        {"frequency": "cron", "time": ..., "cron": "0 6 * * 1-5"},
        {"format": "ndjson", "compression": "gzip", "active": False},
        {"format": "parquet", "compression": None},
        {"format": "xlsx", "delivery": delivery(path="", file_name="{run_id}")},
        {"delivery": delivery(region="us-gov-west-1", role_arn="arn:aws-us-gov:iam::123456789012:role/a/b/x")},
        {"delivery": delivery(region="cn-north-1", role_arn="arn:aws-cn:iam::123456789012:role/x")},
    ],
)
def test_valid_schedules_round_trip_through_json(overrides: dict[str, Any]) -> None:
    schedule = parsed(**overrides)
    again, problems = parse_schedule(schedule.to_json())
    assert problems == []
    assert again == schedule
    assert again.to_json() == schedule.to_json()


def test_canonical_json_form() -> None:
    schedule = parsed(
        format="json",
        compression="gzip",
        frequency="weekly",
        weekday="friday",
        timezone="Europe/Berlin",
        delivery=delivery(path="uvm/reports/"),
    )
    assert schedule.to_json() == {
        "format": "json",
        "compression": "gzip",
        "delivery": {
            "method": "s3",
            "bucket": "acme-exports",
            "path": "uvm/reports",
            "file_name": DEFAULT_FILE_NAME,
            "region": "eu-west-1",
            "role_arn": ROLE,
        },
        "frequency": "weekly",
        "time": "06:30",
        "weekday": "friday",
        "timezone": "Europe/Berlin",
        "active": True,
    }
    assert schedule.extension == "json.gz"


def test_null_means_not_set() -> None:
    schedule = parsed(
        compression=None, timezone=None, active=None, weekday=None, delivery=delivery(path=None, file_name=None)
    )
    assert schedule == parsed(delivery=delivery(path=""))


def test_cron_expression_is_normalised() -> None:
    assert parsed(frequency="cron", time=..., cron="  0  6 * *\tMON-fri ").cron == "0 6 * * MON-fri"


def test_constants_match_the_formats() -> None:
    assert tuple(ExportFormat) == ("csv", "json", "ndjson", "xlsx", "parquet")
    assert tuple(Compression) == ("gzip",)
    assert {"csv", "json", "ndjson"} == GZIP_FORMATS
    assert compression_problem(ExportFormat.CSV, Compression.GZIP) is None
    assert compression_problem(ExportFormat.PARQUET, None) is None
    assert compression_problem(ExportFormat.XLSX, Compression.GZIP) is not None


# --- parsing: every problem ---------------------------------------------------------------------


def test_problems_are_listed_in_a_fixed_order() -> None:
    # Unknown keys first, then the keys in turn; a delivery's partition after its path; the
    # timing keys the frequency needs or refuses before the values of those it uses.
    data = schedule_data(
        colour=1,
        frequency="weekly",
        time="6:30",
        cron="0 6 * * *",
        delivery=delivery(colour=1, path="/uvm", role_arn="arn:aws-cn:iam::123456789012:role/x"),
    )
    assert [path for path, _ in problems_of(data)] == [
        "schedule.colour",
        "schedule.delivery.colour",
        "schedule.delivery.path",
        "schedule.delivery.role_arn",
        "schedule.weekday",
        "schedule.cron",
        "schedule.time",
    ]


@pytest.mark.parametrize("data", [None, [], "daily", 3])
def test_schedule_must_be_an_object(data: Any) -> None:
    assert problems_of(data) == [("schedule", f"must be a JSON object, not {_kind(data)}")]


def _kind(value: Any) -> str:
    return {type(None): "null", list: "a list", str: "a string", int: "a number"}[type(value)]


@pytest.mark.parametrize(
    ("overrides", "path", "message"),
    [
        ({"colour": "red"}, "schedule.colour", "unknown key; allowed keys are format, compression, delivery"),
        ({"format": ...}, "schedule.format", "is required"),
        ({"format": "pdf"}, "schedule.format", '"pdf" is not one of csv, json, ndjson, xlsx, parquet'),
        ({"format": "CSV"}, "schedule.format", '"CSV" is not one of'),
        ({"format": 1}, "schedule.format", "must be a string, not a number"),
        ({"compression": "zip"}, "schedule.compression", '"zip" is not one of gzip'),
        (
            {"format": "xlsx", "compression": "gzip"},
            "schedule.compression",
            '"gzip" does not apply to xlsx files, which are compressed already; it applies to csv, json, ndjson',
        ),
        ({"format": "parquet", "compression": "gzip"}, "schedule.compression", "does not apply to parquet"),
        ({"delivery": ...}, "schedule.delivery", "is required"),
        ({"delivery": "s3://acme"}, "schedule.delivery", "must be a JSON object, not a string"),
        ({"frequency": ...}, "schedule.frequency", "is required"),
        ({"frequency": "yearly"}, "schedule.frequency", '"yearly" is not one of hourly, daily, weekly, monthly, cron'),
        ({"time": ...}, "schedule.time", 'is required when frequency is "daily"'),
        ({"time": "6:30"}, "schedule.time", '"6:30" is not a time of day as "HH:MM" (24-hour clock)'),
        ({"time": "24:00"}, "schedule.time", "is not a time of day"),
        ({"time": "06:60"}, "schedule.time", "is not a time of day"),
        ({"time": "06:30:00"}, "schedule.time", "is not a time of day"),
        ({"time": 630}, "schedule.time", "must be a string, not a number"),
        ({"weekday": "monday"}, "schedule.weekday", 'is not used when frequency is "daily" (only with weekly)'),
        ({"day": 1}, "schedule.day", 'is not used when frequency is "daily" (only with monthly)'),
        ({"cron": "0 6 * * *"}, "schedule.cron", 'is not used when frequency is "daily" (only with cron)'),
        ({"frequency": "weekly"}, "schedule.weekday", 'is required when frequency is "weekly"'),
        ({"frequency": "weekly", "weekday": "Monday"}, "schedule.weekday", '"Monday" is not one of monday,'),
        ({"frequency": "weekly", "weekday": 1}, "schedule.weekday", "must be a string, not a number"),
        ({"frequency": "monthly"}, "schedule.day", 'is required when frequency is "monthly"'),
        ({"frequency": "monthly", "day": 0}, "schedule.day", "must be from 1 to 31, not 0"),
        ({"frequency": "monthly", "day": 32}, "schedule.day", "must be from 1 to 31, not 32"),
        ({"frequency": "monthly", "day": "1"}, "schedule.day", "must be an integer from 1 to 31, not a string"),
        ({"frequency": "monthly", "day": True}, "schedule.day", "must be an integer from 1 to 31, not a boolean"),
        ({"frequency": "monthly", "day": 1.5}, "schedule.day", "must be an integer from 1 to 31, not a number"),
        ({"frequency": "cron", "time": ...}, "schedule.cron", 'is required when frequency is "cron"'),
        ({"frequency": "cron", "cron": "0 6 * * *"}, "schedule.time", 'is not used when frequency is "cron"'),
        (
            {"frequency": "cron", "time": ..., "cron": "0 6 * *"},
            "schedule.cron",
            'must have 5 fields (minute hour day-of-month month day-of-week), e.g. "0 6 * * 1-5"; "0 6 * *" has 4',
        ),
        ({"frequency": "cron", "time": ..., "cron": "0 0 6 * * *"}, "schedule.cron", "has 6"),
        ({"frequency": "cron", "time": ..., "cron": "@daily"}, "schedule.cron", "has 1"),
        (
            {"frequency": "cron", "time": ..., "cron": "0 6 L * *"},
            "schedule.cron",
            'the day of month field "L" is not valid; use numbers, "*", ",", "-" and "/"',
        ),
        ({"frequency": "cron", "time": ..., "cron": "H 6 * * *"}, "schedule.cron", "the minute field"),
        ({"frequency": "cron", "time": ..., "cron": "0 6 * * 1#2"}, "schedule.cron", "the day of week field"),
        ({"frequency": "cron", "time": ..., "cron": "0 6 * * funday"}, "schedule.cron", "the day of week field"),
        ({"frequency": "cron", "time": ..., "cron": "0 6 * foo *"}, "schedule.cron", "the month field"),
        (
            {"frequency": "cron", "time": ..., "cron": "60 6 * * *"},
            "schedule.cron",
            '"60 6 * * *" is not a valid cron expression',
        ),
        ({"frequency": "cron", "time": ..., "cron": "0 24 * * *"}, "schedule.cron", "is not a valid cron expression"),
        ({"frequency": "cron", "time": ..., "cron": "*/0 * * * *"}, "schedule.cron", "is not a valid cron expression"),
        (
            {"frequency": "cron", "time": ..., "cron": "0 0 30 2 *"},
            "schedule.cron",
            '"0 0 30 2 *" never fires (no such date)',
        ),
        ({"frequency": "cron", "time": ..., "cron": "0 " * 150}, "schedule.cron", "must be at most 200 characters"),
        ({"frequency": "cron", "time": ..., "cron": 6}, "schedule.cron", "must be a string, not a number"),
        (
            {"timezone": "Europe/Berln"},
            "schedule.timezone",
            '"Europe/Berln" is not an IANA time zone name such as "Europe/Berlin" (did you mean "Europe/Berlin"?)',
        ),
        ({"timezone": "CEST"}, "schedule.timezone", "is not an IANA time zone name"),
        ({"timezone": "/etc/localtime"}, "schedule.timezone", "is not an IANA time zone name"),
        ({"timezone": "../../etc/passwd"}, "schedule.timezone", "is not an IANA time zone name"),
        ({"timezone": ["UTC"]}, "schedule.timezone", "must be a string, not a list"),
        ({"active": "yes"}, "schedule.active", "must be true or false, not a string"),
        ({"active": 1}, "schedule.active", "must be true or false, not a number"),
    ],
)
def test_each_schedule_problem_is_named_with_its_path(overrides: dict[str, Any], path: str, message: str) -> None:
    problem_path, problem_message = only_problem(**overrides)
    assert problem_path == path
    assert message in problem_message


@pytest.mark.parametrize(
    ("overrides", "path", "message"),
    [
        ({"url": "s3://x"}, "schedule.delivery.url", "unknown key; allowed keys are method, bucket, path, file_name"),
        ({"method": ...}, "schedule.delivery.method", "is required"),
        ({"method": "sftp"}, "schedule.delivery.method", '"sftp" is not one of s3'),
        ({"bucket": ...}, "schedule.delivery.bucket", "is required"),
        (
            {"bucket": "Acme"},
            "schedule.delivery.bucket",
            'may contain only lower-case letters, digits, dots and hyphens, not "A" (bucket names are lower case)',
        ),
        ({"bucket": "ab"}, "schedule.delivery.bucket", "must be 3 to 63 characters long, not 2"),
        ({"bucket": 5}, "schedule.delivery.bucket", "must be a string, not a number"),
        ({"region": ...}, "schedule.delivery.region", "is required"),
        ({"region": "eu-west"}, "schedule.delivery.region", "must be an AWS region name"),
        ({"role_arn": ...}, "schedule.delivery.role_arn", "is required"),
        ({"role_arn": "uvm-export"}, "schedule.delivery.role_arn", "must be an IAM role ARN"),
        (
            {"region": "cn-north-1"},
            "schedule.delivery.role_arn",
            'is in partition aws but region "cn-north-1" is in partition aws-cn',
        ),
        ({"path": "/uvm"}, "schedule.delivery.path", 'must not begin with "/": it is relative to the bucket'),
        ({"path": "uvm/../other"}, "schedule.delivery.path", 'must not contain "." or ".." as a folder name'),
        ({"path": 7}, "schedule.delivery.path", "must be a string, not a number"),
        ({"file_name": ""}, "schedule.delivery.file_name", "must not be empty"),
        (
            {"file_name": "{report_name}.{ext}"},
            "schedule.delivery.file_name",
            "must contain {run_id}, so that no run overwrites another run's file",
        ),
        (
            {"file_name": "{run_id}-{hour}.csv"},
            "schedule.delivery.file_name",
            'unknown placeholder "{hour}"; use {report_name}, {report_id}, {run_id}, {date}, {time}, {ext}',
        ),
        ({"file_name": "{run_id:>40}.csv"}, "schedule.delivery.file_name", 'unknown placeholder "{run_id:>40}"'),
        ({"file_name": "{{run_id}}"}, "schedule.delivery.file_name", 'has an unmatched "{" or "}"'),
        ({"file_name": "{run_id"}, "schedule.delivery.file_name", 'has an unmatched "{" or "}"'),
        (
            {"file_name": "out/{run_id}.csv"},
            "schedule.delivery.file_name",
            'must be a file name without "/"; put folders in "path"',
        ),
        (
            {"file_name": "{run_id} copy.csv"},
            "schedule.delivery.file_name",
            'may contain only letters, digits, the characters !_.*\'()- and placeholders, not " "',
        ),
        ({"file_name": "{run_id}" + "x" * 250}, "schedule.delivery.file_name", "must be at most 255 characters"),
        ({"file_name": 1}, "schedule.delivery.file_name", "must be a string, not a number"),
        (
            {"path": "p" * 900, "file_name": "{report_name}{report_name}{run_id}.{ext}"},
            "schedule.delivery.file_name",
            "with this path, object keys could be 1082 bytes long; S3 allows 1024",
        ),
    ],
)
def test_each_delivery_problem_is_named_with_its_path(overrides: dict[str, Any], path: str, message: str) -> None:
    problem_path, problem_message = only_problem(delivery=delivery(**overrides))
    assert problem_path == path
    assert message in problem_message


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        {
            "format": "pdf",
            "delivery": {"method": "s3", "bucket": "x"},
            "frequency": "weekly",
            "day": 3,
            "timezone": "Mars/Olympus",
            "extra": 1,
        }
    )
    assert [path for path, _ in problems] == [
        "schedule.extra",
        "schedule.format",
        "schedule.delivery.bucket",
        "schedule.delivery.region",
        "schedule.delivery.role_arn",
        "schedule.timezone",
        "schedule.time",
        "schedule.weekday",
        "schedule.day",
    ]


def test_paths_start_with_the_given_path() -> None:
    _, problems = parse_schedule({"format": "csv"}, path="reports[2].schedule")
    assert {path for path, _ in problems} == {"reports[2].schedule.delivery", "reports[2].schedule.frequency"}


# --- the minimum interval between fire times -----------------------------------------------------

QUARTER_HOUR = timedelta(minutes=15)


@pytest.mark.parametrize(
    ("cron", "gap"),
    [
        ("* * * * *", 1),
        ("*/15 * * * *", 15),
        ("*/20 8-18 * * 1-5", 20),
        ("0,10 6 * * *", 10),
        ("0 * * * *", 60),
        ("50 23 * * *", 1440),
        ("0 6 * * mon", 1440),
        ("5,55 0,23 * * *", 10),  # 23:55 to 00:05 of the next day
        ("55 8,10 * * *", 120),
    ],
)
def test_the_shortest_gap_of_a_cron_expression(cron: str, gap: int) -> None:
    assert cron_min_gap_minutes(cron) == gap


@pytest.mark.parametrize(
    ("overrides", "minimum", "problem"),
    [
        (
            {"frequency": "cron", "time": ..., "cron": "* * * * *"},
            QUARTER_HOUR,
            (
                "schedule.cron",
                '"* * * * *" fires as often as every 1 minute; schedules may fire at most every 15 minutes',
            ),
        ),
        (
            {"frequency": "cron", "time": ..., "cron": "0,10 6 * * *"},
            QUARTER_HOUR,
            (
                "schedule.cron",
                '"0,10 6 * * *" fires as often as every 10 minutes; schedules may fire at most every 15 minutes',
            ),
        ),
        (
            {"frequency": "hourly", "time": "00:05"},
            timedelta(minutes=90),
            (
                "schedule.frequency",
                '"hourly" fires as often as every 60 minutes; schedules may fire at most every 90 minutes',
            ),
        ),
    ],
)
def test_a_schedule_firing_more_often_than_the_minimum_is_refused(
    overrides: dict[str, Any], minimum: timedelta, problem: tuple[str, str]
) -> None:
    settings_, problems = parse_schedule(schedule_data(**overrides), min_interval=minimum)
    assert settings_ is None
    assert problems == [problem]
    # Without a minimum (a stored report read back) it is valid, as it was when it was saved.
    assert parse_schedule(schedule_data(**overrides))[1] == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"frequency": "cron", "time": ..., "cron": "*/15 * * * *"},
        {"frequency": "hourly", "time": "00:05"},
        {"frequency": "daily", "time": "06:30"},
    ],
)
def test_a_schedule_at_the_minimum_or_slower_is_accepted(overrides: dict[str, Any]) -> None:
    assert parse_schedule(schedule_data(**overrides), min_interval=QUARTER_HOUR)[1] == []


def test_a_definition_is_checked_against_the_minimum_only_when_asked() -> None:
    data = definition(schedule=schedule_data(frequency="cron", time=..., cron="*/5 * * * *"))
    with pytest.raises(BadUserInput) as caught:
        parse_report_definition(data, min_schedule_interval=QUARTER_HOUR)
    assert caught.value.details["path"] == "schedule.cron"
    assert parse_report_definition(data).schedule is not None


# --- in a report definition -----------------------------------------------------------------------


def definition(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "Daily export", "entity": "findings", "columns": ["id", "title"]}
    data.update(overrides)
    return data


def test_a_definition_carries_its_schedule_and_round_trips() -> None:
    parsed_definition = parse_report_definition(definition(schedule=schedule_data(timezone="Europe/Berlin")))
    assert parsed_definition.schedule == parsed(timezone="Europe/Berlin")
    stored = parsed_definition.to_json()
    assert stored["schedule"] == parsed_definition.schedule.to_json()
    assert parse_report_definition(stored) == parsed_definition


@pytest.mark.parametrize("schedule", [None, ...])
def test_a_definition_without_schedule_has_none(schedule: Any) -> None:
    data = definition() if schedule is ... else definition(schedule=schedule)
    parsed_definition = parse_report_definition(data)
    assert parsed_definition.schedule is None
    assert "schedule" not in parsed_definition.to_json()


def test_schedule_problems_join_the_definitions_problems() -> None:
    data = definition(columns=["id", "nope"], schedule=schedule_data(time="25:00", delivery=delivery(bucket="A")))
    with pytest.raises(BadUserInput) as caught:
        parse_report_definition(data)
    error = caught.value
    assert [p["path"] for p in error.details["problems"]] == ["columns[1]", "schedule.delivery.bucket", "schedule.time"]
    assert error.details["path"] == "columns[1]"
    assert error.message.startswith("The report definition has 3 problems: columns[1]: unknown field")


@pytest.mark.parametrize(
    ("overrides", "paths"),
    [
        (
            {"name": "", "schedule": {"format": "pdf"}},
            ["name", "schedule.format", "schedule.delivery", "schedule.frequency"],
        ),
        ({"entity": "tickets", "schedule": schedule_data(active="no")}, ["entity", "schedule.active"]),
        ({"schedule": schedule_data(active="no")}, ["schedule.active"]),
    ],
)
def test_schedule_problems_are_reported_with_shape_and_entity_problems(
    overrides: dict[str, Any], paths: list[str]
) -> None:
    with pytest.raises(BadUserInput) as caught:
        parse_report_definition(definition(**overrides))
    assert [p["path"] for p in caught.value.details["problems"]] == paths


# --- fire times ---------------------------------------------------------------------------------


def test_hourly_fires_every_hour_at_the_minute_strictly_after() -> None:
    schedule = parsed(frequency="hourly", time="07:15")  # the hour is ignored
    assert fires(schedule, utc(2026, 3, 2, 10, 20), 3) == [
        utc(2026, 3, 2, 11, 15),
        utc(2026, 3, 2, 12, 15),
        utc(2026, 3, 2, 13, 15),
    ]
    assert next_fire_time(schedule, utc(2026, 3, 2, 11, 15)) == utc(2026, 3, 2, 12, 15)
    assert next_fire_time(schedule, utc(2026, 3, 2, 11, 15) - timedelta(seconds=1)) == utc(2026, 3, 2, 11, 15)


def test_daily_in_utc() -> None:
    schedule = parsed()
    assert fires(schedule, utc(2026, 3, 2, 6, 30), 2) == [utc(2026, 3, 3, 6, 30), utc(2026, 3, 4, 6, 30)]
    assert next_fire_time(schedule, utc(2026, 3, 2)) == utc(2026, 3, 2, 6, 30)


def test_daily_in_a_time_zone_is_local_time() -> None:
    schedule = parsed(timezone="America/New_York")
    assert next_fire_time(schedule, utc(2026, 1, 15)) == utc(2026, 1, 15, 11, 30)  # EST, UTC-5
    assert next_fire_time(schedule, utc(2026, 7, 15)) == utc(2026, 7, 15, 10, 30)  # EDT, UTC-4


def test_weekly_fires_on_its_weekday() -> None:
    schedule = parsed(frequency="weekly", weekday="monday", time="06:30", timezone="Europe/Berlin")
    times = fires(schedule, utc(2026, 3, 18), 3)  # a Wednesday; Berlin changes to CEST on 2026-03-29
    assert times == [utc(2026, 3, 23, 5, 30), utc(2026, 3, 30, 4, 30), utc(2026, 4, 6, 4, 30)]
    assert {t.astimezone(BERLIN).strftime("%A %H:%M") for t in times} == {"Monday 06:30"}


@pytest.mark.parametrize(("weekday", "date"), [("sunday", 8), ("saturday", 7), ("tuesday", 3)])
def test_weekly_weekdays_map_to_the_right_days(weekday: str, date: int) -> None:
    schedule = parsed(frequency="weekly", weekday=weekday, time="12:00")
    assert next_fire_time(schedule, utc(2026, 3, 2)) == utc(2026, 3, date, 12)  # 2026-03-02 is a Monday


def test_monthly_on_the_31st_fires_on_the_last_day_of_shorter_months() -> None:
    schedule = parsed(frequency="monthly", day=31, time="06:00")
    assert [t.date().isoformat() for t in fires(schedule, utc(2026, 1, 1), 12)] == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
        "2026-06-30",
        "2026-07-31",
        "2026-08-31",
        "2026-09-30",
        "2026-10-31",
        "2026-11-30",
        "2026-12-31",
    ]
    assert next_fire_time(schedule, utc(2028, 2, 1)) == utc(2028, 2, 29, 6)
    assert next_fire_time(schedule, utc(2026, 1, 31, 6)) == utc(2026, 2, 28, 6)


def test_monthly_on_the_29th_in_february() -> None:
    schedule = parsed(frequency="monthly", day=29, time="00:00")
    assert fires(schedule, utc(2027, 1, 30), 2) == [utc(2027, 2, 28), utc(2027, 3, 29)]
    assert fires(schedule, utc(2028, 1, 30), 2) == [utc(2028, 2, 29), utc(2028, 3, 29)]


def test_monthly_in_a_time_zone() -> None:
    schedule = parsed(frequency="monthly", day=1, time="00:30", timezone="Europe/Berlin")
    assert fires(schedule, utc(2026, 2, 15), 2) == [utc(2026, 2, 28, 23, 30), utc(2026, 3, 31, 22, 30)]


def test_cron_weekdays_in_new_york() -> None:
    schedule = parsed(frequency="cron", time=..., cron="0 6 * * 1-5", timezone="America/New_York")
    times = fires(schedule, utc(2026, 3, 5, 12), 4)  # Thursday, after 06:00 EST
    assert times == [utc(2026, 3, 6, 11), utc(2026, 3, 9, 10), utc(2026, 3, 10, 10), utc(2026, 3, 11, 10)]
    assert {t.astimezone(NEW_YORK).strftime("%H:%M") for t in times} == {"06:00"}


def test_cron_day_of_month_or_day_of_week() -> None:
    schedule = parsed(frequency="cron", time=..., cron="0 0 1 * sun")
    assert [t.day for t in fires(schedule, utc(2026, 2, 27), 3)] == [1, 8, 15]  # Sunday March 1st, then Sundays


def test_cron_names_and_steps() -> None:
    schedule = parsed(frequency="cron", time=..., cron="*/20 9 * mar mon")
    assert fires(schedule, utc(2026, 2, 28), 4) == [
        utc(2026, 3, 2, 9),
        utc(2026, 3, 2, 9, 20),
        utc(2026, 3, 2, 9, 40),
        utc(2026, 3, 9, 9),
    ]


# --- daylight saving time ------------------------------------------------------------------------


def test_spring_forward_europe_daily_0230_fires_at_0300() -> None:
    schedule = parsed(time="02:30", timezone="Europe/Berlin")
    times = fires(schedule, utc(2026, 3, 27, 12), 3)
    assert times == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    assert [t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for t in times] == [
        "03-28 02:30 CET",
        "03-29 03:00 CEST",
        "03-30 02:30 CEST",
    ]


def test_spring_forward_us_daily_0230_fires_at_0300() -> None:
    schedule = parsed(time="02:30", timezone="America/New_York")
    times = fires(schedule, utc(2026, 3, 6, 12), 3)
    assert times == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]
    assert [t.astimezone(NEW_YORK).strftime("%m-%d %H:%M %Z") for t in times] == [
        "03-07 02:30 EST",
        "03-08 03:00 EDT",
        "03-09 02:30 EDT",
    ]


def test_fall_back_us_daily_0130_fires_once_at_the_first_occurrence() -> None:
    schedule = parsed(time="01:30", timezone="America/New_York")
    times = fires_between(schedule, utc(2026, 10, 31), utc(2026, 11, 3))
    assert times == [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    assert [t.astimezone(NEW_YORK).strftime("%m-%d %H:%M %Z") for t in times] == [
        "10-31 01:30 EDT",
        "11-01 01:30 EDT",
        "11-02 01:30 EST",
    ]
    # From within the repeated hour (01:10 EST, after the first 01:30) the next is the next day's.
    assert next_fire_time(schedule, utc(2026, 11, 1, 6, 10)) == utc(2026, 11, 2, 6, 30)


def test_fall_back_europe_daily_0230_fires_once() -> None:
    schedule = parsed(time="02:30", timezone="Europe/Berlin")
    times = fires_between(schedule, utc(2026, 10, 24), utc(2026, 10, 27))
    assert times == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_fall_back_europe_daily_0130_is_not_affected() -> None:
    schedule = parsed(time="01:30", timezone="Europe/Berlin")  # Berlin repeats 02:00-03:00, not 01:xx
    assert fires_between(schedule, utc(2026, 10, 24), utc(2026, 10, 26, 12)) == [
        utc(2026, 10, 24, 23, 30),
        utc(2026, 10, 26, 0, 30),
    ]


def test_hourly_has_no_run_in_the_repeated_hour() -> None:
    schedule = parsed(frequency="hourly", time="00:30", timezone="America/New_York")
    assert fires_between(schedule, utc(2026, 11, 1, 4), utc(2026, 11, 1, 8)) == [
        utc(2026, 11, 1, 4, 30),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 7, 30),
    ]


def test_hourly_across_the_gap_fires_at_its_end() -> None:
    schedule = parsed(frequency="hourly", time="00:30", timezone="Europe/Berlin")
    times = fires_between(schedule, utc(2026, 3, 28, 23), utc(2026, 3, 29, 2))
    assert [t.astimezone(BERLIN).strftime("%H:%M") for t in times] == ["00:30", "01:30", "03:00", "03:30"]


def test_several_cron_times_in_the_gap_fire_once_at_its_end() -> None:
    schedule = parsed(frequency="cron", time=..., cron="*/15 * * * *", timezone="Europe/Berlin")
    times = fires_between(schedule, utc(2026, 3, 29, 0, 40), utc(2026, 3, 29, 1, 20))
    assert [t.astimezone(BERLIN).strftime("%H:%M") for t in times] == ["01:45", "03:00", "03:15"]


def test_weekly_and_monthly_across_the_gap() -> None:
    weekly = parsed(frequency="weekly", weekday="sunday", time="02:00", timezone="America/New_York")
    assert next_fire_time(weekly, utc(2026, 3, 7)) == utc(2026, 3, 8, 7)  # 03:00 EDT
    monthly = parsed(frequency="monthly", day=29, time="02:15", timezone="Europe/Berlin")
    assert next_fire_time(monthly, utc(2026, 3, 1)) == utc(2026, 3, 29, 1)  # 03:00 CEST


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_time(parsed(), datetime(2026, 3, 2))
    with pytest.raises(ValueError, match="timezone-aware"):
        latest_fire_time_at_or_before(parsed(), datetime(2026, 3, 2), utc(2026, 3, 1))


def test_results_are_utc_whatever_the_input_zone() -> None:
    result = next_fire_time(parsed(timezone="Europe/Berlin"), datetime(2026, 3, 2, 9, tzinfo=BERLIN))
    assert result.tzinfo is UTC
    assert result == utc(2026, 3, 3, 5, 30)


# --- coalescing -------------------------------------------------------------------------------------


def test_coalescing_returns_only_the_latest_missed_fire_time() -> None:
    schedule = parsed()  # daily 06:30 UTC
    missed_since = utc(2026, 3, 2, 6, 30)
    assert latest_fire_time_at_or_before(schedule, utc(2026, 3, 7, 8), missed_since) == utc(2026, 3, 7, 6, 30)
    assert latest_fire_time_at_or_before(schedule, utc(2026, 3, 7, 6, 29), missed_since) == utc(2026, 3, 6, 6, 30)


def test_coalescing_bounds_are_inclusive() -> None:
    schedule = parsed()
    fire = utc(2026, 3, 2, 6, 30)
    assert latest_fire_time_at_or_before(schedule, fire, fire) == fire
    assert latest_fire_time_at_or_before(schedule, fire - timedelta(seconds=1), fire) is None
    assert latest_fire_time_at_or_before(schedule, utc(2026, 3, 3), fire + timedelta(seconds=1)) is None


def test_coalescing_monthly_and_cron() -> None:
    monthly = parsed(frequency="monthly", day=31, time="06:00")
    assert latest_fire_time_at_or_before(monthly, utc(2026, 5, 15), utc(2026, 1, 1)) == utc(2026, 4, 30, 6)
    cron = parsed(frequency="cron", time=..., cron="0 6 * * 1-5", timezone="America/New_York")
    assert latest_fire_time_at_or_before(cron, utc(2026, 3, 8, 23), utc(2026, 3, 1)) == utc(2026, 3, 6, 11)


def test_coalescing_in_the_repeated_hour_and_after_the_gap() -> None:
    hourly = parsed(frequency="hourly", time="00:30", timezone="America/New_York")
    # 06:40 UTC is 01:40 EST, the second 01:40 of the night; the last fire was 01:30 EDT.
    assert latest_fire_time_at_or_before(hourly, utc(2026, 11, 1, 6, 40), utc(2026, 11, 1)) == utc(2026, 11, 1, 5, 30)
    daily = parsed(time="02:30", timezone="Europe/Berlin")
    gap_end = utc(2026, 3, 29, 1)
    assert latest_fire_time_at_or_before(daily, gap_end, utc(2026, 3, 28, 12)) == gap_end
    assert latest_fire_time_at_or_before(daily, gap_end - timedelta(seconds=1), utc(2026, 3, 28, 12)) is None


SCHEDULES = st.one_of(
    st.builds(lambda m: {"frequency": "hourly", "time": f"00:{m:02d}"}, st.integers(0, 59)),
    st.builds(lambda h, m: {"frequency": "daily", "time": f"{h:02d}:{m:02d}"}, st.integers(0, 23), st.integers(0, 59)),
    st.builds(
        lambda d, h: {"frequency": "weekly", "weekday": d, "time": f"{h:02d}:30"},
        st.sampled_from(["monday", "sunday"]),
        st.integers(0, 3),
    ),
    st.builds(
        lambda d, h: {"frequency": "monthly", "day": d, "time": f"{h:02d}:15"},
        st.sampled_from([1, 29, 30, 31]),
        st.integers(0, 3),
    ),
    st.sampled_from(
        [
            {"frequency": "cron", "time": ..., "cron": c}
            for c in ("*/20 * * * *", "30 1,2 * * *", "0 2 * * 0", "0 0 29 2 *")
        ]
    ),
)
ZONES = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"])
# Around the 2026 transitions of both hemispheres, so the DST rules are exercised.
INSTANTS = st.one_of(
    st.datetimes(min_value=datetime(2026, 3, 7), max_value=datetime(2026, 4, 6), timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(2026, 10, 3), max_value=datetime(2026, 11, 2), timezones=st.just(UTC)),
)


@settings(max_examples=300, deadline=None)
@given(SCHEDULES, ZONES, INSTANTS)
def test_next_and_latest_fire_times_agree(timing: dict[str, Any], zone: str, after: datetime) -> None:
    schedule = parsed(**timing, timezone=zone)
    fire = next_fire_time(schedule, after)
    assert fire > after
    assert fire.tzinfo is UTC
    # The next fire time is one: the latest at or before it is itself...
    assert latest_fire_time_at_or_before(schedule, fire, after) == fire
    # ...and nothing fires in between.
    assert (
        latest_fire_time_at_or_before(schedule, fire - timedelta(microseconds=1), after + timedelta(microseconds=1))
        is None
    )
    # Fire times never repeat and only go forward.
    assert next_fire_time(schedule, fire) > fire


# --- object keys ------------------------------------------------------------------------------------


RUN_ID = "5f0c7a52-8a51-4f55-9d43-5c0f6c1e2a11"
REPORT_ID = "0b8e2a11-2c2f-4d1d-9a36-7c0d3c1f9e01"


def test_render_object_key_with_the_default_template() -> None:
    schedule = parsed(compression="gzip")
    key = render_object_key(
        schedule.delivery,
        report_name="Critical & high findings",
        report_id=REPORT_ID,
        run_id=RUN_ID,
        at=utc(2026, 3, 2, 6, 30),
        extension=schedule.extension,
    )
    assert key == f"uvm/reports/Critical-high-findings-2026-03-02-{RUN_ID}.csv.gz"


def test_render_object_key_fills_every_placeholder_in_utc() -> None:
    target = S3Delivery(
        bucket="b-1",
        region="eu-west-1",
        role_arn=ROLE,
        path="a/b",
        file_name="{report_id}_{date}T{time}_{run_id}_{report_name}.{ext}",
    )
    at = datetime(2026, 3, 29, 3, 5, 9, tzinfo=BERLIN)  # 01:05:09 UTC
    key = render_object_key(target, report_name="x", report_id=REPORT_ID, run_id=RUN_ID, at=at, extension="parquet")
    assert key == f"a/b/{REPORT_ID}_2026-03-29T010509_{RUN_ID}_x.parquet"


def test_render_object_key_without_path() -> None:
    target = parsed(delivery=delivery(path="")).delivery
    key = render_object_key(
        target, report_name="R", report_id=REPORT_ID, run_id=RUN_ID, at=utc(2026, 1, 2), extension="csv"
    )
    assert key == f"R-2026-01-02-{RUN_ID}.csv"


def test_render_object_key_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_object_key(
            parsed().delivery,
            report_name="R",
            report_id=REPORT_ID,
            run_id=RUN_ID,
            at=datetime(2026, 1, 2),
            extension="csv",
        )


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Weekly critical findings", "Weekly-critical-findings"),
        ("Q1 / Ops: Ünïcode & more", "Q1-Ops-n-code-more"),
        ("already_fine-1.2", "already_fine-1.2"),
        ("  ..hidden.. ", "hidden"),
        ("!!!", "report"),
        ("x" * 200, "x" * 64),
        ("a" * 63 + " b", "a" * 63),
    ],
)
def test_report_name_slug(name: str, slug: str) -> None:
    assert report_name_slug(name) == slug


@given(st.text(max_size=300))
def test_slugs_are_safe_file_name_parts(name: str) -> None:
    slug = report_name_slug(name)
    assert 1 <= len(slug) <= 64
    assert set(slug) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
    assert not slug.startswith(("-", "."))


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Critical Findings (EU)", "critical-findings-eu"),
        ("weekly.report_v2", "weekly-report-v2"),
        ("été", "t"),
        ("///", "report"),
        ("A" * 100, "a" * 80),
    ],
)
def test_download_slug_keeps_lower_case_letters_and_digits(name: str, slug: str) -> None:
    assert report_name_slug(name, download=True) == slug


# --- S3 names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["acme-exports", "abc", "a" * 63, "my.bucket.2026", "1-2-3", "xn-a", "s3alias"])
def test_valid_bucket_names(name: str) -> None:
    assert bucket_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("ab", "must be 3 to 63 characters long, not 2"),
        ("a" * 64, "must be 3 to 63 characters long, not 64"),
        ("Acme", 'not "A" (bucket names are lower case)'),
        ("acme_exports", 'may contain only lower-case letters, digits, dots and hyphens, not "_"'),
        ("acme exports", 'not " "'),
        ("-acme", "must begin and end with a letter or a digit"),
        ("acme.", "must begin and end with a letter or a digit"),
        ("acme..exports", "must not contain two adjacent dots"),
        ("192.168.5.4", "must not be formatted like an IP address"),
        ("xn--acme", 'must not begin with "xn--", which AWS reserves'),
        ("sthree-acme", 'must not begin with "sthree-"'),
        ("amzn-s3-demo-bucket", 'must not begin with "amzn-s3-demo-"'),
        ("acme-s3alias", 'must not end with "-s3alias", which AWS reserves'),
        ("acme--ol-s3", 'must not end with "--ol-s3"'),
        ("acme.mrap", 'must not end with ".mrap"'),
        ("acme--usw2-az1--x-s3", 'must not end with "--x-s3"'),
        ("acme--table-s3", 'must not end with "--table-s3"'),
    ],
)
def test_invalid_bucket_names(name: str, problem: str) -> None:
    found = bucket_name_problem(name)
    assert found is not None
    assert found.startswith(problem) or problem in found


@pytest.mark.parametrize(
    "region",
    [
        "us-east-1",
        "eu-west-2",
        "ap-southeast-1",
        "us-gov-west-1",
        "cn-northwest-1",
        "eu-central-2",
        "me-central-1",
        "ca-west-1",
        "ap-northeast-3",
        "il-central-1",
    ],
)
def test_valid_regions(region: str) -> None:
    assert region_problem(region) is None


@pytest.mark.parametrize(
    "region",
    [
        "",
        "us-east",
        "US-EAST-1",
        "useast1",
        "us-east-01",
        "eu-west-1a",
        "europe-west-1",
        "us-east-1 ",
        "us-middle-1",
        "us-east-0",
    ],
)
def test_invalid_regions(region: str) -> None:
    assert region_problem(region) == 'must be an AWS region name such as "us-east-1", "eu-west-2" or "ap-southeast-1"'


@pytest.mark.parametrize(
    "arn",
    [
        ROLE,
        "arn:aws:iam::123456789012:role/service-role/uvm-export",
        "arn:aws:iam::123456789012:role/a/b/c/name+=,.@_-",
        "arn:aws-cn:iam::123456789012:role/x",
        "arn:aws-us-gov:iam::123456789012:role/" + "n" * 64,
    ],
)
def test_valid_role_arns(arn: str) -> None:
    assert role_arn_problem(arn) is None


@pytest.mark.parametrize(
    ("arn", "problem"),
    [
        ("uvm-export", "must be an IAM role ARN such as"),
        ("arn:aws:iam::123456789012", "must be an IAM role ARN such as"),
        ("arn:azure:iam::123456789012:role/x", 'has partition "azure"; use one of aws, aws-cn, aws-us-gov'),
        ("arn:aws:s3:::acme-exports", 'names service "s3"; a role ARN names iam'),
        ("arn:aws:iam:eu-west-1:123456789012:role/x", "must have an empty region field"),
        ("arn:aws:iam::12345678901:role/x", "must name the 12-digit AWS account id"),
        ("arn:aws:iam::abcdefghijkl:role/x", "must name the 12-digit AWS account id"),
        ("arn:aws:iam::123456789012:user/x", 'must name a role (role/<name>), not "user"'),
        ("arn:aws:iam::123456789012:role/", "must end with the role's name"),
        ("arn:aws:iam::123456789012:role/a/", "must end with the role's name"),
        ("arn:aws:iam::123456789012:role/" + "n" * 65, "has role name"),
        ("arn:aws:iam::123456789012:role/bad name", 'has role name "bad name"'),
        ("arn:aws:iam::123456789012:role//x", 'has an invalid role path "//"'),
        ("arn:aws:iam::123456789012:role/p ath/x", "has an invalid role path"),
    ],
)
def test_invalid_role_arns(arn: str, problem: str) -> None:
    found = role_arn_problem(arn)
    assert found is not None
    assert found.startswith(problem)


@pytest.mark.parametrize("prefix", ["", "uvm", "uvm/reports", "uvm/reports/", "dt=2026/é", "a" * 900, "a.b/..c"])
def test_valid_key_prefixes(prefix: str) -> None:
    assert key_prefix_problem(prefix) is None


@pytest.mark.parametrize(
    ("prefix", "problem"),
    [
        ("/uvm", 'must not begin with "/"'),
        ("/", 'must not begin with "/"'),
        ("uvm/../x", 'must not contain "." or ".." as a folder name'),
        ("..", 'must not contain "." or ".."'),
        ("./uvm", 'must not contain "." or ".."'),
        ("uvm//x", 'must not contain "//"'),
        ("uvm/\nx", "must not contain control characters"),
        ("uvm\x7f", "must not contain control characters"),
        ("a" * 901, "must be at most 900 bytes (UTF-8), not 901"),
        ("é" * 451, "must be at most 900 bytes (UTF-8), not 902"),
        ("uvm\ud800", "must be valid Unicode text"),
    ],
)
def test_invalid_key_prefixes(prefix: str, problem: str) -> None:
    found = key_prefix_problem(prefix)
    assert found is not None
    assert found.startswith(problem)


VALIDATORS = [bucket_name_problem, region_problem, role_arn_problem, key_prefix_problem]


@pytest.mark.parametrize("validator", VALIDATORS, ids=lambda v: v.__name__)
@given(
    text=st.one_of(
        st.text(),
        st.text(alphabet="abc-.:/0123456789arnwsiamrole", max_size=80),
        st.from_regex(r"arn:aws:iam::[0-9]{12}:role/.{0,70}", fullmatch=True),
    )
)
def test_validators_never_raise_and_return_a_reason_or_none(validator: Any, text: str) -> None:
    result = validator(text)
    assert result is None or (isinstance(result, str) and result)


@given(st.from_regex(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", fullmatch=True))
def test_plain_lower_case_bucket_names_are_valid_unless_reserved(name: str) -> None:
    reserved = name.startswith(("xn--", "sthree-", "amzn-s3-demo-")) or name.endswith(
        ("-s3alias", "--ol-s3", "--x-s3", "--table-s3")
    )
    assert (bucket_name_problem(name) is None) is not reserved
