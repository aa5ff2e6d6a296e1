"""The GraphQL schema fuzzed against the real server with a valid token (hypothesis-graphql).

Documents are generated from the schema the server builds: valid ones (every field, argument
and selection, several root fields at once) and ones with one schema violation each. Their JSON
arguments are any JSON, or report definitions with one key given any value; their id arguments
name, at random, the caller's public and private reports and runs, another account's, or the
generated nonsense. Every answer must be no 5xx, must show none of the server's internals (a
stack trace, SQL, a file path, a module path) and nothing of the other account.

Deterministic (derandomized, a fixed number of examples): about 20 s a backend on this machine.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import hypothesis_graphql.nodes as gql_nodes
from graphql import ObjectFieldNode, ValueNode
from graphql.language import NameNode
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema
from sqlalchemy import Engine

from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.tenant_isolation import error_codes, id_kind, normalized, parse_json
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
        caller = Caller(base_url, mine)
        secrets = secrets_of(engine, mine, theirs)
        ids = known_ids(mine, theirs)
        failures: list[str] = []

        @settings_for_ci
        @given(document=documents(), data=st.data())
        def send(document: object, data: st.DataObject) -> None:
            query = with_known_ids(str(document), ids, data)
            answer = caller.graphql(query, {})
            found = []
            if answer.status_code >= 500:
                found.append(f"server error {answer.status_code}")
            if "INTERNAL_SERVER_ERROR" in error_codes(parse_json(answer.text)):
                found.append("an unexpected error in a resolver")
            if internals := INTERNALS.findall(answer.text):
                found.append(f"internals {internals}")
            if leaked := secrets.found_in(normalized(answer.text, [i for i in ids if i in query])):
                found.append(f"reveals {', '.join(leaked)}")
            if found:
                failures.append(f"{'; '.join(found)}\n  request: {query}\n  answer: {answer.status_code} {answer.text}")

        try:
            send()
        finally:
            caller.close()
    assert failures == [], "\n".join(failures[:10])


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
