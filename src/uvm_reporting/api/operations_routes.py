"""Routes for the operator's tools: ``/metrics`` (Prometheus) and ``/readyz`` (load balancers).

``/healthz`` (app.py) says the process is alive and does no I/O; ``/readyz`` says whether it can
serve: the database answers a ``SELECT 1`` and the result storage takes a file (local folder) or
answers a HEAD of its bucket (S3), each within a couple of seconds.

``/metrics`` shows this process's counters and the deployment's run figures. This API faces the
internet, so: with ``UVM_REPORTING_METRICS_TOKEN`` set it asks for that token as a bearer token;
without one it is open in the development profile and not served (404) in production.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from uvm_reporting.application.readiness import check_database, check_storage
from uvm_reporting.metrics import exposition_registry
from uvm_reporting.services import Services

log = logging.getLogger(__name__)

READINESS_TIMEOUT_SECONDS = 2.0
NOT_READY_RETRY_AFTER_SECONDS = 5


def operations_routes(services: Services, *deployment_collectors: Collector) -> list[BaseRoute]:
    registry = exposition_registry(*deployment_collectors)
    token = services.settings.metrics_token
    served = bool(token) or not services.settings.production

    async def metrics(request: Request) -> Response:
        if not served:
            return JSONResponse({"error": "not found"}, status_code=404)
        if token and not _bearer_matches(request.headers.get("authorization", ""), token):
            return JSONResponse(
                {"error": "the metrics token is missing or wrong"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        body = await run_in_threadpool(generate_latest, registry)  # reads the runs table
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def readyz(_: Request) -> Response:
        checks = {
            "database": lambda: check_database(services.engine),
            "storage": lambda: check_storage(services.storage, READINESS_TIMEOUT_SECONDS),
        }
        results = await asyncio.gather(*(_check(name, check) for name, check in checks.items()))
        answers = dict(zip(checks, results, strict=True))
        if all(answer == "ok" for answer in answers.values()):
            return JSONResponse({"status": "ready", "checks": answers})
        return JSONResponse(
            {"status": "not ready", "checks": answers},
            status_code=503,
            headers={"Retry-After": str(NOT_READY_RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
        )

    return [Route("/metrics", metrics, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]


async def _check(name: str, check: Callable[[], None]) -> str:
    """ "ok", or what failed in a few words: the exception's class, never its message (which may
    name hosts or paths) on a route the internet reaches; the log has the message."""
    try:
        await asyncio.wait_for(run_in_threadpool(check), READINESS_TIMEOUT_SECONDS)
    except TimeoutError:
        log.warning("readiness: the %s check took over %.1fs", name, READINESS_TIMEOUT_SECONDS)
        return f"failed: no answer within {READINESS_TIMEOUT_SECONDS:g}s"
    except Exception as error:  # noqa: BLE001 - any failure means not ready, and says which
        log.warning("readiness: the %s check failed: %s: %s", name, error.__class__.__name__, error)
        return f"failed: {error.__class__.__name__}"
    return "ok"


def _bearer_matches(authorization: str, token: str) -> bool:
    scheme, _, value = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())
