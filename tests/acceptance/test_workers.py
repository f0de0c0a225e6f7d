"""Real worker processes against the real service: every job ends once, whatever happens.

The service runs in the test's loop (the `api` fixture: lease TTL 2 s, heartbeats 0.5 s);
each worker is `python -m qgjob worker` in its own process with the `local` executor,
running small shell commands. Assertions read the database (`pool`), where every attempt
of every job is kept, and the API the way users see it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shlex
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.main import create_app
from qgjob.settings import Secret, Settings
from tests.conftest import Api
from tests.support.servers import child_env, free_port, serve_in_loop
from tests.support.waiting import eventually, soon
from tests.support.workers import WorkerProcess, run_cli_async

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]

ORG = "acme"
PY = shlex.quote(sys.executable)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Retries wait 0.25-0.75 s: long enough for a test to step in between two attempts.
    # No cap on a lease's expected seconds: a lone worker gets a key whole (the kill -9 test
    # kills a worker mid-group); docs/scheduling.md.
    return dataclasses.replace(settings, retry_backoff_s=0.5, max_batch_s=0.0)


@dataclasses.dataclass
class Fleet:
    """Starts workers for one test and makes sure none outlives it."""

    api: Api
    tmp_path: Path
    token: str
    started: list[WorkerProcess] = dataclasses.field(default_factory=list)

    def env(self) -> dict[str, str]:
        return child_env(
            {
                "QGJOB_SERVER_URL": self.api.url,
                "QGJOB_TOKEN": self.token,
                "QGJOB_DATA_DIR": str(self.tmp_path / "worker-data"),
            }
        )

    async def start(self, name: str, *, command: str, extra: tuple[str, ...] = ()) -> WorkerProcess:
        args = ["--target", "emulator", "--name", name, "--heartbeat-interval", "0.5"]
        worker = WorkerProcess(
            args=[*args, "--command", command, *extra],
            env=self.env(),
            log_path=self.tmp_path / f"{name}.log",
        )
        self.started.append(worker)
        return await worker.start()


@pytest.fixture
async def fleet(api: Api, tmp_path: Path) -> AsyncIterator[Fleet]:
    crew = Fleet(api=api, tmp_path=tmp_path, token=await api.token(ORG, "worker"))
    yield crew
    for worker in crew.started:
        if worker.running:
            await worker.kill9()


async def submit(api: Api, app_version_id: str, tests: list[str]) -> dict[str, Any]:
    async with api.client(await api.token(ORG)) as client:
        answer = await client.post(
            "/v1/runs",
            json={"org_id": ORG, "app_version_id": app_version_id, "tests": tests},
        )
    assert answer.status_code == 201, answer.text
    run: dict[str, Any] = answer.json()
    return run


async def one(pool: asyncpg.Pool, query: str, *args: object) -> asyncpg.Record:
    row = await pool.fetchrow(query, *args)
    assert row is not None, f"no row for {query}"
    return row


async def statuses(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT status::text, count(*) AS n FROM jobs GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


async def all_ended(pool: asyncpg.Pool, total: int) -> bool:
    counts = await statuses(pool)
    return sum(counts.get(s, 0) for s in ("COMPLETED", "FAILED", "CANCELLED")) == total


async def worker_id_of(pool: asyncpg.Pool, name: str) -> uuid.UUID | None:
    found: uuid.UUID | None = await pool.fetchval(
        "SELECT worker_id FROM workers WHERE name = $1", name
    )
    return found


def pid_in(path: Path) -> int | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") else None


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in ("Z", "X")


async def test_two_workers_run_40_jobs_over_3_versions_each_exactly_once(
    api: Api, pool: asyncpg.Pool, fleet: Fleet
) -> None:
    runs = [
        await submit(api, version, [f"tests/{version}/spec {i}.ts" for i in range(count)])
        for version, count in (("v1", 14), ("v2", 13), ("v3", 13))
    ]
    # Coloured, as test runners write on a terminal: `qgjob logs` into a pipe prints it plain.
    command = r"printf '\033[32mrunning\033[0m %s on %s\n' {test_path} {app_version_id}"
    prepare = ("--prepare-command", "echo installing {app_version_id}")
    one = await fleet.start("alpha", command=command, extra=prepare)
    two = await fleet.start("beta", command=command, extra=(*prepare, "--capacity", "2"))
    await eventually(lambda: all_ended(pool, 40), what="40 jobs to end")

    assert await statuses(pool) == {"COMPLETED": 40}
    per_job = await pool.fetch(
        """SELECT job_id, count(*) FILTER (WHERE finished_at IS NOT NULL) AS finished,
                  count(*) FILTER (WHERE outcome = 'passed') AS passed
           FROM job_attempts GROUP BY job_id"""
    )
    assert len(per_job) == 40
    assert all(r["finished"] == 1 and r["passed"] == 1 for r in per_job)
    mixed = await pool.fetchval(
        """SELECT count(*) FROM job_attempts a JOIN jobs j USING (job_id)
           JOIN groups g ON g.group_id = a.group_id
           WHERE (g.org_id, g.app_version_id, g.target) <> (j.org_id, j.app_version_id, j.target)
              OR g.worker_id <> a.worker_id"""
    )
    assert mixed == 0
    versions_per_group = await pool.fetch(
        """SELECT a.group_id, count(DISTINCT j.app_version_id) AS versions
           FROM job_attempts a JOIN jobs j USING (job_id) GROUP BY a.group_id"""
    )
    assert all(r["versions"] == 1 for r in versions_per_group)

    # What users see: the run tree, a job's log, the workers.
    env = {**fleet.env(), "QGJOB_TOKEN": api.admin_token}
    tree = await run_cli_async("run", f"--run-id={runs[0]['run_id']}", env=env)
    assert tree.code == 0, tree.stderr
    executed = re.findall(r"App installed once, (\d+) tests? executed", tree.stdout)
    assert executed and sum(int(n) for n in executed) == 14  # v1's groups, one install each
    assert "FINISHED" in tree.stdout
    assert re.search(
        r"· by token [0-9a-f]{8}\n", tree.stdout
    )  # the unnamed token that submitted it
    job = runs[1]["jobs"][0]
    log = await run_cli_async("logs", f"--job-id={job['job_id']}", env=env)
    assert log.code == 0, log.stderr
    assert log.stdout == f"running {job['test_path']} on v2\n"
    coloured = await run_cli_async("logs", f"--job-id={job['job_id']}", "--color=always", env=env)
    assert coloured.stdout == f"\x1b[32mrunning\x1b[0m {job['test_path']} on v2\n"
    wrong = await run_cli_async("logs", f"--job-id={job['job_id']}", "--color=rainbow", env=env)
    assert wrong.code == 2
    assert wrong.stderr.strip() == (
        "Error: --color must be one of auto, always, never (got 'rainbow')"
    )
    listed = await run_cli_async("workers", "--json", env=env)
    assert listed.code == 0, listed.stderr
    assert {w["name"] for w in listed.json()["workers"]} == {"alpha", "beta"}

    for worker in (one, two):
        worker.send(signal.SIGTERM)
    assert await one.wait() == 0
    assert await two.wait() == 0
    listed = await run_cli_async("workers", "--json", env=env)
    assert {w["status"] for w in listed.json()["workers"]} == {"offline"}


async def test_sigterm_finishes_the_running_job_and_releases_the_rest(
    api: Api, pool: asyncpg.Pool, fleet: Fleet
) -> None:
    await submit(api, "v1", [f"tests/t{i}.spec.ts" for i in range(5)])
    draining = await fleet.start("draining", command="sleep 1")
    running = await eventually(
        lambda: pool.fetchval("SELECT job_id FROM jobs WHERE status = 'RUNNING'"),
        what="a job to start",
    )
    draining.send(signal.SIGTERM)
    assert await draining.wait(timeout_s=20) == 0
    job = await one(
        pool, "SELECT status::text, outcome::text, attempts FROM jobs WHERE job_id = $1", running
    )
    assert (job["status"], job["outcome"], job["attempts"]) == ("COMPLETED", "passed", 1)
    rest = await pool.fetch("SELECT status::text, attempts FROM jobs WHERE status <> 'COMPLETED'")
    assert rest, "the worker should have stopped before the end of its group"
    assert all((r["status"], r["attempts"]) == ("PENDING", 0) for r in rest)  # unpenalised
    worker = await one(pool, "SELECT status::text FROM workers WHERE name = 'draining'")
    assert worker["status"] == "offline"
    assert "draining" in draining.log()

    taker = await fleet.start("taker", command="sleep 0.05")
    await eventually(lambda: all_ended(pool, 5), what="the released jobs to run elsewhere")
    assert await statuses(pool) == {"COMPLETED": 5}
    finished = await pool.fetch(
        "SELECT count(*) AS n FROM job_attempts WHERE finished_at IS NOT NULL GROUP BY job_id"
    )
    assert [r["n"] for r in finished] == [1] * 5
    taker.send(signal.SIGINT)  # a first Ctrl-C drains too
    assert await taker.wait() == 0


async def test_cancel_mid_group_kills_the_running_job_and_it_never_runs_again(
    api: Api, pool: asyncpg.Pool, fleet: Fleet, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    run = await submit(api, "v1", ["tests/slow.spec.ts", "tests/a.spec.ts", "tests/b.spec.ts"])
    slow = next(j["job_id"] for j in run["jobs"] if j["test_path"] == "tests/slow.spec.ts")
    # The slow job starts a long `sleep` in the background and writes its pid.
    command = (
        "case {test_path} in *slow*) sleep 60 & "
        f"echo $! > {shlex.quote(str(pids))}/$QGJOB_JOB_ID; wait;; *) sleep 0.05;; esac"
    )
    worker = await fleet.start("canceller", command=command)
    sleeper = await eventually(soon(lambda: pid_in(pids / slow)), what="the slow job to start")
    assert alive(sleeper)
    async with api.client(await api.token(ORG)) as client:
        answer = await client.post(f"/v1/jobs/{slow}/cancel")
    assert answer.status_code == 200, answer.text
    await eventually(soon(lambda: not alive(sleeper)), what="the job's processes to die")
    await eventually(lambda: all_ended(pool, 3), what="the rest of the group to run")
    assert await statuses(pool) == {"CANCELLED": 1, "COMPLETED": 2}
    await asyncio.sleep(1.0)  # several heartbeats and claims later, it has not come back
    job = await one(
        pool, "SELECT status::text, attempts FROM jobs WHERE job_id = $1", uuid.UUID(slow)
    )
    assert (job["status"], job["attempts"]) == ("CANCELLED", 1)
    attempts = await pool.fetch(
        "SELECT outcome::text, error FROM job_attempts WHERE job_id = $1", uuid.UUID(slow)
    )
    assert len(attempts) == 1
    # The worker reports the killed attempt, which the service records while the group is
    # live; when it was the group's last live job the group has ended and the report is
    # fenced off (409), so the attempt may have no outcome. Either way, it ran once.
    if attempts[0]["outcome"] is not None:
        assert attempts[0]["outcome"] == "error" and "cancelled" in attempts[0]["error"]
    worker.send(signal.SIGTERM)
    assert await worker.wait() == 0


async def test_prepare_failure_sends_the_group_to_another_worker(
    api: Api, pool: asyncpg.Pool, fleet: Fleet
) -> None:
    broken = await fleet.start(
        "broken",
        command="true",
        extra=("--prepare-command", "echo cannot install {app_version_id} >&2; exit 3"),
    )
    await submit(api, "v7", ["tests/a.spec.ts", "tests/b.spec.ts"])
    await eventually(
        lambda: pool.fetchval("SELECT count(*) = 2 FROM job_attempts WHERE outcome = 'error'"),
        what="the broken worker to give the group back",
    )
    broken.send(signal.SIGTERM)
    assert await broken.wait() == 0
    healthy = await fleet.start("healthy", command="true")
    await eventually(lambda: all_ended(pool, 2), what="the group to run on the healthy worker")
    assert await statuses(pool) == {"COMPLETED": 2}
    attempts = await pool.fetch(
        """SELECT a.job_id, a.attempt, a.outcome::text, a.error, w.name
           FROM job_attempts a JOIN workers w USING (worker_id) ORDER BY a.job_id, a.attempt"""
    )
    for job_id in {r["job_id"] for r in attempts}:
        mine = [r for r in attempts if r["job_id"] == job_id]
        assert mine[0]["name"] == "broken" and mine[0]["outcome"] == "error"
        assert "exited with code 3" in mine[0]["error"]
        assert "cannot install v7" in mine[0]["error"]
        assert (mine[-1]["name"], mine[-1]["outcome"]) == ("healthy", "passed")
    healthy.send(signal.SIGTERM)
    assert await healthy.wait() == 0


async def test_a_hung_prepare_command_is_killed_and_the_group_handed_back(
    api: Api, pool: asyncpg.Pool, fleet: Fleet
) -> None:
    hung = await fleet.start(
        "hung", command="true", extra=("--prepare-command", "sleep 600", "--prepare-timeout", "1")
    )
    await submit(api, "v8", ["tests/a.spec.ts"])
    error = await eventually(
        lambda: pool.fetchval("SELECT error FROM job_attempts WHERE outcome = 'error'"),
        what="the hung prepare to be given up",
    )
    assert "the prepare command timed out after 1 s" in error
    # An infrastructure error: the job is retried (on this worker or another), not failed.
    assert await pool.fetchval("SELECT status::text FROM jobs") in ("PENDING", "ASSIGNED")
    hung.send(signal.SIGTERM)
    assert await hung.wait() == 0


async def test_a_heartbeat_too_slow_for_the_lease_is_warned_about(
    api: Api, pool: asyncpg.Pool, fleet: Fleet
) -> None:
    # The service's leases last 2 s here; heartbeats every 1.5 s leave no room for a late one.
    slow = await fleet.start("slow", command="true", extra=("--heartbeat-interval", "1.5"))
    await submit(api, "v9", ["tests/a.spec.ts"])
    await eventually(lambda: all_ended(pool, 1), what="the job to end")
    assert "heartbeat interval 1.5 s is more than half the service's lease (2.0 s)" in slow.log()
    slow.send(signal.SIGTERM)
    assert await slow.wait() == 0


async def test_bad_worker_options_get_one_line_and_exit_2(api: Api, fleet: Fleet) -> None:
    answer = await run_cli_async("worker", "--target", "emulator", env=fleet.env())
    assert answer.code == 2
    assert answer.stderr.strip().startswith("Error: --executor local needs --command")
    unknown = await run_cli_async(
        "logs", f"--job-id={uuid.uuid4()}", env={**fleet.env(), "QGJOB_TOKEN": api.admin_token}
    )
    assert unknown.code == 1
    assert "not found" in unknown.stderr
    refused = await run_cli_async(
        "worker",
        "--target=emulator",
        "--command=true",
        env={**fleet.env(), "QGJOB_TOKEN": "qgj_not_a_token"},
        timeout_s=30,
    )
    assert refused.code == 1
    assert "refused the credentials" in refused.stderr.splitlines()[-1]
    # An adb worker with nowhere to find specs (the repository's root has no AppWright
    # project) says so as it starts.
    lost = await run_cli_async(
        "worker",
        "--target=emulator",
        "--executor=adb",
        env={**fleet.env(), "QGJOB_TOKEN": "qgj_not_a_token"},
        timeout_s=30,
    )
    assert lost.code == 1
    assert "is not an AppWright project (no appwright.config.ts)" in lost.stderr


async def test_a_second_sigint_stops_at_once_and_kills_the_job(
    api: Api, pool: asyncpg.Pool, fleet: Fleet, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    await submit(api, "v1", ["tests/forever.spec.ts", "tests/next.spec.ts"])
    worker = await fleet.start(
        "impatient", command=f"echo $$ > {shlex.quote(str(pid_file))}; exec sleep 60"
    )
    pid = await eventually(soon(lambda: pid_in(pid_file)), what="the job to start")
    worker.send(signal.SIGINT)
    await eventually(soon(lambda: "interrupt again" in worker.log()), what="the drain to begin")
    assert alive(pid)  # a first Ctrl-C lets the running job finish
    worker.send(signal.SIGINT)
    assert await worker.wait(timeout_s=10) == 130
    await eventually(soon(lambda: not alive(pid)), what="the job's process to die", timeout_s=5)


async def test_results_survive_an_outage_of_the_service(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    # A longer lease than the outage: the worker keeps its group and delivers late.
    settings = Settings(
        database_url=Secret(database_url),
        data_dir=tmp_path / "data",
        lease_ttl_s=15.0,
        heartbeat_interval_s=0.5,
        claim_timeout_s=2.0,
        retry_backoff_s=0.5,
        reaper_interval_s=0.2,
    )
    port = free_port()
    async with serve_in_loop(create_app(settings), port=port) as url:
        api = Api(
            url=url, settings=settings, admin_token=settings.local_token_path.read_text().strip()
        )
        crew = Fleet(api=api, tmp_path=tmp_path, token=await api.token(ORG, "worker"))
        await submit(api, "v1", [f"tests/t{i}.spec.ts" for i in range(3)])
        worker = await crew.start("steadfast", command="sleep 0.7")
        await eventually(
            lambda: pool.fetchval("SELECT count(*) > 0 FROM jobs WHERE status = 'RUNNING'"),
            what="a job to start",
        )
    try:
        # The service is down while jobs finish; their results wait in the worker.
        await eventually(
            soon(lambda: "results not sent" in worker.log()), what="a result to be held back"
        )
        async with serve_in_loop(create_app(settings), port=port):
            await eventually(lambda: all_ended(pool, 3), what="the held results to arrive")
            assert await statuses(pool) == {"COMPLETED": 3}
            finished = await pool.fetch(
                """SELECT count(*) FILTER (WHERE outcome = 'passed') AS n
                   FROM job_attempts GROUP BY job_id"""
            )
            assert [r["n"] for r in finished] == [1, 1, 1]
            worker.send(signal.SIGTERM)
            assert await worker.wait() == 0
    finally:
        if worker.running:
            await worker.kill9()
