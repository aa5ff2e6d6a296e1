"""What one GraphQL document may cost, checked before anything of it is executed.

A document is refused, each limit with its own ``extensions.code`` and a message that names the
limit and its value, when it holds:

* more lexical tokens than ``max_tokens`` or more comments than ``max_comments``
  (``GRAPHQL_TOO_MANY_TOKENS``, ``GRAPHQL_TOO_MANY_COMMENTS``): graphql-core's parser stops
  there, so a big document costs no more than a small one to refuse;
* fields nested deeper than ``max_depth``, fragments included (``GRAPHQL_TOO_DEEP``);
* more aliases than ``max_aliases`` (``GRAPHQL_TOO_MANY_ALIASES``);
* an operation with more root fields than ``max_root_fields`` (``GRAPHQL_TOO_MANY_ROOT_FIELDS``);
* an operation with more than ``max_run_fields`` of the fields that start work outside the
  request, ``processReport`` and ``testReportDelivery`` (``GRAPHQL_TOO_MANY_RUN_FIELDS``);
* a page size (an ``Int`` argument named ``limit``, ``first`` or ``last``) over
  ``max_page_size`` (``GRAPHQL_PAGE_SIZE_TOO_LARGE``): a literal is refused when the document
  is checked, a variable when the request's variables are (``check_page_sizes``);
* with introspection off, a field of the introspection types (``GRAPHQL_INTROSPECTION_DISABLED``).

These rules are cheap (one walk of the document, fragments counted once each) and run before
graphql-core's own rules, whose work is budgeted since graphql-core 3.2.14 (a document over
that budget is refused with ``GRAPHQL_VALIDATION_ABORTED``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationRule,
    VariableNode,
    get_named_type,
    is_introspection_type,
    parse,
    specified_rules,
    validate,
)
from graphql.validation.validate import ValidationAbortedError

TOO_MANY_TOKENS = "GRAPHQL_TOO_MANY_TOKENS"
TOO_MANY_COMMENTS = "GRAPHQL_TOO_MANY_COMMENTS"
TOO_DEEP = "GRAPHQL_TOO_DEEP"
TOO_MANY_ALIASES = "GRAPHQL_TOO_MANY_ALIASES"
TOO_MANY_ROOT_FIELDS = "GRAPHQL_TOO_MANY_ROOT_FIELDS"
TOO_MANY_RUN_FIELDS = "GRAPHQL_TOO_MANY_RUN_FIELDS"
PAGE_SIZE_TOO_LARGE = "GRAPHQL_PAGE_SIZE_TOO_LARGE"
INTROSPECTION_DISABLED = "GRAPHQL_INTROSPECTION_DISABLED"
VALIDATION_ABORTED = "GRAPHQL_VALIDATION_ABORTED"

RUN_FIELDS = frozenset({"processReport", "testReportDelivery"})
"""Mutation fields that start work outside the request (a run, an AssumeRole and an S3 write)."""
PAGE_SIZE_ARGUMENTS = frozenset({"limit", "first", "last"})
"""Names of the ``Int`` arguments that say how many items a list field answers."""


@dataclass(frozen=True, slots=True)
class GraphQLLimits:
    """The limits of one document. The defaults leave room for every document the README and
    the explorer send (graphql-core's introspection query nests 15 deep, our own types 2)."""

    max_tokens: int = 2_000
    max_comments: int = 100
    max_depth: int = 20
    max_aliases: int = 30
    max_root_fields: int = 30
    max_run_fields: int = 1
    max_page_size: int = 100


def _error(message: str, code: str, nodes: Any = None) -> GraphQLError:
    return GraphQLError(message, nodes, extensions={"code": code})


_PARSER_LIMIT = re.compile(r"contains more than \d+ (tokens|comments)")


def parse_document(query: str, limits: GraphQLLimits) -> DocumentNode:
    """The parsed document; a GraphQLError when it is not GraphQL or is over a parser limit."""
    try:
        return parse(query, max_lexical_tokens=limits.max_tokens, max_comments=limits.max_comments)
    except GraphQLError as error:
        over = _PARSER_LIMIT.search(error.message)
        if over is None:
            raise
        if over.group(1) == "tokens":
            raise _error(
                f"The document has more than {limits.max_tokens} tokens (limit max_tokens={limits.max_tokens}). "
                "Send a smaller document.",
                TOO_MANY_TOKENS,
            ) from None
        raise _error(
            f"The document has more than {limits.max_comments} comments "
            f"(limit max_comments={limits.max_comments}). Remove the comments.",
            TOO_MANY_COMMENTS,
        ) from None


def validate_document(
    schema: GraphQLSchema, document: DocumentNode, limits: GraphQLLimits, *, introspection: bool = True
) -> list[GraphQLError]:
    """The document's errors: those of the limits first; only a document within them is
    validated by the specified rules (and, with introspection off, the introspection rule)."""
    errors = validate(schema, document, limit_rules(limits))
    if errors:
        return errors
    rules = [*specified_rules, *([] if introspection else [NoIntrospectionRule])]
    return [_coded(error) for error in validate(schema, document, rules)]


def _coded(error: GraphQLError) -> GraphQLError:
    if isinstance(error, ValidationAbortedError):
        return _error(
            "The document is too costly to validate (graphql-core's validation budget). "
            "Send a smaller or simpler document.",
            VALIDATION_ABORTED,
        )
    return error


@lru_cache(maxsize=8)
def limit_rules(limits: GraphQLLimits) -> list[type[ValidationRule]]:
    """The validation rules of these limits (graphql-core takes rule classes)."""

    class Limits(_LimitsRule):
        pass

    Limits.limits = limits
    return [Limits]


class _LimitsRule(ValidationRule):
    limits: GraphQLLimits

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._aliases = 0

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        if node.alias is not None:
            self._aliases += 1
        limit = self.limits.max_page_size
        for argument in node.arguments or ():
            value = argument.value
            if argument.name.value in PAGE_SIZE_ARGUMENTS and isinstance(value, IntValueNode):
                size = _int_literal(value)
                if size > limit:
                    self.report_error(
                        _page_size_error(
                            f"the {argument.name.value} argument of {node.name.value}", value.value[:20], limit
                        )
                    )

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
        limits = self.limits
        if _depth(self.context.document, node, limits.max_depth) > limits.max_depth:
            self.report_error(
                _error(
                    f"The operation nests fields more than {limits.max_depth} deep "
                    f"(limit max_depth={limits.max_depth}).",
                    TOO_DEEP,
                    node,
                )
            )
        roots = _root_fields(self.context.document, node)
        if len(roots) > limits.max_root_fields:
            self.report_error(
                _error(
                    f"The operation asks for {len(roots)} root fields "
                    f"(limit max_root_fields={limits.max_root_fields}). Split it into several requests.",
                    TOO_MANY_ROOT_FIELDS,
                    node,
                )
            )
        if node.operation == OperationType.MUTATION:
            runs = [key for key, name in roots.items() if name in RUN_FIELDS]
            if len(runs) > limits.max_run_fields:
                self.report_error(
                    _error(
                        f"The operation holds {len(runs)} processReport or testReportDelivery fields "
                        f"(limit max_run_fields={limits.max_run_fields}): send one request per run or test.",
                        TOO_MANY_RUN_FIELDS,
                        node,
                    )
                )

    def leave_document(self, *_args: Any) -> None:
        if self._aliases > self.limits.max_aliases:
            self.report_error(
                _error(
                    f"The document has {self._aliases} aliases (limit max_aliases={self.limits.max_aliases}).",
                    TOO_MANY_ALIASES,
                )
            )


class NoIntrospectionRule(ValidationRule):
    """graphql-core's NoSchemaIntrospectionCustomRule, its errors coded."""

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        named = get_named_type(self.context.get_type())
        if named is not None and is_introspection_type(named):
            self.report_error(
                _error(
                    f"Introspection is disabled on this server (the document asks for '{node.name.value}'). "
                    "The schema is in the documentation.",
                    INTROSPECTION_DISABLED,
                    node,
                )
            )


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }


def _depth(document: DocumentNode, operation: OperationDefinitionNode, max_depth: int) -> int:
    """How deep the operation nests fields, fragments expanded, counted to one past
    ``max_depth``: level by level, each selection set once a level, so neither a fragment cycle
    nor fragments spread many times make it costly, and nothing recurses."""
    fragments = _fragments(document)
    level: dict[int, SelectionSetNode] = {id(operation.selection_set): operation.selection_set}
    depth = 0
    while level and depth <= max_depth:
        deeper: dict[int, SelectionSetNode] = {}
        seen = set(level)
        pending = list(level.values())
        fields = False
        while pending:
            for selection in pending.pop().selections:
                nested: SelectionSetNode | None
                if isinstance(selection, FieldNode):
                    fields = True
                    if selection.selection_set is not None:
                        deeper[id(selection.selection_set)] = selection.selection_set
                    continue
                if isinstance(selection, InlineFragmentNode):
                    nested = selection.selection_set
                else:
                    fragment = fragments.get(selection.name.value)  # type: ignore[attr-defined]
                    nested = fragment.selection_set if fragment is not None else None
                if nested is not None and id(nested) not in seen:
                    seen.add(id(nested))
                    pending.append(nested)
        depth += fields
        level = deeper
    return depth


def _root_fields(document: DocumentNode, operation: OperationDefinitionNode) -> dict[str, str]:
    """The operation's root fields by response key (fields of one key are executed once), with
    its fragments expanded, each once."""
    fragments = _fragments(document)
    fields: dict[str, str] = {}
    seen: set[str] = set()
    pending = [operation.selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                key = (selection.alias or selection.name).value
                fields.setdefault(key, selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                fragment = fragments.get(selection.name.value)
                if fragment is not None:
                    pending.append(fragment.selection_set)
    return fields


def page_size_variables(document: DocumentNode) -> dict[str, int | None]:
    """The variables that some page-size argument takes, with their default (an int literal) or None."""
    names: set[str] = set()
    pending: list[SelectionSetNode] = [
        definition.selection_set
        for definition in document.definitions
        if isinstance(definition, (OperationDefinitionNode, FragmentDefinitionNode))
    ]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                names.update(
                    argument.value.name.value
                    for argument in selection.arguments or ()
                    if argument.name.value in PAGE_SIZE_ARGUMENTS and isinstance(argument.value, VariableNode)
                )
            nested = getattr(selection, "selection_set", None)
            if nested is not None:
                pending.append(nested)
    found: dict[str, int | None] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for variable in definition.variable_definitions or ():
                name = variable.variable.name.value
                if name in names:
                    default = variable.default_value
                    found[name] = _int_literal(default) if isinstance(default, IntValueNode) else None
    return found


def _int_literal(value: IntValueNode) -> int:
    """The literal's value, or one past a 64-bit integer's range for a longer one, with its sign
    (Python refuses to convert more than 4,300 digits)."""
    if len(value.value) <= 19:
        return int(value.value)
    return -(2**63) - 1 if value.value.startswith("-") else 2**63


def check_page_sizes(
    variables_used: Mapping[str, int | None], variables: Mapping[str, Any] | None, limits: GraphQLLimits
) -> GraphQLError | None:
    """The error of a page size over the limit given as a variable of the request, if any."""
    given = variables or {}
    for name, default in variables_used.items():
        value = given.get(name, default)
        if isinstance(value, int) and not isinstance(value, bool) and value > limits.max_page_size:
            return _page_size_error(f"the variable ${name}", str(value)[:20], limits.max_page_size)
    return None


def _page_size_error(where: str, value: str, limit: int) -> GraphQLError:
    return _error(
        f"A page size of {value} ({where}) is over the limit max_page_size={limit}. "
        "Ask for at most that many and page through the rest.",
        PAGE_SIZE_TOO_LARGE,
    )
