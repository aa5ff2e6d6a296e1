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
