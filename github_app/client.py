"""The async GitHub REST client of the App (httpx), with errors translated at the edge.

Authentication is built in: `/app/…` calls carry a fresh app JWT (re-signed once on GitHub's
clock after a clock-skew 401); repository calls carry an installation token from the
`TokenCache`, narrowed to the one repository, re-minted once after a 401. Every failure
leaves as a `GitHubApiError` (see `errors.py`); pacing writes is the caller's business.
The transport is injectable and the base URL configurable, so tests point it at a fake.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import quote

import httpx

from github_app import responses
from github_app.auth import (
    InstallationToken,
    TokenCache,
    TokenKey,
    create_app_jwt,
    is_clock_skew_error,
    server_time,
    token_from_json,
)
from github_app.discovery import Tree, tree_from_json
from github_app.errors import TransientApiError, Unauthorized, UnexpectedResponse
from github_app.fields import optional, present, required
from qgjob.settings import Secret

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
JSON = "application/vnd.github+json"
RAW = "application/vnd.github.raw+json"


@dataclass(frozen=True)
class Installation:
    id: int
    app_id: int | None
    account_login: str  # lower-cased: the org slug
    account_type: str | None
    repository_selection: str | None
    suspended: bool


@dataclass(frozen=True)
class CheckRunRef:
    id: int
    status: str
    conclusion: str | None
    html_url: str | None
    name: str | None = None
    external_id: str | None = None
    annotations_count: int = 0


def installation_from_json(data: Mapping[str, Any]) -> Installation:
    err = UnexpectedResponse
    return Installation(
        id=required(data, "id", int, error=err),
        app_id=optional(data, "app_id", int, error=err),
        account_login=required(data, "account.login", str, error=err).lower(),
        account_type=optional(data, "account.type", str, error=err),
        repository_selection=optional(data, "repository_selection", str, error=err),
        suspended=present(data, "suspended_at"),
    )


def check_run_from_json(data: Mapping[str, Any]) -> CheckRunRef:
    err = UnexpectedResponse
    return CheckRunRef(
        id=required(data, "id", int, error=err),
        status=required(data, "status", str, error=err),
        conclusion=optional(data, "conclusion", str, error=err),
        html_url=optional(data, "html_url", str, error=err),
        name=optional(data, "name", str, error=err),
        external_id=optional(data, "external_id", str, error=err),
        annotations_count=optional(data, "output.annotations_count", int, error=err) or 0,
    )


def split_repo(full_name: str) -> tuple[str, str]:
    """`owner/name` → (owner, name); ValueError otherwise."""
    owner, sep, name = full_name.partition("/")
    if not (owner and sep and name) or "/" in name:
        raise ValueError(f"repository must be 'owner/name', got {full_name!r}")
    return owner, name


class GitHubClient:
    """One per process; share it (and its token cache) between all installations."""

    def __init__(
        self,
        *,
        app_id: str | int,
        private_key: Secret | str | bytes,
        base_url: str = DEFAULT_API_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        token_cache: TokenCache | None = None,
        user_agent: str = "qgjob-github-app",
    ) -> None:
        self._app_id = app_id
        self._private_key = private_key
        self._clock = clock
        self._clock_offset_s = 0.0  # GitHub's clock minus ours, learnt from a skew 401
        self.tokens = token_cache or TokenCache()
        self._http = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=timeout_s,
            headers={"Accept": JSON, "X-GitHub-Api-Version": API_VERSION, "User-Agent": user_agent},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- as the App (JWT) ------------------------------------------------------------------

    async def get_installation(self, installation_id: int) -> Installation:
        """`GET /app/installations/{id}`: for an installation the service has not seen yet."""
        response = await self._as_app("GET", f"/app/installations/{installation_id}")
        return installation_from_json(self._json(response))

    async def create_installation_token(
        self,
        installation_id: int,
        *,
        repositories: Sequence[str] | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> InstallationToken:
        """Mint a token (uncached); `repositories` are names without the owner."""
        body: dict[str, Any] = {}
        if repositories is not None:
            body["repositories"] = list(repositories)
        if permissions is not None:
            body["permissions"] = dict(permissions)
        path = f"/app/installations/{installation_id}/access_tokens"
        response = await self._as_app("POST", path, json=body)
        return token_from_json(self._json(response))

    async def installation_token(
        self,
        installation_id: int,
        *,
        repositories: Sequence[str] | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> InstallationToken:
        """A cached token, minted when missing or within 5 minutes of expiry; `permissions`
        narrows it (e.g. `{"contents": "read"}` for a worker's download)."""
        key = TokenKey.of(installation_id, repositories, permissions)
        return await self.tokens.get_or_mint(
            key,
            now=self._clock,
            mint=lambda: self.create_installation_token(
                installation_id,
                repositories=None if repositories is None else sorted(repositories),
                permissions=permissions,
            ),
        )

    # -- as an installation, on one repository --------------------------------------------

    async def get_contents(
        self, *, installation_id: int, repo: str, path: str, ref: str
    ) -> bytes | None:
        """The raw bytes of `path` at `ref`, or None if there is no such file (404)."""
        url = f"/repos/{repo}/contents/{quote(path.lstrip('/'))}"
        response = await self._as_installation(
            "GET", url, installation_id=installation_id, repo=repo, params={"ref": ref},
            headers={"Accept": RAW}, allow_404=True,
        )  # fmt: skip
        return None if response.status_code == 404 else response.content

    async def get_tree(
        self, *, installation_id: int, repo: str, tree_sha: str, recursive: bool
    ) -> Tree:
        """`GET /repos/{repo}/git/trees/{sha}`; `recursive` lists the whole subtree."""
        params = {"recursive": "1"} if recursive else {}
        url = f"/repos/{repo}/git/trees/{quote(tree_sha)}"
        response = await self._as_installation(
            "GET", url, installation_id=installation_id, repo=repo, params=params
        )
        return tree_from_json(self._json(response))

    async def create_check_run(
        self, *, installation_id: int, repo: str, body: Mapping[str, Any]
    ) -> CheckRunRef:
        response = await self._as_installation(
            "POST", f"/repos/{repo}/check-runs", installation_id=installation_id, repo=repo,
            json=dict(body),
        )  # fmt: skip
        return check_run_from_json(self._json(response))

    async def update_check_run(
        self, *, installation_id: int, repo: str, check_run_id: int, body: Mapping[str, Any]
    ) -> CheckRunRef:
        response = await self._as_installation(
            "PATCH", f"/repos/{repo}/check-runs/{check_run_id}", installation_id=installation_id,
            repo=repo, json=dict(body),
        )  # fmt: skip
        return check_run_from_json(self._json(response))

    async def get_check_run(
        self, *, installation_id: int, repo: str, check_run_id: int
    ) -> CheckRunRef:
        response = await self._as_installation(
            "GET", f"/repos/{repo}/check-runs/{check_run_id}", installation_id=installation_id,
            repo=repo,
        )  # fmt: skip
        return check_run_from_json(self._json(response))

    async def list_check_runs(
        self, *, installation_id: int, repo: str, ref: str, check_name: str
    ) -> list[CheckRunRef]:
        """`GET /repos/{repo}/commits/{ref}/check-runs?check_name=…` (first 100, newest first)."""
        response = await self._as_installation(
            "GET", f"/repos/{repo}/commits/{quote(ref)}/check-runs",
            installation_id=installation_id, repo=repo,
            params={"check_name": check_name, "filter": "all", "per_page": "100"},
        )  # fmt: skip
        items = responses.json_object(
            response.content, method="GET", url=str(response.request.url)
        ).get("check_runs")
        if not isinstance(items, list):
            raise UnexpectedResponse("check_runs is not a list", url=str(response.request.url))
        return [check_run_from_json(item) for item in items]

    async def tarball_url(self, *, installation_id: int, repo: str, ref: str) -> str:
        """The short-lived, pre-authorised download URL GitHub redirects `/tarball/{ref}` to."""
        url = f"/repos/{repo}/tarball/{quote(ref)}"
        response = await self._as_installation(
            "GET", url, installation_id=installation_id, repo=repo, redirect_ok=True
        )
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            raise UnexpectedResponse(
                f"expected a redirect to the tarball, got {response.status_code}", url=url
            )
        return str(response.url.join(location))

    # -- plumbing --------------------------------------------------------------------------

    def _jwt(self) -> str:
        now = self._clock() + self._clock_offset_s
        return create_app_jwt(app_id=self._app_id, private_key=self._private_key, now=now)

    async def _as_app(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = await self._send(method, url, token=self._jwt(), **kwargs)
        if is_clock_skew_error(status=response.status_code, message=_message(response)):
            github_now = server_time(response.headers.get("date"))
            if github_now is not None:
                self._clock_offset_s = github_now - self._clock()
                logger.warning(
                    "GitHub refused the app JWT for clock skew; signing on its clock",
                    extra={"clock_offset_s": round(self._clock_offset_s, 1)},
                )
                response = await self._send(method, url, token=self._jwt(), **kwargs)
        return self._checked(response)

    async def _as_installation(
        self,
        method: str,
        url: str,
        *,
        installation_id: int,
        repo: str,
        allow_404: bool = False,
        redirect_ok: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        narrowed = [split_repo(repo)[1]]
        for attempt in (1, 2):
            token = await self.installation_token(installation_id, repositories=narrowed)
            response = await self._send(method, url, token=token.token.reveal(), **kwargs)
            if response.status_code != 401 or attempt == 2:
                break
            # Revoked, or a token so new that not every GitHub replica knows it yet: re-mint once.
            self.tokens.invalidate(installation_id)
        if (allow_404 and response.status_code == 404) or (redirect_ok and response.is_redirect):
            return response
        return self._checked(response)

    async def _send(self, method: str, url: str, *, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        try:
            return await self._http.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientApiError(
                f"timed out ({type(exc).__name__})", method=method, url=url
            ) from exc
        except httpx.RequestError as exc:
            raise TransientApiError(
                f"request failed: {type(exc).__name__}: {exc}", method=method, url=url
            ) from exc

    def _checked(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        error = responses.error_for(
            response.status_code,
            response.headers,
            response.content,
            now=self._clock(),
            method=response.request.method,
            url=str(response.request.url),
        )
        if isinstance(error, Unauthorized):
            logger.warning("GitHub refused our credentials", extra={"url": error.url})
        raise error

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        request = response.request
        return responses.json_object(response.content, method=request.method, url=str(request.url))


def _message(response: httpx.Response) -> str:
    return responses.error_message(response.content) if response.status_code == 401 else ""
