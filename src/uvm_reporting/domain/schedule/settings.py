"""A schedule's settings as parsed, and the constants its rules are made of."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal

from uvm_reporting.domain.formats import Compression, ExportFormat, file_extension
from uvm_reporting.domain.names import REPORT_NAME_SLUG_LENGTH

Frequency = Literal["hourly", "daily", "weekly", "monthly", "cron"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
DeliveryMethod = Literal["s3"]

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
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
MAX_FILE_NAME_LENGTH = 255
MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
# The longest each placeholder renders to; checked against MAX_KEY_BYTES when saving.
PLACEHOLDER_MAX_LENGTH = {
    "report_name": REPORT_NAME_SLUG_LENGTH,
    "report_id": 36,
    "run_id": 36,
    "date": 10,
    "time": 6,
    "ext": 16,
}
MAX_CRON_LENGTH = 200


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
    """A validated ``schedule`` object. Build it with :func:`~.validation.parse_schedule`.

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
        return file_extension(self.format, self.compression)

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form: parsing it again gives equal settings."""
        data: dict[str, Any] = {
            "format": str(self.format),
            "compression": None if self.compression is None else str(self.compression),
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
