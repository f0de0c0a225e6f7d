"""Builds: upload or register the app build of an app version, read it, and download it.

`POST /v1/builds` takes either the file itself (any content type but JSON; the raw bytes,
streamed to storage, never held in memory; `org_id`, `app_version_id`, `filename` and an
optional expected `sha256` in the query) or, as JSON, an external artifact (`url` +
`sha256`). Uploads have their own size limit, `QGJOB_MAX_BUILD_BYTES`, not the API's
`QGJOB_MAX_BODY_BYTES`. The same content again changes nothing (200 `unchanged`); other
content replaces the build (200 `replaced`); a first build answers 201 `created`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from app.api.bodies import parse
from app.api.schemas import SHA256_PATTERN, ExternalBuild, check_build_filename
from app.auth import authenticate, require_org, require_role
from app.errors import BadRequest, Conflict, InvalidInput, NotFound, PayloadTooLarge
from app.services import Services
from app.storage import BlobMissing, StagedBlob, TooLarge
from app.store import builds as store
from app.store.jobs import Wire
from app.store.tokens import Principal
from qgjob.identifiers import check_app_version_id, check_org_id
from qgjob.types import Role, build_platform_of

logger = logging.getLogger(__name__)
SHA256_HEADER = "X-Qgjob-Sha256"


async def post_build(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.SUBMITTER, Role.ADMIN)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        return await _register_external(request, services, principal)
    return await _upload(request, services, principal)


async def _register_external(
    request: Request, services: Services, principal: Principal
) -> Response:
    body = await parse(request, ExternalBuild, limit=services.settings.max_body_bytes)
    require_org(principal, body.org_id)
    filename = body.filename or _filename_of_url(body.url)
    platform = build_platform_of(filename)
    assert platform is not None  # checked by _filename_of_url / the schema
    new = store.NewBuild(
        org_id=body.org_id,
        app_version_id=body.app_version_id,
        platform=platform,
        filename=filename,
        size=body.size,
        sha256=body.sha256,
        external_url=body.url,
    )
    async with services.pool.acquire() as conn, conn.transaction():
        saved = await store.save_build(conn, new)
    await _drop_unused(services, saved.dropped_key)
    return _answer(saved)


def _filename_of_url(url: str) -> str:
    try:
        path = urlsplit(url).path
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for a stray '['
        raise InvalidInput(f"url is not a valid URL: {exc}", field="url") from None
    name = unquote(path.rsplit("/", 1)[-1])
    try:
        return check_build_filename(name)
    except ValueError:
        raise InvalidInput(
            f"cannot tell the build's platform from the url's file name {name!r}; "
            "pass filename (ending in .apk, .aab, .ipa or .app.zip)",
            field="filename",
        ) from None


def _query_field(request: Request, name: str, check: Callable[[str], str]) -> str:
    raw = request.query_params.get(name)
    if not raw:
        raise InvalidInput(f"query parameter {name!r} is required", field=name)
    try:
        return check(raw)
    except ValueError as exc:
        raise InvalidInput(str(exc), field=name) from None


@dataclass(frozen=True)
class _UploadTarget:
    org_id: str
    app_version_id: str
    filename: str
    expected_sha256: str | None


def _upload_target(request: Request) -> _UploadTarget:
    """What the query says the upload is; 422 naming the first bad parameter."""
    target = _UploadTarget(
        org_id=_query_field(request, "org_id", check_org_id),
        app_version_id=_query_field(request, "app_version_id", check_app_version_id),
        filename=_query_field(request, "filename", check_build_filename),
        expected_sha256=(
            request.query_params.get("sha256") or request.headers.get(SHA256_HEADER) or ""
        ).lower()
        or None,
    )
    if target.expected_sha256 is not None and not _is_sha256(target.expected_sha256):
        raise InvalidInput("sha256 must be 64 hexadecimal characters", field="sha256")
    return target


async def _receive(request: Request, services: Services, expected: str | None) -> StagedBlob:
    """The body, streamed to a staged blob within the build size limit and checked."""
    limit = services.settings.max_build_bytes
    where = "(QGJOB_MAX_BUILD_BYTES on the server)"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the build is {declared} bytes; builds may be at most {limit} bytes {where}"
        )
    try:
        staged = await services.storage.stage(request.stream(), limit_bytes=limit)
    except TooLarge:
        raise PayloadTooLarge(f"the build exceeds the limit of {limit} bytes {where}") from None
    if staged.size == 0:
        await staged.discard()
        raise BadRequest("the request body is empty; send the build file's bytes")
    if expected is not None and staged.sha256 != expected:
        await staged.discard()
        raise InvalidInput(
            f"the upload's sha256 is {staged.sha256}, not the expected {expected}; "
            "the file changed or was cut short in transit",
            field="sha256",
            code="sha256_mismatch",
        )
    return staged


async def _upload(request: Request, services: Services, principal: Principal) -> Response:
    target = _upload_target(request)
    require_org(principal, target.org_id)
    platform = build_platform_of(target.filename)
    assert platform is not None  # checked with the file name
    staged = await _receive(request, services, target.expected_sha256)
    try:
        # The blob goes in place and its row is written under the blob's lock, so that a
        # cleanup of the same content (a replaced build) cannot delete it in between.
        async with services.pool.acquire() as conn, conn.transaction():
            await store.lock_blob(conn, staged.sha256)
            blob = await staged.commit()
            new = store.NewBuild(
                org_id=target.org_id,
                app_version_id=target.app_version_id,
                platform=platform,
                filename=target.filename,
                size=blob.size,
                sha256=blob.sha256,
                storage_key=blob.key,
            )
            saved = await store.save_build(conn, new)
    finally:
        await staged.discard()  # a no-op once committed
    await _drop_unused(services, saved.dropped_key)
    logger.info(
        "build saved org_id=%s app_version_id=%s sha256=%s size=%d result=%s",
        target.org_id,
        target.app_version_id,
        blob.sha256,
        blob.size,
        _result(saved),
    )
    return _answer(saved)


def _is_sha256(value: str) -> bool:
    return re.fullmatch(SHA256_PATTERN, value) is not None


async def _drop_unused(services: Services, key: str | None) -> None:
    """Delete a replaced blob unless another build still points at it."""
    if key is None:
        return
    async with services.pool.acquire() as conn, conn.transaction():
        await store.lock_blob(conn, key)
        if not await store.blob_in_use(conn, key):
            await services.storage.delete(key)
            logger.info("build blob deleted sha256=%s", key)


def _result(saved: store.Saved) -> str:
    if saved.created:
        return "created"
    return "replaced" if saved.changed else "unchanged"


def _answer(saved: store.Saved) -> Response:
    body = {**saved.build, "result": _result(saved)}
    return JSONResponse(body, status_code=201 if saved.created else 200)


def _org_for_read(request: Request, principal: Principal) -> str:
    """The org to read from: `?org_id=` (another org's answers 404), else the token's own."""
    wanted = request.query_params.get("org_id")
    if wanted:
        if not principal.sees(wanted):
            raise NotFound(_missing(request.path_params["app_version_id"]))
        return wanted
    if principal.org_id is None:
        raise InvalidInput("org_id is required with a token that serves every org", field="org_id")
    return principal.org_id


def _missing(app_version_id: str) -> str:
    return (
        f"no build for app version {app_version_id!r}; upload one with "
        "`qgjob build upload` (POST /v1/builds)"
    )


async def _find(request: Request) -> tuple[Services, Wire]:
    services: Services = request.state.services
    principal = await authenticate(request)
    app_version_id = request.path_params["app_version_id"]
    org_id = _org_for_read(request, principal)
    build = await store.get_build(services.pool, org_id, app_version_id)
    if build is None:
        raise NotFound(_missing(app_version_id))
    return services, build


async def get_build(request: Request) -> Response:
    _, build = await _find(request)
    return JSONResponse(build)


async def download_build(request: Request) -> Response:
    """The stored file, streamed, with its length and sha256 in the headers."""
    services, build = await _find(request)
    pinned = request.query_params.get("sha256")
    if pinned and pinned.lower() != build["sha256"]:
        raise Conflict(
            f"build {build['app_version_id']} was replaced (its sha256 is now "
            f"{build['sha256']}); claim the group again to get the current one",
            code="build_replaced",
        )
    if not build["stored"]:
        raise NotFound(
            f"build {build['app_version_id']} is not stored here; fetch it from its "
            f"external_url {build['external_url']}"
        )
    try:
        chunks = await services.storage.read(build["sha256"])
    except BlobMissing:
        raise NotFound(
            f"the file of build {build['app_version_id']} is missing from this server's "
            "storage; upload it again"
        ) from None
    headers = {
        "Content-Length": str(build["size"]),
        SHA256_HEADER: build["sha256"],
        "ETag": f'"{build["sha256"]}"',
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(build['filename'])}",
    }
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)
