"""`POST /github/webhooks`: GitHub's deliveries, checked, recorded, acknowledged.

The signature is checked on the raw body in constant time (401), then the headers and JSON
(400); a body past 25 MB is refused (413). A delivery of an event the App handles is
committed to the inbox before the 202, so it survives a crash right after the answer; a
repeated `X-GitHub-Delivery` is acknowledged and ignored; other events are recorded as
ignored. Deliveries arriving together share one INSERT, and the inbox loop
(`app/github/inbox.py`), which does the work, steps back while they arrive
(`app/github/intake.py`).
"""

from __future__ import annotations

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.bodies import read_body
from app.errors import BadRequest, Unauthorized, error_response
from app.github.service import GitHubApp
from app.services import Services
from app.store.deliveries import NewDelivery
from github_app.errors import InvalidSignature, MalformedDelivery
from github_app.events import parse_delivery
from github_app.signatures import SIGNATURE_HEADER, verify_signature

MAX_WEBHOOK_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB


class WebhookAck(BaseModel):
    delivery_id: str
    status: str  # queued | ignored | duplicate


async def receive_webhook(request: Request) -> Response:
    services: Services = request.state.services
    github = services.github
    if github is None:
        return error_response(
            503,
            "github_disabled",
            "the GitHub App is not configured on this server; set QGJOB_GITHUB_APP_ID, "
            "QGJOB_GITHUB_PRIVATE_KEY_PATH (or QGJOB_GITHUB_PRIVATE_KEY) and "
            "QGJOB_GITHUB_WEBHOOK_SECRET",
        )
    with github.intake.receiving():
        return await _acknowledge(request, services, github)


async def _acknowledge(request: Request, services: Services, github: GitHubApp) -> Response:
    deliveries = services.metrics.webhook_deliveries
    body = await read_body(request, limit=MAX_WEBHOOK_BYTES)
    try:
        verify_signature(body, request.headers.get(SIGNATURE_HEADER), secret=github.webhook_secret)
    except InvalidSignature as exc:
        # The event header is not trusted before the signature: no label from it.
        deliveries.labels(event="unverified", outcome="bad_signature").inc()
        raise Unauthorized(str(exc), field=SIGNATURE_HEADER, code="invalid_signature") from exc
    try:
        event = parse_delivery(request.headers, body)
    except MalformedDelivery as exc:
        deliveries.labels(event="unverified", outcome="error").inc()
        raise BadRequest(str(exc), code="malformed_delivery") from exc
    handled = github.router.handles(event)
    ignored = f"ignored: {event.name}.{event.action or '-'} is not handled"
    fresh = await github.intake.record(
        NewDelivery(
            delivery_id=event.delivery_id,
            event=event.name,
            action=event.action,
            installation_id=event.installation_id,
            body=body if handled else None,
            outcome=None if handled else ignored,
        )
    )
    if fresh and handled:
        github.inbox_wakeups.wake()
    status = "duplicate" if not fresh else "queued" if handled else "ignored"
    outcome = "accepted" if status == "queued" else status
    deliveries.labels(event=event.name, outcome=outcome).inc()
    ack = WebhookAck(delivery_id=event.delivery_id, status=status)
    return JSONResponse(ack.model_dump(), status_code=202)
