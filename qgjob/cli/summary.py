"""The Markdown summary of a run, in the shape of a GitHub Actions step summary (pure).

`qgjob specs --summary` appends the first section, `qgjob submit --wait --summary` the rest:

- **Test Discovery**: the glob and the spec files it matched;
- **Job Submission**: run id, org, app version, targets, priority, number of jobs;
- **Test Execution**: one table per group (app version × target, the worker that ran it);
- **Build Failed** naming each failed spec and its error, or **Build Passed**, or
  **Timed Out** when the run did not end in time.

User text (paths, errors) is escaped for Markdown tables and code spans; errors are cut to
their first line in tables and given in full (to a limit) in a collapsed block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qgjob.models import Job, Run
from qgjob.text import counted
from qgjob.types import JobStatus, Outcome

MAX_LISTED_SPECS = 200
MAX_ERROR_CHARS = 2000
_OUTCOME_ICON = {
    Outcome.PASSED: "✅",
    Outcome.FLAKY: "⚠️",
    Outcome.SKIPPED: "⏭️",
    Outcome.FAILED: "❌",
    Outcome.TIMED_OUT: "⏱️",
    Outcome.ERROR: "💥",
}


def render_discovery(specs: Sequence[str], *, pattern: str) -> str:
    """The Test Discovery section."""
    lines = ["## 🔍 Test Discovery", ""]
    noun = "spec file" if len(specs) == 1 else "spec files"
    lines.append(f"Found **{len(specs)}** {noun} matching {_code(pattern)}.")
    if specs:
        lines += ["", "<details><summary>Spec files</summary>", ""]
        lines += [f"- {_code(spec)}" for spec in specs[:MAX_LISTED_SPECS]]
        if len(specs) > MAX_LISTED_SPECS:
            lines.append(f"- … and {len(specs) - MAX_LISTED_SPECS} more")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n\n"


def render_summary(
    run: Run, *, elapsed_s: float, timed_out: bool = False, server_url: str | None = None
) -> str:
    """Job Submission, Test Execution and the verdict, for a run as it stands."""
    jobs = run.all_jobs
    parts = [_submission(run, jobs, server_url=server_url), _execution(run, elapsed_s=elapsed_s)]
    parts.append(_verdict(jobs, timed_out=timed_out, elapsed_s=elapsed_s))
    return "".join(parts)


def _submission(run: Run, jobs: Sequence[Job], *, server_url: str | None) -> str:
    rows = [
        ("Run", _code(str(run.run_id))),
        ("Organization", _code(run.org_id)),
        ("App version", _code(run.app_version_id)),
        ("Targets", ", ".join(str(t) for t in run.targets)),
        ("Priority", str(run.priority)),
        ("Jobs", str(len(jobs))),
    ]
    if server_url:
        rows.append(("Server", _cell(server_url)))
    lines = ["## 📤 Job Submission", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    return "\n".join(lines) + "\n\n"


def _execution(run: Run, *, elapsed_s: float) -> str:
    lines = ["## 🧪 Test Execution", ""]
    for group in run.groups or []:
        extra: dict[str, Any] = group.model_extra or {}
        worker = extra.get("worker_name")
        status = extra.get("status")
        install_ms = extra.get("install_ms")
        title = f"### {group.target} · {_code(group.app_version_id)}"
        if worker:
            title += f" on {_code(str(worker))}"
        if status:
            title += f" ({str(status).lower()})"
        lines += [title, ""]
        if isinstance(install_ms, int):
            lines += [f"Setup (install/upload): {_duration(install_ms / 1000)}", ""]
        lines += ["| Test | Status | Outcome | Duration | Attempts |", "|---|---|---|---|---|"]
        for job in group.jobs:
            lines.append(
                f"| {_code(job.test_path)} | {job.status} | {_outcome(job)} | "
                f"{_job_duration(job)} | {job.attempts} |"
            )
        lines.append("")
    if not run.groups:
        lines += ["No group has run yet.", ""]
    lines.append(f"**Totals:** {_tally(run.all_jobs)} — {_duration(elapsed_s)}")
    return "\n".join(lines) + "\n\n"


def _verdict(jobs: Sequence[Job], *, timed_out: bool, elapsed_s: float) -> str:
    failed = [job for job in jobs if job.status is JobStatus.FAILED]
    cancelled = sum(1 for job in jobs if job.status is JobStatus.CANCELLED)
    lines: list[str] = []
    if timed_out:
        lines += [
            "## ⏱️ Timed Out",
            "",
            f"The run did not finish within {_duration(elapsed_s)}: "
            f"{_of(cancelled, len(jobs), 'job')} cancelled unfinished.",
            "",
        ]
    if failed or (cancelled and not timed_out):
        lines += ["## ❌ Build Failed", ""]
        if failed:
            lines += [f"{len(failed)} of {counted(len(jobs), 'test')} failed.", ""]
        for job in failed:
            reason = _first_line(job.error) or str(job.outcome or job.status).lower()
            lines.append(f"- **{_code(job.test_path)}** ({job.target}): {_code(reason)}")
        if cancelled and not timed_out:
            lines += ["", f"{_of(cancelled, len(jobs), 'job')} cancelled."]
        for job in failed:
            if job.error and "\n" in job.error.strip():
                lines += [
                    "",
                    f"<details><summary>{_html(job.test_path)} ({job.target})</summary>",
                    "",
                    "```",
                    _fence_safe(job.error)[:MAX_ERROR_CHARS],
                    "```",
                    "",
                    "</details>",
                ]
        lines.append("")
    elif not timed_out:
        flaky = sum(1 for job in jobs if job.outcome is Outcome.FLAKY)
        note = f" ({flaky} flaky: passed on a retry)" if flaky else ""
        passed = f"All {len(jobs)} tests" if len(jobs) > 1 else counted(len(jobs), "test")
        lines += ["## ✅ Build Passed", "", f"{passed} passed{note}.", ""]
    return "\n".join(lines) + "\n"


def _of(part: int, whole: int, noun: str) -> str:
    """`1 of 3 jobs was`, `2 of 3 jobs were`: the verb agrees with the part."""
    return f"{part} of {counted(whole, noun)} {'was' if part == 1 else 'were'}"


def _tally(jobs: Sequence[Job]) -> str:
    counts: dict[str, int] = {}
    for job in jobs:
        key = str(job.outcome) if job.outcome else str(job.status).lower()
        counts[key] = counts.get(key, 0) + 1
    order = ["passed", "flaky", "skipped", "failed", "timed_out", "error", "cancelled"]
    keys = [k for k in order if k in counts] + sorted(k for k in counts if k not in order)
    return " · ".join(f"{counts[k]} {k.replace('_', ' ')}" for k in keys) or "no jobs"


def _outcome(job: Job) -> str:
    if job.outcome is None:
        return "-"
    return f"{_OUTCOME_ICON.get(job.outcome, '')} {job.outcome}".strip()


def _job_duration(job: Job) -> str:
    return "-" if job.duration_ms is None else _duration(job.duration_ms / 1000)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _first_line(text: str | None) -> str:
    line = next((part.strip() for part in (text or "").splitlines() if part.strip()), "")
    return line if len(line) <= 200 else line[:199] + "…"


def _code(text: str) -> str:
    """`text` as an inline code span that survives backticks and table pipes."""
    cleaned = _cell(text.replace("\n", " "))
    fence = "``" if "`" in cleaned else "`"
    pad = " " if cleaned.startswith("`") or cleaned.endswith("`") else ""
    return f"{fence}{pad}{cleaned}{pad}{fence}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fence_safe(text: str) -> str:
    return text.replace("```", "`\u200b``")
