"""`qgjob build …` against the real service, and what a claim hands the worker: the build
(parsed by the worker's client) and, with a source provider, a token to read the repo."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.main import create_app
from app.sources import SourceGrant
from qgjob.settings import Settings
from qgjob.worker_api import WorkerApi
from tests.conftest import Api
from tests.support.servers import child_env, serve_in_loop
from tests.support.workers import run_cli_async

pytestmark = pytest.mark.timeout(60)
ORG = "acme"


async def test_register_external_then_show(api: Api) -> None:
    env = child_env({"QGJOB_SERVER_URL": api.url, "QGJOB_TOKEN": await api.token(ORG)})
    sha = "cd" * 32
    registered = await run_cli_async(
        "build", "upload", "--org-id", ORG, "--app-version-id", "v9",
        "--url", "https://cdn.example/builds/Runner.ipa", "--sha256", sha.upper(), env=env,
    )  # fmt: skip
    shown = await run_cli_async("build", "show", "--app-version-id", "v9", "--json", env=env)
    table = await run_cli_async("build", "show", "--app-version-id", "v9", env=env)
    missing = await run_cli_async("build", "show", "--app-version-id", "nope", env=env)
    assert registered.code == 0, registered.stderr
    assert "Registered Runner.ipa (ios" in registered.stdout
    assert shown.json()["sha256"] == sha and shown.json()["external_url"].endswith("Runner.ipa")
    assert "https://cdn.example/builds/Runner.ipa" in table.stdout
    assert missing.code == 1
    assert missing.stderr.count("\n") == 1 and "qgjob build upload" in missing.stderr


async def test_upload_too_large_is_one_clear_line(api: Api, tmp_path: Path) -> None:
    env = child_env({"QGJOB_SERVER_URL": api.url, "QGJOB_TOKEN": await api.token(ORG)})
    apk = tmp_path / "huge.aab"
    with apk.open("wb") as out:
        out.truncate(api.settings.max_build_bytes + 1)  # sparse: no disk used
    result = await run_cli_async(
        "build", "upload", "--org-id", ORG, "--app-version-id", "big", str(apk), env=env
    )
    assert result.code == 1
    assert "QGJOB_MAX_BUILD_BYTES" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def settings(settings: Settings) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, max_build_bytes=1024 * 1024)


class RepoAccess:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def grant(self, *, org_id: str, repo: str) -> SourceGrant | None:
        self.asked.append((org_id, repo))
        return SourceGrant(token=f"ghs_for_{repo.replace('/', '_')}", api_url="http://gh.test")


@pytest.fixture
async def granting(settings: Settings) -> AsyncIterator[tuple[Api, RepoAccess]]:
    access = RepoAccess()
    async with serve_in_loop(create_app(settings, source_access=access)) as url:
        admin = settings.local_token_path.read_text().strip()
        yield Api(url=url, settings=settings, admin_token=admin), access


async def test_claim_carries_build_and_source_token(
    granting: tuple[Api, RepoAccess], tmp_path: Path
) -> None:
    api, access = granting
    data = b"android build" * 100
    async with api.client() as client:
        await client.post(
            "/v1/runs",
            json={"org_id": ORG, "app_version_id": "v1", "tests": ["tests/a.spec.ts"] * 2,
                  "repo": "octo/app", "ref": "main", "head_sha": "a" * 40},
        )  # fmt: skip
        await client.post(
            "/v1/builds",
            params={"org_id": ORG, "app_version_id": "v1", "filename": "app.apk"},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
    async with WorkerApi(api.url, await api.token(ORG, "worker")) as worker:
        worker_id = await worker.register(
            name="w", target_types=["emulator"], labels={}, capacity=1, needs_build=True
        )
        group = await worker.claim(worker_id, wait_s=0)
        assert group is not None and group.build is not None
        async with worker.download(group.build.download_path or "") as response:
            fetched = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert group.build.sha256 == hashlib.sha256(data).hexdigest()
    assert fetched == data
    assert group.source is not None and group.source.token == "ghs_for_octo_app"
    assert group.source.api_url == "http://gh.test"
    assert "ghs_for" not in repr(group.source)  # the token never shows in logs
    assert all(job.source and job.source.token for job in group.jobs)
    assert access.asked == [(ORG, "octo/app")]  # once per repository, not per job
