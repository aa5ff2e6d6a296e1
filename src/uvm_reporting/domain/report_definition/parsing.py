"""Parsing a report definition: its shape, then the catalog, then its schedule; all problems at once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from uvm_reporting.domain.catalog import ENTITIES
from uvm_reporting.domain.messages import json_kind, quoted
from uvm_reporting.domain.problems import Problem
from uvm_reporting.domain.report_definition.catalog_checks import Problems, check_columns, check_filter, check_sort
from uvm_reporting.domain.report_definition.model import MAX_REPORTED_PROBLEMS, ReportDefinition
from uvm_reporting.domain.report_definition.shape import check_shape
from uvm_reporting.domain.schedule.settings import ScheduleSettings
from uvm_reporting.domain.schedule.validation import parse_schedule
from uvm_reporting.errors import BadUserInput


def parse_report_definition(
    data: Mapping[str, Any], *, min_schedule_interval: timedelta | None = None
) -> ReportDefinition:
    """Validate a definition (decoded JSON) and return it typed; :class:`BadUserInput` if invalid.

    ``min_schedule_interval``: when saving, the shortest time allowed between two fire times of
    its schedule (a stored definition is read back without it).

    The error's message names every problem with its location; ``details`` carries ``path`` (the
    first problem's location) and ``problems`` (a list of ``{"path", "message"}``).
    """
    if not isinstance(data, Mapping):
        raise _error([Problem("", f"a report definition must be a JSON object, not {json_kind(data)}")])
    nul_problems = _nul_characters(data)
    if nul_problems:
        raise _error(nul_problems)
    schedule, schedule_problems = _parse_schedule(data.get("schedule"), min_schedule_interval)
    raw, shape_problems = check_shape(data)
    if raw is None:
        raise _error(shape_problems + schedule_problems)

    problems = Problems()
    name = raw.name.strip()
    if not name:
        problems.add("name", "must not be blank")
    entity = ENTITIES.get(raw.entity)
    if entity is None:
        problems.add("entity", f"{quoted(raw.entity)} is not an entity; use one of {', '.join(ENTITIES)}")
        raise _error(problems.items + schedule_problems)
    check_columns(entity, raw.columns, problems)
    filters = [check_filter(entity, index, item, problems) for index, item in enumerate(raw.filters)]
    sort = check_sort(entity, raw.sort, problems)
    if problems.items or schedule_problems:
        raise _error(problems.items + schedule_problems)
    return ReportDefinition(
        name=name,
        entity=entity.name,
        columns=tuple(raw.columns),
        filters=tuple(f for f in filters if f is not None),
        sort=tuple(sort),
        limit=raw.limit,
        viewers=raw.viewers,
        editors=raw.editors,
        description=raw.description,
        schedule=schedule,
    )


def _nul_characters(data: Mapping[str, Any]) -> list[Problem]:
    """A problem for each string holding NUL (U+0000): PostgreSQL stores no such text, and no
    name, path or filter value needs one. A loop, not recursion: any depth of JSON is fine."""
    problems: list[Problem] = []
    pending: list[tuple[str, Any]] = [("", data)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str) and "\x00" in value:
            problems.append(Problem(path, "must not contain the NUL character (U+0000)"))
        elif isinstance(value, Mapping):
            pending.extend((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
    return sorted(problems, key=lambda problem: problem.path)


def _parse_schedule(data: Any, min_interval: timedelta | None) -> tuple[ScheduleSettings | None, list[Problem]]:
    if data is None:  # no schedule: the report runs on request only
        return None, []
    schedule, problems = parse_schedule(data, "schedule", min_interval=min_interval)
    return schedule, [Problem(path, message) for path, message in problems]


def _error(problems: Iterable[Problem]) -> BadUserInput:
    items = list(problems)
    shown = [str(p) for p in items[:MAX_REPORTED_PROBLEMS]]
    if len(items) > MAX_REPORTED_PROBLEMS:
        shown.append(f"and {len(items) - MAX_REPORTED_PROBLEMS} more")
    message = "; ".join(shown)
    if len(items) > 1:
        message = f"The report definition has {len(items)} problems: {message}"
    return BadUserInput(
        message,
        path=items[0].path if items else "",
        problems=[{"path": p.path, "message": p.message} for p in items],
    )
