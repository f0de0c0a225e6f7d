"""Running `qgjob …` in process the way a user's shell would, and reading its one error line."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from qgjob.cli.main import app


class Cli:
    """Runs `qgjob …` in process against the stand-in, the way a user's shell would."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.runner = CliRunner()

    def __call__(self, *args: str, token: str | None = "good-token", **env: str) -> Result:  # noqa: S107
        environ = {"QGJOB_SERVER_URL": self.url, **env}
        if token is not None:
            environ["QGJOB_TOKEN"] = token
        return self.runner.invoke(app, list(args), env=environ)


def one_error_line(result: Result) -> str:
    """The single diagnostic line of a failed command (and proof there was no traceback)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]
