"""The GitHub App end to end: recorded webhook payloads in, check runs out on a fake GitHub.

The service runs for real (in this loop) on a fresh database with the App configured against
a fake GitHub on 127.0.0.1 that validates every check-run body against GitHub's schemas; a
scripted worker finishes the jobs over the real worker protocol.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app.github.service import GitHubApp, default_details_url
from app.github.tokens import source_token
from app.main import create_app
from github_app.client import GitHubClient
from qgjob.settings import Settings
from qgjob.types import Outcome
from tests.standins.github import (
    FakeCheckRun,
    FakeGitHub,
    FakeRepo,
    generate_app_key,
    running_fake_github,
)
from tests.support.github import (
    APP_ID,
    OPENAPI,
    PR_SHA,
    PUSH_SHA,
    REPO,
    GitHubRig,
    ScriptedWorker,
    add_commit,
    fork_pull_request,
    github_settings,
    payload,
)
from tests.support.scheduling import whole_keys
from tests.support.servers import serve_in_loop
from tests.support.waiting import eventually, soon

pytestmark = pytest.mark.skipif(not OPENAPI.exists(), reason="../shared/github is absent")

SPECS = {
    "tests/login.spec.ts": "test('login')\n",
    "tests/flows/checkout.spec.ts": "test('checkout')\n",
    "tests/flows/search.spec.js": "test('search')\n",
}
CONFIG = (
    'targets = ["emulator"]\napp_version_id = "build-{short_sha}-{branch}"\npriority = "high"\n'
)
ORG = "codertocat"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A claim takes a key whole, as these tests expect (tests/support/scheduling.py)."""
    return whole_keys(settings)


@pytest.fixture(scope="module")
def app_key() -> tuple[bytes, bytes]:
    return generate_app_key()


@pytest.fixture
def fake(app_key: tuple[bytes, bytes]) -> Iterator[tuple[FakeGitHub, str]]:
    state = FakeGitHub(app_id=APP_ID, public_key=app_key[1], openapi_path=OPENAPI)
    repo = state.add_repo(REPO, default_branch="master")
    add_commit(repo, PUSH_SHA, SPECS, config=CONFIG, branch="master")
    add_commit(repo, PR_SHA, SPECS, config=CONFIG, branch="changes")
    state.add_installation(1, account="Codertocat", repositories=[REPO])
    state.add_installation(957387, account="Codertocat", repositories=[REPO])
    with running_fake_github(state) as url:
        yield state, url


@pytest.fixture
async def rig(
    settings: Settings, fake: tuple[FakeGitHub, str], app_key: tuple[bytes, bytes], pool: Any
) -> AsyncIterator[GitHubRig]:
    configured = github_settings(settings, api_url=fake[1], private_key=app_key[0])
    async with serve_in_loop(create_app(configured)) as url:
        yield GitHubRig(fake[0], url, pool, state_url=fake[1])


async def worker_token(rig: GitHubRig, settings: Settings, role: str = "worker") -> str:
    """A token of the org for `role` (a worker's, unless said otherwise)."""
    admin = settings.local_token_path.read_text().strip()
    async with httpx.AsyncClient(base_url=rig.service_url, timeout=30) as client:
        answer = await client.post(
            "/v1/tokens", json={"org_id": ORG, "role": role},
            headers={"Authorization": f"Bearer {admin}"},
        )  # fmt: skip
        answer.raise_for_status()
        token: str = answer.json()["token"]
        return token


async def check_runs(rig: GitHubRig, sha: str, *, count: int, status: str) -> list[FakeCheckRun]:
    def check() -> list[FakeCheckRun] | None:
        runs = rig.state.check_runs_on(sha)
        return runs if len(runs) >= count and all(r.status == status for r in runs) else None

    return await eventually(soon(check), what=f"{count} check runs {status} on {sha[:7]}")


def repo_payload() -> dict[str, Any]:
    repository: dict[str, Any] = payload("push/with-new-branch")["repository"]
    return repository


def check_run_event(action: str, run: FakeCheckRun, **extra: Any) -> dict[str, Any]:
    """The recorded `check_run` payload, pointed at one of our check runs."""
    data = copy.deepcopy(payload(f"check_run/{action}"))
    data["repository"] = repo_payload()
    data["installation"] = {"id": 1}
    data["check_run"].update(id=run.id, head_sha=run.head_sha, name=run.name,
                             external_id=run.external_id or "")  # fmt: skip
    data["check_run"]["app"]["id"] = APP_ID
    data.update(extra)
    return data


async def test_the_webhook_answers_401_400_413_and_202_as_github_expects(rig: GitHubRig) -> None:
    push = payload("push/with-new-branch")
    unsigned = await rig.deliver("push", push, headers={"X-Hub-Signature-256": ""})
    assert unsigned.status_code == 401
    forged = await rig.deliver("push", push, secret="not the secret")
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "invalid_signature"
    no_event = await rig.deliver("push", push, headers={"X-GitHub-Event": ""})
    assert no_event.status_code == 400
    assert "X-GitHub-Event" in no_event.json()["error"]["message"]
    broken = await rig.deliver("push", b'{"ref": ')
    assert broken.status_code == 400 and "not JSON" in broken.json()["error"]["message"]
    huge = await rig.deliver("push", b" " * (25 * 1024 * 1024 + 1))
    assert huge.status_code == 413

    ping = await rig.deliver("ping", {"zen": "Keep it simple.", "hook_id": 1})
    assert ping.status_code == 202 and ping.json()["status"] == "ignored"
    first = await rig.deliver("push", push, delivery_id="d-1")
    again = await rig.deliver("push", push, delivery_id="d-1")
    assert (first.status_code, first.json()["status"]) == (202, "queued")
    assert (again.status_code, again.json()["status"]) == (202, "duplicate")
    await rig.processed("d-1")
    assert await rig.pool.fetchval("SELECT count(*) FROM runs") == 1  # acted on once


async def test_without_the_app_configured_the_route_answers_503(settings: Settings) -> None:
    async with serve_in_loop(create_app(settings)) as url, httpx.AsyncClient() as client:
        answer = await client.post(f"{url}/github/webhooks", content=b"{}")
    assert answer.status_code == 503
    assert "QGJOB_GITHUB_APP_ID" in answer.json()["error"]["message"]


async def test_a_push_runs_the_specs_and_completes_its_check_run_with_the_results(
    rig: GitHubRig, settings: Settings
) -> None:
    answer = await rig.deliver("push", payload("push/with-new-branch"), delivery_id="push-1")
    assert answer.status_code == 202
    outcome = await rig.processed("push-1")
    assert outcome.startswith("run "), outcome
    # Installation 1 was never announced: it was looked up on GitHub.
    assert (
        await rig.pool.fetchval("SELECT org_id FROM github_installations WHERE installation_id = 1")
        == ORG
    )
    (queued,) = await check_runs(rig, PUSH_SHA, count=1, status="queued")
    run = await rig.pool.fetchrow("SELECT * FROM runs")
    assert (run["source"], run["repo"], run["ref"], run["head_sha"]) == (
        "github", REPO, "refs/heads/master", PUSH_SHA,
    )  # fmt: skip
    assert run["app_version_id"] == "build-6113728-master" and run["priority"] == "high"
    assert run["submitted_by"] == "Codertocat"  # the pusher (the payload's sender)
    assert queued.name == "qgjob / emulator" and queued.external_id == str(run["run_id"])
    # Details: the run's signed read-only page, which opens without signing in.
    page = f"/ui/runs/{run['run_id']}?view="
    assert queued.details_url is not None
    assert queued.details_url.startswith(f"https://qgjob.example.test{page}")
    local = rig.service_url + queued.details_url.removeprefix("https://qgjob.example.test")
    async with httpx.AsyncClient() as browser:
        opened = await browser.get(local)
    assert opened.status_code == 200 and "tests/login.spec.ts" in opened.text

    worker = ScriptedWorker(
        rig.service_url, await worker_token(rig, settings),
        outcomes={
            "tests/login.spec.ts": Outcome.FAILED, "tests/flows/search.spec.js": Outcome.FLAKY,
        },
        errors={"tests/login.spec.ts": "expected Welcome\n  at tests/login.spec.ts:12:5"},
    )  # fmt: skip
    assert await worker.run_until_idle(hold_s=0.5) == 3
    # The worker was handed a read-only token for this one repository (to fetch its tarball).
    source = worker.sources[0]
    assert (source.repo, source.head_sha, source.api_url) == (REPO, PUSH_SHA, rig.state_url)
    assert source.token is not None and source.token in rig.state.tokens
    assert rig.state.tokens[source.token].repositories == frozenset({"Hello-World"})
    (done,) = await check_runs(rig, PUSH_SHA, count=1, status="completed")
    assert done.conclusion == "failure"
    assert [b.get("status") for b in done.bodies][:2] == ["queued", "in_progress"]
    assert {(a["path"], a["annotation_level"], a["start_line"]) for a in done.annotations} == {
        ("tests/login.spec.ts", "failure", 12),
        ("tests/flows/search.spec.js", "warning", 1),
    }
    assert [a["identifier"] for a in done.actions] == ["rerun_failed"]
    assert "1 failed, 1 flaky, 1 passed" in done.output["title"]
    assert "Setup time saved by grouping: 3.0s" in done.output["summary"]
    assert "tests/login.spec.ts" in done.output["text"]


async def test_a_new_push_to_the_branch_supersedes_the_older_run(rig: GitHubRig) -> None:
    opened = copy.deepcopy(payload("pull_request/opened"))
    repo: FakeRepo = rig.state.repos[REPO.lower()]
    first_sha = add_commit(repo, "a" * 40, SPECS, config=CONFIG, branch="changes")
    opened["pull_request"]["head"]["sha"] = first_sha
    await rig.deliver("pull_request", opened, delivery_id="pr-opened")
    assert (await rig.processed("pr-opened")).startswith("run ")
    await check_runs(rig, first_sha, count=1, status="queued")

    await rig.deliver("pull_request", payload("pull_request/synchronize"), delivery_id="pr-sync")
    assert (await rig.processed("pr-sync")).startswith("run ")
    (newer,) = await check_runs(rig, PR_SHA, count=1, status="queued")
    (cancelled,) = await check_runs(rig, first_sha, count=1, status="completed")
    assert cancelled.conclusion == "cancelled"
    assert cancelled.output["title"] == f"Cancelled: superseded by {PR_SHA[:7]}"
    statuses = await rig.pool.fetch(
        "SELECT DISTINCT j.status::text FROM jobs j JOIN runs r USING (run_id) "
        "WHERE r.head_sha = $1", first_sha,
    )  # fmt: skip
    assert [r["status"] for r in statuses] == ["CANCELLED"]
    assert newer.status == "queued"
    # The check suite GitHub requests for the same commit does not start a second run.
    suite = copy.deepcopy(payload("check_suite/requested"))
    suite["check_suite"]["head_sha"] = PR_SHA
    suite["check_suite"]["app"]["id"] = APP_ID
    suite["repository"] = repo_payload()
    suite["installation"] = {"id": 1}
    await rig.deliver("check_suite", suite, delivery_id="suite")
    assert (await rig.processed("suite")).startswith("skipped")


def suite_requested(sha: str, branch: str, pull_requests: tuple[int, ...] = ()) -> dict[str, Any]:
    """`check_suite/requested` for `sha` on `branch`, as GitHub sends it with every push."""
    suite = copy.deepcopy(payload("check_suite/requested"))
    shown = {"id": 1, "url": "https://api.github.com/repos/Codertocat/Hello-World",
             "name": "Hello-World"}  # fmt: skip
    suite["check_suite"].update(
        head_sha=sha, head_branch=branch,
        pull_requests=[
            {"number": n, "id": n, "url": f"https://api.github.com/pulls/{n}",
             "head": {"ref": branch, "sha": sha, "repo": shown},
             "base": {"ref": "master", "sha": "b" * 40, "repo": shown}}
            for n in pull_requests
        ],
    )  # fmt: skip
    suite["check_suite"]["app"]["id"] = APP_ID
    suite["repository"] = repo_payload()
    suite["installation"] = {"id": 1}
    return suite


def push_of(sha: str, branch: str, *, before: str = "0" * 40) -> dict[str, Any]:
    push = copy.deepcopy(payload("push/with-new-branch"))
    push.update(after=sha, before=before, ref=f"refs/heads/{branch}")
    return push


async def pushed_and_running(
    rig: GitHubRig, sha: str, branch: str, *, before: str = "0" * 40
) -> str:
    """A commit of the specs on `branch`, pushed and run: its sha."""
    add_commit(rig.state.repos[REPO.lower()], sha, SPECS, config=CONFIG, branch=branch)
    await rig.deliver("push", push_of(sha, branch, before=before), delivery_id=f"push-{sha[:7]}")
    assert (await rig.processed(f"push-{sha[:7]}")).startswith("run ")
    return sha


async def statuses_of(rig: GitHubRig, sha: str) -> list[str]:
    rows = await rig.pool.fetch(
        "SELECT DISTINCT j.status::text FROM jobs j JOIN runs r USING (run_id) "
        "WHERE r.head_sha = $1 ORDER BY 1", sha,
    )  # fmt: skip
    return [r["status"] for r in rows]


# GitHub sends a push, a check suite and (for a pull request within the repository) a
# pull_request for one commit, and the inbox processes them in any order: each order must
# come to the same thing.


async def test_a_check_suite_processed_first_is_filtered_and_supersedes_as_its_push(
    rig: GitHubRig,
) -> None:
    repo: FakeRepo = rig.state.repos[REPO.lower()]
    only_master = 'targets = ["emulator"]\n[branches]\ninclude = ["changes"]\n'
    first = add_commit(repo, "a" * 40, SPECS, config=only_master, branch="changes")
    await rig.deliver("push", push_of(first, "changes"), delivery_id="push-a")
    assert (await rig.processed("push-a")).startswith("run ")
    second = add_commit(repo, "b" * 40, SPECS, config=only_master, branch="changes")
    await rig.deliver("check_suite", suite_requested(second, "changes"), delivery_id="suite-b")
    assert (await rig.processed("suite-b")).startswith("run ")
    assert await statuses_of(rig, first) == ["CANCELLED"]  # superseded by the suite's run
    await rig.deliver("push", push_of(second, "changes", before=first), delivery_id="push-b")
    assert (await rig.processed("push-b")).startswith("skipped")  # one run per commit
    # A branch the filters leave out does not run through its check suite either.
    other = add_commit(repo, "c" * 40, SPECS, config=only_master, branch="feature")
    await rig.deliver("check_suite", suite_requested(other, "feature"), delivery_id="suite-c")
    assert (
        await rig.processed("suite-c")
    ) == "skipped: refs/heads/feature is not configured to run"
    assert await statuses_of(rig, other) == []


async def test_a_pull_request_processed_before_the_push_supersedes_the_push_run(
    rig: GitHubRig,
) -> None:
    first = await pushed_and_running(rig, "a" * 40, "changes")
    # Pull request #2 (head: changes) moves to PR_SHA; its event comes before the push's.
    await rig.deliver("pull_request", payload("pull_request/synchronize"), delivery_id="sync")
    assert (await rig.processed("sync")).startswith("run ")
    assert await statuses_of(rig, first) == ["CANCELLED"]
    # And the other way round: the push of the next commit supersedes the pull request's run.
    await pushed_and_running(rig, "c" * 40, "changes", before=PR_SHA)
    assert await statuses_of(rig, PR_SHA) == ["CANCELLED"]


async def test_a_fork_pull_request_does_not_supersede_the_branch_of_the_same_name(
    rig: GitHubRig,
) -> None:
    first = await pushed_and_running(rig, "a" * 40, "changes")
    forked = fork_pull_request()  # head: the branch "changes" of another repository
    assert forked["pull_request"]["head"]["ref"] == "changes"
    await rig.deliver("pull_request", forked, delivery_id="fork")
    assert (await rig.processed("fork")).startswith("blocked")
    (blocked,) = await check_runs(rig, PR_SHA, count=1, status="completed")
    await rig.deliver("check_run", check_run_event("rerequested", blocked), delivery_id="approve")
    assert (await rig.processed("approve")).startswith("run ")
    assert await statuses_of(rig, PR_SHA) == ["PENDING"]
    assert await statuses_of(rig, first) == ["PENDING"]  # the repository's branch runs on


async def test_a_commit_without_specs_gets_one_check_run_from_its_push_and_suite(
    rig: GitHubRig,
) -> None:
    repo: FakeRepo = rig.state.repos[REPO.lower()]
    sha = add_commit(repo, "e" * 40, {"tests/readme.md": "x"}, config=None, branch="feature")
    await rig.deliver("check_suite", suite_requested(sha, "feature"), delivery_id="suite")
    assert await rig.processed("suite") == "no specs matched"
    await rig.deliver("push", push_of(sha, "feature"), delivery_id="push")
    await rig.processed("push")
    (only,) = await check_runs(rig, sha, count=1, status="completed")
    assert only.conclusion == "neutral"
    assert len(rig.state.check_runs_on(sha)) == 1


async def test_a_pr_template_runs_the_pull_request_and_skips_the_push(rig: GitHubRig) -> None:
    repo: FakeRepo = rig.state.repos[REPO.lower()]
    sha = add_commit(repo, "d" * 40, SPECS, config='app_version_id = "pr-{pr}-{short_sha}"\n',
                     branch="changes")  # fmt: skip
    await rig.deliver("push", push_of(sha, "changes"), delivery_id="push")
    assert await rig.processed("push") == (
        "skipped: app_version_id uses {pr}, so only pull requests run"
    )
    sync = copy.deepcopy(payload("pull_request/synchronize"))
    sync["pull_request"]["head"]["sha"] = sha
    await rig.deliver("pull_request", sync, delivery_id="sync")
    assert (await rig.processed("sync")).startswith("run ")
    (queued,) = await check_runs(rig, sha, count=1, status="queued")  # no failed "qgjob" check
    assert queued.name == "qgjob / emulator"
    run = await rig.pool.fetchrow("SELECT app_version_id FROM runs WHERE head_sha = $1", sha)
    assert run["app_version_id"] == f"pr-2-{sha[:7]}"


def closed_pull_request(*, merged: bool) -> dict[str, Any]:
    """`pull_request/closed`, derived from the recorded `opened` one (same pull request)."""
    data = copy.deepcopy(payload("pull_request/opened"))
    data["action"] = "closed"
    pull = data["pull_request"]
    pull.update(state="closed", closed_at="2019-05-15T15:21:00Z", merged=merged)
    if merged:
        pull.update(merged_at="2019-05-15T15:21:00Z", merge_commit_sha="c" * 40)
    return data


@pytest.mark.parametrize("merged", [False, True])
async def test_a_closed_pull_request_cancels_its_run_and_a_reopen_runs_again(
    rig: GitHubRig, settings: Settings, merged: bool
) -> None:
    await rig.deliver("pull_request", payload("pull_request/opened"), delivery_id="opened")
    assert (await rig.processed("opened")).startswith("run ")
    (queued,) = await check_runs(rig, PR_SHA, count=1, status="queued")
    # Another pull request's run is left alone.
    other = copy.deepcopy(payload("pull_request/opened"))
    other["number"] = other["pull_request"]["number"] = 99
    other["pull_request"]["head"].update(sha=PUSH_SHA, ref="master")
    await rig.deliver("pull_request", other, delivery_id="other")
    assert (await rig.processed("other")).startswith("run ")

    closed = closed_pull_request(merged=merged)
    await rig.deliver("pull_request", closed, delivery_id="closed")
    assert (await rig.processed("closed")).startswith("closed: pull request #2, 1 runs")
    (done,) = await check_runs(rig, PR_SHA, count=1, status="completed")
    assert done.id == queued.id and done.conclusion == "cancelled"
    reason = "pull request #2 was closed" + (" (merged)" if merged else "")
    assert done.output["title"] == f"Cancelled: {reason}"
    assert reason in done.output["summary"]
    statuses = await rig.pool.fetch(
        "SELECT r.head_sha, array_agg(DISTINCT j.status::text) AS statuses "
        "FROM jobs j JOIN runs r USING (run_id) GROUP BY r.head_sha"
    )
    assert {r["head_sha"]: r["statuses"] for r in statuses} == {
        PR_SHA: ["CANCELLED"], PUSH_SHA: ["PENDING"],
    }  # fmt: skip
    # A worker gets nothing of the closed pull request, only the other one's specs.
    worker = ScriptedWorker(rig.service_url, await worker_token(rig, settings))
    assert await worker.run_until_idle() == 3
    # A second close (a redelivered one under a new id) has nothing left to cancel.
    await rig.deliver("pull_request", closed, delivery_id="closed-again")
    assert await rig.processed("closed-again") == "closed: pull request #2 has no run in progress"

    reopened = copy.deepcopy(payload("pull_request/reopened"))
    reopened["pull_request"]["head"]["sha"] = PR_SHA
    await rig.deliver("pull_request", reopened, delivery_id="reopened")
    assert (await rig.processed("reopened")).startswith("run ")

    def rerun() -> FakeCheckRun | None:
        fresh = [r for r in rig.state.check_runs_on(PR_SHA) if r.id != queued.id]
        return fresh[0] if fresh else None

    assert (await eventually(soon(rerun), what="the reopened run's check run")).status == "queued"


async def test_closing_a_pull_request_cancels_the_push_run_of_its_head(rig: GitHubRig) -> None:
    """Within one repository GitHub sends a push and a pull_request for the same commit; the
    push came first and made the commit's one run, so the close cancels that run."""
    push = copy.deepcopy(payload("push/with-new-branch"))
    push.update(after=PR_SHA, ref="refs/heads/changes")
    await rig.deliver("push", push, delivery_id="push")
    assert (await rig.processed("push")).startswith("run ")
    await rig.deliver("pull_request", payload("pull_request/opened"), delivery_id="opened")
    assert (await rig.processed("opened")).startswith("skipped")
    await rig.deliver("pull_request", closed_pull_request(merged=True), delivery_id="closed")
    assert (await rig.processed("closed")).startswith("closed: pull request #2, 1 runs")
    (done,) = await check_runs(rig, PR_SHA, count=1, status="completed")
    assert done.output["title"] == "Cancelled: pull request #2 was closed (merged)"


async def test_a_fork_pull_request_waits_for_a_maintainer_then_runs(
    rig: GitHubRig, settings: Settings
) -> None:
    await rig.deliver("pull_request", fork_pull_request(), delivery_id="fork")
    assert (await rig.processed("fork")).startswith("blocked")
    (blocked,) = await check_runs(rig, PR_SHA, count=1, status="completed")
    assert blocked.conclusion == "action_required"
    assert "forker/Hello-World" in blocked.output["summary"]
    assert await rig.pool.fetchval("SELECT count(*) FROM runs") == 0

    await rig.deliver("check_run", check_run_event("rerequested", blocked), delivery_id="approve")
    assert (await rig.processed("approve")).startswith("run ")
    worker = ScriptedWorker(rig.service_url, await worker_token(rig, settings))
    assert await worker.run_until_idle() == 3

    def approved() -> FakeCheckRun | None:
        fresh = [r for r in rig.state.check_runs_on(PR_SHA) if r.id != blocked.id]
        return fresh[0] if fresh and fresh[0].status == "completed" else None

    ran = await eventually(soon(approved), what="the approved run's check run")
    assert ran.conclusion == "success"


async def a_push_with_a_failed_spec(rig: GitHubRig, settings: Settings) -> tuple[str, FakeCheckRun]:
    """A push whose run ends with tests/login.spec.ts failed: a worker token and the
    push's completed check run."""
    await rig.deliver("push", payload("push/with-new-branch"), delivery_id="push")
    await rig.processed("push")
    token = await worker_token(rig, settings)
    failing = ScriptedWorker(
        rig.service_url, token, outcomes={"tests/login.spec.ts": Outcome.FAILED}
    )
    await failing.run_until_idle()
    (done,) = await check_runs(rig, PUSH_SHA, count=1, status="completed")
    assert done.conclusion == "failure"
    return token, done


async def check_run_of(rig: GitHubRig, run_id: str, status: str) -> FakeCheckRun:
    """The check run of our run `run_id` on the push's commit, once it has `status`."""

    def check() -> FakeCheckRun | None:
        runs = [r for r in rig.state.check_runs_on(PUSH_SHA) if r.external_id == run_id]
        return runs[0] if runs and runs[0].status == status else None

    return await eventually(soon(check), what=f"the check run of run {run_id}, {status}")


async def test_rerun_failed_runs_only_the_failed_specs(rig: GitHubRig, settings: Settings) -> None:
    token, done = await a_push_with_a_failed_spec(rig, settings)

    action = check_run_event(
        "requested_action", done, requested_action={"identifier": "rerun_failed"}
    )
    await rig.deliver("check_run", action, delivery_id="rerun")
    assert (await rig.processed("rerun")).startswith("run ")
    rerun = await rig.pool.fetchrow(
        "SELECT r.run_id, array_agg(j.test_path) AS specs FROM runs r JOIN jobs j USING (run_id) "
        "JOIN github_runs g USING (run_id) WHERE g.trigger = 'rerun_failed' GROUP BY r.run_id"
    )
    assert rerun["specs"] == ["tests/login.spec.ts"]
    asked_by = await rig.pool.fetchval(
        "SELECT submitted_by FROM runs WHERE run_id = $1", rerun["run_id"]
    )
    assert asked_by == action["sender"]["login"]  # who pressed Re-run failed
    await ScriptedWorker(rig.service_url, token).run_until_idle()
    fixed = await check_run_of(rig, str(rerun["run_id"]), "completed")
    assert fixed.conclusion == "success"

    # check_suite rerequested: the whole commit again, as a new run.
    suite = copy.deepcopy(payload("check_suite/rerequested"))
    suite["check_suite"].update(head_sha=PUSH_SHA)
    suite["check_suite"]["app"]["id"] = APP_ID
    suite["repository"] = repo_payload()
    await rig.deliver("check_suite", suite, delivery_id="suite-again")
    assert (await rig.processed("suite-again")).startswith("run ")
    assert await rig.pool.fetchval("SELECT count(*) FROM github_runs") == 3


async def test_a_rerun_asked_for_through_the_api_reports_to_github_too(
    rig: GitHubRig, settings: Settings
) -> None:
    token, done = await a_push_with_a_failed_spec(rig, settings)
    submitter = await worker_token(rig, settings, role="submitter")
    async with httpx.AsyncClient(base_url=rig.service_url, timeout=30) as client:
        answer = await client.post(
            f"/v1/runs/{done.external_id}/rerun-failed",
            headers={"Authorization": f"Bearer {submitter}"},
        )
    assert answer.status_code == 201, answer.text
    rerun_id = answer.json()["run_id"]
    origin = await rig.pool.fetchrow(
        "SELECT trigger, head_sha, installation_id FROM github_runs WHERE run_id = $1",
        uuid.UUID(rerun_id),
    )
    assert dict(origin) == {"trigger": "rerun_failed", "head_sha": PUSH_SHA, "installation_id": 1}
    queued = await check_run_of(rig, rerun_id, "queued")
    assert queued.name == done.name
    await ScriptedWorker(rig.service_url, token).run_until_idle()
    fixed = await check_run_of(rig, rerun_id, "completed")
    assert fixed.conclusion == "success"
    assert "tests/login.spec.ts" in str(fixed.output)


async def test_installation_events_keep_the_org_and_a_suspension_stops_processing(
    rig: GitHubRig,
) -> None:
    await rig.deliver("installation", payload("installation/created"), delivery_id="inst")
    assert "active, 1 repositories" in await rig.processed("inst")
    row = await rig.pool.fetchrow(
        "SELECT * FROM github_installations WHERE installation_id = 957387"
    )
    assert (row["org_id"], row["repositories"]) == (ORG, [REPO])

    suspend = copy.deepcopy(payload("installation/created"))
    suspend["action"] = "suspend"
    suspend["installation"]["suspended_at"] = "2026-11-21T10:00:00Z"
    await rig.deliver("installation", suspend, delivery_id="suspend")
    assert "suspended" in await rig.processed("suspend")
    push = copy.deepcopy(payload("push/with-new-branch"))
    push["installation"] = {"id": 957387}
    await rig.deliver("push", push, delivery_id="push-suspended")
    assert "suspended" in await rig.processed("push-suspended")
    assert await rig.pool.fetchval("SELECT count(*) FROM runs") == 0


async def test_a_broken_config_fails_the_check_run_with_the_parse_error(rig: GitHubRig) -> None:
    repo: FakeRepo = rig.state.repos[REPO.lower()]
    sha = add_commit(repo, "b" * 40, SPECS, config='targets = ["toaster"]\n', branch="broken")
    push = copy.deepcopy(payload("push/with-new-branch"))
    push.update(after=sha, ref="refs/heads/broken")
    await rig.deliver("push", push, delivery_id="broken")
    assert (await rig.processed("broken")).startswith("config error")
    (failed,) = await check_runs(rig, sha, count=1, status="completed")
    assert failed.conclusion == "failure" and failed.name == "qgjob"
    assert "unknown target 'toaster'" in failed.output["summary"]


async def pushed(rig: GitHubRig, sha: str, *, config: str, branch: str) -> str:
    """A push of a new commit with `config`; returns the delivery's outcome."""
    add_commit(rig.state.repos[REPO.lower()], sha, SPECS, config=config, branch=branch)
    push = copy.deepcopy(payload("push/with-new-branch"))
    push.update(after=sha, ref=f"refs/heads/{branch}")
    await rig.deliver("push", push, delivery_id=f"push-{branch}")
    return await rig.processed(f"push-{branch}")


async def test_a_run_past_its_deadline_is_cancelled_and_its_check_run_times_out(
    rig: GitHubRig, settings: Settings
) -> None:
    slow, quick, wrong = "d" * 40, "e" * 40, "f" * 40
    assert (await pushed(rig, slow, config="timeout_minutes = 5\n", branch="slow")).startswith(
        "run "
    )
    (queued,) = await check_runs(rig, slow, count=1, status="queued")
    minutes = await rig.pool.fetchval(
        "SELECT extract(epoch FROM deadline_at - created_at) / 60 FROM github_runs "
        "WHERE head_sha = $1", slow,
    )  # fmt: skip
    assert round(minutes) == 5
    # Five minutes later (the deadline moved, not the clock): nothing ran in time.
    await rig.pool.execute(
        "UPDATE github_runs SET deadline_at = now() - interval '1 second' WHERE head_sha = $1",
        slow,
    )
    (done,) = await check_runs(rig, slow, count=1, status="completed")
    assert done.id == queued.id and done.conclusion == "timed_out"
    reason = "the run took longer than its 5 minutes (timeout_minutes)"
    assert done.output["title"] == f"Timed out: {reason}"
    assert reason in done.output["summary"]
    statuses = await rig.pool.fetch(
        "SELECT DISTINCT j.status::text FROM jobs j JOIN runs r USING (run_id) "
        "WHERE r.head_sha = $1", slow,
    )  # fmt: skip
    assert [r["status"] for r in statuses] == ["CANCELLED"]

    # A run that finished in time is left as it ended when its deadline comes.
    assert (await pushed(rig, quick, config="timeout_minutes = 5\n", branch="quick")).startswith(
        "run "
    )
    assert await ScriptedWorker(rig.service_url, await worker_token(rig, settings)).run_until_idle()
    (success,) = await check_runs(rig, quick, count=1, status="completed")
    writes = len(success.bodies)
    await rig.pool.execute("UPDATE github_runs SET deadline_at = now() WHERE head_sha = $1", quick)
    await eventually(
        lambda: rig.pool.fetchval(
            "SELECT deadline_at IS NULL FROM github_runs WHERE head_sha = $1", quick
        ),
        what="the deadline checked",
    )
    (still,) = rig.state.check_runs_on(quick)
    assert still.conclusion == "success" and len(still.bodies) == writes
    assert await rig.pool.fetchval(
        "SELECT ended FROM github_runs WHERE head_sha = $1", quick
    ) is None  # fmt: skip

    # A timeout qgjob.toml cannot use fails the check run like any other config error.
    outcome = await pushed(rig, wrong, config="timeout_minutes = 0\n", branch="wrong")
    assert outcome.startswith("config error")
    (failed,) = await check_runs(rig, wrong, count=1, status="completed")
    assert failed.conclusion == "failure"
    assert (
        "timeout_minutes must be a whole number of minutes from 1 to 1440"
        in (failed.output["summary"])
    )


async def test_faults_on_github_converge_to_the_true_final_state(
    rig: GitHubRig, settings: Settings
) -> None:
    rig.state.fail(2, status=500, method="POST", path="/check-runs$")
    rig.state.secondary_rate_limit(retry_after_s=1, method="PATCH", path="/check-runs/")
    # Answers slower than the 1 s client timeout, which GitHub applies all the same.
    rig.state.slow(1.5, method="PATCH", path="/check-runs/")
    rig.state.slow(1.5, method="POST", path="/check-runs$")
    rig.state.fail(1, status=502, method="GET", path="/git/trees/")  # discovery retries too
    await rig.deliver("push", payload("push/with-new-branch"), delivery_id="faulty")
    await rig.processed("faulty")
    await check_runs(rig, PUSH_SHA, count=1, status="queued")
    await ScriptedWorker(
        rig.service_url, await worker_token(rig, settings),
        outcomes={"tests/flows/checkout.spec.ts": Outcome.FAILED},
    ).run_until_idle()  # fmt: skip
    await check_runs(rig, PUSH_SHA, count=1, status="completed")
    await eventually(
        lambda: rig.pool.fetchval("SELECT count(*) = 0 FROM github_outbox"),
        what="the outbox to drain",
    )
    (done,) = rig.state.check_runs_on(PUSH_SHA)  # retries never made a second one
    assert done.conclusion == "failure"
    # The timed-out PATCH reached GitHub late; its retry looked first and sent nothing twice.
    assert [a["path"] for a in done.annotations] == ["tests/flows/checkout.spec.ts"]
    statuses = [r.status for r in rig.state.requests if "/check-runs" in r.path]
    assert 500 in statuses and 403 in statuses


async def test_an_outage_of_github_delays_a_push_and_a_redelivery_recovers_one_given_up(
    settings: Settings, fake: tuple[FakeGitHub, str], app_key: tuple[bytes, bytes], pool: Any
) -> None:
    configured = dataclasses.replace(
        github_settings(settings, api_url=fake[1], private_key=app_key[0]),
        github_retry_for_s=10.0,  # a day by default
    )
    async with serve_in_loop(create_app(configured)) as url:
        rig = GitHubRig(fake[0], url, pool, state_url=fake[1])
        # Within the retry window, the outage only delays the push.
        brief = rig.state.fail(2, status=503, method="GET", path="/contents/")
        await rig.deliver("push", payload("push/with-new-branch"), delivery_id="brief")
        assert (await rig.processed("brief")).startswith("run ")
        assert brief.times == 0  # both failures were met, and retried past
        # Past it, the delivery ends failed, and GitHub's Redeliver processes it afresh.
        outage = rig.state.fail(1000, status=503, method="GET", path="/contents/")
        pushed = copy.deepcopy(payload("push/with-new-branch"))
        pushed.update(after=PR_SHA, ref="refs/heads/changes")
        await rig.deliver("push", pushed, delivery_id="outage")
        given_up = await rig.processed("outage", timeout_s=60)
        assert given_up.startswith("failed after "), given_up
        assert await rig.pool.fetchval("SELECT count(*) FROM runs WHERE head_sha = $1", PR_SHA) == 0
        outage.times = 0  # GitHub is back
        again = await rig.deliver("push", pushed, delivery_id="outage")
        assert again.status_code == 202 and again.json()["status"] == "queued"
        assert (await rig.processed("outage")).startswith("run ")
        # A delivery that was processed stays processed: its redelivery is a duplicate.
        repeat = await rig.deliver("push", pushed, delivery_id="outage")
        assert repeat.json()["status"] == "duplicate"
        assert await rig.pool.fetchval("SELECT count(*) FROM runs WHERE head_sha = $1", PR_SHA) == 1


async def test_a_restart_mid_outbox_loses_nothing(
    settings: Settings, fake: tuple[FakeGitHub, str], app_key: tuple[bytes, bytes], pool: Any
) -> None:
    state, api_url = fake
    configured = github_settings(settings, api_url=api_url, private_key=app_key[0])
    state.fail(1000, status=503, method="POST", path="/check-runs$")
    async with serve_in_loop(create_app(configured)) as url:
        rig = GitHubRig(state, url, pool)
        await rig.deliver("push", payload("push/with-new-branch"), delivery_id="before")
        await rig.processed("before")
        await eventually(
            lambda: pool.fetchval("SELECT attempts > 0 FROM github_outbox"), what="a failed write"
        )
    assert state.check_runs_on(PUSH_SHA) == []
    state.faults.clear()
    async with serve_in_loop(create_app(configured)) as url:
        rig = GitHubRig(state, url, pool)
        (queued,) = await check_runs(rig, PUSH_SHA, count=1, status="queued")
        await ScriptedWorker(url, await worker_token(rig, settings)).run_until_idle()
        (done,) = await check_runs(rig, PUSH_SHA, count=1, status="completed")
    assert done.id == queued.id and done.conclusion == "success"


async def test_a_worker_gets_a_read_only_token_for_the_one_repository(
    rig: GitHubRig, settings: Settings, app_key: tuple[bytes, bytes], fake: tuple[FakeGitHub, str]
) -> None:
    await rig.deliver("push", payload("push/with-new-branch"), delivery_id="push")
    await rig.processed("push")
    configured = github_settings(settings, api_url=fake[1], private_key=app_key[0])
    async with GitHubClient(
        app_id=APP_ID, private_key=app_key[0], base_url=fake[1], timeout_s=5
    ) as client:
        app = GitHubApp(
            settings=configured, pool=rig.pool, client=client,
            details_url=default_details_url("https://q.example"),
        )  # fmt: skip
        token = await source_token(app, org_id=ORG, repo=REPO)
        assert token is not None and token.repositories == ("Hello-World",)
        assert dict(token.permissions) == {"contents": "read"}
        assert await source_token(app, org_id=ORG, repo=REPO) is token  # cached
        assert await source_token(app, org_id="someone-else", repo=REPO) is None
    async with httpx.AsyncClient(base_url=fake[1], follow_redirects=True) as http:
        tarball = await http.get(
            f"/repos/{REPO}/tarball/{PUSH_SHA}",
            headers={"Authorization": f"Bearer {token.token.reveal()}"},
        )
    assert tarball.status_code == 200 and tarball.content[:2] == b"\x1f\x8b"  # gzip
    minted = [r for r in rig.state.requests if r.path.endswith("/access_tokens")]
    assert {"repositories": ["Hello-World"], "permissions": {"contents": "read"}} in [
        r.body for r in minted
    ]


async def test_two_replicas_write_serially_and_spaced_per_installation(
    settings: Settings, fake: tuple[FakeGitHub, str], app_key: tuple[bytes, bytes], pool: Any
) -> None:
    state, api_url = fake
    repo: FakeRepo = state.repos[REPO.lower()]
    config = 'targets = ["emulator", "device", "browserstack"]\n'
    sha = add_commit(repo, "c" * 40, SPECS, config=config, branch="three")
    configured = dataclasses.replace(
        github_settings(settings, api_url=api_url, private_key=app_key[0]),
        github_write_spacing_s=0.2,
    )
    state.slow(0.1, times=100, path="/check-runs")  # widen every write's window
    push = copy.deepcopy(payload("push/with-new-branch"))
    push.update(after=sha, ref="refs/heads/three")
    suite = copy.deepcopy(payload("check_suite/requested"))
    suite["check_suite"].update(head_sha=sha, head_branch="three")
    suite["check_suite"]["app"]["id"] = APP_ID
    suite["repository"] = repo_payload()
    suite["installation"] = {"id": 1}
    async with (
        serve_in_loop(create_app(configured)) as one,
        serve_in_loop(create_app(configured)) as two,
    ):
        await GitHubRig(state, one, pool).deliver("push", push, delivery_id="to-one")
        await GitHubRig(state, two, pool).deliver("check_suite", suite, delivery_id="to-two")
        rig = GitHubRig(state, one, pool)
        outcomes = {await rig.processed("to-one"), await rig.processed("to-two")}
        assert sum(o.startswith("run ") for o in outcomes) == 1, outcomes  # one run, not two
        await check_runs(rig, sha, count=3, status="queued")
    assert len(state.check_runs_on(sha)) == 3
    assert state.max_writes_in_flight == 1
    gaps = [b - a for a, b in zip(state.write_times, state.write_times[1:], strict=False)]
    assert min(gaps) >= 0.2, gaps


async def test_past_50_failures_the_annotations_follow_in_further_updates(
    rig: GitHubRig, settings: Settings
) -> None:
    repo: FakeRepo = rig.state.repos[REPO.lower()]
    many = {f"tests/many/s{n:02d}.spec.ts": "test()\n" for n in range(60)}
    sha = add_commit(repo, "d" * 40, many, config=CONFIG, branch="many")
    push = copy.deepcopy(payload("push/with-new-branch"))
    push.update(after=sha, ref="refs/heads/many")
    await rig.deliver("push", push, delivery_id="many")
    await rig.processed("many")
    await check_runs(rig, sha, count=1, status="queued")
    await ScriptedWorker(
        rig.service_url, await worker_token(rig, settings),
        outcomes=dict.fromkeys(many, Outcome.FAILED),
    ).run_until_idle()  # fmt: skip
    (done,) = await check_runs(rig, sha, count=1, status="completed")
    await eventually(
        lambda: rig.pool.fetchval("SELECT count(*) = 0 FROM github_outbox"),
        what="the outbox to drain",
    )
    assert sorted(a["path"] for a in done.annotations) == sorted(many)
    sizes = [len((b.get("output") or {}).get("annotations") or []) for b in done.bodies]
    assert [n for n in sizes if n] == [50, 10]
    assert done.conclusion == "failure"


async def test_a_delivery_acknowledged_before_a_restart_is_processed_after_it(
    settings: Settings, fake: tuple[FakeGitHub, str], app_key: tuple[bytes, bytes], pool: Any
) -> None:
    state, api_url = fake
    configured = github_settings(settings, api_url=api_url, private_key=app_key[0])
    state.fail(1000, status=503, method="GET", path="/contents/")  # GitHub down for reads
    async with serve_in_loop(create_app(configured)) as url:
        answer = await GitHubRig(state, url, pool).deliver(
            "push", payload("push/with-new-branch"), delivery_id="kept"
        )
        assert answer.status_code == 202
        await eventually(
            lambda: pool.fetchval(
                "SELECT attempts > 0 FROM webhook_deliveries WHERE delivery_id = 'kept'"
            ),
            what="a first, failed try",
        )
    assert await pool.fetchval("SELECT count(*) FROM runs") == 0
    state.faults.clear()
    async with serve_in_loop(create_app(configured)) as url:
        rig = GitHubRig(state, url, pool)
        assert (await rig.processed("kept")).startswith("run ")
        await check_runs(rig, PUSH_SHA, count=1, status="queued")


async def test_processed_deliveries_are_forgotten_past_the_retention_window(
    settings: Settings, fake: tuple[FakeGitHub, str], app_key: tuple[bytes, bytes], pool: Any
) -> None:
    state, api_url = fake
    configured = dataclasses.replace(
        github_settings(settings, api_url=api_url, private_key=app_key[0]),
        github_delivery_retention_days=14,
        github_retention_interval_s=0.1,
    )
    async with serve_in_loop(create_app(configured)) as url:
        rig = GitHubRig(state, url, pool)
        for delivery_id in ("old", "recent"):
            await rig.deliver("ping", {"zen": "Keep it simple.", "hook_id": 1},
                              delivery_id=delivery_id)  # fmt: skip
        await pool.execute(
            "UPDATE webhook_deliveries SET processed_at = now() - interval '15 days' "
            "WHERE delivery_id = 'old'"
        )

        async def forgotten() -> bool:
            ids = await pool.fetch("SELECT delivery_id FROM webhook_deliveries")
            return [r["delivery_id"] for r in ids] == ["recent"]

        await eventually(forgotten, what="the sweep of the 15-day-old delivery")
        again = await rig.deliver("ping", {"zen": "Keep it simple."}, delivery_id="recent")
        assert again.json()["status"] == "duplicate"
