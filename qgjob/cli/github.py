"""`qgjob github manifest`: the GitHub App manifest for one-step App creation."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from qgjob.cli.context import reporting_errors
from qgjob.cli.inputs import BadInput

app = typer.Typer(help="Set up qgjob as a GitHub App.", no_args_is_help=True)


@app.command()
def manifest(
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            envvar="QGJOB_PUBLIC_URL",
            help="The URL GitHub reaches qgjob at, e.g. https://qgjob.acme.example.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="The App's name on GitHub.")] = "qgjob",
) -> None:
    """Print the App manifest JSON (permissions, events, webhook URL); see docs/github-app.md."""
    from github_app.manifest import app_manifest

    with reporting_errors():
        if not public_url:
            raise BadInput(
                "--public-url is required (or QGJOB_PUBLIC_URL): the https:// URL GitHub "
                "sends webhooks to"
            )
        try:
            document = app_manifest(public_url=public_url, name=name)
        except ValueError as exc:
            option = "--name" if "name" in str(exc) else "--public-url"
            raise BadInput(f"{option}: {exc}") from None
    typer.echo(json.dumps(document, indent=2))
