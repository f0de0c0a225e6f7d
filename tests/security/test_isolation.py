"""DESIGN §3.8: no org can see or change another org's runs, jobs, builds or workers.

Org "alpha" has a run, a worker holding a group, and a finished job with a log. Org
"bravo" then calls every route of the route table (app/api/routes.py) aimed at alpha's
things, with each of its roles (submitter, admin, worker). Every answer must be 403 or 404
or, for a listing, a page with none of alpha's ids; and afterwards alpha's rows are exactly
as they were. `test_every_route_has_an_isolation_case` fails when a route is added without
a case here, so a new route cannot be forgotten.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import pytest

from app.api.routes import ENDPOINTS
from qgjob.settings import Settings
from tests.conftest import Api

A, B = "alpha", "bravo"
ROLES = ("submitter", "admin", "worker")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Alpha's lease must outlive the test: only bravo may be the one changing things.
    return dataclasses.replace(settings, lease_ttl_s=120.0)


@dataclasses.dataclass
class Alpha:
    """Alpha's things, and the ids that must never show up in bravo's answers."""

    run_id: str
    job_id: str  # finished, with a log
    worker_id: str
    group_id: str
    lease_token: int
    sha256: str  # of alpha's build, uploaded to BrowserStack by alpha's worker
    bs_lease_id: str  # alpha's BrowserStack upload lease, still held
    token_id: str  # one of alpha's API tokens

    def ids(self) -> set[str]:
        return {
            self.run_id,
            self.job_id,
            self.worker_id,
            self.group_id,
            self.bs_lease_id,
            self.token_id,
        }


BS_ACCOUNT = "alpha-account"


Case = Callable[[httpx.AsyncClient, str, Alpha], Awaitable[httpx.Response]]


def _path(template: str, alpha: Alpha) -> str:
    return template.format(
        job_id=alpha.job_id,
        run_id=alpha.run_id,
        worker_id=alpha.worker_id,
        group_id=alpha.group_id,
        sha256=alpha.sha256,
        token_id=alpha.token_id,
    )


async def _get(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    return await client.get(_path(path, alpha))


async def _post_empty(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    return await client.post(_path(path, alpha))


async def _list_alpha_jobs(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    return await client.get(path, params={"org_id": A, "run_id": alpha.run_id})


async def _submit_job(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    body = {"org_id": A, "app_version_id": "v1", "test_path": "tests/planted.ts"}
    return await client.post(path, json=body)


async def _submit_run(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    body = {"org_id": A, "app_version_id": "v1", "tests": ["tests/planted.ts"]}
    return await client.post(path, json=body)


async def _token_for_alpha(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    return await client.post(path, json={"org_id": A, "role": "admin"})


async def _list_alpha_tokens(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    return await client.get(path, params={"org_id": A})


async def _register(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    # A worker's org comes from its token: bravo's worker is bravo's. The check is that it
    # then sees none of alpha's work (see _claim_with_own_worker below).
    body = {"name": "intruder", "target_types": ["emulator"], "capacity": 1}
    return await client.post(path, json=body)


async def _claim(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    return await client.post(_path(path, alpha), json={"wait_s": 0})


async def _status(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    return await client.post(_path(path, alpha), json={"status": "offline"})


async def _heartbeat(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    return await client.post(_path(path, alpha), json={"lease_token": alpha.lease_token})


async def _events(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    event = {"type": "job_finished", "job_id": alpha.job_id, "outcome": "failed", "duration_ms": 1}
    body = {"lease_token": alpha.lease_token, "events": [event]}
    return await client.post(_path(path, alpha), json=body)


async def _release(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    body = {"lease_token": alpha.lease_token, "reason": "intrusion", "error": "x"}
    return await client.post(_path(path, alpha), json=body)


async def _upload_for_alpha(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    query = {"org_id": A, "app_version_id": "v1", "filename": "planted.apk"}
    return await client.post(path, params=query, content=b"planted build")


async def _read_alpha_build(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    return await client.get(path.format(app_version_id="v1"), params={"org_id": A})


_BS = {"org_id": A, "account": BS_ACCOUNT}


async def _bs_get(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    return await client.get(_path(path, alpha), params=_BS)


async def _bs_lease(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    return await client.post(_path(path, alpha), json={**_BS, "replaces": "bs://alpha-secret"})


async def _bs_store(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    return await client.put(_path(path, alpha), json={**_BS, "app_url": "bs://planted"})


async def _bs_give_up(client: httpx.AsyncClient, path: str, alpha: Alpha) -> httpx.Response:
    return await client.delete(_path(path, alpha), params={**_BS, "lease_id": alpha.bs_lease_id})


CASES: dict[tuple[str, str], Case] = {
    ("POST", "/v1/jobs"): _submit_job,
    ("GET", "/v1/jobs"): _list_alpha_jobs,
    ("GET", "/v1/jobs/{job_id}"): _get,
    ("POST", "/v1/jobs/{job_id}/cancel"): _post_empty,
    ("POST", "/v1/runs"): _submit_run,
    ("GET", "/v1/runs/{run_id}"): _get,
    ("POST", "/v1/runs/{run_id}/cancel"): _post_empty,
    ("POST", "/v1/runs/{run_id}/rerun-failed"): _post_empty,
    ("GET", "/v1/stats"): _get,
    ("POST", "/v1/tokens"): _token_for_alpha,
    ("GET", "/v1/tokens"): _list_alpha_tokens,
    ("POST", "/v1/tokens/{token_id}/revoke"): _post_empty,
    ("GET", "/v1/jobs/{job_id}/log"): _get,
    ("POST", "/v1/workers"): _register,
    ("GET", "/v1/workers"): _get,
    ("POST", "/v1/workers/{worker_id}/claim"): _claim,
    ("POST", "/v1/workers/{worker_id}/status"): _status,
    ("POST", "/v1/groups/{group_id}/heartbeat"): _heartbeat,
    ("POST", "/v1/groups/{group_id}/events"): _events,
    ("POST", "/v1/groups/{group_id}/release"): _release,
    ("POST", "/v1/builds"): _upload_for_alpha,
    ("GET", "/v1/builds/{app_version_id}"): _read_alpha_build,
    ("GET", "/v1/builds/{app_version_id}/download"): _read_alpha_build,
    ("GET", "/v1/runs/{run_id}/junit"): _get,
    ("GET", "/metrics"): _get,  # fleet-wide only: an org's token gets 403
    ("GET", "/v1/builds/by-sha256/{sha256}/browserstack"): _bs_get,
    ("POST", "/v1/builds/by-sha256/{sha256}/browserstack/lease"): _bs_lease,
    ("PUT", "/v1/builds/by-sha256/{sha256}/browserstack"): _bs_store,
    ("DELETE", "/v1/builds/by-sha256/{sha256}/browserstack/lease"): _bs_give_up,
    # The seed's paths.
    ("POST", "/submit-job"): _submit_job,
    ("GET", "/status/{job_id}"): _get,
    ("POST", "/workers"): _register,
}
PROTECTED = [(e.method, e.path) for e in ENDPOINTS if not e.public]


def test_every_route_has_an_isolation_case() -> None:
    missing = [f"{m} {p}" for m, p in PROTECTED if (m, p) not in CASES]
    assert not missing, f"add an org-isolation case to {__name__} for: {missing}"
    stale = [f"{m} {p}" for m, p in CASES if (m, p) not in PROTECTED]
    assert not stale, f"cases for routes that no longer exist: {stale}"


async def _alpha(api: Api) -> Alpha:
    async with api.client(await api.token(A)) as submitter:
        run = (
            await submitter.post(
                "/v1/runs",
                json={"org_id": A, "app_version_id": "v1", "tests": ["t/a.ts", "t/b.ts"]},
            )
        ).json()
    async with api.client(await api.token(A)) as submitter:
        uploaded = await submitter.post(
            "/v1/builds",
            params={"org_id": A, "app_version_id": "v1", "filename": "alpha.apk"},
            content=b"alpha's secret build",
        )
        assert uploaded.status_code == 201, uploaded.text
    async with api.client(await api.token(A, "worker")) as worker:
        registered = await worker.post(
            "/v1/workers", json={"name": "alpha-1", "target_types": ["emulator"], "capacity": 1}
        )
        worker_id = registered.json()["worker_id"]
        group = (await worker.post(f"/v1/workers/{worker_id}/claim", json={"wait_s": 5})).json()
        done = group["jobs"][0]["job_id"]
        event = {
            "type": "job_finished",
            "job_id": done,
            "outcome": "passed",
            "duration_ms": 5,
            "log": "alpha's secret log",
        }
        answer = await worker.post(
            f"/v1/groups/{group['group_id']}/events",
            json={"lease_token": group["lease_token"], "events": [event]},
        )
        assert answer.status_code == 200, answer.text
        sha256 = uploaded.json()["sha256"]
        bs = f"/v1/builds/by-sha256/{sha256}/browserstack"
        first = await worker.post(bs + "/lease", json={"org_id": A, "account": BS_ACCOUNT})
        stored = await worker.put(
            bs,
            json={
                "org_id": A,
                "account": BS_ACCOUNT,
                "app_url": "bs://alpha-secret-app",
                "lease_id": first.json()["lease_id"],
            },
        )
        assert stored.status_code == 200, stored.text
        # A second upload lease, taken as if the stored url had expired; alpha still holds it.
        again = await worker.post(
            bs + "/lease",
            json={"org_id": A, "account": BS_ACCOUNT, "replaces": "bs://alpha-secret-app"},
        )
        assert again.json()["state"] == "granted", again.text
    return Alpha(
        run_id=run["run_id"],
        job_id=done,
        worker_id=worker_id,
        group_id=group["group_id"],
        lease_token=group["lease_token"],
        sha256=sha256,
        bs_lease_id=again.json()["lease_id"],
        token_id=await _a_token_of_alpha(api),
    )


async def _a_token_of_alpha(api: Api) -> str:
    async with api.client() as fleet:  # the local admin token sees every org's tokens
        listed = (await fleet.get("/v1/tokens", params={"org_id": A})).json()["tokens"]
    assert listed and all(t["org_id"] == A for t in listed)
    token_id: str = listed[0]["token_id"]
    return token_id


async def _alpha_rows(pool: asyncpg.Pool) -> list[str]:
    """Everything alpha has, as text: it must not change while bravo tries."""
    parts = []
    for table, order in (
        ("runs", "run_id"),
        ("jobs", "job_id"),
        ("groups", "group_id"),
        ("workers", "worker_id"),
        ("api_tokens", "token_id"),
        ("builds", "app_version_id"),
        ("browserstack_apps", "sha256"),
    ):
        rows = await pool.fetch(f"SELECT * FROM {table} WHERE org_id = $1 ORDER BY {order}", A)
        parts += [table + " " + json.dumps(dict(r), default=str, sort_keys=True) for r in rows]
    attempts = await pool.fetch(
        "SELECT a.* FROM job_attempts a JOIN jobs j USING (job_id) WHERE j.org_id = $1 "
        "ORDER BY a.job_id, a.attempt",
        A,
    )
    parts += ["attempt " + json.dumps(dict(r), default=str, sort_keys=True) for r in attempts]
    return parts


async def test_another_org_can_neither_see_nor_change_anything(
    api: Api, pool: asyncpg.Pool
) -> None:
    alpha = await _alpha(api)
    before = await _alpha_rows(pool)
    bravo_tokens = {role: await api.token(B, role) for role in ROLES}
    problems: list[str] = []
    for method, path in PROTECTED:
        for role, token in bravo_tokens.items():
            async with api.client(token) as bravo:
                answer = await CASES[(method, path)](bravo, path, alpha)
            problems += _judge(answer, f"{role} of {B}: {method} {path}", method, path, alpha)
    assert problems == []
    after = await _alpha_rows(pool)
    changed = [f"{old}\n  now {new}" for old, new in zip(before, after, strict=True) if old != new]
    assert not changed, f"{B} changed {A}'s rows:\n" + "\n".join(changed)


# Routes where a 2xx is right, because the answer is bravo's own business (its stats, its
# workers, its own new worker); it must still hold nothing of alpha's. (Listing jobs with
# `org_id` naming alpha is refused: an empty page would say "alpha has no such jobs".)
OWN_BUSINESS = {
    ("GET", "/v1/stats"),
    ("GET", "/v1/workers"),
    ("POST", "/v1/workers"),
    ("POST", "/workers"),
}


def _judge(answer: httpx.Response, who: str, method: str, path: str, alpha: Alpha) -> list[str]:
    asked = str(answer.request.url) + answer.request.content.decode()
    shown = answer.text
    leaked = [i for i in alpha.ids() if i in shown and i not in asked]
    problems = []
    if leaked or any(secret in shown for secret in ("alpha's secret", "alpha.apk", "bs://alpha")):
        problems.append(f"{who} saw alpha's {leaked or 'log'}: {shown[:200]}")
    if answer.status_code < 400 and (method, path) not in OWN_BUSINESS:
        problems.append(f"{who} got {answer.status_code}: {shown[:200]}")
    if answer.status_code >= 400 and answer.status_code not in (403, 404):
        problems.append(f"{who} got {answer.status_code} (expected 403 or 404): {shown[:200]}")
    return problems


async def test_a_worker_of_another_org_gets_none_of_its_work(api: Api) -> None:
    async with api.client(await api.token(A)) as submitter:
        answer = await submitter.post(
            "/v1/jobs", json={"org_id": A, "app_version_id": "v1", "test_path": "t/a.ts"}
        )
        assert answer.status_code == 201
    async with api.client(await api.token(B, "worker")) as worker:
        registered = await worker.post(
            "/v1/workers", json={"name": "bravo-1", "target_types": ["emulator"], "capacity": 1}
        )
        worker_id = registered.json()["worker_id"]
        claimed = await worker.post(f"/v1/workers/{worker_id}/claim", json={"wait_s": 0.5})
    assert claimed.status_code == 204, claimed.text


async def test_a_shared_worker_shows_each_org_only_its_own_groups_and_builds(api: Api) -> None:
    """A worker registered with an admin token serves every org; what it is doing for alpha
    (its group, the alpha build it holds ready) is none of bravo's business."""
    async with api.client(await api.token(A)) as submitter:
        job = {"org_id": A, "app_version_id": "alpha-secret-7", "test_path": "t/a.ts"}
        assert (await submitter.post("/v1/jobs", json=job)).status_code == 201
        build = await submitter.post(
            "/v1/builds",
            json={
                "org_id": A,
                "app_version_id": "alpha-secret-7",
                "filename": "alpha.apk",
                "url": "https://cdn.example/alpha.apk",
                "sha256": "a" * 64,
            },
        )
        assert build.status_code in (200, 201), build.text
    async with api.client() as fleet:  # the admin token: a shared worker
        registered = await fleet.post(
            "/v1/workers", json={"name": "shared-1", "target_types": ["emulator"], "capacity": 1}
        )
        worker_id = registered.json()["worker_id"]
        claimed = await fleet.post(
            f"/v1/workers/{worker_id}/claim",
            json={"wait_s": 5, "ready_builds": ["alpha-secret-7"]},
        )
        assert claimed.status_code == 200, claimed.text
        group_id = claimed.json()["group_id"]
    from tests.support.web import signed_in

    seen: dict[str, dict[str, object]] = {}
    for org in (A, B):
        token = await api.token(org)
        async with api.client(token) as viewer:
            (worker,) = (await viewer.get("/v1/workers")).json()["workers"]
        async with signed_in(api, token) as browser:
            page = await browser.get("/ui/workers")
        seen[org] = worker
        assert page.status_code == 200
        if org == B:
            assert "alpha-secret-7" not in page.text and group_id not in page.text
    assert seen[A]["ready_builds"] == ["alpha-secret-7"]
    assert [g["group_id"] for g in seen[A]["current_groups"]] == [group_id]  # type: ignore
    assert seen[B]["ready_builds"] == [] and seen[B]["current_groups"] == []
    assert seen[B]["status"] == "busy"  # busy it may say, not with what


# --- the web pages ------------------------------------------------------------------------

PAGE_OWN_BUSINESS = {  # pages about the signed-in org itself, or about signing in and out
    ("GET", "/ui"),
    ("GET", "/ui/workers"),
    ("GET", "/ui/login"),
    ("POST", "/ui/login"),
    ("POST", "/ui/logout"),
}


def test_every_page_has_an_isolation_case() -> None:
    from app.web.routes import _ROUTES

    pages = {(m, p) for m, p, _ in _ROUTES}
    missing = pages - PAGE_OWN_BUSINESS - {(m, p) for m, p in _pages_about_alpha()}
    assert not missing, f"add a page isolation case for: {sorted(missing)}"


def _pages_about_alpha() -> list[tuple[str, str]]:
    from app.web.routes import _ROUTES

    return [(m, p) for m, p, _ in _ROUTES if "{" in p]


async def test_another_org_sees_none_of_it_in_the_pages(api: Api, pool: asyncpg.Pool) -> None:
    from tests.support.web import csrf_of, signed_in

    alpha = await _alpha(api)
    before = await _alpha_rows(pool)
    problems: list[str] = []
    async with signed_in(api, await api.token(B, "admin")) as bravo:
        home = await bravo.get("/ui")
        csrf = csrf_of(home.text)
        for method, path in _pages_about_alpha():
            url = _path(path, alpha)
            if method == "GET":
                answer = await bravo.get(url)
            else:
                answer = await bravo.post(url, data={"csrf_token": csrf})
            problems += _judge(answer, f"admin of {B}: {method} {path}", method, path, alpha)
            if answer.status_code != 404:
                problems.append(f"{method} {path}: {answer.status_code}, expected the 404 page")
        for path in ("/ui", "/ui/workers"):
            answer = await bravo.get(path)
            problems += _judge(answer, f"admin of {B}: GET {path}", "GET", "/v1/workers", alpha)
    assert problems == []
    after = await _alpha_rows(pool)
    assert after == before, f"{B} changed {A}'s rows through the pages"
