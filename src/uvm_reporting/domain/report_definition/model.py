"""A report definition as parsed: what a report shows, filtered and sorted how."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from uvm_reporting.domain.catalog import (
    ENTITIES,
    EntitySpec,
    FieldSpec,
    FieldType,
    Relation,
    ResolvedField,
    resolve_field,
)
from uvm_reporting.domain.messages import quoted
from uvm_reporting.domain.schedule.settings import ScheduleSettings
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
    """A validated report definition. Build it with :func:`~.parsing.parse_report_definition`."""

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
        data["value"] = value_to_json(item.value)
    return data


def value_to_json(value: FilterValue) -> Any:
    if isinstance(value, tuple):
        return [value_to_json(v) for v in value]
    if isinstance(value, datetime):  # before date: a datetime is a date
        return format_utc(value, exact=True)
    if isinstance(value, date):
        return value.isoformat()
    return value
