"""HTTP routes of the token service: ``POST /oauth2/token`` and ``GET /.well-known/jwks.json``.

The protocol lives in :mod:`uvm_reporting.auth.client_credentials`; this module only turns
an HTTP request into its inputs and its answer into a response.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from uvm_reporting.api.audit_events import TokenRequestAudit
from uvm_reporting.application.audit import AuthFailures
from uvm_reporting.auth.access_tokens import AccessTokens, IssuedToken
from uvm_reporting.auth.api_client_credentials import authenticate_client
from uvm_reporting.auth.client_credentials import TokenResponse, handle_token_request, invalid_request
from uvm_reporting.database.api_clients import ClientRecord

logger = logging.getLogger(__name__)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# A token request has a handful of short fields; these bounds keep a hostile body small.
_MAX_FIELDS = 16
_MAX_FIELD_BYTES = 4096


def token_routes(engine: Engine, tokens: AccessTokens, auth_failures: AuthFailures | None = None) -> list[BaseRoute]:
    """The token endpoint and the public keys that verify its tokens. Tokens issued, and
    refusals of known clients (``auth_failures``), go to the audit log."""
    failures = auth_failures or AuthFailures(engine)

    def authenticate(client_id: str, client_secret: str) -> ClientRecord | None:
        return authenticate_client(engine, client_id, client_secret)

    def issue(client: ClientRecord) -> IssuedToken:
        logger.info("issued an access token to client %s of account %s", client.client_id, client.account_id)
        return tokens.issue(client.client_id, client.account_id)

    async def token_endpoint(request: Request) -> Response:
        audit = TokenRequestAudit(engine, failures, request.scope)
        answer = await _parse_and_handle(request, audit.authenticate(authenticate), audit.issue(issue))
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
    authenticate: Callable[[str, str], ClientRecord | None],
    issue: Callable[[ClientRecord], IssuedToken],
) -> TokenResponse:
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
    # Argon2 verification and the database query block: keep them off the event loop.
    return await run_in_threadpool(
        handle_token_request, dict(pairs), request.headers.get("authorization"), authenticate, issue
    )
