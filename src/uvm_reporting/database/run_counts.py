"""Figures of the runs table for the metrics: runs by state and error code, and the queue.

Both are read when metrics are scraped. The counts group the whole table, which retention keeps
to the run history's length; the queue figures are seeks on the (state, created_at) index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from uvm_reporting.database.tables import runs
from uvm_reporting.domain.runs import RunState


@dataclass(frozen=True, slots=True)
class RunCount:
    state: str
    error_code: str | None
    runs: int


@dataclass(frozen=True, slots=True)
class QueueFigures:
    depth: int
    oldest_created_at: datetime | None


def count_runs_by_state(engine: Engine) -> list[RunCount]:
    query = select(runs.c.state, runs.c.error_code, func.count()).group_by(runs.c.state, runs.c.error_code)
    with engine.connect() as connection:
        return [RunCount(state, code, int(count)) for state, code, count in connection.execute(query)]


def queue_figures(engine: Engine) -> QueueFigures:
    query = select(func.count(), func.min(runs.c.created_at)).where(runs.c.state == RunState.QUEUED.value)
    with engine.connect() as connection:
        depth, oldest = connection.execute(query).one()
    return QueueFigures(int(depth), oldest)
