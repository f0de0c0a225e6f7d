"""`GET /v1/runs/{run_id}/junit` and `qgjob run --junit`: a run's results as JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import Api
from tests.integration.test_leases import claim, events, finished, register, submit
from tests.support.servers import child_env
from tests.support.workers import run_cli_async

pytestmark = pytest.mark.timeout(60)
FAILURE = "expect(received).toBe(1)\n  at tests/t2.spec.ts:4:7"


async def finished_run(api: Api) -> str:
    """A run of four specs: passed, flaky, failed, and one still pending."""
    async with api.client() as client:
        run = await submit(client, "v7", 4, org_id="acme")
        worker = await register(client)
        group = await claim(client, worker)
        assert group is not None
        by_path = {job["test_path"]: job["job_id"] for job in group["jobs"]}
        answer = await events(
            client,
            group,
            finished(by_path["tests/t0.spec.ts"], "passed"),
            finished(by_path["tests/t1.spec.ts"], "flaky", error="\x1b[31mTimeout 5000ms\x1b[0m"),
            finished(
                by_path["tests/t2.spec.ts"], "failed", error="expect(received).toBe(1)\n  at x"
            ),
        )
        assert answer.status_code == 200, answer.text
    run_id: str = run["run_id"]
    return run_id


def cases_of(document: str) -> dict[str, ET.Element]:
    root = ET.fromstring(  # noqa: S314 (our own server's answer)
        document
    )
    assert root.tag == "testsuites"
    return {case.get("name", ""): case for case in root.iter("testcase")}


async def test_junit_has_one_case_per_spec_with_flaky_as_flaky_failure(api: Api) -> None:
    run_id = await finished_run(api)
    async with api.client() as client:
        answer = await client.get(f"/v1/runs/{run_id}/junit")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    cases = cases_of(answer.text)
    assert set(cases) == {f"tests/t{i}.spec.ts" for i in range(4)}
    assert (
        list(cases["tests/t0.spec.ts"]) == [] or cases["tests/t0.spec.ts"].find("failure") is None
    )
    flaky = cases["tests/t1.spec.ts"].find("flakyFailure")
    assert flaky is not None and flaky.get("message") == "Timeout 5000ms"
    assert cases["tests/t1.spec.ts"].find("failure") is None
    failure = cases["tests/t2.spec.ts"].find("failure")
    assert failure is not None and failure.get("message") == "expect(received).toBe(1)"
    assert cases["tests/t3.spec.ts"].find("skipped") is not None  # not run yet
    suite = ET.fromstring(  # noqa: S314 (our own server's answer)
        answer.text
    ).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    assert cases["tests/t0.spec.ts"].get("classname") == "emulator.v7"


async def test_junit_of_another_orgs_run_is_not_found(api: Api) -> None:
    run_id = await finished_run(api)
    other = await api.token("globex")
    async with api.client(other) as client:
        answer = await client.get(f"/v1/runs/{run_id}/junit")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


async def test_qgjob_run_junit_saves_the_document(api: Api, tmp_path: Path) -> None:
    run_id = await finished_run(api)
    out = tmp_path / "reports" / "junit.xml"
    env = child_env({"QGJOB_SERVER_URL": api.url, "QGJOB_TOKEN": api.admin_token})
    answer = await run_cli_async("run", "--run-id", run_id, "--junit", str(out), env=env)
    assert answer.code == 0, answer.stderr
    assert set(cases_of(out.read_text())) == {f"tests/t{i}.spec.ts" for i in range(4)}
    unwritable = await run_cli_async(
        "run", "--run-id", run_id, "--junit", "/proc/no/such/junit.xml", env=env
    )
    assert unwritable.code == 2
    assert unwritable.stderr.startswith("Error: --junit: cannot write /proc/no/such/junit.xml")
