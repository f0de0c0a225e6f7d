"""The schema as a deploy step: apply migrations and exit (`qgjob migrate`), or check that
another step did (servers started with `QGJOB_MIGRATE_ON_START=false`)."""

from __future__ import annotations

import dataclasses

from app.database import Conn, TxConn
from app.migrations import load_migrations, migrate
from qgjob.settings import Settings

_APPLIED = """
SELECT coalesce(array_agg(version ORDER BY version), '{}') FROM schema_migrations
"""
_HAS_TABLE = "SELECT to_regclass('schema_migrations') IS NOT NULL"


async def applied_versions(conn: Conn) -> list[int]:
    if not await conn.fetchval(_HAS_TABLE):
        return []
    versions: list[int] = await conn.fetchval(_APPLIED)
    return list(versions)


async def missing_migrations(conn: Conn) -> list[int]:
    """Versions this code ships that the database has not applied."""
    done = set(await applied_versions(conn))
    return [m.version for m in load_migrations() if m.version not in done]


async def migrate_and_report(conn: TxConn) -> tuple[list[int], int]:
    """Apply what is missing; the versions applied now and the schema version after."""
    applied = await migrate(conn)
    versions = await applied_versions(conn)
    return applied, max(versions, default=0)


async def apply_migrations(settings: Settings) -> tuple[list[int], int]:
    """Connect to QGJOB_DATABASE_URL (retrying while it starts), migrate, disconnect."""
    from app.main import connect  # the server's bounded connect retry

    assert settings.database_url is not None
    pool = await connect(
        settings.database_url.reveal(), settings=dataclasses.replace(settings, db_pool_size=1)
    )
    try:
        async with pool.acquire() as conn:
            return await migrate_and_report(conn)
    finally:
        await pool.close()
