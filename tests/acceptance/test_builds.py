"""A build that arrives late wakes its jobs; one that never arrives fails them, clearly.

The real service (in the test's loop), a real `qgjob worker --needs-build` process with the
`local` executor and its own build cache, and the real CLI uploading the build. The job
command prints the sha256 of the file the worker fetched, so the test sees that the bytes
the job ran against are the bytes that were uploaded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from qgjob.settings import Settings
from tests.conftest import Api
from tests.support.servers import child_env
from tests.support.workers import WorkerProcess, run_cli_async

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]

ORG = "acme"


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    # Jobs wait 10 minutes for their build unless the test asks for less (indirect).
    wait_s = getattr(request, "param", 600.0)
    return dataclasses.replace(settings, build_wait_s=wait_s, build_sweep_interval_s=0.2)


def picky_worker(api: Api, tmp_path: Path, token: str) -> WorkerProcess:
    """A `--needs-build` worker whose prepare checks the fetched file against its sha256
    and whose jobs print the sha256 of the build they ran against."""
    return WorkerProcess(
        args=[
            "--target", "emulator", "--name", "picky", "--needs-build",
            "--heartbeat-interval", "0.5", "--build-cache", str(tmp_path / "cache"),
            "--prepare-command",
            'test "$(sha256sum "$QGJOB_BUILD_PATH" | cut -c1-64)" = "$QGJOB_BUILD_SHA256"',
            "--command", 'sha256sum "$QGJOB_BUILD_PATH"',
        ],
        env=child_env({
            "QGJOB_SERVER_URL": api.url, "QGJOB_TOKEN": token,
            "QGJOB_DATA_DIR": str(tmp_path / "worker-data"),
        }),
        log_path=tmp_path / "worker.log",
    )  # fmt: skip


async def registered(pool: asyncpg.Pool, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + 30
    while await pool.fetchval("SELECT count(*) FROM workers WHERE needs_build") == 0:
        assert time.monotonic() < deadline, worker.log()
        assert worker.running, worker.log()
        await asyncio.sleep(0.05)


async def job(api: Api, job_id: str) -> dict[str, Any]:
    async with api.client() as client:
        answer = await client.get(f"/v1/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def until_status(
    api: Api, job_id: str, wanted: set[str], timeout_s: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = await job(api, job_id)
        if found["status"] in wanted:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {found['status']} after {timeout_s} s")
        await asyncio.sleep(0.05)


async def test_a_build_that_arrives_late_wakes_its_jobs(
    api: Api, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    submitter = await api.token(ORG, "submitter")
    env = child_env({"QGJOB_SERVER_URL": api.url, "QGJOB_TOKEN": submitter})
    late = await run_cli_async(
        "submit", "--org-id", ORG, "--app-version-id", "late",
        "--test", "tests/a.spec.ts", "--test", "tests/b.spec.ts", "--json", env=env,
    )  # fmt: skip
    assert late.code == 0, late.stderr
    late_jobs = [j["job_id"] for j in late.json()["jobs"]]
    worker = await picky_worker(api, tmp_path, await api.token(ORG, "worker")).start()
    try:
        # The worker is up and polling, yet the jobs wait: there is no build for them.
        await registered(pool, worker)
        assert {(await job(api, j))["status"] for j in late_jobs} == {"PENDING"}

        apk = tmp_path / "app-release.apk"
        apk.write_bytes(b"PK\x03\x04 late build " * 5000)
        digest = hashlib.sha256(apk.read_bytes()).hexdigest()
        uploaded = await run_cli_async(
            "build", "upload", "--org-id", ORG, "--app-version-id", "late", str(apk),
            "--json", env=env,
        )  # fmt: skip
        assert uploaded.code == 0, uploaded.stderr
        assert uploaded.json()["sha256"] == digest

        done = [await until_status(api, j, {"COMPLETED", "FAILED"}) for j in late_jobs]
        assert [d["status"] for d in done] == ["COMPLETED", "COMPLETED"], worker.log()[-3000:]
        logs = [await run_cli_async("logs", f"--job-id={j}", env=env) for j in late_jobs]
        assert all(digest in log.stdout for log in logs), [log.stdout for log in logs]
        assert (tmp_path / "cache" / "blobs" / digest).is_file()
        shown = await run_cli_async("build", "show", "--app-version-id", "late", env=env)
        assert shown.code == 0 and digest in shown.stdout
    finally:
        if worker.running:
            worker.send(signal.SIGINT)  # drain
            await worker.wait(timeout_s=30)


@pytest.mark.parametrize("settings", [1.0], indirect=True)
async def test_a_build_that_never_arrives_fails_its_jobs_clearly(
    api: Api, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    worker = await picky_worker(api, tmp_path, await api.token(ORG, "worker")).start()
    try:
        await registered(pool, worker)
        env = child_env({"QGJOB_SERVER_URL": api.url, "QGJOB_TOKEN": await api.token(ORG)})
        never = await run_cli_async(
            "submit", "--org-id", ORG, "--app-version-id", "never", "--test", "tests/c.spec.ts",
            "--json", env=env,
        )  # fmt: skip
        assert never.code == 0, never.stderr
        (never_job,) = [j["job_id"] for j in never.json()["jobs"]]
        failed = await until_status(api, never_job, {"FAILED", "COMPLETED"})
        status = await run_cli_async("status", f"--job-id={never_job}", env=env)
    finally:
        if worker.running:
            worker.send(signal.SIGINT)
            await worker.wait(timeout_s=30)
    assert failed["status"] == "FAILED" and failed["outcome"] == "error"
    assert "no build was uploaded for app version never" in failed["error"]
    assert "qgjob build upload --org-id acme --app-version-id never" in failed["error"]
    assert "qgjob build upload" in status.stdout
    assert await pool.fetchval("SELECT count(*) FROM job_attempts") == 0  # it never ran
