"""Read access to a run's repository for the worker that runs its specs.

A claimed job whose run names a repository and commit carries a `source`; when the service
has a `SourceAccess` it also carries a short-lived read-only token and the API base url to
download the repository's tarball with. The default grants nothing (the worker then reads
specs from its `--workspace`); the GitHub App supplies installation tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceGrant:
    """A token that may read `repo` (e.g. `octo/app`) through the API at `api_url`."""

    token: str = field(repr=False)
    api_url: str


class SourceAccess(Protocol):
    async def grant(self, *, org_id: str, repo: str) -> SourceGrant | None:
        """A read-only token for `repo`, or None when this service cannot give one."""
        ...


class NoSourceAccess:
    """No provider configured: sources go out without a token."""

    async def grant(self, *, org_id: str, repo: str) -> SourceGrant | None:
        return None


async def grant_sources(access: SourceAccess, group: dict[str, Any]) -> None:
    """Add a token and api url to each source of a claimed group (in its wire form), once
    per repository. A provider that fails leaves the source without one: the worker then
    fails to download and the job is retried, which is better than no group at all."""
    granted: dict[str, SourceGrant | None] = {}
    sources = [job["source"] for job in group["jobs"] if job.get("source")]
    if group.get("source"):
        sources.append(group["source"])
    for source in sources:
        repo = source["repo"]
        if repo not in granted:
            try:
                granted[repo] = await access.grant(org_id=group["org_id"], repo=repo)
            except Exception:
                logger.exception("no source token org_id=%s repo=%s", group["org_id"], repo)
                granted[repo] = None
        grant = granted[repo]
        if grant is not None:
            source["token"] = grant.token
            source["api_url"] = grant.api_url
