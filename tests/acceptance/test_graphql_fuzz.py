"""The GraphQL schema fuzzed against the real server with a valid token (hypothesis-graphql).

Documents are generated from the schema the server builds: valid ones (every field, argument
and selection, several root fields at once) and ones with one schema violation each. Their JSON
arguments are any JSON, or report definitions with one key given any value; their id arguments
name, at random, the caller's public and private reports and runs, another account's, or the
generated nonsense. Every answer must be no 5xx, must show none of the server's internals (a
stack trace, SQL, a file path, a module path) and nothing of the other account.

A second test sends every root field with its arguments as variables of any JSON value. It is
an expected failure (strict) until graphql_route answers a variable of the wrong type with
BAD_USER_INPUT: drop the marker then.

Deterministic (derandomized, a fixed number of examples): 20 to 30 s a test on this machine, so
they run in the default suite.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

import hypothesis_graphql.nodes as gql_nodes
import pytest
from graphql import ObjectFieldNode, ValueNode
from graphql.language import NameNode
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema
from sqlalchemy import Engine

from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.tenant_isolation import error_codes, id_kind, normalized, operations, parse_json, selection_of
from tests.support.tenants import Caller, Tenant, secrets_of, two_tenant_server
from uvm_reporting.api.graphql_schema import build_schema
from uvm_reporting.settings import Settings

EXAMPLES = int(os.environ.get("UVM_TEST_FUZZ_EXAMPLES", "150"))
"""Documents sent per backend: with derandomize, the same ones on every run. Set the variable for
a longer hunt on a developer's machine."""

INTERNALS = re.compile(
    r"Traceback|File \"|\.py\b|site-packages|(?:/tmp|/home|/usr|/opt|/work|/var)/|sqlalchemy|psycopg|sqlite3"
    r"|\bSELECT\b[\s\S]*\bFROM\b|\bINSERT INTO\b|object at 0x|uvm_reporting\.|\b[A-Z][A-Za-z]+(?:Error|Exception)\b",
)
"""What the server's own workings look like in an answer: none of it may reach a client."""

_ID_ARGUMENT = re.compile(r'\b(?P<name>\w+): (?P<value>"(?:[^"\\]|\\.)*")')

GRAPHQL_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True)  # the keys of an object literal
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(GRAPHQL_NAMES, children, max_size=3),
    max_leaves=8,
)
OPERATORS = ["eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "between", "contains", "starts_with", "is_null"]
filters = st.fixed_dictionaries(
    {
        "field": st.sampled_from([*ALL_FINDINGS_REPORT["columns"], "asset.nope"]),
        "op": st.sampled_from([*OPERATORS, "nope"]),
        "value": json_values,
    }
)
definitions = st.builds(
    lambda key, value: {**ALL_FINDINGS_REPORT, key: value},
    st.sampled_from([*ALL_FINDINGS_REPORT, "description", "limit", "schedule", "filters"]),
    json_values,
) | st.builds(lambda chosen: {**ALL_FINDINGS_REPORT, "filters": chosen}, st.lists(filters, max_size=2))
"""Report definitions with one key given any value, or with filters of any operand."""


def json_node(value: Any) -> ValueNode:
    """A JSON value as a GraphQL literal (the JSON scalar takes any)."""
    if isinstance(value, list):
        return gql_nodes.List([json_node(item) for item in value])
    if isinstance(value, dict):
        return gql_nodes.Object(
            [ObjectFieldNode(name=NameNode(value=key), value=json_node(item)) for key, item in value.items()]
        )
    if value is None:
        return gql_nodes.Null
    scalar: Any = {bool: gql_nodes.Boolean, int: gql_nodes.Int, float: gql_nodes.Float, str: gql_nodes.String}
    return scalar[type(value)](value)  # type: ignore[no-any-return]


def documents() -> st.SearchStrategy[object]:
    schema = build_schema()
    scalars = {"JSON": (json_values | definitions | st.just(ALL_FINDINGS_REPORT)).map(json_node)}
    return from_schema(schema, custom_scalars=scalars) | from_schema(schema, custom_scalars=scalars, mode=Mode.NEGATIVE)


def with_known_ids(document: str, ids: list[str], data: st.DataObject) -> str:
    """``document`` with each id argument's string replaced by one drawn from ``ids`` or kept."""

    def replace(match: re.Match[str]) -> str:
        if id_kind(match["name"]) is None:
            return match[0]
        chosen = data.draw(st.sampled_from([None, *ids]), label=match["name"])
        return match[0] if chosen is None else f"{match['name']}: {json.dumps(chosen)}"

    return _ID_ARGUMENT.sub(replace, document)


def test_fuzzed_documents_get_no_server_error_and_no_internals(
    settings: Settings, engine: Engine, database_url: str
) -> None:
    with two_tenant_server(settings.data_dir, engine, database_url) as (base_url, mine, theirs):
        fuzz = Fuzz(Caller(base_url, mine), engine, theirs)

        @settings_for_ci
        @given(document=documents(), data=st.data())
        def send(document: object, data: st.DataObject) -> None:
            fuzz.send(with_known_ids(str(document), fuzz.ids, data), {})

        fuzz.run(send)
    assert fuzz.failures == [], "\n".join(fuzz.failures[:10])


@pytest.mark.backends("sqlite")  # coercing variables is the same on both; NUL in ids is sent inline above
def test_fuzzed_variables_get_no_server_error_and_no_internals(
    settings: Settings, engine: Engine, database_url: str
) -> None:
    """Every root field with all its arguments as variables, and any JSON as their values."""
    with two_tenant_server(settings.data_dir, engine, database_url) as (base_url, mine, theirs):
        fuzz = Fuzz(Caller(base_url, mine), engine, theirs)
        values = json_values | definitions | st.sampled_from(fuzz.ids)
        fields = operations(build_schema())

        @settings_for_ci
        @given(data=st.data())
        def send(data: st.DataObject) -> None:
            operation = data.draw(st.sampled_from(fields), label="operation")
            names = list(operation.field.args)
            variables = data.draw(st.fixed_dictionaries({}, optional=dict.fromkeys(names, values)))
            declared = ", ".join(f"${name}: {argument.type}" for name, argument in operation.field.args.items())
            passed = ", ".join(f"{name}: ${name}" for name in names)
            header = f"{operation.operation_type} Fuzz({declared})" if names else operation.operation_type
            call = f"{operation.name}({passed})" if names else operation.name
            fuzz.send(f"{header} {{ {call}{selection_of(operation.field.type)} }}", variables)

        fuzz.run(send)
    assert fuzz.failures == [], "\n".join(fuzz.failures[:10])


class Fuzz:
    """Sends the generated requests as one caller; collects each answer that shows a problem."""

    def __init__(self, caller: Caller, engine: Engine, theirs: Tenant) -> None:
        self.caller = caller
        self.secrets = secrets_of(engine, caller.tenant, theirs)
        self.ids = known_ids(caller.tenant, theirs)
        self.failures: list[str] = []
        self.sent_ids: set[str] = set()
        """Ids sent so far: an answer may echo them (an error message, the caller's own audit log)."""

    def send(self, query: str, variables: dict[str, Any]) -> None:
        answer = self.caller.graphql(query, variables)
        sent = json.dumps(variables) + query
        self.sent_ids.update(i for i in self.ids if i in sent)
        found = []
        if answer.status_code >= 500:
            found.append(f"server error {answer.status_code}")
        if "INTERNAL_SERVER_ERROR" in error_codes(parse_json(answer.text)):
            found.append("an unexpected error in a resolver")
        if internals := INTERNALS.findall(answer.text):
            found.append(f"internals {internals}")
        if leaked := self.secrets.found_in(normalized(answer.text, self.sent_ids)):
            found.append(f"reveals {', '.join(leaked)}")
        if found:
            self.failures.append(
                f"{'; '.join(found)}\n  request: {query} {variables}\n  answer: {answer.status_code} {answer.text}"
            )

    def run(self, test: Callable[[], None]) -> None:
        try:
            test()
        finally:
            self.caller.close()


settings_for_ci = hypothesis_settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def known_ids(mine: Tenant, theirs: Tenant) -> list[str]:
    """What an id argument may name: real objects of both accounts, and ids no database holds."""
    real = [
        mine.public_report.id,
        mine.public_run_id,
        mine.private_report.id,
        mine.private_run_id,
        theirs.public_report.id,
        theirs.public_run_id,
    ]
    odd = ["", " ", "\x00", f"{mine.public_report.id}\x00", "' OR '1'='1", "%", "../../etc/passwd", "\U0001f600" * 50]
    return real + odd
