"""`uvm-reporting clients ...` commands."""

from __future__ import annotations

import typer

clients_app = typer.Typer(help="clients commands.", no_args_is_help=True)
