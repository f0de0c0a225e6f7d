"""`qgjob server`: run the qgjob service in the foreground until interrupted.

The service's modules (and their dependencies: asyncpg, embedded PostgreSQL) are imported only
when this command runs, so that every other command starts fast and works without them.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from qgjob.cli.context import reporting_errors, settings_of
from qgjob.cli.inputs import BadInput, require_text

app = typer.Typer()


@app.command()
def server(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to bind (default: QGJOB_HOST or 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port to bind (default: QGJOB_PORT or 8000).")
    ] = None,
) -> None:
    """Start the qgjob service (with an embedded PostgreSQL unless QGJOB_DATABASE_URL is set)."""
    with reporting_errors():
        settings = settings_of(ctx)
        if port is not None and not 0 < port < 65536:
            raise BadInput(f"--port must be between 1 and 65535 (got {port})")
        settings = dataclasses.replace(
            settings,
            host=settings.host if host is None else require_text(host, option="--host"),
            port=settings.port if port is None else port,
        )
        from app.main import StartupError, serve

        try:
            serve(settings)
        except StartupError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None
