"""`uvm-reporting audit list` as an operator runs it, after the changes the CLI itself records."""

from __future__ import annotations

import getpass
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support.cli import one_json_object, run_command
from tests.support.reports import ALL_FINDINGS_REPORT
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import Account, create_account
from uvm_reporting.database.audit import record_event_now
from uvm_reporting.domain.audit import Actor, AuditEvent


@pytest.fixture
def acme(store: Engine) -> Account:
    return create_account(store, "Acme Corp")


def run(data_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return run_command(data_dir, *arguments, COLUMNS="200")


def ok_json(data_dir: Path, *arguments: str) -> dict[str, Any]:
    result = run(data_dir, *arguments, "--json")
    assert result.returncode == 0, result.stderr + result.stdout
    return one_json_object(result.stdout)


def test_operator_changes_are_recorded_and_listed(data_dir: Path, store: Engine, acme: Account, tmp_path: Path) -> None:
    other = create_account(store, "Globex")
    client = ok_json(data_dir, "clients", "create", "--account", acme.id)
    create_client(store, other.id, actor=Actor.operator("someone"))
    definition = tmp_path / "report.json"
    definition.write_text(json.dumps(ALL_FINDINGS_REPORT))
    report = ok_json(data_dir, "reports", "create", "--account", acme.id, "--file", str(definition))
    definition.write_text(json.dumps({**ALL_FINDINGS_REPORT, "viewers": "private"}))
    ok_json(data_dir, "reports", "update", report["id"], "--account", acme.id, "--file", str(definition))
    ok_json(data_dir, "clients", "revoke", client["client_id"])

    events = ok_json(data_dir, "audit", "list", "--account", acme.id)["events"]
    actions = sorted(event["action"] for event in events)
    assert actions == sorted(
        ["client.created", "report.created", "report.updated", "report.access_changed", "client.revoked"]
    )
    assert events[0]["action"] == "client.revoked"  # newest first
    assert {event["account_id"] for event in events} == {acme.id}
    assert all(event["actor"] == {"kind": "operator", "id": getpass.getuser()} for event in events)
    assert {event["source_ip"] for event in events} == {None}
    assert client["client_secret"] not in json.dumps(events)

    latest_client_event = ok_json(
        data_dir, "audit", "list", "--account", acme.id, "--action", "client.*", "--limit", "1"
    )["events"]
    assert [(event["action"], event["target"]["id"]) for event in latest_client_event] == [
        ("client.revoked", client["client_id"])
    ]


def test_a_person_reads_one_line_per_event(data_dir: Path, store: Engine, acme: Account) -> None:
    record_event_now(
        store,
        AuditEvent(acme.id, "report.access_changed", Actor.api_client("c1", source_ip="192.0.2.7"), "report", "r1"),
    )
    text = run(data_dir, "audit", "list", "--account", acme.id)
    assert text.returncode == 0, text.stderr
    assert "report.access_changed" in text.stdout
    assert "api_client:c1  report:r1  ip=192.0.2.7" in text.stdout


def test_an_unknown_account_or_no_account_is_named(data_dir: Path, store: Engine) -> None:
    missing = run(data_dir, "audit", "list", "--account", "no-such-account")
    assert missing.returncode == 2
    assert "NOT_FOUND" in missing.stderr
    assert ok_json(data_dir, "audit", "list", "--deployment") == {"account_id": None, "events": []}
    neither = run(data_dir, "audit", "list")
    assert neither.returncode == 2
    assert "--account" in neither.stderr
