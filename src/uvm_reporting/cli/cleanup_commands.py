"""``uvm-reporting cleanup``: one pass of the cleanup job (application/cleanup.py), or with
``--dry-run`` what it would remove. ``serve`` and ``scheduler`` run the same job every
``UVM_REPORTING_CLEANUP_INTERVAL_SECONDS``; this command is for cron or a look before a change."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from uvm_reporting.cli import context
from uvm_reporting.cli.output import JsonOption, emit, reports_errors
from uvm_reporting.log_lines import configure_logging

ITEMS_SHOWN = 20
"""Items listed per kind in the text output (--json lists them all)."""


@reports_errors
def cleanup(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed, and remove nothing.")] = False,
    as_json: bool = JsonOption,
) -> None:
    """Remove expired result files, leftovers of dead writes, and records past their time."""
    from uvm_reporting.services import cleanup_job  # noqa: PLC0415 - admin commands start faster without it

    settings = context.settings()
    if not as_json:
        configure_logging(settings.log_level)
    removals = cleanup_job(settings, context.database()).run_once(dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    lines = []
    for removal in removals:
        line = f"{verb} {removal.count} {removal.kind}"
        if removal.failed:
            line += f" ({removal.failed} failed; see the log)"
        if removal.note:
            line += f" ({removal.note})"
        lines.append(line)
        lines.extend(f"  {escape(item)}" for item in removal.items[:ITEMS_SHOWN])
        if len(removal.items) > ITEMS_SHOWN:
            lines.append(f"  ... and {len(removal.items) - ITEMS_SHOWN} more (--json lists all)")
    emit(
        {"dryRun": dry_run, "removed": [removal.as_json() for removal in removals]},
        as_json=as_json,
        text="\n".join(lines) or "nothing to clean up: retention and run history are off",
    )
