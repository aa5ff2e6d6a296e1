"""Runs: the record of each execution of a report, and the work queue workers claim from.

A claim is one short transaction: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite (which takes the write lock first, so two claimers serialise). The
claimer holds a lease that it renews by heartbeat; a run whose lease expired (its worker was
killed) is claimed again, up to ``max_attempts``, then marked Failed with a reason that says so.

Fairness: accounts take turns. Each run gets a ``queue_round`` when it is queued: an account's
first active run enters at the round at the head of the queue, each further one a round after
the account's last. Workers claim the lowest round first, oldest first within a round. So an
account that queued 200 runs holds rounds r..r+199, and another account's single run, queued
later, enters at the head's round: at most one run of the first account (the one of the same
round, queued earlier) is claimed before it. A claim is one UPDATE whose subqueries are index
seeks (a lost run, else the head of the queue). The enqueue reads the account's active runs
(index look-ups), which also enforces its quota of active runs, and the head's round.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    Select,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)

from uvm_reporting.database.ids import new_id
from uvm_reporting.database.reports import Report, is_public_access
from uvm_reporting.database.tables import accounts, reports, runs
from uvm_reporting.domain.runs import Delivery, RunRecord, RunResult, RunState
from uvm_reporting.domain.schedule.object_keys import delivery_destination
from uvm_reporting.domain.schedule.settings import ScheduleSettings
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import NotFound, QuotaExceeded, RunErrorCode

RUNS_CHANNEL = "uvm_reporting_runs"  # PostgreSQL NOTIFY channel of newly queued runs
_ACTIVE_STATES = (RunState.QUEUED.value, RunState.STARTED.value)


def enqueue_run(
    engine: Engine,
    *,
    account_id: str,
    report_id: str,
    delivery: Delivery,
    format: str,
    definition: dict[str, Any],
    requested_by: str | None,
    compression: str | None = None,
    destination: dict[str, Any] | None = None,
    scheduled_for: datetime | None = None,
    connection: Connection | None = None,
    run_id: str | None = None,
    max_active_runs: int | None = None,
    fail_over_quota: bool = False,
) -> RunRecord:
    """Queue a run. ``destination`` holds an S3 run's bucket, key, region and role_arn.

    A second run for the same report and ``scheduled_for`` raises IntegrityError: that fire
    time has its run already. Pass ``connection`` to enqueue inside the caller's transaction,
    and ``run_id`` (a fresh ``new_id()``) when the destination must name the run beforehand.

    With ``max_active_runs``, an account that has that many runs queued or started already gets
    QuotaExceeded; with ``fail_over_quota`` the run is recorded as Failed with that error
    instead (a scheduled run: its fire time is not lost without a trace). The count and the
    insert are one transaction that holds the account's row lock (PostgreSQL) or the database's
    write lock (SQLite), so concurrent requests cannot pass the cap together.
    """
    values = {
        "id": run_id or new_id(),
        "account_id": account_id,
        "report_id": report_id,
        "state": RunState.QUEUED.value,
        "delivery": delivery.value,
        "format": format,
        "definition": definition,
        "requested_by": requested_by,
        "compression": compression,
        "destination": destination,
        "scheduled_for": scheduled_for,
        "attempts": 0,
        "created_at": utc_now(),
    }
    if connection is not None:
        return _insert_run(connection, values, max_active_runs, fail_over_quota)
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as own_connection, own_connection.begin():
        return _insert_run(own_connection, values, max_active_runs, fail_over_quota)


def enqueue_delivery(
    engine: Engine,
    report: Report,
    schedule: ScheduleSettings,
    *,
    at: datetime,
    requested_by: str | None,
    scheduled_for: datetime | None = None,
    connection: Connection | None = None,
    max_active_runs: int | None = None,
    fail_over_quota: bool = False,
) -> RunRecord:
    """A queued run delivering ``report`` to the bucket of its schedule, in the schedule's format,
    under the object key its settings give for ``at``."""
    run_id = new_id()
    return enqueue_run(
        engine,
        account_id=report.account_id,
        report_id=report.id,
        delivery=Delivery.S3,
        format=schedule.format,
        compression=schedule.compression,
        definition=report.definition.to_json(),
        requested_by=requested_by,
        destination=delivery_destination(schedule, report_name=report.name, report_id=report.id, run_id=run_id, at=at),
        scheduled_for=scheduled_for,
        connection=connection,
        run_id=run_id,
        max_active_runs=max_active_runs,
        fail_over_quota=fail_over_quota,
    )


def _insert_run(
    connection: Connection, values: dict[str, Any], max_active_runs: int | None, fail_over_quota: bool
) -> RunRecord:
    account_id = values["account_id"]
    postgresql = connection.dialect.name == "postgresql"
    if postgresql:
        # Serialises the enqueues of one account until commit. FOR NO KEY UPDATE does not block
        # the foreign-key checks of other inserts (FOR KEY SHARE), only enqueues of this account.
        # A statement of its own: the count below must see what the lock waited for.
        connection.execute(_LOCK_ACCOUNT, {"account_id": account_id})
    # On PostgreSQL with the NOTIFY of the run, delivered at commit, when the run becomes visible
    # (never, if this enqueue is refused): idle workers wake at once.
    read = _ENQUEUE_READ_NOTIFY if postgresql else _ENQUEUE_READ
    active, last_round, head_round, *_ = connection.execute(
        read, {"account_id": account_id, "run_id": values["id"]}
    ).one()
    if max_active_runs is not None and active >= max_active_runs:
        error = QuotaExceeded(
            f"Account {account_id} has {active} runs queued or running; the limit is {max_active_runs} "
            "per account. Start this run when one of them has finished.",
            active_runs=active,
            max_active_runs=max_active_runs,
        )
        if not fail_over_quota:
            raise error
        values.update(
            state=RunState.FAILED.value,
            finished_at=values["created_at"],
            error_code=error.run_error_code.value,
            error_message=error.message,
        )
    else:
        values["queue_round"] = head_round if last_round is None else max(head_round, last_round + 1)
    return _record(connection.execute(insert(runs).values(values).returning(*runs.c)).one())


# The round at the head of the queue: the lowest queued one; with nothing queued, the highest
# started one (so that rounds never go back while runs of earlier rounds still run); else 0.
_HEAD_ROUND = func.coalesce(
    select(func.min(runs.c.queue_round)).where(runs.c.state == RunState.QUEUED.value).scalar_subquery(),
    select(func.max(runs.c.queue_round)).where(runs.c.state == RunState.STARTED.value).scalar_subquery(),
    0,
)


# Built once: an enqueue only binds the account (and run) ids.
_LOCK_ACCOUNT = select(accounts.c.id).where(accounts.c.id == bindparam("account_id")).with_for_update(key_share=True)
_ACCOUNT_ACTIVE_RUNS = and_(runs.c.account_id == bindparam("account_id"), runs.c.state.in_(_ACTIVE_STATES))
_ENQUEUE_READ = select(
    select(func.count()).where(_ACCOUNT_ACTIVE_RUNS).scalar_subquery(),
    select(func.max(runs.c.queue_round)).where(_ACCOUNT_ACTIVE_RUNS).scalar_subquery(),
    _HEAD_ROUND,
)
_ENQUEUE_READ_NOTIFY = _ENQUEUE_READ.add_columns(func.pg_notify(RUNS_CHANNEL, bindparam("run_id")))


def lock_account_enqueues(connection: Connection, account_id: str) -> None:
    """Serialise the enqueues of ``account_id`` until the caller's transaction ends: on
    PostgreSQL the account's row lock that ``enqueue_run`` takes too; on SQLite the caller's
    ``BEGIN IMMEDIATE`` holds the write lock already. Reads made after it (an identical active
    run, an idempotency key) see every enqueue of the account that committed before."""
    if connection.dialect.name == "postgresql":
        connection.execute(_LOCK_ACCOUNT, {"account_id": account_id})


def find_active_identical_run(
    connection: Connection,
    *,
    account_id: str,
    report_id: str,
    delivery: Delivery,
    format: str,
    compression: str | None,
    definition: dict[str, Any],
) -> RunRecord | None:
    """The oldest queued or started run of ``report_id`` that processReport queued (not a
    schedule's fire time) with the same delivery, format, compression and report definition,
    or None. The account's active runs are few (its quota), so the definitions are compared
    here rather than as JSON in SQL, where the two databases disagree."""
    query = (
        select(runs)
        .where(
            _ACCOUNT_ACTIVE_RUNS,
            runs.c.report_id == report_id,
            runs.c.delivery == delivery.value,
            runs.c.format == format,
            runs.c.compression.is_(None) if compression is None else runs.c.compression == compression,
            runs.c.scheduled_for.is_(None),
        )
        .order_by(runs.c.created_at, runs.c.id)
    )
    for row in connection.execute(query, {"account_id": account_id}):
        if row.definition == definition:
            return _record(row)
    return None


def queue_position(engine: Engine, run: RunRecord) -> int | None:
    """Where ``run`` stands in the claim order while it is queued (``_QUEUE_POSITION``), else None."""
    with engine.connect() as connection:
        position: int | None = connection.execute(
            select(_QUEUE_POSITION).where(runs.c.id == run.id)
        ).scalar_one_or_none()
    return position


def get_run(engine: Engine, account_id: str, run_id: str, *, connection: Connection | None = None) -> RunRecord:
    """The run ``run_id`` of ``account_id``; another account's run is NotFound too. Pass
    ``connection`` to read it in the caller's transaction."""
    if connection is not None:
        return _get_in_account(connection, account_id, run_id)
    with engine.connect() as own_connection:
        return _get_in_account(own_connection, account_id, run_id)


def _get_in_account(connection: Connection, account_id: str, run_id: str) -> RunRecord:
    try:
        return _get(connection, and_(runs.c.id == run_id, runs.c.account_id == account_id))
    except LookupError:
        raise NotFound(f"Run {run_id} was not found in account {account_id}.", run_id=run_id) from None


def get_run_and_report_access(engine: Engine, account_id: str, run_id: str) -> tuple[RunRecord, bool]:
    """The run ``run_id`` of ``account_id`` (NotFound like ``get_run``) and whether its report is
    public, in one query: a status poll needs both on every call."""
    row = _RUN_AND_REPORT_ACCESS.one_or_none(engine, run_id=run_id, account_id=account_id)
    if row is None:
        raise NotFound(f"Run {run_id} was not found in account {account_id}.", run_id=run_id)
    return _record(row), is_public_access(row.report_viewers, row.report_editors)


class _HotSelect:
    """A single-row SELECT for the hottest path (status polls), run on the pooled DB-API
    connection: SQLAlchemy compiles the SQL and provides each column's result conversion once per
    dialect, which saves most of its per-call cost (statement execution machinery, and on SQLite
    the explicit BEGIN/ROLLBACK around a read). One SELECT reads one consistent snapshot by itself;
    on PostgreSQL the pool's reset on return ends the transaction it opened.
    """

    def __init__(self, statement: Select[Any]) -> None:
        self._statement = statement
        # By dialect, driver and parameter style: what the SQL text and the conversions depend on.
        self._prepared: dict[tuple[str, str, str], tuple[str, tuple[str, ...] | None, list[tuple[str, Any]]]] = {}

    def one_or_none(self, engine: Engine, **params: str) -> SimpleNamespace | None:
        sql, positions, columns = self._prepare(engine.dialect)
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(sql, tuple(params[name] for name in positions) if positions is not None else params)
                row = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            connection.close()
        if row is None:
            return None
        return SimpleNamespace(
            **{
                name: value if convert is None else convert(value)
                for (name, convert), value in zip(columns, row, strict=True)
            }
        )

    def _prepare(self, dialect: Dialect) -> tuple[str, tuple[str, ...] | None, list[tuple[str, Any]]]:
        key = (dialect.name, dialect.driver, dialect.paramstyle)
        prepared = self._prepared.get(key)
        if prepared is None:
            compiled = self._statement.compile(dialect=dialect)
            positions = tuple(compiled.positiontup or ()) if compiled.positional else None
            columns = [
                (str(column.key), column.type.dialect_impl(dialect).result_processor(dialect, None))
                for column in self._statement.selected_columns
            ]
            prepared = self._prepared[key] = (compiled.string, positions, columns)
        return prepared


_CLAIM_ORDER = (runs.c.queue_round, runs.c.created_at, runs.c.id)
_ahead = runs.alias("ahead")
# A queued run's place in the claim order: 1 when it is next, else 1 + the queued runs (of any
# account) claimed before it; NULL for a run that is not queued (the count is then not made).
# Constants inline in the SQL: the status poll's _HotSelect binds its named parameters only.
_QUEUED: ColumnElement[str] = literal_column(f"'{RunState.QUEUED.value}'")
_QUEUE_POSITION = case(
    (
        runs.c.state == _QUEUED,
        select(func.count() + literal_column("1"))
        .select_from(_ahead)
        .where(
            _ahead.c.state == _QUEUED,
            tuple_(_ahead.c.queue_round, _ahead.c.created_at, _ahead.c.id) < tuple_(*_CLAIM_ORDER),
        )
        .scalar_subquery(),
    ),
    else_=None,
).label("queue_position")

# Both tables are filtered by the caller's account; a queued run's position is read with it.
_RUN_AND_REPORT_ACCESS = _HotSelect(
    select(
        runs,
        reports.c.viewers.label("report_viewers"),
        reports.c.editors.label("report_editors"),
        _QUEUE_POSITION,
    )
    .join(reports, and_(reports.c.id == runs.c.report_id, reports.c.account_id == runs.c.account_id))
    .where(runs.c.id == bindparam("run_id"), runs.c.account_id == bindparam("account_id"))
)


def find_run(engine: Engine, run_id: str) -> RunRecord | None:
    """Any account's run: only for callers that proved their right by other means (a signed link)."""
    with engine.connect() as connection:
        try:
            return _get(connection, runs.c.id == run_id)
        except LookupError:
            return None


def list_runs(engine: Engine, account_id: str, report_id: str, limit: int = 20) -> list[RunRecord]:
    query = (
        select(runs)
        .where(runs.c.account_id == account_id, runs.c.report_id == report_id)
        .order_by(runs.c.created_at.desc(), runs.c.id)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [_record(row) for row in connection.execute(query)]


def claim_next_run(
    engine: Engine,
    worker_id: str,
    *,
    lease_seconds: int,
    max_attempts: int,
    now: datetime | None = None,
    given_up: list[RunRecord] | None = None,
) -> RunRecord | None:
    """Claim the oldest runnable run for ``worker_id``, or None when there is none.

    Runs given up on the way (Failed as WORKER_LOST, or Cancelled when their cancel was asked
    for) are added to ``given_up``: their last attempt's partial output is the caller's to remove."""
    now = now or utc_now()
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection, connection.begin():
        lease_expired = and_(runs.c.state == RunState.STARTED.value, runs.c.lease_expires_at < now)
        # A lost run that someone asked to cancel is not run again: it ends as they asked.
        cancelled_runs = connection.execute(
            update(runs)
            .where(lease_expired, runs.c.cancel_requested_at.is_not(None))
            .values(state=RunState.CANCELLED.value, finished_at=now, lease_expires_at=None)
            .returning(*runs.c)
        ).all()
        lost_runs = connection.execute(
            update(runs)
            .where(lease_expired, runs.c.attempts >= max_attempts)
            .values(
                state=RunState.FAILED.value,
                finished_at=now,
                error_code=RunErrorCode.WORKER_LOST.value,
                error_message=(
                    # Lost workers and retries after transient failures share the attempts.
                    f"The worker running this export's attempt {max_attempts} of {max_attempts} stopped "
                    "responding; giving up. Start a new run; if it fails again, contact the operator."
                ),
            )
            .returning(*runs.c)
        ).all()
        if given_up is not None:
            given_up.extend(_record(row) for row in (*cancelled_runs, *lost_runs))
        # A run whose worker was lost was claimed in its turn already: it goes first. Then the
        # head of the queue in the fair order (module docstring). Each is an index seek, and the
        # claim is one statement: the second is only looked up when the first finds nothing.
        lost = _next_run.c.state == RunState.STARTED.value, _next_run.c.lease_expires_at < now
        # A run waiting for its next attempt (run_retries) is passed over until its time: the
        # index scan in claim order skips it, and it keeps its place in the order.
        due = or_(_next_run.c.next_attempt_at.is_(None), _next_run.c.next_attempt_at <= now)
        candidate = func.coalesce(
            _first_unlocked(*lost).scalar_subquery(),
            _first_unlocked(_next_run.c.state == RunState.QUEUED.value, due).scalar_subquery(),
        )
        row = connection.execute(
            update(runs)
            .where(runs.c.id == candidate)
            .values(
                state=RunState.STARTED.value,
                worker_id=worker_id,
                attempts=runs.c.attempts + 1,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                started_at=now,
                next_attempt_at=None,
            )
            .returning(*runs.c)
        ).one_or_none()
        return None if row is None else _record(row)


_next_run = runs.alias("next_run")


def _first_unlocked(*condition: Any) -> Select[Any]:
    """The first run in the claim order that meets ``condition`` and no other claimer holds."""
    return (
        select(_next_run.c.id)
        .where(*condition)
        .order_by(_next_run.c.queue_round, _next_run.c.created_at, _next_run.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


def cancel_run(connection: Connection, run_id: str, *, account_id: str | None, message: str) -> tuple[RunRecord, bool]:
    """Cancel the run ``run_id`` (of ``account_id``; None: any account's, for the operator) in
    the caller's transaction; return the run as it now is, and whether this call changed it.

    A queued run ends Cancelled at once. A started run gets ``cancel_requested_at`` (and the
    message it will end with); its worker stops it (``finish_cancelled_run``). A final run is
    left as it is. Each step is one conditional UPDATE, so a cancel racing a claim or the run's
    completion leaves exactly one outcome. Another account's run is NotFound."""
    now = utc_now()
    owned = runs.c.id == run_id if account_id is None else and_(runs.c.id == run_id, runs.c.account_id == account_id)
    changed = connection.execute(
        update(runs)
        .where(owned, runs.c.state == RunState.QUEUED.value)
        .values(state=RunState.CANCELLED.value, finished_at=now, error_message=message)
    ).rowcount
    if not changed:
        changed = connection.execute(
            update(runs)
            .where(owned, runs.c.state == RunState.STARTED.value, runs.c.cancel_requested_at.is_(None))
            .values(cancel_requested_at=now, error_message=message)
        ).rowcount
    try:
        return _get(connection, owned), changed == 1
    except LookupError:
        where = "" if account_id is None else f" in account {account_id}"
        raise NotFound(f"Run {run_id} was not found{where}.", run_id=run_id) from None


def finish_cancelled_run(engine: Engine, run_id: str, worker_id: str) -> bool:
    """End a started run whose cancel was asked for as Cancelled; False when it is no longer
    ours (finished, or reclaimed) or nobody asked to cancel it."""
    with engine.begin() as connection:
        updated = connection.execute(
            update(runs)
            .where(*_held_by(run_id, worker_id), runs.c.cancel_requested_at.is_not(None))
            .values(state=RunState.CANCELLED.value, finished_at=utc_now(), lease_expires_at=None)
        )
    return updated.rowcount == 1


def beat(
    engine: Engine,
    run_id: str,
    worker_id: str,
    *,
    lease_seconds: int | None,
    rows_written: int,
    bytes_written: int,
) -> tuple[bool, bool]:
    """A heartbeat of a run in progress: write its progress and, with ``lease_seconds``, renew
    its lease, in one UPDATE that also reads whether a cancel was asked for. Returns ``(still
    ours, cancel requested)``."""
    values: dict[str, Any] = {"rows_written": rows_written, "bytes_written": bytes_written}
    if lease_seconds is not None:
        values["lease_expires_at"] = utc_now() + timedelta(seconds=lease_seconds)
    with engine.begin() as connection:
        row = connection.execute(
            update(runs).where(*_held_by(run_id, worker_id)).values(values).returning(runs.c.cancel_requested_at)
        ).one_or_none()
    return row is not None, row is not None and row.cancel_requested_at is not None


def complete_run(engine: Engine, run_id: str, worker_id: str, result: RunResult) -> bool:
    with engine.begin() as connection:
        updated = connection.execute(
            update(runs)
            .where(*_held_by(run_id, worker_id))
            .values(
                state=RunState.COMPLETED.value,
                finished_at=utc_now(),
                lease_expires_at=None,
                row_count=result.row_count,
                size_bytes=result.size_bytes,
                sha256=result.sha256,
                result_key=result.result_key,
                # An earlier attempt's transient failure (run_retries) is no part of the outcome.
                error_code=None,
                error_message=None,
            )
        )
    return updated.rowcount == 1


def fail_run(engine: Engine, run_id: str, worker_id: str, code: RunErrorCode, message: str) -> bool:
    with engine.begin() as connection:
        updated = connection.execute(
            update(runs)
            .where(*_held_by(run_id, worker_id))
            .values(
                state=RunState.FAILED.value,
                finished_at=utc_now(),
                lease_expires_at=None,
                error_code=code.value,
                error_message=message,
            )
        )
    return updated.rowcount == 1


def retry_run(
    engine: Engine, run_id: str, worker_id: str, code: RunErrorCode, message: str, *, next_attempt_at: datetime
) -> bool:
    """Queue a started run again after a transient failure: no worker claims it before
    ``next_attempt_at``; its attempt stays counted, and the failure is kept as its last cause."""
    with engine.begin() as connection:
        updated = connection.execute(
            update(runs)
            .where(*_held_by(run_id, worker_id))
            .values(
                state=RunState.QUEUED.value,
                worker_id=None,
                lease_expires_at=None,
                started_at=None,
                next_attempt_at=next_attempt_at,
                error_code=code.value,
                error_message=message,
            )
        )
    return updated.rowcount == 1


def release_run(engine: Engine, run_id: str, worker_id: str) -> bool:
    """Hand a started run back to the queue (a worker shutting down before finishing it); not
    one whose cancel was asked for (``finish_cancelled_run`` ends that one)."""
    with engine.begin() as connection:
        updated = connection.execute(
            update(runs)
            .where(*_held_by(run_id, worker_id), runs.c.cancel_requested_at.is_(None))
            .values(
                state=RunState.QUEUED.value,
                worker_id=None,
                lease_expires_at=None,
                started_at=None,
                attempts=runs.c.attempts - 1,
            )
        )
    return updated.rowcount == 1


def _held_by(run_id: str, worker_id: str) -> tuple[Any, ...]:
    return (runs.c.id == run_id, runs.c.worker_id == worker_id, runs.c.state == RunState.STARTED.value)


def _get(connection: Connection, condition: Any) -> RunRecord:
    row = connection.execute(select(runs).where(condition)).one_or_none()
    if row is None:
        raise LookupError("no such run")
    return _record(row)


def _record(row: Any) -> RunRecord:
    return RunRecord(
        id=row.id,
        account_id=row.account_id,
        report_id=row.report_id,
        state=RunState(row.state),
        delivery=Delivery(row.delivery),
        format=row.format,
        compression=row.compression,
        destination=row.destination,
        scheduled_for=row.scheduled_for,
        definition=row.definition,
        requested_by=row.requested_by,
        attempts=row.attempts,
        worker_id=row.worker_id,
        lease_expires_at=row.lease_expires_at,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        row_count=row.row_count,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        result_key=row.result_key,
        error_code=row.error_code,
        error_message=row.error_message,
        queue_round=row.queue_round,
        queue_position=getattr(row, "queue_position", None),
        next_attempt_at=row.next_attempt_at,
        expired_at=row.expired_at,
        cancel_requested_at=row.cancel_requested_at,
        rows_written=row.rows_written,
        bytes_written=row.bytes_written,
    )
