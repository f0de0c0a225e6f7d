"""The client of the service's BrowserStack upload records (`app/api/browserstack_apps.py`).

Workers keep one `bs://` url per build (by sha256), per org and BrowserStack account, on the
service, so that every worker and group reuses one upload; the upload lease makes
concurrent workers wait for one upload instead of each making their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar
from uuid import UUID

import pydantic

from qgjob.client import QgjobClient
from qgjob.errors import NotFound, UnexpectedResponse


@dataclass(frozen=True)
class AppKey:
    """Whose upload: the org, the build's sha256 and the BrowserStack account (username)."""

    org_id: str
    sha256: str
    account: str


@dataclass(frozen=True)
class StoredApp:
    app_url: str | None
    custom_id: str | None
    uploaded_at: datetime | None


@dataclass(frozen=True)
class UploadLease:
    """`uploaded`: use `app.app_url`; `granted`: upload under `lease_id`; `busy`: wait."""

    state: Literal["uploaded", "granted", "busy"]
    app: StoredApp
    lease_id: UUID | None = None
    retry_after_s: float | None = None


class BrowserStackApps:
    """The four calls, over an open `QgjobClient` (the worker's `WorkerApi`)."""

    def __init__(self, client: QgjobClient) -> None:
        self.client = client

    async def get(self, key: AppKey) -> StoredApp | None:
        try:
            data = await self.client._request(
                "GET", _path(key), params={"org_id": key.org_id, "account": key.account}
            )
        except NotFound:
            return None
        return _load(_STORED, data)

    async def lease(self, key: AppKey, *, lease_s: float, replaces: str | None) -> UploadLease:
        body = {
            "org_id": key.org_id,
            "account": key.account,
            "lease_s": lease_s,
            "replaces": replaces,
        }
        return _load(_LEASE, await self.client._request("POST", _path(key) + "/lease", json=body))

    async def store(
        self, key: AppKey, *, app_url: str, custom_id: str | None, lease_id: UUID | None
    ) -> StoredApp:
        body = {
            "org_id": key.org_id,
            "account": key.account,
            "app_url": app_url,
            "custom_id": custom_id,
            "lease_id": str(lease_id) if lease_id else None,
        }
        return _load(_STORED, await self.client._request("PUT", _path(key), json=body))

    async def give_up(self, key: AppKey, lease_id: UUID) -> None:
        params = {"org_id": key.org_id, "account": key.account, "lease_id": str(lease_id)}
        await self.client._request("DELETE", _path(key) + "/lease", params=params)


def _path(key: AppKey) -> str:
    return f"/v1/builds/by-sha256/{key.sha256}/browserstack"


_STORED = pydantic.TypeAdapter(StoredApp)
_LEASE = pydantic.TypeAdapter(UploadLease)


T = TypeVar("T")


def _load(adapter: pydantic.TypeAdapter[T], data: Any) -> T:
    try:
        return adapter.validate_python(data)
    except pydantic.ValidationError as exc:
        raise UnexpectedResponse(f"the server's answer is not valid: {exc}") from exc
