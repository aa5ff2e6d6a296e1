"""What the HTTP routes record in the audit log, with the request's source IP and request id.

Authentication failures are recorded only for known API clients, at most once a minute per
client per process (application/audit.py says why); the unverified content of a refused token
is never used. Writes that change nothing else happen after the answer is sent (a background
task), so a refused token request takes as long whether its client exists or not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.types import Scope

from uvm_reporting.api.access_log import request_id_of
from uvm_reporting.application.audit import AuditLog, AuthFailures
from uvm_reporting.auth.access_tokens import IssuedToken
from uvm_reporting.database.api_clients import ClientRecord, get_client
from uvm_reporting.domain.audit import Action, Actor, AuditEvent
from uvm_reporting.domain.runs import RunRecord

log = logging.getLogger(__name__)


def source_ip_of(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def client_actor(client_id: str, scope: Scope) -> Actor:
    """The API client ``client_id`` acting through the request of ``scope``."""
    request_id = request_id_of(scope)
    return Actor.api_client(
        client_id, source_ip=source_ip_of(scope), request_id=None if request_id == "-" else request_id
    )


class TokenRequestAudit:
    """What one token request records: the token issued (before the answer), or the refusal of
    a known client (after it: ``after_answer``, so a refusal takes as long whether the client
    exists or not)."""

    def __init__(self, engine: Engine, failures: AuthFailures, scope: Scope) -> None:
        self._engine = engine
        self._failures = failures
        self._scope = scope
        self._refused: str | None = None

    def authenticate(
        self, inner: Callable[[str, str], ClientRecord | None]
    ) -> Callable[[str, str], ClientRecord | None]:
        def authenticate(client_id: str, client_secret: str) -> ClientRecord | None:
            client = inner(client_id, client_secret)
            if client is None:
                self._refused = client_id
            return client

        return authenticate

    def issue(self, inner: Callable[[ClientRecord], IssuedToken]) -> Callable[[ClientRecord], IssuedToken]:
        def issue(client: ClientRecord) -> IssuedToken:
            issued = inner(client)
            record_token_issued(
                AuditLog(self._engine), client.client_id, client.account_id, issued.expires_in, self._scope
            )
            return issued

        return issue

    def after_answer(self) -> BackgroundTask | None:
        if self._refused is None:
            return None
        return BackgroundTask(record_token_refused, self._engine, self._failures, self._refused, self._scope)


def record_token_issued(audit: AuditLog, client_id: str, account_id: str, expires_in: int, scope: Scope) -> None:
    _safely(
        audit,
        AuditEvent(
            account_id,
            Action.TOKEN_ISSUED,
            client_actor(client_id, scope),
            "api_client",
            client_id,
            {"expiresIn": expires_in},
        ),
    )


def record_token_refused(engine: Engine, failures: AuthFailures, client_id: str, scope: Scope) -> None:
    """A token request with ``client_id`` was refused: record it if that client exists."""
    try:
        client = get_client(engine, client_id)
    except Exception:
        log.exception("could not look up the client of a refused token request")
        return
    if client is None:
        return
    reason = "revoked_client" if not client.active else "invalid_secret"
    failures.failed(
        client.account_id, client.client_id, client_actor(client.client_id, scope), endpoint="token", reason=reason
    )


def record_bearer_refused(failures: AuthFailures, account_id: str, client_id: str, scope: Scope) -> None:
    """A verified token of a revoked client was refused by the API."""
    failures.failed(account_id, client_id, client_actor(client_id, scope), endpoint="graphql", reason="revoked_client")


def record_download(audit: AuditLog, run: RunRecord, scope: Scope) -> None:
    """A download of ``run``'s result through its link. The link acts for the client it was
    issued to (``requested_by``); the source IP says who presented it."""
    request_id = request_id_of(scope)
    actor = Actor.api_client(
        run.requested_by or "-", source_ip=source_ip_of(scope), request_id=None if request_id == "-" else request_id
    )
    _safely(
        audit,
        AuditEvent(
            run.account_id,
            Action.RUN_DOWNLOADED,
            actor,
            "run",
            run.id,
            {"reportId": run.report_id, "format": run.format, "sizeBytes": run.size_bytes, "via": "download_link"},
        ),
    )


def _safely(audit: AuditLog, event: AuditEvent) -> None:
    try:
        audit.record(event)
    except Exception:  # the answer was given; a lost audit row is logged, never raised
        log.exception("could not record the audit event %s of account %s", event.action, event.account_id)
