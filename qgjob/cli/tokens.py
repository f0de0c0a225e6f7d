"""`qgjob token create|list|revoke`: issue an API token (its raw value shown once), list the
tokens an admin manages, revoke one for good. Admin tokens only."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from qgjob.cli.context import JsonFlag, call_api, reporting_errors, settings_of
from qgjob.cli.inputs import BadInput, parse_choice, parse_uuid, require_org_id, require_text
from qgjob.cli.output import as_json, format_time, info, make_console, print_json, success
from qgjob.models import TokenRecord
from qgjob.types import Role

app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)


@app.command()
def create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help="|".join(r.value for r in Role))],
    org_id: Annotated[
        str | None,
        typer.Option(
            "--org-id",
            help="Organization the token acts for (leave it out for a worker token that "
            "serves every org; fleet-wide admins only).",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="A label to recognise the token by.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Create a token; its raw value is printed this once and cannot be shown again."""
    out = make_console()
    with reporting_errors({"org_id": "--org-id", "role": "--role", "name": "--name"}):
        settings = settings_of(ctx)
        chosen_role = parse_choice(Role, role, option="--role")
        if org_id is None and chosen_role is not Role.WORKER:
            raise BadInput(
                f"missing option --org-id (a {chosen_role} token acts for one org; only a "
                "worker token may serve every org)"
            )
        org = None if org_id is None else require_org_id(org_id)
        label = None if name is None else require_text(name, option="--name")
        issued = call_api(
            settings,
            lambda client: client.create_token(org_id=org, role=chosen_role, name=label),
        )
    if json_output:
        print_json(out, as_json(issued))
        return
    serves = f"org {issued.org_id}" if issued.org_id else "every org"
    success(out, f"Token created for {serves} with role {issued.role}")
    info(out, f"Token ID: {issued.token_id}")
    info(out, f"Token: {issued.token}")
    info(out, "Copy it now: it will not be shown again.")


@app.command("list")
def list_tokens(
    ctx: typer.Context,
    org_id: Annotated[
        str | None,
        typer.Option("--org-id", help="Only this org's (a fleet-wide admin sees every org's)."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """List API tokens, newest first: id, org, role, name, created and revoked (never the
    raw values)."""
    out = make_console()
    with reporting_errors({"org_id": "--org-id"}):
        settings = settings_of(ctx)
        org = None if org_id is None else require_org_id(org_id)
        found = call_api(settings, lambda client: client.list_tokens(org_id=org))
    if json_output:
        print_json(out, {"tokens": [as_json(token) for token in found]})
        return
    if not found:
        info(out, "No tokens.")
        return
    out.print(_tokens_table(found))


@app.command()
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Option("--token-id", help="The token to revoke.")],
    json_output: JsonFlag = False,
) -> None:
    """Revoke a token for good: the server refuses it from then on (other replicas within
    a few seconds). Revoking it again changes nothing."""
    out = make_console()
    with reporting_errors():
        settings = settings_of(ctx)
        wanted = parse_uuid(token_id, option="--token-id")
        revoked = call_api(settings, lambda client: client.revoke_token(wanted))
    if json_output:
        print_json(out, as_json(revoked))
        return
    name = f" ({revoked.name})" if revoked.name else ""
    success(out, f"Token {revoked.token_id}{name} revoked at {format_time(revoked.revoked_at)}")


def _tokens_table(tokens: list[TokenRecord]) -> Table:
    table = Table(title="Tokens", title_justify="left")
    for column in ("Token ID", "Org", "Role", "Name", "Created", "Revoked"):
        table.add_column(column, no_wrap=column != "Name")
    for token in tokens:
        table.add_row(
            token.token_id,
            token.org_id or "(every org)",
            str(token.role),
            Text(token.name or "-"),
            format_time(token.created_at),
            Text(format_time(token.revoked_at), style="red") if token.revoked_at else "-",
        )
    return table
