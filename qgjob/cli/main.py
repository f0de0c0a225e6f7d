"""The `qgjob` command: global options, the commands of each area, and the `run()` entry point.

The global options (`--server-url`, `--token`, or their `QGJOB_*` variables) are stored in the
Typer context and turned into a `Settings` by each command; nothing here reads module state.
A command line that cannot be parsed (a missing or unknown option, a value of the wrong type)
is reported like every other bad input: one line on stderr, exit 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any, Protocol, runtime_checkable

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from qgjob import __version__
from qgjob.cli import builds, github, jobs, migrate, server, specs, tokens, up, workers
from qgjob.cli.context import EXIT_FAILURE, GlobalOptions, exit_code_for
from qgjob.cli.output import describe_error, print_error
from qgjob.errors import QgjobError
from qgjob.settings import SettingsError


@runtime_checkable
class UsageProblem(Protocol):
    """A click usage error as Typer raises it. Typer may bundle its own click, so its
    classes are recognised by their shape rather than imported."""

    exit_code: int

    def format_message(self) -> str: ...


# What Typer's value conversion (pydantic) reports, in the words of the CLI's other errors.
_EXPECTED = {
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "int_type": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
}


def describe_usage_error(exc: UsageProblem) -> str:
    """One sentence for a command line that cannot be parsed. It ends with where to read
    more, unless it says what is accepted itself (a value of the wrong type)."""
    ctx = getattr(exc, "ctx", None)
    see = "" if ctx is None else f" (see {ctx.command_path} --help)"
    param = getattr(exc, "param", None)
    if param is not None and hasattr(exc, "param_type"):  # click's MissingParameter
        return f"missing {param.param_type_name} {_option_name(param)}{see}"
    if param is not None:
        return _bad_value(exc, _option_name(param))
    if hasattr(exc, "possibilities"):  # click's NoSuchOption
        possible = list(getattr(exc, "possibilities", None) or [])
        guess = f"; did you mean {' or '.join(possible)}?" if possible else ""
        return f"no such option {getattr(exc, 'option_name', '')}{guess}{see}"
    return f"{_clause(exc.format_message())}{see}"


def _option_name(param: Any) -> str:
    if param.param_type_name == "option" and param.opts:
        return "/".join(param.opts)
    return str(param.human_readable_name)


def _bad_value(exc: UsageProblem, option: str) -> str:
    cause = exc.__cause__ if isinstance(exc, BaseException) else None
    if not isinstance(cause, ValidationError):
        return f"{option}: {_clause(str(getattr(exc, 'message', None) or exc.format_message()))}"
    first = cause.errors()[0]
    given = first.get("input")
    expected = _EXPECTED.get(first["type"])
    if expected is None:
        return f"{option}: {_clause(first['msg'])} (got {given!r})"
    return f"{option} must be {expected} (got {given!r})"


def _clause(text: str) -> str:
    """Click's sentence as a clause of ours: one line, lower case first, no final period."""
    line = " ".join(text.split()).rstrip(".")
    return line[:1].lower() + line[1:]


class OneLineUsageErrors(TyperGroup):
    """The top-level group: runs the command line as click does, except that a usage error
    is `describe_usage_error`'s one line on stderr instead of a usage box."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        def parse_and_run() -> Any:
            return super(OneLineUsageErrors, self).main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )

        if not standalone_mode:
            return parse_and_run()
        try:
            # Not standalone: click returns the exit code (130 on Ctrl-C) and raises its
            # usage errors instead of printing them.
            code = parse_and_run()
        except typer.Abort:  # end of input at a prompt
            print_error("aborted")
            sys.exit(EXIT_FAILURE)
        except Exception as exc:
            if not isinstance(exc, UsageProblem):
                raise
            # With no arguments the help is the answer; click has printed it already.
            if type(exc).__name__ != "NoArgsIsHelpError":
                print_error(describe_usage_error(exc))
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="qgjob",
    cls=OneLineUsageErrors,
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
