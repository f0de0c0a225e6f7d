"""`qgjob worker --executor adb|browserstack` as real processes, against the real service,
fake adb, fake npx and the fake BrowserStack: what the worker CLI wires works end to end."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from qgjob.settings import Settings
from tests.conftest import Api
from tests.standins.browserstack import browserstack_state, create_browserstack_app, serve_in_thread
from tests.standins.fake_adb import FakeDevice, read_state, write_state
from tests.support.executors import ADB, NPX, spec, workspace
from tests.support.servers import child_env
from tests.support.waiting import eventually
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(180)]
# Installs and BrowserStack sessions through the stand-ins take a while on a loaded machine.
WAIT_S = 60
ORG = "acme"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Retries wait a few seconds: time for the second worker to register meanwhile.
    return dataclasses.replace(settings, retry_backoff_s=2.0, max_attempts=5)


async def upload_build(api: Api, content: bytes, filename: str = "shoply.apk") -> None:
    """The app build, through the builds API, as `qgjob build upload` sends it."""
    async with api.client(await api.token(ORG)) as client:
        answer = await client.post(
            "/v1/builds",
            params={"org_id": ORG, "app_version_id": "7.1.0", "filename": filename},
            content=content,
            headers={"Content-Type": "application/vnd.android.package-archive"},
        )
    assert answer.status_code in (200, 201), answer.text


async def submit(api: Api, tests: list[str], target: str) -> dict[str, Any]:
    async with api.client(await api.token(ORG)) as client:
        answer = await client.post(
            "/v1/runs",
            json={"org_id": ORG, "app_version_id": "7.1.0", "tests": tests, "targets": [target]},
        )
    assert answer.status_code == 201, answer.text
    run: dict[str, Any] = answer.json()
    return run


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return workspace(
        tmp_path / "app",
        {"login.spec.ts": spec(), "search.spec.ts": spec(), "profile.spec.ts": spec()},
    )


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        if worker.running:
            worker.proc.kill()  # type: ignore[union-attr]


async def start(
    started: list[WorkerProcess], tmp_path: Path, name: str, args: list[str], env: dict[str, str]
) -> WorkerProcess:
    worker = WorkerProcess(
        args=["--name", name, "--heartbeat-interval", "0.5", *args],
        env=env,
        log_path=tmp_path / f"{name}.log",
    )
    started.append(worker)
    return await worker.start()


async def run_ended(pool: asyncpg.Pool, run_id: str) -> None:
    """Wait until every job of the run has ended."""

    async def ended() -> bool:
        live = await pool.fetchval(
            "SELECT count(*) FROM jobs WHERE run_id = $1 AND status NOT IN ('COMPLETED', 'FAILED')",
            run_id,
        )
        return live == 0

    await eventually(ended, what=f"the jobs of run {run_id} to end", timeout_s=WAIT_S)


async def adb_worker_env(api: Api, tmp_path: Path, state: Path) -> dict[str, str]:
    """What an adb worker on this host is started with: fake adb on `state`, fake npx."""
    return child_env(
        {
            "QGJOB_SERVER_URL": api.url,
            "QGJOB_TOKEN": await api.token(ORG, "worker"),
            "QGJOB_DATA_DIR": str(tmp_path / "worker-data"),
            "QGJOB_ADB": ADB,
            "QGJOB_NPX": NPX,
            "QGJOB_LOCK_DIR": str(tmp_path / "locks"),
            "QGJOB_FAKE_ADB_STATE": str(state),
            "QGJOB_BUILD_CACHE": str(tmp_path / "build-cache"),
        }
    )


async def test_an_install_failure_is_retried_on_another_worker(
    api: Api, pool: asyncpg.Pool, tmp_path: Path, project: Path, workers: list[WorkerProcess]
) -> None:
    state = tmp_path / "adb.json"
    full = ["INSTALL_FAILED_INSUFFICIENT_STORAGE"] * 10
    write_state(
        state, [FakeDevice("emulator-5554", install_failures=full), FakeDevice("emulator-5556")]
    )
    env = await adb_worker_env(api, tmp_path, state)
    await upload_build(api, b"PK\x03\x04 shoply 7.1.0")
    common = ["--target", "emulator", "--executor", "adb", "--workspace", str(project)]
    await start(workers, tmp_path, "full-disk", [*common, "--device", "emulator-5554"], env)
    run = await submit(api, ["tests/login.spec.ts"], "emulator")
    job_id = run["jobs"][0]["job_id"]

    async def first_attempt_failed() -> bool:
        error = await pool.fetchval(
            "SELECT error FROM job_attempts WHERE job_id = $1 AND attempt = 1", job_id
        )
        return error is not None

    await eventually(
        first_attempt_failed, what="the install on the full device to fail", timeout_s=WAIT_S
    )
    await start(workers, tmp_path, "healthy", [*common, "--device", "emulator-5556"], env)

    async def ended() -> bool:
        status = await pool.fetchval("SELECT status::text FROM jobs WHERE job_id = $1", job_id)
        return status in ("COMPLETED", "FAILED")

    await eventually(ended, what="the job to end", timeout_s=WAIT_S)
    attempts = await pool.fetch(
        """SELECT a.attempt, a.outcome::text, a.error, w.name FROM job_attempts a
           JOIN workers w USING (worker_id) WHERE a.job_id = $1 ORDER BY a.attempt""",
        job_id,
    )
    assert attempts[-1]["name"] == "healthy" and attempts[-1]["outcome"] == "passed"
    failed = [a for a in attempts[:-1]]
    assert failed and all(a["name"] == "full-disk" for a in failed)
    assert "INSTALL_FAILED_INSUFFICIENT_STORAGE" in failed[0]["error"]
    assert await pool.fetchval("SELECT status::text FROM jobs WHERE job_id = $1", job_id) == (
        "COMPLETED"
    )
    installed = {Path(i["apk"]) for i in read_state(state)["installs"]}
    assert {p.name for p in installed} == {"shoply.apk"}  # adb installs *.apk files only
    cache = (tmp_path / "build-cache").resolve()
    assert all(p.resolve().is_relative_to(cache) for p in installed)


async def test_a_spec_missing_from_the_project_fails_at_once(
    api: Api, pool: asyncpg.Pool, tmp_path: Path, project: Path, workers: list[WorkerProcess]
) -> None:
    """No other worker has a spec the project lacks: the job fails on its first attempt
    (before, it went round `max_attempts` times as if a device had broken)."""
    state = tmp_path / "adb.json"
    write_state(state, [FakeDevice("emulator-5554")])
    env = await adb_worker_env(api, tmp_path, state)
    await upload_build(api, b"PK\x03\x04 shoply 7.1.0")
    args = ["--target", "emulator", "--executor", "adb", "--workspace", str(project)]
    await start(workers, tmp_path, "only", [*args, "--device", "emulator-5554"], env)
    run = await submit(api, ["tests/login.spec.ts", "tests/nope.spec.ts"], "emulator")
    ids = {job["test_path"]: job["job_id"] for job in run["jobs"]}

    await run_ended(pool, run["run_id"])
    missing = await pool.fetchrow(
        "SELECT status::text, outcome::text, attempts, error FROM jobs WHERE job_id = $1",
        ids["tests/nope.spec.ts"],
    )
    assert missing is not None
    assert (missing["status"], missing["outcome"], missing["attempts"]) == ("FAILED", "error", 1)
    assert "spec tests/nope.spec.ts is not in the project" in missing["error"]
    assert "gave up" not in missing["error"]
    found = await pool.fetchval(
        "SELECT status::text FROM jobs WHERE job_id = $1", ids["tests/login.spec.ts"]
    )
    assert found == "COMPLETED"


async def test_a_build_the_executor_cannot_install_fails_the_group_at_once(
    api: Api, pool: asyncpg.Pool, tmp_path: Path, project: Path, workers: list[WorkerProcess]
) -> None:
    """Preparing fails the same way on any adb worker: the jobs fail on their first attempt
    with the reason (before, the group went round `max_attempts` times)."""
    state = tmp_path / "adb.json"
    write_state(state, [FakeDevice("emulator-5554")])
    env = await adb_worker_env(api, tmp_path, state)
    await upload_build(api, b"an iOS build", filename="shoply.ipa")
    args = ["--target", "emulator", "--executor", "adb", "--workspace", str(project)]
    await start(workers, tmp_path, "android-only", [*args, "--device", "emulator-5554"], env)
    run = await submit(api, ["tests/login.spec.ts", "tests/search.spec.ts"], "emulator")

    await run_ended(pool, run["run_id"])
    jobs = await pool.fetch(
        "SELECT status::text, outcome::text, attempts, error FROM jobs WHERE run_id = $1",
        run["run_id"],
    )
    assert {(j["status"], j["outcome"], j["attempts"]) for j in jobs} == {("FAILED", "error", 1)}
    assert all("installs .apk builds" in j["error"] for j in jobs)
    assert read_state(state)["installs"] == []


async def test_a_browserstack_worker_uploads_once_and_records_session_videos(
    api: Api, pool: asyncpg.Pool, tmp_path: Path, project: Path, workers: list[WorkerProcess]
) -> None:
    fake = create_browserstack_app(username="ci", access_key="k3y", parallel=2)
    with serve_in_thread(fake, name="fake BrowserStack") as cloud_url:
        env = child_env(
            {
                "QGJOB_SERVER_URL": api.url,
                "QGJOB_TOKEN": await api.token(ORG, "worker"),
                "QGJOB_DATA_DIR": str(tmp_path / "worker-data"),
                "QGJOB_NPX": NPX,
                "QGJOB_LOCK_DIR": str(tmp_path / "locks"),
                "QGJOB_BROWSERSTACK_API_URL": cloud_url,
                "BROWSERSTACK_USERNAME": "ci",
                "BROWSERSTACK_ACCESS_KEY": "k3y",
            }
        )
        args = ["--target", "browserstack", "--executor", "browserstack"]
        args += ["--workspace", str(project), "--capacity", "2"]
        env["QGJOB_BUILD_CACHE"] = str(tmp_path / "build-cache")
        await upload_build(api, b"PK\x03\x04 shoply 7.1.0 for the cloud")
        await start(workers, tmp_path, "cloud", args, env)
        tests = ["tests/login.spec.ts", "tests/search.spec.ts", "tests/profile.spec.ts"]
        run = await submit(api, tests, "browserstack")

        async def all_completed() -> bool:
            count = await pool.fetchval(
                "SELECT count(*) FROM jobs WHERE run_id = $1 AND status = 'COMPLETED'",
                run["run_id"],
            )
            return bool(count == 3)

        await eventually(
            all_completed, what="three BrowserStack jobs to complete", timeout_s=WAIT_S
        )
        state = browserstack_state(fake)
        assert len(state.uploads()) == 1
        assert (
            state.uploads()[0].sha256
            == hashlib.sha256(b"PK\x03\x04 shoply 7.1.0 for the cloud").hexdigest()
        )
        async with api.client() as client:
            for submitted in run["jobs"]:
                job = (await client.get(f"/v1/jobs/{submitted['job_id']}")).json()
                assert job["artifacts"]["browserstack_session"] in state.sessions
                assert job["artifacts"]["video_url"].startswith(cloud_url)
        assert state.max_running_seen <= 2
