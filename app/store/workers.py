"""Workers: registration, listing, and the liveness the service derives from heartbeats."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from app.database import Conn
from app.store.jobs import Wire, to_wire
from qgjob.types import Target

_REGISTER = """
WITH org AS (
    INSERT INTO orgs (org_id) SELECT $2 WHERE $2::text IS NOT NULL ON CONFLICT DO NOTHING
)
INSERT INTO workers (worker_id, org_id, name, target_types, labels, capacity, needs_build)
VALUES ($1, $2, $3, $4::target[], $5, $6, $7)
RETURNING worker_id
"""

# `$2` is the viewer's org (NULL: every org). A worker shared by every org shows an org only
# its own part: the groups it leased for that org, and of the builds it holds ready, those
# the org registered (another org's app versions are not its business).
WORKER_VIEW = """
SELECT w.worker_id, w.org_id, w.name, w.target_types, w.labels, w.capacity,
       CASE WHEN w.last_heartbeat < now() - make_interval(secs => $1) THEN 'offline'
            ELSE w.status::text END AS status,
       CASE WHEN $2::text IS NULL OR w.org_id = $2 THEN w.ready_builds
            ELSE ARRAY(SELECT r FROM unnest(w.ready_builds) AS r
                       WHERE EXISTS (SELECT 1 FROM builds b
                                     WHERE b.org_id = $2 AND b.app_version_id = r))
       END AS ready_builds,
       w.needs_build, w.last_heartbeat, w.created_at,
       coalesce((SELECT json_agg(json_build_object(
                    'group_id', g.group_id, 'app_version_id', g.app_version_id,
                    'target', g.target, 'org_id', g.org_id))
                 FROM groups g WHERE g.worker_id = w.worker_id AND g.status = 'LEASED'
                   AND ($2::text IS NULL OR g.org_id = $2)),
                '[]'::json) AS current_groups
FROM workers w
"""

_LIST = (
    WORKER_VIEW
    + """
WHERE ($2::text IS NULL OR w.org_id IS NULL OR w.org_id = $2)
  AND ($3::boolean OR w.last_heartbeat >= now() - make_interval(secs => $1))
ORDER BY w.name, w.worker_id
"""
)
_GET = WORKER_VIEW + " WHERE w.worker_id = $3 AND ($2::text IS NULL OR w.org_id = $2)"


async def register_worker(
    conn: Conn,
    *,
    org_id: str | None,
    name: str,
    target_types: Sequence[Target],
    labels: dict[str, Any],
    capacity: int,
    needs_build: bool = False,
) -> uuid.UUID:
    worker_id = uuid.uuid4()
    await conn.execute(
        _REGISTER,
        worker_id,
        org_id,
        name,
        [t.value for t in target_types],
        labels,
        capacity,
        needs_build,
    )
    return worker_id


async def list_workers(
    conn: Conn, *, org_scope: str | None, offline_after_s: float, include_offline: bool = True
) -> list[Wire]:
    rows = await conn.fetch(_LIST, offline_after_s, org_scope, include_offline)
    return [to_wire(r) for r in rows]


async def get_worker(
    conn: Conn, worker_id: uuid.UUID, *, org_scope: str | None, offline_after_s: float
) -> Wire | None:
    row = await conn.fetchrow(_GET, offline_after_s, org_scope, worker_id)
    return None if row is None else to_wire(row)


async def set_ready_builds(conn: Conn, worker_id: uuid.UUID, builds: Sequence[str]) -> None:
    """What the worker has installed or uploaded now (build affinity)."""
    await conn.execute(
        "UPDATE workers SET ready_builds = $2 WHERE worker_id = $1", worker_id, list(builds)
    )


async def set_status(conn: Conn, worker_id: uuid.UUID, status: str) -> None:
    """A status the worker reports itself (`draining`, `offline`); counts as a heartbeat."""
    await conn.execute(
        "UPDATE workers SET status = $2, last_heartbeat = now() WHERE worker_id = $1",
        worker_id,
        status,
    )
