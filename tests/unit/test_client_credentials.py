"""The token endpoint's protocol (RFC 6749 §4.4, §2.3.1, §5.1, §5.2), without HTTP or a database."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from urllib.parse import quote_plus

import pytest

from uvm_reporting.auth.access_tokens import IssuedToken
from uvm_reporting.auth.client_credentials import TokenResponse, handle_token_request
from uvm_reporting.database.api_clients import ClientRecord

CLIENT_ID = "uvmc_client:with+special chars/é"
SECRET = "s3cret:+/ %&=ü"
CLIENT = ClientRecord(
    client_id=CLIENT_ID,
    account_id="account-1",
    name="default",
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
    revoked_at=None,
)


class FakeAuthority:
    """Knows one client and records what the handler asked it."""

    def __init__(self) -> None:
        self.authenticated: list[tuple[str, str]] = []
        self.issued: list[ClientRecord] = []

    def authenticate(self, client_id: str, client_secret: str) -> ClientRecord | None:
        self.authenticated.append((client_id, client_secret))
        return CLIENT if (client_id, client_secret) == (CLIENT_ID, SECRET) else None

    def issue(self, client: ClientRecord) -> IssuedToken:
        self.issued.append(client)
        return IssuedToken(access_token="header.payload.signature", expires_in=3600)


@pytest.fixture
def authority() -> FakeAuthority:
    return FakeAuthority()


def request(authority: FakeAuthority, form: dict[str, str], authorization: str | None = None) -> TokenResponse:
    return handle_token_request(form, authorization, authority.authenticate, authority.issue)


def basic(client_id: str, secret: str) -> str:
    # §2.3.1: each part is form-urlencoded first, then the pair is base64-encoded.
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def assert_error(response: TokenResponse, status: int, error: str) -> None:
    assert response.status == status
    assert response.body["error"] == error
    assert response.body["error_description"]
    assert set(response.body) == {"error", "error_description"}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    if status == 401:
        assert response.headers["WWW-Authenticate"] == 'Basic realm="uvm-reporting"'
    else:
        assert "WWW-Authenticate" not in response.headers


def assert_success(response: TokenResponse, authority: FakeAuthority) -> None:
    assert response.status == 200
    assert response.body == {"access_token": "header.payload.signature", "token_type": "Bearer", "expires_in": 3600}
    assert response.headers == {"Cache-Control": "no-store", "Pragma": "no-cache"}
    assert authority.issued == [CLIENT]


def test_form_credentials_get_a_bearer_token(authority: FakeAuthority) -> None:
    response = request(authority, {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET})
    assert_success(response, authority)
    assert authority.authenticated == [(CLIENT_ID, SECRET)]


def test_basic_credentials_are_form_decoded_before_checking(authority: FakeAuthority) -> None:
    response = request(authority, {"grant_type": "client_credentials"}, basic(CLIENT_ID, SECRET))
    assert_success(response, authority)
    assert authority.authenticated == [(CLIENT_ID, SECRET)]


def test_basic_scheme_name_is_case_insensitive(authority: FakeAuthority) -> None:
    header = basic(CLIENT_ID, SECRET).replace("Basic", "bAsIc")
    assert_success(request(authority, {"grant_type": "client_credentials"}, header), authority)


def test_basic_with_the_same_client_id_in_the_body_is_accepted(authority: FakeAuthority) -> None:
    response = request(
        authority, {"grant_type": "client_credentials", "client_id": CLIENT_ID}, basic(CLIENT_ID, SECRET)
    )
    assert_success(response, authority)


def test_scope_is_ignored(authority: FakeAuthority) -> None:
    response = request(
        authority,
        {
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "scope": "reports:read anything",
        },
    )
    assert_success(response, authority)


def test_wrong_secret_is_invalid_client_with_a_challenge(authority: FakeAuthority) -> None:
    response = request(
        authority, {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "wrong"}
    )
    assert_error(response, 401, "invalid_client")
    assert authority.issued == []


def test_unknown_client_over_basic_is_invalid_client(authority: FakeAuthority) -> None:
    response = request(authority, {"grant_type": "client_credentials"}, basic("uvmc_unknown", SECRET))
    assert_error(response, 401, "invalid_client")
    assert authority.authenticated == [("uvmc_unknown", SECRET)]
    assert authority.issued == []


def test_unknown_and_wrong_secret_read_the_same(authority: FakeAuthority) -> None:
    unknown = request(
        authority, {"grant_type": "client_credentials", "client_id": "uvmc_nobody", "client_secret": SECRET}
    )
    wrong = request(authority, {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "wrong"})
    assert unknown == wrong


def test_both_authentication_methods_at_once_is_invalid_request(authority: FakeAuthority) -> None:
    response = request(
        authority,
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET},
        basic(CLIENT_ID, SECRET),
    )
    assert_error(response, 400, "invalid_request")
    assert "one method" in response.body["error_description"]
    assert authority.authenticated == []


def test_basic_and_a_different_body_client_id_is_invalid_request(authority: FakeAuthority) -> None:
    response = request(
        authority, {"grant_type": "client_credentials", "client_id": "uvmc_other"}, basic(CLIENT_ID, SECRET)
    )
    assert_error(response, 400, "invalid_request")
    assert authority.authenticated == []


def test_missing_grant_type_is_invalid_request(authority: FakeAuthority) -> None:
    response = request(authority, {"client_id": CLIENT_ID, "client_secret": SECRET})
    assert_error(response, 400, "invalid_request")
    assert "grant_type" in response.body["error_description"]
    assert authority.authenticated == []


def test_empty_grant_type_counts_as_missing(authority: FakeAuthority) -> None:
    response = request(authority, {"grant_type": "", "client_id": CLIENT_ID, "client_secret": SECRET})
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "refresh_token", "CLIENT_CREDENTIALS"])
def test_other_grant_types_are_unsupported(authority: FakeAuthority, grant_type: str) -> None:
    response = request(authority, {"grant_type": grant_type, "client_id": CLIENT_ID, "client_secret": SECRET})
    assert_error(response, 400, "unsupported_grant_type")
    assert "client_credentials" in response.body["error_description"]
    assert authority.authenticated == []


def test_no_client_authentication_is_invalid_client(authority: FakeAuthority) -> None:
    response = request(authority, {"grant_type": "client_credentials"})
    assert_error(response, 401, "invalid_client")
    assert authority.authenticated == []


def test_client_id_without_secret_is_invalid_client(authority: FakeAuthority) -> None:
    response = request(authority, {"grant_type": "client_credentials", "client_id": CLIENT_ID})
    assert_error(response, 401, "invalid_client")
    assert "client_secret" in response.body["error_description"]
    assert authority.authenticated == []


def test_empty_secret_counts_as_missing(authority: FakeAuthority) -> None:
    response = request(authority, {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": ""})
    assert_error(response, 401, "invalid_client")
    assert authority.authenticated == []


def test_secret_without_client_id_is_invalid_request(authority: FakeAuthority) -> None:
    response = request(authority, {"grant_type": "client_credentials", "client_secret": SECRET})
    assert_error(response, 400, "invalid_request")
    assert "client_id" in response.body["error_description"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer some.access.token",
        "Basic not*base64!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b":secret-without-id").decode(),
        "Basic " + base64.b64encode(b"id-without-secret:").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic",
    ],
)
def test_unusable_authorization_header_is_invalid_client(authority: FakeAuthority, header: str) -> None:
    response = request(authority, {"grant_type": "client_credentials"}, header)
    assert_error(response, 401, "invalid_client")
    assert authority.authenticated == []


def test_overlong_credentials_are_refused_without_checking(authority: FakeAuthority) -> None:
    response = request(
        authority, {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "x" * 10_000}
    )
    assert_error(response, 401, "invalid_client")
    assert authority.authenticated == []


def test_reflected_values_are_cut_short_and_printable(authority: FakeAuthority) -> None:
    response = request(
        authority,
        {"grant_type": "password\r\nX-Injected: 1" + "y" * 500, "client_id": CLIENT_ID, "client_secret": SECRET},
    )
    description = response.body["error_description"]
    assert "\r" not in description
    assert "\n" not in description
    assert len(description) < 200


def test_responses_do_not_show_the_secret_in_repr(authority: FakeAuthority) -> None:
    response = request(authority, {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET})
    assert "header.payload.signature" not in repr(response)
    assert SECRET not in repr(response)
