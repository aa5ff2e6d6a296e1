"""The two use cases of the Reporting API: start a run of a report, and tell a run's status.

Entry points (GraphQL, CLI) call these; they hold the rules the spec states: only public
reports are reachable, a download link means CSV, a run is looked up within the caller's
account only.

Status polls are the hot path. A poll of a run by id is one query (the run and its report's
access, both filtered by the caller's account). On top of that, three in-process caches, keyed
by account id and run or report id so that no entry ever answers for another account:

- finished runs: a Completed, Failed or Cancelled run never changes again but for its
  retention (a cancel of a final run leaves it as it is), so its record and its status document
  are kept (LRU-bounded); each answer still gets a fresh download link. Retention is decided
  when the answer is made, from the run's ``finished_at`` (domain/retention.py): a result past
  its retention answers ``expired`` without a link, even before the cleanup job deleted the
  file, and a record past the run history is read again (the cleanup job deletes it);
- running runs: the record, status document and report access read with it, for
  ``RUNNING_STATUS_TTL_SECONDS``. A client polling every 10 ms then costs the database four
  reads a second, not a hundred (a queued run's position in the queue is counted in the same
  query, and cached with it). The workers of this process say when one of their runs moves on
  (``run_changed``), so in the embedded mode a poll sees a run start or finish at once; an API
  process of a scale-out deployment sees it at most that long later;
- whether a report is public, trusted for ``ACCESS_TTL_SECONDS`` (expiring_cache.py): a
  report made private is refused by every process at most that long after the change.

A poll that these caches can answer needs no I/O at all: ``run_status(..., memory_only=True)``
answers it or raises ``NotInMemory``, so the API can answer it without leaving its event loop.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from uvm_reporting.application.ports import DownloadLinks, RunQueueWakeup
from uvm_reporting.application.rate_limits import RateLimits
from uvm_reporting.application.reports import Reports, nameable, private_report
from uvm_reporting.database.audit import record_event
from uvm_reporting.database.idempotency_keys import (
    MAX_KEY_LENGTH,
    find_idempotency_key,
    remember_idempotency_key,
)
from uvm_reporting.database.reports import Report, report_is_public
from uvm_reporting.database.runs import (
    cancel_run,
    enqueue_delivery,
    enqueue_run,
    find_active_identical_run,
    get_run,
    get_run_and_report_access,
    list_runs,
    lock_account_enqueues,
    queue_position,
)
from uvm_reporting.domain.audit import Action, Actor, ActorKind, AuditEvent
from uvm_reporting.domain.formats import ExportFormat, parse_format_options
from uvm_reporting.domain.retention import RetentionPolicy
from uvm_reporting.domain.runs import Delivery, RunRecord, RunState
from uvm_reporting.domain.schedule.settings import ScheduleSettings
from uvm_reporting.domain.timestamps import format_utc, utc_now
from uvm_reporting.errors import BadUserInput, IdempotencyKeyReused, NotFound, ResultExpired
from uvm_reporting.expiring_cache import ExpiringCache, NotInMemory

DEFAULT_DOWNLOAD_FORMAT = "csv"
FINISHED_RUNS_KEPT = 4096
RUNNING_STATUS_TTL_SECONDS = 0.25
DEFAULT_HISTORY_PAGE = 20
MAX_HISTORY_PAGE = 200


@dataclass
class ReportRuns:
    engine: Engine
    signal: RunQueueWakeup
    links: DownloadLinks
    reports: Reports
    # (account id, report id) -> whether the report is public, for status polls only.
    report_access: ExpiringCache[tuple[str, str], bool] = field(default_factory=ExpiringCache)
    # (account id, run id) -> a final run and its status document without the link. Never stale.
    finished_runs: ExpiringCache[tuple[str, str], tuple[RunRecord, dict[str, Any]]] = field(
        default_factory=lambda: ExpiringCache(float("inf"), max_entries=FINISHED_RUNS_KEPT)
    )
    # (account id, run id) -> a queued or started run, its status document, its report's access.
    running_runs: ExpiringCache[tuple[str, str], tuple[RunRecord, dict[str, Any], bool]] = field(
        default_factory=lambda: ExpiringCache(RUNNING_STATUS_TTL_SECONDS)
    )
    rate_limits: RateLimits | None = None
    """processReport's limit per account (application/rate_limits.py); None: no limit."""
    # Runs one account may have queued or started at once (None: no cap); QUOTA_EXCEEDED beyond.
    max_active_runs: int | None = None
    # How long result files and run records are kept (default: forever).
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    # How long an idempotency key names its run (UVM_REPORTING_IDEMPOTENCY_KEY_SECONDS).
    idempotency_key_lifetime: timedelta = timedelta(days=1)
    # Told the id of a started run this process asked to cancel: a worker of this process that
    # runs it stops it at once rather than at its next heartbeat (services.py wires serve's).
    on_cancel_requested: Callable[[str], None] | None = None

    def process_report(
        self,
        account_id: str,
        report_id: str,
        *,
        presigned_url: bool,
        requested_by: str | None,
        download_format: str | None = None,
        download_compression: str | None = None,
        actor: Actor | None = None,
        idempotency_key: str | None = None,
        force_new: bool = False,
    ) -> dict[str, Any]:
        """With a download link: CSV in our storage (or the format asked for), whatever the
        report's schedule says, as the spec has it. Without: the format and S3 destination of the
        report's schedule settings. With ``actor``, the audit log records who started the run,
        in the transaction that queues it. Over the account's rate limit: ``RateLimited``, before
        anything is read or enqueued.

        A run of the same report, delivery, format, compression and definition that is still
        queued or started is joined (answered with ``"joined": true``, nothing queued, no quota
        used) unless ``force_new``. With ``idempotency_key``, the key decides first: a key used
        before (within ``idempotency_key_lifetime``) with the same arguments answers its run
        again, with other arguments ``IdempotencyKeyReused``; a new key is remembered with the
        run this request queued or joined."""
        if self.rate_limits is not None:
            self.rate_limits.check_process_report(account_id)
        if idempotency_key is not None:
            _check_idempotency_key(idempotency_key)
        report = self.reports.public_report(account_id, report_id)
        options = self._run_options(report, presigned_url, download_format, download_compression)
        request = _RunRequest(report, options, requested_by, actor, idempotency_key, force_new)
        try:
            run, joined, queued = self._queue_or_join(request)
        except IntegrityError:
            if idempotency_key is None:
                raise
            # Another request with this key committed first (enqueues of an account are
            # serialised, so only a writer that bypassed that gets here): answer its run.
            run, joined, queued = self._queue_or_join(request)
        if queued:
            self.signal.notify()
        return {
            "runId": run.id,
            "reportId": report.id,
            "status": run.state.api_status,
            "state": run.state.value,
            "joined": joined,
        }

    def _queue_or_join(self, request: _RunRequest) -> tuple[RunRecord, bool, bool]:
        """The run that answers ``request``, whether it was joined, and whether it was queued now."""
        report, options = request.report, request.options
        # IMMEDIATE on SQLite: the quota count and the insert hold the write lock together.
        with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection, connection.begin():
            # Before any read: a concurrent request of the account waits here until this one
            # commits, then sees its run and its key.
            lock_account_enqueues(connection, report.account_id)
            now = utc_now()
            if request.idempotency_key is not None:
                stored = find_idempotency_key(connection, report.account_id, request.idempotency_key, now)
                if stored is not None:
                    if stored.request_hash != request.hash:
                        raise IdempotencyKeyReused(
                            "This idempotencyKey was used with other arguments (report, isPresignedUrl, "
                            "format, compression or forceNew) within its lifetime; send a new key for a "
                            "new request.",
                        )
                    return (
                        get_run(self.engine, report.account_id, stored.run_id, connection=connection),
                        stored.joined,
                        False,
                    )
            run = None
            if not request.force_new:
                run = find_active_identical_run(
                    connection,
                    account_id=report.account_id,
                    report_id=report.id,
                    delivery=options.delivery,
                    format=options.format,
                    compression=options.compression,
                    definition=report.definition.to_json(),
                )
            joined = run is not None
            if run is None:
                run = self._enqueue(connection, report, options, requested_by=request.requested_by)
            if request.actor is not None:
                record_event(connection, run_joined(run, request.actor) if joined else run_started(run, request.actor))
            if request.idempotency_key is not None:
                remember_idempotency_key(
                    connection,
                    report.account_id,
                    request.idempotency_key,
                    request_hash=request.hash,
                    run_id=run.id,
                    joined=joined,
                    now=now,
                    lifetime=self.idempotency_key_lifetime,
                )
        return run, joined, not joined

    @staticmethod
    def _run_options(
        report: Report, presigned_url: bool, download_format: str | None, download_compression: str | None
    ) -> _RunOptions:
        """The delivery, format and compression of a run of ``report``, or BadUserInput."""
        if presigned_url:
            export_format, compression = _download_format(download_format, download_compression)
            return _RunOptions(Delivery.DOWNLOAD, export_format, compression, None)
        if download_format or download_compression:
            raise BadUserInput(
                "format and compression choose a download link's file; pass isPresignedUrl: "
                "true with them. S3 deliveries use the format of the report's schedule."
            )
        schedule = report.schedule
        if schedule is None:
            raise BadUserInput(
                f"Report {report.id} has no S3 delivery settings (Schedule Export). Pass "
                "isPresignedUrl: true to get a download link, or configure S3 delivery on the report.",
                report_id=report.id,
            )
        return _RunOptions(Delivery.S3, schedule.format, schedule.compression, schedule)

    def _enqueue(
        self, connection: Connection, report: Report, options: _RunOptions, *, requested_by: str | None
    ) -> RunRecord:
        if options.schedule is None:
            return enqueue_run(
                self.engine,
                account_id=report.account_id,
                report_id=report.id,
                delivery=Delivery.DOWNLOAD,
                format=options.format,
                compression=options.compression,
                definition=report.definition.to_json(),
                requested_by=requested_by,
                connection=connection,
                max_active_runs=self.max_active_runs,
            )
        return enqueue_delivery(
            self.engine,
            report,
            options.schedule,
            at=utc_now(),
            requested_by=requested_by,
            connection=connection,
            max_active_runs=self.max_active_runs,
        )

    def run_status(
        self, account_id: str, report_id: str | None, run_id: str | None, *, client_id: str, memory_only: bool = False
    ) -> dict[str, Any]:
        """The status document of a run (by id, or the report's latest), its download link issued
        to the API client ``client_id``. With ``memory_only``, from the caches or not at all
        (``NotInMemory``)."""
        if run_id:
            nameable(run_id, "Run", account_id)
            run, document, public = self._run_and_document(account_id, run_id, memory_only=memory_only)
            if report_id and report_id != run.report_id:
                raise NotFound(f"Run {run_id} does not belong to report {report_id}.", run_id=run_id)
            if public is None:
                public = self._report_is_public(account_id, run.report_id, memory_only=memory_only)
            if not public:
                raise private_report(run.report_id)
            # A presigner (our storage on S3) may fetch credentials: that poll is not answered from memory.
            if memory_only and not self.links.links_without_io and _gets_a_link(run):
                raise NotInMemory
            return self._with_link(run, dict(document), client_id)
        if memory_only:
            raise NotInMemory
        if report_id:
            if not self._report_is_public(account_id, nameable(report_id, "Report", account_id)):
                raise private_report(report_id)
            latest = list_runs(self.engine, account_id, report_id, limit=1)
            if not latest:
                raise NotFound(
                    f"Report {report_id} has no runs yet; start one with processReport.", report_id=report_id
                )
            return self._with_link(latest[0], self._document(latest[0]), client_id)
        raise BadUserInput("Pass runId (from processReport's response), or reportId for its latest run.")

    def downloadable_run(self, account_id: str, run_id: str) -> RunRecord:
        """The Completed download run ``run_id`` of ``account_id`` while an API client may still
        fetch it: its report is public (the status poll's caches, so a report made private is
        refused within ``ACCESS_TTL_SECONDS``). NotFound for an unknown run or one without a
        file; Forbidden (``private_report``) once the report is private."""
        run, _, public = self._run_and_document(account_id, run_id, memory_only=False)
        if public is None:
            public = self._report_is_public(account_id, run.report_id)
        if not public:
            raise private_report(run.report_id)
        if not _gets_a_link(run):
            raise NotFound(f"Run {run_id} has no file to download.", run_id=run_id)
        self._refuse_if_expired(run, self.retention.expired_at(run, utc_now()))
        return run

    def refuse_if_removed(self, account_id: str, run_id: str) -> None:
        """``ResultExpired`` when the cleanup job has removed the file of ``run_id`` (read afresh:
        the caches may hold the run from before): a missing file is told apart from an expired one."""
        run = get_run(self.engine, account_id, run_id)
        self._refuse_if_expired(run, run.expired_at)

    @staticmethod
    def _refuse_if_expired(run: RunRecord, expired_at: datetime | None) -> None:
        if expired_at is not None:
            raise ResultExpired(
                f"The result of run {run.id} expired at {_timestamp(expired_at)}: results are kept for a "
                "limited time. Start a new run with processReport for a fresh file.",
                run_id=run.id,
                expired_at=_timestamp(expired_at),
            )

    def _run_and_document(
        self, account_id: str, run_id: str, *, memory_only: bool
    ) -> tuple[RunRecord, dict[str, Any], bool | None]:
        """The run, its status document without a link, and its report's access when it was read
        together with the run (None: ask the report-access cache)."""
        key = (account_id, run_id)
        finished = self.finished_runs.get(key, None)
        if finished is not None and self.retention.record_outlived(finished[0], utc_now()):
            self.finished_runs.discard(key)  # the cleanup job deletes it: ask the database
            finished = None
        if finished is not None:
            return finished[0], finished[1], None
        running = self.running_runs.get(key, None)
        if running is not None:
            return running
        if memory_only:
            raise NotInMemory
        read_at = self.report_access.clock()
        run, public = get_run_and_report_access(self.engine, account_id, run_id)
        self.report_access.put((account_id, run.report_id), public, read_at=read_at)
        document = self._queued_document(run)
        if run.state.is_final:
            self.finished_runs.put(key, (run, document), read_at=read_at)
        else:
            self.running_runs.put(key, (run, document, public), read_at=read_at)
        return run, document, public

    def cancel_run(self, account_id: str, run_id: str, *, client_id: str, actor: Actor) -> dict[str, Any]:
        """Cancel a run of a public report of ``account_id`` (database/runs.py ``cancel_run``) and
        answer its status document; a final run is answered unchanged."""
        nameable(run_id, "Run", account_id)
        run, document, public = self._run_and_document(account_id, run_id, memory_only=False)
        if public is None:
            public = self._report_is_public(account_id, run.report_id)
        if not public:
            raise private_report(run.report_id)
        if run.state.is_final:
            return self._with_link(run, dict(document), client_id)
        run = self.cancel(run_id, actor, account_id=account_id)
        return self._with_link(run, self._queued_document(run), client_id)

    def cancel(self, run_id: str, actor: Actor, *, account_id: str | None) -> RunRecord:
        """``cancel_run_by``; what the status caches of this process hold about the run is out of
        date then: forgotten."""
        run = cancel_run_by(self.engine, run_id, actor, account_id=account_id)
        self.running_runs.discard((run.account_id, run.id))
        if run.state is RunState.STARTED and self.on_cancel_requested is not None:
            self.on_cancel_requested(run.id)
        return run

    def run_changed(self, account_id: str, run_id: str) -> None:
        """A worker of this process claimed, finished or handed back the run: forget what the
        status caches hold about it while it ran."""
        self.running_runs.discard((account_id, run_id))

    def _report_is_public(self, account_id: str, report_id: str, *, memory_only: bool = False) -> bool:
        if memory_only:
            cached = self.report_access.get((account_id, report_id), None)
            if cached is None:
                raise NotInMemory
            return cached
        return self.report_access.get_or_load(
            (account_id, report_id), lambda: report_is_public(self.engine, account_id, report_id)
        )

    def run_history(self, account_id: str, report_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The report's latest runs, newest first: ``limit`` of them (None: the default page),
        at least one and at most ``MAX_HISTORY_PAGE``."""
        self.reports.public_report(account_id, report_id)
        page = DEFAULT_HISTORY_PAGE if limit is None else max(1, min(limit, MAX_HISTORY_PAGE))
        return [self.describe(run) for run in list_runs(self.engine, account_id, report_id, page)]

    def describe(self, run: RunRecord) -> dict[str, Any]:
        """The JSON a client sees: always status, counts, format and timestamps, and a queued
        run's ``queuePosition``; no link (a link is issued to an API client, by ``run_status``)."""
        return self._with_expiry(run, self._queued_document(run))

    def _queued_document(self, run: RunRecord) -> dict[str, Any]:
        """``_document``, plus a queued run's ``queuePosition`` (1: the next run a worker claims),
        in the workers' round-robin order across accounts. Read with the run, so a cached status
        holds the position it had when it was read."""
        status = self._document(run)
        if run.state is RunState.QUEUED and not _waiting_to_retry(run):
            position = run.queue_position or queue_position(self.engine, run)
            if position is not None:  # None: it left the queue since it was read
                status["queuePosition"] = position
        return status

    def _with_link(self, run: RunRecord, status: dict[str, Any], client_id: str) -> dict[str, Any]:
        """``status`` plus a fresh download link issued to ``client_id`` when ``run`` is a
        Completed download run whose file has not expired."""
        self._with_expiry(run, status)
        if _gets_a_link(run) and not status["expired"]:
            link = self.links.download_link(RunDownload(run, client_id))
            status["presignedUrl"] = link.url
            status["presignedUrlExpiresAt"] = _timestamp(link.expires_at)
        return status

    def _with_expiry(self, run: RunRecord, status: dict[str, Any]) -> dict[str, Any]:
        """``status`` with ``expired`` and ``expiredAt``, decided now: no cache holds them."""
        expired_at = self.retention.expired_at(run, utc_now()) if _gets_a_link(run) else None
        status["expired"] = expired_at is not None
        status["expiredAt"] = _timestamp(expired_at)
        return status

    @staticmethod
    def _document(run: RunRecord) -> dict[str, Any]:
        """The status of ``run`` but its download link: fixed once the run is final."""
        status: dict[str, Any] = {
            "runId": run.id,
            "reportId": run.report_id,
            "status": run.state.api_status,
            "state": run.state.value,
            "format": run.format,
            "delivery": run.delivery.value,
            "rowCount": run.row_count,
            "sizeBytes": run.size_bytes,
            "sha256": run.sha256,
            "attempts": run.attempts,
            "createdAt": _timestamp(run.created_at),
            "startedAt": _timestamp(run.started_at),
            "finishedAt": _timestamp(run.finished_at),
        }
        if run.state is RunState.FAILED or run.state is RunState.CANCELLED:
            status["errorCode"] = run.error_code
            status["errorMessage"] = run.error_message
        elif not run.state.is_final and run.error_code is not None:
            # Retried after a transient failure (application/run_retries.py): why, and when next.
            status["lastErrorCode"] = run.error_code
            status["lastErrorMessage"] = run.error_message
            if run.state is RunState.QUEUED and run.next_attempt_at is not None:
                status["nextAttemptAt"] = _timestamp(run.next_attempt_at)
        if run.state is RunState.STARTED:
            # Progress so far, as its worker's heartbeat last wrote it (0 before the first beat).
            status["rowsWritten"] = run.rows_written or 0
            status["bytesWritten"] = run.bytes_written or 0
            if run.cancel_requested_at is not None:
                status["cancelRequested"] = True
        if run.delivery is Delivery.S3:
            status["compression"] = run.compression
            if run.scheduled_for is not None:
                status["scheduledFor"] = _timestamp(run.scheduled_for)
            if run.state is RunState.COMPLETED:
                status["resultFilePath"] = run.result_key
        return status


def run_started(run: RunRecord, actor: Actor) -> AuditEvent:
    """The audit event of ``run`` queued by ``actor`` (an API client, or the scheduler)."""
    details: dict[str, Any] = {"reportId": run.report_id, "delivery": run.delivery.value, "format": run.format}
    if run.scheduled_for is not None:
        details["scheduledFor"] = _timestamp(run.scheduled_for)
    return AuditEvent(run.account_id, Action.RUN_STARTED, actor, "run", run.id, details)


def _waiting_to_retry(run: RunRecord) -> bool:
    """A queued run whose next attempt is not due yet: it has no place in the queue until then."""
    return run.next_attempt_at is not None and run.next_attempt_at > utc_now()


def run_joined(run: RunRecord, actor: Actor) -> AuditEvent:
    """The audit event of ``actor`` asking for a run identical to ``run``, which was queued or
    started already and answered instead (no second ``run.started``)."""
    details: dict[str, Any] = {"reportId": run.report_id, "delivery": run.delivery.value, "format": run.format}
    return AuditEvent(run.account_id, Action.RUN_JOINED, actor, "run", run.id, details)


@dataclass(frozen=True, slots=True)
class _RunOptions:
    """What a processReport request asks a run to make: a download or the schedule's S3 delivery."""

    delivery: Delivery
    format: str
    compression: str | None
    schedule: ScheduleSettings | None


@dataclass(frozen=True, slots=True)
class _RunRequest:
    report: Report
    options: _RunOptions
    requested_by: str | None
    actor: Actor | None
    idempotency_key: str | None
    force_new: bool

    @property
    def hash(self) -> str:
        """The SHA-256 of the caller's arguments, for its idempotency key: a download's default
        format spelled out or not is the same request; an S3 delivery's format is the schedule's,
        not an argument (an edited schedule does not make a retry another request)."""
        download = self.options.schedule is None
        canonical = {
            "reportId": self.report.id,
            "delivery": self.options.delivery.value,
            "format": self.options.format if download else None,
            "compression": self.options.compression if download else None,
            "forceNew": self.force_new,
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode("utf-8")).hexdigest()


def _check_idempotency_key(key: str) -> None:
    if not 0 < len(key) <= MAX_KEY_LENGTH or any(not character.isprintable() for character in key):
        raise BadUserInput(
            f"idempotencyKey must be 1 to {MAX_KEY_LENGTH} printable characters (a UUID is a good key).",
            length=len(key),
        )


def cancel_run_by(engine: Engine, run_id: str, actor: Actor, *, account_id: str | None) -> RunRecord:
    """Cancel ``run_id`` (of ``account_id``; None: any account's, the operator's CLI), with the
    audit event in the same transaction when this call changed the run; return the run as it now
    is (a queued run Cancelled, a started one with its cancel requested, a final one unchanged)."""
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection, connection.begin():
        run, changed = cancel_run(connection, run_id, account_id=account_id, message=_cancelled_by(actor))
        if changed:
            details: dict[str, Any] = {"reportId": run.report_id, "state": run.state.value}
            record_event(connection, AuditEvent(run.account_id, Action.RUN_CANCELLED, actor, "run", run.id, details))
    return run


def _cancelled_by(actor: Actor) -> str:
    """The message a cancelled run ends with: who cancelled it."""
    if actor.kind is ActorKind.API_CLIENT:
        return f"Cancelled by API client {actor.id}."
    if actor.kind is ActorKind.OPERATOR:
        return f"Cancelled by the operator{f' ({actor.id})' if actor.id else ''}."
    return f"Cancelled by {actor.kind.value}{f' {actor.id}' if actor.id else ''}."


def _gets_a_link(run: RunRecord) -> bool:
    return run.delivery is Delivery.DOWNLOAD and run.state is RunState.COMPLETED


def _download_format(export_format: str | None, compression: str | None) -> tuple[str, str | None]:
    chosen, gzip = parse_format_options(export_format, compression, default=ExportFormat(DEFAULT_DOWNLOAD_FORMAT))
    return chosen.value, gzip.value if gzip else None


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else format_utc(value, precise=True)


class RunDownload:
    """The file of a Completed download run, as its download link presents it. Only what the
    storage asks for is computed: a local folder's link needs the run id alone."""

    def __init__(self, run: RunRecord, issued_to: str) -> None:
        assert run.result_key is not None  # only Completed runs get a link
        self.key = run.result_key
        self.run_id = run.id
        self.issued_to = issued_to
        self._run = run

    @cached_property
    def file_name(self) -> str:
        return self._run.download_file_name

    @cached_property
    def content_type(self) -> str:
        return self._run.media_type
