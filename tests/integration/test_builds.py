"""Builds over real HTTP: upload, external registration, reads, downloads, org isolation,
and how builds take part in claims (needs_build workers, the build in the claim, wakeups,
and the sweep that fails jobs whose build never came)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.store.builds import NewBuild, Saved, fail_jobs_without_build, save_build, waiting_for_build
from qgjob.settings import Settings
from qgjob.types import BuildPlatform
from tests.conftest import Api

pytestmark = pytest.mark.timeout(60)

ORG = "acme"
APK = b"PK\x03\x04 fake android package " * 100


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    # Jobs wait 30 s for their build unless a test asks for less (indirect parametrize).
    return dataclasses.replace(
        settings,
        max_build_bytes=64 * 1024,
        build_wait_s=getattr(request, "param", 30.0),
        build_sweep_interval_s=0.1,
        lease_ttl_s=30.0,
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(
    client: httpx.AsyncClient,
    data: bytes | AsyncIterator[bytes],
    *,
    app_version_id: str = "v1",
    filename: str = "app-release.apk",
    org_id: str = ORG,
    **extra: str,
) -> httpx.Response:
    params = {"org_id": org_id, "app_version_id": app_version_id, "filename": filename, **extra}
    return await client.post(
        "/v1/builds",
        params=params,
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def stored_files(api: Api) -> list[Path]:
    root = api.settings.data_dir / "builds"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_upload_stores_content_addressed_and_reads_back(api: Api) -> None:
    async with api.client() as client:
        created = await upload(client, APK)
        shown = await client.get("/v1/builds/v1", params={"org_id": ORG})
        download = await client.get(shown.json()["download_path"])
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["result"] == "created"
    assert (body["platform"], body["size"], body["sha256"]) == ("android", len(APK), sha(APK))
    assert body["stored"] and body["external_url"] is None
    assert shown.status_code == 200 and shown.json()["sha256"] == sha(APK)
    assert stored_files(api) == [api.settings.data_dir / "builds" / sha(APK)[:2] / sha(APK)]
    assert download.status_code == 200
    assert download.content == APK
    assert download.headers["content-length"] == str(len(APK))
    assert download.headers["x-qgjob-sha256"] == sha(APK)


async def test_same_content_is_idempotent_other_content_replaces(api: Api) -> None:
    other = b"another build" * 50
    async with api.client() as client:
        first = await upload(client, APK)
        again = await upload(client, APK)
        replaced = await upload(client, other, filename="app.aab")
        stale = await client.get(first.json()["download_path"])
        current = await client.get(replaced.json()["download_path"])
    assert first.status_code == 201
    assert (again.status_code, again.json()["result"]) == (200, "unchanged")
    assert (replaced.status_code, replaced.json()["result"]) == (200, "replaced")
    assert replaced.json()["sha256"] == sha(other)
    # The old blob had no other build pointing at it: it is gone; the new one is there.
    assert [p.name for p in stored_files(api)] == [sha(other)]
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "build_replaced"
    assert current.content == other


async def test_shared_blob_survives_replacing_one_of_its_builds(api: Api) -> None:
    async with api.client() as client:
        await upload(client, APK, app_version_id="v1")
        await upload(client, APK, app_version_id="v2")
        await upload(client, b"new" * 10, app_version_id="v1")
        still = await client.get("/v1/builds/v2/download", params={"org_id": ORG})
    assert still.status_code == 200 and still.content == APK
    assert sorted(p.name for p in stored_files(api)) == sorted([sha(APK), sha(b"new" * 10)])


async def test_size_limit_is_the_build_limit_not_the_api_body_limit(api: Api) -> None:
    limit = api.settings.max_build_bytes
    assert limit > api.settings.max_body_bytes or limit == 64 * 1024

    async def chunked(total: int) -> AsyncIterator[bytes]:
        for _ in range(total // 1024):
            yield b"x" * 1024

    async with api.client() as client:
        declared = await upload(client, b"x" * (limit + 1))
        streamed = await upload(client, chunked(limit + 4096))
        at_limit = await upload(client, b"y" * limit)
    assert declared.status_code == 413
    assert "QGJOB_MAX_BUILD_BYTES" in declared.json()["error"]["message"]
    assert streamed.status_code == 413
    assert str(limit) in streamed.json()["error"]["message"]
    assert at_limit.status_code == 201
    assert [p.name for p in stored_files(api)] == [sha(b"y" * limit)]  # no temp file left


async def test_expected_sha256_is_verified(api: Api) -> None:
    async with api.client() as client:
        wrong = await upload(client, APK, sha256="0" * 64)
        right = await upload(client, APK, sha256=sha(APK).upper())
        missing = await client.get("/v1/builds/v1", params={"org_id": ORG})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "sha256_mismatch"
    assert wrong.json()["error"]["field"] == "sha256"
    assert right.status_code == 201
    assert missing.json()["sha256"] == sha(APK)


@pytest.mark.parametrize(
    ("filename", "complaint"),
    [
        ("../../etc/passwd.apk", "without directories"),
        ("..\\evil.ipa", "without directories"),
        ("app.exe", ".apk, .aab, .ipa or .app.zip"),
        (".apk", ".apk, .aab, .ipa or .app.zip"),
        ("a\nb.apk", "control characters"),
    ],
)
async def test_client_filenames_never_become_paths(api: Api, filename: str, complaint: str) -> None:
    async with api.client() as client:
        answer = await upload(client, APK, filename=filename)
    assert answer.status_code == 422
    assert complaint in answer.json()["error"]["message"]
    assert answer.json()["error"]["field"] == "filename"
    assert stored_files(api) == []


async def test_platform_follows_the_extension(api: Api) -> None:
    async with api.client() as client:
        ios = await upload(client, APK, app_version_id="i1", filename="Runner.app.zip")
        ipa = await upload(client, APK, app_version_id="i2", filename="Runner.IPA")
    assert ios.json()["platform"] == "ios" and ipa.json()["platform"] == "ios"


async def test_external_build_is_registered_not_stored(api: Api) -> None:
    digest = "ab" * 32
    body = {"org_id": ORG, "app_version_id": "ext-1", "url": "https://cdn.example/b/app.ipa",
            "sha256": digest, "size": 1234}  # fmt: skip
    async with api.client() as client:
        created = await client.post("/v1/builds", json=body)
        again = await client.post("/v1/builds", json=body)
        download = await client.get("/v1/builds/ext-1/download", params={"org_id": ORG})
        nameless = await client.post(
            "/v1/builds", json={**body, "url": "https://cdn.example/latest", "app_version_id": "x"}
        )
    assert created.status_code == 201, created.text
    assert created.json()["platform"] == "ios" and created.json()["filename"] == "app.ipa"
    assert created.json()["external_url"] == body["url"] and not created.json()["stored"]
    assert again.json()["result"] == "unchanged"
    assert download.status_code == 404 and body["url"] in download.json()["error"]["message"]
    assert nameless.status_code == 422 and nameless.json()["error"]["field"] == "filename"
    assert stored_files(api) == []
    # The same bytes kept somewhere else (the old url went dead): the new url is the build's.
    async with api.client() as client:
        moved = await client.post(
            "/v1/builds", json={**body, "url": "https://mirror.example/app.ipa"}
        )
        shown = await client.get("/v1/builds/ext-1", params={"org_id": ORG})
    assert moved.json()["result"] == "replaced"
    assert shown.json()["external_url"] == "https://mirror.example/app.ipa"
    # A JSON body is JSON whatever its vendor type says: it is never stored as the build.
    async with api.client() as client:
        vendor = await client.post(
            "/v1/builds",
            content=json.dumps({**body, "app_version_id": "ext-2"}),
            headers={"Content-Type": "application/vnd.api+json"},
        )
    assert vendor.status_code == 201 and vendor.json()["external_url"] == body["url"]
    assert stored_files(api) == []


async def test_two_first_saves_of_one_version_take_turns(pool: asyncpg.Pool) -> None:
    # The first save has not committed when the second reads: the second must wait for it
    # and replace it (handing back its blob to delete), not also answer "created" and leave
    # the first blob referenced by nothing.
    def build(key: str) -> NewBuild:
        return NewBuild(ORG, "v9", BuildPlatform.ANDROID, "app.apk", 3, key, storage_key=key)

    first, second = "1" * 64, "2" * 64
    await pool.execute("INSERT INTO orgs (org_id) VALUES ($1)", ORG)  # an org of long standing
    async with pool.acquire() as one, pool.acquire() as two:
        opened = one.transaction()
        await opened.start()
        saved_first = await save_build(one, build(first))

        async def save_second() -> Saved:
            async with two.transaction():
                return await save_build(two, build(second))

        racing = asyncio.create_task(save_second())
        await asyncio.sleep(0.3)  # the second save is under way, waiting on the first
        await opened.commit()
        saved_second = await racing
    assert saved_first.created
    assert (saved_second.created, saved_second.dropped_key) == (False, first)


async def test_org_isolation(api: Api) -> None:
    mine = await api.token(ORG, "submitter")
    theirs = await api.token("globex", "submitter")
    worker = await api.token(ORG, "worker")
    async with api.client(mine) as client:
        await upload(client, APK)
    async with api.client(theirs) as client:
        hidden = await client.get("/v1/builds/v1")
        named = await client.get("/v1/builds/v1", params={"org_id": ORG})
        download = await client.get("/v1/builds/v1/download", params={"org_id": ORG})
        forged = await upload(client, b"evil" * 10)  # names org acme in the query
    async with api.client(worker) as client:
        fetched = await client.get("/v1/builds/v1/download")
        refused = await upload(client, APK)
    assert hidden.status_code == named.status_code == download.status_code == 404
    assert forged.status_code == 403
    assert fetched.status_code == 200 and fetched.content == APK
    assert refused.status_code == 403  # workers read builds, they do not upload them


async def test_fleet_token_must_name_the_org(api: Api) -> None:
    async with api.client() as client:
        await upload(client, APK)
        answer = await client.get("/v1/builds/v1")
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "org_id"


# --- Builds in claims -------------------------------------------------------------------


async def submit(client: httpx.AsyncClient, app_version_id: str, **extra: Any) -> dict[str, Any]:
    body = {"org_id": ORG, "app_version_id": app_version_id, "tests": ["tests/a.spec.ts"]}
    answer = await client.post("/v1/runs", json={**body, **extra})
    assert answer.status_code == 201, answer.text
    run: dict[str, Any] = answer.json()
    return run


async def register(
    client: httpx.AsyncClient, *, needs_build: bool, targets: tuple[str, ...] = ("emulator",)
) -> str:
    answer = await client.post(
        "/v1/workers",
        json={"name": "w", "target_types": list(targets), "needs_build": needs_build},
    )
    assert answer.status_code == 201, answer.text
    worker_id: str = answer.json()["worker_id"]
    return worker_id


async def claim(client: httpx.AsyncClient, worker_id: str, wait_s: float = 0) -> Any:
    answer = await client.post(f"/v1/workers/{worker_id}/claim", json={"wait_s": wait_s})
    assert answer.status_code in (200, 204), answer.text
    return None if answer.status_code == 204 else answer.json()


async def test_needs_build_worker_only_gets_keys_with_a_build(api: Api) -> None:
    async with api.client() as client:
        await submit(client, "no-build")
        await submit(client, "v1")
        await upload(client, APK, app_version_id="v1")
        picky = await register(client, needs_build=True)
        first = await claim(client, picky)
        second = await claim(client, picky)
        easy = await register(client, needs_build=False)
        third = await claim(client, easy)
        listed = (await client.get("/v1/workers")).json()["workers"]
    assert first is not None and first["app_version_id"] == "v1"
    build = first["build"]
    assert build["sha256"] == sha(APK) and build["size"] == len(APK)
    assert build["platform"] == "android" and build["filename"] == "app-release.apk"
    assert build["download_path"].startswith("/v1/builds/v1/download?")
    assert build["external_url"] is None
    assert second is None  # the other key has no build yet
    assert third is not None and third["app_version_id"] == "no-build"
    assert third["build"] is None
    assert {w["worker_id"]: w["needs_build"] for w in listed} == {picky: True, easy: False}


async def test_a_build_arriving_notifies_waiting_claims(api: Api, database_url: str) -> None:
    heard = asyncio.Event()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.add_listener("qgjob_pending", lambda *_: heard.set())
        async with api.client() as client:
            await submit(client, "late")
            picky = await register(client, needs_build=True)
            assert await claim(client, picky) is None
            heard.clear()
            waiting = asyncio.create_task(claim(client, picky, wait_s=20))
            await upload(client, APK, app_version_id="late")
            await asyncio.wait_for(heard.wait(), 10)
            group = await asyncio.wait_for(waiting, 25)
    finally:
        await conn.close()
    assert group is not None and group["build"]["sha256"] == sha(APK)


@pytest.mark.parametrize("settings", [0.5], indirect=True)
async def test_jobs_whose_build_never_comes_fail_with_a_clear_message(
    api: Api, pool: asyncpg.Pool
) -> None:
    async with api.client() as client:
        waiting = await submit(client, "never")
        served = await submit(client, "never", targets=["device"])
        await register(client, needs_build=True)
        await register(client, needs_build=False, targets=("device",))
        (job,) = waiting["jobs"]
        for _ in range(200):
            shown = (await client.get(f"/v1/jobs/{job['job_id']}")).json()
            if shown["status"] != "PENDING":
                break
            await asyncio.sleep(0.05)
        (other,) = served["jobs"]
        still = (await client.get(f"/v1/jobs/{other['job_id']}")).json()
    assert shown["status"] == "FAILED" and shown["outcome"] == "error"
    assert "never" in shown["error"]
    assert "qgjob build upload --org-id acme --app-version-id never" in shown["error"]
    # A live worker that runs without builds serves the device job: it is not failed.
    assert still["status"] == "PENDING"
    assert await waiting_for_build(pool, [uuid.UUID(other["job_id"])], live_within_s=60) == set()


async def test_waiting_for_build_names_the_jobs_without_one(api: Api, pool: asyncpg.Pool) -> None:
    async with api.client() as client:
        missing = await submit(client, "absent")
        present = await submit(client, "v1")
        await upload(client, APK, app_version_id="v1")
    ids = [uuid.UUID(r["jobs"][0]["job_id"]) for r in (missing, present)]
    assert await waiting_for_build(pool, ids, live_within_s=60) == {ids[0]}


async def test_two_replicas_sweeping_at_once_fail_each_job_once(
    api: Api, pool: asyncpg.Pool
) -> None:
    async with api.client() as client:
        for version in ("x1", "x2", "x3"):
            await submit(client, version)
    async with pool.acquire() as one, pool.acquire() as two:
        first = one.transaction()
        second = two.transaction()
        await first.start()
        await second.start()
        try:
            by_one = await fail_jobs_without_build(one, wait_s=0, live_within_s=60)
            by_two = await fail_jobs_without_build(two, wait_s=0, live_within_s=60)
        finally:
            await first.commit()
            await second.commit()
    assert (len(by_one), len(by_two)) == (3, 0)
    failed = await pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'FAILED'")
    assert failed == 3


async def test_an_interrupted_upload_leaves_nothing_and_no_traceback(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token = await api.token(ORG)
    host, port = api.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /v1/builds?org_id={ORG}&app_version_id=cut&filename=a.apk HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 60000\r\n\r\n".encode()
        + b"x" * 20_000
    )
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()  # the client goes away with two thirds still to send
    for _ in range(100):
        if "client disconnected" in caplog.text:
            break
        await asyncio.sleep(0.05)
    assert "client disconnected method=POST path=/v1/builds" in caplog.text
    assert "unhandled error" not in caplog.text and "Traceback" not in caplog.text
    assert stored_files(api) == []
