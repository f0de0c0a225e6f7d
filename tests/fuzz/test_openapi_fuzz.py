"""schemathesis against the live server's /openapi.json: every operation, valid tokens.

A real `qgjob server` process serves a database that already holds a run, a registered
worker and a leased group, so that generated calls can reach past "not found". Each
operation gets a small, derandomized batch of generated requests (CI sees the same ones
every time), sent with the admin token; every answer must be no 5xx, a status the
document lists for the operation, the documented content type, and a body that matches the
documented schema. All operations run before the test reports, so one run shows every
disagreement between the document and the code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.standins.github import generate_app_key
from tests.support.servers import ServerProcess, child_env, free_port

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(240)]

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    key = tmp_path / "app.pem"
    key.write_bytes(generate_app_key()[0])
    env = child_env(
        {
            "QGJOB_DATABASE_URL": database_url,
            "QGJOB_DATA_DIR": str(tmp_path / "data"),
            "QGJOB_CLAIM_TIMEOUT_S": "0.2",  # generated claims must not each wait 30 s
            "QGJOB_AUTH_FAILURES_MAX": "100000",
            # The GitHub App configured, so that its webhook route checks signatures instead
            # of answering 503; no delivery the fuzzer makes up is signed, so GitHub itself
            # (here an address nothing listens on) is never called.
            "QGJOB_GITHUB_APP_ID": "1",
            "QGJOB_GITHUB_PRIVATE_KEY_PATH": str(key),
            "QGJOB_GITHUB_WEBHOOK_SECRET": "fuzz-secret",
            "QGJOB_GITHUB_API_URL": f"http://127.0.0.1:{free_port()}",
        }
    )
    proc = ServerProcess(env=env, port=free_port(), log_path=tmp_path / "server.log")
    proc.start()
    yield proc
    proc.stop()


def _seed(url: str, token: str) -> dict[str, str]:
    """Real ids for the path parameters: a job, its run, a worker and the group it leased."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        run = client.post(
            "/v1/runs",
            json={"org_id": "acme", "app_version_id": "v1", "tests": ["t/a.ts", "t/b.ts"]},
        ).json()
        worker = client.post(
            "/v1/workers", json={"name": "w", "target_types": ["emulator"], "capacity": 4}
        ).json()
        group = client.post(f"/v1/workers/{worker['worker_id']}/claim", json={"wait_s": 0}).json()
    return {
        "job_id": run["jobs"][0]["job_id"],
        "run_id": run["run_id"],
        "worker_id": worker["worker_id"],
        "group_id": group["group_id"],
    }


def test_every_operation_answers_as_documented(server: ServerProcess) -> None:
    token = Path(server.env["QGJOB_DATA_DIR"], "admin.token").read_text().strip()
    real = _seed(server.url, token)
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), use_real_ids=st.booleans())
        def call(case: schemathesis.Case, use_real_ids: bool) -> None:
            # Half the calls aim at things that exist, so that they get past "not found".
            if use_real_ids and case.path_parameters:
                case.path_parameters = {k: real.get(k, v) for k, v in case.path_parameters.items()}
            case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS)

        try:
            call()
        except BaseException as exc:  # every operation's failure (an ExceptionGroup), then all
            failures.append(f"{operation.method.upper()} {operation.path}:\n{exc}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
    assert "Traceback" not in server.log_path.read_text()
