"""The `qgjob` command: global options, the commands of each area, and the `run()` entry point.

The global options (`--server-url`, `--token`, or their `QGJOB_*` variables) are stored in the
Typer context and turned into a `Settings` by each command; nothing here reads module state.
"""

from __future__ import annotations

from typing import Annotated

import typer

from qgjob import __version__
from qgjob.cli import builds, github, jobs, migrate, server, specs, tokens, up, workers
from qgjob.cli.context import EXIT_FAILURE, GlobalOptions, exit_code_for
from qgjob.cli.output import describe_error, print_error
from qgjob.errors import QgjobError
from qgjob.settings import SettingsError

app = typer.Typer(
    name="qgjob",
    help="Queue AppWright end-to-end tests, follow them, and run the qgjob service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(jobs.app)
app.add_typer(server.app)
app.add_typer(tokens.app, name="token")
app.add_typer(workers.app)
app.add_typer(up.app)
app.add_typer(github.app, name="github")
app.add_typer(migrate.app)
app.add_typer(specs.app)
app.add_typer(builds.app, name="build")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"qgjob {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    server_url: Annotated[
        str | None,
        typer.Option(
            "--server-url",
            envvar="QGJOB_SERVER_URL",
            help="Base URL of the qgjob server (default: http://127.0.0.1:8000).",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="QGJOB_TOKEN",
            help="API token (default: the server's local admin token, on its own host).",
            show_default=False,
            show_envvar=True,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    ctx.obj = GlobalOptions(server_url=server_url, token=token)


def run() -> None:
    """Console-script entry point. Commands report their own errors; this is the last net."""
    try:
        app()
    except (QgjobError, SettingsError) as exc:
        print_error(describe_error(exc))
        raise SystemExit(exit_code_for(exc)) from None
    except Exception as exc:  # a bug: still one line, not a traceback
        print_error(f"unexpected {type(exc).__name__}: {exc}")
        raise SystemExit(EXIT_FAILURE) from None
