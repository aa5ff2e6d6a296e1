"""Key rotation across running API processes, refused key files, and the production profile,
as an operator meets them: the installed console script and the server as subprocesses."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.cli import one_json_object, run_cli, run_command, running_server
from tests.support.ports import free_port

# Both processes behind one public URL: the tokens' issuer.
# (Typed Any: running_server takes its environment as keywords beside its own port keyword.)
SCALE_OUT: dict[str, Any] = {
    "UVM_REPORTING_KEY_RELOAD_SECONDS": "1",
    "UVM_REPORTING_PUBLIC_URL": "http://reports.internal",
}
WIDE = {"COLUMNS": "1000"}  # messages unwrapped
HTTPS: dict[str, Any] = {"UVM_REPORTING_PUBLIC_URL": "https://reports.example.com"}


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def token(base_url: str, client: dict[str, str]) -> str:
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": client["client_id"], "client_secret": client["client_secret"]}
    )
    status, body = post(
        f"{base_url}/oauth2/token", form.encode(), {"content-type": "application/x-www-form-urlencoded"}
    )
    assert status == 200, body
    access_token: str = body["access_token"]
    return access_token


def kid(access_token: str) -> str:
    header = access_token.split(".", maxsplit=1)[0]
    value: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return value


def graphql(base_url: str, access_token: str, account_id: str, query: str) -> tuple[int, dict[str, Any]]:
    return post(
        f"{base_url}/api/graphql",
        json.dumps({"query": query}).encode(),
        {"content-type": "application/json", "authorization": f"Bearer {access_token}", "accountId": account_id},
    )


def set_up_client(data_dir: Path) -> dict[str, str]:
    account = run_cli(data_dir, "accounts", "create", "--name", "Acme Corp")
    client: dict[str, str] = run_cli(data_dir, "clients", "create", "--account", account["id"])
    return client


def test_two_api_processes_follow_a_rotation_without_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    client = set_up_client(data_dir)
    account_id = client["account_id"]
    with (
        running_server(data_dir, "serve", "--no-workers", **SCALE_OUT) as (first, _),
        running_server(data_dir, "serve", "--no-workers", **SCALE_OUT) as (second, _),
    ):
        old_token = token(first, client)
        rotated = run_cli(data_dir, "keys", "rotate", "--only", "tokens")
        new_kid = rotated["tokens"]["key_id"]
        assert new_kid != kid(old_token)
        assert [key["key_id"] for key in rotated["tokens"]["still_verifying"]] == [kid(old_token)]

        # Each process signs with the new key within the reload interval, without a restart.
        deadline = time.monotonic() + 30
        while kid(new_token := token(second, client)) != new_kid:
            assert time.monotonic() < deadline, "the second process never signed with the rotated key"
            time.sleep(0.2)
        for base_url in (first, second):
            for access_token in (old_token, new_token):
                status, body = graphql(base_url, access_token, account_id, "{ __typename }")
                assert (status, body) == (200, {"data": {"__typename": "Query"}})
            assert {key["kid"] for key in get_json(f"{base_url}/.well-known/jwks.json")["keys"]} == {
                kid(old_token),
                new_kid,
            }

        listed = run_cli(data_dir, "keys", "list")
        assert [key["state"] for key in listed["tokens"]] == ["verifying", "signing"]
    log = (data_dir.parent / f"server-{first.rsplit(':', 1)[1]}.log").read_text()
    assert "profile development" in log


def test_serve_refuses_a_key_file_others_can_read_and_says_how_to_fix_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    rotated = run_cli(data_dir, "keys", "rotate")
    key_file = Path(rotated["links"]["file"])
    key_file.chmod(0o644)

    result = run_command(data_dir, "serve", "--port", str(free_port()), **WIDE)

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"chmod 600 {key_file}" in result.stderr


def test_the_production_profile_refuses_http_and_keys_made_at_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    production = {"UVM_REPORTING_PROFILE": "production"}

    plain_http = run_command(data_dir, "serve", "--port", str(free_port()), **production, **WIDE)
    assert plain_http.returncode == 2
    assert "https" in plain_http.stderr

    no_keys = run_command(data_dir, "serve", "--port", str(free_port()), **production, **HTTPS, **WIDE)
    assert no_keys.returncode == 2
    assert "uvm-reporting keys rotate" in no_keys.stderr


def test_the_production_profile_serves_without_introspection(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    client = set_up_client(data_dir)
    assert one_json_object(run_command(data_dir, "keys", "rotate", "--json").stdout)["tokens"]["key_id"]
    introspection = "{ __schema { queryType { name } } }"
    with running_server(data_dir, "serve", "--no-workers", UVM_REPORTING_PROFILE="production", **HTTPS) as (url, _):
        status, body = graphql(url, token(url, client), client["account_id"], introspection)
        assert status == 400
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_INTROSPECTION_DISABLED"
        assert "introspection" in body["errors"][0]["message"].lower()
    log = (data_dir.parent / f"server-{url.rsplit(':', 1)[1]}.log").read_text()
    assert "profile production: GraphQL introspection off, explorer off" in log

    # One setting at a time: production, but introspection turned back on.
    with running_server(
        data_dir,
        "serve",
        "--no-workers",
        UVM_REPORTING_PROFILE="production",
        UVM_REPORTING_GRAPHQL_INTROSPECTION="true",
        **HTTPS,
    ) as (url, _):
        status, body = graphql(url, token(url, client), client["account_id"], introspection)
        assert (status, body) == (200, {"data": {"__schema": {"queryType": {"name": "Query"}}}})
