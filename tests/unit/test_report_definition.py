"""Parsing report definitions: typed values, precise error messages, a stable canonical form."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uvm_reporting.domain.catalog import ENTITIES, FieldType, field_paths
from uvm_reporting.domain.report_definition.model import OP_FIELD_TYPES, FilterOp, ReportDefinition
from uvm_reporting.domain.report_definition.parsing import parse_report_definition
from uvm_reporting.errors import BadUserInput

EXAMPLES = Path(__file__).parents[2] / "examples" / "reports"


def definition(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "Report", "entity": "findings", "columns": ["id", "title"]}
    data.update(overrides)
    return data


def with_filter(field: str, op: str, value: Any = None, *, omit_value: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {"field": field, "op": op}
    if not omit_value:
        item["value"] = value
    return definition(filters=[item])


def parse_error(data: Any) -> BadUserInput:
    with pytest.raises(BadUserInput) as caught:
        parse_report_definition(data)
    return caught.value


# --- valid definitions ---------------------------------------------------------------------


def test_minimal_definition_gets_defaults() -> None:
    parsed = parse_report_definition(definition())
    assert parsed == ReportDefinition(name="Report", entity="findings", columns=("id", "title"))
    assert parsed.filters == ()
    assert parsed.sort == ()
    assert parsed.limit is None
    assert (parsed.viewers, parsed.editors) == ("private", "private")
    assert not parsed.is_public


def test_full_definition_is_typed() -> None:
    parsed = parse_report_definition(
        definition(
            description="Worst first",
            columns=["id", "asset.hostname", "cvss_score", "first_seen", "due_date"],
            filters=[
                {"field": "severity", "op": "in", "value": ["Critical", "High"]},
                {"field": "cvss_score", "op": "gte", "value": 7},
                {"field": "first_seen", "op": "gt", "value": "2026-03-01T11:30:00+01:00"},
                {"field": "last_seen", "op": "lte", "value": "2026-03-02T00:00:00Z"},
                {"field": "due_date", "op": "between", "value": ["2026-01-01", "2026-12-31"]},
                {"field": "cve", "op": "is_null"},
                {"field": "asset.hostname", "op": "starts_with", "value": "web-"},
            ],
            sort=[{"field": "cvss_score", "direction": "desc"}, {"field": "asset.hostname"}],
            limit=100,
            viewers="Public",
            editors="PUBLIC",
        )
    )
    values = [f.value for f in parsed.filters]
    assert values == [
        ("Critical", "High"),
        7.0,
        datetime(2026, 3, 1, 10, 30, tzinfo=UTC),
        datetime(2026, 3, 2, tzinfo=UTC),
        (date(2026, 1, 1), date(2026, 12, 31)),
        None,
        "web-",
    ]
    assert isinstance(values[1], float)
    assert all(v.tzinfo is UTC for v in values[2:4] if isinstance(v, datetime))
    assert [f.op for f in parsed.filters][:3] == [FilterOp.IN, FilterOp.GTE, FilterOp.GT]
    assert [(s.field, s.direction) for s in parsed.sort] == [("cvss_score", "desc"), ("asset.hostname", "asc")]
    assert parsed.limit == 100
    assert parsed.description == "Worst first"
    assert parsed.is_public


def test_name_is_stripped() -> None:
    assert parse_report_definition(definition(name="  Weekly  ")).name == "Weekly"


def test_public_needs_both_viewers_and_editors() -> None:
    assert not parse_report_definition(definition(viewers="public")).is_public
    assert not parse_report_definition(definition(editors="public")).is_public


def test_is_null_accepts_explicit_null_value() -> None:
    parsed = parse_report_definition(with_filter("cve", "is_not_null", None))
    assert parsed.filters[0].op is FilterOp.IS_NOT_NULL
    assert parsed.filters[0].value is None


def test_contains_on_enum_field_accepts_any_text() -> None:
    parsed = parse_report_definition(with_filter("severity", "contains", "rit"))
    assert parsed.filters[0].value == "rit"


def test_timestamp_fractions_and_lower_case_zone() -> None:
    parsed = parse_report_definition(with_filter("first_seen", "eq", "2026-03-01t10:00:00.250z"))
    assert parsed.filters[0].value == datetime(2026, 3, 1, 10, 0, 0, 250000, tzinfo=UTC)


def test_resolved_columns_carry_catalog_types() -> None:
    parsed = parse_report_definition(definition(columns=["cvss_score", "asset.hostname", "due_date", "title"]))
    columns = parsed.resolved_columns
    assert [(c.path, c.type) for c in columns] == [
        ("cvss_score", FieldType.NUMBER),
        ("asset.hostname", FieldType.STRING),
        ("due_date", FieldType.DATE),
        ("title", FieldType.TEXT),
    ]
    assert columns[1].relation is not None
    assert columns[1].relation.name == "asset"
    assert columns[0].relation is None


@pytest.mark.parametrize("entity", sorted(ENTITIES))
def test_every_catalog_path_is_a_valid_column(entity: str) -> None:
    paths = field_paths(ENTITIES[entity])
    parsed = parse_report_definition({"name": "All", "entity": entity, "columns": paths})
    assert parsed.columns == tuple(paths)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_examples_parse_and_are_public(path: Path) -> None:
    parsed = parse_report_definition(json.loads(path.read_text(encoding="utf-8")))
    assert parsed.is_public
    assert parsed.entity == "findings"
    assert set(field_paths(ENTITIES["findings"])[: len(ENTITIES["findings"].fields)]) <= set(parsed.columns)
    assert "asset.hostname" in parsed.columns


def test_example_files_exist() -> None:
    names = {p.name for p in EXAMPLES.glob("*.json")}
    assert {"critical-open-findings.json", "all-findings.json"} <= names


# --- round trip ----------------------------------------------------------------------------


def test_to_json_round_trips() -> None:
    original = parse_report_definition(
        definition(
            description="d",
            filters=[
                {
                    "field": "first_seen",
                    "op": "between",
                    "value": ["2026-01-01T01:00:00+01:00", "2026-02-01T00:00:00.5Z"],
                },
                {"field": "cvss_score", "op": "lt", "value": 9},
                {"field": "due_date", "op": "eq", "value": "2026-05-01"},
                {"field": "status", "op": "not_in", "value": ["Resolved"]},
                {"field": "resolved_at", "op": "is_null"},
            ],
            sort=[{"field": "id"}],
            limit=10,
            viewers="Public",
        )
    )
    stored = json.loads(json.dumps(original.to_json()))
    assert parse_report_definition(stored) == original
    assert stored["filters"][0]["value"] == ["2026-01-01T00:00:00Z", "2026-02-01T00:00:00.500000Z"]
    assert stored["filters"][1]["value"] == 9.0
    assert stored["filters"][2]["value"] == "2026-05-01"
    assert "value" not in stored["filters"][4]
    assert stored["sort"] == [{"field": "id", "direction": "asc"}]
    assert stored["viewers"] == "public"
    assert stored["editors"] == "private"
    # Canonical: a second trip changes nothing.
    assert parse_report_definition(stored).to_json() == stored


def test_to_json_omits_absent_optionals() -> None:
    stored = parse_report_definition(definition()).to_json()
    assert "limit" not in stored
    assert "description" not in stored
    assert stored == {
        "name": "Report",
        "entity": "findings",
        "columns": ["id", "title"],
        "filters": [],
        "sort": [],
        "viewers": "private",
        "editors": "private",
    }


# --- errors name the field and the reason --------------------------------------------------


def test_unknown_column_suggests_the_close_path() -> None:
    error = parse_error(definition(columns=["id", "title", "asset.hostnme"]))
    assert error.message == (
        'columns[2]: unknown field "asset.hostnme" for entity findings (did you mean "asset.hostname"?)'
    )
    assert error.details["path"] == "columns[2]"
    assert error.code == "BAD_USER_INPUT"


def test_nul_characters_are_refused_wherever_they_are() -> None:
    """PostgreSQL stores no text holding NUL (U+0000); a schedule nested deep is walked too."""
    deep: Any = "\x00"
    for _ in range(5000):
        deep = [deep]
    error = parse_error(
        definition(name="a\x00b", filters=[{"field": "title", "op": "eq", "value": "\x00"}], schedule=deep)
    )
    assert error.message.startswith("The report definition has 3 problems: filters[0].value: must not contain the NUL")
    assert "name: must not contain the NUL character (U+0000)" in error.message
    assert error.details["path"] == "filters[0].value"


def test_relation_path_is_unknown_on_assets() -> None:
    error = parse_error({"name": "A", "entity": "assets", "columns": ["asset.hostname"]})
    assert error.message.startswith('columns[0]: unknown field "asset.hostname" for entity assets')


def test_unknown_operator_lists_the_operators() -> None:
    error = parse_error(with_filter("title", "like", "x"))
    assert error.message == (
        'filters[0].op: "like" is not an operator; use one of eq, ne, in, not_in, lt, lte, gt, gte, '
        "between, contains, starts_with, is_null, is_not_null"
    )
    assert error.details["path"] == "filters[0].op"


def test_every_problem_is_listed_with_its_location() -> None:
    error = parse_error(
        definition(
            columns=["id", "nope", "id"],
            filters=[{"field": "severity", "op": "eq", "value": "critical"}],
            sort=[{"field": "title", "direction": "up"}],
        )
    )
    assert error.message.startswith("The report definition has 4 problems: ")
    assert [p["path"] for p in error.details["problems"]] == [
        "columns[1]",
        "columns[2]",
        "filters[0].value",
        "sort[0].direction",
    ]
    assert '"id" is listed twice (first at columns[0])' in error.message
    assert '"critical" is not a value of "severity"' in error.message
    assert '"up" is not a direction' in error.message
    assert error.details["path"] == "columns[1]"


@pytest.mark.parametrize(
    ("data", "path", "reason"),
    [
        (definition(name=""), "name", "at least 1 character"),
        (definition(name="x" * 201), "name", "at most 200 characters"),
        (definition(name="   "), "name", "must not be blank"),
        (definition(name=5), "name", "must be a string"),
        ({"entity": "findings", "columns": ["id"]}, "name", "is required"),
        (definition(entity="finding"), "entity", '"finding" is not an entity; use one of findings, assets'),
        (definition(columns=[]), "columns", "at least 1 item"),
        (definition(columns="id"), "columns", "must be a list"),
        (definition(columns=["id", 3]), "columns[1]", "must be a string"),
        (definition(limit=0), "limit", "greater than or equal to 1"),
        (definition(limit=10_000_001), "limit", "less than or equal to 10000000"),
        (definition(limit="10"), "limit", "must be an integer"),
        (definition(limit=True), "limit", "must be an integer"),
        (definition(viewers="everyone"), "viewers", 'must be "public" or "private"'),
        (definition(editors=1), "editors", 'must be "public" or "private"'),
        (definition(colums=["id"]), "colums", "unknown key; allowed keys are name, description, entity"),
        (definition(filters=[{"field": "id", "op": "eq", "value": "a", "x": 1}]), "filters[0].x", "unknown key"),
        (definition(filters=[{"op": "eq", "value": "a"}]), "filters[0].field", "is required"),
        (definition(filters=["id = 1"]), "filters[0]", "must be a JSON object"),
        (definition(sort=[{"field": "id", "order": "asc"}]), "sort[0].order", "allowed keys are field, direction"),
        (definition(sort=[{"field": "titel"}]), "sort[0].field", 'unknown field "titel" for entity findings'),
        (definition(sort=[{"field": "id"}, {"field": "id"}]), "sort[1].field", "already sorted on at sort[0]"),
        (definition(description=["x"]), "description", "must be a string"),
    ],
)
def test_shape_and_key_errors(data: dict[str, Any], path: str, reason: str) -> None:
    error = parse_error(data)
    assert error.details["path"] == path
    assert error.message.startswith(f"{path}: ") or f"; {path}: " in error.message
    assert reason in error.message


@pytest.mark.parametrize(
    ("field", "op", "value", "path", "reason"),
    [
        # Operator does not fit the field type.
        ("cvss_score", "contains", "1", "filters[0].op", '"contains" does not apply to number field "cvss_score"'),
        ("first_seen", "starts_with", "2026", "filters[0].op", "it accepts string and text fields"),
        ("title", "lt", "b", "filters[0].op", "it accepts date and number and timestamp fields"),
        ("severity", "between", ["High", "Low"], "filters[0].op", '"between" does not apply to string field'),
        # Unknown field.
        ("asset.hostnme", "eq", "a", "filters[0].field", 'did you mean "asset.hostname"?'),
        # Value shape per op.
        ("status", "eq", None, "filters[0].value", "is required for eq; to match empty values use is_null"),
        ("status", "in", "Open", "filters[0].value", "must be a list for in"),
        ("status", "not_in", [], "filters[0].value", "must be a non-empty list for not_in"),
        ("cve", "in", ["x"] * 1001, "filters[0].value", "at most 1000 values"),
        ("cvss_score", "between", [1], "filters[0].value", "exactly 2 values [low, high] for between, not 1"),
        ("cvss_score", "between", [1, 2, 3], "filters[0].value", "exactly 2 values"),
        ("cvss_score", "between", 5, "filters[0].value", "must be a list for between"),
        ("cvss_score", "between", [9, 1], "filters[0].value", "low 9.0 is greater than high 1.0"),
        ("due_date", "between", ["2026-02-01", "2026-01-01"], "filters[0].value", 'low "2026-02-01" is greater'),
        ("cve", "is_null", "x", "filters[0].value", "must be omitted (or null) for is_null"),
        ("cve", "eq", ["a"], "filters[0].value", "must be a single value for eq, not a list"),
        # Value type per field type.
        ("cve", "eq", 5, "filters[0].value", 'expected a string for string field "cve", got a number'),
        ("title", "contains", True, "filters[0].value", "got a boolean"),
        ("cve", "eq", "x" * 1001, "filters[0].value", "longer than 1000 characters"),
        ("cvss_score", "gt", "7", "filters[0].value", "expected a number, got a string"),
        ("cvss_score", "gt", True, "filters[0].value", "expected a number, got a boolean"),
        ("cvss_score", "gt", 10**400, "filters[0].value", "too large a number"),
        ("cvss_score", "gt", float("nan"), "filters[0].value", "must be a finite number"),
        ("cvss_score", "gt", float("inf"), "filters[0].value", "must be a finite number"),
        ("first_seen", "gt", "2026-03-01T10:00:00", "filters[0].value", "has no time zone"),
        ("first_seen", "gt", "2026-03-01", "filters[0].value", "has no time zone"),
        ("first_seen", "gt", "yesterday", "filters[0].value", "is not an ISO-8601 timestamp with a time zone"),
        ("first_seen", "gt", 1700000000, "filters[0].value", "got a number"),
        ("first_seen", "gt", "2026-02-30T10:00:00Z", "filters[0].value", "is not a valid timestamp"),
        ("first_seen", "gt", "0001-01-01T00:00:00+01:00", "filters[0].value", "is not a valid timestamp"),
        ("due_date", "lt", "2026-02-30", "filters[0].value", '"2026-02-30" is not a valid date'),
        ("due_date", "lt", "2026-03-01T00:00:00Z", "filters[0].value", "expected a date as YYYY-MM-DD"),
        ("due_date", "lt", "20260301", "filters[0].value", "expected a date as YYYY-MM-DD"),
        ("due_date", "lt", 20260301, "filters[0].value", "got a number"),
        # Enum fields take their listed values only.
        (
            "severity",
            "eq",
            "critical",
            "filters[0].value",
            '"critical" is not a value of "severity"; use one of "Critical"',
        ),
        ("status", "in", ["Open", "Closed"], "filters[0].value[1]", '"Closed" is not a value of "status"'),
        ("asset.criticality", "ne", "Urgent", "filters[0].value", 'is not a value of "criticality"'),
        ("cvss_score", "between", [1, "x"], "filters[0].value[1]", "expected a number"),
    ],
)
def test_filter_errors(field: str, op: str, value: Any, path: str, reason: str) -> None:
    error = parse_error(with_filter(field, op, value))
    assert error.details["path"] == path
    assert error.message.startswith(f"{path}: ")
    assert reason in error.message


def test_missing_value_is_an_error_for_value_ops() -> None:
    error = parse_error(with_filter("cvss_score", "gt", omit_value=True))
    assert error.message == "filters[0].value: is required for gt"


def test_not_an_object() -> None:
    error = parse_error(["name"])
    assert error.message == "a report definition must be a JSON object, not a list"


def test_long_user_text_is_cut_in_messages() -> None:
    error = parse_error(definition(columns=["z" * 5000]))
    assert len(error.message) < 200
    error = parse_error({**definition(), "k" * 5000: 1})
    assert len(error.message) < 250


def test_many_problems_are_capped_in_the_message() -> None:
    error = parse_error(definition(columns=[f"c{i}" for i in range(30)]))
    assert error.message.startswith("The report definition has 30 problems: ")
    assert error.message.endswith("; and 10 more")
    assert len(error.details["problems"]) == 30


def test_every_operator_has_field_types() -> None:
    assert set(OP_FIELD_TYPES) == set(FilterOp)


# --- property-based: any JSON object either parses or raises BadUserInput ------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)

# Near-valid documents reach the deeper checks that fully random objects rarely get past:
# mostly well-shaped, with catalog paths, operators and plausible values, and a little noise.
findings_paths = field_paths(ENTITIES["findings"])
field_names = st.sampled_from([*findings_paths, "nope", "asset.nope"]) | st.text(max_size=12)
ops = st.sampled_from([o.value for o in FilterOp]) | st.text(max_size=8)
plausible = st.sampled_from(
    [
        "Critical",
        "High",
        "Open",
        "Resolved",
        "web-",
        "2026-03-01T10:00:00Z",
        "2026-03-01",
        "2026-03-01T10:00:00",
        7,
        2.5,
    ]
)
typed_values = st.none() | plausible | st.lists(plausible, max_size=3) | json_values | st.floats() | st.integers()
filters = st.fixed_dictionaries({"field": field_names, "op": ops}, optional={"value": typed_values})
sort_keys = st.fixed_dictionaries(
    {"field": field_names}, optional={"direction": st.sampled_from(["asc", "desc", "up"])}
)
near_valid = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["Report", " x "]) | st.text(max_size=20),
        "entity": st.sampled_from(["findings", "findings", "assets", "other"]),
        "columns": st.lists(st.sampled_from(findings_paths), min_size=1, max_size=5) | st.lists(field_names),
    },
    optional={
        "filters": st.lists(filters, max_size=4),
        "sort": st.lists(sort_keys, max_size=3),
        "limit": st.integers(min_value=-5, max_value=20_000_000),
        "viewers": st.sampled_from(["public", "Private", "x"]),
        "editors": st.sampled_from(["PUBLIC", "private"]) | json_scalars,
        "description": st.text(max_size=20) | json_values,
    },
)


def check_parses_or_rejects(data: dict[str, Any]) -> None:
    parsed: ReportDefinition | None = None
    problems: list[dict[str, str]] = []
    try:
        parsed = parse_report_definition(data)
    except BadUserInput as error:
        problems = error.details["problems"]
    if parsed is None:
        assert problems
        assert all(p["message"] for p in problems)
        return
    assert parse_report_definition(parsed.to_json()) == parsed
    json.dumps(parsed.to_json(), allow_nan=False)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=8))
def test_arbitrary_objects_parse_or_raise_bad_user_input(data: dict[str, Any]) -> None:
    check_parses_or_rejects(data)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid)
def test_near_valid_objects_parse_or_raise_bad_user_input(data: dict[str, Any]) -> None:
    check_parses_or_rejects(data)
