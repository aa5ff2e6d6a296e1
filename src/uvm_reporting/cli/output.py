"""How every admin command reports: a human line, or with ``--json`` exactly one JSON object."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from uvm_reporting.errors import UvmReportingError

console = Console(highlight=False)
error_console = Console(stderr=True, highlight=False)

JsonOption = typer.Option(False, "--json", help="Print exactly one JSON object instead of text.")

P = ParamSpec("P")
R = TypeVar("R")


def emit(result: dict[str, Any], *, as_json: bool, text: str) -> None:
    """Print ``result`` as one JSON object, or ``text`` for a person."""
    if as_json:
        typer.echo(json.dumps(result, default=str, sort_keys=True))
    else:
        console.print(text)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn our typed errors into a clear message and exit code 2, never a traceback.

    With ``--json`` the error is the one JSON object printed: ``{"error": {"code", "message"}}``.
    """

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except UvmReportingError as error:
            if kwargs.get("as_json"):
                typer.echo(
                    json.dumps({"error": {"code": error.code, "message": error.message, **error.details}}, default=str)
                )
            else:
                error_console.print(f"[bold red]error[/] ({error.code}): {error.message}")
            raise typer.Exit(2) from error

    return wrapper
