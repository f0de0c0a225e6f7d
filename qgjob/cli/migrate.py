"""`qgjob migrate`: apply the database migrations and exit, for deploys that migrate as a
separate step (a Kubernetes Job, a Compose service) before rolling out new servers.

Runs against `QGJOB_DATABASE_URL` only: the embedded database migrates when its server
starts. Migrations run under an advisory lock, so running it twice, or while servers
start, is safe.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from qgjob.cli.context import EXIT_FAILURE, reporting_errors, settings_of
from qgjob.cli.inputs import BadInput
from qgjob.cli.output import info, make_console, print_json, success

app = typer.Typer()


@app.command()
def migrate(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Apply pending database migrations to QGJOB_DATABASE_URL and exit."""
    out = make_console()
    with reporting_errors():
        settings = settings_of(ctx)
        if settings.database_url is None:
            raise BadInput(
                "QGJOB_DATABASE_URL is not set; `qgjob migrate` migrates an external "
                "PostgreSQL (the embedded one migrates when `qgjob server` starts)"
            )
        from app.main import StartupError
        from app.schema import apply_migrations

        try:
            applied, version = asyncio.run(apply_migrations(settings))
        except StartupError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(EXIT_FAILURE) from None
    if json_output:
        print_json(out, {"applied": applied, "version": version})
        return
    if applied:
        success(out, f"Applied migrations {', '.join(map(str, applied))}")
    else:
        info(out, "Nothing to apply")
    info(out, f"Schema version: {version}")
