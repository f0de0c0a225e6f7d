"""`GET /metrics`: the Prometheus scrape endpoint.

Who may scrape: a fleet-wide admin API token, or — meant for Prometheus, which should not
hold an admin token — the scrape-only secret `QGJOB_METRICS_TOKEN` when it is set, both as
`Authorization: Bearer …`. The series name orgs (queue depth by org), so org-scoped tokens
are refused like anonymous callers.
"""

from __future__ import annotations

import hmac
import logging

from starlette.requests import Request
from starlette.responses import Response

from app.auth import authenticate, require_role
from app.errors import Forbidden
from app.metrics import CONTENT_TYPE_LATEST
from app.services import Services
from qgjob.types import Role

logger = logging.getLogger(__name__)


async def get_metrics(request: Request) -> Response:
    services: Services = request.state.services
    if not _scrape_token_matches(request, services):
        principal = await authenticate(request)
        require_role(principal, Role.ADMIN)
        if principal.org_scope is not None:
            raise Forbidden("metrics cover every org: use a fleet-wide admin token")
    try:
        async with services.pool.acquire() as conn:
            await services.metrics.refresh(conn)
    except Exception as exc:  # the counters are still worth serving
        services.metrics.scrape_errors.inc()
        logger.warning("metrics snapshot failed: %s", exc)
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _scrape_token_matches(request: Request, services: Services) -> bool:
    expected = services.settings.metrics_token
    if not expected:
        return False
    scheme, _, raw = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(raw.strip().encode(), expected.reveal().encode())
