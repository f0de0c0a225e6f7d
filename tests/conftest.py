"""Fixtures shared by every test tier: a real PostgreSQL and a real service on 127.0.0.1."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.database import create_pool
from app.main import create_app
from qgjob.settings import Secret, Settings
from tests.support.postgres import Cluster, cluster_for_tests
from tests.support.servers import serve_in_loop


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    with cluster_for_tests() as cluster:
        yield cluster


@pytest.fixture(scope="session")
async def pg_template(pg_cluster: Cluster) -> Cluster:
    await pg_cluster.build_template()
    return pg_cluster


@pytest.fixture
async def database_url(pg_template: Cluster) -> AsyncIterator[str]:
    """A fresh, migrated database for this test."""
    dsn = await pg_template.create_database()
    yield dsn
    await pg_template.drop_database(dsn)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, size=4)
    yield pool
    await pool.close()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=Secret(database_url),
        data_dir=tmp_path / "data",
        lease_ttl_s=2.0,
        heartbeat_interval_s=0.5,
        claim_timeout_s=2.0,
        retry_backoff_s=0.1,
        reaper_interval_s=0.2,
    )


@dataclasses.dataclass
class Api:
    """A running service and an admin client for it."""

    url: str
    settings: Settings
    admin_token: str

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def token(self, org_id: str, role: str = "submitter") -> str:
        async with self.client() as client:
            answer = await client.post("/v1/tokens", json={"org_id": org_id, "role": role})
            answer.raise_for_status()
            token: str = answer.json()["token"]
            return token


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with serve_in_loop(create_app(settings)) as url:
        admin = settings.local_token_path.read_text().strip()
        yield Api(url=url, settings=settings, admin_token=admin)
