"""Who is looking at a page: someone signed in with an API token, or the holder of a signed,
read-only link to one run. Sessions, their cookie, and CSRF checks on every button.

A session cookie holds the token's id (never the token), a CSRF value and an expiry, signed;
each request re-reads the token, so revoking it ends the session. A read-only link holds an
org, a run and an expiry, signed; it opens that run, its jobs and logs, and nothing else.
"""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from app.links import RUN_LINK, VIEW_PARAM
from app.services import Services
from app.signing import Expired, SignatureError, signer_for
from app.store.tokens import Principal
from app.store.views import live_token
from qgjob.types import Role

SESSION = "session"
SESSION_COOKIE = "qgjob_session"
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf_token"


class LoginRequired(Exception):
    """No valid session: the page sends the browser to the sign-in form."""


class AccessRefused(Exception):
    """A link that is not genuine or has expired, or a button pressed without its CSRF token,
    or from a page that may not press it."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title
        self.message = message


@dataclass(frozen=True)
class Viewer:
    org_scope: str | None
    role: Role | None = None  # None: a read-only link
    run_scope: uuid.UUID | None = None  # a link opens one run only
    csrf: str | None = None
    view_token: str | None = None
    link_expires_at: float | None = None
    label: str | None = None  # the signed-in token's (`Principal.label`): who acts

    @property
    def can_act(self) -> bool:
        return self.run_scope is None and self.role in (Role.SUBMITTER, Role.ADMIN)

    @property
    def is_link(self) -> bool:
        return self.view_token is not None

    def sees_run(self, run_id: str | uuid.UUID) -> bool:
        return self.run_scope is None or str(self.run_scope) == str(run_id)

    def link(self, path: str, **query: str | int) -> str:
        """A path within the pages; a link viewer's token rides along."""
        params: dict[str, str | int] = dict(query)
        if self.view_token is not None:
            params[VIEW_PARAM] = self.view_token
        return f"{path}?{urlencode(params)}" if params else path


async def viewer_for(request: Request) -> Viewer:
    """The viewer of this request; LoginRequired or AccessRefused when there is none."""
    services: Services = request.state.services
    view = request.query_params.get(VIEW_PARAM)
    if view:
        return _link_viewer(services, view)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise LoginRequired
    try:
        claims = signer_for(services.settings).verify(SESSION, cookie)
        token_id = uuid.UUID(str(claims["t"]))
        csrf = str(claims["c"])
    except (SignatureError, KeyError, ValueError):
        raise LoginRequired from None
    principal = await live_token(services.pool, token_id)
    if principal is None:
        raise LoginRequired
    return Viewer(
        org_scope=principal.org_scope, role=principal.role, csrf=csrf, label=principal.label
    )


def _link_viewer(services: Services, token: str) -> Viewer:
    try:
        claims = signer_for(services.settings).verify(RUN_LINK, token)
        org_id, run_id = str(claims["o"]), uuid.UUID(str(claims["r"]))
    except Expired:
        raise AccessRefused(
            "This link has expired",
            "Read-only links last a limited time. Sign in with an API token, or ask for a "
            "new link.",
        ) from None
    except (SignatureError, KeyError, ValueError):
        raise AccessRefused(
            "This link is not valid",
            "The link was changed or was not made by this service. Sign in with an API token.",
        ) from None
    return Viewer(
        org_scope=org_id,
        run_scope=run_id,
        view_token=token,
        link_expires_at=float(claims["e"]),
    )


def start_session(
    response: Response, request: Request, services: Services, principal: Principal
) -> None:
    settings = services.settings
    expires_at = time.time() + settings.web_session_ttl_s
    claims = {"t": str(principal.token_id), "c": secrets.token_urlsafe(24)}
    cookie = signer_for(settings).sign(SESSION, claims, expires_at=expires_at)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(settings.web_session_ttl_s),
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=served_over_https(request, services),
    )


def end_session(response: Response, request: Request, services: Services) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=served_over_https(request, services),
    )


def served_over_https(request: Request, services: Services) -> bool:
    public = services.settings.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


def check_csrf(request: Request, viewer: Viewer, form: dict[str, str]) -> None:
    """A button works only from a signed-in page of this site that may press it."""
    if not viewer.can_act or viewer.csrf is None:
        raise AccessRefused(
            "Not allowed", "This page is read-only: sign in with a submitter or admin token."
        )
    check_origin(request)
    sent = form.get(CSRF_FIELD, "")
    if not sent or not hmac.compare_digest(sent, viewer.csrf):
        raise AccessRefused(
            "Form expired",
            "The form was missing its security token or it was out of date. Reload the page "
            "and try again.",
        )


def check_origin(request: Request) -> None:
    """Refuse a form posted from another site (when the browser says where it came from).

    This site is the host the request was sent to, or QGJOB_PUBLIC_URL's host (a proxy in
    front may rewrite the Host header)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return
    services: Services = request.state.services
    ours = {request.headers.get("host"), urlsplit(services.settings.public_url or "").netloc}
    if urlsplit(origin).netloc not in ours - {None, ""}:
        raise AccessRefused("Not allowed", "The form was sent from another site.")
