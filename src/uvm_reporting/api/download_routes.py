"""``GET /downloads/{run_id}``: the file behind a signed, expiring download link."""

from __future__ import annotations

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from uvm_reporting.api.audit_events import record_download
from uvm_reporting.application.audit import AuditLog
from uvm_reporting.database.runs import find_run
from uvm_reporting.domain.runs import Delivery, RunState
from uvm_reporting.errors import Forbidden
from uvm_reporting.storage.local_folder import LocalFolderStorage


def download_routes(engine: Engine, storage: LocalFolderStorage) -> list[BaseRoute]:
    """The route the links of ``storage`` lead to (it must have been opened with a signer)."""
    links = storage.links
    assert links is not None
    audit = AuditLog(engine)

    async def download(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            # The signature is checked before any lookup: a forged link learns nothing.
            links.verify(run_id, request.query_params.get("expires", ""), request.query_params.get("signature", ""))
        except Forbidden as error:
            return _refuse(403, "forbidden", error.message)
        run = await run_in_threadpool(find_run, engine, run_id)
        if (
            run is None
            or run.state is not RunState.COMPLETED
            or run.delivery is not Delivery.DOWNLOAD
            or run.result_key is None
            or not storage.exists(run.result_key)
        ):
            return _refuse(404, "not_found", "The result of this run is no longer available.")
        if request.method == "GET" and _from_the_start(request.headers.get("range")):
            await run_in_threadpool(record_download, audit, run, request.scope)
        return FileResponse(
            storage.path_of(run.result_key),
            media_type=run.media_type,
            filename=run.download_file_name,
            headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
        )

    return [Route("/downloads/{run_id}", download, methods=["GET", "HEAD"])]


def _from_the_start(range_header: str | None) -> bool:
    """Whether a GET fetches the file from its first byte: one audit event per download, not
    one per range a download manager fetches."""
    return range_header is None or range_header.replace(" ", "").lower().startswith("bytes=0-")


def _refuse(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers={"Cache-Control": "no-store"})
