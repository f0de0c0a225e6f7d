"""BrowserStack uploads shared by every worker: the `bs://` url of a build, by its sha256.

```
GET    /v1/builds/by-sha256/{sha256}/browserstack?org_id=&account=    the stored url, or 404
POST   /v1/builds/by-sha256/{sha256}/browserstack/lease               may I upload it?
PUT    /v1/builds/by-sha256/{sha256}/browserstack                     here is the url I got
DELETE /v1/builds/by-sha256/{sha256}/browserstack/lease?org_id=&account=&lease_id=
```

A worker about to run a BrowserStack group asks for the lease: the answer is the url when
one is stored (`state: uploaded`), the lease when the caller should upload (`granted`), or
how long another worker's upload lease still runs (`busy`: wait, then ask again). The url
belongs to one BrowserStack `account` (the uploader's username): another account cannot use
it. A worker that finds the stored url expired asks with `replaces` set to it.
Worker and admin tokens only; another org's record answers 404.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.bodies import parse
from app.api.params import query_uuid
from app.api.schemas import OrgId
from app.auth import authenticate, require_role
from app.errors import InvalidInput, NotFound
from app.services import Services
from app.store import browserstack_apps as store
from app.store.tokens import Principal
from qgjob.identifiers import check_org_id
from qgjob.types import Role

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_LEASE_S = 3600


def _check_app_url(value: str) -> str:
    if not value.startswith("bs://") or len(value) > 200:
        raise ValueError("app_url must be a bs:// url of at most 200 characters")
    return value


class _Keyed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    org_id: OrgId
    account: str = Field(min_length=1, max_length=200)


class UploadLeaseRequest(_Keyed):
    """Ask to upload; `replaces` names a stored url that BrowserStack has expired."""

    lease_s: float = Field(default=600, gt=0, le=MAX_LEASE_S)
    replaces: str | None = Field(default=None, max_length=200)


class StoredApp(_Keyed):
    """Record the url an upload returned (with the lease it was uploaded under)."""

    app_url: Annotated[str, AfterValidator(_check_app_url)]
    custom_id: str | None = Field(default=None, max_length=100)
    lease_id: uuid.UUID | None = None


class BrowserStackApp(BaseModel):
    """A build's BrowserStack upload as the service keeps it."""

    org_id: str
    sha256: str
    account: str
    app_url: str | None
    custom_id: str | None
    uploaded_at: datetime | None


class UploadLease(BaseModel):
    """`uploaded`: use `app.app_url`; `granted`: upload, then PUT the url with `lease_id`;
    `busy`: another worker is uploading, ask again after `retry_after_s`."""

    state: Literal["uploaded", "granted", "busy"]
    app: BrowserStackApp
    lease_id: uuid.UUID | None = None
    lease_expires_at: datetime | None = None
    retry_after_s: float | None = None


async def get_app(request: Request) -> Response:
    services, principal = await _caller(request)
    key = _key(request, principal, *_query_keys(request))
    found = await store.get_app(services.pool, key)
    if found is None or found["app_url"] is None:
        raise NotFound(f"build {key.sha256} has no BrowserStack upload for account {key.account}")
    return JSONResponse(_app(found))


async def lease(request: Request) -> Response:
    services, principal = await _caller(request)
    body = await parse(request, UploadLeaseRequest, limit=services.settings.max_body_bytes)
    key = _key(request, principal, body.org_id, body.account)
    answer = await store.lease_upload(
        services.pool, key, lease_s=body.lease_s, replaces=body.replaces
    )
    record = answer.record
    if answer.granted:
        wire: dict[str, Any] = {
            "state": "granted",
            "lease_id": str(record["lease_id"]),
            "lease_expires_at": record["lease_expires_at"].isoformat(),
        }
    elif record["app_url"] is not None and record["app_url"] != body.replaces:
        wire = {"state": "uploaded"}
    else:
        wire = {"state": "busy", "retry_after_s": round(min(answer.lease_left_s, 5.0) + 0.1, 2)}
    return JSONResponse({**wire, "app": _app(record)})


async def store_app(request: Request) -> Response:
    services, principal = await _caller(request)
    body = await parse(request, StoredApp, limit=services.settings.max_body_bytes)
    key = _key(request, principal, body.org_id, body.account)
    record = await store.store_app(
        services.pool, key, app_url=body.app_url, custom_id=body.custom_id, lease_id=body.lease_id
    )
    return JSONResponse(_app(record))


async def give_up_lease(request: Request) -> Response:
    services, principal = await _caller(request)
    key = _key(request, principal, *_query_keys(request))
    lease_id = query_uuid(request, "lease_id")
    if lease_id is None:
        raise InvalidInput("lease_id is required", field="lease_id")
    released = await store.give_up_lease(services.pool, key, lease_id)
    return JSONResponse({"released": released})


async def _caller(request: Request) -> tuple[Services, Principal]:
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.WORKER, Role.ADMIN)
    return services, principal


def _key(request: Request, principal: Principal, org_id: str, account: str) -> store.AppKey:
    sha256 = request.path_params["sha256"]
    if not _SHA256.fullmatch(sha256):
        raise InvalidInput("sha256 must be 64 lower-case hex digits", field="sha256")
    if not principal.sees(org_id):
        raise NotFound(f"build {sha256} has no BrowserStack upload for account {account}")
    return store.AppKey(org_id=org_id, sha256=sha256, account=account)


def _query_keys(request: Request) -> tuple[str, str]:
    org_id = request.query_params.get("org_id") or ""
    account = request.query_params.get("account") or ""
    try:
        check_org_id(org_id)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="org_id") from None
    if not account or len(account) > 200:
        raise InvalidInput("account must be 1-200 characters", field="account")
    return org_id, account


def _app(record: dict[str, Any]) -> dict[str, Any]:
    uploaded = record.get("uploaded_at")
    return {
        "org_id": record["org_id"],
        "sha256": record["sha256"],
        "account": record["account"],
        "app_url": record["app_url"],
        "custom_id": record["custom_id"],
        "uploaded_at": uploaded.isoformat() if uploaded is not None else None,
    }
