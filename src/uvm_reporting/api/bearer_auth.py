"""RFC 6750 bearer-token checks for the API: who is calling, and is their client still active.

Both answers are remembered so that a status poll costs no signature check and no client
lookup: a token's verification until its ``exp`` (:class:`AccessTokens`), and whether its client
is active (not revoked, its account not disabled) for ``ACCESS_TTL_SECONDS``
(:class:`ActiveClients`). A revoked client is therefore refused by every API process at most that
long after ``clients revoke`` (or ``accounts disable``); so are the download links issued to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.responses import JSONResponse

from uvm_reporting.auth.access_tokens import AccessClaims, AccessTokens, InvalidToken
from uvm_reporting.database.api_clients import ClientRecord, get_active_client
from uvm_reporting.expiring_cache import ACCESS_TTL_SECONDS, ExpiringCache, NotInMemory

REALM = "uvm-reporting"
_NOT_CACHED = object()


@dataclass(frozen=True, slots=True)
class Caller:
    client_id: str
    account_id: str


class ActiveClients:
    """The account of each active API client (not revoked, its account not disabled), each answer
    (revoked or unknown too) trusted for ``ttl_seconds``. Only clients named by a verified token
    or a signed download link are looked up: the cache's keys are not the caller's to choose."""

    def __init__(
        self, lookup: Callable[[str], ClientRecord | None], cache: ExpiringCache[str, str | None] | None = None
    ) -> None:
        self._lookup = lookup
        self._cache: ExpiringCache[str, str | None] = cache if cache is not None else ExpiringCache()

    @classmethod
    def of(cls, engine: Engine, *, ttl_seconds: float = ACCESS_TTL_SECONDS) -> ActiveClients:
        return cls(lambda client_id: get_active_client(engine, client_id), ExpiringCache(ttl_seconds))

    def account_of(self, client_id: str, *, memory_only: bool = False) -> str | None:
        """The account of ``client_id`` if it exists and is not revoked, else None. With
        ``memory_only``, NotInMemory when the answer is not cached."""
        if memory_only:
            cached = self._cache.get(client_id, _NOT_CACHED)
            if cached is _NOT_CACHED:
                raise NotInMemory
            return cached  # type: ignore[return-value]
        return self._cache.get_or_load(client_id, lambda: self._account_of(client_id))

    def _account_of(self, client_id: str) -> str | None:
        client = self._lookup(client_id)
        return client.account_id if client is not None and client.active else None


class BearerAuthError(Exception):
    """Carries the 401 response RFC 6750 §3 prescribes."""

    def __init__(self, description: str | None, *, verified: Caller | None = None) -> None:
        super().__init__(description or "missing bearer token")
        self.description = description
        self.verified = verified
        """The caller named by a token that verified but is refused all the same (its client was
        revoked): its account may be told of it (the audit log). None for any other refusal."""

    def response(self) -> JSONResponse:
        if self.description is None:
            # §3.1: a request without credentials gets no error code, only the challenge.
            challenge = f'Bearer realm="{REALM}"'
            message = "Authentication required: send 'Authorization: Bearer <access token>' from /oauth2/token."
        else:
            safe = _header_safe(self.description)
            challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{safe}"'
            message = f"Invalid access token: {self.description}"
        return JSONResponse(
            {"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]},
            status_code=401,
            headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
        )


def _header_safe(text: str) -> str:
    """``text`` in the characters RFC 6750 §3 allows in ``error_description`` (printable ASCII
    but ``"`` and ``\\``): a header value that always encodes, and cannot be broken out of."""
    return "".join(("'" if c == '"' else "/" if c == "\\" else c) if " " <= c <= "~" else "?" for c in text)


def authenticate_bearer(
    authorization: str | None, tokens: AccessTokens, clients: ActiveClients, *, memory_only: bool = False
) -> Caller:
    """The caller of a request with ``authorization``, or BearerAuthError (with ``memory_only``,
    NotInMemory when the client's state is not cached)."""
    if not authorization:
        raise BearerAuthError(None)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BearerAuthError("the Authorization header must be 'Bearer <access token>'")
    try:
        claims: AccessClaims = tokens.verify(token.strip())
    except InvalidToken as error:
        raise BearerAuthError(error.message) from None
    if clients.account_of(claims.client_id, memory_only=memory_only) != claims.account_id:
        raise BearerAuthError(
            "the API client of this token was revoked or its account disabled; ask for new client credentials",
            verified=Caller(client_id=claims.client_id, account_id=claims.account_id),
        )
    return Caller(client_id=claims.client_id, account_id=claims.account_id)
