"""Creating API tokens (admins only); the raw token is in this one answer and nowhere else."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.bodies import parse
from app.api.schemas import TokenRequest
from app.auth import authenticate, require_org, require_role
from app.services import Services
from app.store.tokens import create_token
from qgjob.types import Role


async def post_token(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.ADMIN)
    body = await parse(request, TokenRequest, limit=services.settings.max_body_bytes)
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
