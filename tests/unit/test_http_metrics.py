"""HTTP metrics are labelled by route template, so ids in paths never become label values."""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Scope

from uvm_reporting.api.http_metrics import UNMATCHED, route_template


def ok(_: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


ROUTES = [Route("/downloads/{run_id}", ok, methods=["GET"]), Route("/api/graphql", ok, methods=["POST"])]


def scope(method: str, path: str) -> Scope:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def test_a_path_with_an_id_is_named_by_its_template() -> None:
    assert route_template(ROUTES, scope("GET", "/downloads/0f8c7d3e-1234")) == "/downloads/{run_id}"


def test_a_refused_method_keeps_its_route() -> None:
    assert route_template(ROUTES, scope("GET", "/api/graphql")) == "/api/graphql"


def test_every_unknown_path_shares_one_label() -> None:
    assert route_template(ROUTES, scope("GET", "/wp-admin/12345")) == UNMATCHED
    assert route_template(ROUTES, scope("GET", "/downloads/a/b")) == UNMATCHED
