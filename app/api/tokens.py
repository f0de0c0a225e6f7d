"""API tokens (admins only): create one (its raw value is in that one answer and nowhere
else), list them, revoke one.

An org's admin manages its org's tokens; a fleet-wide admin (the local admin token) every
org's, and only it creates a worker token that serves every org (no `org_id`). A revoked
token is refused by this process at once and by other replicas within the verifier's cache
window (`app.auth.CACHE_TTL_S`); a web session of it ends at its next page.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.bodies import parse
from app.api.params import path_uuid, query_str
from app.api.schemas import TokenRequest
from app.auth import TokenVerifier, authenticate, require_org, require_role
from app.errors import Forbidden, InvalidInput, NotFound
from app.services import Services
from app.store.jobs import to_wire
from app.store.tokens import create_token, list_tokens, revoke_token
from qgjob.types import Role


async def post_token(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.ADMIN)
    body = await parse(request, TokenRequest, limit=services.settings.max_body_bytes)
    if body.org_id is None:
        if body.role is not Role.WORKER:
            raise InvalidInput(
                f"org_id is required for a {body.role.value} token; only a worker token may "
                "serve every org",
                field="org_id",
            )
        if principal.org_id is not None:
            raise Forbidden(
                "only a fleet-wide admin token may create a worker token that serves every org",
                field="org_id",
            )
    else:
        require_org(principal, body.org_id)
    raw, created = await create_token(
        services.pool, org_id=body.org_id, role=body.role, name=body.name
    )
    return JSONResponse(
        {
            "token": raw,
            "token_id": str(created.token_id),
            "org_id": body.org_id,
            "role": body.role.value,
        },
        status_code=201,
    )


async def get_tokens(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.ADMIN)
    wanted = query_str(request, "org_id")
    if wanted is not None:
        require_org(principal, wanted, doing="list the tokens of")
    org_id = principal.org_id or wanted
    found = await list_tokens(services.pool, org_id=org_id)
    return JSONResponse({"tokens": [to_wire(row) for row in found]})


async def revoke(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.ADMIN)
    token_id = path_uuid(request, "token_id")
    revoked = await revoke_token(services.pool, token_id, org_scope=principal.org_scope)
    if revoked is None:
        raise NotFound(f"token {token_id} not found")
    verifier: TokenVerifier = services.tokens
    verifier.forget(token_id)
    return JSONResponse(to_wire(revoked))
