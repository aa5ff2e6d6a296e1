"""``POST /api/graphql``: bearer auth, the ``accountId`` header, cached documents, execution.

The core is synchronous (SQLAlchemy); the whole request runs in the thread pool so a slow
database never blocks the event loop.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    execute_sync,
    parse,
    validate,
)
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from uvm_reporting.api.bearer_auth import BearerAuthError, Caller, authenticate_bearer
from uvm_reporting.api.graphql_schema import GraphQLContext
from uvm_reporting.application.report_runs import ReportRuns
from uvm_reporting.auth.access_tokens import AccessTokens
from uvm_reporting.errors import UvmReportingError

log = logging.getLogger(__name__)

MAX_QUERY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A parsed and validated document, cached by its text: clients send the same few."""

    document: DocumentNode | None
    errors: tuple[GraphQLError, ...]
    root_fields: tuple[str, ...]


class GraphQLEndpoint:
    def __init__(self, schema: GraphQLSchema, tokens: AccessTokens, engine: Engine,
                 report_runs: ReportRuns) -> None:
        self._schema = schema
        self._tokens = tokens
        self._engine = engine
        self._report_runs = report_runs
        self.prepare = lru_cache(maxsize=512)(self._prepare)

    def routes(self) -> list[BaseRoute]:
        return [Route("/api/graphql", self.handle, methods=["POST"])]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        return await run_in_threadpool(self._handle_sync, request.headers, body)

    def _handle_sync(self, headers: Any, body: bytes) -> Response:
        try:
            caller = authenticate_bearer(headers.get("authorization"), self._tokens, self._engine)
        except BearerAuthError as error:
            return error.response()
        try:
            query, variables, operation_name = _read_request(body)
        except _BadRequestError as error:
            return _error_response(str(error), "BAD_REQUEST", 400)
        prepared = self.prepare(query)
        if prepared.errors:
            code = "GRAPHQL_PARSE_FAILED" if prepared.document is None else "GRAPHQL_VALIDATION_FAILED"
            return JSONResponse({"errors": [_format_error(e, code) for e in prepared.errors]}, status_code=400)
        graphql_name = headers.get("graphqlname")
        log.info("graphql %s account=%s client=%s graphqlname=%s", ",".join(prepared.root_fields),
                 caller.account_id, caller.client_id, graphql_name)
        if graphql_name and graphql_name not in prepared.root_fields:
            log.info("graphqlname %r does not name a field of the operation (%s); ignored", graphql_name,
                     ",".join(prepared.root_fields))
        account_error = _check_account_header(headers.get("accountid"), caller)
        if account_error is not None:
            return JSONResponse({"data": None, "errors": [account_error]})
        assert prepared.document is not None
        result = execute_sync(
            self._schema,
            prepared.document,
            variable_values=variables,
            operation_name=operation_name,
            context_value=GraphQLContext(caller.account_id, caller.client_id, self._report_runs),
        )
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [_format_execution_error(error) for error in result.errors]
        return JSONResponse(payload)

    def _prepare(self, query: str) -> PreparedDocument:
        try:
            document = parse(query)
        except GraphQLError as error:
            return PreparedDocument(None, (error,), ())
        errors = validate(self._schema, document)
        return PreparedDocument(document, tuple(errors), _root_fields(document))


class _BadRequestError(Exception):
    pass


def _read_request(body: bytes) -> tuple[str, dict[str, Any] | None, str | None]:
    if len(body) > MAX_QUERY_BYTES:
        raise _BadRequestError(f"The request body is larger than {MAX_QUERY_BYTES} bytes.")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _BadRequestError(f"The request body is not valid JSON: {error}.") from None
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


def _check_account_header(header: str | None, caller: Caller) -> dict[str, Any] | None:
    if not header:
        return _error_body("The accountId header is required: send your account id, as in your platform URL.",
                           "BAD_USER_INPUT")
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
        return formatted
    if original is None:  # coercion of variables and arguments: the caller's input
        return _format_error(error, "BAD_USER_INPUT")
    log.error("resolver failed", exc_info=original)
    formatted = _format_error(error, "INTERNAL_SERVER_ERROR")
    formatted["message"] = "Internal server error; the operator log has the details."
    return formatted
