"""Spec discovery from GitHub's git trees API (pure; the fetching is a callable you pass in).

One recursive listing of the commit's tree normally answers everything. When GitHub says
`truncated` (over 100,000 entries or 7 MB), `discover_specs` walks the tree instead: it
lists the root one level deep, descends only into directories where some spec glob could
still match, and asks for each such subtree recursively again (falling back to one level
when that subtree is truncated too). A request budget bounds the walk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from github_app.errors import DiscoveryError, UnexpectedResponse
from github_app.fields import objects, optional, required
from github_app.globs import GlobSet


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a tree listing; `path` is relative to the listed tree."""

    path: str
    type: str  # "blob" | "tree" | "commit" (a submodule)
    sha: str
    mode: str = ""
    size: int | None = None


@dataclass(frozen=True)
class Tree:
    sha: str
    entries: tuple[TreeEntry, ...]
    truncated: bool


def tree_from_json(data: Mapping[str, Any]) -> Tree:
    """Decode a `GET /repos/{o}/{r}/git/trees/{sha}` response body."""
    err = UnexpectedResponse
    entries = tuple(
        TreeEntry(
            path=required(item, "path", str, error=err),
            type=required(item, "type", str, error=err),
            sha=required(item, "sha", str, error=err),
            mode=optional(item, "mode", str, error=err) or "",
            size=optional(item, "size", int, error=err),
        )
        for item in objects(data, "tree", error=err)
    )
    truncated = optional(data, "truncated", bool, error=err) or False
    return Tree(sha=required(data, "sha", str, error=err), entries=entries, truncated=truncated)


class FetchTree(Protocol):
    """Lists the tree `sha` (a commit or tree sha), recursively or one level deep."""

    def __call__(self, sha: str, *, recursive: bool) -> Awaitable[Tree]: ...


def match_specs(entries: Iterable[TreeEntry], globs: Sequence[str]) -> tuple[str, ...]:
    """Paths of blobs matching any glob, sorted and deduplicated."""
    return GlobSet(tuple(globs)).select(e.path for e in entries if e.type == "blob")


async def discover_specs(
    *, head_sha: str, globs: Sequence[str], fetch_tree: FetchTree, max_requests: int = 500
) -> tuple[str, ...]:
    """Spec paths at commit `head_sha`; walks subtrees when the recursive listing is truncated."""
    root = await fetch_tree(head_sha, recursive=True)
    if not root.truncated:
        return match_specs(root.entries, globs)
    return await walk_tree(
        root_sha=head_sha, globs=globs, fetch_tree=fetch_tree, max_requests=max_requests - 1
    )


async def walk_tree(
    *, root_sha: str, globs: Sequence[str], fetch_tree: FetchTree, max_requests: int = 500
) -> tuple[str, ...]:
    """Breadth-first walk from `root_sha`, pruning directories no glob can reach into."""
    glob_set = GlobSet(tuple(globs))
    budget = _Budget(max_requests)
    found: list[str] = []
    budget.take()
    # (path prefix, listing, whether the listing is complete, i.e. recursive and not truncated)
    pending = deque([("", await fetch_tree(root_sha, recursive=False), False)])
    while pending:
        prefix, tree, complete = pending.popleft()
        found.extend(prefix + e.path for e in tree.entries if e.type == "blob")
        if complete:
            continue
        for entry in tree.entries:
            path = prefix + entry.path
            if entry.type != "tree" or not glob_set.may_match_below(path):
                continue
            budget.take()
            subtree = await fetch_tree(entry.sha, recursive=True)
            complete = not subtree.truncated
            if not complete:
                budget.take()
                subtree = await fetch_tree(entry.sha, recursive=False)
            pending.append((path + "/", subtree, complete))
    return glob_set.select(found)


class _Budget:
    """Counts tree requests so that a pathological repository cannot run up the rate limit."""

    def __init__(self, max_requests: int) -> None:
        self.left = max_requests

    def take(self) -> None:
        if self.left <= 0:
            raise DiscoveryError(
                "listing the repository's specs needs more tree requests than allowed; "
                "narrow the specs globs in qgjob.toml"
            )
        self.left -= 1
