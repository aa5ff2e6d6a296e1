"""``POST /oauth2/token`` and ``GET /.well-known/jwks.json`` over HTTP, with a real store."""

from __future__ import annotations

import base64
import stat
import time
from collections.abc import Iterator
from urllib.parse import quote_plus

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from uvm_reporting.api.token_routes import token_routes
from uvm_reporting.auth.access_tokens import AccessTokens
from uvm_reporting.auth.api_client_credentials import CreatedClient, create_client
from uvm_reporting.database.accounts import Account, get_account, set_account_disabled
from uvm_reporting.database.api_clients import revoke_client
from uvm_reporting.database.tables import api_clients
from uvm_reporting.settings import Settings

FORM = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}


@pytest.fixture
def tokens(settings: Settings) -> AccessTokens:
    return AccessTokens.from_settings(settings)


@pytest.fixture
def http(engine: Engine, tokens: AccessTokens) -> Iterator[TestClient]:
    with TestClient(Starlette(routes=token_routes(engine, tokens))) as client:
        yield client


@pytest.fixture
def client(engine: Engine, account: Account) -> CreatedClient:
    return create_client(engine, account.id, "ci")


def form_body(**fields: str) -> str:
    return "&".join(f"{quote_plus(name)}={quote_plus(value)}" for name, value in fields.items())


def test_form_credentials_as_in_the_documented_curl(
    http: TestClient, client: CreatedClient, settings: Settings, tokens: AccessTokens
) -> None:
    response = http.post(
        "/oauth2/token",
        headers=FORM,
        content=form_body(
            grant_type="client_credentials", client_id=client.client_id, client_secret=client.client_secret
        ),
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600

    # Anyone can check the token with the published keys alone.
    keys = KeySet.import_key_set(http.get("/.well-known/jwks.json").json())
    token = jwt.decode(body["access_token"], keys, algorithms=["ES256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": settings.token_issuer},
        aud={"essential": True, "value": settings.token_audience},
        sub={"essential": True, "value": client.client_id},
        account_id={"essential": True, "value": client.account_id},
        exp={"essential": True},
    ).validate(token.claims)
    assert token.header["kid"] == keys.keys[0].kid
    assert token.claims["exp"] - token.claims["iat"] == 3600
    assert tokens.verify(body["access_token"]).account_id == client.account_id


def test_basic_credentials(http: TestClient, client: CreatedClient) -> None:
    pair = f"{quote_plus(client.client_id)}:{quote_plus(client.client_secret)}"
    response = http.post(
        "/oauth2/token",
        headers=FORM | {"authorization": "Basic " + base64.b64encode(pair.encode()).decode()},
        content="grant_type=client_credentials",
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["token_type"] == "Bearer"


def test_form_encoded_by_the_client_library(http: TestClient, client: CreatedClient) -> None:
    response = http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": client.client_secret},
    )
    assert response.status_code == 200


def test_wrong_secret_is_invalid_client_401(http: TestClient, client: CreatedClient) -> None:
    response = http.post(
        "/oauth2/token",
        headers=FORM,
        content=form_body(grant_type="client_credentials", client_id=client.client_id, client_secret="uvms_wrong"),
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="uvm-reporting"'
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == "invalid_client"
    assert "access_token" not in response.json()


def test_unknown_client_is_invalid_client_401(http: TestClient, client: CreatedClient) -> None:
    response = http.post(
        "/oauth2/token",
        headers=FORM,
        content=form_body(
            grant_type="client_credentials", client_id="uvmc_doesnotexist", client_secret=client.client_secret
        ),
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="uvm-reporting"'
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("client_id", ["a\x00b", f"uvmc_{'x' * 200}", "é🙂"])
def test_a_client_id_no_client_can_have_is_an_unknown_client(
    http: TestClient, client: CreatedClient, client_id: str
) -> None:
    """A NUL in client_id was a 500 on PostgreSQL (its text cannot hold NUL)."""
    response = http.post(
        "/oauth2/token",
        headers=FORM,
        content=form_body(grant_type="client_credentials", client_id=client_id, client_secret=client.client_secret),
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


def test_revoked_client_is_refused(http: TestClient, engine: Engine, client: CreatedClient) -> None:
    before = http.post(
        "/oauth2/token",
        headers=FORM,
        content=form_body(
            grant_type="client_credentials", client_id=client.client_id, client_secret=client.client_secret
        ),
    )
    assert before.status_code == 200

    revoke_client(engine, client.client_id)

    after = http.post(
        "/oauth2/token",
        headers=FORM,
        content=form_body(
            grant_type="client_credentials", client_id=client.client_id, client_secret=client.client_secret
        ),
    )
    assert after.status_code == 401
    assert after.json()["error"] == "invalid_client"


def test_a_disabled_accounts_client_gets_no_token_until_it_is_enabled(
    http: TestClient, engine: Engine, client: CreatedClient
) -> None:
    def token_status() -> int:
        body = form_body(
            grant_type="client_credentials", client_id=client.client_id, client_secret=client.client_secret
        )
        return http.post("/oauth2/token", headers=FORM, content=body).status_code

    set_account_disabled(engine, client.account_id, disabled=True)
    assert token_status() == 401
    assert get_account(engine, client.account_id).disabled_at is not None
    set_account_disabled(engine, client.account_id, disabled=False)
    assert token_status() == 200


def test_unsupported_grant_type(http: TestClient, client: CreatedClient) -> None:
    response = http.post(
        "/oauth2/token",
        headers=FORM,
        content=form_body(grant_type="password", client_id=client.client_id, client_secret=client.client_secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert response.headers["cache-control"] == "no-store"


def test_missing_grant_type_is_invalid_request(http: TestClient, client: CreatedClient) -> None:
    response = http.post(
        "/oauth2/token", headers=FORM, content=form_body(client_id=client.client_id, client_secret=client.client_secret)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_repeated_parameter_is_invalid_request(http: TestClient, client: CreatedClient) -> None:
    body = (
        form_body(grant_type="client_credentials", client_id=client.client_id, client_secret=client.client_secret)
        + "&grant_type=client_credentials"
    )
    response = http.post("/oauth2/token", headers=FORM, content=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "grant_type" in response.json()["error_description"]


def test_json_body_is_refused(http: TestClient, client: CreatedClient) -> None:
    response = http.post(
        "/oauth2/token",
        json={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": client.client_secret},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "application/x-www-form-urlencoded" in response.json()["error_description"]


def test_multipart_body_is_refused(http: TestClient, client: CreatedClient) -> None:
    response = http.post("/oauth2/token", files={"grant_type": (None, "client_credentials")})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_oversized_field_is_invalid_request(http: TestClient) -> None:
    response = http.post(
        "/oauth2/token",
        headers=FORM,
        content=form_body(grant_type="client_credentials", client_id="x", client_secret="y" * 100_000),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_other_methods_are_not_allowed(http: TestClient) -> None:
    assert http.get("/oauth2/token").status_code == 405
    assert http.put("/oauth2/token", headers=FORM, content="grant_type=client_credentials").status_code == 405


def test_jwks_is_public_and_cacheable(http: TestClient, tokens: AccessTokens) -> None:
    response = http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.json() == tokens.jwks()
    for key in response.json()["keys"]:
        assert "d" not in key


def test_signing_key_file_is_private(http: TestClient, settings: Settings) -> None:
    key_file = settings.keys_dir / "token-signing" / "generated.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700


def test_database_never_holds_the_plain_secret(engine: Engine, client: CreatedClient) -> None:
    with engine.connect() as connection:
        rows = connection.execute(select(api_clients)).all()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0])
    assert client.client_secret not in stored
    assert rows[0].secret_hash.startswith("$argon2id$")
    assert client.client_secret not in repr(client)


def test_one_token_request_stays_quick(http: TestClient, client: CreatedClient) -> None:
    durations = []
    for _ in range(5):
        started = time.perf_counter()
        response = http.post(
            "/oauth2/token",
            headers=FORM,
            content=form_body(
                grant_type="client_credentials", client_id=client.client_id, client_secret=client.client_secret
            ),
        )
        durations.append(time.perf_counter() - started)
        assert response.status_code == 200
    # Argon2 dominates; a generous bound that still catches parameters gone far too costly.
    assert sorted(durations)[2] < 0.5
