"""Files the CLI writes for CI: JUnit XML and the Markdown run summary.

`render_summary` is pure (records in, Markdown out) and follows the shape of the GitHub
Actions step summary: Test Discovery, Job Submission, Test Execution (one table per group),
then a Build Failed section naming each failed spec and its error, or Build Passed.
"""

from __future__ import annotations

from pathlib import Path

from qgjob.cli.inputs import BadInput


def save_text(path: Path, text: str, *, option: str) -> None:
    """Write `text` to `path` (parents created); a path that cannot be written is bad input."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{option}: cannot write {path}: {exc.strerror or exc}") from None


def append_text(path: Path, text: str, *, option: str) -> None:
    """Append `text` to `path` (created if missing), as `$GITHUB_STEP_SUMMARY` expects."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise BadInput(f"{option}: cannot write {path}: {exc.strerror or exc}") from None
