"""What every command shares: the settings, the token, the API call and the error report.

The global options are kept as given in the Typer context; `settings_of(ctx)` turns them into
a `Settings` when a command needs one, so that `--help` works even with a bad environment.
Every command runs its body inside `reporting_errors()`, which turns any expected failure into
one line on stderr and an exit code: 2 for bad input, 1 for everything else.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, TypeVar

import typer

from qgjob.cli.inputs import BadInput
from qgjob.cli.output import describe_error, print_error
from qgjob.client import QgjobClient
from qgjob.errors import QgjobError, ValidationFailed
from qgjob.settings import Secret, Settings, SettingsError

T = TypeVar("T")

# The `--json` option of every command that prints an answer.
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")]

EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class GlobalOptions:
    """The options given before the command name (or through their environment variables)."""

    server_url: str | None = None
    token: str | None = None

    def settings(self, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `env` (default: the process environment), these options winning."""
        values = dict(os.environ if env is None else env)
        if self.server_url:
            # Through the environment mapping so that the URL is checked like the variable.
            values["QGJOB_SERVER_URL"] = self.server_url
        overrides = {"token": Secret(self.token)} if self.token else {}
        return Settings.from_env(values, **overrides)


def settings_of(ctx: typer.Context) -> Settings:
    options = ctx.find_object(GlobalOptions) or GlobalOptions()
    return options.settings()


def resolve_token(settings: Settings) -> str | None:
    """The token to send: `--token`/`QGJOB_TOKEN`, else the server's local admin token file."""
    if settings.token:
        return settings.token.reveal()
    try:
        local = settings.local_token_path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return local or None


def call_api(settings: Settings, call: Callable[[QgjobClient], Awaitable[T]]) -> T:
    """Open a client on the configured server, run `call` with it, close it."""

    async def go() -> T:
        async with QgjobClient(settings.server_url, resolve_token(settings)) as client:
            return await call(client)

    return asyncio.run(go())


def exit_code_for(exc: Exception) -> int:
    """2 when the input was at fault (ours or the service's verdict on it), 1 otherwise."""
    if isinstance(exc, BadInput | SettingsError | ValidationFailed):
        return EXIT_USAGE
    return EXIT_FAILURE


@contextmanager
def reporting_errors(options: Mapping[str, str] | None = None) -> Iterator[None]:
    """Turn bad input and client errors into one line on stderr and `typer.Exit(code)`.

    `options` maps the API fields the command sends to the options they came from, so that
    the service's refusal of a field names the option (`describe_error`).
    """
    try:
        yield
    except (BadInput, SettingsError, QgjobError) as exc:
        print_error(describe_error(exc, options=options))
        raise typer.Exit(exit_code_for(exc)) from None
