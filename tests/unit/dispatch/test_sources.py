"""Where specs come from: the workspace, or the run's repository tarball from (fake) GitHub.

Tarballs are extracted safely, checkouts are cached per (repo, sha), and `npm ci` (a fake
npm that counts its runs) runs once per lockfile hash.
"""

from __future__ import annotations

import fcntl
import io
import os
import stat
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dispatch.errors import InfrastructureError, JobError
from dispatch.sources import Project, Sources, extract_tarball, sweep_stale
from qgjob.worker_api import JobSource
from tests.standins.github import (
    FakeGitHub,
    FakeRepo,
    IssuedToken,
    generate_app_key,
    running_fake_github,
)

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parents[3]
OPENAPI = REPO_ROOT.parent / "shared" / "github" / "openapi-subset.json"
LOCK_A = '{"name": "specs", "lockfileVersion": 3, "packages": {}}\n'
LOCK_B = '{"name": "specs", "lockfileVersion": 3, "packages": {"": {"version": "2"}}}\n'
FAKE_NPM = f"""#!{sys.executable}
import os, pathlib, sys
assert sys.argv[1] == "ci", sys.argv
assert "QGJOB_TOKEN" not in os.environ, "npm must not see the worker's token"
pathlib.Path(os.environ["NPM_RUNS"]).open("a").write(os.getcwd() + "\\n")
modules = pathlib.Path("node_modules")
modules.mkdir()
(modules / "installed-from").write_text(pathlib.Path("package-lock.json").read_text())
"""


# --- Safe extraction ----------------------------------------------------------------------


def tarball(path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info


def test_extracts_under_the_top_directory_stripped(tmp_path: Path) -> None:
    archive = tarball(
        tmp_path / "ok.tar.gz",
        (entry("o-r-abc/", tarfile.DIRTYPE), None),
        (entry("o-r-abc/tests/a.spec.ts"), b"test()"),
        (entry("o-r-abc/link.ts", tarfile.SYMTYPE, "tests/a.spec.ts"), None),
    )
    extract_tarball(archive, tmp_path / "out")
    assert (tmp_path / "out" / "tests" / "a.spec.ts").read_bytes() == b"test()"
    assert (tmp_path / "out" / "link.ts").read_bytes() == b"test()"


@pytest.mark.parametrize(
    "member",
    [
        (entry("o-r-abc/../../escaped.txt"), b"x"),
        (entry("/o-r-abc/../../../tmp/abs.txt"), b"x"),
        (entry("o-r-abc/evil", tarfile.SYMTYPE, "/etc/passwd"), None),
        (entry("o-r-abc/evil", tarfile.SYMTYPE, "../../../outside"), None),
        (entry("o-r-abc/hard", tarfile.LNKTYPE, "o-r-abc/../../../etc/passwd"), None),
        (entry("o-r-abc/dev", tarfile.CHRTYPE), None),
    ],
    ids=["dotdot", "absolute", "abs-symlink", "rel-symlink-out", "hardlink-out", "device"],
)
def test_unsafe_entries_are_refused(tmp_path: Path, member: tuple[tarfile.TarInfo, bytes]) -> None:
    archive = tarball(tmp_path / "bad.tar.gz", (entry("o-r-abc/fine.txt"), b"ok"), member)
    with pytest.raises(JobError, match="unsafe entry"):
        extract_tarball(archive, tmp_path / "deep" / "out")
    outside = {p.name for p in tmp_path.rglob("*")} - {"bad.tar.gz", "deep", "out", "fine.txt"}
    assert outside == set()


def test_a_broken_tarball_is_an_infrastructure_error(tmp_path: Path) -> None:
    (tmp_path / "cut.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(InfrastructureError, match="cannot be read"):
        extract_tarball(tmp_path / "cut.tar.gz", tmp_path / "out")


# --- Workspace ----------------------------------------------------------------------------


async def test_workspace_specs_stay_inside_it(tmp_path: Path) -> None:
    (tmp_path / "ws" / "tests").mkdir(parents=True)
    (tmp_path / "ws" / "tests" / "a.spec.ts").write_text("test()")
    (tmp_path / "secret.spec.ts").write_text("nope")
    (tmp_path / "ws" / "tests" / "sneaky.spec.ts").symlink_to(tmp_path / "secret.spec.ts")
    sources = Sources(cache_dir=tmp_path / "cache", workspace=tmp_path / "ws")
    project = await sources.project(None)
    await sources.close()
    assert project.spec("tests/a.spec.ts") == (tmp_path / "ws" / "tests" / "a.spec.ts").resolve()
    for bad in ("../secret.spec.ts", "tests/../../secret.spec.ts", "tests/sneaky.spec.ts"):
        with pytest.raises(JobError, match="escapes"):
            project.spec(bad)
    with pytest.raises(JobError, match="must be a path relative"):
        project.spec(str(tmp_path / "secret.spec.ts"))
    with pytest.raises(JobError, match="not in the project"):
        project.spec("tests/missing.spec.ts")


async def test_no_workspace_and_no_token_says_what_to_do(tmp_path: Path) -> None:
    sources = Sources(cache_dir=tmp_path)
    with pytest.raises(JobError, match="--workspace"):
        await sources.project(JobSource(repo="o/r", ref="main", head_sha="a" * 40))
    await sources.close()


# --- Checkouts from (fake) GitHub ---------------------------------------------------------


@dataclass
class Hub:
    state: FakeGitHub
    url: str
    repo: FakeRepo
    token: str

    def source(self, sha: str, *, token: str | None = None) -> JobSource:
        return JobSource(
            repo=self.repo.full_name, ref="main", head_sha=sha,
            token=token or self.token, api_url=self.url,
        )  # fmt: skip

    def tarball_requests(self) -> int:
        return sum(1 for r in self.state.requests if "/tarball/" in r.path)


@pytest.fixture
def hub() -> Iterator[Hub]:
    if not OPENAPI.exists():
        pytest.skip(f"{OPENAPI} is absent: the shared GitHub reference material sits in ../shared")
    state = FakeGitHub(app_id=1, public_key=generate_app_key()[1], openapi_path=OPENAPI)
    repo = state.add_repo("octo/specs")
    state.add_installation(5, account="octo", repositories=["octo/specs"])
    state.record_token(IssuedToken("ghs_readonly", 5, None, time.time() + 3600))
    with running_fake_github(state) as url:
        yield Hub(state, url, repo, "ghs_readonly")


@pytest.fixture
def npm(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "fake-npm"
    script.write_text(FAKE_NPM)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, tmp_path / "npm-runs.txt"


async def test_checkout_is_cached_per_sha(hub: Hub, tmp_path: Path) -> None:
    first = hub.repo.commit({"tests/a.spec.ts": "v1", "README.md": "hi"})
    second = hub.repo.commit({"tests/a.spec.ts": "v2"})
    sources = Sources(cache_dir=tmp_path / "cache")
    try:
        one = await sources.project(hub.source(first))
        again = await sources.project(hub.source(first))
        two = await sources.project(hub.source(second))
    finally:
        await sources.close()
    assert one.root == again.root != two.root
    assert one.spec("tests/a.spec.ts").read_text() == "v1"
    assert two.spec("tests/a.spec.ts").read_text() == "v2"
    assert hub.tarball_requests() == 2


async def test_a_refused_token_is_an_infrastructure_error(hub: Hub, tmp_path: Path) -> None:
    sha = hub.repo.commit({"tests/a.spec.ts": "v1"})
    sources = Sources(cache_dir=tmp_path / "cache")
    with pytest.raises(InfrastructureError, match="HTTP 401"):
        await sources.project(hub.source(sha, token="ghs_expired"))
    await sources.close()
    assert not (tmp_path / "cache" / "checkouts" / "octo" / "specs" / sha).exists()


async def test_npm_ci_runs_once_per_lockfile_hash(
    hub: Hub, tmp_path: Path, npm: tuple[Path, Path]
) -> None:
    script, runs = npm
    files = {"package.json": '{"name": "specs"}', "tests/a.spec.ts": "x"}
    one = hub.repo.commit({**files, "package-lock.json": LOCK_A})
    two = hub.repo.commit({**files, "package-lock.json": LOCK_A, "tests/b.spec.ts": "y"})
    three = hub.repo.commit({**files, "package-lock.json": LOCK_B})
    sources = Sources(
        cache_dir=tmp_path / "cache",
        npm=str(script),
        env={**os.environ, "NPM_RUNS": str(runs), "QGJOB_TOKEN": "qgj_secret"},
    )
    try:
        projects = [await sources.project(hub.source(sha)) for sha in (one, two, three, one)]
    finally:
        await sources.close()
    assert len(runs.read_text().splitlines()) == 2
    installed = [(p.root / "node_modules" / "installed-from").read_text() for p in projects]
    assert installed == [LOCK_A, LOCK_A, LOCK_B, LOCK_A]


async def test_a_failing_npm_ci_is_an_infrastructure_error(hub: Hub, tmp_path: Path) -> None:
    sha = hub.repo.commit({"package.json": "{}", "package-lock.json": LOCK_A})
    sources = Sources(cache_dir=tmp_path / "cache", npm="false")
    with pytest.raises(InfrastructureError, match="npm ci"):
        await sources.project(hub.source(sha))
    await sources.close()


def test_project_origin_is_named_in_errors(tmp_path: Path) -> None:
    project = Project(tmp_path, "octo/specs@abc")
    with pytest.raises(JobError, match="octo/specs@abc"):
        project.spec("tests/none.spec.ts")


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


async def test_unused_checkouts_and_installs_are_swept(
    hub: Hub, tmp_path: Path, npm: tuple[Path, Path]
) -> None:
    script, runs = npm
    files = {"package.json": '{"name": "specs"}', "tests/a.spec.ts": "x"}
    old_a = hub.repo.commit({**files, "package-lock.json": LOCK_A})
    new_a = hub.repo.commit({**files, "package-lock.json": LOCK_A, "tests/b.spec.ts": "y"})
    old_b = hub.repo.commit({**files, "package-lock.json": LOCK_B})
    held = hub.repo.commit({**files, "package-lock.json": LOCK_A, "tests/c.spec.ts": "z"})
    cache = tmp_path / "cache"
    sources = Sources(cache_dir=cache, npm=str(script), env={**os.environ, "NPM_RUNS": str(runs)})
    try:
        roots = {sha: (await sources.project(hub.source(sha))).root for sha in (old_a, new_a)}
        roots |= {sha: (await sources.project(hub.source(sha))).root for sha in (old_b, held)}
        for sha in (old_a, old_b, held):
            age(roots[sha], 2 * 3600)
        deps = {p.name: _lock_of(p) for p in (cache / "deps").iterdir()}
        assert sorted(deps.values()) == ["A", "B"]
        for name in deps:
            age(cache / "deps" / name, 2 * 3600)
        # Another process holds `held`'s lock (it is checking it out or touching it).
        lock = cache / "locks" / f"octo__specs@{held}.lock"
        fd = os.open(lock, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        age(lock, 2 * 3600)
        # Lock files of checkouts that never completed: an old one and a recent one.
        orphans = {s: cache / "locks" / f"octo__specs@{s:07x}.lock" for s in (7200, 60)}
        for seconds, orphan in orphans.items():
            orphan.touch()
            age(orphan, seconds)
        try:
            deleted = sweep_stale(cache, keep_for_s=3600)
        finally:
            os.close(fd)
        swept = {f"octo__specs@{old_a}.lock", f"octo__specs@{old_b}.lock", orphans[7200].name}
        swept |= {f"deps-{name}.lock" for name, lock in deps.items() if lock == "B"}
        left = {p.name for p in (cache / "locks").iterdir()}
        assert not swept & left
        assert {lock.name, f"octo__specs@{new_a}.lock", orphans[60].name} <= left
        assert sorted(deleted) == sorted(
            [f"checkouts/octo/specs/{old_a}", f"checkouts/octo/specs/{old_b}"]
            + [f"deps/{name}" for name, lock in deps.items() if lock == "B"]
        )
        assert roots[new_a].is_dir() and roots[held].is_dir()
        assert not roots[old_a].exists() and not roots[old_b].exists()
        assert (roots[new_a] / "node_modules" / "installed-from").read_text() == LOCK_A
        assert not list((cache / "tmp").iterdir())  # nothing left half-deleted
        # Asked for again, a swept checkout is fetched and installed again.
        again = await sources.project(hub.source(old_b))
        assert (again.root / "node_modules" / "installed-from").read_text() == LOCK_B
    finally:
        await sources.close()


def _lock_of(deps: Path) -> str:
    """Which lockfile an install came from: "A" or "B"."""
    return "A" if (deps / "package-lock.json").read_text() == LOCK_A else "B"


async def test_a_worker_sweeps_when_it_checks_out(hub: Hub, tmp_path: Path) -> None:
    first = hub.repo.commit({"tests/a.spec.ts": "v1"})
    second = hub.repo.commit({"tests/a.spec.ts": "v2"})
    cache = tmp_path / "cache"
    one = Sources(cache_dir=cache, keep_for_s=60)
    try:
        root = (await one.project(hub.source(first))).root
    finally:
        await one.close()
    age(root, 120)
    other = Sources(cache_dir=cache, keep_for_s=60)  # another worker process, later
    try:
        await other.project(hub.source(second))
    finally:
        await other.close()
    assert not root.exists()
