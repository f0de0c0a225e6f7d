"""`qgjob build upload` and `qgjob build show`: the app builds that jobs test.

`upload` streams a build file (`.apk`, `.aab`, `.ipa`, `.app.zip`) to the service, which
checks the sha256 computed here; with `--url URL --sha256 H` it registers a build kept
elsewhere instead. A progress bar shows on a terminal (stderr); `--json` prints the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from qgjob.cli.context import JsonFlag, call_api, reporting_errors, settings_of
from qgjob.cli.inputs import BadInput, require_app_version_id, require_org_id
from qgjob.cli.output import (
    FIELD_OPTIONS,
    as_json,
    format_time,
    make_console,
    print_json,
    success,
)
from qgjob.client import QgjobClient
from qgjob.models import Build
from qgjob.settings import Settings
from qgjob.types import BUILD_EXTENSIONS, build_platform_of

app = typer.Typer(help="Upload and inspect app builds.", no_args_is_help=True)

HASH_CHUNK_BYTES = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@app.command()
def upload(
    ctx: typer.Context,
    org_id: Annotated[str, typer.Option("--org-id", help="Organization (e.g. qualgent).")],
    app_version_id: Annotated[
        str, typer.Option("--app-version-id", help="The app version this file builds.")
    ],
    path: Annotated[
        Path | None,
        typer.Argument(help=f"The build file ({BUILD_EXTENSIONS}).", show_default=False),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Register a build kept at this URL instead of uploading."),
    ] = None,
    sha256: Annotated[
        str | None,
        typer.Option("--sha256", help="The build's sha256 (required with --url)."),
    ] = None,
    filename: Annotated[
        str | None,
        typer.Option("--filename", help="With --url: its file name, when the URL has none."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Upload a build file, or register one kept elsewhere (--url --sha256)."""
    out = make_console()
    with reporting_errors(FIELD_OPTIONS):
        settings = settings_of(ctx)
        org = require_org_id(org_id)
        version = require_app_version_id(app_version_id)
        expected = _checked_sha256(sha256)
        if url is not None:
            if path is not None:
                raise BadInput("pass either a PATH to upload or --url, not both")
            if expected is None:
                raise BadInput("--url needs --sha256, the 64-hex-digit sha256 of the build")
            link = url.strip()
            if not link.startswith(("http://", "https://")):
                raise BadInput(f"--url must be an http:// or https:// URL (got {url!r})")
            build = call_api(
                settings,
                lambda client: client.register_build(
                    org_id=org, app_version_id=version, url=link, sha256=expected,
                    filename=filename,
                ),
            )  # fmt: skip
        else:
            if path is None:
                raise BadInput("give the build file to upload (PATH), or --url and --sha256")
            if filename is not None:
                raise BadInput("--filename goes with --url; an upload uses PATH's name")
            source = _checked_file(path)
            build = _upload(settings, org, version, source, expected)
    if json_output:
        print_json(out, as_json(build))
        return
    verb = {"created": "Uploaded", "replaced": "Replaced", "unchanged": "Already there:"}
    what = "Registered" if build.external_url else verb.get(build.result or "", "Saved")
    success(
        out,
        f"{what} {build.filename} ({build.platform}, {_size(build.size)}) for app version "
        f"{build.app_version_id}; sha256 {build.sha256}",
    )


@app.command()
def show(
    ctx: typer.Context,
    app_version_id: Annotated[
        str, typer.Option("--app-version-id", help="The app version whose build to show.")
    ],
    org_id: Annotated[
        str | None,
        typer.Option("--org-id", help="Organization (default: the token's own)."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Show the build registered for an app version."""
    out = make_console()
    # An admin token serves every org: the service then needs --org-id, and says so.
    with reporting_errors(FIELD_OPTIONS):
        settings = settings_of(ctx)
        version = require_app_version_id(app_version_id)
        org = None if org_id is None else require_org_id(org_id)
        build = call_api(settings, lambda client: client.get_build(version, org_id=org))
    if json_output:
        print_json(out, as_json(build))
        return
    out.print(build_table(build))


def build_table(build: Build) -> Table:
    table = Table(title=f"Build {build.app_version_id}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("Organization", build.org_id),
        ("Platform", str(build.platform)),
        ("File", build.filename),
        ("Size", _size(build.size)),
        ("sha256", build.sha256),
        ("Stored", "on the server" if build.stored else f"at {build.external_url}"),
        ("Created", format_time(build.created_at)),
        ("Updated", format_time(build.updated_at)),
    ]
    for key, value in rows:
        table.add_row(key, Text(value))
    return table


def _checked_sha256(raw: str | None) -> str | None:
    if raw is None:
        return None
    value = raw.strip()
    if not _SHA256.fullmatch(value):
        raise BadInput(f"--sha256 must be 64 hexadecimal digits (got {raw!r})")
    return value.lower()


def _checked_file(path: Path) -> Path:
    if build_platform_of(path.name) is None:
        raise BadInput(f"the build file must end with {BUILD_EXTENSIONS} (got {path.name!r})")
    if not path.is_file():
        raise BadInput(f"no build file at {str(path)!r}")
    return path


def _upload(settings: Settings, org: str, version: str, path: Path, expected: str | None) -> Build:
    size = path.stat().st_size
    with _progress(size) as (hashed, sent):
        digest = asyncio.run(_sha256_of(path, hashed))
        if expected is not None and digest != expected:
            raise BadInput(f"{path.name} has sha256 {digest}, not the --sha256 given ({expected})")

        async def call(client: QgjobClient) -> Build:
            return await client.upload_build(
                org_id=org, app_version_id=version, path=path, sha256=digest, progress=sent
            )

        return call_api(settings, call)


async def _sha256_of(path: Path, progress: Callable[[int], None]) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, HASH_CHUNK_BYTES):
            digest.update(chunk)
            progress(len(chunk))
    return digest.hexdigest()


@contextmanager
def _progress(
    size: int,
) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """Two progress callbacks (hashing, sending); bars on stderr when it is a terminal."""
    console = make_console(stderr=True)
    if not console.is_terminal:
        yield (lambda _: None), (lambda _: None)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bars:
        hashing = bars.add_task("sha256 ", total=size)
        sending = bars.add_task("upload ", total=size)
        yield (
            lambda n: bars.advance(hashing, n),
            lambda n: bars.advance(sending, n),
        )


def _size(size: int) -> str:
    if size <= 0:
        return "size unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
