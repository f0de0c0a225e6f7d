"""A fake GitHub REST API for tests: a Starlette app served on 127.0.0.1.

It plays the parts of GitHub that qgjob's App uses, with GitHub's shapes and rules:
- `/app/…` needs an RS256 app JWT, verified with the App's public key and GitHub's iat/exp
  rules on the fake's own clock (so clock skew can be staged); answers carry its `Date`;
- installation tokens expire (`token_ttl_s`), may be narrowed to repositories, and only open
  the repositories of their installation;
- repositories hold commits of files; trees get real git object ids, recursive listings can
  be truncated on demand (`truncate_recursive_over`), contents come raw or base64, and tarball
  requests redirect to a short-lived download URL serving a real .tar.gz;
- check-run bodies are validated against the request schemas of `openapi-subset.json`
  (422 with the reasons otherwise) and recorded, annotations appended as GitHub does;
- faults on demand: N × 500, 403 secondary rate limit with `Retry-After`, primary rate limit
  exhaustion, slow answers.

`FakeGitHub` is the state tests arrange and inspect; `create_app(state)` the ASGI app;
`serve(app)` runs any ASGI app with uvicorn in a background thread and yields its base URL.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import re
import secrets
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any

import jsonschema
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from tests.standins.server_thread import serve_in_thread

DOCS = "https://docs.github.com/rest"
SECONDARY_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
JWT_EXP_INVALID = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time "
    "at which the assertion expires"
)
JWT_EXP_TOO_FAR = "'Expiration time' claim ('exp') is too far in the future"
JWT_IAT_INVALID = (
    "'Issued at' claim ('iat') must be an Integer representing the time that the assertion "
    "was issued"
)
_CHECKED_BODIES = (
    ("POST", "/repos/{owner}/{repo}/check-runs"),
    ("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
    ("POST", "/app/installations/{installation_id}/access_tokens"),
)


def generate_app_key() -> tuple[bytes, bytes]:
    """A fresh 2048-bit RSA key pair for a test App: (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def load_request_validators(openapi_path: Path) -> dict[str, jsonschema.protocols.Validator]:
    """Draft-7 validators of the request bodies we send, keyed "METHOD /path/{template}"."""
    spec = json.loads(openapi_path.read_text())
    checker = jsonschema.FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        return not isinstance(value, str) or bool(
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        )

    validators: dict[str, jsonschema.protocols.Validator] = {}
    for method, path in _CHECKED_BODIES:
        key = f"{method} {path}"
        schema = spec[key]["requestBody"]["content"]["application/json"]["schema"]
        validators[key] = jsonschema.Draft7Validator(schema, format_checker=checker)
    return validators


def _git_sha(kind: str, data: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class GitEntry:
    name: str
    mode: str  # "100644" for files, "040000" for directories
    kind: str  # "blob" | "tree"
    sha: str
    size: int | None


@dataclass
class FakeRepo:
    """A repository as a set of commits, each a full snapshot of `path → bytes`."""

    owner: str
    name: str
    id: int
    default_branch: str = "main"
    commits: dict[str, str] = field(default_factory=dict)  # commit sha → root tree sha
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha → files
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag → commit sha
    trees: dict[str, list[GitEntry]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def commit(
        self, files: Mapping[str, bytes | str], *, branch: str | None = None, sha: str | None = None
    ) -> str:
        """Record a snapshot; return its commit sha and move `branch` (default branch) to it.
        `sha` names the commit (to match a recorded webhook payload); by default it is derived."""
        snapshot = {p: v.encode() if isinstance(v, str) else v for p, v in files.items()}
        root = self._write_tree(snapshot)
        parent = self.refs.get(branch or self.default_branch, "")
        sha = sha or _git_sha(
            "commit", f"tree {root}\nparent {parent}\n{len(self.commits)}".encode()
        )
        self.commits[sha] = root
        self.files[sha] = snapshot
        self.refs[branch or self.default_branch] = sha
        return sha

    def _write_tree(self, files: Mapping[str, bytes]) -> str:
        children: dict[str, dict[str, bytes]] = {}
        entries: list[GitEntry] = []
        for path, data in files.items():
            head, sep, rest = path.partition("/")
            if sep:
                children.setdefault(head, {})[rest] = data
            else:
                sha = _git_sha("blob", data)
                self.blobs[sha] = data
                entries.append(GitEntry(head, "100644", "blob", sha, len(data)))
        for name, sub in children.items():
            entries.append(GitEntry(name, "040000", "tree", self._write_tree(sub), None))
        # git orders a directory as if its name ended with "/"
        entries.sort(key=lambda e: e.name + ("/" if e.kind == "tree" else ""))
        raw = b"".join(
            f"{e.mode.lstrip('0')} {e.name}\0".encode() + bytes.fromhex(e.sha) for e in entries
        )
        sha = _git_sha("tree", raw)
        self.trees[sha] = entries
        return sha

    def resolve(self, ref: str) -> str | None:
        """A commit sha for a commit sha, branch or tag name."""
        return ref if ref in self.commits else self.refs.get(ref)

    def listing(
        self, tree_sha: str, *, recursive: bool, prefix: str = ""
    ) -> list[tuple[str, GitEntry]]:
        out: list[tuple[str, GitEntry]] = []
        for entry in self.trees[tree_sha]:
            out.append((prefix + entry.name, entry))
            if recursive and entry.kind == "tree":
                out += self.listing(entry.sha, recursive=True, prefix=f"{prefix}{entry.name}/")
        return out


@dataclass
class FakeInstallation:
    id: int
    account_login: str
    account_type: str = "Organization"
    repositories: list[str] = field(default_factory=list)  # full names
    suspended: bool = False


@dataclass(frozen=True)
class IssuedToken:
    token: str
    installation_id: int
    repositories: frozenset[str] | None  # names; None: all of the installation's
    expires_at: float


@dataclass
class Fault:
    """Answer the next `times` matching requests with `status` (after `delay_s`).

    `status=None` only delays (a slow answer). `path` is a regex searched in the URL path.
    """

    status: int | None = 500
    times: int = 1
    method: str | None = None
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=lambda: {"message": "Server Error"})
    delay_s: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int


@dataclass
class FakeCheckRun:
    id: int
    repo: str
    name: str
    head_sha: str
    status: str = "queued"
    conclusion: str | None = None
    external_id: str | None = None
    details_url: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)  # every create/update, in order


class FakeGitHub:
    """The state behind the fake: what exists, what was asked, what to break next."""

    def __init__(
        self,
        *,
        app_id: int,
        public_key: bytes,
        openapi_path: Path,
        clock: Callable[[], float] = time.time,
        token_ttl_s: float = 3600.0,
    ) -> None:
        self.app_id = app_id
        self.app_slug = "qgjob-test"
        self.public_key = public_key
        self.clock = clock
        self.clock_offset_s = 0.0  # stage skew: GitHub's clock = clock() + clock_offset_s
        self.token_ttl_s = token_ttl_s
        self.validators = load_request_validators(openapi_path)
        self.installations: dict[int, FakeInstallation] = {}
        self.repos: dict[str, FakeRepo] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.downloads: dict[str, tuple[str, str, float]] = {}  # token → (repo, commit, expiry)
        self.check_runs: dict[int, FakeCheckRun] = {}
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.truncate_recursive_over: int | None = None
        self.tokens_minted = 0
        self.writes_in_flight = 0
        self.max_writes_in_flight = 0  # check-run writes answered at the same time, at most
        self.write_times: list[float] = []  # when each check-run write arrived (monotonic)
        self._lock = threading.Lock()
        self._next_id = 1000

    def now(self) -> float:
        return self.clock() + self.clock_offset_s

    def new_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id

    # -- arranging ---------------------------------------------------------------------------

    def add_repo(self, full_name: str, *, default_branch: str = "main") -> FakeRepo:
        owner, name = full_name.split("/")
        repo = FakeRepo(owner, name, self.new_id(), default_branch=default_branch)
        self.repos[full_name.lower()] = repo
        return repo

    def add_installation(
        self, installation_id: int, *, account: str, repositories: list[str]
    ) -> FakeInstallation:
        installation = FakeInstallation(installation_id, account, repositories=list(repositories))
        self.installations[installation_id] = installation
        return installation

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def fail(
        self, times: int = 1, *, status: int = 500, method: str | None = None, path: str = ""
    ) -> Fault:
        return self.add_fault(Fault(status=status, times=times, method=method, path=path))

    def secondary_rate_limit(
        self, *, retry_after_s: int, times: int = 1, method: str | None = None, path: str = ""
    ) -> Fault:
        body = {"message": SECONDARY_LIMIT_MESSAGE, "documentation_url": DOCS}
        headers = {"retry-after": str(retry_after_s)}
        return self.add_fault(Fault(403, times, method, path, headers, body))

    def primary_rate_limit(
        self, *, reset_in_s: int, times: int = 1, method: str | None = None, path: str = ""
    ) -> Fault:
        reset = str(int(self.now()) + reset_in_s)
        headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
        body = {
            "message": "API rate limit exceeded for installation ID 1.",
            "documentation_url": DOCS,
        }
        return self.add_fault(Fault(403, times, method, path, headers, body))

    def slow(
        self, delay_s: float, *, times: int = 1, method: str | None = None, path: str = ""
    ) -> Fault:
        return self.add_fault(Fault(None, times, method, path, delay_s=delay_s))

    # -- inspecting --------------------------------------------------------------------------

    def check_runs_named(self, name: str) -> list[FakeCheckRun]:
        return [run for run in list(self.check_runs.values()) if run.name == name]

    def check_runs_on(self, head_sha: str) -> list[FakeCheckRun]:
        """The check runs of one commit, oldest first."""
        runs = [run for run in list(self.check_runs.values()) if run.head_sha == head_sha]
        return sorted(runs, key=lambda run: run.id)

    def writes(self) -> list[RecordedRequest]:
        """Check-run creates and updates that GitHub accepted, in order."""
        return [
            r
            for r in list(self.requests)
            if "/check-runs" in r.path and r.method in ("POST", "PATCH") and r.status < 300
        ]

    def record_token(self, issued: IssuedToken) -> None:
        with self._lock:
            self.tokens[issued.token] = issued
            self.tokens_minted += 1

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (
                    fault.times > 0
                    and fault.method in (None, method)
                    and re.search(fault.path, path)
                ):
                    fault.times -= 1
                    return fault
        return None


def _error(status: int, message: str, state: FakeGitHub, **extra: Any) -> JSONResponse:
    body = {"message": message, "documentation_url": DOCS, **extra}
    return JSONResponse(body, status_code=status, headers=_headers(state))


def _headers(state: FakeGitHub) -> dict[str, str]:
    return {
        "date": formatdate(state.now(), usegmt=True),
        "x-github-request-id": secrets.token_hex(8).upper(),
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": str(max(0, 5000 - len(state.requests))),
        "x-ratelimit-reset": str(int(state.now()) + 3600),
        "x-ratelimit-resource": "core",
    }


def _json(data: Any, state: FakeGitHub, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=_headers(state))


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user(login: str, user_id: int, kind: str, base: str) -> dict[str, Any]:
    url = f"{base}users/{login}"
    return {
        "login": login, "id": user_id, "node_id": f"U_{user_id}", "type": kind,
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}", "gravatar_id": "",
        "url": url, "html_url": f"https://github.com/{login}", "site_admin": False,
        "followers_url": f"{url}/followers", "following_url": f"{url}/following{{/other_user}}",
        "gists_url": f"{url}/gists{{/gist_id}}", "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{url}/subscriptions", "organizations_url": f"{url}/orgs",
        "repos_url": f"{url}/repos", "events_url": f"{url}/events{{/privacy}}",
        "received_events_url": f"{url}/received_events",
    }  # fmt: skip


PERMISSIONS = {"checks": "write", "contents": "read", "metadata": "read", "pull_requests": "read"}
EVENTS = ["check_run", "check_suite", "pull_request", "push"]


def _app_json(state: FakeGitHub, base: str) -> dict[str, Any]:
    return {
        "id": state.app_id, "slug": state.app_slug, "node_id": f"A_{state.app_id}",
        "owner": _user("qgjob", 1, "Organization", base), "name": "qgjob (test)",
        "description": None, "external_url": "https://qgjob.invalid",
        "html_url": f"https://github.com/apps/{state.app_slug}",
        "created_at": _iso(0), "updated_at": _iso(0), "permissions": PERMISSIONS, "events": EVENTS,
    }  # fmt: skip


def _installation_json(state: FakeGitHub, inst: FakeInstallation, base: str) -> dict[str, Any]:
    account = _user(inst.account_login, inst.id + 1, inst.account_type, base)
    return {
        "id": inst.id, "account": account, "repository_selection": "selected",
        "access_tokens_url": f"{base}app/installations/{inst.id}/access_tokens",
        "repositories_url": f"{base}installation/repositories",
        "html_url": f"https://github.com/settings/installations/{inst.id}",
        "app_id": state.app_id, "app_slug": state.app_slug, "target_id": inst.id + 1,
        "target_type": inst.account_type, "permissions": PERMISSIONS, "events": EVENTS,
        "created_at": _iso(0), "updated_at": _iso(0), "single_file_name": None,
        "suspended_by": account if inst.suspended else None,
        "suspended_at": _iso(state.now()) if inst.suspended else None,
    }  # fmt: skip


def _check_run_json(state: FakeGitHub, run: FakeCheckRun, base: str) -> dict[str, Any]:
    url = f"{base}repos/{run.repo}/check-runs/{run.id}"
    return {
        "id": run.id, "node_id": f"CR_{run.id}", "head_sha": run.head_sha, "name": run.name,
        "external_id": run.external_id, "url": url,
        "html_url": f"https://github.com/{run.repo}/runs/{run.id}",
        "details_url": run.details_url or f"https://github.com/apps/{state.app_slug}",
        "status": run.status, "conclusion": run.conclusion, "started_at": run.started_at,
        "completed_at": run.completed_at, "check_suite": {"id": run.id // 7},
        "output": {
            "title": run.output.get("title"), "summary": run.output.get("summary"),
            "text": run.output.get("text"), "annotations_count": len(run.annotations),
            "annotations_url": f"{url}/annotations",
        },
        "app": _app_json(state, base), "pull_requests": [],
    }  # fmt: skip


def _bearer(request: Request) -> tuple[str, str]:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    return scheme.lower(), credential.strip()


def _jwt_error(request: Request, state: FakeGitHub) -> str | None:
    """GitHub's message for an unacceptable app JWT, or None when it is acceptable."""
    scheme, credential = _bearer(request)
    if scheme != "bearer" or credential.count(".") != 2:
        return "A JSON web token could not be decoded"
    try:
        claims = jwt.decode(
            credential, state.public_key, algorithms=["RS256"],
            options={"verify_exp": False, "verify_iat": False, "require": ["iat", "exp", "iss"]},
        )  # fmt: skip
    except jwt.PyJWTError:
        return "A JSON web token could not be decoded"
    if str(claims["iss"]) != str(state.app_id):
        return "Integration not found"
    exp, iat, now = claims["exp"], claims["iat"], state.now()
    if not isinstance(exp, int) or exp <= now:
        return JWT_EXP_INVALID
    if exp > now + 600:
        return JWT_EXP_TOO_FAR
    if not isinstance(iat, int) or iat > now:
        return JWT_IAT_INVALID
    return None


def _repo_access(request: Request, state: FakeGitHub) -> FakeRepo | Response:
    """The repository in the path if the installation token may read it, else GitHub's refusal."""
    repo = state.repos.get(f"{request.path_params['owner']}/{request.path_params['repo']}".lower())
    scheme, credential = _bearer(request)
    issued = state.tokens.get(credential) if scheme in ("bearer", "token") else None
    if issued is None or issued.expires_at <= state.now():
        return _error(401, "Bad credentials", state)
    installation = state.installations.get(issued.installation_id)
    if installation is None:
        return _error(401, "Bad credentials", state)
    if installation.suspended:
        return _error(403, "This installation has been suspended", state)
    visible = {name.lower() for name in installation.repositories}
    if repo is None or repo.full_name.lower() not in visible:
        return _error(404, "Not Found", state)
    if issued.repositories is not None and repo.name not in issued.repositories:
        return _error(404, "Not Found", state)
    return repo


def _validation_error(state: FakeGitHub, key: str, body: Any) -> Response | None:
    problems = [
        f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
        for e in state.validators[key].iter_errors(body)
    ]
    output = body.get("output") if isinstance(body, dict) else None
    if isinstance(output, dict):
        if "check-runs" in key and "title" not in output:
            problems.append("output: title is required")
        for index, note in enumerate(output.get("annotations") or []):
            if len(str(note.get("title", ""))) > 255:
                problems.append(f"output/annotations/{index}/title: longer than 255 characters")
            for part in ("message", "raw_details"):
                if len(str(note.get(part, "")).encode()) > 64 * 1024:
                    problems.append(f"output/annotations/{index}/{part}: larger than 64 KB")
            if isinstance(note.get("start_line"), int) and note["start_line"] < 1:
                problems.append(f"output/annotations/{index}/start_line: must be at least 1")
    if not problems:
        return None
    return _error(422, "Invalid request.\n\n" + "\n".join(problems), state)


async def _get_installation(request: Request, state: FakeGitHub) -> Response:
    if (problem := _jwt_error(request, state)) is not None:
        return _error(401, problem, state)
    installation = state.installations.get(int(request.path_params["installation_id"]))
    if installation is None:
        return _error(404, "Not Found", state)
    return _json(_installation_json(state, installation, str(request.base_url)), state)


async def _create_token(request: Request, state: FakeGitHub) -> Response:
    if (problem := _jwt_error(request, state)) is not None:
        return _error(401, problem, state)
    installation = state.installations.get(int(request.path_params["installation_id"]))
    if installation is None:
        return _error(404, "Not Found", state)
    if installation.suspended:
        return _error(403, "This installation has been suspended", state)
    raw = await request.body()
    body = json.loads(raw) if raw else {}
    if (invalid := _validation_error(state, f"POST {_CHECKED_BODIES[2][1]}", body)) is not None:
        return invalid
    names = {full.split("/")[1]: full for full in installation.repositories}
    wanted = body.get("repositories")
    if wanted is not None and any(name not in names for name in wanted):
        return _error(
            422,
            "There is at least one repository that does not exist or is not accessible "
            "to the parent installation.",
            state,
        )
    permissions = body.get("permissions") or PERMISSIONS
    if any(PERMISSIONS.get(k) not in (v, "write") for k, v in permissions.items()):
        return _error(422, "The permissions requested are not granted to this installation.", state)
    issued = IssuedToken(
        token="ghs_" + secrets.token_urlsafe(27),
        installation_id=installation.id,
        repositories=None if wanted is None else frozenset(wanted),
        expires_at=state.now() + state.token_ttl_s,
    )
    state.record_token(issued)
    out: dict[str, Any] = {
        "token": issued.token,
        "expires_at": _iso(issued.expires_at),
        "permissions": permissions,
        "repository_selection": "selected",
    }
    if wanted is not None:
        out["repositories"] = [
            {"id": state.repos[names[n].lower()].id, "name": n, "full_name": names[n]}
            for n in wanted
        ]
    return _json(out, state, status=201)


async def _get_tree(request: Request, state: FakeGitHub) -> Response:
    repo = _repo_access(request, state)
    if isinstance(repo, Response):
        return repo
    wanted = request.path_params["tree_sha"]
    commit = repo.resolve(wanted)
    tree_sha = repo.commits[commit] if commit else wanted
    if tree_sha not in repo.trees:
        return _error(404, "Not Found", state)
    recursive = "recursive" in request.query_params  # any value enables recursion
    listing = repo.listing(tree_sha, recursive=recursive)
    limit = state.truncate_recursive_over
    truncated = recursive and limit is not None and len(listing) > limit
    if truncated and limit is not None:
        listing = listing[:limit]
    base = f"{request.base_url}repos/{repo.full_name}/git"
    entries = []
    for path, entry in listing:
        item: dict[str, Any] = {
            "path": path,
            "mode": entry.mode,
            "type": entry.kind,
            "sha": entry.sha,
        }
        if entry.size is not None:
            item["size"] = entry.size
        item["url"] = f"{base}/{entry.kind}s/{entry.sha}"
        entries.append(item)
    out = {
        "sha": tree_sha,
        "url": f"{base}/trees/{tree_sha}",
        "tree": entries,
        "truncated": truncated,
    }
    return _json(out, state)


async def _get_contents(request: Request, state: FakeGitHub) -> Response:
    repo = _repo_access(request, state)
    if isinstance(repo, Response):
        return repo
    commit = repo.resolve(request.query_params.get("ref", repo.default_branch))
    path = request.path_params["path"]
    data = repo.files.get(commit or "", {}).get(path)
    if data is None:
        return _error(404, "Not Found", state)
    if "raw" in request.headers.get("accept", ""):
        return Response(data, media_type="application/vnd.github.raw+json", headers=_headers(state))
    return _json(
        {
            "type": "file", "encoding": "base64", "size": len(data),
            "name": path.rsplit("/", 1)[-1], "path": path,
            "content": base64.encodebytes(data).decode(), "sha": _git_sha("blob", data),
            "url": f"{request.base_url}repos/{repo.full_name}/contents/{path}?ref={commit}",
            "git_url": None, "html_url": None, "download_url": None, "_links": {},
        },
        state,
    )  # fmt: skip


async def _tarball(request: Request, state: FakeGitHub) -> Response:
    repo = _repo_access(request, state)
    if isinstance(repo, Response):
        return repo
    commit = repo.resolve(request.path_params["ref"])
    if commit is None:
        return _error(404, "Not Found", state)
    token = secrets.token_urlsafe(16)
    state.downloads[token] = (repo.full_name.lower(), commit, state.now() + 300)
    location = f"{request.base_url}_codeload/{repo.full_name}/legacy.tar.gz/{commit}?token={token}"
    return RedirectResponse(location, status_code=302, headers=_headers(state))


async def _codeload(request: Request, state: FakeGitHub) -> Response:
    grant = state.downloads.get(request.query_params.get("token", ""))
    if grant is None or grant[2] <= state.now():
        return Response(b"Not Found", status_code=404)
    repo = state.repos[grant[0]]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, data in sorted(repo.files[grant[1]].items()):
            info = tarfile.TarInfo(f"{repo.owner}-{repo.name}-{grant[1][:7]}/{path}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return Response(gzip.compress(buffer.getvalue()), media_type="application/x-gzip")


def _apply(run: FakeCheckRun, body: Mapping[str, Any], now: float) -> None:
    """Fold one create/update body into the run the way GitHub does."""
    for key in ("name", "external_id", "details_url", "started_at", "completed_at"):
        if key in body:
            setattr(run, key, body[key])
    if "status" in body:
        run.status = body["status"]
    if "conclusion" in body:
        run.conclusion = body["conclusion"]
        run.status = "completed"  # a conclusion implies completion
    if run.status == "completed" and run.completed_at is None:
        run.completed_at = _iso(now)
    if run.status != "completed":
        run.conclusion = None
    output = body.get("output") or {}
    run.output.update({k: v for k, v in output.items() if k in ("title", "summary", "text")})
    run.annotations.extend(output.get("annotations") or [])  # appended, never replaced
    if "actions" in body:
        run.actions = list(body["actions"])
    run.bodies.append(dict(body))


async def _create_check_run(request: Request, state: FakeGitHub) -> Response:
    repo = _repo_access(request, state)
    if isinstance(repo, Response):
        return repo
    body = json.loads(await request.body() or b"null")
    if (invalid := _validation_error(state, f"POST {_CHECKED_BODIES[0][1]}", body)) is not None:
        return invalid
    if body["head_sha"] not in repo.commits:
        return _error(422, f"No commit found for SHA: {body['head_sha']}", state)
    run = FakeCheckRun(state.new_id(), repo.full_name, body["name"], body["head_sha"])
    run.started_at = _iso(state.now())
    _apply(run, body, state.now())
    state.check_runs[run.id] = run
    return _json(_check_run_json(state, run, str(request.base_url)), state, status=201)


def _own_check_run(request: Request, state: FakeGitHub) -> FakeCheckRun | Response:
    """The check run the path names, when the caller's token may see its repository."""
    repo = _repo_access(request, state)
    if isinstance(repo, Response):
        return repo
    run = state.check_runs.get(int(request.path_params["check_run_id"]))
    if run is None or run.repo != repo.full_name:
        return _error(404, "Not Found", state)
    return run


async def _update_check_run(request: Request, state: FakeGitHub) -> Response:
    run = _own_check_run(request, state)
    if isinstance(run, Response):
        return run
    body = json.loads(await request.body() or b"null")
    if (invalid := _validation_error(state, f"PATCH {_CHECKED_BODIES[1][1]}", body)) is not None:
        return invalid
    _apply(run, body, state.now())
    return _json(_check_run_json(state, run, str(request.base_url)), state)


async def _get_check_run(request: Request, state: FakeGitHub) -> Response:
    run = _own_check_run(request, state)
    if isinstance(run, Response):
        return run
    return _json(_check_run_json(state, run, str(request.base_url)), state)


async def _list_check_runs(request: Request, state: FakeGitHub) -> Response:
    """`GET /repos/{o}/{r}/commits/{ref}/check-runs`, with the `check_name` filter."""
    repo = _repo_access(request, state)
    if isinstance(repo, Response):
        return repo
    sha = repo.resolve(request.path_params["ref"])
    if sha is None:
        return _error(422, f"No commit found for SHA: {request.path_params['ref']}", state)
    name = request.query_params.get("check_name")
    runs = [
        run for run in sorted(state.check_runs.values(), key=lambda r: -r.id)
        if run.repo == repo.full_name and run.head_sha == sha and name in (None, run.name)
    ]  # fmt: skip
    base = str(request.base_url)
    return _json(
        {"total_count": len(runs), "check_runs": [_check_run_json(state, r, base) for r in runs]},
        state,
    )


Endpoint = Callable[[Request, FakeGitHub], Any]


def _endpoint(state: FakeGitHub, handler: Endpoint) -> Callable[[Request], Any]:
    """Wrap a handler with the staged faults and the request log."""

    async def endpoint(request: Request) -> Response:
        is_write = request.method in ("POST", "PATCH") and "/check-runs" in request.url.path
        if not is_write:
            return await _answer(request)
        with state._lock:
            state.writes_in_flight += 1
            state.max_writes_in_flight = max(state.max_writes_in_flight, state.writes_in_flight)
            state.write_times.append(time.monotonic())
        try:
            return await _answer(request)
        finally:
            with state._lock:
                state.writes_in_flight -= 1

    async def _answer(request: Request) -> Response:
        raw = await request.body()
        fault = state.take_fault(request.method, request.url.path)
        response: Response | None = None
        if fault is not None:
            await asyncio.sleep(fault.delay_s)
            if fault.status is not None:
                headers = {**_headers(state), **fault.headers}
                response = JSONResponse(fault.body, status_code=fault.status, headers=headers)
        if response is None:
            try:
                response = await handler(request, state)
            except (json.JSONDecodeError, UnicodeDecodeError):
                response = _error(400, "Problems parsing JSON", state)
        try:
            body = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = raw
        query = dict(request.query_params)
        state.requests.append(
            RecordedRequest(request.method, request.url.path, query, body, response.status_code)
        )
        return response

    return endpoint


def create_app(state: FakeGitHub) -> Starlette:
    """The fake's ASGI app over `state`."""
    routes = [
        ("/app/installations/{installation_id:int}", _get_installation, "GET"),
        ("/app/installations/{installation_id:int}/access_tokens", _create_token, "POST"),
        ("/repos/{owner}/{repo}/git/trees/{tree_sha:path}", _get_tree, "GET"),
        ("/repos/{owner}/{repo}/contents/{path:path}", _get_contents, "GET"),
        ("/repos/{owner}/{repo}/tarball/{ref:path}", _tarball, "GET"),
        ("/repos/{owner}/{repo}/check-runs", _create_check_run, "POST"),
        ("/repos/{owner}/{repo}/check-runs/{check_run_id:int}", _update_check_run, "PATCH"),
        ("/repos/{owner}/{repo}/check-runs/{check_run_id:int}", _get_check_run, "GET"),
        ("/repos/{owner}/{repo}/commits/{ref}/check-runs", _list_check_runs, "GET"),
        ("/_codeload/{owner}/{repo}/legacy.tar.gz/{sha}", _codeload, "GET"),
    ]
    app = Starlette(
        routes=[Route(path, _endpoint(state, fn), methods=[m]) for path, fn, m in routes]
    )
    app.state.github = state
    return app


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Run `app` with uvicorn on 127.0.0.1 (a free port) in a thread; yield its base URL."""
    with serve_in_thread(
        app, name="fake GitHub", access_log=False, date_header=False, server_header=False
    ) as url:  # the fake sends its own Date
        yield url


@contextmanager
def running_fake_github(state: FakeGitHub) -> Iterator[str]:
    """`serve(create_app(state))`: the base URL to give the client as its API URL."""
    with serve(create_app(state)) as base_url:
        yield base_url
