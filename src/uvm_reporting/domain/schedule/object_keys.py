"""Where a run of a schedule delivers its file: the bucket, and the key its template gives."""

from __future__ import annotations

import datetime as dt

from uvm_reporting.domain.names import report_name_slug
from uvm_reporting.domain.schedule.settings import PLACEHOLDER, S3Delivery, ScheduleSettings


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
        name = PLACEHOLDER.sub(lambda match: values[match[1]], delivery.file_name)
    except KeyError as error:  # only for settings built by hand, bypassing parsing
        raise ValueError(f"unknown placeholder {{{error.args[0]}}} in {delivery.file_name!r}") from None
    return f"{delivery.path}/{name}" if delivery.path else name


def delivery_destination(
    schedule: ScheduleSettings, *, report_name: str, report_id: str, run_id: str, at: dt.datetime
) -> dict[str, str]:
    """Where one run delivers: bucket, rendered key, region and role (a run's ``destination``)."""
    delivery = schedule.delivery
    key = render_object_key(
        delivery, report_name=report_name, report_id=report_id, run_id=run_id, at=at, extension=schedule.extension
    )
    return {"bucket": delivery.bucket, "key": key, "region": delivery.region, "role_arn": delivery.role_arn}
