"""Inputs at the edges answer a 4xx naming what was wrong, never a 500 (found by an audit).

Each case here reached PostgreSQL or Python in a shape they refuse (a NUL inside text, a
64-bit overflow, NaN in jsonb, a recursion limit, a cursor of the wrong shape) or slipped
past a check (`$` matches before a final line break).
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import Api

JOB = {"org_id": "qualgent", "app_version_id": "xyz123", "test_path": "tests/a.spec.ts"}
SHA = "a" * 64


@pytest.mark.parametrize(
    "body",
    [
        {**JOB, "org_id": "qualgent\n"},
        {**JOB, "app_version_id": "v1\n"},
    ],
)
async def test_an_id_with_a_trailing_line_break_is_refused(api: Api, body: dict[str, str]) -> None:
    async with api.client() as client:
        answer = await client.post("/v1/jobs", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"


async def test_bodies_json_does_not_allow_are_400(api: Api) -> None:
    async with api.client() as client:
        nan = await client.post(
            "/v1/workers",
            content=b'{"name": "w", "target_types": ["emulator"], "labels": {"x": NaN}}',
            headers={"Content-Type": "application/json"},
        )
        deep = await client.post(
            "/v1/jobs",
            content=b"[" * 100_000 + b"]" * 100_000,
            headers={"Content-Type": "application/json"},
        )
    assert nan.status_code == 400 and "NaN is not a JSON value" in nan.text
    assert deep.status_code in (400, 413), deep.text  # too deep, or over the body limit
    assert deep.json()["error"]["message"]


async def test_a_cursor_of_the_wrong_shape_is_refused(api: Api) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps([1, 2]).encode()).decode()
    async with api.client() as client:
        answer = await client.get("/v1/jobs", params={"cursor": cursor})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "cursor"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/jobs?app_version_id=a%00b", "app_version_id"),
        ("/v1/builds/a%00b", None),
        ("/v1/builds/a%00b/download", None),
        (f"/v1/builds/by-sha256/{SHA}/browserstack?account=a%00", "account"),
        ("/v1/jobs?status=PENDING%0A", "status"),
    ],
)
async def test_a_control_character_in_the_path_or_query_is_refused(
    api: Api, path: str, field: str | None
) -> None:
    async with api.client() as client:
        answer = await client.get(path)
    error = answer.json()["error"]
    assert (answer.status_code, error.get("field")) == (422 if field else 400, field)
    assert "control character" in error["message"]


async def test_a_build_size_past_64_bits_is_refused(api: Api) -> None:
    body = {
        "org_id": "qualgent",
        "app_version_id": "v1",
        "url": "https://cdn.example/app.apk",
        "sha256": SHA,
        "size": 2**63,
    }
    async with api.client() as client:
        answer = await client.post("/v1/builds", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "size"


async def test_a_sha256_with_a_trailing_line_break_is_not_a_sha256(api: Api) -> None:
    async with api.client() as client:
        answer = await client.get(f"/v1/builds/by-sha256/{SHA}%0A/browserstack")
    assert answer.status_code == 400  # a control character, refused before routing


async def test_an_unknown_query_parameter_is_refused_naming_what_is_taken(api: Api) -> None:
    async with api.client() as client:
        typo = await client.get("/v1/jobs", params={"state": "FAILED"})
    assert typo.status_code == 422
    error = typo.json()["error"]
    assert error["field"] == "state"
    assert error["message"] == (
        "unknown query parameter 'state'; GET /v1/jobs takes app_version_id, cursor, limit, "
        "org_id, run_id, status"
    )
