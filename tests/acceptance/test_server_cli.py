"""`qgjob server` as a real process, driven by the real `qgjob` CLI.

Covers the README's promise: the local CLI needs no set-up on the server's host, bad input
gets one clear line and the right exit code, orgs cannot see each other, and every job the
server answered 2xx survives a restart, a `kill -9` included (the kill in the middle of a
burst of idempotent submits is tests/faults/test_server_kill.py).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.servers import ServerProcess, child_env, free_port

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(180)]


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    data_dir = tmp_path / "data"
    env = child_env({"QGJOB_DATABASE_URL": database_url, "QGJOB_DATA_DIR": str(data_dir)})
    proc = ServerProcess(env=env, port=free_port(), log_path=tmp_path / "server.log")
    proc.start()
    yield proc
    proc.stop()


def cli_env(server: ServerProcess, **extra: str) -> dict[str, str]:
    """What a user on the server's host has: the data dir, the URL, no token."""
    return child_env(
        {"QGJOB_DATA_DIR": server.env["QGJOB_DATA_DIR"], "QGJOB_SERVER_URL": server.url, **extra}
    )


def test_local_cli_submits_and_reads_back_with_no_setup(server: ServerProcess) -> None:
    env = cli_env(server)
    submitted = run_cli(
        "submit",
        "--org-id=qualgent",
        "--app-version-id=xyz123",
        "--test=tests/onboarding.spec.js",
        env=env,
    )
    assert submitted.code == 0, submitted.stderr
    assert "Job submitted successfully" in submitted.stdout
    job_id = next(
        line.split("Job ID:")[1].strip()
        for line in submitted.stdout.splitlines()
        if "Job ID:" in line
    )
    status = run_cli("status", f"--job-id={job_id}", "--json", env=env)
    assert status.code == 0, status.stderr
    job = status.json()
    assert job["status"] == "PENDING" and job["test_path"] == "tests/onboarding.spec.js"
    many = run_cli(
        "submit",
        "--org-id=qualgent",
        "--app-version-id=xyz123",
        "--test=tests/a.spec.ts",
        "--test=tests/b.spec.ts",
        "--target=browserstack",
        "--priority=high",
        "--json",
        env=env,
    )
    assert many.code == 0, many.stderr
    answer = many.json()
    assert len(answer["jobs"]) == 2 and {j["target"] for j in answer["jobs"]} == {"browserstack"}
    listed = run_cli("list", "--org-id=qualgent", "--json", env=env).json()
    assert len(listed["jobs"] if isinstance(listed, dict) else listed) == 3
    stats = run_cli("stats", "--json", env=env).json()
    assert stats["jobs"]["pending"] == 3
    cancelled = run_cli("cancel", f"--job-id={job_id}", env=env)
    assert cancelled.code == 0, cancelled.stderr
    again = run_cli("cancel", f"--job-id={job_id}", env=env)  # idempotent: nothing to do
    assert again.code == 0, again.stderr
    assert again.stdout == f"ℹ Job {job_id} already CANCELLED: nothing to cancel\n"


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (
            ["submit", "--org-id=q", "--app-version-id=v", "--test=t.spec.ts", "--target=ios"],
            2,
            "emulator",
        ),
        (
            ["submit", "--org-id=q", "--app-version-id=v", "--test=t.spec.ts", "--priority=urgent"],
            2,
            "high",
        ),
        (["submit", "--org-id=q", "--app-version-id=v", "--test="], 2, "test"),
        (["status", "--job-id=not-a-uuid"], 2, "job"),
        (["status", f"--job-id={uuid.uuid4()}"], 1, "not found"),
        (["submit", "--org-id=q", "--app-version-id=v"], 2, "test"),
    ],
)
def test_bad_input_gets_one_clear_line(
    server: ServerProcess, args: list[str], code: int, needle: str
) -> None:
    result = run_cli(*args, env=cli_env(server))
    assert result.code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert needle.lower() in result.stderr.lower()


def test_unreachable_server_and_bad_tokens(server: ServerProcess, tmp_path: Path) -> None:
    nowhere = child_env(
        {
            "QGJOB_SERVER_URL": f"http://127.0.0.1:{free_port()}",
            "QGJOB_DATA_DIR": str(tmp_path / "none"),
        }
    )
    down = run_cli("stats", env=nowhere)
    assert down.code == 1 and "Traceback" not in down.stderr
    assert "127.0.0.1" in down.stderr
    bad = run_cli("stats", env=cli_env(server, QGJOB_TOKEN="qgj_wrong"))
    assert bad.code == 1 and "token" in bad.stderr.lower()


def test_org_isolation_through_the_cli(server: ServerProcess) -> None:
    env = cli_env(server)
    tokens = {}
    for org in ("org-a", "org-b"):
        made = run_cli("token", "create", f"--org-id={org}", "--role=submitter", "--json", env=env)
        assert made.code == 0, made.stderr
        tokens[org] = made.json()["token"]
    env_a = cli_env(server, QGJOB_TOKEN=tokens["org-a"])
    env_b = cli_env(server, QGJOB_TOKEN=tokens["org-b"])
    job = run_cli(
        "submit", "--org-id=org-a", "--app-version-id=v", "--test=t.spec.ts", "--json", env=env_a
    ).json()["jobs"][0]
    assert run_cli("status", f"--job-id={job['job_id']}", env=env_b).code == 1
    assert run_cli("status", f"--job-id={job['job_id']}", env=env_a).code == 0
    foreign = run_cli(
        "submit", "--org-id=org-a", "--app-version-id=v", "--test=t.spec.ts", env=env_b
    )
    assert foreign.code == 1 and "org" in foreign.stderr.lower()
    listed = run_cli("list", "--org-id=org-a", env=env_b)
    assert listed.code == 1
    assert "cannot see the jobs of 'org-a'" in listed.stderr, listed.stderr


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Outside pytest's 0700 base dir: as root, the wheel runs PostgreSQL as an unprivileged
    user that must be able to reach the data directory."""
    with tempfile.TemporaryDirectory(prefix="qgjob-embedded-") as tmp:
        yield Path(tmp) / "data"


def test_embedded_database_keeps_jobs_across_restart_and_kill_9(
    data_dir: Path, tmp_path: Path
) -> None:
    env = child_env({"QGJOB_DATA_DIR": str(data_dir)})
    server = ServerProcess(env=env, port=free_port(), log_path=tmp_path / "server.log")
    server.start()
    try:
        cli = cli_env(server)
        first = run_cli(
            "submit",
            "--org-id=qualgent",
            "--app-version-id=v",
            "--test=a.spec.ts",
            "--json",
            env=cli,
        ).json()["jobs"][0]
        assert server.stop() == 0  # graceful: PostgreSQL stops with it
        server.start()
        second = run_cli(
            "submit",
            "--org-id=qualgent",
            "--app-version-id=v",
            "--test=b.spec.ts",
            "--json",
            env=cli,
        ).json()["jobs"][0]
        server.kill9()  # PostgreSQL outlives it; the next start attaches to it
        server.start()
        for job in (first, second):
            shown = run_cli("status", f"--job-id={job['job_id']}", "--json", env=cli)
            assert shown.code == 0, shown.stderr
            assert shown.json()["test_path"] == job["test_path"]
    finally:
        server.stop()
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()
