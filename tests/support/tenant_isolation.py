"""Attacks on tenant isolation, built from what the server exposes rather than from a fixed list.

Every field of ``Query`` and ``Mutation`` of the schema the server builds becomes an operation
whose arguments are filled generically: an argument that names an id (``id``, ``reportId``,
``runId``, any ``…Id``, in any input object too) gets the id under attack, the others a valid
value (a JSON argument gets a valid report definition). An argument of a type no filler knows
raises ``CannotAttack``, with what to add; so does an HTTP route nobody reviewed. So a field or
route added later is attacked as soon as it exists, or fails the test until someone says how.

Each answer is made comparable with ``normalized``: the ids sent replaced by a placeholder, so
that the answer for another account's id can be compared with the answer for an unknown id.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    is_leaf_type,
)
from graphql.pyutils import Undefined
from starlette.routing import BaseRoute, Route

from tests.support.reports import ALL_FINDINGS_REPORT

ANY_KIND = "any"
KINDS = ("report", "run", "client", "account")
"""Kinds of object an id argument may name, from its name: ``runId`` names a run."""

THROTTLED_CODES = frozenset(
    {"RATE_LIMITED", "TOO_MANY_REQUESTS", "QUOTA_EXCEEDED", "COST_LIMIT_EXCEEDED", "QUERY_TOO_COMPLEX"}
)
"""Error codes that refuse a request for its volume, not for what it names: such an answer
reveals nothing about an object, so it is a non-leak whatever the id."""


class CannotAttack(Exception):
    """An operation or route the generic attacks do not know how to fill: the message says what to add."""


@dataclass(frozen=True, slots=True)
class Target:
    """An object an attacker names by id: of another account, or a private one of its own."""

    label: str
    kind: str
    id: str


@dataclass(frozen=True, slots=True)
class Operation:
    """One root field of the schema, as a document that selects every leaf it can reach."""

    operation_type: str  # query | mutation
    name: str
    field: GraphQLField

    @property
    def label(self) -> str:
        return f"{self.operation_type} {self.name}"

    def id_arguments(self) -> list[str]:
        return [name for name, argument in self.field.args.items() if _names_ids(name, argument.type)]

    def request(self, target: Target | None) -> tuple[str, dict[str, Any]]:
        """The document and variables that send ``target``'s id in every id argument (None: no id)."""
        declared: list[str] = []
        passed: list[str] = []
        variables: dict[str, Any] = {}
        for name, argument in self.field.args.items():
            value = _argument_value(self.label, name, argument, target)
            if value is _OMIT:
                continue
            declared.append(f"${name}: {argument.type}")
            passed.append(f"{name}: ${name}")
            variables[name] = value
        header = f"{self.operation_type} Attack({', '.join(declared)})" if declared else self.operation_type
        arguments = f"({', '.join(passed)})" if passed else ""
        return f"{header} {{ {self.name}{arguments}{selection_of(self.field.type)} }}", variables


def operations(schema: GraphQLSchema) -> list[Operation]:
    """Every root field of the schema: its queries and its mutations."""
    found: list[Operation] = []
    for operation_type, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        if root is not None:
            found.extend(Operation(operation_type, name, root_field) for name, root_field in root.fields.items())
    if schema.subscription_type is not None:
        raise CannotAttack("The schema has subscriptions: teach tests/support/tenant_isolation.py to attack them.")
    return found


def selection_of(output_type: GraphQLOutputType, depth: int = 2) -> str:
    """A selection set of every leaf field (and objects' leaves, ``depth`` levels down)."""
    named = output_type
    while isinstance(named, GraphQLNonNull | GraphQLList):
        named = named.of_type
    if is_leaf_type(named):
        return ""
    if isinstance(named, GraphQLInterfaceType | GraphQLUnionType) or depth == 0:
        return " { __typename }"
    assert isinstance(named, GraphQLObjectType), named
    parts = ["__typename"]
    for name, child in named.fields.items():
        if any(isinstance(argument.type, GraphQLNonNull) for argument in child.args.values()):
            continue
        parts.append(name + selection_of(child.type, depth - 1))
    return " { " + " ".join(parts) + " }"


_OMIT = object()
_ID_NAME = re.compile(r"^(?P<kind>[a-z][A-Za-z]*?)(?:Id|Ids|_id|_ids)$")


def id_kind(name: str) -> str | None:
    """What an argument or input field named ``name`` names by id, or None when it is no id."""
    if name in ("id", "ids"):
        return ANY_KIND
    match = _ID_NAME.match(name)
    return match["kind"].lower() if match else None


def _names_ids(name: str, input_type: GraphQLInputType) -> bool:
    named = input_type
    while isinstance(named, GraphQLNonNull | GraphQLList):
        named = named.of_type
    if isinstance(named, GraphQLInputObjectType):
        return any(_names_ids(child, value.type) for child, value in named.fields.items())
    return id_kind(name) is not None and isinstance(named, GraphQLScalarType)


def _argument_value(where: str, name: str, argument: GraphQLArgument | GraphQLInputField, target: Target | None) -> Any:
    """The value an attack sends for one argument or input field, or ``_OMIT``."""
    required = isinstance(argument.type, GraphQLNonNull) and argument.default_value is Undefined
    kind = id_kind(name)
    if kind is not None and target is not None and _names_ids(name, argument.type):
        other_kind = kind != ANY_KIND and kind in KINDS and kind != target.kind
        if other_kind and not required:
            return _OMIT  # getReportRunStatus(runId) for a run, (reportId) for a report
        return _value(where, name, argument.type, target)
    if not required:
        if isinstance(_nullable(argument.type), GraphQLInputObjectType) and _names_ids(name, argument.type):
            return _value(where, name, argument.type, target) if target is not None else _OMIT
        if _nullable(argument.type) is GraphQLBoolean:
            return True  # the flag that does more: processReport(isPresignedUrl: true) starts a run
        return _OMIT
    return _value(where, name, argument.type, target)


def _nullable(input_type: GraphQLInputType) -> GraphQLInputType:
    return input_type.of_type if isinstance(input_type, GraphQLNonNull) else input_type


def _value(where: str, name: str, input_type: GraphQLInputType, target: Target | None) -> Any:
    nullable = _nullable(input_type)
    if isinstance(nullable, GraphQLList):
        return [_value(where, name, nullable.of_type, target)]
    if isinstance(nullable, GraphQLInputObjectType):
        values = {}
        for child, input_field in nullable.fields.items():
            value = _argument_value(f"{where}.{name}", child, input_field, target)
            if value is not _OMIT:
                values[child] = value
        return values
    if isinstance(nullable, GraphQLEnumType):
        return next(iter(nullable.values))
    assert isinstance(nullable, GraphQLScalarType), nullable
    if id_kind(name) is not None and target is not None and nullable.name in ("String", "ID"):
        return target.id
    scalar_values = {
        "String": "x",
        "ID": str(uuid.uuid4()),
        "Int": 1,
        "Float": 1.0,
        "Boolean": True,
        "JSON": {**ALL_FINDINGS_REPORT, "name": "Made by the isolation test"},
    }
    if nullable.name not in scalar_values:
        raise CannotAttack(
            f"{where}: argument {name} is of the scalar {nullable.name}, which the tenant-isolation test cannot "
            "fill: add a valid value for it to scalar_values in tests/support/tenant_isolation.py."
        )
    return scalar_values[nullable.name]


@dataclass(frozen=True, slots=True)
class HttpRoute:
    path: str
    methods: tuple[str, ...]
    params: tuple[str, ...]

    def url(self, value: str) -> str:
        return re.sub(r"\{[^}]+\}", value, self.path)


def http_routes(routes: Iterable[BaseRoute], reviewed: Mapping[str, str]) -> list[HttpRoute]:
    """The app's HTTP routes. A route without path parameters holds no object an id could name, but
    it must be listed in ``reviewed`` (path -> why nothing of an account leaks there): a new one
    fails until someone says so, or gives it a parameter the generic attack fills."""
    found: list[HttpRoute] = []
    for route in routes:
        if not isinstance(route, Route):
            raise CannotAttack(
                f"{route!r} is not a plain HTTP route: teach tests/support/tenant_isolation.py how to attack it."
            )
        params = tuple(route.param_convertors)
        if not params and route.path not in reviewed:
            raise CannotAttack(
                f"The route {route.path} is new to the tenant-isolation test: add it to REVIEWED_ROUTES in "
                "tests/acceptance/test_tenant_isolation.py with why no account's data can leak through it, "
                "or attack it there."
            )
        found.append(HttpRoute(route.path, tuple(sorted(route.methods or ("GET",))), params))
    return found


@dataclass
class Markers:
    """Strings that must never appear in an answer to this account: other accounts' ids, names,
    secrets and digests, and the contents of this account's private reports."""

    values: dict[str, str] = field(default_factory=dict)  # value -> what it is

    def add(self, what: str, *values: str | None) -> None:
        for value in values:
            if value:
                self.values[value] = what

    def found_in(self, text: str) -> list[str]:
        return [f"{what} ({value})" for value, what in self.values.items() if value in text]


_REQUEST_ID = re.compile(r'"requestId":\s*"[0-9a-f]+"')


def normalized(text: str, ids: Iterable[str]) -> str:
    """``text`` with each of ``ids`` replaced by ``<id>`` and without its request id (one per
    request): answers about different ids compare equal when they say the same thing."""
    for value in ids:
        if value:
            text = text.replace(value, "<id>")
    return _REQUEST_ID.sub('"requestId": "<request>"', text)


def error_codes(body: Any) -> set[str]:
    errors = body.get("errors") if isinstance(body, dict) else None
    return {str((error.get("extensions") or {}).get("code")) for error in errors or () if isinstance(error, dict)}


def data_of(body: Any, field_name: str) -> Any:
    data = body.get("data") if isinstance(body, dict) else None
    return data.get(field_name) if isinstance(data, dict) else None


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def unknown_like(target: Target) -> str:
    """An id of the same shape as ``target``'s that names nothing (every id is a UUID)."""
    return str(uuid.uuid4())
