"""The fake BrowserStack over real HTTP on 127.0.0.1, alone and driven by fake_npx."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dispatch.errors import InfrastructureError
from dispatch.results import read_report
from qgjob.types import Outcome
from tests.standins.browserstack import (
    ALL_PARALLELS_IN_USE,
    browserstack_state,
    create_browserstack_app,
    serve_in_thread,
)
from tests.standins.browserstack_state import BrowserStackState
from tests.unit.standins.conftest import Project, spec_source

APK = ("app-release.apk", b"PK\x03\x04 apk bytes", "application/vnd.android.package-archive")


@dataclass
class Cloud:
    url: str
    state: BrowserStackState
    client: httpx.Client

    def upload(self, custom_id: str | None = "v1.2.3") -> httpx.Response:
        data = {"custom_id": custom_id} if custom_id else {}
        return self.client.post("/app-automate/upload", files={"file": APK}, data=data)

    def open_session(self, app: str) -> httpx.Response:
        caps = {
            "appium:app": app,
            "bstack:options": {"deviceName": "Google Pixel 8", "sessionName": "t"},
        }
        return self.client.post("/wd/hub/session", json={"capabilities": {"alwaysMatch": caps}})


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    app = create_browserstack_app(username="alice", access_key="s3cret", parallel=2)
    with (
        serve_in_thread(app) as url,
        httpx.Client(base_url=url, auth=("alice", "s3cret")) as client,
    ):
        yield Cloud(url=url, state=browserstack_state(app), client=client)


def test_upload_answers_like_browserstack(cloud: Cloud) -> None:
    reply = cloud.upload("build 42/7+rc")
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"app_url", "custom_id", "shareable_id"}
    assert re.fullmatch(r"bs://[0-9a-f]{40}", body["app_url"])
    assert body["custom_id"] == "build427rc"  # characters outside A-Za-z0-9._- are dropped
    assert body["shareable_id"] == "alice/build427rc"
    (app,) = cloud.state.uploads()
    assert (app.app_name, app.size) == ("app-release.apk", len(APK[1]))


def test_every_upload_gets_a_new_app_url_and_no_custom_id_means_only_the_url(cloud: Cloud) -> None:
    first, second = cloud.upload(None).json(), cloud.upload(None).json()
    assert set(first) == {"app_url"}
    assert first["app_url"] != second["app_url"]


def test_upload_by_url_is_accepted(cloud: Cloud) -> None:
    reply = cloud.client.post(
        "/app-automate/upload", data={"url": "https://builds.example/app-1.apk", "custom_id": "v1"}
    )
    assert reply.status_code == 200
    assert cloud.state.uploads("v1")[0].source_url == "https://builds.example/app-1.apk"


def test_uploads_of_other_files_or_nothing_are_refused(cloud: Cloud) -> None:
    wrong = cloud.client.post(
        "/app-automate/upload", files={"file": ("notes.txt", b"hi", "text/plain")}
    )
    assert wrong.status_code == 422
    assert "Invalid file type" in wrong.json()["error"]
    assert cloud.client.post("/app-automate/upload", data={"custom_id": "x"}).status_code == 422


@pytest.mark.parametrize("auth", [("alice", "wrong"), ("bob", "s3cret"), None])
def test_a_bad_login_is_401_text(cloud: Cloud, auth: tuple[str, str] | None) -> None:
    reply = httpx.get(f"{cloud.url}/app-automate/plan.json", auth=auth)
    assert reply.status_code == 401
    assert reply.text == "HTTP Basic: Access denied.\n"
    assert reply.headers["www-authenticate"] == 'Basic realm="Application"'


def test_the_sixth_upload_in_a_minute_is_429_and_the_window_slides(cloud: Cloud) -> None:
    now = [1000.0]
    cloud.state.clock = lambda: now[0]
    assert [cloud.upload().status_code for _ in range(6)] == [200] * 5 + [429]
    now[0] += 50
    refused = cloud.upload()
    assert refused.status_code == 429 and refused.headers["retry-after"] == "10"
    now[0] += 9.9
    assert cloud.upload().status_code == 429
    now[0] += 0.2
    assert cloud.upload().status_code == 200
    assert len(cloud.state.uploads()) == 6


def test_failed_uploads_can_be_injected(cloud: Cloud) -> None:
    cloud.state.fail_uploads(2)
    assert [cloud.upload().status_code for _ in range(3)] == [500, 500, 200]
    assert cloud.state.requests_to("/app-automate/upload", "POST")[0][2] == 500


def test_recent_apps_lists_newest_first_per_custom_id_and_hides_expired(cloud: Cloud) -> None:
    assert cloud.client.get("/app-automate/recent_apps").json() == {"message": "No results found"}
    old = cloud.upload("v1").json()["app_url"]
    new = cloud.upload("v1").json()["app_url"]
    other = cloud.upload("v2").json()["app_url"]
    listed = cloud.client.get("/app-automate/recent_apps/v1").json()
    assert [a["app_url"] for a in listed] == [new, old]
    assert set(listed[0]) == {
        "app_name",
        "app_version",
        "app_url",
        "app_id",
        "uploaded_at",
        "custom_id",
        "shareable_id",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", listed[0]["uploaded_at"])
    assert [a["app_url"] for a in cloud.client.get("/app-automate/recent_apps").json()] == [
        other,
        new,
        old,
    ]
    cloud.state.expire(new)
    assert [a["app_url"] for a in cloud.client.get("/app-automate/recent_apps/v1").json()] == [old]


def test_plan_reports_limits_and_running_sessions(cloud: Cloud) -> None:
    app = cloud.upload().json()["app_url"]
    assert cloud.open_session(app).status_code == 200
    cloud.state.set_plan(parallel=3, other_running=1)
    plan: dict[str, Any] = cloud.client.get("/app-automate/plan.json").json()
    assert plan == {
        "automate_plan": "Device Cloud Pro",
        "terminal_access": "terminals_allowed",
        "parallel_sessions_running": 2,
        "team_parallel_sessions_max_allowed": 3,
        "parallel_sessions_max_allowed": 3,
        "queued_sessions": 0,
        "queued_sessions_max_allowed": 5,
    }


def test_sessions_past_the_parallel_limit_are_refused(cloud: Cloud) -> None:
    app = cloud.upload().json()["app_url"]
    first, second = cloud.open_session(app), cloud.open_session(app)
    refused = cloud.open_session(app)
    assert (first.status_code, second.status_code, refused.status_code) == (200, 200, 500)
    assert refused.json()["value"] == {
        "error": "session not created",
        "message": ALL_PARALLELS_IN_USE,
        "stacktrace": "",
    }
    assert (cloud.state.max_running_seen, cloud.state.rejected_sessions) == (2, 1)
    session = first.json()["value"]["sessionId"]
    assert cloud.client.delete(f"/wd/hub/session/{session}").status_code == 200
    assert cloud.open_session(app).status_code == 200


def test_an_expired_or_unknown_app_cannot_start_a_session(cloud: Cloud) -> None:
    app = cloud.upload().json()["app_url"]
    cloud.state.expire(app)
    refused = cloud.open_session(app)
    assert refused.status_code == 500
    assert refused.json()["value"]["message"].startswith("[BROWSERSTACK_INVALID_APP_CAP]")
    assert cloud.open_session("bs://" + "0" * 40).status_code == 500


def test_a_custom_id_names_the_latest_upload_for_a_session(cloud: Cloud) -> None:
    cloud.upload("v7")
    latest = cloud.upload("v7").json()["app_url"]
    session = cloud.open_session("alice/v7").json()["value"]["sessionId"]
    details = cloud.client.get(f"/app-automate/sessions/{session}.json").json()[
        "automation_session"
    ]
    assert details["app_details"]["app_url"] == latest


def test_session_details_can_be_read_and_marked(cloud: Cloud) -> None:
    app = cloud.upload().json()["app_url"]
    session = cloud.open_session(app).json()["value"]["sessionId"]
    url = f"/app-automate/sessions/{session}.json"
    details = cloud.client.get(url).json()["automation_session"]
    assert details["status"] == "running"
    assert details["hashed_id"] == session
    for key in (
        "video_url",
        "public_url",
        "browser_url",
        "logs",
        "appium_logs_url",
        "device_logs_url",
    ):
        assert details[key].startswith(cloud.url)
    marked = cloud.client.put(url, json={"status": "failed", "reason": "Error: boom"}).json()
    assert (marked["automation_session"]["status"], marked["automation_session"]["reason"]) == (
        "failed",
        "Error: boom",
    )
    assert cloud.client.put(url, json={"status": "great"}).status_code == 422
    cloud.client.delete(f"/wd/hub/session/{session}")
    assert cloud.client.get(url).json()["automation_session"]["duration"] == 0
    assert cloud.client.get("/app-automate/sessions/nope.json").status_code == 404


def test_any_route_can_be_made_to_fail(cloud: Cloud) -> None:
    cloud.state.inject("/app-automate/plan.json", status=503, body="Service Unavailable")
    first = cloud.client.get("/app-automate/plan.json")
    assert (first.status_code, first.text) == (503, "Service Unavailable")
    assert cloud.client.get("/app-automate/plan.json").status_code == 200


def bs_env(cloud: Cloud, app_url: str) -> dict[str, str]:
    return {
        "BROWSERSTACK_USERNAME": "alice",
        "BROWSERSTACK_ACCESS_KEY": "s3cret",
        "QGJOB_BROWSERSTACK_API_URL": cloud.url,
        "QGJOB_BROWSERSTACK_APP_URL": app_url,
    }


BS_PROJECT = ("--project", "android-browserstack", "--reporter=list,json")


def test_fake_npx_opens_marks_and_closes_one_session_per_attempt(
    project: Project, cloud: Cloud
) -> None:
    cloud.state.set_plan(parallel=3)
    app = cloud.upload().json()["app_url"]
    fail = project.spec(
        "a.spec.ts", spec_source("x", directive='outcome=fail message="nope" sleep=0.2')
    )
    ok = project.spec("b.spec.ts", spec_source("y", "z", directive="sleep=0.2"))
    flaky = project.spec("c.spec.ts", spec_source("w", directive="outcome=flaky sleep=0.2"))
    args = (
        "appwright",
        "test",
        str(fail),
        str(ok),
        str(flaky),
        *BS_PROJECT,
        "--retries",
        "1",
        "--workers",
        "3",
    )
    run = project.run(*args, env=bs_env(cloud, app))
    report = read_report(run.report)
    assert [s.outcome for s in report.specs] == [Outcome.FAILED, Outcome.PASSED, Outcome.FLAKY]
    reported = [sid for s in report.specs for t in s.tests for sid in t.session_ids]
    assert sorted(reported) == sorted(cloud.state.sessions)
    assert len(reported) == 2 + 2 + 2  # two failed attempts, two tests, failed + passed retry
    assert all(not s.running for s in cloud.state.sessions.values())
    assert 2 <= cloud.state.max_running_seen <= 3
    failed = [s for s in cloud.state.sessions.values() if s.status == "failed"]
    assert len(failed) == 3
    assert any("nope" in s.reason for s in failed)


def test_fake_npx_fails_an_attempt_that_finds_no_free_parallel(
    project: Project, cloud: Cloud
) -> None:
    cloud.state.set_plan(parallel=1)
    app = cloud.upload().json()["app_url"]
    one = project.spec("a.spec.ts", spec_source("x", directive="sleep=1"))
    two = project.spec("b.spec.ts", spec_source("y", directive="sleep=1"))
    run = project.run(
        "appwright",
        "test",
        str(one),
        str(two),
        *BS_PROJECT,
        "--workers",
        "2",
        env=bs_env(cloud, app),
    )
    outcomes = sorted(s.outcome for s in read_report(run.report).specs)
    assert outcomes == [Outcome.FAILED, Outcome.PASSED]
    errors = [s.error or "" for s in read_report(run.report).specs]
    assert any("BROWSERSTACK_ALL_PARALLELS_IN_USE" in e for e in errors)
    assert cloud.state.rejected_sessions == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"BROWSERSTACK_ACCESS_KEY": ""},
            "BROWSERSTACK_USERNAME and BROWSERSTACK_ACCESS_KEY are required",
        ),
        ({"QGJOB_BROWSERSTACK_APP_URL": "/builds/app.apk"}, "buildPath must be a bs:// url"),
    ],
    ids=["no-credentials", "not-uploaded"],
)
def test_fake_npx_browserstack_setup_errors_are_infrastructure_errors(
    project: Project, cloud: Cloud, env: dict[str, str], message: str
) -> None:
    spec = project.spec("a.spec.ts", spec_source("x"))
    run = project.run(
        "appwright",
        "test",
        str(spec),
        *BS_PROJECT,
        env={**bs_env(cloud, "bs://" + "a" * 40), **env},
    )
    assert run.code == 1
    with pytest.raises(InfrastructureError, match=message):
        read_report(run.report)
    assert cloud.state.sessions == {}
