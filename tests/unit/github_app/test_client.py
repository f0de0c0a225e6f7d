"""The GitHub client against the fake GitHub over real HTTP on 127.0.0.1."""

from __future__ import annotations

import gzip
import io
import tarfile
from functools import partial

import httpx
import pytest

from github_app.checks import render_check_run
from github_app.client import GitHubClient
from github_app.config import load_config
from github_app.discovery import Tree, discover_specs
from github_app.errors import (
    NotFound,
    PermanentApiError,
    RateLimited,
    TransientApiError,
    Unauthorized,
    retry_delay_s,
)
from github_app.summary import RunState, SpecRow, TargetRun
from qgjob.types import Outcome, Target
from tests.standins.github import generate_app_key
from tests.unit.github_app.conftest import INSTALLATION_ID, REPO, GitHubEnv

DEFAULT = ("tests/**/*.spec.ts", "tests/**/*.spec.js")
SPECS = (
    "tests/flows/checkout.spec.ts",
    "tests/flows/deep/search.spec.js",
    "tests/login.spec.ts",
)


def count(github: GitHubEnv, method: str, fragment: str, status: int | None = None) -> int:
    return sum(
        1
        for r in github.state.requests
        if r.method == method and fragment in r.path and status in (None, r.status)
    )


async def test_get_installation(github: GitHubEnv, client: GitHubClient) -> None:
    installation = await client.get_installation(INSTALLATION_ID)
    assert installation.id == INSTALLATION_ID
    assert installation.account_login == "octo-org"
    assert installation.app_id == 4242
    assert installation.suspended is False
    with pytest.raises(NotFound):
        await client.get_installation(999)


async def test_tokens_are_cached_and_narrowed(github: GitHubEnv, client: GitHubClient) -> None:
    for _ in range(3):
        await client.get_contents(
            installation_id=INSTALLATION_ID, repo=REPO, path="README.md", ref=github.head_sha
        )
    assert github.state.tokens_minted == 1
    token = await client.installation_token(INSTALLATION_ID, repositories=["mobile-app"])
    assert token.repositories == ("mobile-app",)
    # The narrowed token opens its repository and no other.
    async with httpx.AsyncClient(
        base_url=github.url, headers={"Authorization": f"token {token.token.reveal()}"}
    ) as raw:
        assert (await raw.get(f"/repos/{REPO}/contents/README.md")).status_code == 200
        assert (await raw.get("/repos/Octo-Org/other/contents/README.md")).status_code == 404
    sent = [r.body for r in github.state.requests if r.path.endswith("/access_tokens")]
    assert sent == [{"repositories": ["mobile-app"]}]


async def test_contents_and_config(github: GitHubEnv, client: GitHubClient) -> None:
    read = partial(
        client.get_contents, installation_id=INSTALLATION_ID, repo=REPO, ref=github.head_sha
    )
    assert await read(path="qgjob.toml") == b'targets = ["emulator", "browserstack"]\n'
    assert await read(path="no/such/file.toml") is None
    config = await load_config(lambda path: read(path=path))
    assert config.targets == (Target.EMULATOR, Target.BROWSERSTACK)


async def test_discovery_through_the_client(github: GitHubEnv, client: GitHubClient) -> None:
    fetch = partial(client.get_tree, installation_id=INSTALLATION_ID, repo=REPO)

    async def fetch_tree(sha: str, *, recursive: bool) -> Tree:
        return await fetch(tree_sha=sha, recursive=recursive)

    found = await discover_specs(head_sha=github.head_sha, globs=DEFAULT, fetch_tree=fetch_tree)
    assert found == SPECS
    assert count(github, "GET", "/git/trees/") == 1

    github.state.truncate_recursive_over = 3
    github.state.requests.clear()
    found = await discover_specs(head_sha=github.head_sha, globs=DEFAULT, fetch_tree=fetch_tree)
    assert found == SPECS
    trees = [r for r in github.state.requests if "/git/trees/" in r.path]
    assert len(trees) > 2
    assert trees[0].query == {"recursive": "1"}
    assert trees[1].query == {}  # the root, one level


def target_run(github: GitHubEnv, state: RunState, outcomes: list[Outcome | None]) -> TargetRun:
    specs = tuple(
        SpecRow(f"tests/s{i}.spec.ts", o, 1000, 1, "boom" if o else None, 3)
        for i, o in enumerate(outcomes)
    )
    return TargetRun(
        run_id="run-1",
        target=Target.EMULATOR,
        head_sha=github.head_sha,
        details_url="https://qgjob.example/runs/run-1",
        state=state,
        specs=specs,
    )


async def test_check_run_life(github: GitHubEnv, client: GitHubClient) -> None:
    queued = render_check_run(target_run(github, RunState.QUEUED, [None] * 130))
    ref = await client.create_check_run(
        installation_id=INSTALLATION_ID, repo=REPO, body=queued.create_body
    )
    assert ref.status == "queued"
    recorded = github.state.check_runs[ref.id]
    assert (recorded.name, recorded.external_id, recorded.head_sha) == (
        "qgjob / emulator",
        "run-1",
        github.head_sha,
    )
    done = render_check_run(target_run(github, RunState.FINISHED, [Outcome.FAILED] * 130))
    for body in (done.update_body, *done.more):
        ref = await client.update_check_run(
            installation_id=INSTALLATION_ID, repo=REPO, check_run_id=ref.id, body=body
        )
    assert (ref.status, ref.conclusion) == ("completed", "failure")
    assert len(recorded.annotations) == 130
    assert recorded.actions[0]["identifier"] == "rerun_failed"
    assert recorded.output["title"] == "130 failed"


async def test_invalid_bodies_are_refused_like_github(
    github: GitHubEnv, client: GitHubClient
) -> None:
    body = render_check_run(target_run(github, RunState.FINISHED, [Outcome.PASSED])).create_body
    del body["conclusion"]
    with pytest.raises(PermanentApiError, match="Invalid request") as info:
        await client.create_check_run(installation_id=INSTALLATION_ID, repo=REPO, body=body)
    assert info.value.status == 422
    body = {"name": "qgjob / emulator", "head_sha": "f" * 40}
    with pytest.raises(PermanentApiError, match="No commit found"):
        await client.create_check_run(installation_id=INSTALLATION_ID, repo=REPO, body=body)
    with pytest.raises(NotFound):
        await client.update_check_run(
            installation_id=INSTALLATION_ID, repo=REPO, check_run_id=1, body={"status": "queued"}
        )


async def test_server_errors_are_transient(github: GitHubEnv, client: GitHubClient) -> None:
    github.state.fail(2, status=502, method="POST", path="/check-runs$")
    body = {"name": "qgjob / emulator", "head_sha": github.head_sha}
    for attempt in (1, 2):
        with pytest.raises(TransientApiError) as info:
            await client.create_check_run(installation_id=INSTALLATION_ID, repo=REPO, body=body)
        assert info.value.status == 502
        assert retry_delay_s(info.value, attempt=attempt) == 2.0 ** (attempt - 1)
    ref = await client.create_check_run(installation_id=INSTALLATION_ID, repo=REPO, body=body)
    assert github.state.check_runs[ref.id].status == "queued"


async def test_secondary_rate_limit(github: GitHubEnv, client: GitHubClient) -> None:
    github.state.secondary_rate_limit(retry_after_s=42, method="POST", path="/check-runs$")
    body = {"name": "qgjob / emulator", "head_sha": github.head_sha}
    with pytest.raises(RateLimited, match="secondary rate limit") as info:
        await client.create_check_run(installation_id=INSTALLATION_ID, repo=REPO, body=body)
    assert (info.value.status, info.value.retry_after_s) == (403, 42.0)
    assert retry_delay_s(info.value, attempt=5) == 42.0


async def test_primary_rate_limit_waits_for_the_reset(
    github: GitHubEnv, client: GitHubClient
) -> None:
    github.state.primary_rate_limit(reset_in_s=120, path="/git/trees/")
    with pytest.raises(RateLimited) as info:
        await client.get_tree(
            installation_id=INSTALLATION_ID, repo=REPO, tree_sha=github.head_sha, recursive=True
        )
    assert info.value.retry_after_s is not None
    assert 118 <= info.value.retry_after_s <= 121


async def test_slow_answers_time_out(github: GitHubEnv) -> None:
    async with github.client(timeout_s=0.2) as client:
        await client.installation_token(INSTALLATION_ID, repositories=["mobile-app"])
        github.state.slow(1.0, path="/contents/")
        with pytest.raises(TransientApiError, match="timed out") as info:
            await client.get_contents(
                installation_id=INSTALLATION_ID, repo=REPO, path="README.md", ref="main"
            )
        assert info.value.status is None
        assert retry_delay_s(info.value, attempt=3) == 4.0


async def test_connection_refused_is_transient(github: GitHubEnv) -> None:
    async with github.client(base_url="http://127.0.0.1:9") as client:
        with pytest.raises(TransientApiError, match="request failed"):
            await client.get_installation(INSTALLATION_ID)


@pytest.mark.parametrize("github_ahead_s", [-300.0, 900.0])
async def test_clock_skew_is_corrected_once(github: GitHubEnv, github_ahead_s: float) -> None:
    github.state.clock_offset_s = github_ahead_s
    async with github.client() as client:
        assert (await client.get_installation(INSTALLATION_ID)).id == INSTALLATION_ID
        assert count(github, "GET", "/app/installations/", 401) == 1
        assert count(github, "GET", "/app/installations/", 200) == 1
        # The learnt offset is kept: the next JWT is right the first time.
        await client.create_installation_token(INSTALLATION_ID)
        assert count(github, "POST", "/access_tokens", 401) == 0


async def test_a_foreign_key_is_unauthorized(github: GitHubEnv) -> None:
    async with github.client(private_key=generate_app_key()[0]) as client:
        with pytest.raises(Unauthorized, match="could not be decoded"):
            await client.get_installation(INSTALLATION_ID)
    assert count(github, "GET", "/app/installations/") == 1  # no pointless retry


async def test_tokens_are_reminted_near_expiry_and_after_401(github: GitHubEnv) -> None:
    now = [github.state.clock()]
    github.state.clock = lambda: now[0]
    async with github.client(clock=lambda: now[0]) as client:
        read = partial(
            client.get_contents, installation_id=INSTALLATION_ID, repo=REPO, path="README.md"
        )
        await read(ref="main")
        now[0] += 3600 - 301
        await read(ref="main")
        assert github.state.tokens_minted == 1
        now[0] += 2  # inside the last five minutes
        await read(ref="main")
        assert github.state.tokens_minted == 2
        github.state.tokens.clear()  # revoked behind our back
        assert await read(ref="main") == b"# app\n"
        assert github.state.tokens_minted == 3


async def test_suspended_installation(github: GitHubEnv, client: GitHubClient) -> None:
    github.state.installations[INSTALLATION_ID].suspended = True
    assert (await client.get_installation(INSTALLATION_ID)).suspended is True
    with pytest.raises(PermanentApiError, match="suspended") as info:
        await client.create_installation_token(INSTALLATION_ID)
    assert info.value.status == 403
    assert not isinstance(info.value, RateLimited)


async def test_tarball_url_downloads_the_commit(github: GitHubEnv, client: GitHubClient) -> None:
    url = await client.tarball_url(installation_id=INSTALLATION_ID, repo=REPO, ref="main")
    assert url.startswith(github.url)
    async with httpx.AsyncClient() as plain:  # the URL itself authorises the download
        response = await plain.get(url)
    assert response.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(response.content))) as archive:
        names = archive.getnames()
    prefix = f"Octo-Org-mobile-app-{github.head_sha[:7]}/"
    assert prefix + "tests/login.spec.ts" in names
    with pytest.raises(NotFound):
        await client.tarball_url(installation_id=INSTALLATION_ID, repo=REPO, ref="no-such-branch")
