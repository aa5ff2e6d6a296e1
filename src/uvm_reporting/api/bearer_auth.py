"""RFC 6750 bearer-token checks for the API: who is calling, and is their client still active."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.responses import JSONResponse

from uvm_reporting.auth.access_tokens import AccessClaims, AccessTokens, InvalidToken
from uvm_reporting.store.api_clients import get_active_client

REALM = "uvm-reporting"


@dataclass(frozen=True, slots=True)
class Caller:
    client_id: str
    account_id: str


class BearerAuthError(Exception):
    """Carries the 401 response RFC 6750 §3 prescribes."""

    def __init__(self, description: str | None) -> None:
        super().__init__(description or "missing bearer token")
        self.description = description

    def response(self) -> JSONResponse:
        if self.description is None:
            # §3.1: a request without credentials gets no error code, only the challenge.
            challenge = f'Bearer realm="{REALM}"'
            message = "Authentication required: send 'Authorization: Bearer <access token>' from /oauth2/token."
        else:
            safe = self.description.replace('"', "'")
            challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{safe}"'
            message = f"Invalid access token: {self.description}"
        return JSONResponse(
            {"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]},
            status_code=401,
            headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
        )


def authenticate_bearer(authorization: str | None, tokens: AccessTokens, engine: Engine) -> Caller:
    """The caller of a request with ``authorization``, or BearerAuthError."""
    if not authorization:
        raise BearerAuthError(None)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BearerAuthError("the Authorization header must be 'Bearer <access token>'")
    try:
        claims: AccessClaims = tokens.verify(token.strip())
    except InvalidToken as error:
        raise BearerAuthError(error.message) from None
    client = get_active_client(engine, claims.client_id)
    if client is None or client.account_id != claims.account_id:
        raise BearerAuthError("the API client of this token was revoked; ask for new client credentials")
    return Caller(client_id=claims.client_id, account_id=claims.account_id)
