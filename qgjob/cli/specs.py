"""`qgjob specs`: list the spec files a glob matches, for CI discovery.

Prints one path per line (relative to `--root`, default the current directory) so that the
list can be handed to `qgjob submit --tests-from`; `--summary FILE` also appends the Test
Discovery section of the Markdown run summary. Matching nothing is an error: a CI job that
ran no tests must not look green.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qgjob.cli.context import reporting_errors
from qgjob.cli.inputs import BadInput, require_text
from qgjob.cli.output import make_console, print_json
from qgjob.cli.reports import append_text
from qgjob.cli.summary import render_discovery
from qgjob.specs import find_specs

app = typer.Typer()
DEFAULT_GLOB = "tests/**/*.spec.{ts,js}"


@app.command()
def specs(
    glob: Annotated[
        str, typer.Option("--glob", help="Spec files to find, e.g. 'tests/**/*.spec.{ts,js}'.")
    ] = DEFAULT_GLOB,
    root: Annotated[Path, typer.Option("--root", help="Directory the glob is relative to.")] = Path(
        "."
    ),
    summary: Annotated[
        Path | None,
        typer.Option("--summary", help="Append the Test Discovery section (Markdown) here."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the spec files matching a glob, one per line."""
    out = make_console()
    with reporting_errors():
        pattern = require_text(glob, option="--glob")
        if not root.is_dir():
            raise BadInput(f"--root must be a directory (got {str(root)!r})")
        try:
            found = find_specs(root, pattern)
        except ValueError as exc:
            raise BadInput(f"--glob: {exc}") from None
        if summary is not None:
            append_text(summary, render_discovery(found, pattern=pattern), option="--summary")
        if not found:
            raise BadInput(
                f"no spec files match --glob {pattern!r} under {str(root.resolve())!r}; "
                "globs are relative to --root and support ** and {a,b}"
            )
    if json_output:
        print_json(out, found)
        return
    for path in found:
        out.out(path, highlight=False)
