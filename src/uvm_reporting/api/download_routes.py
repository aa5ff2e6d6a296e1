"""``GET /downloads/{run_id}``: the file behind a signed, expiring download link, for as long as
the access the link was issued under lasts.

A link names the API client it was issued to (storage/download_links.py). It is served only
while that client is active (not revoked, its account not disabled) and the run's report is
public, as read through the status poll's caches (``ActiveClients``, ``ReportRuns``): a change
is seen by every API process within ``ACCESS_TTL_SECONDS`` (expiring_cache.py).

A result past its retention is refused with 410 Gone (``{"error": "result_expired", ...}``),
whether or not the cleanup job has deleted the file yet.

A folder's file is served from here. With S3 as our storage the answer is a redirect to a
presigned GET that lives ``S3_REDIRECT_SECONDS``: long enough to follow the redirect, far too
short to outlive the access it was granted under.
"""

from __future__ import annotations

from functools import partial

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from uvm_reporting.api.audit_events import record_download
from uvm_reporting.api.bearer_auth import ActiveClients
from uvm_reporting.application.audit import AuditLog
from uvm_reporting.application.report_runs import ReportRuns
from uvm_reporting.domain.runs import RunRecord
from uvm_reporting.errors import Forbidden, NotFound, ResultExpired
from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.storage.result_storage import ResultStorage
from uvm_reporting.storage.s3 import S3ResultStorage

S3_REDIRECT_SECONDS = 60
"""Lifetime of the presigned GET a download of our S3 storage is redirected to."""

ACCESS_ENDED = (
    "This download link no longer grants access: the API client it was issued to was revoked or its "
    "account disabled, or the report is no longer public. Call getReportRunStatus with valid "
    "credentials for a fresh link."
)
NO_LONGER_AVAILABLE = "The result of this run is no longer available."
_NO_STORE = {"Cache-Control": "no-store"}


def download_routes(
    storage: ResultStorage, clients: ActiveClients, report_runs: ReportRuns, audit: AuditLog
) -> list[BaseRoute]:
    """The route the links of ``storage`` lead to (it must have been opened with a signer)."""
    links = storage.links
    assert links is not None

    def grant(run_id: str, client_id: str) -> RunRecord:
        """The one place a download is granted: the run whose file the holder of a valid link to
        ``run_id``, issued to ``client_id``, may fetch now. Forbidden once that access has
        ended; NotFound when there is no file (any more)."""
        account_id = clients.account_of(client_id)
        if account_id is None:
            raise Forbidden(ACCESS_ENDED)
        try:
            run = report_runs.downloadable_run(account_id, run_id)
        except Forbidden:
            raise Forbidden(ACCESS_ENDED) from None
        assert run.result_key is not None  # a downloadable run is Completed
        if not storage.exists(run.result_key):
            report_runs.refuse_if_removed(account_id, run_id)  # ResultExpired when retention removed it
            raise NotFound(NO_LONGER_AVAILABLE)
        return run

    async def download(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        query = request.query_params
        client_id = query.get("client", "")
        try:
            # The signature is checked before any lookup: a forged link learns nothing.
            links.verify(run_id, client_id, query.get("expires", ""), query.get("signature", ""), kid=query.get("kid"))
        except Forbidden as error:
            return _refuse(403, "forbidden", error.message)
        try:
            run = await run_in_threadpool(grant, run_id, client_id)
        except Forbidden:
            return _refuse(403, "forbidden", ACCESS_ENDED)
        except NotFound:
            return _refuse(404, "not_found", NO_LONGER_AVAILABLE)
        except ResultExpired as expired:
            return _refuse(410, "result_expired", expired.message, expiredAt=expired.details["expired_at"])
        if request.method == "GET" and _from_the_start(request.headers.get("range")):
            await run_in_threadpool(record_download, audit, run, request.scope)
        return await _serve(storage, run, head=request.method == "HEAD")

    return [Route("/downloads/{run_id}", download, methods=["GET", "HEAD"])]


async def _serve(storage: ResultStorage, run: RunRecord, *, head: bool) -> Response:
    key = run.result_key
    assert key is not None
    if isinstance(storage, LocalFolderStorage):
        return FileResponse(
            storage.path_of(key),
            media_type=run.media_type,
            filename=run.download_file_name,
            headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
        )
    if isinstance(storage, S3ResultStorage):
        # Presigning may fetch credentials (an instance role): off the event loop. A presigned
        # URL is signed for one method: a HEAD is redirected to a presigned HEAD.
        url = await run_in_threadpool(
            partial(
                storage.presigned_url,
                key,
                run.download_file_name,
                S3_REDIRECT_SECONDS,
                content_type=run.media_type,
                method="HEAD" if head else "GET",
            )
        )
        return RedirectResponse(url, status_code=307, headers=_NO_STORE)
    raise TypeError(f"no way to serve downloads of {type(storage).__name__}")


def _from_the_start(range_header: str | None) -> bool:
    """Whether a GET fetches the file from its first byte: one audit event per download, not
    one per range a download manager fetches."""
    return range_header is None or range_header.replace(" ", "").lower().startswith("bytes=0-")


def _refuse(status: int, code: str, message: str, **extra: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status, headers=_NO_STORE)
