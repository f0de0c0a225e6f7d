"""Where a job's spec files come from: the worker's workspace, or the run's repository.

- A run with a source that the service granted a token for (`JobSource.token`, from the
  GitHub App) is checked out from `GET {api_url}/repos/{owner}/{repo}/tarball/{sha}`,
  extracted safely (no absolute paths, no `..`, no links leading outside, no devices), and
  kept per (repo, sha); its dependencies are installed with `npm ci` (program from
  `QGJOB_NPM`) once per lockfile hash and shared between checkouts through a symlinked
  `node_modules`.
- Otherwise specs are read from the worker's `--workspace DIR`, a checkout on this host.

Either way a spec path must stay inside its project: one that escapes is a `JobError`.
Several worker processes may share the cache directory (file locks, temp dir + rename).

Checkouts and installs that no job used for `keep_for_s` (default a day, `QGJOB_SOURCE_KEEP_S`)
are deleted by a sweep that each worker process runs at most once an hour, after a checkout:
every use touches the checkout and its install, a checkout is deleted only under its own
lock (so never while it is being made or touched), and an install only when no checkout
left links to it. Lock files go with what they guard, and the sweep also deletes the ones
older than `keep_for_s` that nobody holds (`dispatch.filelocks` says why that is safe).
A job that ran longer than `keep_for_s` could see its checkout vanish; keep it well above
the longest job timeout.

```
<cache>/checkouts/<owner>/<repo>/<sha>/    extracted repositories
<cache>/deps/<lockfile sha256>/            package.json, lockfile, node_modules after `npm ci`
<cache>/tmp/  <cache>/locks/
```
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import secrets
import shlex
import shutil
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from dispatch.errors import InfrastructureError, JobError
from dispatch.filelocks import delete_held, exclusive, try_hold
from dispatch.processes import run_shell
from qgjob.identifiers import COMMIT_SHA_RE, REPO_RE
from qgjob.worker_api import JobSource

logger = logging.getLogger(__name__)

LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json")
NPM_TIMEOUT_S = 900.0
KEEP_FOR_S = 24 * 3600.0
SWEEP_EVERY_S = 3600.0
WITHHELD_ENV = ("QGJOB_TOKEN", "QGJOB_DATABASE_URL")


@dataclass(frozen=True)
class Project:
    """A project directory on this host and where it came from (for logs)."""

    root: Path
    origin: str

    def spec(self, test_path: str) -> Path:
        """The absolute path of `test_path` inside the project; `JobError` if it escapes."""
        if not test_path or "\x00" in test_path or os.path.isabs(test_path):
            raise JobError(f"test_path {test_path!r} must be a path relative to the project")
        root = self.root.resolve()
        candidate = (root / test_path).resolve()
        if not candidate.is_relative_to(root):
            raise JobError(f"test_path {test_path!r} escapes the project at {self.origin}")
        if not candidate.is_file():
            raise JobError(f"spec {test_path} is not in the project at {self.origin}")
        return candidate


class Sources:
    """Finds a job's project; see the module docstring. One per worker process."""

    def __init__(
        self,
        *,
        cache_dir: Path,
        workspace: Path | None = None,
        npm: str = "npm",
        http: httpx.AsyncClient | None = None,
        env: Mapping[str, str] | None = None,
        keep_for_s: float = KEEP_FOR_S,
    ) -> None:
        self.cache_dir = cache_dir
        self.workspace = workspace
        self.npm = npm
        self.keep_for_s = keep_for_s
        self._swept_at: float | None = None
        # `npm ci` runs the lifecycle scripts of a repository's packages: it must not see the
        # worker's own token.
        base = os.environ if env is None else env
        self.env = {k: v for k, v in base.items() if k not in WITHHELD_ENV}
        self._http = http or httpx.AsyncClient(follow_redirects=True, timeout=120)
        self._own_http = http is None

    def __repr__(self) -> str:
        return f"Sources(cache_dir={str(self.cache_dir)!r}, workspace={self.workspace!r})"

    async def close(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def project(self, source: JobSource | None) -> Project:
        """The project a job with `source` runs in, checked out and installed if needed."""
        if source is not None and source.token:
            return await self.checkout(source)
        if self.workspace is not None:
            return Project(self.workspace, f"workspace {self.workspace}")
        if source is not None:
            raise JobError(
                f"the run's specs are in {source.repo} but the service granted no token to "
                "read it; install the GitHub App on the service, or start the worker with "
                "--workspace DIR pointing at a checkout"
            )
        raise JobError("this worker has no --workspace and the run names no repository")

    async def checkout(self, source: JobSource) -> Project:
        repo, sha = source.repo, source.head_sha or ""
        if not REPO_RE.fullmatch(repo) or ".." in repo.split("/"):
            raise JobError(f"the run's repository {repo!r} is not an owner/name")
        if not COMMIT_SHA_RE.fullmatch(sha):
            raise JobError(f"the run's source {repo} has no commit sha to check out")
        for sub in ("checkouts", "deps", "tmp", "locks"):  # made on first use
            (self.cache_dir / sub).mkdir(parents=True, exist_ok=True)
        target = self.cache_dir / "checkouts" / repo / sha
        lock = _checkout_lock(self.cache_dir, repo, sha)
        async with exclusive(lock):
            if not target.is_dir():
                await self._download_and_extract(source, repo, sha, target)
            await self._install(target)
            os.utime(target)  # used now: the sweep keeps it
        now = time.monotonic()
        if self._swept_at is None or now - self._swept_at >= SWEEP_EVERY_S:
            self._swept_at = now
            try:
                await asyncio.to_thread(sweep_stale, self.cache_dir, keep_for_s=self.keep_for_s)
            except OSError as exc:  # a full or read-only disk must not fail the job
                logger.warning("source cache sweep failed error=%s", exc)
        return Project(target, f"{repo}@{sha[:12]}")

    async def _download_and_extract(
        self, source: JobSource, repo: str, sha: str, target: Path
    ) -> None:
        api_url = (source.api_url or "https://api.github.com").rstrip("/")
        url = f"{api_url}/repos/{repo}/tarball/{sha}"
        headers = {
            "Authorization": f"Bearer {source.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        temp = self.cache_dir / "tmp" / f"{sha}.{os.getpid()}.{secrets.token_hex(4)}"
        archive = temp.with_suffix(".tar.gz")
        try:
            try:
                async with self._http.stream("GET", url, headers=headers) as response:
                    if response.status_code in (401, 403, 404):
                        raise InfrastructureError(
                            f"GitHub refused the tarball of {repo}@{sha[:12]} "
                            f"(HTTP {response.status_code}); the token may have expired",
                            code="source_refused",
                        )
                    response.raise_for_status()
                    with archive.open("wb") as out:
                        async for chunk in response.aiter_bytes():
                            out.write(chunk)
            except httpx.HTTPError as exc:
                raise InfrastructureError(
                    f"cannot download {repo}@{sha[:12]}: {exc}", code="source_download"
                ) from exc
            await asyncio.to_thread(extract_tarball, archive, temp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
            logger.info("source checked out repo=%s sha=%s", repo, sha)
        finally:
            archive.unlink(missing_ok=True)
            shutil.rmtree(temp, ignore_errors=True)

    async def _install(self, project: Path) -> None:
        """`npm ci` once per lockfile hash; the project links to the shared node_modules."""
        lockfile = next((project / n for n in LOCKFILES if (project / n).is_file()), None)
        if lockfile is None:
            return
        digest = hashlib.sha256(lockfile.read_bytes()).hexdigest()
        deps = self.cache_dir / "deps" / digest
        async with exclusive(_deps_lock(self.cache_dir, digest)):
            if not (deps / ".installed").is_file():
                await self._npm_ci(project, lockfile, deps)
            os.utime(deps)
        link = project / "node_modules"
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link)
            link.symlink_to(deps / "node_modules", target_is_directory=True)

    async def _npm_ci(self, project: Path, lockfile: Path, deps: Path) -> None:
        await asyncio.to_thread(_stage_manifest, project, lockfile, deps)
        logger.info("npm ci lockfile_sha256=%s", deps.name)
        ran = await run_shell(
            f"{shlex.quote(self.npm)} ci --no-audit --no-fund",
            cwd=deps,
            env=self.env,
            timeout_s=NPM_TIMEOUT_S,
        )
        if ran.stopped is not None or ran.exit_code != 0:
            how = f"stopped ({ran.stopped})" if ran.stopped else f"exit {ran.exit_code}"
            raise InfrastructureError(
                f"`npm ci` failed ({how}) for lockfile {deps.name[:12]}: {ran.output[-2000:]}",
                code="npm_ci",
            )
        (deps / ".installed").write_text("ok\n")


def sweep_stale(cache_dir: Path, *, keep_for_s: float) -> list[str]:
    """Delete the checkouts and installs no job used for `keep_for_s` (module docstring);
    what was deleted, as `checkouts/<owner>/<repo>/<sha>` and `deps/<digest>`."""
    deleted: list[str] = []
    stale_before = time.time() - keep_for_s
    checkouts = cache_dir / "checkouts"
    for target in sorted(checkouts.glob("*/*/*")):
        owner, repo, sha = target.relative_to(checkouts).parts
        lock = _checkout_lock(cache_dir, f"{owner}/{repo}", sha)
        if _stale(target, stale_before) and _delete_locked(target, lock, stale_before, cache_dir):
            deleted.append(f"checkouts/{owner}/{repo}/{sha}")
    linked = set()
    for link in checkouts.glob("*/*/*/node_modules"):
        if link.is_symlink():
            linked.add(Path(os.readlink(link)).parent.name)
    for deps in sorted((cache_dir / "deps").glob("*")):
        if deps.name in linked or not _stale(deps, stale_before):
            continue
        if _delete_locked(deps, _deps_lock(cache_dir, deps.name), stale_before, cache_dir):
            deleted.append(f"deps/{deps.name}")
    for gone in deleted:
        logger.info("source cache evicted %s unused_for_s>=%.0f", gone, keep_for_s)
    if (locks := _sweep_locks(cache_dir, stale_before)) > 0:
        logger.info("source cache deleted %d unused lock files", locks)
    return deleted


def _checkout_lock(cache_dir: Path, repo: str, sha: str) -> Path:
    """Held while a checkout of `repo` ("owner/name") at `sha` is made, used or deleted."""
    return cache_dir / "locks" / f"{repo.replace('/', '__')}@{sha}.lock"


def _deps_lock(cache_dir: Path, digest: str) -> Path:
    """Held while the install for a lockfile hash is made, used or deleted."""
    return cache_dir / "locks" / f"deps-{digest}.lock"


def _stale(path: Path, stale_before: float) -> bool:
    try:
        return path.stat().st_mtime < stale_before
    except FileNotFoundError:
        return False


def _delete_locked(path: Path, lock: Path, stale_before: float, cache_dir: Path) -> bool:
    """Delete `path` and its lock file if the lock is free and `path` is still stale once
    held: moved aside under the lock (a user sees it whole or not at all), then removed."""
    fd = try_hold(lock, fcntl.LOCK_EX)
    if fd is None:
        return False
    try:
        if not _stale(path, stale_before):
            return False
        aside = cache_dir / "tmp" / f"evicted.{os.getpid()}.{secrets.token_hex(4)}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, aside)
        delete_held(lock, fd)
    finally:
        os.close(fd)
    shutil.rmtree(aside, ignore_errors=True)
    return True


def _sweep_locks(cache_dir: Path, stale_before: float) -> int:
    """Delete the lock files made before `stale_before` that nobody holds: those of
    checkouts and installs that were never completed, or deleted by hand. A lock still in
    use is made again by its next user (`dispatch.filelocks`)."""
    deleted = 0
    for lock in (cache_dir / "locks").glob("*.lock"):
        if not _stale(lock, stale_before):
            continue
        fd = try_hold(lock, fcntl.LOCK_EX)
        if fd is None:
            continue
        try:
            delete_held(lock, fd)
            deleted += 1
        finally:
            os.close(fd)
    return deleted


def _stage_manifest(project: Path, lockfile: Path, deps: Path) -> None:
    """A fresh `deps` dir holding only what `npm ci` reads: package.json and the lockfile."""
    shutil.rmtree(deps, ignore_errors=True)
    deps.mkdir(parents=True)
    shutil.copy2(project / "package.json", deps / "package.json")
    shutil.copy2(lockfile, deps / lockfile.name)


def extract_tarball(archive: Path, dest: Path) -> None:
    """Extract a GitHub tarball (one top directory, stripped) into `dest`, refusing anything
    that would land outside it or is not a plain file, directory or inner link."""
    dest.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest, filter=_strip_top)  # noqa: S202 (data_filter applies)
    except tarfile.FilterError as exc:
        raise JobError(f"the repository tarball holds an unsafe entry: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InfrastructureError(f"the repository tarball cannot be read: {exc}") from exc


def _strip_top(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """GitHub puts everything under `owner-repo-sha/`: drop that first component."""
    if member.type == tarfile.XGLTYPE or member.name.startswith("pax_global_header"):
        return None
    _, sep, rest = member.name.lstrip("./").partition("/")
    if not sep or not rest.strip("/"):
        return None  # the top directory itself
    changes: dict[str, str] = {"name": rest}
    if member.islnk():  # hard links name a path from the archive's root
        _, _, link_rest = member.linkname.partition("/")
        changes["linkname"] = link_rest
    return tarfile.data_filter(member.replace(**changes, deep=False), dest)  # type: ignore[arg-type]
