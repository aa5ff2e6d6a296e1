"""Compiled report queries against a real (migrated SQLite) database.

A small hand-made data set for two accounts; every operator is checked by the exact ids it
returns, so a wrong predicate, a missing tenant filter or a duplicating join all show.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, inspect, select

from uvm_reporting.database.accounts import Account
from uvm_reporting.database.tables import assets, findings
from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.report_definition.model import FilterOp, ReportDefinition
from uvm_reporting.domain.report_definition.parsing import parse_report_definition
from uvm_reporting.exports.export_job import LOOKUP_KEY
from uvm_reporting.exports.query_compiler import compile_lookup_query, compile_report_query, report_column_types

EXAMPLES = Path(__file__).parents[2] / "examples" / "reports"
INJECTION = "x'; DROP TABLE findings; --"


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def asset_row(account_id: str, asset_id: str, hostname: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "account_id": account_id,
        "id": asset_id,
        "hostname": hostname,
        "ip": None,
        "os": None,
        "type": None,
        "owner": None,
        "business_unit": None,
        "criticality": None,
        "first_seen": ts("2025-12-01T00:00:00"),
        "last_seen": ts("2026-03-01T00:00:00"),
    }
    row.update(values)
    return row


def finding_row(account_id: str, finding_id: str, title: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "account_id": account_id,
        "id": finding_id,
        "asset_id": None,
        "title": title,
        "description": None,
        "severity": "Low",
        "status": "Open",
        "cvss_score": None,
        "cve": None,
        "cwe": None,
        "source": None,
        "first_seen": ts("2026-01-01T00:00:00"),
        "last_seen": ts("2026-03-01T00:00:00"),
        "due_date": None,
        "resolved_at": None,
    }
    row.update(values)
    return row


@pytest.fixture
def data(engine: Engine, account: Account, other_account: Account) -> None:
    a, b = account.id, other_account.id
    asset_rows = [
        asset_row(a, "a1", "web-01", type="Server", owner="alice@example.com", criticality="High"),
        asset_row(a, "a2", "db_01", type="Database"),
        # Same asset id in the other account: the join must not pick it up for account a.
        asset_row(b, "a1", "other-host", type="Server", owner="alice@example.com"),
    ]
    finding_rows = [
        finding_row(
            a,
            "f1",
            "100% exposed admin panel",
            asset_id="a1",
            severity="Critical",
            cvss_score=9.8,
            cve="CVE-2024-0001",
            description=INJECTION,
            due_date=date(2026, 2, 1),
        ),
        finding_row(
            a,
            "f2",
            "Weak_cipher suite",
            asset_id="a2",
            severity="High",
            status="Resolved",
            cvss_score=7.5,
            first_seen=ts("2026-01-15T12:00:00"),
            due_date=date(2026, 3, 1),
            resolved_at=ts("2026-02-10T00:00:00"),
        ),
        finding_row(
            a,
            "f3",
            "Outdated OpenSSL",
            severity="Medium",
            status="In Progress",
            cvss_score=5.0,
            cve="CVE-2024-0003",
            description="see /etc/ssl",
            first_seen=ts("2026-02-01T00:00:00"),
        ),
        finding_row(
            a,
            "f4",
            "weakXcipher",
            asset_id="a9",
            severity="Low",
            cve="CVE-2024-0004",
            first_seen=ts("2026-02-20T08:30:00"),
        ),
        finding_row(
            a,
            "f5",
            "1000 hosts answer on SSH",
            asset_id="a1",
            severity="Info",
            status="Risk Accepted",
            cvss_score=0.0,
            first_seen=ts("2026-03-01T00:00:00"),
        ),
        # The other account: same ids, matching values; none of it may ever appear for account a.
        finding_row(
            b,
            "f1",
            "100% other account",
            asset_id="a1",
            severity="Critical",
            cvss_score=10.0,
            cve="CVE-2024-0001",
            description=INJECTION,
        ),
        finding_row(b, "g2", "Weak_cipher elsewhere", severity="High", cvss_score=7.5),
    ]
    with engine.begin() as connection:
        connection.execute(insert(assets), asset_rows)
        connection.execute(insert(findings), finding_rows)


def definition(entity: str = "findings", **values: Any) -> ReportDefinition:
    data: dict[str, Any] = {"name": "t", "entity": entity, "columns": ["id"]}
    data.update(values)
    return parse_report_definition(data)


def run(engine: Engine, report: ReportDefinition, account_id: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(compile_report_query(report, account_id))
        return [dict(row._mapping) for row in result]


def ids(engine: Engine, report: ReportDefinition, account_id: str) -> list[str]:
    return [row["id"] for row in run(engine, report, account_id)]


FILTER_CASES: list[tuple[str, str, Any, list[str]]] = [
    ("severity", "eq", "Critical", ["f1"]),
    ("status", "ne", "Open", ["f2", "f3", "f5"]),
    # ne and not_in keep rows where the field is empty.
    ("cve", "ne", "CVE-2024-0001", ["f2", "f3", "f4", "f5"]),
    ("severity", "in", ["High", "Low"], ["f2", "f4"]),
    ("cve", "not_in", ["CVE-2024-0003", "CVE-2024-0004"], ["f1", "f2", "f5"]),
    ("cvss_score", "eq", 7.5, ["f2"]),
    ("cvss_score", "lt", 5, ["f5"]),
    ("cvss_score", "lte", 5, ["f3", "f5"]),
    ("cvss_score", "gt", 7.5, ["f1"]),
    ("cvss_score", "gte", 7.5, ["f1", "f2"]),
    ("cvss_score", "between", [5, 7.5], ["f2", "f3"]),
    ("cvss_score", "in", [0, 9.8], ["f1", "f5"]),
    ("first_seen", "between", ["2026-01-15T12:00:00Z", "2026-02-20T08:30:00Z"], ["f2", "f3", "f4"]),
    ("first_seen", "gt", "2026-02-20T09:30:00+01:00", ["f5"]),
    ("first_seen", "gte", "2026-02-20T09:30:00+01:00", ["f4", "f5"]),
    ("first_seen", "lt", "2026-01-15T12:00:00Z", ["f1"]),
    ("first_seen", "lte", "2026-01-15T12:00:00Z", ["f1", "f2"]),
    ("first_seen", "eq", "2026-02-01T00:00:00Z", ["f3"]),
    ("first_seen", "ne", "2026-02-01T00:00:00Z", ["f1", "f2", "f4", "f5"]),
    ("first_seen", "in", ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"], ["f3", "f5"]),
    ("resolved_at", "eq", "2026-02-10T00:00:00Z", ["f2"]),
    ("due_date", "lt", "2026-03-01", ["f1"]),
    ("due_date", "gte", "2026-03-01", ["f2"]),
    ("due_date", "between", ["2026-02-01", "2026-03-01"], ["f1", "f2"]),
    ("due_date", "eq", "2026-02-01", ["f1"]),
    ("cve", "is_null", None, ["f2", "f5"]),
    ("resolved_at", "is_not_null", None, ["f2"]),
    # LIKE: case-insensitive, and %, _ and the escape character are matched literally.
    ("title", "contains", "100%", ["f1"]),
    ("title", "contains", "Weak_cipher", ["f2"]),
    ("title", "contains", "WEAK", ["f2", "f4"]),
    ("title", "contains", "%", ["f1"]),
    ("title", "contains", "_", ["f2"]),
    ("description", "contains", "/etc", ["f3"]),
    ("description", "contains", "//etc", []),
    ("title", "starts_with", "outdated", ["f3"]),
    ("title", "starts_with", "100%", ["f1"]),
    ("title", "starts_with", "1000", ["f5"]),
    ("title", "starts_with", "Weak_", ["f2"]),
    # Through the asset relation: a finding without a (known) asset has empty asset fields.
    ("asset.hostname", "eq", "web-01", ["f1", "f5"]),
    ("asset.hostname", "is_null", None, ["f3", "f4"]),
    ("asset.hostname", "is_not_null", None, ["f1", "f2", "f5"]),
    ("asset.hostname", "contains", "_", ["f2"]),
    ("asset.type", "in", ["Database"], ["f2"]),
    ("asset.owner", "ne", "alice@example.com", ["f2", "f3", "f4"]),
    ("asset.first_seen", "lt", "2026-01-01T00:00:00Z", ["f1", "f2", "f5"]),
]


@pytest.mark.usefixtures("data")
@pytest.mark.parametrize("case", FILTER_CASES, ids=lambda case: "-".join(map(str, case[:3])))
def test_filter_returns_exactly_the_expected_rows(
    engine: Engine, account: Account, case: tuple[str, str, Any, list[str]]
) -> None:
    field, op, value, expected = case
    item: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        item["value"] = value
    report = definition(filters=[item])
    assert ids(engine, report, account.id) == expected


def test_every_operator_is_covered() -> None:
    assert {op for _, op, _, _ in FILTER_CASES} == {op.value for op in FilterOp}


@pytest.mark.usefixtures("data")
def test_filters_combine_with_and(engine: Engine, account: Account) -> None:
    report = definition(
        filters=[
            {"field": "severity", "op": "in", "value": ["Critical", "High", "Info"]},
            {"field": "asset.hostname", "op": "eq", "value": "web-01"},
        ]
    )
    assert ids(engine, report, account.id) == ["f1", "f5"]


@pytest.mark.usefixtures("data")
def test_other_accounts_rows_never_appear(engine: Engine, account: Account, other_account: Account) -> None:
    everything = definition(columns=["id", "title", "asset.hostname"])
    rows = run(engine, everything, account.id)
    assert [r["id"] for r in rows] == ["f1", "f2", "f3", "f4", "f5"]
    assert "other-host" not in {r["asset.hostname"] for r in rows}
    assert not any(r["title"].endswith("other account") for r in rows)

    theirs = run(engine, everything, other_account.id)
    assert [(r["id"], r["asset.hostname"]) for r in theirs] == [("f1", "other-host"), ("g2", None)]

    matching_both = definition(filters=[{"field": "cvss_score", "op": "gte", "value": 7.5}])
    assert ids(engine, matching_both, account.id) == ["f1", "f2"]
    assert ids(engine, matching_both, other_account.id) == ["f1", "g2"]
    assert ids(engine, everything, "no-such-account") == []


@pytest.mark.usefixtures("data")
def test_assets_report_is_isolated_too(engine: Engine, account: Account, other_account: Account) -> None:
    report = definition("assets", columns=["id", "hostname", "type"], sort=[{"field": "hostname"}])
    assert run(engine, report, account.id) == [
        {"id": "a2", "hostname": "db_01", "type": "Database"},
        {"id": "a1", "hostname": "web-01", "type": "Server"},
    ]
    assert run(engine, report, other_account.id) == [{"id": "a1", "hostname": "other-host", "type": "Server"}]
    owned = definition("assets", filters=[{"field": "owner", "op": "is_not_null"}])
    assert ids(engine, owned, account.id) == ["a1"]


@pytest.mark.usefixtures("data")
def test_columns_are_labelled_with_their_paths_in_order(engine: Engine, account: Account) -> None:
    report = definition(columns=["asset.hostname", "cvss_score", "id", "first_seen", "due_date"])
    rows = run(engine, report, account.id)
    assert list(rows[0]) == ["asset.hostname", "cvss_score", "id", "first_seen", "due_date"]
    assert rows[0] == {
        "asset.hostname": "web-01",
        "cvss_score": 9.8,
        "id": "f1",
        "first_seen": ts("2026-01-01T00:00:00"),
        "due_date": date(2026, 2, 1),
    }
    # One row per finding: the join neither drops findings without an asset nor duplicates any.
    assert [(r["id"], r["asset.hostname"]) for r in rows] == [
        ("f1", "web-01"),
        ("f2", "db_01"),
        ("f3", None),
        ("f4", None),
        ("f5", "web-01"),
    ]


def test_join_only_when_a_relation_field_is_used() -> None:
    plain = definition(columns=["id", "title"], filters=[{"field": "cvss_score", "op": "gt", "value": 1}])
    assert "JOIN" not in str(compile_report_query(plain, "acc"))
    for report in (
        definition(columns=["id", "asset.hostname"]),
        definition(filters=[{"field": "asset.hostname", "op": "is_null"}]),
        definition(sort=[{"field": "asset.hostname"}]),
    ):
        sql = str(compile_report_query(report, "acc"))
        assert sql.count("LEFT OUTER JOIN assets") == 1
        assert "ON asset.account_id = findings.account_id AND asset.id = findings.asset_id" in sql


def run_with_lookups(engine: Engine, report: ReportDefinition, account_id: str) -> list[dict[str, Any]]:
    """The rows as the export process makes them from a lookup query: the main SELECT's rows, each
    with the looked-up fields of its key (none for a key that is NULL or unknown)."""
    split = compile_lookup_query(report, account_id)
    assert split is not None
    with engine.connect() as connection:
        main = [dict(row._mapping) for row in connection.execute(split.main)]
        tables = {
            lookup.key_column: {
                row._mapping[LOOKUP_KEY]: dict(row._mapping) for row in connection.execute(lookup.statement)
            }
            for lookup in split.lookups
        }
    rows = []
    for row in main:
        merged = dict(row)
        for key_column, table in tables.items():
            found = table.get(row[key_column], {})
            merged.update(
                {
                    path: found.get(path)
                    for path in report.columns
                    if path.startswith(key_column.removesuffix(LOOKUP_KEY) + ".")
                }
            )
        rows.append({path: merged[path] for path in report.columns})
    return rows


@pytest.mark.usefixtures("data")
@pytest.mark.parametrize(
    "values",
    [
        {"columns": ["id", "asset.hostname"]},
        {"columns": ["asset.criticality", "title", "asset.first_seen", "asset.hostname", "cvss_score"]},
        {
            "columns": ["id", "asset.owner"],
            "filters": [{"field": "cvss_score", "op": "gte", "value": 5}],
            "sort": [{"field": "cvss_score", "direction": "desc"}],
            "limit": 2,
        },
        {"columns": ["asset.hostname", "asset.type"], "filters": [{"field": "title", "op": "contains", "value": "%"}]},
    ],
)
def test_a_lookup_query_gives_the_joined_rows(
    engine: Engine, account: Account, other_account: Account, values: dict[str, Any]
) -> None:
    report = definition(**values)
    for account_id in (account.id, other_account.id):
        assert run_with_lookups(engine, report, account_id) == run(engine, report, account_id)
    assert run(engine, report, account.id)  # the cases select rows


def test_a_lookup_query_only_for_relations_that_are_only_shown() -> None:
    assert compile_lookup_query(definition(columns=["id", "title"]), "acc") is None
    assert (
        compile_lookup_query(
            definition(columns=["id", "asset.hostname"], filters=[{"field": "asset.type", "op": "is_null"}]), "acc"
        )
        is None
    )
    assert (
        compile_lookup_query(definition(columns=["id", "asset.hostname"], sort=[{"field": "asset.hostname"}]), "acc")
        is None
    )
    split = compile_lookup_query(
        definition(
            columns=["asset.ip", "id", "asset.hostname"], filters=[{"field": "severity", "op": "eq", "value": "High"}]
        ),
        "acc-1",
    )
    assert split is not None
    main = str(split.main)
    assert "JOIN" not in main
    assert list(split.main.selected_columns.keys()) == ["id", "asset#key"]
    assert str(split.main.whereclause).startswith("findings.account_id = :account_id_1 AND ")
    (lookup,) = split.lookups
    assert list(lookup.statement.selected_columns.keys()) == [LOOKUP_KEY, "asset.ip", "asset.hostname"]
    assert str(lookup.statement.whereclause) == "assets.account_id = :account_id_1"
    assert lookup.statement.compile().params["account_id_1"] == "acc-1"


def test_tenant_predicate_comes_first() -> None:
    report = definition(filters=[{"field": "severity", "op": "eq", "value": "High"}])
    statement = compile_report_query(report, "acc-1")
    where = str(statement.whereclause)
    assert where.startswith("findings.account_id = :account_id_1 AND ")
    assert statement.compile().params["account_id_1"] == "acc-1"


@pytest.mark.usefixtures("data")
@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        # Empty values last in both directions.
        ([{"field": "cvss_score", "direction": "desc"}], ["f1", "f2", "f3", "f5", "f4"]),
        ([{"field": "cvss_score", "direction": "asc"}], ["f5", "f3", "f2", "f1", "f4"]),
        # Ties (f1 and f4 are both Open) are broken by id.
        ([{"field": "status"}], ["f3", "f1", "f4", "f2", "f5"]),
        ([{"field": "asset.hostname"}], ["f2", "f1", "f5", "f3", "f4"]),
        (
            [{"field": "asset.hostname", "direction": "desc"}, {"field": "id", "direction": "desc"}],
            ["f5", "f1", "f2", "f4", "f3"],
        ),
        (
            [{"field": "due_date", "direction": "desc"}, {"field": "first_seen", "direction": "desc"}],
            ["f2", "f1", "f5", "f4", "f3"],
        ),
        ([], ["f1", "f2", "f3", "f4", "f5"]),
    ],
)
def test_sort_order_is_total(engine: Engine, account: Account, sort: list[dict[str, str]], expected: list[str]) -> None:
    report = definition(sort=sort)
    assert ids(engine, report, account.id) == expected
    assert ids(engine, report, account.id) == expected  # and the same again


def test_id_tie_breaker_is_added_once() -> None:
    by_id = str(compile_report_query(definition(sort=[{"field": "id", "direction": "desc"}]), "acc"))
    assert by_id.endswith("ORDER BY findings.id DESC NULLS LAST")
    by_score = str(compile_report_query(definition(sort=[{"field": "cvss_score"}]), "acc"))
    assert by_score.endswith("ORDER BY findings.cvss_score ASC NULLS LAST, findings.id ASC")
    # asset.id is not the finding's id: the finding's id still breaks ties.
    by_asset = str(compile_report_query(definition(sort=[{"field": "asset.id"}]), "acc"))
    assert by_asset.endswith("ORDER BY asset.id ASC NULLS LAST, findings.id ASC")


@pytest.mark.usefixtures("data")
def test_limit_applies_after_sorting(engine: Engine, account: Account) -> None:
    report = definition(sort=[{"field": "cvss_score", "direction": "desc"}], limit=2)
    assert ids(engine, report, account.id) == ["f1", "f2"]
    assert ids(engine, definition(limit=10), account.id) == ["f1", "f2", "f3", "f4", "f5"]


@pytest.mark.usefixtures("data")
@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("eq", ["f1"]),
        ("contains", ["f1"]),
        ("starts_with", ["f1"]),
        ("in", ["f1"]),
        ("ne", ["f2", "f3", "f4", "f5"]),
    ],
)
def test_values_are_bound_parameters_never_sql_text(
    engine: Engine, account: Account, op: str, expected: list[str]
) -> None:
    value: Any = [INJECTION] if op == "in" else INJECTION
    report = definition(filters=[{"field": "description", "op": op, "value": value}])
    statement = compile_report_query(report, account.id)
    sql = str(statement)
    assert INJECTION not in sql
    assert "DROP" not in sql
    assert account.id not in sql
    # The value is just data: it matches the finding whose description holds that text.
    assert ids(engine, report, account.id) == expected
    assert "findings" in inspect(engine).get_table_names()
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(findings)).scalar_one() == 7


@pytest.mark.usefixtures("data")
def test_repeated_runs_give_identical_rows(engine: Engine, account: Account) -> None:
    report = definition(columns=["id", "title", "asset.hostname", "first_seen"], sort=[{"field": "severity"}])
    assert run(engine, report, account.id) == run(engine, report, account.id)


def test_report_column_types() -> None:
    report = definition(columns=["id", "asset.hostname", "cvss_score", "first_seen", "due_date", "title"])
    assert report_column_types(report) == [
        ("id", FieldType.STRING),
        ("asset.hostname", FieldType.STRING),
        ("cvss_score", FieldType.NUMBER),
        ("first_seen", FieldType.TIMESTAMP),
        ("due_date", FieldType.DATE),
        ("title", FieldType.TEXT),
    ]


def load_example(name: str) -> ReportDefinition:
    return parse_report_definition(json.loads((EXAMPLES / name).read_text(encoding="utf-8")))


@pytest.mark.usefixtures("data")
def test_example_reports_parse_and_run(engine: Engine, account: Account, other_account: Account) -> None:
    critical = load_example("critical-open-findings.json")
    assert ids(engine, critical, account.id) == ["f1"]
    assert ids(engine, critical, other_account.id) == ["f1", "g2"]

    everything = load_example("all-findings.json")
    rows = run(engine, everything, account.id)
    assert [r["id"] for r in rows] == ["f1", "f2", "f3", "f4", "f5"]
    assert list(rows[0]) == list(everything.columns)
    assert [r["asset.hostname"] for r in rows] == ["web-01", "db_01", None, None, "web-01"]
