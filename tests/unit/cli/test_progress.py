"""`wait_for_run` (qgjob.cli.progress) against a scripted service (httpx.MockTransport): the
live view on a terminal, and a timeout that cancels the run."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
from rich.console import Console

from qgjob.cli.progress import wait_for_run
from qgjob.client import QgjobClient
from tests.unit.cli.test_specs_and_summary import job, run_of


def service(*answers: dict[str, Any], calls: list[str]) -> httpx.MockTransport:
    """Answers GET /v1/runs/{id} with `answers` in turn (the last one repeated)."""
    remaining = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.method == "POST" and request.url.path.endswith("/cancel"):
            cancelled = {**remaining[-1], "status": "CANCELLED"}
            remaining[:] = [cancelled]
            return httpx.Response(200, json=cancelled)
        body = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handle)


def wire(status: str, *jobs: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run_of(*jobs, status=status).model_dump_json())
    return data


async def test_a_terminal_gets_a_live_view_until_the_run_ends() -> None:
    running = wire("RUNNING", job("a", "RUNNING", None))
    done = wire("COMPLETED", job("a", "COMPLETED", "passed"))
    calls: list[str] = []
    out = Console(file=io.StringIO(), force_terminal=True, width=120)
    client = QgjobClient("http://qgjob.test", "t", transport=service(running, done, calls=calls))
    async with client:
        waited = await wait_for_run(
            client, run_of().run_id, console=out, timeout_s=30, interval_s=0.01, show=True
        )
    assert (waited.exit_code, waited.timed_out) == (0, False)
    screen = out.file.getvalue()  # type: ignore[attr-defined]
    assert "0/1 done" in screen and "1/1 done" in screen
    assert "\x1b[" in screen  # redrawn in place, with terminal control sequences
    assert not [call for call in calls if call.startswith("POST")]  # nothing cancelled


async def test_running_out_of_time_cancels_the_run_and_exits_3() -> None:
    pending = wire("PENDING", job("a", "PENDING", None))
    calls: list[str] = []
    out = Console(file=io.StringIO(), force_terminal=False, width=120)
    client = QgjobClient("http://qgjob.test", "t", transport=service(pending, calls=calls))
    run_id = run_of().run_id
    async with client:
        waited = await wait_for_run(
            client, run_id, console=out, timeout_s=0.2, interval_s=0.05, show=True
        )
    assert (waited.exit_code, waited.timed_out) == (3, True)
    assert f"POST /v1/runs/{run_id}/cancel" in calls
    assert waited.run.status == "CANCELLED"
