"""`uvm-reporting clients ...` as an operator runs it: the installed console script."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.cli import one_json_object, run_command
from uvm_reporting.auth.api_client_credentials import authenticate_client
from uvm_reporting.database.accounts import Account, create_account
from uvm_reporting.database.api_clients import get_active_client


@pytest.fixture
def acme(store: Engine) -> Account:
    return create_account(store, "Acme Corp")


def run(data_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return run_command(data_dir, *arguments, COLUMNS="200")


def test_create_prints_one_json_object_whose_secret_works(data_dir: Path, store: Engine, acme: Account) -> None:
    result = run(data_dir, "clients", "create", "--account", acme.id, "--name", "nightly export", "--json")

    assert result.returncode == 0, result.stderr
    created = one_json_object(result.stdout)
    assert set(created) == {"client_id", "client_secret", "account_id", "name"}
    assert created["account_id"] == acme.id
    assert created["name"] == "nightly export"
    client = authenticate_client(store, created["client_id"], created["client_secret"])
    assert client is not None
    assert client.account_id == acme.id


def test_create_for_a_person_shows_the_secret_once_with_a_warning(data_dir: Path, store: Engine, acme: Account) -> None:
    result = run(data_dir, "clients", "create", "--account", acme.id)

    assert result.returncode == 0, result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines() if line.startswith("client_"))
    client_id, secret = lines["client_id"].strip(), lines["client_secret"].strip()
    assert authenticate_client(store, client_id, secret) is not None
    assert "cannot be shown again" in result.stdout

    listing = run(data_dir, "clients", "list", "--account", acme.id)
    assert client_id in listing.stdout
    assert secret not in listing.stdout


def test_revoke_stops_the_client(data_dir: Path, store: Engine, acme: Account) -> None:
    created = one_json_object(run(data_dir, "clients", "create", "--account", acme.id, "--json").stdout)

    result = run(data_dir, "clients", "revoke", created["client_id"], "--json")

    assert result.returncode == 0, result.stderr
    revoked = one_json_object(result.stdout)
    assert revoked["client_id"] == created["client_id"]
    assert revoked["revoked_at"] is not None
    assert authenticate_client(store, created["client_id"], created["client_secret"]) is None
    assert get_active_client(store, created["client_id"]) is None

    again = run(data_dir, "clients", "revoke", created["client_id"], "--json")
    assert again.returncode == 0
    assert one_json_object(again.stdout)["revoked_at"] == revoked["revoked_at"]


def test_list_shows_clients_as_one_json_object(data_dir: Path, acme: Account) -> None:
    first = one_json_object(run(data_dir, "clients", "create", "--account", acme.id, "--json").stdout)
    second = one_json_object(run(data_dir, "clients", "create", "--account", acme.id, "--name", "b", "--json").stdout)
    run(data_dir, "clients", "revoke", first["client_id"])

    listing = one_json_object(run(data_dir, "clients", "list", "--account", acme.id, "--json").stdout)

    assert listing["account_id"] == acme.id
    by_id = {client["client_id"]: client for client in listing["clients"]}
    assert set(by_id) == {first["client_id"], second["client_id"]}
    assert by_id[first["client_id"]]["revoked_at"] is not None
    assert by_id[second["client_id"]]["revoked_at"] is None
    assert by_id[second["client_id"]]["name"] == "b"
    assert "client_secret" not in json.dumps(listing)


def test_unknown_account_exits_2_with_a_clear_message(data_dir: Path, store: Engine) -> None:
    result = run(data_dir, "clients", "create", "--account", "no-such-account")

    assert result.returncode == 2
    assert "Account no-such-account does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""

    as_json = run(data_dir, "clients", "create", "--account", "no-such-account", "--json")
    assert as_json.returncode == 2
    assert one_json_object(as_json.stdout)["error"]["code"] == "NOT_FOUND"


def test_unknown_client_cannot_be_revoked(data_dir: Path, store: Engine) -> None:
    result = run(data_dir, "clients", "revoke", "uvmc_nobody")
    assert result.returncode == 2
    assert "uvmc_nobody does not exist" in result.stderr


def test_disabling_an_account_stops_its_clients_until_it_is_enabled(
    data_dir: Path, store: Engine, acme: Account
) -> None:
    created = one_json_object(run(data_dir, "clients", "create", "--account", acme.id, "--json").stdout)

    disabled = run(data_dir, "accounts", "disable", acme.id, "--json")

    assert disabled.returncode == 0, disabled.stderr
    state = one_json_object(disabled.stdout)
    assert (state["id"], state["disabled_at"] is not None) == (acme.id, True)
    assert get_active_client(store, created["client_id"]) is None
    assert authenticate_client(store, created["client_id"], created["client_secret"]) is None
    assert "disabled since" in run(data_dir, "accounts", "disable", acme.id).stdout  # again: no change

    enabled = one_json_object(run(data_dir, "accounts", "enable", acme.id, "--json").stdout)

    assert enabled["disabled_at"] is None
    assert authenticate_client(store, created["client_id"], created["client_secret"]) is not None
    unknown = run(data_dir, "accounts", "disable", "no-such-account", "--json")
    assert unknown.returncode == 2
    assert one_json_object(unknown.stdout)["error"]["code"] == "NOT_FOUND"


def test_rotate_secret_then_revoke_the_old_one(data_dir: Path, store: Engine, acme: Account) -> None:
    created = one_json_object(run(data_dir, "clients", "create", "--account", acme.id, "--json").stdout)
    client_id, old_secret = created["client_id"], created["client_secret"]

    result = run(data_dir, "clients", "rotate-secret", client_id, "--json")

    assert result.returncode == 0, result.stderr
    rotated = one_json_object(result.stdout)
    new_secret = rotated["client_secret"]
    assert rotated["active_secrets"] == 2
    assert authenticate_client(store, client_id, old_secret) is not None
    assert authenticate_client(store, client_id, new_secret) is not None
    listing = run(data_dir, "clients", "list", "--account", acme.id)
    assert "two secrets" in listing.stdout
    assert new_secret not in listing.stdout

    again = run(data_dir, "clients", "rotate-secret", client_id, "--json")
    assert again.returncode == 2
    assert one_json_object(again.stdout)["error"]["code"] == "CONFLICT"

    revoked = run(data_dir, "clients", "revoke-secret", client_id, "--old", "--json")
    assert revoked.returncode == 0, revoked.stderr
    assert one_json_object(revoked.stdout)["active_secrets"] == 1
    assert authenticate_client(store, client_id, old_secret) is None
    assert authenticate_client(store, client_id, new_secret) is not None
