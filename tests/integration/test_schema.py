"""The database schema agrees with the Python vocabulary, and migrations are safe to rerun."""

from __future__ import annotations

from enum import StrEnum

import asyncpg
import pytest

from app.migrations import load_migrations, migrate
from qgjob.types import (
    BuildPlatform,
    GroupStatus,
    JobStatus,
    Outcome,
    Priority,
    Role,
    RunSource,
    Target,
    WorkerStatus,
)

ENUMS: list[tuple[str, type[StrEnum]]] = [
    ("target", Target),
    ("priority", Priority),
    ("job_status", JobStatus),
    ("job_outcome", Outcome),
    ("run_source", RunSource),
    ("token_role", Role),
    ("group_status", GroupStatus),
    ("worker_status", WorkerStatus),
    ("build_platform", BuildPlatform),
]


@pytest.mark.parametrize(("pg_type", "py_enum"), ENUMS)
async def test_postgres_enum_matches_python(
    pool: asyncpg.Pool, pg_type: str, py_enum: type[StrEnum]
) -> None:
    labels = await pool.fetchval(f"SELECT enum_range(NULL::{pg_type})::text[]")
    assert labels == [member.value for member in py_enum]


async def test_migrate_twice_applies_nothing_new(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await migrate(conn) == []
        versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in versions] == [m.version for m in load_migrations()]


async def test_priority_enum_orders_by_urgency(pool: asyncpg.Pool) -> None:
    ordered = await pool.fetchval(
        "SELECT array_agg(p ORDER BY p DESC)::text[] FROM unnest(enum_range(NULL::priority)) p"
    )
    assert ordered == ["high", "normal", "low"]
