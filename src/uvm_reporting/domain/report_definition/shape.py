"""The first check of a definition: its shape (keys, JSON types, sizes), by pydantic models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from uvm_reporting.domain.problems import Problem, problems_from
from uvm_reporting.domain.report_definition.model import (
    MAX_COLUMNS,
    MAX_DESCRIPTION_LENGTH,
    MAX_FILTERS,
    MAX_LIMIT,
    MAX_NAME_LENGTH,
    MAX_SORT_KEYS,
    Visibility,
)


def check_shape(data: Mapping[str, Any]) -> tuple[RawDefinition | None, list[Problem]]:
    """The definition as pydantic read it, or None and the problems with its shape."""
    try:
        return RawDefinition.model_validate(dict(data)), []
    except ValidationError as error:
        return None, problems_from(error, allowed_keys=_MODEL_KEYS, message=_message)


class _Strict(BaseModel):
    # strict: JSON types as sent (no "10" for 10, no true for 1); frozen: parsed input is data.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RawFilter(_Strict):
    field: str
    op: str
    value: Any = None


class RawSortKey(_Strict):
    field: str
    direction: str = "asc"


class RawDefinition(_Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    entity: str
    columns: list[str] = Field(min_length=1, max_length=MAX_COLUMNS)
    filters: list[RawFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    sort: list[RawSortKey] = Field(default_factory=list, max_length=MAX_SORT_KEYS)
    limit: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    viewers: Visibility = "private"
    editors: Visibility = "private"
    schedule: Any = None  # checked by parse_schedule, whose problems carry their own paths

    @field_validator("viewers", "editors", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


_MODEL_KEYS = {
    "": tuple(RawDefinition.model_fields),
    "filters": tuple(RawFilter.model_fields),
    "sort": tuple(RawSortKey.model_fields),
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


def _message(error: Mapping[str, Any]) -> str:
    """pydantic's own error in the words a user reads."""
    loc = tuple(error["loc"])
    if error["type"] == "literal_error" and loc and loc[-1] in ("viewers", "editors"):
        return 'must be "public" or "private"'
    return _SIMPLE_MESSAGES.get(error["type"]) or _lower_first(str(error["msg"]))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
