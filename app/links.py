"""Links to the web pages that may leave the service: a run's signed, read-only page.

`run_details_url` is what a GitHub check run carries as its `details_url`: anyone holding
it can read that one run (its jobs and logs) until it expires, and can press no button.
"""

from __future__ import annotations

import time
import uuid

from app.signing import Signer, signer_for
from qgjob.settings import Settings

RUN_LINK = "run-link"
VIEW_PARAM = "view"


def run_details_url(
    settings: Settings, org_id: str, run_id: uuid.UUID | str, *, now: float | None = None
) -> str:
    """The absolute, signed URL of the run's page, valid for QGJOB_WEB_LINK_TTL_S."""
    expires_at = (time.time() if now is None else now) + settings.web_link_ttl_s
    token = sign_run_link(signer_for(settings), org_id, run_id, expires_at=expires_at)
    return f"{base_url(settings)}/ui/runs/{run_id}?{VIEW_PARAM}={token}"


def sign_run_link(
    signer: Signer, org_id: str, run_id: uuid.UUID | str, *, expires_at: float
) -> str:
    return signer.sign(RUN_LINK, {"o": org_id, "r": str(run_id)}, expires_at=expires_at)


def base_url(settings: Settings) -> str:
    """Where people reach the service: QGJOB_PUBLIC_URL, else QGJOB_SERVER_URL."""
    return settings.details_base_url
