"""``uvm-reporting serve`` and ``uvm-reporting demo``: run the API (with in-process workers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from uvm_reporting.cli import context
from uvm_reporting.cli.output import reports_errors
from uvm_reporting.log_lines import configure_logging
from uvm_reporting.settings import Settings

if TYPE_CHECKING:
    from uvm_reporting.services import Services

# The server stack is imported inside the commands: admin commands start faster without it.

HostOption = Annotated[str, typer.Option("--host", help="Interface to listen on.")]
PortOption = Annotated[int, typer.Option("--port", help="TCP port to listen on.")]


@reports_errors
def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    no_workers: Annotated[bool, typer.Option("--no-workers", help="Serve the API only; no run workers.")] = False,
) -> None:
    """Serve the token endpoint, GraphQL API and downloads, with worker threads running the exports."""
    from uvm_reporting.services import build_services  # noqa: PLC0415

    _serve(build_services(_settings_for(host, port)), host, port, run_workers=not no_workers)


@reports_errors
def demo(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    findings: Annotated[int, typer.Option("--findings", help="Findings to generate the first time.")] = 2000,
) -> None:
    """Set up a demo account (data, a public report, API client credentials), print how to call it, serve."""
    from uvm_reporting.cli.demo_setup import prepare_demo, print_demo_instructions  # noqa: PLC0415
    from uvm_reporting.services import build_services  # noqa: PLC0415

    settings = _settings_for(host, port)
    services = build_services(settings)
    demo_account = prepare_demo(services.engine, findings=findings)
    print_demo_instructions(demo_account, settings)
    _serve(services, host, port, run_workers=True)


def _settings_for(host: str, port: int) -> Settings:
    settings = context.settings()
    if "public_url" not in settings.model_fields_set:
        # Without an explicit public URL, links and the token issuer name where we listen.
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - a comparison
        settings = settings.model_copy(update={"public_url": f"http://{shown_host}:{port}"})
    return settings


def _serve(services: Services, host: str, port: int, *, run_workers: bool) -> None:
    import uvicorn  # noqa: PLC0415

    from uvm_reporting.api.app import create_app  # noqa: PLC0415

    level = services.settings.log_level
    configure_logging(level, services.settings.log_format)
    typer.echo(f"uvm-reporting: {services.settings.profile_summary()}")
    app = create_app(services, run_workers=run_workers)
    # uvicorn's own access log would print query strings, which hold download-link signatures.
    # log_config=None: uvicorn's records go through our one-line formatter too.
    uvicorn.run(
        app, host=host, port=port, log_level=level.lower(), proxy_headers=True, access_log=False, log_config=None
    )
