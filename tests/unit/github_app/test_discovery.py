"""Glob matching with `**` semantics, and spec discovery over complete and truncated trees."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from github_app.discovery import Tree, TreeEntry, discover_specs, match_specs, tree_from_json
from github_app.errors import DiscoveryError, UnexpectedResponse
from github_app.globs import GlobSet, compile_glob, expand_braces

DEFAULT = ("tests/**/*.spec.ts", "tests/**/*.spec.js")


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("tests/**/*.spec.ts", "tests/a.spec.ts", True),
        ("tests/**/*.spec.ts", "tests/x/y/a.spec.ts", True),
        ("tests/**/*.spec.ts", "tests/a.spec.js", False),
        ("tests/**/*.spec.ts", "src/tests/a.spec.ts", False),
        ("tests/**/*.spec.ts", "tests/a.spec.ts.bak", False),
        ("tests/**/*.spec.ts", "testsx/a.spec.ts", False),
        ("tests/*.spec.ts", "tests/x/a.spec.ts", False),
        ("tests/*.spec.ts", "tests/a.spec.ts", True),
        ("**/*.spec.ts", "a.spec.ts", True),
        ("**/*.spec.ts", "deep/er/a.spec.ts", True),
        ("tests/**", "tests/anything/at/all.txt", True),
        ("tests/**", "tests", False),
        ("e2e/**/flows/*.ts", "e2e/flows/a.ts", True),
        ("e2e/**/flows/*.ts", "e2e/x/y/flows/a.ts", True),
        ("e2e/**/flows/*.ts", "e2e/x/flowsy/a.ts", False),
        ("tests/*.spec.{ts,js}", "tests/a.spec.js", True),
        ("tests/*.spec.{ts,js}", "tests/a.spec.jsx", False),
        ("tests/{a,b/{c,d}}/*.ts", "tests/b/d/x.ts", True),
        ("tests/?.ts", "tests/a.ts", True),
        ("tests/?.ts", "tests/ab.ts", False),
        ("tests/[ab].ts", "tests/b.ts", True),
        ("tests/[!ab].ts", "tests/b.ts", False),
        ("tests/[!ab].ts", "tests/c.ts", True),
        ("tests/a**b.ts", "tests/axxb.ts", True),
        ("tests/a**b.ts", "tests/x/ab.ts", False),
        ("tests/a+b(1).ts", "tests/a+b(1).ts", True),
        ("Tests/*.ts", "tests/a.ts", False),
        ("tests/*.ts", "tests/.hidden.ts", True),
    ],
)
def test_glob_semantics(pattern: str, path: str, matches: bool) -> None:
    assert bool(compile_glob(pattern).match(path)) is matches


def test_brace_expansion() -> None:
    assert expand_braces("a.{ts,js}") == ("a.ts", "a.js")
    assert expand_braces("{a,b{c,d}}") == ("a", "bc", "bd")
    assert expand_braces("{single}") == ("{single}",)
    assert expand_braces("unbalanced{a,b") == ("unbalanced{a,b",)


@pytest.mark.parametrize(
    ("directory", "expected"),
    [("tests", True), ("tests/x/y", True), ("src", False), ("tests.old", False)],
)
def test_pruning_knows_where_specs_can_be(directory: str, expected: bool) -> None:
    assert GlobSet(DEFAULT).may_match_below(directory) is expected


def test_pruning_of_fixed_depth_globs() -> None:
    globs = GlobSet(("e2e/*/flows/*.ts",))
    assert globs.may_match_below("e2e/ios")
    assert globs.may_match_below("e2e/ios/flows")
    assert not globs.may_match_below("e2e/ios/flows/deeper")
    assert not globs.may_match_below("e2e/ios/other")
    assert GlobSet(("**/*.ts",)).may_match_below("any/where")


def test_match_specs_sorts_deduplicates_and_skips_non_blobs() -> None:
    entries = [
        TreeEntry("tests/z.spec.ts", "blob", "1"),
        TreeEntry("tests/a.spec.js", "blob", "2"),
        TreeEntry("tests/a.spec.js", "blob", "2"),
        TreeEntry("tests/sub.spec.ts", "tree", "3"),
        TreeEntry("tests/module.spec.ts", "commit", "4"),
        TreeEntry("src/a.spec.ts", "blob", "5"),
    ]
    assert match_specs(entries, DEFAULT) == ("tests/a.spec.js", "tests/z.spec.ts")


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class FakeTrees:
    """An in-memory repository answering like the trees API, counting requests."""

    def __init__(self, files: list[str], *, truncate_over: int | None) -> None:
        self.truncate_over = truncate_over
        self.children: dict[str, list[tuple[str, str, str]]] = {}  # sha → (name, type, sha)
        self.calls: list[tuple[str, bool]] = []
        self.root = self._build("", files)

    def _build(self, prefix: str, files: list[str]) -> str:
        subdirs: dict[str, list[str]] = {}
        entries = []
        for path in files:
            head, sep, rest = path.partition("/")
            if sep:
                subdirs.setdefault(head, []).append(rest)
            else:
                entries.append((head, "blob", _sha(f"{prefix}{head}")))
        for name, sub in subdirs.items():
            entries.append((name, "tree", self._build(f"{prefix}{name}/", sub)))
        sha = _sha(f"tree:{prefix}:{sorted(entries)}")
        self.children[sha] = sorted(entries)
        return sha

    def _list(self, sha: str, recursive: bool, prefix: str = "") -> list[TreeEntry]:
        out = []
        for name, kind, child in self.children[sha]:
            out.append(TreeEntry(prefix + name, kind, child))
            if recursive and kind == "tree":
                out += self._list(child, True, f"{prefix}{name}/")
        return out

    async def fetch(self, sha: str, *, recursive: bool) -> Tree:
        self.calls.append((sha, recursive))
        entries = self._list(self.root if sha == "HEAD" else sha, recursive)
        truncated = (
            recursive and self.truncate_over is not None and len(entries) > self.truncate_over
        )
        return Tree(
            sha=sha,
            entries=tuple(entries[: self.truncate_over] if truncated else entries),
            truncated=truncated,
        )


FILES = [
    "README.md",
    "tests/login.spec.ts",
    "tests/flows/checkout.spec.ts",
    "tests/flows/deep/search.spec.js",
    "tests/helpers/page.ts",
    *[f"src/module{i}/file{j}.ts" for i in range(20) for j in range(10)],
    *[f"assets/img{i}.png" for i in range(100)],
]
EXPECTED = (
    "tests/flows/checkout.spec.ts",
    "tests/flows/deep/search.spec.js",
    "tests/login.spec.ts",
)


async def test_complete_listing_needs_one_request() -> None:
    trees = FakeTrees(FILES, truncate_over=None)
    assert await discover_specs(head_sha="HEAD", globs=DEFAULT, fetch_tree=trees.fetch) == EXPECTED
    assert trees.calls == [("HEAD", True)]


async def test_truncated_listing_walks_only_promising_subtrees() -> None:
    trees = FakeTrees(FILES, truncate_over=50)
    assert await discover_specs(head_sha="HEAD", globs=DEFAULT, fetch_tree=trees.fetch) == EXPECTED
    # root (recursive, truncated) → root one level → tests/ recursively; src/ and assets/ pruned.
    assert trees.calls[:2] == [("HEAD", True), ("HEAD", False)]
    assert len(trees.calls) == 3


async def test_truncated_subtrees_are_walked_level_by_level() -> None:
    files = [f"tests/group{i}/case{j}.spec.ts" for i in range(6) for j in range(6)]
    trees = FakeTrees(files, truncate_over=5)
    found = await discover_specs(head_sha="HEAD", globs=DEFAULT, fetch_tree=trees.fetch)
    assert found == tuple(sorted(files))
    # Each group of 6 is itself over the limit: recursive then one-level request per group.
    assert sum(1 for _, recursive in trees.calls if not recursive) >= 7


async def test_walk_has_a_request_budget() -> None:
    files = [f"tests/d{i}/x.spec.ts" for i in range(30)]
    trees = FakeTrees(files, truncate_over=3)
    with pytest.raises(DiscoveryError, match="narrow the specs globs"):
        await discover_specs(
            head_sha="HEAD", globs=DEFAULT, fetch_tree=trees.fetch, max_requests=10
        )


def test_tree_from_json() -> None:
    data: dict[str, Any] = {
        "sha": "abc",
        "url": "u",
        "truncated": True,
        "tree": [{"path": "a.ts", "mode": "100644", "type": "blob", "sha": "1", "size": 3}],
    }
    tree = tree_from_json(data)
    assert tree.truncated
    assert tree.entries == (TreeEntry("a.ts", "blob", "1", "100644", 3),)
    with pytest.raises(UnexpectedResponse, match=r"tree\[0\] must be an object"):
        tree_from_json({"sha": "x", "tree": ["a.ts"]})
