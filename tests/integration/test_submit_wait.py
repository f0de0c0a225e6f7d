"""`qgjob submit --wait` against the real service, with the worker side played over the
worker protocol by the test: exit codes 0/1/2/3, the JUnit file and the Markdown summary."""

from __future__ import annotations

import asyncio
import signal
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Api
from tests.integration.test_leases import claim, events, finished, register
from tests.support.servers import REPO, child_env
from tests.support.workers import CliAnswer, run_cli_async

pytestmark = pytest.mark.timeout(90)
ORG = "acme"


async def cli_env(api: Api) -> dict[str, str]:
    return child_env({"QGJOB_SERVER_URL": api.url, "QGJOB_TOKEN": await api.token(ORG)})


def submit_args(tmp_path: Path, *tests: str, extra: tuple[str, ...] = ()) -> list[str]:
    args = ["submit", "--org-id", ORG, "--app-version-id", "v9", "--wait", "--interval", "0.2"]
    for test in tests:
        args += ["--test", test]
    args += ["--junit", str(tmp_path / "junit.xml"), "--summary", str(tmp_path / "summary.md")]
    return [*args, *extra]


async def play_worker(api: Api, outcomes: dict[str, dict[str, Any]]) -> None:
    """Claim the group and report each test's outcome, as a worker would."""
    async with httpx.AsyncClient(
        base_url=api.url,
        headers={"Authorization": f"Bearer {await api.token(ORG, 'worker')}"},
        timeout=30,
    ) as client:
        worker = await register(client)
        group = None
        while group is None:
            group = await claim(client, worker, wait_s=1)
        reports = [finished(job["job_id"], **outcomes[job["test_path"]]) for job in group["jobs"]]
        answer = await events(client, group, *reports)
        assert answer.status_code == 200, answer.text


async def submit_and_play(
    api: Api, tmp_path: Path, outcomes: dict[str, dict[str, Any]]
) -> CliAnswer:
    env = await cli_env(api)
    cli = asyncio.create_task(run_cli_async(*submit_args(tmp_path, *outcomes), env=env))
    await play_worker(api, outcomes)
    return await cli


async def test_exit_0_when_everything_passed_flaky_included(api: Api, tmp_path: Path) -> None:
    answer = await submit_and_play(
        api,
        tmp_path,
        {
            "tests/a.spec.ts": {"outcome": "passed"},
            "tests/b.spec.ts": {"outcome": "flaky", "error": "Timeout 5000ms exceeded"},
        },
    )
    assert answer.code == 0, answer.stdout + answer.stderr
    assert "All 2 tests passed, 1 flaky" in answer.stdout
    summary = (tmp_path / "summary.md").read_text()
    assert "## ✅ Build Passed" in summary
    assert "All 2 tests passed (1 flaky: passed on a retry)." in summary
    assert "| `tests/b.spec.ts` | COMPLETED | ⚠️ flaky |" in summary
    root = ET.parse(tmp_path / "junit.xml").getroot()  # noqa: S314 - our server's answer
    flaky = [case for case in root.iter("testcase") if case.find("flakyFailure") is not None]
    assert [case.get("name") for case in flaky] == ["tests/b.spec.ts"]


async def test_exit_1_names_the_failed_spec_and_its_error(api: Api, tmp_path: Path) -> None:
    (tmp_path / "summary.md").write_text("## 🔍 Test Discovery\n\nearlier step\n\n")
    answer = await submit_and_play(
        api,
        tmp_path,
        {
            "tests/ok.spec.ts": {"outcome": "passed"},
            "tests/pay.spec.ts": {
                "outcome": "failed",
                "error": 'Element text("Paid") was not found | retried\n  at pay.spec.ts:9:5',
            },
        },
    )
    assert answer.code == 1, answer.stdout + answer.stderr
    assert 'tests/pay.spec.ts [emulator]: Element text("Paid") was not found' in answer.stdout
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("## 🔍 Test Discovery\n\nearlier step\n\n## 📤 Job Submission")
    failed = summary.split("## ❌ Build Failed", 1)[1]
    assert "1 of 2 tests failed." in failed
    assert (
        '- **`tests/pay.spec.ts`** (emulator): `Element text("Paid") was not found \\| retried`'
        in failed
    )
    assert "at pay.spec.ts:9:5" in failed  # the full error, in a collapsed block
    assert (tmp_path / "junit.xml").exists()


async def test_exit_3_on_timeout_cancels_what_is_unfinished(api: Api, tmp_path: Path) -> None:
    env = await cli_env(api)
    answer = await run_cli_async(
        *submit_args(tmp_path, "tests/a.spec.ts", "tests/b.spec.ts", extra=("--timeout", "1")),
        env=env,
    )
    assert answer.code == 3, answer.stdout + answer.stderr
    assert "timed out" in answer.stdout
    summary = (tmp_path / "summary.md").read_text()
    assert "## ⏱️ Timed Out" in summary
    assert "2 of 2 jobs were cancelled unfinished." in summary
    assert "## ✅ Build Passed" not in summary
    async with api.client() as client:
        jobs = (await client.get("/v1/jobs", params={"org_id": ORG})).json()["jobs"]
    assert {job["status"] for job in jobs} == {"CANCELLED"}


async def test_ctrl_c_while_waiting_cancels_the_run(api: Api, tmp_path: Path) -> None:
    env = await cli_env(api)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "qgjob",
        *submit_args(tmp_path, "tests/a.spec.ts"),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    async with api.client() as client:
        for _ in range(600):
            jobs = (await client.get("/v1/jobs", params={"org_id": ORG})).json()["jobs"]
            if jobs:
                break
            await asyncio.sleep(0.05)
        assert jobs, "the submit never arrived"
        await asyncio.sleep(0.5)  # into the wait
        proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode != 0
        assert f"Interrupted: run {jobs[0]['run_id']} cancelled" in out.decode()
        job = (await client.get(f"/v1/jobs/{jobs[0]['job_id']}")).json()
    assert job["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--junit", "x.xml"), "--junit needs --wait"),
        (("--wait", "--timeout", "0"), "--timeout must be a number of seconds above 0"),
        (("--wait", "--target", "emulator,phone"), "--target must be one of"),
        (("--wait", "--tests-from", "/no/such/list.txt"), "--tests-from: cannot read"),
    ],
)
async def test_usage_errors_exit_2_before_submitting(
    api: Api, extra: tuple[str, ...], message: str
) -> None:
    env = await cli_env(api)
    args = ["submit", "--org-id", ORG, "--app-version-id", "v", "--test", "a.spec.ts", *extra]
    answer = await run_cli_async(*args, env=env)
    assert answer.code == 2, answer.stdout + answer.stderr
    assert answer.stderr.startswith("Error: ") and message in answer.stderr
    assert "Traceback" not in answer.stderr
    async with api.client() as client:
        assert (await client.get("/v1/stats")).json()["jobs"]["total"] == 0


async def test_tests_from_a_file_and_several_targets_make_one_run(api: Api, tmp_path: Path) -> None:
    listing = tmp_path / "specs.txt"
    listing.write_text("# found by qgjob specs\ntests/a.spec.ts\n\ntests/b.spec.ts\n")
    env = await cli_env(api)
    answer = await run_cli_async(
        "submit",
        *("--org-id", ORG, "--app-version-id", "v", "--tests-from", str(listing)),
        *("--target", "emulator", "--target", "browserstack,emulator", "--source", "actions"),
        "--json",
        env=env,
    )
    assert answer.code == 0, answer.stderr
    run = answer.json()
    assert run["source"] == "actions"
    assert run["targets"] == ["emulator", "browserstack"]
    assert sorted((j["test_path"], j["target"]) for j in run["jobs"]) == [
        ("tests/a.spec.ts", "browserstack"),
        ("tests/a.spec.ts", "emulator"),
        ("tests/b.spec.ts", "browserstack"),
        ("tests/b.spec.ts", "emulator"),
    ]
