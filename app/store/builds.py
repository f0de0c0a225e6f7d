"""Builds: the artifact each app version of an org tests, and the jobs that wait for one.

One row per (org, app_version_id). Registering the same content again changes nothing;
different content replaces the row (and the caller may then drop the old blob, when no
other build still points at it). The blob itself lives in `app.storage`; the row keeps
its key (the sha256) or an external url.

A job whose build is missing waits while only workers that need a build could run it;
past the configured wait the sweep here fails it with a message that says how to upload.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from app.database import Conn, TxConn
from app.store.jobs import Wire, to_wire
from qgjob.types import BuildPlatform

BUILD_COLUMNS = """org_id, app_version_id, platform, filename, size, sha256, storage_key,
    external_url, created_at, updated_at"""


@dataclass(frozen=True)
class NewBuild:
    org_id: str
    app_version_id: str
    platform: BuildPlatform
    filename: str
    size: int
    sha256: str
    storage_key: str | None = None
    external_url: str | None = None


@dataclass(frozen=True)
class Saved:
    build: Wire
    created: bool  # no build was registered for this app version before
    changed: bool  # the row was written (new, or different content)
    dropped_key: str | None  # the blob the replaced row pointed at, if any


def download_path(org_id: str, app_version_id: str, sha256: str) -> str:
    """Where a worker fetches a stored build: pinned to its sha256, so a build replaced
    meanwhile answers 409 instead of handing out other bytes."""
    query = urlencode({"org_id": org_id, "sha256": sha256})
    return f"/v1/builds/{quote(app_version_id, safe='')}/download?{query}"


def to_build_wire(row: Wire) -> Wire:
    """A build as the API shows it: where to fetch it, never the storage's own key."""
    wire = to_wire(row)
    key = wire.pop("storage_key", None)
    wire["stored"] = key is not None
    wire["download_path"] = (
        download_path(wire["org_id"], wire["app_version_id"], wire["sha256"]) if key else None
    )
    return wire


_GET = f"SELECT {BUILD_COLUMNS} FROM builds WHERE org_id = $1 AND app_version_id = $2"


async def get_build(conn: Conn, org_id: str, app_version_id: str) -> Wire | None:
    row = await conn.fetchrow(_GET, org_id, app_version_id)
    return None if row is None else to_build_wire(dict(row))


# The build a claim hands over, as one JSON text: a claim reads it in the same statement
# that takes the jobs (`app.store.leases`), `$1`/`$2` being the org and app version.
CLAIMED_BUILD_JSON = """(
    SELECT json_build_object(
        'app_version_id', b.app_version_id, 'sha256', b.sha256, 'size', b.size,
        'filename', b.filename, 'platform', b.platform, 'stored', b.storage_key IS NOT NULL,
        'external_url', b.external_url)::text
    FROM builds b WHERE b.org_id = $1 AND b.app_version_id = $2
)"""


def claimed_build(org_id: str, found: str | None) -> Wire | None:
    """The build as a claim hands it to a worker (`ClaimedBuild` on the wire), from what
    CLAIMED_BUILD_JSON found, or None."""
    if found is None:
        return None
    build: Wire = json.loads(found)
    stored = build.pop("stored")
    build["download_path"] = (
        download_path(org_id, build["app_version_id"], build["sha256"]) if stored else None
    )
    return build


_LOCK_EXISTING = _GET + " FOR UPDATE"
# Saves of one app version take turns, a first one too (FOR UPDATE locks no row yet): two
# concurrent first uploads must not both answer `created` and leave one blob unreferenced.
_LOCK_APP_VERSION = "SELECT pg_advisory_xact_lock(hashtextextended('build/' || $1 || '/' || $2, 0))"
_ENSURE_ORG = "INSERT INTO orgs (org_id) VALUES ($1) ON CONFLICT DO NOTHING"
_UPSERT = f"""
INSERT INTO builds (org_id, app_version_id, platform, filename, size, sha256, storage_key,
                    external_url)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (org_id, app_version_id) DO UPDATE SET
    platform = EXCLUDED.platform, filename = EXCLUDED.filename, size = EXCLUDED.size,
    sha256 = EXCLUDED.sha256, storage_key = EXCLUDED.storage_key,
    external_url = EXCLUDED.external_url, updated_at = now()
RETURNING {BUILD_COLUMNS}
"""


async def save_build(conn: TxConn, new: NewBuild) -> Saved:
    """Register `new` for its app version: idempotent for the same build (content, where it
    is kept, its name and platform), a replacement otherwise. Call inside a transaction."""
    await conn.execute(_ENSURE_ORG, new.org_id)
    await conn.execute(_LOCK_APP_VERSION, new.org_id, new.app_version_id)
    before = await conn.fetchrow(_LOCK_EXISTING, new.org_id, new.app_version_id)
    if (
        before is not None
        and before["sha256"] == new.sha256
        and (before["storage_key"] is None) == (new.storage_key is None)
        and before["external_url"] == new.external_url
        and before["filename"] == new.filename
        and before["platform"] == new.platform.value
    ):
        return Saved(to_build_wire(dict(before)), created=False, changed=False, dropped_key=None)
    row = await conn.fetchrow(
        _UPSERT,
        new.org_id,
        new.app_version_id,
        new.platform.value,
        new.filename,
        new.size,
        new.sha256,
        new.storage_key,
        new.external_url,
    )
    assert row is not None
    old_key = None if before is None else before["storage_key"]
    return Saved(
        to_build_wire(dict(row)),
        created=before is None,
        changed=True,
        dropped_key=old_key if old_key != new.storage_key else None,
    )


_LOCK_BLOB = "SELECT pg_advisory_xact_lock(hashtextextended('build-blob/' || $1, 0))"


async def lock_blob(conn: TxConn, key: str) -> None:
    """Serialize writers and the cleaner of one blob until this transaction ends, so that a
    blob is never deleted between an upload putting it in place and its row committing."""
    await conn.execute(_LOCK_BLOB, key)


async def blob_in_use(conn: Conn, key: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM builds WHERE storage_key = $1 LIMIT 1", key)
    return found is not None


# --- Jobs waiting for their build --------------------------------------------------------

# A job waits for its build when no build is registered for its app version and no live
# worker that runs without one serves its target (such a worker would simply run it).
_NO_BUILD = """
NOT EXISTS (
    SELECT 1 FROM builds b WHERE b.org_id = j.org_id AND b.app_version_id = j.app_version_id)
AND NOT EXISTS (
    SELECT 1 FROM workers w
    WHERE NOT w.needs_build AND w.status NOT IN ('draining', 'offline')
      AND w.last_heartbeat >= now() - make_interval(secs => $2)
      AND j.target = ANY (w.target_types) AND (w.org_id IS NULL OR w.org_id = j.org_id))
"""

_WAITING = f"""
SELECT j.job_id FROM jobs j
WHERE j.job_id = ANY ($1::uuid[]) AND j.status = 'PENDING' AND {_NO_BUILD}
"""


async def waiting_for_build(
    conn: Conn, job_ids: Sequence[uuid.UUID], *, live_within_s: float
) -> set[uuid.UUID]:
    """Which of `job_ids` are PENDING because their build has not been uploaded yet.

    `live_within_s`: a worker that has not been heard from for this long does not count."""
    rows = await conn.fetch(_WAITING, list(job_ids), live_within_s)
    return {r["job_id"] for r in rows}


NEVER_UPLOADED = (
    "no build was uploaded for app version {app_version_id} within {wait_s}s; upload it with "
    "`qgjob build upload --org-id {org_id} --app-version-id {app_version_id} PATH` "
    "(or POST /v1/builds), then submit the tests again"
)

_FAIL_STUCK = f"""
WITH stuck AS (
    SELECT j.job_id FROM jobs j
    WHERE j.status = 'PENDING' AND j.created_at < now() - make_interval(secs => $1)
      AND {_NO_BUILD}
    ORDER BY j.created_at
    LIMIT $4
    FOR UPDATE OF j SKIP LOCKED
)
UPDATE jobs SET status = 'FAILED', outcome = 'error', finished_at = now(), updated_at = now(),
    error = replace(replace($3, '{{app_version_id}}', jobs.app_version_id),
                    '{{org_id}}', jobs.org_id)
FROM stuck WHERE jobs.job_id = stuck.job_id
RETURNING jobs.job_id, jobs.org_id, jobs.app_version_id
"""


@dataclass(frozen=True)
class GaveUp:
    job_id: uuid.UUID
    org_id: str
    app_version_id: str


async def fail_jobs_without_build(
    conn: TxConn, *, wait_s: float, live_within_s: float, batch: int = 1000
) -> list[GaveUp]:
    """FAIL (outcome `error`) the jobs that waited past `wait_s` for a build that never came.
    `SKIP LOCKED`: safe when every replica sweeps."""
    message = NEVER_UPLOADED.replace("{wait_s}", f"{wait_s:g}")
    rows = await conn.fetch(_FAIL_STUCK, wait_s, live_within_s, message, batch)
    return [GaveUp(r["job_id"], r["org_id"], r["app_version_id"]) for r in rows]
