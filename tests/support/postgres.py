"""A PostgreSQL for the test session: `QGJOB_TEST_DATABASE_URL`, or an embedded one.

Migrations run once into a template database; each test gets a fresh copy of it
(`CREATE DATABASE … TEMPLATE …` copies files, so it costs milliseconds).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from app.database import create_pool
from app.embedded import start_embedded
from app.migrations import migrate

TEMPLATE = "qgjob_test_template"


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


@dataclass
class Cluster:
    admin_dsn: str

    def dsn(self, database: str) -> str:
        return with_database(self.admin_dsn, database)

    async def build_template(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
            await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        finally:
            await conn.close()
        pool = await create_pool(self.dsn(TEMPLATE), size=1)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
        finally:
            await pool.close()

    async def create_database(self) -> str:
        name = "qgjob_test_" + uuid.uuid4().hex[:12]
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        finally:
            await conn.close()
        return self.dsn(name)

    async def drop_database(self, dsn: str) -> None:
        name = urlsplit(dsn).path.lstrip("/")
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@contextmanager
def cluster_for_tests() -> Iterator[Cluster]:
    url = os.environ.get("QGJOB_TEST_DATABASE_URL")
    if url:
        yield Cluster(admin_dsn=url)
        return
    with tempfile.TemporaryDirectory(prefix="qgjob-test-pg-") as tmp:
        embedded = start_embedded(Path(tmp))
        try:
            yield Cluster(admin_dsn=embedded.dsn)
        finally:
            embedded.stop()
