"""Read-only installation tokens for workers that download a repository's tarball.

`source_token(app, org_id=…, repo=…)` finds the active installation of `org_id` that covers
`repo` and mints (or reuses, until 5 minutes before expiry) a token narrowed to that one
repository with `contents: read` only. The claim's `source` can carry it once the service
has a provider hook for it (see the report of issue 6).
"""

from __future__ import annotations

from app.github.service import GitHubApp
from github_app.auth import InstallationToken
from github_app.client import split_repo

READ_ONLY = {"contents": "read"}

_INSTALLATION_FOR = """
SELECT i.installation_id FROM github_installations i
WHERE i.org_id = $1 AND NOT i.suspended AND NOT i.deleted
  AND (i.repository_selection = 'all'
       OR lower($2) = ANY (SELECT lower(r) FROM unnest(i.repositories) AS r)
       OR EXISTS (SELECT 1 FROM github_runs g
                  WHERE g.installation_id = i.installation_id AND lower(g.repo) = lower($2)))
ORDER BY i.updated_at DESC
LIMIT 1
"""


async def source_token(app: GitHubApp, *, org_id: str, repo: str) -> InstallationToken | None:
    """A token that can only read `repo` (owner/name); None when no installation covers it."""
    installation_id = await app.pool.fetchval(_INSTALLATION_FOR, org_id, repo)
    if installation_id is None:
        return None
    _, name = split_repo(repo)
    return await app.client.installation_token(
        installation_id, repositories=[name], permissions=READ_ONLY
    )
