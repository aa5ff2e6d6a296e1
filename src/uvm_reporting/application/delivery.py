"""Delivery to a customer's bucket: the file, streamed through the role they let us assume,
then a manifest beside it that says what the file holds."""

from __future__ import annotations

from typing import Any

from uvm_reporting import fault_points
from uvm_reporting.application.ports import CustomerBuckets
from uvm_reporting.domain.report_definition.parsing import parse_report_definition
from uvm_reporting.domain.run_control import RunControl
from uvm_reporting.domain.runs import RunRecord, RunResult
from uvm_reporting.domain.timestamps import format_utc, utc_now
from uvm_reporting.exports.exporter import Exporter
from uvm_reporting.exports.formats import column_manifest
from uvm_reporting.exports.query_compiler import report_column_types
from uvm_reporting.storage.result_storage import WrittenObject


def manifest_key(key: str) -> str:
    """The manifest beside a delivered file: ``<file name without extensions>.manifest.json``."""
    folder, _, name = key.rpartition("/")
    stem = name.split(".", 1)[0] or name
    return f"{folder}/{stem}.manifest.json" if folder else f"{stem}.manifest.json"


def deliver_to_s3(
    run: RunRecord, exporter: Exporter, buckets: CustomerBuckets, external_id: str, control: RunControl | None = None
) -> RunResult:
    """Stream the run's file into the customer's bucket, then its manifest. A cancel (through
    ``control``) aborts the multipart upload: nothing appears in the bucket."""
    destination = run.destination or {}
    bucket, key = destination["bucket"], destination["key"]
    target = buckets.open_bucket(
        bucket=bucket,
        region=destination["region"],
        role_arn=destination["role_arn"],
        external_id=external_id,
        session_name=f"uvm-reporting-run-{run.id[:18]}",
    )
    with target.open_for_write(key, content_type=run.media_type) as (stream, written):
        fault_points.reached("write")
        row_count = exporter.write(run, stream, control)
    target.put_json(manifest_key(key), manifest(run, key, bucket, row_count, written))
    return RunResult(
        row_count=row_count, size_bytes=written.size_bytes, sha256=written.sha256, result_key=f"s3://{bucket}/{key}"
    )


def manifest(run: RunRecord, key: str, bucket: str, row_count: int, written: WrittenObject) -> dict[str, Any]:
    compression = run.export_compression
    definition = parse_report_definition(run.definition)
    return {
        "file": key.rpartition("/")[2],
        "key": key,
        "bucket": bucket,
        "format": run.export_format.value,
        "compression": compression.value if compression else None,
        "rowCount": row_count,
        "sizeBytes": written.size_bytes,
        "sha256": written.sha256,
        "columns": column_manifest(report_column_types(definition)),
        "runId": run.id,
        "reportId": run.report_id,
        "reportName": definition.name,
        "scheduledFor": format_utc(run.scheduled_for) if run.scheduled_for else None,
        "createdAt": format_utc(utc_now()),
    }
