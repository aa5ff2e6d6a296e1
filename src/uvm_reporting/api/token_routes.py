"""HTTP routes of the token service: ``POST /oauth2/token`` and ``GET /.well-known/jwks.json``.

The protocol lives in :mod:`uvm_reporting.auth.client_credentials`; this module turns an HTTP
request into its inputs and its answer into a response, and spends the expensive part (the
database lookup and the Argon2 verification) only on requests that earned it, in this order:

1. the request's shape (form, grant type, credentials present): 400/401, costs nothing;
2. the rate limits per source IP and per client id (application/rate_limits.py): 429 with
   ``Retry-After``, costs a counter increment;
3. a place in the secret-hashing pool (auth/hashing_pool.py): 503 with ``Retry-After`` when
   its threads and queue are full, so a flood from many addresses cannot hold the threads
   that downloads and other requests need;
4. the lookup, the verification and the token, on that pool.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from functools import partial

from limits.storage import MemoryStorage
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from uvm_reporting.api.audit_events import TokenRequestAudit
from uvm_reporting.application.audit import AuthFailures
from uvm_reporting.application.rate_limits import RateLimits
from uvm_reporting.auth.access_tokens import AccessTokens, IssuedToken
from uvm_reporting.auth.api_client_credentials import authenticate_client
from uvm_reporting.auth.client_credentials import (
    ClientCredentials,
    TokenResponse,
    invalid_request,
    read_token_request,
    temporarily_unavailable,
    token_answer,
    too_many_requests,
)
from uvm_reporting.auth.hashing_pool import HashingPool, HashingPoolBusy
from uvm_reporting.database.api_clients import ClientRecord
from uvm_reporting.errors import RateLimited
from uvm_reporting.metrics import TOKENS_ISSUED

logger = logging.getLogger(__name__)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# A token request has a handful of short fields; these bounds keep a hostile body small.
_MAX_FIELDS = 16
_MAX_FIELD_BYTES = 4096


def token_routes(
    engine: Engine,
    tokens: AccessTokens,
    auth_failures: AuthFailures | None = None,
    *,
    rate_limits: RateLimits | None = None,
    hashing: HashingPool | None = None,
) -> list[BaseRoute]:
    """The token endpoint and the public keys that verify its tokens. Tokens issued, and
    refusals of known clients (``auth_failures``), go to the audit log.

    Without ``rate_limits``, the default limits counted in this process's memory; without
    ``hashing``, a pool of the default size.
    """
    failures = auth_failures or AuthFailures(engine)
    limits = rate_limits if rate_limits is not None else RateLimits(MemoryStorage())
    pool = hashing if hashing is not None else HashingPool()

    def issue(client: ClientRecord) -> IssuedToken:
        logger.info("issued an access token to client %s of account %s", client.client_id, client.account_id)
        issued = tokens.issue(client.client_id, client.account_id)
        TOKENS_ISSUED.inc()
        return issued

    async def token_endpoint(request: Request) -> Response:
        audit = TokenRequestAudit(engine, failures, request.scope)
        authenticate = audit.authenticate(partial(authenticate_client, engine))
        issue_audited = audit.issue(issue)

        def authenticate_and_issue(credentials: ClientCredentials) -> TokenResponse:
            return token_answer(authenticate(credentials.client_id, credentials.client_secret), issue_audited)

        answer = await _parse_and_handle(request, limits, pool, authenticate_and_issue)
        if answer.status != 200:
            logger.info("token request refused: %s %s", answer.status, answer.body.get("error"))
        return JSONResponse(
            answer.body, status_code=answer.status, headers=answer.headers, background=audit.after_answer()
        )

    async def jwks_endpoint(_request: Request) -> Response:
        return JSONResponse(tokens.jwks(), headers={"Cache-Control": "public, max-age=300"})

    return [
        Route("/oauth2/token", token_endpoint, methods=["POST"], name="oauth2_token"),
        Route("/.well-known/jwks.json", jwks_endpoint, methods=["GET"], name="jwks"),
    ]


async def _parse_and_handle(
    request: Request,
    limits: RateLimits,
    pool: HashingPool,
    authenticate_and_issue: Callable[[ClientCredentials], TokenResponse],
) -> TokenResponse:
    credentials = await _read_credentials(request)
    if isinstance(credentials, TokenResponse):
        return credentials
    source_ip = request.client.host if request.client is not None else None
    try:
        if limits.in_memory:
            limits.check_token_request(credentials.client_id, source_ip)
        else:  # a database or Redis round trip: off the event loop
            await run_in_threadpool(limits.check_token_request, credentials.client_id, source_ip)
    except RateLimited as error:
        return too_many_requests(error.message, error.retry_after_seconds)
    try:
        # The database query and the Argon2 verification block: on the hashing pool, off the event loop.
        return await pool.run(authenticate_and_issue, credentials)
    except HashingPoolBusy:
        return temporarily_unavailable("the server is checking too many client credentials at once; retry shortly")


async def _read_credentials(request: Request) -> ClientCredentials | TokenResponse:
    """The credentials of a well-formed token request, or the error to answer; no hash."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM_CONTENT_TYPE:
        return invalid_request(f"the token request must be sent as {FORM_CONTENT_TYPE} (RFC 6749 §4.4.2)")
    try:
        form = await request.form(max_fields=_MAX_FIELDS, max_part_size=_MAX_FIELD_BYTES)
    except (HTTPException, MultiPartException):
        return invalid_request("the form body is malformed or too large")
    pairs = [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
    repeated = sorted(name[:40] for name, count in Counter(name for name, _ in pairs).items() if count > 1)
    if repeated:
        return invalid_request(f"parameters sent more than once: {', '.join(repeated)} (RFC 6749 §3.2)")
    return read_token_request(dict(pairs), request.headers.get("authorization"))
