"""`uvm-reporting data ...` commands."""

from __future__ import annotations

import typer

data_app = typer.Typer(help="data commands.", no_args_is_help=True)
