"""docs/report-definition.md stays true to the code: catalog, operators, keys and examples."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from uvm_reporting.domain.catalog import ENTITIES, field_paths, resolve_field
from uvm_reporting.domain.formats import ExportFormat
from uvm_reporting.domain.report_definition.model import OP_FIELD_TYPES, FilterOp
from uvm_reporting.domain.report_definition.parsing import parse_report_definition
from uvm_reporting.domain.schedule.settings import (
    DELIVERY_KEYS,
    FILE_NAME_PLACEHOLDERS,
    FREQUENCIES,
    FREQUENCY_KEYS,
    SCHEDULE_KEYS,
)
from uvm_reporting.domain.schedule.validation import parse_schedule
from uvm_reporting.settings import Settings

DOC = Path(__file__).parents[2] / "docs" / "report-definition.md"
ROLE = "arn:aws:iam::123456789012:role/uvm-export"


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def section(doc: str, heading: str) -> str:
    start = doc.index(heading)
    following = re.search(r"^#{1,3} ", doc[start + len(heading) :], flags=re.MULTILINE)
    return doc[start : start + len(heading) + following.start()] if following else doc[start:]


def catalog_row(entity: str, path: str) -> str:
    resolved = resolve_field(ENTITIES[entity], path)
    assert resolved is not None
    spec = resolved.spec
    # Through a relation the target may be missing, so its fields can be empty after all.
    never_empty = "" if spec.nullable or resolved.relation else " Never empty."
    return f"| `{path}` | {spec.type.value} | {spec.description}{never_empty} | {', '.join(spec.allowed_values)} |"


@pytest.mark.parametrize("entity", sorted(ENTITIES))
def test_catalog_table_lists_every_field_exactly(doc: str, entity: str) -> None:
    table = section(doc, f"### `{entity}`")
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert rows == [catalog_row(entity, path) for path in field_paths(ENTITIES[entity])]


def test_every_operator_is_documented_with_its_field_types(doc: str) -> None:
    table = section(doc, "## Operators")
    for op, types in OP_FIELD_TYPES.items():
        row = next((line for line in table.splitlines() if line.startswith(f"| `{op.value}` |")), None)
        assert row is not None, f"operator {op.value} is not documented"
        documented = {t.strip() for t in row.split("|")[2].split(",")}
        assert documented == {t.value for t in types}, op.value
    assert len(OP_FIELD_TYPES) == len(FilterOp)


def test_every_top_level_key_is_documented(doc: str) -> None:
    table = section(doc, "## Keys")
    keys = {"name", "description", "entity", "columns", "filters", "sort", "limit", "viewers", "editors", "schedule"}
    for key in keys:
        assert f"| `{key}` |" in table, key
    # A key the parser accepts but the doc misses (or the reverse) shows up as an unknown key.
    documented = set(re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE))
    assert documented == keys
    accepted = parse_report_definition({"name": "x", "entity": "assets", "columns": ["id"]}).to_json()
    assert set(accepted) <= keys


def test_json_examples_in_the_doc_are_valid(doc: str) -> None:
    blocks = re.findall(r"```json\n(.*?)```", doc, flags=re.DOTALL)
    definitions = [json.loads(block) for block in blocks if '"entity"' in block]
    assert {d["entity"] for d in definitions} == {"findings", "assets"}
    for data in definitions:
        parse_report_definition(data)
    assert any("asset.hostname" in d["columns"] for d in definitions)


def documented_keys(table: str) -> list[str]:
    return re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE)


def test_every_schedule_key_is_documented(doc: str) -> None:
    assert documented_keys(section(doc, "### Schedule keys")) == list(SCHEDULE_KEYS)
    assert documented_keys(section(doc, "### Delivery keys")) == list(DELIVERY_KEYS)


def test_every_frequency_format_and_placeholder_is_documented(doc: str) -> None:
    frequencies = section(doc, "### Frequencies")
    assert documented_keys(frequencies) == list(FREQUENCIES)
    for frequency, keys in FREQUENCY_KEYS.items():
        row = next(line for line in frequencies.splitlines() if line.startswith(f"| `{frequency}` |"))
        assert row.split("|")[3].strip() == ", ".join(f"`{key}`" for key in keys), frequency
    format_row = next(line for line in section(doc, "### Schedule keys").splitlines() if line.startswith("| `format`"))
    assert re.findall(r'`"(\w+)"`', format_row) == list(ExportFormat)
    placeholders = re.findall(r"^\| `\{(\w+)\}` \|", section(doc, "### File names"), flags=re.MULTILINE)
    assert placeholders == list(FILE_NAME_PLACEHOLDERS)


def test_the_minimum_schedule_interval_and_its_message_are_documented(doc: str) -> None:
    minimum = Settings().min_schedule_interval
    frequencies = " ".join(section(doc, "### Frequencies").split())
    assert f"Fire times must be at least {minimum // timedelta(minutes=1)} minutes apart" in frequencies
    schedule = {
        "format": "csv",
        "delivery": {"method": "s3", "bucket": "b-1", "region": "eu-west-1", "role_arn": ROLE},
        "frequency": "cron",
        "cron": "* * * * *",
    }
    _, problems = parse_schedule(schedule, min_interval=minimum)
    [(path, message)] = problems
    assert f"`{path}: {message}`" in frequencies


def test_the_schedule_examples_are_valid(doc: str) -> None:
    scheduled = doc[doc.index("## Scheduled export") : doc.index("## Field catalog")]
    blocks = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", scheduled, flags=re.DOTALL)]
    schedules = [block.get("schedule", block) for block in blocks]
    assert len(schedules) == 2
    for schedule in schedules:
        parsed, problems = parse_schedule(schedule)
        assert problems == []
        assert parsed is not None
    assert {s["frequency"] for s in schedules} == {"weekly", "cron"}
