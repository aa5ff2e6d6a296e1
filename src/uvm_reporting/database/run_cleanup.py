"""What the cleanup job (application/cleanup.py) reads and changes in the runs table.

Every change is safe with several cleanup jobs at once: a run is marked expired by a
conditional UPDATE (only the job that marks it counts it), and old records are deleted in
short batches that skip rows another job is deleting (PostgreSQL) or wait for its write lock
(SQLite).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, and_, delete, not_, select, tuple_, update

from uvm_reporting.database.tables import runs
from uvm_reporting.domain.runs import Delivery, RunState

BATCH = 500

_FINAL_STATES = tuple(state.value for state in RunState if state.is_final)
# A Completed download run whose file is still in our storage.
_FILE_KEPT = and_(
    runs.c.state == RunState.COMPLETED.value,
    runs.c.delivery == Delivery.DOWNLOAD.value,
    runs.c.expired_at.is_(None),
)


@dataclass(frozen=True, slots=True)
class StoredResult:
    """The file of a Completed download run, in our storage."""

    run_id: str
    account_id: str
    result_key: str
    finished_at: datetime


def results_finished_before(
    engine: Engine, cutoff: datetime, *, after: tuple[datetime, str] | None = None, limit: int = BATCH
) -> list[StoredResult]:
    """The files still kept of download runs finished before ``cutoff``, oldest first, from
    just past ``after`` (the last one of the previous page: (finished_at, run id))."""
    query = select(runs.c.id, runs.c.account_id, runs.c.result_key, runs.c.finished_at).where(
        _FILE_KEPT, runs.c.finished_at < cutoff, runs.c.result_key.is_not(None)
    )
    if after is not None:
        query = query.where(tuple_(runs.c.finished_at, runs.c.id) > tuple_(*after))
    query = query.order_by(runs.c.finished_at, runs.c.id).limit(limit)
    with engine.connect() as connection:
        return [
            StoredResult(row.id, row.account_id, row.result_key, row.finished_at) for row in connection.execute(query)
        ]


def mark_results_expired(engine: Engine, run_ids: list[str], at: datetime) -> set[str]:
    """Record that the files of ``run_ids`` were deleted, in one transaction; the ids this call
    marked (not those another job marked first)."""
    if not run_ids:
        return set()
    with engine.begin() as connection:
        marked = connection.execute(
            update(runs).where(runs.c.id.in_(run_ids), _FILE_KEPT).values(expired_at=at).returning(runs.c.id)
        )
        return set(marked.scalars())


def _outlived(cutoff: datetime) -> ColumnElement[bool]:
    # A final run finished before the cutoff, unless its file is still kept: the record that
    # names a file goes only after the file (the result retention comes first).
    return and_(runs.c.state.in_(_FINAL_STATES), runs.c.finished_at < cutoff, not_(_FILE_KEPT))


def runs_finished_before(engine: Engine, cutoff: datetime, *, limit: int | None = None) -> list[str]:
    """The ids of the final runs whose records ``delete_runs_finished_before`` would delete."""
    query = select(runs.c.id).where(_outlived(cutoff)).order_by(runs.c.finished_at, runs.c.id).limit(limit)
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())


def delete_runs_finished_before(engine: Engine, cutoff: datetime, *, batch: int = BATCH) -> list[str]:
    """Delete the records of final runs finished before ``cutoff`` (but those whose file is still
    kept), ``batch`` per short transaction; the ids this call deleted."""
    deleted: list[str] = []
    while True:
        ids = select(runs.c.id).where(_outlived(cutoff)).limit(batch)
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                ids = ids.with_for_update(skip_locked=True)
            # The condition again: a row another job deleted meanwhile is simply not found.
            doomed = and_(runs.c.id.in_(ids.scalar_subquery()), _outlived(cutoff))
            gone = list(connection.execute(delete(runs).where(doomed).returning(runs.c.id)).scalars())
        deleted.extend(gone)
        if len(gone) < batch:
            return deleted
