"""The OAuth 2.0 client credentials grant: the token endpoint's protocol, without any web framework.

RFC 6749 §4.4 (Client Credentials Grant):

    The client can request an access token using only its client credentials ... when the
    client is requesting access to the protected resources under its control ...
    The client credentials grant type MUST only be used by confidential clients.

§4.4.2 (Access Token Request): the client sends ``grant_type`` (REQUIRED, value MUST be set
to "client_credentials") and ``scope`` (OPTIONAL) "using the
application/x-www-form-urlencoded format", and "MUST authenticate with the authorization
server as described in Section 3.2.1". §4.4.3: "A refresh token SHOULD NOT be included."

§2.3.1 (Client Password):

    Clients in possession of a client password MAY use the HTTP Basic authentication scheme
    ... The client identifier is encoded using the "application/x-www-form-urlencoded"
    encoding algorithm per Appendix B, and the encoded value is used as the username; the
    client password is encoded using the same algorithm and used as the password.
    ... Alternatively, the authorization server MAY support including the client credentials
    in the request-body using the following parameters: client_id ... client_secret ...
    The client MUST NOT use more than one authentication method in each request.

§5.1 (Successful Response): "access_token REQUIRED ... token_type REQUIRED ... expires_in
RECOMMENDED ... The authorization server MUST include the HTTP "Cache-Control" response
header field with a value of "no-store" in any response containing tokens, credentials, or
other sensitive information, as well as the "Pragma" response header field with a value of
"no-cache"."

§5.2 (Error Response): HTTP 400 with ``error`` and ``error_description``; ``invalid_request``
("missing a required parameter ..., repeats a parameter, includes multiple credentials,
utilizes more than one mechanism for authenticating the client, or is otherwise malformed"),
``invalid_client`` ("Client authentication failed (e.g., unknown client, no client
authentication included, or unsupported authentication method). The authorization server
MAY return an HTTP 401 (Unauthorized) status code to indicate which HTTP authentication
schemes are supported. If the client attempted to authenticate via the "Authorization"
request header field, the authorization server MUST respond with an HTTP 401 ... and include
the "WWW-Authenticate" response header field") and ``unsupported_grant_type``.

Choices made here:

* ``scope`` is accepted and ignored: a token grants its client's whole account, so there is
  nothing to narrow, and rejecting it would break clients that always send one.
* Every ``invalid_client`` answer is a 401 with ``WWW-Authenticate: Basic``, whichever way the
  client authenticated, so the supported scheme is always advertised.
* A ``client_id`` in the body next to HTTP Basic credentials is tolerated when it names the
  same client (some libraries always send it); a ``client_secret`` in the body next to HTTP
  Basic is two authentication methods, and a different ``client_id`` is a contradiction:
  both are ``invalid_request``.
* Per §3.1/§3.2, a parameter sent without a value counts as omitted.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from uvm_reporting.auth.access_tokens import IssuedToken
from uvm_reporting.database.api_clients import ClientRecord

GRANT_TYPE = "client_credentials"
REALM = "uvm-reporting"
# Far above any id or secret we hand out; longer values are refused before any hashing.
_MAX_CREDENTIAL_LENGTH = 512

_AUTHENTICATION_FAILED = "client authentication failed: unknown client, revoked client or wrong secret"

NO_STORE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """What the token endpoint answers: status code, JSON body and headers."""

    status: int
    body: dict[str, Any] = field(repr=False)
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """The client id and secret of a well-formed token request."""

    client_id: str
    client_secret: str = field(repr=False)


def handle_token_request(
    form: Mapping[str, str],
    authorization_header: str | None,
    authenticate: Callable[[str, str], ClientRecord | None],
    issue: Callable[[ClientRecord], IssuedToken],
) -> TokenResponse:
    """Answer one token request (RFC 6749 §4.4.2) whose form parameters are ``form``.

    ``authenticate`` returns the active client with that id and secret, or ``None``;
    ``issue`` makes an access token for a client. Neither is called for malformed requests.
    """
    credentials = read_token_request(form, authorization_header)
    if isinstance(credentials, TokenResponse):
        return credentials
    return token_answer(authenticate(credentials.client_id, credentials.client_secret), issue)


def read_token_request(form: Mapping[str, str], authorization_header: str | None) -> ClientCredentials | TokenResponse:
    """The credentials of a well-formed token request, or the error to answer: no I/O, no hash.

    The request's shape is checked first, so a malformed request never costs a hash (nor a
    rate-limit count: api/token_routes.py counts only what this lets through).
    """
    form = {name: value for name, value in form.items() if value != ""}
    refusal = _check_grant_type(form)
    if refusal is not None:
        return refusal
    return _client_credentials(form, authorization_header)


def token_answer(client: ClientRecord | None, issue: Callable[[ClientRecord], IssuedToken]) -> TokenResponse:
    """The answer to a well-formed request whose credentials were checked: the client they
    belong to, or ``None``."""
    if client is None:
        return invalid_client(_AUTHENTICATION_FAILED)
    token = issue(client)
    return TokenResponse(
        status=200,
        body={"access_token": token.access_token, "token_type": "Bearer", "expires_in": token.expires_in},
        headers=dict(NO_STORE_HEADERS),
    )


def error_response(error: str, description: str, status: int = 400) -> TokenResponse:
    """An RFC 6749 §5.2 error; 401s carry ``WWW-Authenticate``, all carry ``no-store``."""
    headers = dict(NO_STORE_HEADERS)
    if status == 401:
        headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    return TokenResponse(status=status, body={"error": error, "error_description": description}, headers=headers)


def invalid_request(description: str) -> TokenResponse:
    return error_response("invalid_request", description)


def invalid_client(description: str) -> TokenResponse:
    return error_response("invalid_client", description, status=401)


def too_many_requests(description: str, retry_after_seconds: int) -> TokenResponse:
    """429 (RFC 6585 §4): a rate limit refused the request; ``Retry-After`` says when to retry."""
    answer = error_response("too_many_requests", description, status=429)
    answer.headers["Retry-After"] = str(retry_after_seconds)
    return answer


def temporarily_unavailable(description: str, retry_after_seconds: int = 1) -> TokenResponse:
    """503: the server cannot check credentials now (its secret-hashing pool is full)."""
    answer = error_response("temporarily_unavailable", description, status=503)
    answer.headers["Retry-After"] = str(retry_after_seconds)
    return answer


def _check_grant_type(form: Mapping[str, str]) -> TokenResponse | None:
    grant_type = form.get("grant_type")
    if grant_type is None:
        return invalid_request("the grant_type parameter is missing; send grant_type=client_credentials")
    if grant_type != GRANT_TYPE:
        return error_response(
            "unsupported_grant_type",
            f"grant_type {_shown(grant_type)} is not supported; this endpoint supports only grant_type={GRANT_TYPE}",
        )
    return None


def _client_credentials(form: Mapping[str, str], authorization_header: str | None) -> ClientCredentials | TokenResponse:
    """The client's credentials, from HTTP Basic or the body (§2.3.1), or the error to answer."""
    basic = _basic_credentials(authorization_header)
    credentials: ClientCredentials | TokenResponse
    if basic is None:
        credentials = _body_credentials(form)
    elif isinstance(basic, TokenResponse):
        credentials = basic
    elif "client_secret" in form:
        credentials = invalid_request(
            "the client authenticated with both HTTP Basic and client_secret in "
            "the body; use exactly one method (RFC 6749 §2.3.1)"
        )
    elif form.get("client_id", basic.client_id) != basic.client_id:
        credentials = invalid_request("the client_id in the body differs from the one in HTTP Basic")
    else:
        credentials = basic
    if isinstance(credentials, ClientCredentials) and (
        max(len(credentials.client_id), len(credentials.client_secret)) > _MAX_CREDENTIAL_LENGTH
    ):
        # Nothing we issue is this long: refuse without spending a hash on it.
        return invalid_client(_AUTHENTICATION_FAILED)
    return credentials


def _body_credentials(form: Mapping[str, str]) -> ClientCredentials | TokenResponse:
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    if client_id is None and client_secret is None:
        return invalid_client(
            "no client authentication was included; send client_id and client_secret in the body, or use HTTP Basic"
        )
    if client_id is None:
        return invalid_request("the client_id parameter is missing")
    if client_secret is None:
        return invalid_client("the client_secret parameter is missing; this endpoint only serves confidential clients")
    return ClientCredentials(client_id, client_secret)


def _basic_credentials(authorization_header: str | None) -> ClientCredentials | TokenResponse | None:
    """The client's HTTP Basic credentials (§2.3.1), none, or the error to answer."""
    if authorization_header is None or not authorization_header.strip():
        return None
    scheme, _, encoded = authorization_header.strip().partition(" ")
    if scheme.lower() != "basic":
        return invalid_client(
            f"the {_shown(scheme)} authentication scheme is not supported here; "
            "use HTTP Basic or client_id and client_secret in the body"
        )
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return invalid_client("the HTTP Basic credentials are not valid base64 of 'client_id:client_secret'")
    user, colon, password = decoded.partition(":")
    if not colon:
        return invalid_client("the HTTP Basic credentials lack the ':' between client_id and client_secret")
    client_id, client_secret = unquote_plus(user), unquote_plus(password)
    if not client_id or not client_secret:
        return invalid_client("the HTTP Basic credentials need both a client_id and a client_secret")
    return ClientCredentials(client_id, client_secret)


def _shown(value: str) -> str:
    """A caller-supplied value, cut short and without control characters, for a message."""
    return repr("".join(character for character in value[:60] if character.isprintable()))
