"""Loading NDJSON and CSV files into a real SQLite store: all rows or none, precise errors."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Table, func, select

from uvm_reporting.database import tables
from uvm_reporting.database.accounts import Account
from uvm_reporting.domain.timestamps import format_utc
from uvm_reporting.errors import BadUserInput, NotFound
from uvm_reporting.platform_data import loader
from uvm_reporting.platform_data.generator import generate_platform_data
from uvm_reporting.platform_data.loader import load_platform_file

FINDING: dict[str, Any] = {
    "id": "f-1",
    "asset_id": "a-1",
    "title": "SQL injection in login form",
    "description": None,
    "severity": "High",
    "status": "Open",
    "cvss_score": 8.1,
    "cve": "CVE-2024-3094",
    "cwe": "CWE-89",
    "source": "Tenable Nessus",
    "first_seen": "2026-03-01T10:00:00Z",
    "last_seen": "2026-03-05T12:30:00+02:00",
    "due_date": "2026-03-31",
    "resolved_at": None,
}
CSV_HEADER = "id,title,severity,status,cvss_score,first_seen,last_seen,due_date"


def finding(**changes: Any) -> dict[str, Any]:
    return {**FINDING, **changes}


def write_ndjson(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def stored(engine: Engine, table: Table, account: Account) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(table).where(table.c.account_id == account.id).order_by(table.c.id)).mappings()
        return [{key: value for key, value in row.items() if key != "account_id"} for row in rows]


def count(engine: Engine, table: Table, account: Account) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(table).where(table.c.account_id == account.id)
        ).scalar_one()


def load_error(engine: Engine, account: Account, path: Path, entity: str = "findings") -> BadUserInput:
    with pytest.raises(BadUserInput) as caught:
        load_platform_file(engine, account.id, entity, path)
    return caught.value


# --- good files ------------------------------------------------------------------------------


def test_ndjson_rows_are_loaded_with_typed_utc_values(engine: Engine, account: Account, tmp_path: Path) -> None:
    path = write_ndjson(
        tmp_path / "findings.ndjson",
        [
            FINDING,
            {
                "id": "f-2",
                "title": "Open port",
                "severity": "Info",
                "status": "Resolved",
                "cvss_score": 0,
                "first_seen": "2026-01-01T00:00:00-05:00",
                "last_seen": "2026-01-02T00:00:00Z",
                "resolved_at": "2026-01-03T08:15:00Z",
            },
        ],
    )

    assert load_platform_file(engine, account.id, "findings", path) == 2

    first, second = stored(engine, tables.findings, account)
    assert first == {
        **FINDING,
        "first_seen": datetime(2026, 3, 1, 10, tzinfo=UTC),
        "last_seen": datetime(2026, 3, 5, 10, 30, tzinfo=UTC),
        "due_date": date(2026, 3, 31),
    }
    assert second["first_seen"] == datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert second["resolved_at"] == datetime(2026, 1, 3, 8, 15, tzinfo=UTC)
    assert second["cvss_score"] == 0.0
    assert second["asset_id"] is None
    assert second["due_date"] is None


def test_csv_rows_are_loaded_with_empty_cells_as_null(engine: Engine, account: Account, tmp_path: Path) -> None:
    path = tmp_path / "findings.csv"
    path.write_text(
        f"{CSV_HEADER},cve\r\n"
        "f-1,XSS in search,Medium,In Progress,5.4,2026-03-01T10:00:00Z,2026-03-02T10:00:00Z,2026-05-30,\r\n"
        "f-2,Weak TLS,Low,Open,,2026-03-01T10:00:00Z,2026-03-01T10:00:00Z,,\r\n",
        encoding="utf-8",
    )

    assert load_platform_file(engine, account.id, "findings", path) == 2

    first, second = stored(engine, tables.findings, account)
    assert first["title"] == "XSS in search"
    assert first["status"] == "In Progress"
    assert first["cvss_score"] == 5.4
    assert first["due_date"] == date(2026, 5, 30)
    assert first["cve"] is None
    assert second["status"] == "Open"
    assert second["cvss_score"] is None
    assert second["due_date"] is None


def test_csv_quoted_fields_may_span_lines(engine: Engine, account: Account, tmp_path: Path) -> None:
    title = 'Overflow, "heap"\r\nsecond line\nthird line: naïve 日本語'
    path = tmp_path / "findings.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "title", "severity", "status", "first_seen", "last_seen"])
        writer.writerow(["f-1", title, "Critical", "Open", "2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z"])
        writer.writerow(["f-2", "plain", "Low", "Open", "2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z"])

    assert load_platform_file(engine, account.id, "findings", path) == 2

    assert [row["title"] for row in stored(engine, tables.findings, account)] == [title, "plain"]


def test_assets_load_too(engine: Engine, account: Account, tmp_path: Path) -> None:
    path = tmp_path / "assets.jsonl"
    write_ndjson(
        path,
        [
            {
                "id": "a-1",
                "hostname": "web-1.example.com",
                "ip": "10.0.0.1",
                "type": "Server",
                "criticality": "High",
                "first_seen": "2026-01-01T00:00:00Z",
                "last_seen": "2026-02-01T00:00:00Z",
            }
        ],
    )

    assert load_platform_file(engine, account.id, "assets", path) == 1

    (asset,) = stored(engine, tables.assets, account)
    assert asset["hostname"] == "web-1.example.com"
    assert asset["type"] == "Server"
    assert asset["owner"] is None


def test_blank_lines_and_a_byte_order_mark_are_accepted(engine: Engine, account: Account, tmp_path: Path) -> None:
    path = tmp_path / "findings.ndjson"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps(FINDING).encode()
        + b"\r\n\n   \n"
        + json.dumps(finding(id="f-2", severity="Bogus")).encode()
        + b"\n"
    )

    error = load_error(engine, account, path)

    # Blank lines are skipped but still counted: the bad row is physical line 4.
    assert error.details == {"line": 4, "field": "severity"}


def test_the_rows_stay_in_their_account(
    engine: Engine, account: Account, other_account: Account, tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "findings.ndjson", [FINDING])

    load_platform_file(engine, account.id, "findings", path)
    load_platform_file(engine, other_account.id, "findings", path)

    assert count(engine, tables.findings, account) == 1
    assert count(engine, tables.findings, other_account) == 1


# --- bad rows: nothing is loaded -------------------------------------------------------------

NDJSON_ERRORS = [
    pytest.param(
        finding(severity="Severe"), "severity", '"Severe" is not one of Critical, High, Medium, Low, Info', id="enum"
    ),
    pytest.param(finding(colour="red"), "colour", "unknown field", id="unknown-field"),
    pytest.param({k: v for k, v in FINDING.items() if k != "title"}, "title", "is required", id="missing"),
    pytest.param(finding(status=None), "status", "is required", id="null-required"),
    pytest.param(finding(cvss_score="high"), "cvss_score", '"high" is not a number', id="number-type"),
    pytest.param(finding(cvss_score=True), "cvss_score", "true is not a number", id="bool-number"),
    pytest.param(finding(cvss_score=10.5), "cvss_score", "10.5 is outside the CVSS range 0.0 to 10.0", id="cvss-range"),
    pytest.param(finding(cvss_score=-0.1), "cvss_score", "outside the CVSS range", id="cvss-negative"),
    pytest.param(finding(first_seen="2026-03-01T10:00:00"), "first_seen", "has no time zone", id="naive-timestamp"),
    pytest.param(
        finding(last_seen="yesterday"), "last_seen", '"yesterday" is not an ISO-8601 timestamp', id="bad-timestamp"
    ),
    pytest.param(finding(due_date="31/03/2026"), "due_date", "is not a date in the form YYYY-MM-DD", id="bad-date"),
    pytest.param(finding(due_date="2026-02-30"), "due_date", "is not a valid calendar date", id="no-such-day"),
    pytest.param(finding(due_date="2026-03-31T00:00:00Z"), "due_date", "YYYY-MM-DD", id="timestamp-as-date"),
    pytest.param(finding(id=17), "id", "17 is not a string", id="string-type"),
    pytest.param(finding(cve="CVE-" + "9" * 40), "cve", "at most 30 are allowed", id="too-long"),
]


@pytest.mark.parametrize(("bad_row", "field", "reason"), NDJSON_ERRORS)
def test_a_bad_ndjson_row_names_line_field_and_reason_and_loads_nothing(
    *, engine: Engine, account: Account, tmp_path: Path, bad_row: dict[str, Any], field: str, reason: str
) -> None:
    good = [finding(id=f"good-{n}") for n in range(1, 7)]
    path = write_ndjson(tmp_path / "findings.ndjson", [*good, bad_row])

    error = load_error(engine, account, path)

    assert error.message.startswith(f'line 7, field "{field}": ')
    assert reason in error.message
    assert error.details == {"line": 7, "field": field}
    assert count(engine, tables.findings, account) == 0


def test_the_enum_message_reads_as_documented(engine: Engine, account: Account, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "f.ndjson", [FINDING, finding(id="f-2", severity="Severe")])

    assert load_error(engine, account, path).message == (
        'line 2, field "severity": "Severe" is not one of Critical, High, Medium, Low, Info'
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        pytest.param('{"id": "f-9", "title": ', "is not valid JSON", id="broken-json"),
        pytest.param('["f-9"]', "is not a JSON object", id="array"),
    ],
)
def test_a_line_that_is_not_a_json_object_is_named(
    engine: Engine, account: Account, tmp_path: Path, line: str, reason: str
) -> None:
    path = tmp_path / "findings.ndjson"
    path.write_text(json.dumps(FINDING) + "\n" + line + "\n", encoding="utf-8")

    error = load_error(engine, account, path)

    assert error.message.startswith(f"line 2: {reason}")
    assert error.details == {"line": 2, "field": None}
    assert count(engine, tables.findings, account) == 0


def test_invalid_utf8_is_reported_on_its_own_line(engine: Engine, account: Account, tmp_path: Path) -> None:
    path = tmp_path / "findings.csv"
    path.write_bytes(
        b"id,title,severity,status,first_seen,last_seen\n"
        b"f-1,ok,Low,Open,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z\n"
        b"f-2,caf\xe9,Low,Open,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z\n"
    )

    assert load_error(engine, account, path).message == "line 3: is not valid UTF-8"


CSV_ROW = "f-{n},Title,High,Open,7.5,2026-03-01T10:00:00Z,2026-03-01T10:00:00Z,2026-03-31"


@pytest.mark.parametrize(
    ("content", "line", "field", "reason"),
    [
        pytest.param(
            f"{CSV_HEADER}\n{CSV_ROW}\n" + CSV_ROW.replace("High", "Severe") + "\n",
            3,
            "severity",
            '"Severe" is not one of Critical, High, Medium, Low, Info',
            id="enum",
        ),
        pytest.param(
            f"{CSV_HEADER}\n" + CSV_ROW.replace("Title", "") + "\n",
            2,
            "title",
            "is required and must not be empty",
            id="empty-required",
        ),
        pytest.param(
            f"{CSV_HEADER}\n" + CSV_ROW.replace("7.5", "7,5") + "\n",
            2,
            None,
            "has 9 values but the header names 8 fields",
            id="column-count",
        ),
        pytest.param(
            f"{CSV_HEADER}\n" + CSV_ROW.replace("7.5", "n/a") + "\n",
            2,
            "cvss_score",
            '"n/a" is not a number',
            id="number",
        ),
        pytest.param(
            f"{CSV_HEADER}\n" + CSV_ROW.replace("7.5", "nan") + "\n",
            2,
            "cvss_score",
            "is not a finite number",
            id="nan",
        ),
        pytest.param(f"{CSV_HEADER},colour\n{CSV_ROW},red\n", 1, "colour", "unknown field", id="unknown-column"),
        pytest.param(
            CSV_HEADER.replace("severity,", "") + "\n",
            1,
            "severity",
            "is required but has no column in the header",
            id="missing-column",
        ),
        pytest.param(f"{CSV_HEADER},title\n", 1, "title", "appears twice in the header", id="twice"),
        pytest.param("", 1, None, "the file is empty", id="empty-file"),
    ],
)
def test_a_bad_csv_row_names_line_field_and_reason_and_loads_nothing(
    *,
    engine: Engine,
    account: Account,
    tmp_path: Path,
    content: str,
    line: int,
    field: str | None,
    reason: str,
) -> None:
    path = tmp_path / "findings.csv"
    path.write_text(content.format(n=1), encoding="utf-8")

    error = load_error(engine, account, path)

    assert error.details == {"line": line, "field": field}
    assert reason in error.message
    assert count(engine, tables.findings, account) == 0


def test_csv_line_numbers_count_the_physical_lines_of_multi_line_records(
    engine: Engine, account: Account, tmp_path: Path
) -> None:
    path = tmp_path / "findings.csv"
    path.write_text(
        "id,title,severity,status,first_seen,last_seen\n"
        'f-1,"two\nlines",Low,Open,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z\n'
        'f-2,"three\r\nline\ntitle",Bogus,Open,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z\n',
        encoding="utf-8",
        newline="",
    )

    # f-2 starts on line 4 (f-1 spans lines 2-3) and the error names that start line.
    assert load_error(engine, account, path).details == {"line": 4, "field": "severity"}


def test_a_bad_row_after_several_stored_batches_rolls_everything_back(
    engine: Engine, account: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "BATCH_SIZE", 3)
    rows = [finding(id=f"f-{n}") for n in range(1, 11)]
    rows.append(finding(id="f-11", first_seen="not a time"))
    path = write_ndjson(tmp_path / "findings.ndjson", rows)

    error = load_error(engine, account, path)

    assert error.details == {"line": 11, "field": "first_seen"}
    assert count(engine, tables.findings, account) == 0


# --- duplicate ids ---------------------------------------------------------------------------


def test_a_duplicate_within_a_batch_names_both_lines(engine: Engine, account: Account, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "f.ndjson", [finding(id="f-1"), finding(id="f-2"), finding(id="f-1")])

    error = load_error(engine, account, path)

    assert error.message == 'line 3, field "id": "f-1" is a duplicate of line 1'
    assert count(engine, tables.findings, account) == 0


def test_a_duplicate_across_batches_is_found_in_the_database(
    engine: Engine, account: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "BATCH_SIZE", 2)
    ids = ["f-1", "f-2", "f-3", "f-4", "f-2", "f-5"]
    path = write_ndjson(tmp_path / "f.ndjson", [finding(id=value) for value in ids])

    error = load_error(engine, account, path)

    assert error.message == 'line 5, field "id": "f-2" appears more than once in this file'
    assert count(engine, tables.findings, account) == 0


def test_an_id_already_in_the_account_is_refused(engine: Engine, account: Account, tmp_path: Path) -> None:
    load_platform_file(engine, account.id, "findings", write_ndjson(tmp_path / "first.ndjson", [FINDING]))
    second = write_ndjson(tmp_path / "second.ndjson", [finding(id="f-2"), finding(id="f-1", title="changed")])

    error = load_error(engine, account, second)

    assert error.message == 'line 2, field "id": "f-1" already exists in this account'
    assert [row["title"] for row in stored(engine, tables.findings, account)] == [FINDING["title"]]


def test_a_stored_id_is_reported_before_a_later_bad_row(engine: Engine, account: Account, tmp_path: Path) -> None:
    load_platform_file(engine, account.id, "findings", write_ndjson(tmp_path / "first.ndjson", [FINDING]))
    second = write_ndjson(tmp_path / "second.ndjson", [finding(id="f-1"), finding(id="f-2", severity="?")])

    assert load_error(engine, account, second).details == {"line": 1, "field": "id"}


# --- wrong arguments -------------------------------------------------------------------------


def test_an_unknown_entity_lists_the_valid_ones(engine: Engine, account: Account, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "f.ndjson", [FINDING])

    with pytest.raises(BadUserInput, match=r'Unknown entity "vulns"; valid entities: assets, findings'):
        load_platform_file(engine, account.id, "vulns", path)


def test_an_unknown_file_type_or_missing_file_is_refused(engine: Engine, account: Account, tmp_path: Path) -> None:
    (tmp_path / "f.xlsx").write_text("x", encoding="utf-8")
    with pytest.raises(BadUserInput, match=r"use a \.ndjson, \.jsonl or \.csv file"):
        load_platform_file(engine, account.id, "findings", tmp_path / "f.xlsx")
    with pytest.raises(BadUserInput, match="does not exist"):
        load_platform_file(engine, account.id, "findings", tmp_path / "missing.csv")


def test_an_unknown_account_is_not_found(engine: Engine, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "f.ndjson", [FINDING])

    with pytest.raises(NotFound):
        load_platform_file(engine, "no-such-account", "findings", path)


# --- round trip ------------------------------------------------------------------------------


def export_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


@pytest.mark.parametrize("suffix", [".ndjson", ".csv"])
def test_generated_rows_exported_and_loaded_into_another_account_are_identical(
    engine: Engine, account: Account, other_account: Account, tmp_path: Path, suffix: str
) -> None:
    generate_platform_data(engine, account.id, 300, seed=11)

    for table in (tables.assets, tables.findings):
        original = stored(engine, table, account)
        path = tmp_path / f"{table.name}{suffix}"
        exported = [{key: export_value(value) for key, value in row.items()} for row in original]
        if suffix == ".csv":
            with path.open("w", encoding="utf-8", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=list(exported[0]))
                writer.writeheader()
                writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in exported)
        else:
            write_ndjson(path, exported)

        assert load_platform_file(engine, other_account.id, table.name, path) == len(original)

        assert stored(engine, table, other_account) == original
    titles = {row["title"] for row in stored(engine, tables.findings, other_account)}
    assert any("\r\n" in title for title in titles)
    assert any("日本語" in title for title in titles)
