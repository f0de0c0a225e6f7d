"""`qgjob token create`: issue an API token (admin only) and show its raw value once."""

from __future__ import annotations

from typing import Annotated

import typer

from qgjob.cli.context import JsonFlag, call_api, reporting_errors, settings_of
from qgjob.cli.inputs import parse_choice, require_org_id, require_text
from qgjob.cli.output import as_json, info, make_console, print_json, success
from qgjob.types import Role

app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)


@app.command()
def create(
    ctx: typer.Context,
    org_id: Annotated[str, typer.Option("--org-id", help="Organization the token acts for.")],
    role: Annotated[str, typer.Option("--role", help="|".join(r.value for r in Role))],
    name: Annotated[
        str | None, typer.Option("--name", help="A label to recognise the token by.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Create a token; its raw value is printed this once and cannot be shown again."""
    out = make_console()
    with reporting_errors({"org_id": "--org-id", "role": "--role", "name": "--name"}):
        settings = settings_of(ctx)
        org = require_org_id(org_id)
        chosen_role = parse_choice(Role, role, option="--role")
        label = None if name is None else require_text(name, option="--name")
        issued = call_api(
            settings,
            lambda client: client.create_token(org_id=org, role=chosen_role, name=label),
        )
    if json_output:
        print_json(out, as_json(issued))
        return
    success(out, f"Token created for org {issued.org_id} with role {issued.role}")
    info(out, f"Token ID: {issued.token_id}")
    info(out, f"Token: {issued.token}")
    info(out, "Copy it now: it will not be shown again.")
