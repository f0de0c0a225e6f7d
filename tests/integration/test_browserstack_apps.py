"""The service's BrowserStack upload records: one url per (org, sha256, account), one
uploader at a time, expired urls replaced, other orgs kept out."""

from __future__ import annotations

import asyncio
import hashlib

from tests.conftest import Api

SHA = hashlib.sha256(b"an apk").hexdigest()
PATH = f"/v1/builds/by-sha256/{SHA}/browserstack"
KEY = {"org_id": "acme", "account": "ci-user"}


async def test_one_of_many_concurrent_workers_gets_the_upload_lease(api: Api) -> None:
    token = await api.token("acme", "worker")
    async with api.client(token) as client:
        assert (await client.get(PATH, params=KEY)).status_code == 404
        answers = await asyncio.gather(
            *(client.post(PATH + "/lease", json={**KEY, "lease_s": 60}) for _ in range(8))
        )
        states = sorted(a.json()["state"] for a in answers)
        assert states == ["busy"] * 7 + ["granted"]
        granted = next(a.json() for a in answers if a.json()["state"] == "granted")
        stored = await client.put(
            PATH,
            json={**KEY, "app_url": "bs://abc", "custom_id": "v1", "lease_id": granted["lease_id"]},
        )
        assert stored.status_code == 200 and stored.json()["app_url"] == "bs://abc"
        again = (await client.post(PATH + "/lease", json=KEY)).json()
        assert again["state"] == "uploaded" and again["app"]["app_url"] == "bs://abc"
        assert (await client.get(PATH, params=KEY)).json()["custom_id"] == "v1"
        # Another account's upload is another record.
        other = {**KEY, "account": "someone-else"}
        assert (await client.post(PATH + "/lease", json=other)).json()["state"] == "granted"


async def test_an_expired_url_is_replaced_under_a_new_lease(api: Api) -> None:
    token = await api.token("acme", "worker")
    async with api.client(token) as client:
        lease = (await client.post(PATH + "/lease", json=KEY)).json()
        await client.put(PATH, json={**KEY, "app_url": "bs://old", "lease_id": lease["lease_id"]})
        renew = (await client.post(PATH + "/lease", json={**KEY, "replaces": "bs://old"})).json()
        assert renew["state"] == "granted"
        # While it uploads, others asking about the same expired url wait.
        waiting = (await client.post(PATH + "/lease", json={**KEY, "replaces": "bs://old"})).json()
        assert waiting["state"] == "busy" and waiting["retry_after_s"] > 0
        gave_up = await client.delete(
            PATH + "/lease", params={**KEY, "lease_id": renew["lease_id"]}
        )
        assert gave_up.json() == {"released": True}
        assert (await client.post(PATH + "/lease", json={**KEY, "replaces": "bs://old"})).json()[
            "state"
        ] == "granted"


async def test_other_orgs_and_bad_keys_are_refused(api: Api) -> None:
    async with api.client(await api.token("acme", "worker")) as client:
        lease = (await client.post(PATH + "/lease", json=KEY)).json()
        await client.put(PATH, json={**KEY, "app_url": "bs://acme", "lease_id": lease["lease_id"]})
    async with api.client(await api.token("globex", "worker")) as client:
        assert (await client.get(PATH, params=KEY)).status_code == 404
        assert (await client.post(PATH + "/lease", json=KEY)).status_code == 404
    async with api.client(await api.token("acme", "submitter")) as client:
        assert (await client.get(PATH, params=KEY)).status_code == 403
    async with api.client(await api.token("acme", "worker")) as client:
        bad = await client.get("/v1/builds/by-sha256/XYZ/browserstack", params=KEY)
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "sha256"
        wrong_url = await client.put(PATH, json={**KEY, "app_url": "https://x"})
        assert wrong_url.status_code == 422
