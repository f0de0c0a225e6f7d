"""Read-only installation tokens for workers that download a repository's tarball.

`source_token(app, org_id=…, repo=…)` finds the active installation of `org_id` that covers
`repo` and mints (or reuses, until 5 minutes before expiry) a token narrowed to that one
repository with `contents: read` only. `GitHubSourceAccess` is the service's `SourceAccess`
when the App is configured, so a claimed job's `source` carries that token.
"""

from __future__ import annotations

from app.github.service import GitHubApp
from app.sources import SourceGrant
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


class GitHubSourceAccess:
    """The service's `SourceAccess` when the App is configured: claimed jobs of a run from a
    repository the App is installed on carry a read-only token for it."""

    def __init__(self, app: GitHubApp) -> None:
        self.app = app

    async def grant(self, *, org_id: str, repo: str) -> SourceGrant | None:
        token = await source_token(self.app, org_id=org_id, repo=repo)
        if token is None:
            return None
        return SourceGrant(token=token.token.reveal(), api_url=self.app.settings.github_api_url)
