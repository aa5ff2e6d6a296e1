"""The second check of a definition: against the field catalog.

Field paths must exist, operators must suit their field's type, and filter values must be of
that type; they are converted to typed Python values on the way.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from uvm_reporting.domain.catalog import EntitySpec, FieldSpec, FieldType, ResolvedField, field_paths, resolve_field
from uvm_reporting.domain.messages import json_kind, quoted
from uvm_reporting.domain.problems import Problem
from uvm_reporting.domain.report_definition.model import (
    DIRECTIONS,
    ENUM_CHECKED_OPS,
    LIST_OPS,
    MAX_LIST_VALUES,
    MAX_STRING_VALUE_LENGTH,
    NO_VALUE_OPS,
    OP_FIELD_TYPES,
    TEXT_TYPES,
    Direction,
    Filter,
    FilterOp,
    FilterValue,
    Scalar,
    SortKey,
    value_to_json,
)
from uvm_reporting.domain.report_definition.shape import RawFilter, RawSortKey


class Problems:
    """The problems found so far, in the order they were found."""

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


def _resolve(entity: EntitySpec, path: str, where: str, problems: Problems) -> ResolvedField | None:
    resolved = resolve_field(entity, path)
    if resolved is None:
        problems.add(where, _unknown_field(entity, path))
    return resolved


def check_columns(entity: EntitySpec, columns: Sequence[str], problems: Problems) -> None:
    first_seen: dict[str, int] = {}
    for index, path in enumerate(columns):
        where = f"columns[{index}]"
        if path in first_seen:
            problems.add(where, f"{quoted(path)} is listed twice (first at columns[{first_seen[path]}])")
            continue
        first_seen[path] = index
        _resolve(entity, path, where, problems)


def check_sort(entity: EntitySpec, keys: Sequence[RawSortKey], problems: Problems) -> list[SortKey]:
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


def check_filter(entity: EntitySpec, index: int, raw: RawFilter, problems: Problems) -> Filter | None:
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
    json_value = value_to_json(value)
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
