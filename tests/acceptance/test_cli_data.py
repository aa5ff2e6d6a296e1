"""`uvm-reporting data generate|load`, run as the installed command against a SQLite file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.cli import one_json_object, run_command
from uvm_reporting.database.accounts import account_counts, create_account

FINDING = {
    "id": "f-1",
    "title": 'Heap overflow, "png_read_row"',
    "severity": "High",
    "status": "Open",
    "cvss_score": 8.8,
    "first_seen": "2026-03-01T10:00:00Z",
    "last_seen": "2026-03-02T10:00:00Z",
}


@pytest.fixture
def account_id(store: Engine) -> str:
    return create_account(store, "Acme Corp").id


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_command(data_dir, "data", *args)


def one_line(text: str) -> str:
    # Rich wraps long messages at the terminal width; compare the words, not the wrapping.
    return " ".join(text.split())


def test_generate_prints_one_json_object_and_fills_the_account(data_dir: Path, store: Engine, account_id: str) -> None:
    result = run(data_dir, "generate", "--account", account_id, "--findings", "400", "--seed", "5", "--json")

    assert result.returncode == 0, result.stderr
    assert one_json_object(result.stdout) == {"account_id": account_id, "findings": 400, "assets": 50}
    counts = account_counts(store, account_id)
    assert (counts["findings"], counts["assets"]) == (400, 50)


def test_generate_without_json_speaks_to_a_person(data_dir: Path, account_id: str) -> None:
    result = run(data_dir, "generate", "--account", account_id, "--findings", "16")

    assert result.returncode == 0, result.stderr
    assert one_line(result.stdout) == f"Generated 16 findings and 2 assets in account {account_id}."


def test_generate_refuses_an_account_that_already_has_data(data_dir: Path, account_id: str) -> None:
    assert run(data_dir, "generate", "--account", account_id, "--findings", "8").returncode == 0

    result = run(data_dir, "generate", "--account", account_id, "--findings", "8", "--json")

    assert result.returncode == 2
    assert one_json_object(result.stdout)["error"]["code"] == "BAD_USER_INPUT"


def test_an_unknown_account_exits_2_with_not_found(data_dir: Path, store: Engine) -> None:
    result = run(data_dir, "generate", "--account", "no-such-account", "--findings", "8", "--json")

    assert result.returncode == 2
    assert one_json_object(result.stdout) == {
        "error": {"code": "NOT_FOUND", "message": "Account no-such-account does not exist."}
    }


def test_load_prints_one_json_object_and_stores_the_rows(
    data_dir: Path, store: Engine, account_id: str, tmp_path: Path
) -> None:
    path = tmp_path / "findings.ndjson"
    path.write_text(json.dumps(FINDING) + "\n" + json.dumps({**FINDING, "id": "f-2"}) + "\n", encoding="utf-8")

    result = run(data_dir, "load", "--account", account_id, "--entity", "findings", str(path), "--json")

    assert result.returncode == 0, result.stderr
    assert one_json_object(result.stdout) == {"account_id": account_id, "entity": "findings", "loaded": 2}
    assert account_counts(store, account_id)["findings"] == 2


def test_load_of_a_bad_file_exits_2_naming_line_and_field_and_loads_nothing(
    data_dir: Path, store: Engine, account_id: str, tmp_path: Path
) -> None:
    path = tmp_path / "findings.csv"
    path.write_text(
        "id,title,severity,status,first_seen,last_seen\n"
        "f-1,ok,Low,Open,2026-03-01T10:00:00Z,2026-03-01T10:00:00Z\n"
        "f-2,bad,Severe,Open,2026-03-01T10:00:00Z,2026-03-01T10:00:00Z\n",
        encoding="utf-8",
    )
    message = 'line 3, field "severity": "Severe" is not one of Critical, High, Medium, Low, Info'

    text = run(data_dir, "load", "--account", account_id, "--entity", "findings", str(path))
    as_json = run(data_dir, "load", "--account", account_id, "--entity", "findings", str(path), "--json")

    assert text.returncode == 2
    assert text.stdout == ""
    assert one_line(text.stderr) == f"error (BAD_USER_INPUT): {message}"
    assert as_json.returncode == 2
    assert one_json_object(as_json.stdout) == {
        "error": {"code": "BAD_USER_INPUT", "message": message, "line": 3, "field": "severity"}
    }
    assert account_counts(store, account_id)["findings"] == 0


def test_load_of_an_unknown_entity_lists_the_valid_ones(data_dir: Path, account_id: str, tmp_path: Path) -> None:
    path = tmp_path / "findings.ndjson"
    path.write_text(json.dumps(FINDING) + "\n", encoding="utf-8")

    result = run(data_dir, "load", "--account", account_id, "--entity", "vulns", str(path))

    assert result.returncode == 2
    assert "valid entities: assets, findings" in one_line(result.stderr)
