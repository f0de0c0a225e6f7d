"""Hostile input at the HTTP edge: oversized bodies, test paths that try to leave the
project or pass for options, and clients that keep guessing tokens.

The test path rule (qgjob/identifiers.py `check_test_path`, docs/security.md): relative to the
project root, no `..` segment, not absolute (`/`, `\\`, `C:`), not home-relative (`~`), not
starting with `-` (a test runner would read it as an option), no control characters (NUL,
line breaks, tabs, escapes), at most 1,024 characters. /openapi.json publishes the same rule
as a pattern; a property test checks that the pattern and the validator agree.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from app.api.groups import EVENTS_BODY_LIMIT
from app.api.routes import ENDPOINTS
from app.auth import FailureLimit
from qgjob.identifiers import MAX_TEST_PATH, TEST_PATH_PATTERN, check_test_path
from qgjob.settings import Settings
from tests.conftest import Api

LIMIT = 4096


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        max_body_bytes=LIMIT,
        lease_ttl_s=120.0,
        auth_failures_max=3,
        auth_failures_window_s=1.5,
    )


async def _ids(api: Api) -> dict[str, str]:
    """A real job, run, worker and group, so that each route gets as far as its body."""
    async with api.client() as admin:
        run = (
            await admin.post(
                "/v1/runs", json={"org_id": "acme", "app_version_id": "v", "tests": ["t/a.ts"]}
            )
        ).json()
        worker = (
            await admin.post(
                "/v1/workers", json={"name": "w", "target_types": ["emulator"], "capacity": 1}
            )
        ).json()
        group = (
            await admin.post(f"/v1/workers/{worker['worker_id']}/claim", json={"wait_s": 5})
        ).json()
    return {
        "job_id": run["jobs"][0]["job_id"],
        "run_id": run["run_id"],
        "worker_id": worker["worker_id"],
        "group_id": group["group_id"],
        "lease_token": str(group["lease_token"]),
        "sha256": "0" * 64,
    }


WITH_BODY = [e for e in ENDPOINTS if e.request is not None]


async def test_every_body_over_its_limit_is_refused_with_413(api: Api) -> None:
    ids = await _ids(api)
    refused = []
    async with api.client() as admin:
        for e in WITH_BODY:
            limit = EVENTS_BODY_LIMIT if e.path.endswith("/events") else LIMIT
            body = b'{"x": "' + b"a" * limit + b'"}'
            answer = await admin.request(
                e.method,
                e.path.format(**ids),
                content=body,
                headers={"Content-Type": "application/json"},
            )
            if answer.status_code != 413 or answer.json()["error"]["code"] != "payload_too_large":
                refused.append(f"{e.method} {e.path}: {answer.status_code} {answer.text[:200]}")
    assert refused == []


async def test_a_streamed_body_without_a_length_is_cut_at_the_limit(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"org_id": "acme", "app_version_id": "v", "tests": ["'
        for _ in range(LIMIT // 512 + 2):
            yield b"a" * 512

    async with api.client() as admin:
        answer = await admin.post("/v1/runs", content=chunks())
    assert answer.status_code == 413
    assert "limit" in answer.json()["error"]["message"]


BAD_PATHS = {
    "../../etc/passwd": "'..' is not allowed",
    "tests/../../secrets.ts": "'..' is not allowed",
    "tests\\..\\..\\x.ts": "'..' is not allowed",
    "..": "'..' is not allowed",
    "/etc/passwd": "not absolute",
    "\\\\server\\share\\x.ts": "not absolute",
    "C:\\tests\\x.ts": "not absolute",
    "~/.ssh/id_rsa": "not absolute",
    "tests/a.ts\x00.png": "control characters",
    "tests/a.ts\nrm -rf /": "control characters",
    "tests/\x1b[31mred.ts": "control characters",
    "--config=/tmp/evil.js": "must not start with '-'",
    "-x": "must not start with '-'",
    "   ": "must not be empty",
    "t/" + "a" * MAX_TEST_PATH: "at most",
}
GOOD_PATHS = [
    "tests/login.spec.ts",
    "tests/with space/ünïcödé.spec.ts",
    "./tests/a.spec.ts",
    "tests/a..b.spec.ts",
    "tests/.hidden/a.ts",
    "a-b/c-d.ts",
    "tests/x.ts?query#frag",
]


async def test_test_paths_that_leave_the_project_are_refused_with_a_clear_422(api: Api) -> None:
    async with api.client() as admin:
        for bad, says in BAD_PATHS.items():
            one = await admin.post(
                "/v1/jobs", json={"org_id": "acme", "app_version_id": "v", "test_path": bad}
            )
            many = await admin.post(
                "/v1/runs",
                json={"org_id": "acme", "app_version_id": "v", "tests": ["t/ok.ts", bad]},
            )
            for answer, field in ((one, "test_path"), (many, "tests.1")):
                assert answer.status_code == 422, (bad, answer.text)
                error = answer.json()["error"]
                assert error["field"] == field, (bad, error)
                assert says in error["message"] or says in error["message"].lower(), (bad, error)
        answer = await admin.post(
            "/v1/runs", json={"org_id": "acme", "app_version_id": "v", "tests": GOOD_PATHS}
        )
        assert answer.status_code == 201, answer.text
        assert [j["test_path"] for j in answer.json()["jobs"]] == GOOD_PATHS
        listed = await admin.get("/v1/stats")
        assert listed.json()["jobs"]["total"] == len(GOOD_PATHS)  # nothing bad got in


def _accepted(path: str) -> bool:
    try:
        check_test_path(path)
    except ValueError:
        return False
    return True


_PATHS = st.lists(
    st.sampled_from(["..", ".", "a", "-", "~", "/", "\\", "C:", " ", "\x00", "\n", "\t", "é"]),
    max_size=6,
).map("".join) | st.text(max_size=20)


@hyp_settings(max_examples=400, derandomize=True, deadline=None)
@given(_PATHS)
def test_the_published_pattern_says_what_the_validator_does(path: str) -> None:
    assert (re.fullmatch(TEST_PATH_PATTERN, path) is not None) == _accepted(path), repr(path)


def test_the_pattern_is_in_the_openapi_document() -> None:
    from app.openapi import build_openapi

    document = build_openapi(ENDPOINTS, version="test")
    schemas = document["components"]["schemas"]
    assert schemas["JobSubmission"]["properties"]["test_path"]["pattern"] == TEST_PATH_PATTERN


async def test_repeated_failed_authentication_is_answered_429_then_forgiven(api: Api) -> None:
    headers = {"Authorization": "Bearer qgj_guess"}
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as guesser:
        codes = [(await guesser.get("/v1/stats", headers=headers)).status_code for _ in range(3)]
        assert codes == [401, 401, 401]
        blocked = await guesser.get("/v1/stats", headers=headers)
        assert blocked.status_code == 429
        assert blocked.json()["error"]["code"] == "too_many_requests"
        assert 1 <= int(blocked.headers["Retry-After"]) <= 2
        # Even the right token waits: the limit is on the client, not on the token.
        valid = {"Authorization": f"Bearer {api.admin_token}"}
        assert (await guesser.get("/v1/stats", headers=valid)).status_code == 429
        # Another client address is not affected.
        other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=api.url, transport=other, timeout=10) as bystander:
            assert (await bystander.get("/v1/stats", headers=valid)).status_code == 200
        # Once the window has moved on, the client is let in again.
        for _ in range(100):
            answer = await guesser.get("/v1/stats", headers=valid)
            if answer.status_code != 429:
                break
            await _pause(float(answer.headers["Retry-After"]))
        assert answer.status_code == 200


async def _pause(seconds: float) -> None:
    await asyncio.sleep(min(seconds, 0.5))


def test_failure_limit_slides_with_the_clock() -> None:
    limit = FailureLimit(max_failures=2, window_s=10)
    assert limit.retry_after_s("a", now=0) is None
    limit.record_failure("a", now=0)
    limit.record_failure("a", now=4)
    assert limit.retry_after_s("a", now=5) == 5  # until the failure at 0 leaves the window
    assert limit.retry_after_s("b", now=5) is None
    assert limit.retry_after_s("a", now=10) is None
    limit.record_failure("a", now=11)
    assert limit.retry_after_s("a", now=12) == 2  # failures at 4 and 11: until 14
    assert limit.retry_after_s("a", now=30) is None
    assert "a" not in limit._failures  # forgotten once nothing is left in the window


async def test_text_postgresql_cannot_store_is_refused_or_replaced(api: Api) -> None:
    ids = await _ids(api)
    async with api.client() as admin:
        named = await admin.post(
            "/v1/workers",
            json={"name": "w", "target_types": ["emulator"], "labels": {"model": "pixel\x00"}},
        )
        assert named.status_code == 422, named.text
        assert named.json()["error"]["field"] == "labels.model"
        broken = await admin.post(
            "/v1/workers",
            content=b'{"name": "w\\ud800", "target_types": ["emulator"]}',
            headers={"Content-Type": "application/json"},
        )
        assert broken.status_code == 422, broken.text
        assert broken.json()["error"]["field"] == "name"
        # A test that printed NUL bytes still gets its result recorded: the log keeps U+FFFD.
        event = {
            "type": "job_finished",
            "job_id": ids["job_id"],
            "outcome": "passed",
            "duration_ms": 3,
            "log": "before\x00after \ud800",
        }
        body = {"lease_token": int(ids["lease_token"]), "events": [event]}
        answer = await admin.post(
            f"/v1/groups/{ids['group_id']}/events",
            content=json.dumps(body).encode(),  # ASCII, with the lone surrogate escaped
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        log = await admin.get(f"/v1/jobs/{ids['job_id']}/log")
        assert log.text == "before\ufffdafter ?"


BAD_BUILD_NAMES = [
    "../../escape.apk",
    "..\\..\\escape.apk",
    "/tmp/escape.apk",
    "dir/escape.apk",
    "..",
    "escape\x00.apk",
    "escape.apk\n",
    "escape.sh",
]


async def test_build_uploads_cannot_name_a_path(api: Api, tmp_path: Path) -> None:
    before = {p for p in tmp_path.parent.rglob("*")}
    async with api.client() as admin:
        for name in BAD_BUILD_NAMES:
            answer = await admin.post(
                "/v1/builds",
                params={"org_id": "acme", "app_version_id": "v1", "filename": name},
                content=b"not really an apk",
            )
            assert answer.status_code == 422, (name, answer.text)
            assert answer.json()["error"]["field"] == "filename", (name, answer.text)
        for version in ("../v1", "..", "v1/../../x", "/etc"):
            answer = await admin.post(
                "/v1/builds",
                params={"org_id": "acme", "app_version_id": version, "filename": "a.apk"},
                content=b"x",
            )
            assert answer.status_code == 422, (version, answer.text)
            read = await admin.get(f"/v1/builds/{quote(version, safe='')}/download?org_id=acme")
            assert read.status_code in (404, 422), (version, read.text)
        ok = await admin.post(
            "/v1/builds",
            params={"org_id": "acme", "app_version_id": "v1", "filename": "good.apk"},
            content=b"a real build",
        )
        assert ok.status_code == 201, ok.text
    # Nothing was written anywhere but the service's own build storage.
    written = {p for p in tmp_path.parent.rglob("*")} - before
    outside = [p for p in written if api.settings.data_dir not in p.parents]
    assert outside == []
    assert not any("escape" in p.name for p in written)


async def test_the_sign_in_form_has_the_same_limit(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as browser:
        codes = [
            (await browser.post("/ui/login", data={"token": "qgj_guess"})).status_code
            for _ in range(3)
        ]
        assert codes == [401, 401, 401]
        blocked = await browser.post("/ui/login", data={"token": api.admin_token})
        assert blocked.status_code == 429
        assert "Too many failed sign-ins" in blocked.text
        assert 1 <= int(blocked.headers["Retry-After"]) <= 2
        assert "set-cookie" not in blocked.headers
