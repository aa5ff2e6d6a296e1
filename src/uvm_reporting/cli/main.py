"""The ``uvm-reporting`` command: admin commands, ``serve`` and ``demo``."""

from __future__ import annotations

import typer

from uvm_reporting.cli.accounts_commands import accounts_app
from uvm_reporting.cli.audit_commands import audit_app
from uvm_reporting.cli.cleanup_commands import cleanup
from uvm_reporting.cli.clients_commands import clients_app
from uvm_reporting.cli.data_commands import data_app
from uvm_reporting.cli.keys_commands import keys_app
from uvm_reporting.cli.reports_commands import reports_app
from uvm_reporting.cli.runs_commands import runs_app
from uvm_reporting.cli.scheduler_commands import scheduler
from uvm_reporting.cli.serve_commands import demo, serve
from uvm_reporting.cli.worker_commands import worker

app = typer.Typer(
    name="uvm-reporting",
    help="Self-hostable Reporting API for vulnerability-management data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(accounts_app, name="accounts")
app.add_typer(audit_app, name="audit")
app.add_typer(clients_app, name="clients")
app.add_typer(data_app, name="data")
app.add_typer(keys_app, name="keys")
app.add_typer(reports_app, name="reports")
app.add_typer(runs_app, name="runs")
app.command("serve")(serve)
app.command("demo")(demo)
app.command("worker")(worker)
app.command("scheduler")(scheduler)
app.command("cleanup")(cleanup)


def main() -> None:
    app()
