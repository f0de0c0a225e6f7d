"""Files the CLI writes for CI: JUnit XML and the Markdown run summary.

A report's folders are made as needed (CI steps name a fresh path), and the CLI says where
it wrote it. The Markdown itself is rendered by `qgjob.cli.summary`.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from qgjob.cli.inputs import BadInput
from qgjob.cli.output import make_console, success

# What each option's file holds, for the line that says it was written.
_REPORTS = {"--junit": "JUnit XML", "--summary": "Markdown summary"}


def save_text(path: Path, text: str, *, option: str, console: Console | None = None) -> None:
    """Write `text` to `path` (parents created) and say so on `console` (default: stderr,
    where it cannot mix with JSON on stdout); a path that cannot be written is bad input."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{option}: cannot write {path}: {exc.strerror or exc}") from None
    what = _REPORTS.get(option, option)
    success(console or make_console(stderr=True), f"{what} written to {path}")


def append_text(path: Path, text: str, *, option: str) -> None:
    """Append `text` to `path` (created if missing), as `$GITHUB_STEP_SUMMARY` expects."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise BadInput(f"{option}: cannot write {path}: {exc.strerror or exc}") from None
