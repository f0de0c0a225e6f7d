"""Worker processes for fault and security tests, pointed at any server, never outliving
the test; and the few calls those tests make to set up and to read the outcome."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.servers import child_env
from tests.support.workers import WorkerProcess

ORG = "acme"


@dataclasses.dataclass
class Crew:
    """Starts `qgjob worker` processes (local executor) for one test; kills leftovers."""

    tmp_path: Path
    started: list[WorkerProcess] = dataclasses.field(default_factory=list)

    async def start(
        self,
        name: str,
        *,
        url: str,
        token: str,
        command: str,
        extra: tuple[str, ...] = (),
        heartbeat_s: float = 0.5,
        env_extra: Mapping[str, str] | None = None,
    ) -> WorkerProcess:
        env = child_env(
            {
                "QGJOB_SERVER_URL": url,
                "QGJOB_TOKEN": token,
                "QGJOB_DATA_DIR": str(self.tmp_path / f"worker-{name}"),
                **(env_extra or {}),
            }
        )
        args = ["--target", "emulator", "--name", name, "--heartbeat-interval", str(heartbeat_s)]
        worker = WorkerProcess(
            args=[*args, "--command", command, *extra],
            env=env,
            log_path=self.tmp_path / f"{name}.log",
        )
        self.started.append(worker)
        return await worker.start()


@pytest.fixture
async def crew(tmp_path: Path) -> AsyncIterator[Crew]:
    team = Crew(tmp_path=tmp_path)
    yield team
    for worker in team.started:
        if worker.running:
            await worker.kill9()


async def new_token(url: str, admin_token: str, org_id: str, role: str) -> str:
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        answer = await client.post("/v1/tokens", json={"org_id": org_id, "role": role})
    answer.raise_for_status()
    token: str = answer.json()["token"]
    return token


async def submit_run(url: str, token: str, app_version_id: str, tests: list[str]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        answer = await client.post(
            "/v1/runs", json={"org_id": ORG, "app_version_id": app_version_id, "tests": tests}
        )
    assert answer.status_code == 201, answer.text
    run: dict[str, Any] = answer.json()
    return run


async def ended(pool: asyncpg.Pool, total: int) -> bool:
    done: int = await pool.fetchval(
        "SELECT count(*) FROM jobs WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED')"
    )
    return done == total


async def statuses(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT status::text, count(*) AS n FROM jobs GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


async def results_per_job(pool: asyncpg.Pool) -> dict[str, int]:
    """How many test results (outcomes other than an infrastructure error) each job has."""
    rows = await pool.fetch(
        """SELECT j.job_id::text, count(*) FILTER (WHERE a.outcome IS NOT NULL
                                                    AND a.outcome <> 'error') AS n
           FROM jobs j LEFT JOIN job_attempts a USING (job_id) GROUP BY j.job_id"""
    )
    return {r["job_id"]: r["n"] for r in rows}
