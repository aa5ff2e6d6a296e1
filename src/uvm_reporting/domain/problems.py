"""How a document's validation reports what is wrong: problems with their location.

Both documents a user writes (a report definition and its schedule) are pydantic models. A
validator that finds a problem raises :func:`problem` with the message the user reads; pydantic
collects every problem of a document at once, and :func:`problems_from` turns them into
:class:`Problem` items located like ``filters[0].op`` or ``schedule.delivery.bucket``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

_PROBLEM = "problem"
# An unknown key can be any length; its location shows the start of it.
_MAX_KEY_TEXT = 80


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def problem(message: str) -> PydanticCustomError:
    """What a validator raises: ``message`` is shown as it is."""
    # Through the context, so that braces in the message ("{run_id}") are not a template.
    return PydanticCustomError(_PROBLEM, "{message}", {"message": message})


def location(loc: Sequence[int | str], prefix: str = "") -> str:
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if len(part) <= _MAX_KEY_TEXT else part[:_MAX_KEY_TEXT] + "..."
            text += f".{key}" if text else key
    return text


def problems_from(
    error: ValidationError,
    *,
    allowed_keys: Mapping[str, tuple[str, ...]],
    message: Callable[[Mapping[str, Any]], str] | None = None,
    prefix: str = "",
    unknown_keys_first: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> list[Problem]:
    """The problems of a failed validation, in the order the document's models check them.

    ``allowed_keys`` names the keys of each object by its first location part ("" for the
    document itself); ``message`` words pydantic's own errors (types, sizes) for the user.
    ``unknown_keys_first`` names an object's unknown keys before its other problems.
    ``aliases`` maps a field's name to the key it reads, where the two differ (pydantic names
    a missing key by its field).
    """
    errors = error.errors()
    if unknown_keys_first:
        errors = _unknown_keys_first(errors)
    problems = []
    for item in errors:
        loc: tuple[int | str, ...] = tuple(item["loc"])
        if aliases:
            loc = tuple(aliases.get(part, part) if isinstance(part, str) else part for part in loc)
        if item["type"] == _PROBLEM:
            text = str(item["msg"])
        elif item["type"] == "extra_forbidden":
            keys = allowed_keys.get("" if len(loc) == 1 else str(loc[0]))
            text = "unknown key" + (f"; allowed keys are {', '.join(keys)}" if keys else "")
        elif message is not None:
            text = message(item)
        else:
            text = str(item["msg"])
        problems.append(Problem(location(loc, prefix), text))
    return problems


def _unknown_keys_first(errors: Sequence[Any]) -> list[Any]:
    # pydantic names unknown keys after an object's fields; move each before its object's others.
    result: list[Any] = []
    for item in errors:
        if item["type"] != "extra_forbidden":
            result.append(item)
            continue
        parent = tuple(item["loc"][:-1])
        index = next(
            (
                i
                for i, other in enumerate(result)
                if tuple(other["loc"][: len(parent)]) == parent
                and not (other["type"] == "extra_forbidden" and tuple(other["loc"][:-1]) == parent)
            ),
            len(result),
        )
        result.insert(index, item)
    return result
