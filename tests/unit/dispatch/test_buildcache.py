"""The worker's build cache: downloads once per host, checks sha256, evicts LRU, shares safely.

Builds are served over real HTTP on 127.0.0.1 by a small file server that counts requests
(the service's download route is exercised against the real service in the integration and
acceptance tests).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dispatch.buildcache import BuildCache
from dispatch.errors import InfrastructureError
from qgjob.client import QgjobClient
from qgjob.worker_api import ClaimedBuild
from tests.support.servers import REPO, serve_in_loop

pytestmark = pytest.mark.timeout(60)
TOKEN = "qgj_worker"


@dataclass
class FileServer:
    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    delay_s: float = 0.0

    def build(self, name: str, data: bytes, *, claimed_sha: str | None = None) -> ClaimedBuild:
        self.files[name] = data
        return ClaimedBuild(
            app_version_id=name,
            sha256=claimed_sha or hashlib.sha256(data).hexdigest(),
            size=len(data),
            filename=f"{name}.apk",
            platform="android",
            external_url=f"{self.url}/files/{name}",
        )


@pytest.fixture
async def server() -> AsyncIterator[FileServer]:
    state = FileServer()

    async def serve_file(request: Request) -> Response:
        name = request.path_params["name"]
        state.hits[name] = state.hits.get(name, 0) + 1
        await asyncio.sleep(state.delay_s)
        if name not in state.files:
            return Response(status_code=404)
        return Response(state.files[name], media_type="application/octet-stream")

    async def serve_build(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return Response(b'{"error": {"code": "unauthorized", "message": "no"}}', 401)
        return await serve_file(request)

    app = Starlette(
        routes=[
            Route("/files/{name}", serve_file),
            Route("/v1/builds/{name}/download", serve_build),
        ]
    )
    async with serve_in_loop(app) as url:
        state.url = url
        yield state


async def test_downloads_once_then_serves_from_disk(server: FileServer, tmp_path: Path) -> None:
    build = server.build("v1", b"apk bytes" * 1000)
    cache = BuildCache(tmp_path / "cache", 10**6)
    try:
        first = await cache.fetch(build)
        second = await cache.fetch(build)
    finally:
        await cache.close()
    assert first == second == tmp_path / "cache" / "blobs" / build.sha256
    assert first.read_bytes() == server.files["v1"]
    assert server.hits == {"v1": 1}


async def test_download_path_uses_the_workers_token(server: FileServer, tmp_path: Path) -> None:
    data = b"stored on the service"
    server.files["v2"] = data
    build = ClaimedBuild(
        app_version_id="v2",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        filename="v2.apk",
        platform="android",
        download_path="/v1/builds/v2/download?org_id=acme",
    )
    async with QgjobClient(server.url, TOKEN) as api, QgjobClient(server.url, "wrong") as bad:
        good_cache = BuildCache(tmp_path / "a", 10**6, api=api)
        refused_cache = BuildCache(tmp_path / "b", 10**6, api=bad)
        path = await good_cache.fetch(build)
        with pytest.raises(InfrastructureError, match="cannot download build v2"):
            await refused_cache.fetch(build)
        await good_cache.close()
        await refused_cache.close()
    assert path.read_bytes() == data
    assert list((tmp_path / "b" / "blobs").iterdir()) == []


async def test_sha256_mismatch_keeps_nothing(server: FileServer, tmp_path: Path) -> None:
    build = server.build("v1", b"what arrived", claimed_sha=hashlib.sha256(b"other").hexdigest())
    cache = BuildCache(tmp_path, 10**6)
    with pytest.raises(InfrastructureError) as caught:
        await cache.fetch(build)
    await cache.close()
    assert caught.value.code == "build_sha256_mismatch"
    assert build.sha256 in caught.value.reason
    assert list((tmp_path / "blobs").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_missing_file_is_an_infrastructure_error(server: FileServer, tmp_path: Path) -> None:
    build = server.build("v1", b"x")
    del server.files["v1"]
    cache = BuildCache(tmp_path, 10**6)
    with pytest.raises(InfrastructureError, match="HTTP 404"):
        await cache.fetch(build)
    await cache.close()


async def test_evicts_least_recently_used_past_the_cap(server: FileServer, tmp_path: Path) -> None:
    a, b, c = (server.build(n, n.encode() * 100) for n in ("a", "b", "c"))
    cache = BuildCache(tmp_path, 250, pin_limit=1)
    try:
        await cache.fetch(a)
        await cache.fetch(b)
        await cache.fetch(a)  # a is now more recently used than b
        await cache.fetch(c)
    finally:
        await cache.close()
    kept = {p.name for p in (tmp_path / "blobs").iterdir()}
    assert kept == {a.sha256, c.sha256}
    # An evicted build's lock files go with it; the kept builds' stay.
    locks = {p.name for p in (tmp_path / "locks").iterdir()}
    assert locks == {f"{sha}.{kind}" for sha in kept for kind in ("use", "fetch")}


async def test_builds_in_use_are_not_evicted(server: FileServer, tmp_path: Path) -> None:
    a, b, c = (server.build(n, n.encode() * 100) for n in ("a", "b", "c"))
    cache = BuildCache(tmp_path, 150, pin_limit=3)
    try:
        await cache.fetch(a)
        await cache.fetch(b)  # over the cap, but both are in use
        assert {p.name for p in (tmp_path / "blobs").iterdir()} == {a.sha256, b.sha256}
        cache.release(a)
        await cache.fetch(c)
    finally:
        await cache.close()
    assert {p.name for p in (tmp_path / "blobs").iterdir()} == {b.sha256, c.sha256}


async def test_a_build_in_use_by_another_process_is_not_evicted(
    server: FileServer, tmp_path: Path
) -> None:
    a, b = (server.build(n, n.encode() * 100) for n in ("a", "b"))
    holder = BuildCache(tmp_path, 10**6)
    other = BuildCache(tmp_path, 150, pin_limit=1)  # same directory, other descriptors
    try:
        await holder.fetch(a)
        await other.fetch(b)  # 200 bytes > 150, but a is pinned by `holder`
        assert {p.name for p in (tmp_path / "blobs").iterdir()} == {a.sha256, b.sha256}
        await holder.close()
        await other.fetch(b)
    finally:
        await other.close()
    assert {p.name for p in (tmp_path / "blobs").iterdir()} == {b.sha256}


FETCH_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from dispatch.buildcache import BuildCache
from qgjob.worker_api import ClaimedBuild

async def main():
    cache = BuildCache(Path(sys.argv[1]), 10**9)
    path = await cache.fetch(ClaimedBuild(**json.loads(sys.argv[2])))
    await cache.close()
    print(path)

asyncio.run(main())
"""


async def test_two_processes_sharing_a_directory_download_once(
    server: FileServer, tmp_path: Path
) -> None:
    build = server.build("big", bytes(range(256)) * 4096)
    server.delay_s = 0.5  # the first download is still running when the second process asks
    wire = json.dumps(build.__dict__)
    args = (sys.executable, "-c", FETCH_SCRIPT, str(tmp_path / "shared"), wire)
    pipe = asyncio.subprocess.PIPE
    procs = [
        await asyncio.create_subprocess_exec(*args, stdout=pipe, stderr=pipe, cwd=REPO)
        for _ in range(2)
    ]
    outputs = [await asyncio.wait_for(p.communicate(), 30) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err.decode() for _, err in outputs]
    paths = {out.decode().strip() for out, _ in outputs}
    assert paths == {str(tmp_path / "shared" / "blobs" / build.sha256)}
    assert server.hits == {"big": 1}
    assert Path(paths.pop()).read_bytes() == server.files["big"]
