"""Report definitions the tests share."""

from __future__ import annotations

from typing import Any

from uvm_reporting.domain.catalog import FINDINGS

ALL_FINDINGS_REPORT: dict[str, Any] = {
    "name": "All findings",
    "entity": "findings",
    "columns": [field.name for field in FINDINGS.fields] + ["asset.hostname"],
    "sort": [{"field": "id", "direction": "asc"}],
    "viewers": "public",
    "editors": "public",
}

# A daily scheduled export to a customer's bucket, as a report definition's schedule.
DAILY_S3_SCHEDULE: dict[str, Any] = {
    "format": "csv",
    "delivery": {
        "method": "s3",
        "bucket": "acme-exports",
        "path": "uvm",
        "region": "eu-west-1",
        "role_arn": "arn:aws:iam::123456789012:role/uvm-export",
    },
    "frequency": "daily",
    "time": "06:30",
}
