"""The web pages over real HTTP: sign-in and sessions, org isolation, read-only links, CSRF,
live fragments, and "Re-run failed" (page and API). The browser tests drive the same
pages in Chromium; these check what a browser cannot show (cookie flags, status codes)."""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import asyncpg
import httpx
import pytest

from app.links import run_details_url, sign_run_link
from app.main import create_app
from app.signing import signer_for
from qgjob.settings import Settings
from qgjob.types import Outcome
from tests.conftest import Api
from tests.support.scheduling import whole_keys
from tests.support.servers import serve_in_loop
from tests.support.web import csrf_of, play_group, signed_in, submit


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A claim takes a key whole, as these tests expect (tests/support/scheduling.py)."""
    return whole_keys(settings)


ORG = "acme"
SPECS = ["tests/login.spec.ts", "tests/cart.spec.ts", "tests/pay.spec.ts"]


async def finished_run(api: Api) -> dict[str, object]:
    """A run of three specs on one worker: one passed, one failed, one still running."""
    token = await api.token(ORG)
    run = await submit(api, token, ORG, SPECS)
    outcomes = {SPECS[0]: Outcome.PASSED, SPECS[1]: Outcome.FAILED, SPECS[2]: None}
    await play_group(
        api,
        await api.token(ORG, "worker"),
        outcomes,
        artifacts={"video": "https://cdn.example.test/v.mp4", "trace": "javascript:alert(1)"},
    )
    return {"run": run, "token": token}


async def test_pages_need_a_session(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        answer = await client.get("/ui/workers")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/login?next=%2Fui%2Fworkers"
        form = await client.get("/ui/login")
        assert form.status_code == 200
        assert '<label for="token">API token</label>' in form.text
        assert 'name="token"' in form.text


async def test_login_sets_a_safe_session_cookie(api: Api) -> None:
    token = await api.token(ORG)
    async with httpx.AsyncClient(base_url=api.url) as client:
        wrong = await client.post("/ui/login", data={"token": "qgj_nope"})
        assert wrong.status_code == 401
        assert "not valid" in wrong.text
        assert "set-cookie" not in wrong.headers
        answer = await client.post(
            "/ui/login", data={"token": token, "next": "https://evil.example/"}
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui"  # never off-site
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "path=/ui" in cookie
        assert "secure" not in cookie  # plain http here
        assert token not in answer.headers["set-cookie"]
        page = await client.get("/ui")
        assert page.status_code == 200
        assert "acme · submitter" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")


async def test_cookie_is_secure_when_served_over_https(api: Api) -> None:
    settings = dataclasses.replace(api.settings, public_url="https://qgjob.example.com")
    token = await api.token(ORG)
    async with serve_in_loop(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as c:
        answer = await c.post("/ui/login", data={"token": token})
        # Behind a proxy the Host header may be an internal name: the public origin is ours.
        proxied = await c.post(
            "/ui/login", data={"token": token}, headers={"Origin": "https://qgjob.example.com"}
        )
        foreign = await c.post(
            "/ui/login", data={"token": token}, headers={"Origin": "https://evil.example"}
        )
    assert "secure" in answer.headers["set-cookie"].lower()
    assert proxied.status_code == 303
    assert foreign.status_code == 403
    assert "set-cookie" not in foreign.headers


async def keep_lease(pool: asyncpg.Pool, run_id: object) -> None:
    """`finished_run`'s third job runs under a 2 s lease that nobody renews: keep the reaper
    from changing the run while a test compares answers about it."""
    await pool.execute(
        "UPDATE groups SET lease_expires_at = now() + interval '1 hour' WHERE group_id IN "
        "(SELECT group_id FROM jobs WHERE run_id = $1)",
        run_id,
    )


async def test_run_page_shows_groups_jobs_and_links(api: Api) -> None:
    made = await finished_run(api)
    run_id = made["run"]["run_id"]  # type: ignore[index]
    async with signed_in(api, str(made["token"])) as client:
        page = await client.get(f"/ui/runs/{run_id}")
    assert page.status_code == 200
    html = page.text
    for spec in SPECS:
        assert spec in html
    assert "web-worker" in html and "setup 1.5 s" in html
    assert "tests/cart.spec.ts: expected 1, got 2" in html
    assert 'href="https://cdn.example.test/v.mp4"' in html
    assert "javascript:" not in html  # only http(s) artifacts become links
    assert 'id="cancel-run"' in html and 'id="rerun-failed"' in html
    # A group with a failed spec does not look all well; its status is in plain words
    # (LEASED: on a worker); groups are told apart.
    assert 'class="badge s-leased s-failed">ON A WORKER · 1 failed<' in html
    assert re.search(r"emulator · app-1 · group [0-9a-f]{8} <span", html)


async def test_another_org_sees_nothing(api: Api) -> None:
    made = await finished_run(api)
    run = made["run"]
    run_id = run["run_id"]  # type: ignore[index]
    job_id = run["jobs"][0]["job_id"]  # type: ignore[index]
    async with signed_in(api, await api.token("other-org")) as client:
        overview = await client.get("/ui")
        assert run_id not in overview.text
        for path in (f"/ui/runs/{run_id}", f"/ui/jobs/{job_id}", f"/ui/jobs/{job_id}/log"):
            answer = await client.get(path)
            assert answer.status_code == 404, path
            assert "tests/login.spec.ts" not in answer.text
        workers = await client.get("/ui/workers")
        assert "web-worker" not in workers.text  # an org's own workers only
        csrf = csrf_of(overview.text)
        cancel = await client.post(f"/ui/runs/{run_id}/cancel", data={"csrf_token": csrf})
        assert cancel.status_code == 404


async def test_buttons_refuse_a_missing_or_wrong_csrf_token(api: Api, pool: asyncpg.Pool) -> None:
    made = await finished_run(api)
    run_id = made["run"]["run_id"]  # type: ignore[index]
    async with signed_in(api, str(made["token"])) as client:
        page = await client.get(f"/ui/runs/{run_id}")
        for data in ({}, {"csrf_token": "forged"}):
            refused = await client.post(f"/ui/runs/{run_id}/cancel", data=data)
            assert refused.status_code == 403
            assert "security token" in refused.text
        cross_site = await client.post(
            f"/ui/runs/{run_id}/cancel",
            data={"csrf_token": csrf_of(page.text)},
            headers={"Origin": "https://evil.example"},
        )
        assert cross_site.status_code == 403
        live = await pool.fetchval(
            "SELECT count(*) FROM jobs WHERE run_id = $1 AND status = 'RUNNING'", run_id
        )
        assert live == 1  # nothing was cancelled
        done = await client.post(
            f"/ui/runs/{run_id}/cancel", data={"csrf_token": csrf_of(page.text)}
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/ui/runs/{run_id}?notice=cancelled"
    live = await pool.fetchval(
        "SELECT count(*) FROM jobs WHERE run_id = $1 AND status = 'RUNNING'", run_id
    )
    assert live == 0


async def test_read_only_link_opens_one_run_and_no_button(api: Api) -> None:
    made = await finished_run(api)
    run = made["run"]
    run_id = run["run_id"]  # type: ignore[index]
    url = run_details_url(api.settings, ORG, run_id)
    view = parse_qs(urlsplit(url).query)["view"][0]
    other = await submit(api, str(made["token"]), ORG, ["tests/other.spec.ts"])
    async with httpx.AsyncClient(base_url=api.url) as client:
        page = await client.get(f"/ui/runs/{run_id}", params={"view": view})
        assert page.status_code == 200
        assert "tests/cart.spec.ts" in page.text
        assert "Read-only link" in page.text
        assert "<form" not in page.text  # no buttons, no sign-out
        job_id = run["jobs"][1]["job_id"]  # type: ignore[index]
        assert f"/ui/jobs/{job_id}?view=" in page.text  # the link carries its token along
        job = await client.get(f"/ui/jobs/{job_id}", params={"view": view})
        assert job.status_code == 200
        log = await client.get(f"/ui/jobs/{job_id}/log", params={"view": view})
        assert log.text == "log of tests/cart.spec.ts\n"  # written in colour, shown plain
        elsewhere = await client.get(f"/ui/runs/{other['run_id']}", params={"view": view})
        assert elsewhere.status_code == 404
        # Lost on a link, the way back is to its run, not to a sign-in form.
        assert f'<a href="/ui/runs/{run_id}?view=' in elsewhere.text
        assert "Back to the run" in elsewhere.text and "Sign in" not in elsewhere.text
        workers = await client.get("/ui/workers", params={"view": view})
        assert workers.status_code == 303
        assert workers.headers["location"].startswith(f"/ui/runs/{run_id}?view=")
        pressed = await client.post(
            f"/ui/runs/{run_id}/cancel", params={"view": view}, data={"csrf_token": "x"}
        )
        assert pressed.status_code == 403


async def test_read_only_link_expires_and_cannot_be_altered(api: Api) -> None:
    made = await finished_run(api)
    run_id = made["run"]["run_id"]  # type: ignore[index]
    signer = signer_for(api.settings)
    expired = sign_run_link(signer, ORG, run_id, expires_at=time.time() - 1)
    forged = sign_run_link(signer, "other-org", run_id, expires_at=time.time() + 60)
    payload, _, mac = forged.partition(".")
    genuine = sign_run_link(signer, ORG, run_id, expires_at=time.time() + 60)
    tampered = genuine.partition(".")[0][:-2] + "xx." + genuine.partition(".")[2]
    async with httpx.AsyncClient(base_url=api.url) as client:
        answer = await client.get(f"/ui/runs/{run_id}", params={"view": expired})
        assert answer.status_code == 403
        assert "expired" in answer.text
        for bad in (tampered, f"{payload}.{mac[:-2]}AA", "garbage"):
            refused = await client.get(f"/ui/runs/{run_id}", params={"view": bad})
            assert refused.status_code == 403
            assert "not valid" in refused.text
        # Genuine but for another org: the run is not that org's, so there is nothing to see.
        assert (await client.get(f"/ui/runs/{run_id}", params={"view": forged})).status_code == 404


async def test_revoking_the_token_ends_the_session(api: Api, pool: asyncpg.Pool) -> None:
    token = await api.token(ORG)
    async with signed_in(api, token) as client:
        assert (await client.get("/ui")).status_code == 200
        await pool.execute("UPDATE api_tokens SET revoked_at = now() WHERE org_id = $1", ORG)
        assert (await client.get("/ui")).status_code == 303


async def test_live_fragment_answers_304_until_something_changes(
    api: Api, pool: asyncpg.Pool
) -> None:
    made = await finished_run(api)
    run_id = made["run"]["run_id"]  # type: ignore[index]
    await keep_lease(pool, run_id)
    async with signed_in(api, str(made["token"])) as client:
        path = f"/ui/runs/{run_id}?fragment=live"
        first = await client.get(path)
        assert first.status_code == 200
        assert "<html" not in first.text and "tests/pay.spec.ts" in first.text
        assert "x-live-done" not in first.headers
        etag = first.headers["etag"]
        again = await client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304
        await client.post(f"/ui/runs/{run_id}/cancel", data={"csrf_token": csrf_of(first.text)})
        changed = await client.get(path, headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["x-live-done"] == "1"
        assert "CANCELLED" in changed.text


async def test_rerun_failed_page_button_makes_a_run_of_the_failed_specs(
    api: Api, pool: asyncpg.Pool
) -> None:
    made = await finished_run(api)
    run_id = made["run"]["run_id"]  # type: ignore[index]
    async with signed_in(api, str(made["token"])) as client:
        page = await client.get(f"/ui/runs/{run_id}")
        answer = await client.post(
            f"/ui/runs/{run_id}/rerun-failed", data={"csrf_token": csrf_of(page.text)}
        )
        assert answer.status_code == 303
        new_path = urlsplit(answer.headers["location"]).path
        new_page = await client.get(new_path)
        assert "Re-run of the failed specs of" in new_page.text
        # Who pressed the button made the run (an unnamed token: its id's first digits).
        assert "<dt>Submitted by</dt><dd>token " in new_page.text
        assert f"/ui/runs/{run_id}" in new_page.text
    new_run_id = new_path.rsplit("/", 1)[1]
    rows = await pool.fetch(
        "SELECT test_path, target::text, status::text FROM jobs WHERE run_id = $1", new_run_id
    )
    assert [tuple(r) for r in rows] == [("tests/cart.spec.ts", "emulator", "PENDING")]
    assert str(await pool.fetchval("SELECT rerun_of FROM runs WHERE run_id = $1", new_run_id)) == (
        run_id
    )


async def test_rerun_failed_api(api: Api) -> None:
    made = await finished_run(api)
    run_id = made["run"]["run_id"]  # type: ignore[index]
    async with api.client(str(made["token"])) as client:
        answer = await client.post(f"/v1/runs/{run_id}/rerun-failed")
        assert answer.status_code == 201
        rerun = answer.json()
        assert rerun["run_id"] != run_id
        assert [j["test_path"] for j in rerun["groups"][0]["jobs"]] == ["tests/cart.spec.ts"]
        assert rerun["counts"]["total"] == 1
        assert rerun["submitted_by"] == made["run"]["submitted_by"]  # type: ignore[index]
        assert rerun["submitted_by"].startswith("token ")
        nothing = await client.post(f"/v1/runs/{rerun['run_id']}/rerun-failed")
        assert nothing.status_code == 409
        assert nothing.json()["error"]["code"] == "nothing_failed"
    async with api.client(await api.token("other-org")) as stranger:
        hidden = await stranger.post(f"/v1/runs/{run_id}/rerun-failed")
        assert hidden.status_code == 404
    async with api.client(await api.token(ORG, "worker")) as worker:
        assert (await worker.post(f"/v1/runs/{run_id}/rerun-failed")).status_code == 403


async def test_junit_link_works_with_a_session_and_with_a_read_only_link(api: Api) -> None:
    made = await finished_run(api)
    run_id = made["run"]["run_id"]  # type: ignore[index]
    async with signed_in(api, str(made["token"])) as client:
        page = await client.get(f"/ui/runs/{run_id}")
        assert f'href="/ui/runs/{run_id}/junit"' in page.text
        junit = await client.get(f"/ui/runs/{run_id}/junit")
    assert junit.status_code == 200
    assert junit.headers["content-type"].startswith("application/xml")
    root = ElementTree.fromstring(junit.text)  # noqa: S314 (our own server's answer)
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert set(cases) == set(SPECS)
    assert cases["tests/cart.spec.ts"].find("failure") is not None
    assert cases["tests/pay.spec.ts"].find("skipped") is not None  # still running
    assert f"{api.url}/ui/jobs/" in junit.text  # log links to the pages, not the bearer API

    view = parse_qs(urlsplit(run_details_url(api.settings, ORG, run_id)).query)["view"][0]
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        refused = await anonymous.get(f"/ui/runs/{run_id}/junit")
        assert refused.status_code == 303  # to the sign-in form
        linked = await anonymous.get(f"/ui/runs/{run_id}/junit", params={"view": view})
        assert linked.status_code == 200
        assert "tests/cart.spec.ts" in linked.text
    async with signed_in(api, await api.token("other-org")) as stranger:
        assert (await stranger.get(f"/ui/runs/{run_id}/junit")).status_code == 404


async def test_the_runs_page_pages_back_through_older_runs(api: Api) -> None:
    token = await api.token(ORG)
    made = [(await submit(api, token, ORG, SPECS[:1]))["run_id"] for _ in range(53)]
    newest_first = list(reversed(made))
    async with signed_in(api, token) as client:
        first = await client.get("/ui")
        assert first.status_code == 200
        shown = _run_links(first.text)
        assert shown == newest_first[:50]
        older = _older_link(first.text)
        assert older is not None and "Newest runs" not in first.text
        second = await client.get(older)
        assert second.status_code == 200
        assert _run_links(second.text) == newest_first[50:]
        assert _older_link(second.text) is None and "Newest runs" in second.text
        assert "<title>Older runs · qgjob</title>" in second.text
        assert "<title>Runs · qgjob</title>" in first.text
        icon = await client.get(first.text.split('rel="icon" href="', 1)[1].split('"', 1)[0])
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
        live = await client.get(older + "&fragment=live")  # the part the page polls
        assert _run_links(live.text) == newest_first[50:]
        bad = await client.get("/ui?before=yesterday")
    assert bad.status_code == 400
    assert "Older runs" in bad.text and "Traceback" not in bad.text


def _run_links(html: str) -> list[str]:
    found = []
    for part in html.split('href="/ui/runs/')[1:]:
        run_id = part.split('"', 1)[0]
        if run_id not in found:
            found.append(run_id)
    return found


def _older_link(html: str) -> str | None:
    for part in html.split('<a href="')[1:]:
        href, _, rest = part.partition('"')
        if 'rel="next">Older runs' in rest.split("</a>", 1)[0] + "</a>":
            return href.replace("&amp;", "&")
    return None


async def test_pages_are_compressed_and_the_api_is_not(api: Api) -> None:
    made = await finished_run(api)
    run_id = made["run"]["run_id"]  # type: ignore[index]
    async with signed_in(api, str(made["token"])) as client:
        page = await client.get(f"/ui/runs/{run_id}", headers={"Accept-Encoding": "gzip"})
        plain = await client.get(f"/ui/runs/{run_id}", headers={"Accept-Encoding": "identity"})
    assert page.headers.get("content-encoding") == "gzip"
    assert "accept-encoding" in page.headers.get("vary", "").lower()
    assert page.num_bytes_downloaded < len(page.content)  # fewer bytes sent than shown
    assert "content-encoding" not in plain.headers and plain.text == page.text
    async with api.client(str(made["token"])) as client:
        answer = await client.get(f"/v1/runs/{run_id}", headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200 and "content-encoding" not in answer.headers


async def test_an_unchanged_run_is_answered_from_its_fingerprint(
    api: Api, pool: asyncpg.Pool
) -> None:
    """The 304 comes before the run is loaded; any change the live part shows (a job, or a
    group's setup time, which no job row records) still makes it a 200."""
    made = await finished_run(api)
    run_id = made["run"]["run_id"]  # type: ignore[index]
    await keep_lease(pool, run_id)
    path = f"/ui/runs/{run_id}?fragment=live"
    async with signed_in(api, str(made["token"])) as client:
        first = await client.get(path)
        etag = first.headers["etag"]
        assert (await client.get(path, headers={"If-None-Match": etag})).status_code == 304
        await pool.execute(
            "UPDATE groups SET install_ms = 4321 WHERE group_id IN "
            "(SELECT group_id FROM jobs WHERE run_id = $1)",
            run_id,
        )
        changed = await client.get(path, headers={"If-None-Match": etag})
        assert changed.status_code == 200 and "setup 4.3 s" in changed.text
        newer = changed.headers["etag"]
        assert (await client.get(path, headers={"If-None-Match": newer})).status_code == 304
        await pool.execute(
            "UPDATE jobs SET error = 'flaky network' WHERE run_id = $1 AND status = 'FAILED'",
            run_id,
        )
        again = await client.get(path, headers={"If-None-Match": newer})
        assert again.status_code == 200 and "flaky network" in again.text
    async with signed_in(api, await api.token("other-org")) as other:
        stranger = await other.get(path, headers={"If-None-Match": again.headers["etag"]})
    assert stranger.status_code == 404  # another org learns nothing, not even "unchanged"


async def test_cancelled_jobs_say_how_far_they_got(api: Api) -> None:
    token = await api.token("acme")
    never = (await submit(api, token, "acme", ["tests/never.spec.ts"]))["jobs"][0]["job_id"]
    ran = (await submit(api, token, "acme", ["tests/short.spec.ts"]))["jobs"][0]["job_id"]
    async with api.client(token) as client:
        assert (await client.post(f"/v1/jobs/{never}/cancel")).status_code == 200
    async with api.client() as fleet:  # a worker leases the other job, then it is cancelled
        worker = (
            await fleet.post(
                "/v1/workers", json={"name": "w", "target_types": ["emulator"], "capacity": 1}
            )
        ).json()["worker_id"]
        group = (await fleet.post(f"/v1/workers/{worker}/claim", json={"wait_s": 5})).json()
        assert (await fleet.post(f"/v1/jobs/{ran}/cancel")).status_code == 200
        # The spec was short: it ended before the worker's next heartbeat told it.
        finished = {"type": "job_finished", "job_id": ran, "outcome": "passed", "duration_ms": 900}
        events = {"lease_token": group["lease_token"], "events": [finished]}
        assert (await fleet.post(f"/v1/groups/{group['group_id']}/events", json=events)).is_success
    async with signed_in(api, token) as browser:
        never_page = (await browser.get(f"/ui/jobs/{never}")).text
        ran_page = (await browser.get(f"/ui/jobs/{ran}")).text
    assert "Never tried: the job was cancelled before a worker took it." in never_page
    assert "waiting for a worker" not in never_page
    assert "cancelled while its last attempt ran" in ran_page
    assert "cancelled while its last attempt ran" not in never_page


async def test_addresses_that_lead_nowhere_get_pages_not_json(api: Api) -> None:
    token = await api.token("acme")
    job_id = (await submit(api, token, "acme", ["tests/a.spec.ts"]))["jobs"][0]["job_id"]
    async with signed_in(api, token) as browser:
        unknown = await browser.get("/ui/nope")
        bad_query = await browser.get(f"/ui/jobs/{job_id}/log", params={"attempt": "abc"})
        bad_id = await browser.get("/ui/jobs/not-a-uuid")
    assert unknown.status_code == 404 and "text/html" in unknown.headers["content-type"]
    assert "There is no page at /ui/nope." in unknown.text
    assert bad_query.status_code == 400 and "attempt must be a whole number" in bad_query.text
    assert bad_id.status_code == 404 and "text/html" in bad_id.headers["content-type"]


async def test_a_button_pressed_after_the_session_ended_comes_back_to_its_page(
    api: Api,
) -> None:
    token = await api.token("acme")
    run_id = (await submit(api, token, "acme", ["tests/a.spec.ts"]))["run_id"]
    async with httpx.AsyncClient(base_url=api.url) as stranger:  # no session cookie
        pressed = await stranger.post(f"/ui/runs/{run_id}/rerun-failed", data={})
        signed_out = await stranger.post("/ui/logout", data={})
    assert pressed.status_code == 303
    assert parse_qs(urlsplit(pressed.headers["location"]).query)["next"] == [f"/ui/runs/{run_id}"]
    assert parse_qs(urlsplit(signed_out.headers["location"]).query)["next"] == ["/ui"]


async def test_the_overview_is_unchanged_while_only_heartbeats_change(
    api: Api, pool: asyncpg.Pool
) -> None:
    made = await finished_run(api)  # a worker is registered and up
    async with signed_in(api, str(made["token"])) as client:
        first = await client.get("/ui?fragment=live")
        assert first.status_code == 200 and "1 worker up" in first.text
        await pool.execute("UPDATE workers SET last_heartbeat = now()")
        again = await client.get(
            "/ui?fragment=live", headers={"If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304
        await pool.execute("UPDATE workers SET last_heartbeat = now() - interval '1 hour'")
        gone = await client.get(
            "/ui?fragment=live", headers={"If-None-Match": first.headers["etag"]}
        )
        assert gone.status_code == 200 and "0 workers up" in gone.text


async def test_error_pages_keep_the_signed_in_viewer_and_lead_back(api: Api) -> None:
    made = await finished_run(api)
    token = str(made["token"])
    other = await submit(api, token, ORG, ["tests/fine.spec.ts"])
    async with signed_in(api, token) as browser:
        csrf = csrf_of((await browser.get("/ui")).text)
        missing = await browser.get(f"/ui/runs/{uuid.uuid4()}")
        nothing = await browser.post(
            f"/ui/runs/{other['run_id']}/rerun-failed", data={"csrf_token": csrf}
        )
    assert missing.status_code == 404
    assert "Sign out" in missing.text and "Sign in" not in missing.text
    assert nothing.status_code == 409
    assert f'<a href="/ui/runs/{other["run_id"]}">Back to the run</a>' in nothing.text
