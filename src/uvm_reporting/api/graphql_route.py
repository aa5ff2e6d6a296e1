"""``POST /api/graphql``: bearer auth, the ``accountId`` header, cached documents, execution.

The core is synchronous (SQLAlchemy). A plain status poll (api/direct_queries.py) is first tried
on the event loop in memory-only mode: when the in-process caches answer it (a verified token,
an active client, the run's status: application/report_runs.py), it is answered there, without
I/O and without a thread hop, which is most of a cached poll's cost. Everything else (and a
poll the caches cannot answer) runs on a thread of the endpoint's own pool, through
graphql-core's executor unless it is a plain poll, so a slow database never blocks the event
loop. That pool is a plain ``concurrent.futures`` executor: its hop costs about half of anyio's
``to_thread`` (no capacity limiter or cancel scopes).

A document is parsed and validated once per text, against the cost limits of
api/graphql_limits.py before the specified rules, and only on a handler thread: the event loop
only looks documents up in that cache, so a big or new document never stalls other requests.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    execute_sync,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from uvm_reporting.api.access_log import logging_enabled, note
from uvm_reporting.api.audit_events import record_bearer_refused
from uvm_reporting.api.bearer_auth import ActiveClients, BearerAuthError, Caller, authenticate_bearer
from uvm_reporting.api.direct_queries import DirectQuery, plan_direct_query
from uvm_reporting.api.error_answers import unavailable
from uvm_reporting.api.graphql_limits import (
    PAGE_SIZE_TOO_LARGE,
    GraphQLLimits,
    check_page_sizes,
    page_size_variables,
    parse_document,
    validate_document,
)
from uvm_reporting.api.graphql_schema import DIRECT_QUERIES, GraphQLContext
from uvm_reporting.application.audit import AuthFailures
from uvm_reporting.application.report_runs import ReportRuns
from uvm_reporting.auth.access_tokens import AccessTokens
from uvm_reporting.database.engine import database_unavailable
from uvm_reporting.errors import RateLimited, UvmReportingError
from uvm_reporting.expiring_cache import NotInMemory

log = logging.getLogger(__name__)

# Requests handled at once per process. The work is mostly Python (one GIL): more threads would
# not answer faster, only hold more database connections (SQLAlchemy's pool holds 15, and the
# worker and scheduler threads of `serve` need theirs).
HANDLER_THREADS = 12
# Valid documents kept prepared, by text.
PREPARED_DOCUMENTS = 512


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A parsed and validated document, cached by its text: clients send the same few."""

    document: DocumentNode | None
    errors: tuple[GraphQLError, ...]
    root_fields: tuple[str, ...]
    direct: DirectQuery | None = None
    """How to answer it without the executor (api/direct_queries.py), when it is that simple."""
    page_size_variables: tuple[tuple[str, int | None], ...] = ()
    """The variables that page-size arguments take, with their defaults (checked per request)."""

    @property
    def fields_text(self) -> str:
        return ",".join(self.root_fields)


class PreparedDocuments:
    """The valid documents prepared last, by text: looked up on the event loop, prepared (parsed
    and validated) on handler threads. A refused document is not kept, so varied junk cannot
    evict the documents clients send again and again; preparing it again costs little, as the
    limits stop the parser and the validation early.

    A lookup is one dict read, without a lock (a plain status poll makes one on the event loop);
    so a hit does not reorder, and the oldest document is evicted first. Only preparing threads
    write, under a lock.

    One document is prepared at a time: preparing is pure Python, so more threads would not
    prepare faster, only take the GIL from the event loop more often. A flood of new documents
    waits here, on handler threads, while the loop and the cached documents are answered."""

    def __init__(self, prepare: Callable[[str], PreparedDocument], size: int) -> None:
        self._prepare = prepare
        self._size = size
        self._lock = threading.Lock()
        self._preparing = threading.Lock()
        self._documents: dict[str, PreparedDocument] = {}
        self.hits = 0
        self.misses = 0

    def cached(self, query: str) -> PreparedDocument | None:
        prepared = self._documents.get(query)
        if prepared is not None:
            self.hits += 1  # a statistic: increments of two threads may merge
        return prepared

    def __call__(self, query: str) -> PreparedDocument:
        prepared = self.cached(query)
        if prepared is not None:
            return prepared
        with self._preparing:
            prepared = self.cached(query)  # prepared meanwhile by another thread
            if prepared is not None:
                return prepared
            prepared = self._prepare(query)
        with self._lock:
            self.misses += 1
            if not prepared.errors:
                self._documents[query] = prepared
                if len(self._documents) > self._size:
                    del self._documents[next(iter(self._documents))]
        return prepared


class GraphQLEndpoint:
    def __init__(
        self,
        schema: GraphQLSchema,
        tokens: AccessTokens,
        clients: ActiveClients,
        report_runs: ReportRuns,
        *,
        limits: GraphQLLimits | None = None,
        introspection: bool = True,
        auth_failures: AuthFailures | None = None,
    ) -> None:
        """``limits``: what one document may cost (api/graphql_limits.py); ``introspection``:
        False refuses every field of the introspection types (the production profile);
        ``auth_failures``: where a verified token of a revoked client is recorded."""
        self._auth_failures = auth_failures
        self._schema = schema
        self._tokens = tokens
        self._clients = clients
        self._report_runs = report_runs
        self._limits = limits or GraphQLLimits()
        self._introspection = introspection
        self.prepare = PreparedDocuments(self._prepare, PREPARED_DOCUMENTS)
        self._executor: ThreadPoolExecutor | None = None  # made on the first request (event loop only)

    def routes(self) -> list[BaseRoute]:
        return [Route("/api/graphql", self.handle, methods=["POST"])]

    def close(self) -> None:
        """Let the handler threads end once the requests they run are answered (app shutdown)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        answered = self._respond(request.headers, body, request.scope, memory_only=True)
        if answered is not None:
            return answered
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=HANDLER_THREADS, thread_name_prefix="graphql")
        # In the request's context, so that a log line written on the handler thread names its
        # request id (log_lines.REQUEST_ID).
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, context.run, self._handle_sync, request.headers, body, request.scope
        )

    def _handle_sync(self, headers: Any, body: bytes, scope: Scope) -> Response:
        response = self._respond(headers, body, scope, memory_only=False)
        assert response is not None  # only memory-only mode declines
        return response

    def _respond(self, headers: Any, body: bytes, scope: Scope, *, memory_only: bool) -> Response | None:
        """The response; with ``memory_only``, None when answering would need I/O."""
        try:
            caller = authenticate_bearer(
                headers.get("authorization"), self._tokens, self._clients, memory_only=memory_only
            )
        except NotInMemory:
            return None
        except BearerAuthError as error:
            return self._refused(error, scope, memory_only=memory_only)
        try:
            query, variables, operation_name = _read_request(body)
        except _BadRequestError as error:
            return _error_response(str(error), "BAD_REQUEST", 400)
        prepared = self._prepared(query, variables, memory_only=memory_only)
        if not isinstance(prepared, PreparedDocument):
            return prepared  # refused, or None: a document not prepared yet is, on a handler thread
        if memory_only and prepared.direct is None:
            return None  # only a plain status poll is answered on the event loop
        return self._execute(
            prepared, caller, variables, operation_name, headers=headers, scope=scope, memory_only=memory_only
        )

    def _prepared(
        self, query: str, variables: dict[str, Any] | None, *, memory_only: bool
    ) -> PreparedDocument | Response | None:
        """The request's document, prepared and within the limits, or the answer that refuses it;
        with ``memory_only``, None when the document is not prepared yet: parsing and validating
        happen on a handler thread, never on the event loop."""
        prepared = self.prepare.cached(query) if memory_only else self.prepare(query)
        if prepared is None:
            return None
        if prepared.errors:
            code = "GRAPHQL_PARSE_FAILED" if prepared.document is None else "GRAPHQL_VALIDATION_FAILED"
            return JSONResponse(
                {"errors": [_format_error(e, (e.extensions or {}).get("code", code)) for e in prepared.errors]},
                status_code=400,
            )
        if prepared.page_size_variables and (
            too_large := check_page_sizes(dict(prepared.page_size_variables), variables, self._limits)
        ):
            return JSONResponse({"errors": [_format_error(too_large, PAGE_SIZE_TOO_LARGE)]}, status_code=400)
        return prepared

    def _refused(self, error: BearerAuthError, scope: Scope, *, memory_only: bool) -> Response | None:
        """The 401; a verified token of a revoked client is recorded in its account's audit log."""
        if error.verified is not None and self._auth_failures is not None:
            if memory_only:
                return None  # the audit write happens on a handler thread
            record_bearer_refused(self._auth_failures, error.verified.account_id, error.verified.client_id, scope)
        return error.response()

    def _execute(
        self,
        prepared: PreparedDocument,
        caller: Caller,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        *,
        headers: Any,
        scope: Scope,
        memory_only: bool,
    ) -> Response | None:
        account_error = _check_account_header(headers.get("accountid"), caller)
        result = None
        data = None
        if account_error is None:
            assert prepared.document is not None
            context = GraphQLContext(
                caller.account_id, caller.client_id, self._report_runs, memory_only=memory_only, scope=scope
            )
            try:
                data = _answer_directly(prepared.direct, context, variables, operation_name)
            except NotInMemory:
                return None
            if data is None:
                if memory_only:
                    return None  # the executor runs on a handler thread
                result = execute_sync(
                    self._schema,
                    prepared.document,
                    variable_values=variables,
                    operation_name=operation_name,
                    context_value=context,
                )
        if logging_enabled():
            # On the request's one access-log line. A graphqlname that names no field of the
            # operation is only logged, as such.
            graphql_name = headers.get("graphqlname")
            mismatch = (
                " (not a field of the operation; ignored)"
                if graphql_name and graphql_name not in prepared.root_fields
                else ""
            )
            note(
                scope,
                f"graphql={prepared.fields_text} account={caller.account_id} client={caller.client_id} "
                f"graphqlname={graphql_name!r}{mismatch}",
            )
        if data is not None:
            return JSONResponse({"data": data})
        if result is None:
            return JSONResponse({"data": None, "errors": [account_error]})
        if result.errors and any(database_unavailable(error.original_error or error) for error in result.errors):
            return unavailable(scope)  # not a GraphQL error: the whole request may be sent again
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [_format_execution_error(error) for error in result.errors]
        return JSONResponse(payload)

    def _prepare(self, query: str) -> PreparedDocument:
        try:
            document = parse_document(query, self._limits)
        except GraphQLError as error:
            return PreparedDocument(None, (error,), ())
        errors = validate_document(self._schema, document, self._limits, introspection=self._introspection)
        root_fields = _root_fields(document)
        return PreparedDocument(
            document,
            tuple(errors),
            root_fields,
            direct=None if errors else plan_direct_query(self._schema, document, DIRECT_QUERIES),
            page_size_variables=tuple(page_size_variables(document).items()),
        )


def _answer_directly(
    direct: DirectQuery | None, context: GraphQLContext, variables: dict[str, Any] | None, operation_name: str | None
) -> dict[str, Any] | None:
    """The ``data`` of a plain status poll, computed without the executor; None when the
    request needs the executor, which then names any error as it always has."""
    if direct is None or (arguments := direct.arguments(variables, operation_name)) is None:
        return None
    try:
        return {direct.response_key: direct.answer(context, **arguments)}
    except NotInMemory:
        raise
    except Exception:  # noqa: BLE001 - the executor runs it again and formats the error
        return None


class _BadRequestError(Exception):
    pass


def _read_request(body: bytes) -> tuple[str, dict[str, Any] | None, str | None]:
    # The body's size was checked before it was read (api/request_limits.py).
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _BadRequestError(f"The request body is not valid JSON: {error}.") from None
    except RecursionError:
        raise _BadRequestError("The request body nests JSON too deeply.") from None
    if _LONE_SURROGATE_ESCAPE.search(body) and not _encodable(payload):
        # "\ud800" alone is valid JSON but no UTF-8 text: it could be neither stored nor answered.
        raise _BadRequestError("The request body holds a \\u escape of a lone surrogate, which is not text.")
    if not isinstance(payload, dict):
        raise _BadRequestError('The request body must be a JSON object: {"query": ..., "variables": {...}}.')
    query = payload.get("query")
    if not isinstance(query, str) or not query.strip():
        raise _BadRequestError('The request body needs a "query" string holding the GraphQL document.')
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise _BadRequestError('"variables" must be a JSON object.')
    operation_name = payload.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise _BadRequestError('"operationName" must be a string.')
    return query, variables, operation_name


_LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _encodable(payload: object) -> bool:
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_account_header(header: str | None, caller: Caller) -> dict[str, Any] | None:
    if not header:
        return _error_body(
            "The accountId header is required: send your account id, as in your platform URL.", "BAD_USER_INPUT"
        )
    if header.strip() != caller.account_id:
        return _error_body(
            f"The accountId header ({header.strip()}) is not the account of this access token. Send the "
            "account id the API client belongs to, or use that account's client credentials.",
            "FORBIDDEN",
        )
    return None


def _root_fields(document: DocumentNode) -> tuple[str, ...]:
    return tuple(
        selection.name.value
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
        for selection in definition.selection_set.selections
        if isinstance(selection, FieldNode)
    )


def _error_body(message: str, code: str) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": code}}


def _error_response(message: str, code: str, status: int) -> JSONResponse:
    return JSONResponse({"errors": [_error_body(message, code)]}, status_code=status)


def _format_error(error: GraphQLError, code: str) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    formatted["extensions"] = {**(formatted.get("extensions") or {}), "code": code}
    return formatted


def _format_execution_error(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    if isinstance(original, UvmReportingError):
        formatted = _format_error(error, original.code)
        formatted["message"] = original.message
        if isinstance(original, RateLimited):
            formatted["extensions"]["retryAfter"] = original.retry_after_seconds
        return formatted
    if original is None or isinstance(original, GraphQLError):
        # Coercion of variables and arguments (graphql-core wraps a value's own GraphQLError):
        # the caller's input.
        return _format_error(error, "BAD_USER_INPUT")
    # The access-log line of the request names this error's code (api/error_answers.py).
    log.error("resolver failed at %s", ".".join(map(str, error.path or ())), exc_info=original)
    formatted = _format_error(error, "INTERNAL_SERVER_ERROR")
    formatted["message"] = "Internal server error; the operator log has the details."
    return formatted
