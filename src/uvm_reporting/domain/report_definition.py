"""A report's definition: the JSON object a user saves and an API client runs.

Pure, no I/O. Parsing is two passes. Pydantic checks the shape (keys, JSON types, sizes) and
rejects unknown keys; then the definition is checked against the field catalog (field paths,
operators per field type, filter values per type) and filter values are converted to typed
Python values. Every problem found in a pass is reported at once, each with its location
(``filters[0].op``), in one :class:`BadUserInput`.

The optional ``schedule`` object (scheduled export) is checked by
:func:`uvm_reporting.domain.schedule.validation.parse_schedule`; its problems join the same error.

The documented format lives in ``docs/report-definition.md``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from uvm_reporting.domain.catalog import (
    ENTITIES,
    EntitySpec,
    FieldSpec,
    FieldType,
    Relation,
    ResolvedField,
    field_paths,
    resolve_field,
)
from uvm_reporting.domain.messages import json_kind, quoted
from uvm_reporting.domain.schedule.settings import ScheduleSettings
from uvm_reporting.domain.schedule.validation import parse_schedule
from uvm_reporting.domain.timestamps import format_utc
from uvm_reporting.errors import BadUserInput

MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 2000
MAX_LIMIT = 10_000_000
MAX_COLUMNS = 200
MAX_FILTERS = 200
MAX_SORT_KEYS = 50
MAX_LIST_VALUES = 1000
MAX_STRING_VALUE_LENGTH = 1000
# A message listing thousands of problems helps nobody; the first ones point the way.
MAX_REPORTED_PROBLEMS = 20


class FilterOp(StrEnum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    BETWEEN = "between"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    IS_NULL = "is_null"
    IS_NOT_NULL = "is_not_null"


ALL_FIELD_TYPES = frozenset(FieldType)
TEXT_TYPES = frozenset({FieldType.STRING, FieldType.TEXT})
ORDERED_TYPES = frozenset({FieldType.NUMBER, FieldType.TIMESTAMP, FieldType.DATE})

# Which field types each operator applies to; the docs and their test read this table too.
OP_FIELD_TYPES: dict[FilterOp, frozenset[FieldType]] = {
    FilterOp.EQ: ALL_FIELD_TYPES,
    FilterOp.NE: ALL_FIELD_TYPES,
    FilterOp.IN: ALL_FIELD_TYPES,
    FilterOp.NOT_IN: ALL_FIELD_TYPES,
    FilterOp.LT: ORDERED_TYPES,
    FilterOp.LTE: ORDERED_TYPES,
    FilterOp.GT: ORDERED_TYPES,
    FilterOp.GTE: ORDERED_TYPES,
    FilterOp.BETWEEN: ORDERED_TYPES,
    FilterOp.CONTAINS: TEXT_TYPES,
    FilterOp.STARTS_WITH: TEXT_TYPES,
    FilterOp.IS_NULL: ALL_FIELD_TYPES,
    FilterOp.IS_NOT_NULL: ALL_FIELD_TYPES,
}
LIST_OPS = frozenset({FilterOp.IN, FilterOp.NOT_IN})
NO_VALUE_OPS = frozenset({FilterOp.IS_NULL, FilterOp.IS_NOT_NULL})
# Substring operators match text, so an enum field's value list does not constrain them.
ENUM_CHECKED_OPS = frozenset({FilterOp.EQ, FilterOp.NE, FilterOp.IN, FilterOp.NOT_IN})

Direction = Literal["asc", "desc"]
Visibility = Literal["public", "private"]
DIRECTIONS: tuple[Direction, ...] = ("asc", "desc")

Scalar = str | float | datetime | date
FilterValue = Scalar | tuple[Scalar, ...] | None


# --- The parsed definition -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filter:
    """One filter; ``value`` is typed: float, aware UTC datetime, date or str (a tuple for lists)."""

    field: str
    op: FilterOp
    value: FilterValue
    resolved: ResolvedField = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SortKey:
    field: str
    direction: Direction
    resolved: ResolvedField = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ResolvedColumn:
    """A column of the report with its catalog field (the exporter formats by ``type``)."""

    path: str
    spec: FieldSpec
    relation: Relation | None = None

    @property
    def type(self) -> FieldType:
        return self.spec.type


@dataclass(frozen=True, slots=True)
class ReportDefinition:
    """A validated report definition. Build it with :func:`parse_report_definition`."""

    name: str
    entity: str
    columns: tuple[str, ...]
    filters: tuple[Filter, ...] = ()
    sort: tuple[SortKey, ...] = ()
    limit: int | None = None
    viewers: Visibility = "private"
    editors: Visibility = "private"
    description: str | None = None
    schedule: ScheduleSettings | None = None

    @property
    def is_public(self) -> bool:
        return self.viewers == "public" and self.editors == "public"

    @property
    def entity_spec(self) -> EntitySpec:
        return ENTITIES[self.entity]

    def resolve(self, path: str) -> ResolvedField:
        """The catalog field of a path this definition uses (validated, so always known)."""
        resolved = resolve_field(self.entity_spec, path)
        if resolved is None:  # only reachable for a definition built by hand, bypassing parsing
            raise BadUserInput(f"unknown field {quoted(path)} for entity {self.entity}", path=path)
        return resolved

    @property
    def resolved_columns(self) -> tuple[ResolvedColumn, ...]:
        columns = []
        for path in self.columns:
            resolved = self.resolve(path)
            columns.append(ResolvedColumn(path, resolved.spec, resolved.relation))
        return tuple(columns)

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form: storing it and parsing it again gives an equal definition."""
        data: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            data["description"] = self.description
        data["entity"] = self.entity
        data["columns"] = list(self.columns)
        data["filters"] = [_filter_to_json(f) for f in self.filters]
        data["sort"] = [{"field": s.field, "direction": s.direction} for s in self.sort]
        if self.limit is not None:
            data["limit"] = self.limit
        data["viewers"] = self.viewers
        data["editors"] = self.editors
        if self.schedule is not None:
            data["schedule"] = self.schedule.to_json()
        return data


def _filter_to_json(item: Filter) -> dict[str, Any]:
    data: dict[str, Any] = {"field": item.field, "op": item.op.value}
    if item.op not in NO_VALUE_OPS:
        data["value"] = _value_to_json(item.value)
    return data


def _value_to_json(value: FilterValue) -> Any:
    if isinstance(value, tuple):
        return [_value_to_json(v) for v in value]
    if isinstance(value, datetime):  # before date: a datetime is a date
        return format_utc(value, exact=True)
    if isinstance(value, date):
        return value.isoformat()
    return value


# --- Pass 1: the shape, with pydantic ----------------------------------------------------------


class _Strict(BaseModel):
    # strict: JSON types as sent (no "10" for 10, no true for 1); frozen: parsed input is data.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _RawFilter(_Strict):
    field: str
    op: str
    value: Any = None


class _RawSortKey(_Strict):
    field: str
    direction: str = "asc"


class _RawDefinition(_Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    entity: str
    columns: list[str] = Field(min_length=1, max_length=MAX_COLUMNS)
    filters: list[_RawFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    sort: list[_RawSortKey] = Field(default_factory=list, max_length=MAX_SORT_KEYS)
    limit: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    viewers: Visibility = "private"
    editors: Visibility = "private"
    schedule: Any = None  # checked by parse_schedule, whose problems carry their own paths

    @field_validator("viewers", "editors", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


_MODEL_KEYS = {
    "": tuple(_RawDefinition.model_fields),
    "filters": tuple(_RawFilter.model_fields),
    "sort": tuple(_RawSortKey.model_fields),
}

_SIMPLE_MESSAGES = {
    "missing": "is required",
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "int_type": "must be an integer",
    "none_required": "must be null",
}


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def _location(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if len(part) <= 80 else part[:80] + "..."  # an unknown key can be any length
            text += f".{key}" if text else key
    return text


def _pydantic_problem(error: Mapping[str, Any]) -> Problem:
    loc: tuple[int | str, ...] = tuple(error["loc"])
    kind = error["type"]
    path = _location(loc)
    if kind == "extra_forbidden":
        model = "" if len(loc) == 1 else str(loc[0])
        allowed = _MODEL_KEYS.get(model)
        suffix = f"; allowed keys are {', '.join(allowed)}" if allowed else ""
        return Problem(path, f"unknown key{suffix}")
    if kind == "literal_error" and loc and loc[-1] in ("viewers", "editors"):
        return Problem(path, 'must be "public" or "private"')
    message = _SIMPLE_MESSAGES.get(kind) or _lower_first(str(error["msg"]))
    return Problem(path, message)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


# --- Pass 2: against the catalog ---------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(Problem(path, message))


class _InvalidValueError(ValueError):
    """A filter value that does not fit its field; the message says why.

    ``index`` is the position of the offending item when the value is a list.
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


def _unknown_field(entity: EntitySpec, path: str) -> str:
    message = f"unknown field {quoted(path)} for entity {entity.name}"
    close = difflib.get_close_matches(path, field_paths(entity), n=1, cutoff=0.6)
    if close:
        message += f" (did you mean {quoted(close[0])}?)"
    return message


def _resolve(entity: EntitySpec, path: str, where: str, problems: _Problems) -> ResolvedField | None:
    resolved = resolve_field(entity, path)
    if resolved is None:
        problems.add(where, _unknown_field(entity, path))
    return resolved


def _check_columns(entity: EntitySpec, columns: Sequence[str], problems: _Problems) -> None:
    first_seen: dict[str, int] = {}
    for index, path in enumerate(columns):
        where = f"columns[{index}]"
        if path in first_seen:
            problems.add(where, f"{quoted(path)} is listed twice (first at columns[{first_seen[path]}])")
            continue
        first_seen[path] = index
        _resolve(entity, path, where, problems)


def _check_sort(entity: EntitySpec, keys: Sequence[_RawSortKey], problems: _Problems) -> list[SortKey]:
    parsed: list[SortKey] = []
    first_seen: dict[str, int] = {}
    for index, key in enumerate(keys):
        where = f"sort[{index}]"
        resolved = _resolve(entity, key.field, f"{where}.field", problems)
        if key.field in first_seen:
            problems.add(f"{where}.field", f"{quoted(key.field)} is already sorted on at sort[{first_seen[key.field]}]")
        first_seen.setdefault(key.field, index)
        if key.direction not in DIRECTIONS:
            problems.add(f"{where}.direction", f'{quoted(key.direction)} is not a direction; use "asc" or "desc"')
            continue
        direction: Direction = "asc" if key.direction == "asc" else "desc"
        if resolved is not None:
            parsed.append(SortKey(key.field, direction, resolved))
    return parsed


def _check_filter(entity: EntitySpec, index: int, raw: _RawFilter, problems: _Problems) -> Filter | None:
    where = f"filters[{index}]"
    resolved = _resolve(entity, raw.field, f"{where}.field", problems)
    try:
        op = FilterOp(raw.op)
    except ValueError:
        problems.add(
            f"{where}.op",
            f"{quoted(raw.op)} is not an operator; use one of {', '.join(o.value for o in FilterOp)}",
        )
        return None
    if resolved is None:
        return None
    spec = resolved.spec
    accepted = OP_FIELD_TYPES[op]
    if spec.type not in accepted:
        kinds = " and ".join(sorted(t.value for t in accepted))
        problems.add(
            f"{where}.op",
            f"{quoted(op.value)} does not apply to {spec.type.value} field "
            f"{quoted(raw.field)}; it accepts {kinds} fields",
        )
        return None
    try:
        value = _filter_value(op, spec, raw.value)
    except _InvalidValueError as error:
        item = "" if error.index is None else f"[{error.index}]"
        problems.add(f"{where}.value{item}", str(error))
        return None
    return Filter(raw.field, op, value, resolved)


def _filter_value(op: FilterOp, spec: FieldSpec, value: Any) -> FilterValue:
    if op in NO_VALUE_OPS:
        if value is not None:
            raise _InvalidValueError(f"must be omitted (or null) for {op.value}")
        return None
    if value is None:
        hint = "; to match empty values use is_null" if op in (FilterOp.EQ, FilterOp.NE) else ""
        raise _InvalidValueError(f"is required for {op.value}{hint}")
    if op in LIST_OPS or op is FilterOp.BETWEEN:
        if not isinstance(value, list | tuple):
            raise _InvalidValueError(f"must be a list for {op.value}")
        if op is FilterOp.BETWEEN:
            return _between_value(spec, value)
        if not value:
            raise _InvalidValueError(f"must be a non-empty list for {op.value}")
        if len(value) > MAX_LIST_VALUES:
            raise _InvalidValueError(f"may hold at most {MAX_LIST_VALUES} values, not {len(value)}")
        items = []
        for position, item in enumerate(value):
            try:
                items.append(_scalar(spec, item, check_enum=True))
            except _InvalidValueError as error:
                raise _InvalidValueError(str(error), position) from None
        return tuple(items)
    if isinstance(value, list | tuple):
        raise _InvalidValueError(f"must be a single value for {op.value}, not a list")
    return _scalar(spec, value, check_enum=op in ENUM_CHECKED_OPS)


def _between_value(spec: FieldSpec, value: Sequence[Any]) -> tuple[Scalar, ...]:
    if len(value) != 2:
        raise _InvalidValueError(f"must be a list of exactly 2 values [low, high] for between, not {len(value)}")
    bounds = []
    for position, item in enumerate(value):
        try:
            bounds.append(_scalar(spec, item, check_enum=False))
        except _InvalidValueError as error:
            raise _InvalidValueError(str(error), position) from None
    low, high = bounds
    if _greater(low, high):
        raise _InvalidValueError(f"low {_value_text(low)} is greater than high {_value_text(high)}")
    return (low, high)


def _greater(low: Scalar, high: Scalar) -> bool:
    # Both sides were converted for the same field, so they share a type.
    if isinstance(low, datetime) and isinstance(high, datetime):
        return low > high
    if isinstance(low, datetime) or isinstance(high, datetime):
        return False
    if isinstance(low, date) and isinstance(high, date):
        return low > high
    if isinstance(low, float) and isinstance(high, float):
        return low > high
    return False


def _value_text(value: Scalar) -> str:
    json_value = _value_to_json(value)
    return quoted(json_value) if isinstance(json_value, str) else str(json_value)


_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME_PART = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
_NAIVE_TIMESTAMP_RE = re.compile(_TIME_PART)
_TIMESTAMP_RE = re.compile(_TIME_PART + r"([Zz]|[+-][0-9]{2}:[0-9]{2})")
_TIMESTAMP_EXAMPLE = "an ISO-8601 timestamp with a time zone, e.g. 2026-03-01T10:00:00Z"


def _scalar(spec: FieldSpec, value: Any, *, check_enum: bool) -> Scalar:
    if spec.type in TEXT_TYPES:
        return _string_value(spec, value, check_enum=check_enum)
    if spec.type is FieldType.NUMBER:
        return _number_value(value)
    if spec.type is FieldType.TIMESTAMP:
        return _timestamp_value(value)
    return _date_value(value)


def _string_value(spec: FieldSpec, value: Any, *, check_enum: bool) -> str:
    if not isinstance(value, str):
        raise _InvalidValueError(
            f"expected a string for {spec.type.value} field {quoted(spec.name)}, got {json_kind(value)}"
        )
    if len(value) > MAX_STRING_VALUE_LENGTH:
        raise _InvalidValueError(f"is longer than {MAX_STRING_VALUE_LENGTH} characters")
    if check_enum and spec.allowed_values and value not in spec.allowed_values:
        raise _InvalidValueError(
            f"{quoted(value)} is not a value of {quoted(spec.name)}; use one of "
            f"{', '.join(quoted(v) for v in spec.allowed_values)}"
        )
    return value


def _number_value(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _InvalidValueError(f"expected a number, got {json_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise _InvalidValueError("is too large a number") from None
    if not math.isfinite(number):
        raise _InvalidValueError("must be a finite number")
    return number


def _timestamp_value(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _InvalidValueError(f"expected {_TIMESTAMP_EXAMPLE}, got {json_kind(value)}")
    # A date or a local time is ambiguous by hours; say so rather than guess a zone.
    if _DATE_RE.fullmatch(value) or _NAIVE_TIMESTAMP_RE.fullmatch(value):
        raise _InvalidValueError(f"{quoted(value)} has no time zone; use {_TIMESTAMP_EXAMPLE}")
    if not _TIMESTAMP_RE.fullmatch(value):
        raise _InvalidValueError(f"{quoted(value)} is not {_TIMESTAMP_EXAMPLE}")
    try:
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _InvalidValueError(f"{quoted(value)} is not a valid timestamp") from None


def _date_value(value: Any) -> date:
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        shown = quoted(value) if isinstance(value, str) else json_kind(value)
        raise _InvalidValueError(f"expected a date as YYYY-MM-DD, got {shown}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _InvalidValueError(f"{quoted(value)} is not a valid date") from None


# --- Entry point -------------------------------------------------------------------------------


def parse_report_definition(data: Mapping[str, Any]) -> ReportDefinition:
    """Validate a definition (decoded JSON) and return it typed; :class:`BadUserInput` if invalid.

    The error's message names every problem with its location; ``details`` carries ``path`` (the
    first problem's location) and ``problems`` (a list of ``{"path", "message"}``).
    """
    if not isinstance(data, Mapping):
        raise _error([Problem("", f"a report definition must be a JSON object, not {json_kind(data)}")])
    schedule, schedule_problems = _parse_schedule(data.get("schedule"))
    try:
        raw = _RawDefinition.model_validate(dict(data))
    except ValidationError as error:
        raise _error([_pydantic_problem(e) for e in error.errors()] + schedule_problems) from None

    problems = _Problems()
    name = raw.name.strip()
    if not name:
        problems.add("name", "must not be blank")
    entity = ENTITIES.get(raw.entity)
    if entity is None:
        problems.add("entity", f"{quoted(raw.entity)} is not an entity; use one of {', '.join(ENTITIES)}")
        raise _error(problems.items + schedule_problems)
    _check_columns(entity, raw.columns, problems)
    filters = [_check_filter(entity, index, item, problems) for index, item in enumerate(raw.filters)]
    sort = _check_sort(entity, raw.sort, problems)
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


def _parse_schedule(data: Any) -> tuple[ScheduleSettings | None, list[Problem]]:
    if data is None:  # no schedule: the report runs on request only
        return None, []
    schedule, problems = parse_schedule(data, "schedule")
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
