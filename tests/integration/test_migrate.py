"""`qgjob migrate` as a deploy step, and servers that leave migrating to it
(`QGJOB_MIGRATE_ON_START=false`)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from app.main import StartupError, running_services
from app.migrations import load_migrations
from qgjob.settings import Secret, Settings
from tests.support.postgres import Cluster
from tests.support.servers import child_env
from tests.support.workers import run_cli_async

pytestmark = pytest.mark.timeout(90)
LATEST = max(m.version for m in load_migrations())


@pytest.fixture
async def empty_database(pg_template: Cluster) -> AsyncIterator[str]:
    name = "qgjob_empty_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(pg_template.admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = pg_template.dsn(name)
    yield dsn
    await pg_template.drop_database(dsn)


async def test_migrate_applies_everything_once_then_nothing(empty_database: str) -> None:
    env = child_env({"QGJOB_DATABASE_URL": empty_database})
    first = await run_cli_async("migrate", "--json", env=env)
    assert first.code == 0, first.stderr
    assert first.json() == {"applied": [m.version for m in load_migrations()], "version": LATEST}
    again = await run_cli_async("migrate", env=env)
    assert again.code == 0, again.stderr
    assert "Nothing to apply" in again.stdout
    assert f"Schema version: {LATEST}" in again.stdout


async def test_migrate_needs_an_external_database_and_names_an_unreachable_one() -> None:
    unset = await run_cli_async("migrate", env=child_env({}))
    assert unset.code == 2
    assert unset.stderr.startswith("Error: QGJOB_DATABASE_URL is not set")
    dead = await run_cli_async(
        "migrate",
        env=child_env(
            {
                "QGJOB_DATABASE_URL": "postgresql://qgjob:secret-pw@127.0.0.1:9/qgjob",
                "QGJOB_DB_CONNECT_TIMEOUT_S": "0.5",
            }
        ),
    )
    assert dead.code == 1
    assert "cannot connect to PostgreSQL at 127.0.0.1:9/qgjob" in dead.stderr
    assert "secret-pw" not in dead.stderr + dead.stdout
    assert "Traceback" not in dead.stderr


async def test_a_server_that_does_not_migrate_refuses_a_schema_behind_it(
    empty_database: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=Secret(empty_database), data_dir=tmp_path / "data", migrate_on_start=False
    )
    with pytest.raises(StartupError, match=r"lacks migrations 1, .*run `qgjob migrate` first"):
        async with running_services(settings):
            pass
    answer = await run_cli_async("migrate", env=child_env({"QGJOB_DATABASE_URL": empty_database}))
    assert answer.code == 0, answer.stderr
    async with running_services(settings) as services:
        assert await services.pool.fetchval("SELECT count(*) FROM schema_migrations") == len(
            load_migrations()
        )
    migrating = dataclasses.replace(settings, migrate_on_start=True)
    async with running_services(migrating):
        pass
