"""The web pages' route table, and the one place that turns failures into pages.

Pages answer in HTML: no session → the sign-in form; an unknown id, or one of another
org → a 404 page; a bad or expired link, or a button pressed without its CSRF token → 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import BadRequest, Conflict, InvalidInput, NotFound, PayloadTooLarge
from app.web import actions, pages
from app.web.access import AccessRefused, LoginRequired, Viewer, viewer_for
from app.web.rendering import STATIC_DIR, Pages

PageHandler = Callable[[Request, Pages], Awaitable[Response]]

_ROUTES: tuple[tuple[str, str, PageHandler], ...] = (
    ("GET", "/ui", pages.overview),
    ("GET", "/ui/runs/{run_id}", pages.run_page),
    ("GET", "/ui/runs/{run_id}/junit", pages.run_junit),
    ("GET", "/ui/jobs/{job_id}", pages.job_page),
    ("GET", "/ui/jobs/{job_id}/log", pages.job_log),
    ("GET", "/ui/workers", pages.workers_page),
    ("GET", "/ui/login", actions.login_form),
    ("POST", "/ui/login", actions.login),
    ("POST", "/ui/logout", actions.logout),
    ("POST", "/ui/runs/{run_id}/cancel", actions.cancel_run),
    ("POST", "/ui/runs/{run_id}/rerun-failed", actions.rerun_failed),
    ("POST", "/ui/jobs/{job_id}/cancel", actions.cancel_job),
)


def web_routes() -> list[BaseRoute]:
    renderer = Pages()
    routes: list[BaseRoute] = [
        Route(path, _endpoint(handler, renderer), methods=[method])
        for method, path, handler in _ROUTES
    ]
    routes.append(Route("/ui/", _to_home, methods=["GET"]))
    routes.append(Mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static"))
    # Any other address under /ui is the pages' own 404, not the API's JSON one.
    routes.append(Route("/ui/{rest:path}", _endpoint(_no_such_page, renderer)))
    return routes


async def _no_such_page(request: Request, renderer: Pages) -> Response:
    raise NotFound(f"There is no page at {request.url.path}.")


async def _to_home(request: Request) -> Response:
    return RedirectResponse("/ui", status_code=308)


def _endpoint(handler: PageHandler, renderer: Pages) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, renderer)
        except LoginRequired:
            return actions.login_redirect(request)
        except AccessRefused as exc:
            return await _error(request, renderer, 403, exc.title, exc.message)
        except BadRequest as exc:
            return await _error(request, renderer, 400, "Bad request", exc.message)
        except InvalidInput as exc:
            # A malformed id in the address names no page; a bad query value is a bad request.
            if exc.field in request.path_params:
                return await _error(request, renderer, 404, "Not found", exc.message)
            return await _error(request, renderer, 400, "Bad request", exc.message)
        except NotFound as exc:
            return await _error(request, renderer, 404, "Not found", exc.message)
        except Conflict as exc:
            return await _error(request, renderer, 409, "Nothing to do", exc.message)
        except PayloadTooLarge as exc:
            return await _error(request, renderer, 413, "Too large", exc.message)

    return endpoint


async def _error(
    request: Request, renderer: Pages, status: int, title: str, message: str
) -> Response:
    """An error page that keeps the viewer's place: signed in, it has the usual header and
    no "Sign in"; on a read-only link, it leads back to that run; after a button (a POST),
    back to the page the button was on."""
    try:
        viewer: Viewer | None = await viewer_for(request)
    except (LoginRequired, AccessRefused):
        viewer = None
    back = None
    if viewer is not None and viewer.run_scope is not None:
        back = viewer.link(f"/ui/runs/{viewer.run_scope}")
    elif request.method == "POST" and viewer is not None:
        back = actions.page_of_action(request.url.path)
    label = "Back to runs"
    if back is not None and "/ui/runs/" in back:
        label = "Back to the run"
    elif back is not None and "/ui/jobs/" in back:
        label = "Back to the job"
    values = pages.context(
        request, viewer, title=title, message=message, back=back or "/ui", back_label=label
    )
    return renderer.html("error.html", values, status=status)


class CompressPages:
    """gzip for the pages under /ui when the browser accepts it: a large run's page and
    the live part it polls are hundreds of KiB of repetitive HTML (a 1,000-job run's
    fragment: 384 KiB, 29 KiB compressed). The API's answers are left as they are."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=1024, compresslevel=6)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/ui"):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)
