"""Check-run request bodies rendered from a `TargetRun` (pure).

`render_check_run(run)` gives a `CheckRunRequests`: `create_body` for
`POST /repos/{o}/{r}/check-runs`, `update_body` for `PATCH …/check-runs/{id}`, and `more`,
the further PATCH bodies that carry annotations past the first 50 (GitHub appends them).
Only completed renders carry annotations, so re-sending a progress update never duplicates
them. Every string respects GitHub's limits (summary/text 65,535, titles 255, action fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from github_app import markdown
from github_app.summary import FAILING_OUTCOMES, Counts, RunState, SpecRow, TargetRun
from qgjob.types import Outcome, Target

MAX_ANNOTATIONS_PER_REQUEST = 50
MAX_TITLE = 255
MAX_MESSAGE_BYTES = 64 * 1024 - 1
RERUN_FAILED = "rerun_failed"
RERUN_ACTION = {
    "label": "Re-run failed",
    "identifier": RERUN_FAILED,
    "description": "Run the failed specs again",
}


@dataclass(frozen=True)
class CheckRunRequests:
    """The request bodies for one check run state."""

    name: str
    head_sha: str
    body: dict[str, Any]  # everything but head_sha
    more: tuple[dict[str, Any], ...] = ()  # further PATCH bodies: the remaining annotations

    @property
    def create_body(self) -> dict[str, Any]:
        return {"name": self.name, "head_sha": self.head_sha, **self.body}

    @property
    def update_body(self) -> dict[str, Any]:
        return {"name": self.name, **self.body}


def check_run_name(target: Target | None) -> str:
    """`qgjob / emulator`; plain `qgjob` when no target could be read (a broken config)."""
    return f"qgjob / {target.value}" if target is not None else "qgjob"


def conclusion_of(run: TargetRun) -> str | None:
    """The check-run conclusion for `run`; None while it is queued or in progress."""
    if run.state in (RunState.QUEUED, RunState.IN_PROGRESS):
        return None
    if run.state is RunState.CANCELLED:
        return "cancelled"
    if run.state is RunState.TIMED_OUT:
        return "timed_out"
    counts = Counts.of(run.specs)
    if counts.failed:
        return "failure"
    if counts.pending:
        return "cancelled"  # jobs cancelled one by one never got an outcome
    return "success" if counts.total else "neutral"


def render_check_run(run: TargetRun, *, max_annotations: int = 500) -> CheckRunRequests:
    """Bodies for `run`'s current state; at most `max_annotations` annotations in all."""
    conclusion = conclusion_of(run)
    counts = Counts.of(run.specs)
    body: dict[str, Any] = {
        "external_id": run.run_id,
        "details_url": run.details_url,
        "status": "completed" if conclusion else run.state.value,
    }
    if run.started_at is not None:
        body["started_at"] = _timestamp(run.started_at)
    output: dict[str, Any] = {
        "title": _clip(markdown.title(run, counts, conclusion), MAX_TITLE),
        "summary": markdown.summary(run, counts),
    }
    if run.specs and run.state is not RunState.QUEUED:
        output["text"] = markdown.spec_table(run)
    annotations: list[dict[str, Any]] = []
    if conclusion is not None:
        body["conclusion"] = conclusion
        if run.completed_at is not None:
            body["completed_at"] = _timestamp(run.completed_at)
        annotations = _annotations(run.specs)[:max_annotations]
        if counts.failed:
            body["actions"] = [RERUN_ACTION]
    first, rest = _batches(annotations)
    if first:
        output["annotations"] = first
    body["output"] = output
    more = tuple(
        {"output": {"title": output["title"], "summary": output["summary"], "annotations": batch}}
        for batch in rest
    )
    return CheckRunRequests(check_run_name(run.target), run.head_sha, body, more)


def render_fork_blocked(
    *, run_id: str, target: Target, head_sha: str, details_url: str, head_repo: str | None
) -> CheckRunRequests:
    """`action_required`: a fork's pull request waits until a maintainer re-runs it."""
    source = f"`{head_repo}`" if head_repo else "a fork that no longer exists"
    summary = (
        f"This pull request comes from {source}. qgjob does not run code from forks on its "
        "devices until a maintainer approves it.\n\n"
        "A maintainer can click **Re-run** on this check to run the specs once, or set "
        "`run_forks = true` in `qgjob.toml` to run every fork's pull requests."
    )
    body = {
        "external_id": run_id,
        "details_url": details_url,  # GitHub requires it with action_required
        "status": "completed",
        "conclusion": "action_required",
        "output": {"title": "Approval needed: pull request from a fork", "summary": summary},
    }
    return CheckRunRequests(check_run_name(target), head_sha, body)


def render_config_failure(
    *, head_sha: str, error: str, details_url: str | None = None, target: Target | None = None
) -> CheckRunRequests:
    """`failure` that shows why the repository's qgjob.toml could not be used."""
    summary = (
        "qgjob could not read this commit's configuration, so no specs ran.\n\n"
        f"```\n{markdown.fence_safe(error)}\n```\n\n"
        "Fix the file and push again; see the qgjob.toml reference in docs/github-app.md."
    )
    body: dict[str, Any] = {
        "status": "completed",
        "conclusion": "failure",
        "output": {
            "title": "Invalid qgjob.toml",
            "summary": markdown.clip_bytes(summary, markdown.MAX_MARKDOWN_BYTES),
        },
    }
    if details_url:
        body["details_url"] = details_url
    return CheckRunRequests(check_run_name(target), head_sha, body)


def _annotations(specs: tuple[SpecRow, ...]) -> list[dict[str, Any]]:
    failing = [s for s in specs if s.outcome in FAILING_OUTCOMES]
    flaky = [s for s in specs if s.outcome is Outcome.FLAKY]
    return [_annotation(s, "failure") for s in failing] + [_annotation(s, "warning") for s in flaky]


def _annotation(spec: SpecRow, level: str) -> dict[str, Any]:
    line = spec.line if spec.line and spec.line > 0 else 1
    outcome = spec.outcome.value if spec.outcome else "unknown"
    default = f"{outcome} after {spec.attempts} attempt(s)"
    if spec.outcome is Outcome.FLAKY:
        default = f"passed only after {spec.attempts} attempts"
    return {
        "path": spec.path,
        "start_line": line,
        "end_line": line,
        "annotation_level": level,
        "title": _clip(f"{outcome}: {spec.path}", MAX_TITLE),
        "message": markdown.clip_bytes(spec.error or default, MAX_MESSAGE_BYTES),
    }


def _batches(
    annotations: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    size = MAX_ANNOTATIONS_PER_REQUEST
    chunks = [annotations[i : i + size] for i in range(0, len(annotations), size)]
    return (chunks[0], chunks[1:]) if chunks else ([], [])


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as GitHub documents (`YYYY-MM-DDTHH:MM:SSZ`)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
