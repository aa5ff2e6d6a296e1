"""`uvm-reporting runs ...` commands: the operator's hand on any account's runs."""

from __future__ import annotations

from typing import Annotated

import typer

from uvm_reporting.application.audit import operator_name
from uvm_reporting.application.report_runs import cancel_run_by
from uvm_reporting.cli import context
from uvm_reporting.cli.output import JsonOption, emit, reports_errors
from uvm_reporting.domain.audit import Actor
from uvm_reporting.domain.runs import RunState

runs_app = typer.Typer(help="Act on report runs of any account.", no_args_is_help=True)


@runs_app.command("cancel")
@reports_errors
def cancel(
    run_id: Annotated[str, typer.Argument(help="The run to cancel.", show_default=False)],
    as_json: bool = JsonOption,
) -> None:
    """Cancel a run: a queued run ends at once; a started one is stopped by its worker within
    about 2 seconds, its partial output removed. A finished run is left as it is."""
    run = cancel_run_by(context.database(), run_id, Actor.operator(operator_name()), account_id=None)
    if run.state is RunState.CANCELLED:
        text = f"Run {run.id} is cancelled."
    elif run.state is RunState.STARTED:
        text = f"Run {run.id} is being cancelled: its worker stops it within about 2 seconds."
    else:
        text = f"Run {run.id} had finished already ({run.state.api_status}); nothing to cancel."
    emit(
        {
            "runId": run.id,
            "accountId": run.account_id,
            "reportId": run.report_id,
            "status": run.state.api_status,
            "state": run.state.value,
            "cancelRequested": run.cancel_requested_at is not None,
        },
        as_json=as_json,
        text=text,
    )
