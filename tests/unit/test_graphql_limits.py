"""The cost limits of one GraphQL document (api/graphql_limits.py), against the real schema."""

from __future__ import annotations

import pytest
from graphql import GraphQLError, GraphQLSchema, get_introspection_query
from graphql.validation.rules import overlapping_fields_can_be_merged

from uvm_reporting.api import graphql_limits
from uvm_reporting.api.graphql_limits import (
    GraphQLLimits,
    check_page_sizes,
    page_size_variables,
    parse_document,
    validate_document,
)
from uvm_reporting.api.graphql_schema import build_schema

LIMITS = GraphQLLimits()


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema()


def codes(
    schema: GraphQLSchema, query: str, limits: GraphQLLimits = LIMITS, *, introspection: bool = True
) -> list[str]:
    """The error codes of the document (parse and validation), in order; [] when it may run."""
    try:
        document = parse_document(query, limits)
    except GraphQLError as error:
        return [str((error.extensions or {}).get("code", "PARSE"))]
    return [
        str((error.extensions or {}).get("code", "VALIDATION"))
        for error in validate_document(schema, document, limits, introspection=introspection)
    ]


def message(schema: GraphQLSchema, query: str) -> str:
    try:
        document = parse_document(query, LIMITS)
    except GraphQLError as error:
        return error.message
    return validate_document(schema, document, LIMITS)[0].message


def aliased(field: str, count: int) -> str:
    return " ".join(f"a{i}: {field}" for i in range(count))


def test_the_readmes_documents_and_the_explorers_introspection_are_within_the_limits(schema: GraphQLSchema) -> None:
    for query in (
        "mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true)}",
        "query ($reportId: String, $runId: String) { getReportRunStatus(reportId: $reportId, runId: $runId) }",
        '{ reports { id name } reportRuns(reportId: "r", limit: 100) { runId status } }',
        get_introspection_query(descriptions=True, input_value_deprecation=True),
    ):
        assert codes(schema, query) == [], query


def test_4000_aliases_stop_the_parser_at_the_token_limit_and_are_never_validated(
    schema: GraphQLSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    validated: list[object] = []

    def counted(*args: object, **_kwargs: object) -> list[GraphQLError]:
        validated.append(args)
        return []

    monkeypatch.setattr(graphql_limits, "validate", counted)
    query = "{" + aliased("reports { id }", 4000) + "}"
    assert codes(schema, query) == ["GRAPHQL_TOO_MANY_TOKENS"]
    assert "max_tokens=2000" in message(schema, query)
    assert validated == []


def test_the_token_limit_counts_tokens_not_bytes(schema: GraphQLSchema) -> None:
    small = GraphQLLimits(max_tokens=20)
    assert codes(schema, '{ report(id: "' + "x" * 10_000 + '") { id } }', small) == []
    assert codes(schema, "{ " + "__typename " * 21 + "}", small) == ["GRAPHQL_TOO_MANY_TOKENS"]


def test_comments_have_their_own_limit(schema: GraphQLSchema) -> None:
    query = "# a comment\n" * 101 + "{ reports { id } }"
    assert codes(schema, query) == ["GRAPHQL_TOO_MANY_COMMENTS"]
    assert "max_comments=100" in message(schema, query)


def test_25_aliased_process_report_fields_are_refused(schema: GraphQLSchema) -> None:
    query = "mutation {" + aliased('processReport(id: "r", isPresignedUrl: true)', 25) + "}"
    assert codes(schema, query) == ["GRAPHQL_TOO_MANY_RUN_FIELDS"]
    assert "limit max_run_fields=1" in message(schema, query)


@pytest.mark.parametrize(
    "query",
    [
        'mutation { a: processReport(id: "r") b: testReportDelivery(id: "r") }',
        'mutation { ...Runs } fragment Runs on Mutation { a: processReport(id: "r") b: processReport(id: "s") }',
        'mutation { a: processReport(id: "r") ... on Mutation { b: processReport(id: "s") } }',
    ],
)
def test_one_run_or_delivery_test_per_operation_through_fragments_too(schema: GraphQLSchema, query: str) -> None:
    assert "GRAPHQL_TOO_MANY_RUN_FIELDS" in codes(schema, query)


def test_the_same_field_twice_under_one_key_runs_once_and_passes(schema: GraphQLSchema) -> None:
    assert codes(schema, 'mutation { processReport(id: "r") processReport(id: "r") }') == []


def test_deep_nesting_is_refused_through_fragments_and_cycles_stay_cheap(schema: GraphQLSchema) -> None:
    deep = "{ __schema { types { " + "ofType { " * 20 + "name" + " }" * 20 + " } } }"
    assert codes(schema, deep) == ["GRAPHQL_TOO_DEEP"]
    assert "limit max_depth=20" in message(schema, deep)
    chain = "{ __schema { types { ...F0 } } } " + " ".join(
        f"fragment F{i} on __Type {{ ofType {{ ...F{i + 1} }} }}" for i in range(25)
    )
    chain += " fragment F25 on __Type { name }"
    assert codes(schema, chain) == ["GRAPHQL_TOO_DEEP"]
    cycle = "{ ...A } fragment A on Query { reports { id } ...B } fragment B on Query { ...A }"
    assert codes(schema, cycle) == ["VALIDATION"]  # the specified rule names the cycle


def test_too_many_root_fields_and_aliases_are_named(schema: GraphQLSchema) -> None:
    roots = "{" + aliased("__typename", 31) + "}"
    assert codes(schema, roots) == ["GRAPHQL_TOO_MANY_ROOT_FIELDS", "GRAPHQL_TOO_MANY_ALIASES"]
    assert codes(schema, roots, GraphQLLimits(max_aliases=100)) == ["GRAPHQL_TOO_MANY_ROOT_FIELDS"]
    nested = '{ reportRuns(reportId: "r") {' + aliased("runId", 31) + "} }"
    assert codes(schema, nested) == ["GRAPHQL_TOO_MANY_ALIASES"]
    assert "limit max_aliases=30" in message(schema, nested)


def test_page_sizes_over_the_limit_are_refused(schema: GraphQLSchema) -> None:
    assert codes(schema, '{ reportRuns(reportId: "r", limit: 101) { runId } }') == ["GRAPHQL_PAGE_SIZE_TOO_LARGE"]
    assert "max_page_size=100" in message(schema, '{ reportRuns(reportId: "r", limit: 500) { runId } }')
    huge = '{ reportRuns(reportId: "r", limit: ' + "9" * 5000 + ") { runId } }"  # past int()'s 4,300 digits
    assert codes(schema, huge) == ["GRAPHQL_PAGE_SIZE_TOO_LARGE"]
    assert codes(schema, huge.replace("limit: 9", "limit: -9")) == ["VALIDATION"]  # not an Int
    document = parse_document(
        'query ($n: Int, $m: Int = 500) { a: reportRuns(reportId: "r", limit: $n) { runId } '
        'b: reportRuns(reportId: "r", limit: $m) { runId } }',
        LIMITS,
    )
    used = page_size_variables(document)
    assert used == {"n": None, "m": 500}
    assert check_page_sizes(used, {"n": 100, "m": 100}, LIMITS) is None
    for variables in ({"n": 101, "m": 1}, {"n": 1}):
        error = check_page_sizes(used, variables, LIMITS)
        assert error is not None
        assert error.extensions == {"code": "GRAPHQL_PAGE_SIZE_TOO_LARGE"}


def test_without_introspection_the_introspection_types_are_refused(schema: GraphQLSchema) -> None:
    closed = codes(schema, get_introspection_query(), introspection=False)
    assert closed
    assert set(closed) == {"GRAPHQL_INTROSPECTION_DISABLED"}
    assert codes(schema, "{ __typename reports { id } }", introspection=False) == []


def test_a_document_over_graphql_cores_validation_budget_is_named(
    schema: GraphQLSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overlapping_fields_can_be_merged, "MAX_COMPLEXITY_BUDGET", 1)
    assert codes(schema, "{ reports { id } reports { id name } }") == ["GRAPHQL_VALIDATION_ABORTED"]
