"""The Markdown of a check run: title, summary and per-spec table (pure).

GitHub caps `output.summary` and `output.text` at 65,535 characters; we measure UTF-8 bytes,
which is never fewer, so a table of thousands of specs is cut with a pointer to the run page
rather than refused by the API.
"""

from __future__ import annotations

from github_app.summary import Counts, RunState, SpecRow, TargetRun, format_duration
from qgjob.types import Outcome

MAX_MARKDOWN_BYTES = 65535
MAX_ERROR_CELL = 160
_ICONS = {
    Outcome.PASSED: "✅ passed",
    Outcome.FLAKY: "⚠️ flaky",
    Outcome.FAILED: "❌ failed",
    Outcome.TIMED_OUT: "⏱️ timed out",
    Outcome.ERROR: "💥 error",
    Outcome.SKIPPED: "⏭️ skipped",
}
_ORDER = {
    Outcome.FAILED: 0,
    Outcome.TIMED_OUT: 0,
    Outcome.ERROR: 0,
    Outcome.FLAKY: 1,
    None: 2,
    Outcome.PASSED: 3,
    Outcome.SKIPPED: 3,
}


def clip_bytes(text: str, limit: int) -> str:
    """`text` cut so that its UTF-8 encoding fits in `limit` bytes (ending with …)."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    ellipsis = "…"
    cut = data[: limit - len(ellipsis.encode("utf-8"))].decode("utf-8", "ignore")
    return cut + ellipsis


def fence_safe(text: str) -> str:
    """`text` that cannot close a ``` fence it is put in."""
    return text.replace("```", "`\u200b``")


def _cell(text: str, limit: int = MAX_ERROR_CELL) -> str:
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'")


def counts_line(counts: Counts) -> str:
    parts = [
        f"{n} {label}"
        for n, label in (
            (counts.failed, "failed"),
            (counts.flaky, "flaky"),
            (counts.passed, "passed"),
            (counts.skipped, "skipped"),
            (counts.pending, "pending"),
        )
        if n
    ]
    return ", ".join(parts) if parts else "no specs"


def title(run: TargetRun, counts: Counts, conclusion: str | None) -> str:
    """A one-line headline: what state, how many."""
    if run.state is RunState.QUEUED:
        return f"Queued: {counts.total} spec{'s' if counts.total != 1 else ''}"
    if run.state is RunState.IN_PROGRESS:
        failing = f", {counts.failed} failed" if counts.failed else ""
        return f"Running: {counts.done} of {counts.total} specs done{failing}"
    if conclusion == "cancelled" and run.reason:
        return f"Cancelled: {run.reason}"
    if conclusion == "timed_out":
        return f"Timed out: {run.reason or counts_line(counts)}"
    if conclusion == "neutral":
        return "No specs matched"
    return counts_line(counts)


def summary(run: TargetRun, counts: Counts) -> str:
    """Counts, duration, groups and workers, setup time saved, and the run link."""
    lines = [
        f"**{counts.total} spec{'s' if counts.total != 1 else ''}** on `{run.target.value}`: "
        f"{counts_line(counts)}",
        "",
    ]
    if run.reason:
        lines += [f"> {_cell(run.reason, 500)}", ""]
    if run.state is not RunState.QUEUED:
        lines.append(f"- Duration: {format_duration(run.duration_ms)}")
        groups = f"{run.groups} group{'s' if run.groups != 1 else ''}"
        lines.append(f"- {groups} on {run.workers} worker{'s' if run.workers != 1 else ''}")
        lines.append(f"- Setup time saved by grouping: {format_duration(run.setup_saved_ms)}")
        lines.append("")
    if not run.specs:
        lines += ["No spec file matched the `specs` globs of `qgjob.toml` at this commit.", ""]
    lines.append(f"[Open the run in qgjob]({run.details_url})")
    return clip_bytes("\n".join(lines), MAX_MARKDOWN_BYTES)


def _row(spec: SpecRow) -> str:
    result = _ICONS[spec.outcome] if spec.outcome else "⏳ pending"
    error = _cell(spec.error) if spec.error else ""
    where = f"`{_cell(spec.path, 300)}`" + (f" line {spec.line}" if spec.line else "")
    duration = format_duration(spec.duration_ms)
    return f"| {where} | {result} | {duration} | {spec.attempts} | {error} |"


def spec_table(run: TargetRun) -> str:
    """One row per spec, problems first; cut to fit GitHub's limit with a link for the rest."""
    header = "| Spec | Result | Duration | Attempts | Error |\n|---|---|---|---|---|"
    rows = sorted(run.specs, key=lambda s: (_ORDER[s.outcome], s.path))
    reserve = 200 + len(run.details_url.encode("utf-8"))  # room for the cut notice
    out, size = [header], len(header.encode("utf-8"))
    for index, spec in enumerate(rows):
        row = _row(spec)
        row_size = len(row.encode("utf-8")) + 1
        if size + row_size > MAX_MARKDOWN_BYTES - reserve:
            left = len(rows) - index
            out.append(
                f"\n…and {left} more spec{'s' if left != 1 else ''}: "
                f"see [the run page]({run.details_url})."
            )
            break
        out.append(row)
        size += row_size
    return "\n".join(out)
