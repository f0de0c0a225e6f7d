"""API tokens: listed without their raw values, revoked for good, and fleet-wide worker
tokens made only by fleet-wide admins (DESIGN §1: a worker token may serve the fleet)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Api
from tests.support.servers import child_env
from tests.support.workers import run_cli_async

pytestmark = pytest.mark.timeout(60)


async def create(api: Api, admin: str | None, **body: Any) -> Any:
    async with api.client(admin) as client:
        return await client.post("/v1/tokens", json=body)


async def test_an_org_admin_lists_its_tokens_and_never_their_values(api: Api) -> None:
    admin = (await create(api, None, org_id="acme", role="admin", name="ops")).json()
    ci = (await create(api, admin["token"], org_id="acme", role="submitter", name="ci")).json()
    await create(api, None, org_id="globex", role="submitter")
    async with api.client(admin["token"]) as client:
        listed = await client.get("/v1/tokens")
    assert listed.status_code == 200
    tokens = listed.json()["tokens"]
    assert [(t["name"], t["role"]) for t in tokens] == [("ci", "submitter"), ("ops", "admin")]
    assert {t["org_id"] for t in tokens} == {"acme"}
    assert ci["token"] not in listed.text and admin["token"] not in listed.text


async def test_a_revoked_token_is_refused_at_once_and_for_good(api: Api) -> None:
    made = (await create(api, None, org_id="acme", role="submitter", name="leaked")).json()
    async with api.client(made["token"]) as client:
        assert (await client.get("/v1/stats")).status_code == 200  # now in the verifier's cache
    async with api.client() as admin:
        revoked = await admin.post(f"/v1/tokens/{made['token_id']}/revoke")
        again = await admin.post(f"/v1/tokens/{made['token_id']}/revoke")
        unknown = await admin.post("/v1/tokens/123e4567-e89b-12d3-a456-426614174000/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]  # a repeat changes nothing
    assert unknown.status_code == 404
    async with api.client(made["token"]) as client:
        refused = await client.get("/v1/stats")
    assert refused.status_code == 401
    assert "unknown or revoked" in refused.json()["error"]["message"]


async def test_an_org_admin_cannot_revoke_another_orgs_token(api: Api) -> None:
    theirs = (await create(api, None, org_id="globex", role="submitter")).json()
    acme_admin = (await create(api, None, org_id="acme", role="admin")).json()
    async with api.client(acme_admin["token"]) as client:
        answer = await client.post(f"/v1/tokens/{theirs['token_id']}/revoke")
    assert answer.status_code == 404
    async with api.client(theirs["token"]) as client:
        assert (await client.get("/v1/stats")).status_code == 200


async def test_only_a_fleet_admin_makes_a_worker_token_for_every_org(api: Api) -> None:
    fleet = await create(api, None, role="worker", name="lab")
    assert fleet.status_code == 201 and fleet.json()["org_id"] is None
    submitter = await create(api, None, role="submitter")
    assert submitter.status_code == 422 and submitter.json()["error"]["field"] == "org_id"
    acme_admin = (await create(api, None, org_id="acme", role="admin")).json()
    refused = await create(api, acme_admin["token"], role="worker")
    assert refused.status_code == 403
    async with api.client(fleet.json()["token"]) as worker:  # it serves every org
        registered = await worker.post(
            "/v1/workers", json={"name": "lab-1", "target_types": ["emulator"], "capacity": 1}
        )
    assert registered.status_code == 201, registered.text


async def test_the_cli_creates_lists_and_revokes(api: Api) -> None:
    env = child_env({"QGJOB_SERVER_URL": api.url, "QGJOB_TOKEN": api.admin_token})
    made = await run_cli_async("token", "create", "--role=worker", "--name=lab", "--json", env=env)
    assert made.code == 0, made.stderr
    issued = json.loads(made.stdout)
    assert issued["org_id"] is None
    refused = await run_cli_async("token", "create", "--role=submitter", env=env)
    assert refused.code == 2
    assert refused.stderr.strip() == (
        "Error: missing option --org-id (a submitter token acts for one org; only a worker "
        "token may serve every org)"
    )
    listed = await run_cli_async("token", "list", env=env)
    assert listed.code == 0, listed.stderr
    assert issued["token_id"] in listed.stdout and "(every org)" in listed.stdout
    assert issued["token"] not in listed.stdout
    revoked = await run_cli_async("token", "revoke", f"--token-id={issued['token_id']}", env=env)
    assert revoked.code == 0, revoked.stderr
    assert f"Token {issued['token_id']} (lab) revoked at" in revoked.stdout
    shown = await run_cli_async("token", "list", "--json", env=env)
    mine = [t for t in json.loads(shown.stdout)["tokens"] if t["token_id"] == issued["token_id"]]
    assert mine[0]["revoked_at"] is not None
