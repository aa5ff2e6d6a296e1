"""Status polls answered without graphql-core's executor.

A client polls ``getReportRunStatus`` every few milliseconds with the same document. Executing
it (coercing the variables, building an execution context, resolving and completing one
field) was about half of what a poll answered from the caches cost. For a document of one
simple shape the answer depends on the arguments alone:

* one query operation, with no fragments and no directives;
* one root field, aliased or not, that a use case answers from memory
  (``DIRECT_QUERIES``), whose arguments are all nullable ``String`` without defaults
  and whose type is the ``JSON`` scalar (no selection set);
* arguments written as string or null literals, or as variables of type ``String`` or
  ``String!``.

Such a document gets a plan when it is prepared (parsed and validated, once per text). A
request whose variables are not what the plan takes (a missing required one, a non-string)
or whose field raises is executed by graphql-core as before, so every error reads the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    NamedTypeNode,
    NonNullTypeNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    Undefined,
    ValueNode,
    VariableNode,
)

_ABSENT: Any = Undefined


@dataclass(frozen=True, slots=True)
class DeclaredVariable:
    name: str
    required: bool
    """Declared ``String!``."""
    default: str | Any | None = _ABSENT


@dataclass(frozen=True, slots=True)
class DirectQuery:
    """How to answer one prepared document by calling its field's use case."""

    operation_name: str | None
    response_key: str
    answer: Callable[..., Any]
    literal_arguments: tuple[tuple[str, str | None], ...]
    variable_arguments: tuple[tuple[str, str], ...]
    """(argument, variable) pairs."""
    variables: tuple[DeclaredVariable, ...]

    def arguments(self, variables: Mapping[str, Any] | None, operation_name: str | None) -> dict[str, Any] | None:
        """The field's arguments for this request, as graphql-core would coerce them; None when
        the request needs the executor (to name what is wrong with it)."""
        if operation_name is not None and operation_name != self.operation_name:
            return None
        given = variables or {}
        values: dict[str, str | None] = {}
        for declared in self.variables:
            value = given.get(declared.name, _ABSENT)
            if value is _ABSENT:
                value = declared.default
            if value is _ABSENT:
                if declared.required:
                    return None
                continue  # not given, no default: the argument is left out
            if value is None and declared.required:
                return None
            if value is not None and not isinstance(value, str):
                return None
            values[declared.name] = value
        arguments: dict[str, Any] = dict(self.literal_arguments)
        for argument, variable in self.variable_arguments:
            if variable in values:
                arguments[argument] = values[variable]
        return arguments


def plan_direct_query(
    schema: GraphQLSchema, document: DocumentNode, answers: Mapping[str, Callable[..., Any]]
) -> DirectQuery | None:
    """A plan for a valid ``document`` of the simple shape, or None."""
    found = _one_plain_field(document)
    if found is None:
        return None
    operation, field = found
    answer = answers.get(field.name.value)
    if answer is None or not _answers_json_from_strings(schema, field.name.value):
        return None
    variables = tuple(
        None
        if declared.directives
        else _declared_string(declared.variable.name.value, declared.type, declared.default_value)
        for declared in operation.variable_definitions
    )
    if None in variables:  # a variable of another type, default or directive
        return None
    literal_arguments: list[tuple[str, str | None]] = []
    variable_arguments: list[tuple[str, str]] = []
    for argument in field.arguments:
        value = argument.value
        if isinstance(value, VariableNode):
            variable_arguments.append((argument.name.value, value.name.value))
        elif isinstance(value, StringValueNode | NullValueNode):
            literal_arguments.append((argument.name.value, _literal(value)))
        else:
            return None
    return DirectQuery(
        operation_name=operation.name.value if operation.name else None,
        response_key=field.alias.value if field.alias else field.name.value,
        answer=answer,
        literal_arguments=tuple(literal_arguments),
        variable_arguments=tuple(variable_arguments),
        variables=tuple(v for v in variables if v is not None),
    )


def _one_plain_field(document: DocumentNode) -> tuple[OperationDefinitionNode, FieldNode] | None:
    """The query operation and its one field, when that is all the document holds."""
    operation = document.definitions[0] if len(document.definitions) == 1 else None
    if (
        not isinstance(operation, OperationDefinitionNode)
        or operation.operation is not OperationType.QUERY
        or operation.directives
        or len(operation.selection_set.selections) != 1
    ):
        return None
    field = operation.selection_set.selections[0]
    if not isinstance(field, FieldNode) or field.directives or field.selection_set is not None:
        return None
    return operation, field


def _answers_json_from_strings(schema: GraphQLSchema, name: str) -> bool:
    """Whether the query field ``name`` returns the JSON scalar and takes only nullable strings
    without defaults (so an argument left out reaches the use case as its own default)."""
    definition = schema.query_type.fields.get(name) if schema.query_type is not None else None
    return (
        definition is not None
        and isinstance(definition.type, GraphQLScalarType)
        and definition.type.name == "JSON"
        and all(
            argument.type is GraphQLString and argument.default_value is Undefined
            for argument in definition.args.values()
        )
    )


def _declared_string(name: str, type_node: Any, default: ValueNode | None) -> DeclaredVariable | None:
    required = isinstance(type_node, NonNullTypeNode)
    named = type_node.type if required else type_node
    if not isinstance(named, NamedTypeNode) or named.name.value != GraphQLString.name:
        return None
    if default is None:
        return DeclaredVariable(name, required)
    if not isinstance(default, StringValueNode | NullValueNode):
        return None
    return DeclaredVariable(name, required, _literal(default))


def _literal(value: StringValueNode | NullValueNode) -> str | None:
    return value.value if isinstance(value, StringValueNode) else None
