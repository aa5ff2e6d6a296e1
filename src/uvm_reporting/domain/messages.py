"""How validation messages show the values a user sent."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def quoted(text: str, limit: int = 80) -> str:
    """``text`` in JSON quotes: control characters stay visible; long input is cut short."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return json.dumps(text, ensure_ascii=False)


def json_kind(value: Any) -> str:
    """What kind of JSON value ``value`` is, in words ("a number", "null", ...)."""
    if value is None:
        return "null"
    kinds: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (bool, "a boolean"),  # before numbers: a bool is an int
        ((int, float), "a number"),
        (str, "a string"),
        ((list, tuple), "a list"),
        (Mapping, "an object"),
    )
    return next((kind for types, kind in kinds if isinstance(value, types)), type(value).__name__)
