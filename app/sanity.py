"""Requests refused before routing: a path or query holding a control character.

No id, filter or page address of the service holds one, and a NUL in particular cannot reach
PostgreSQL (it refuses it inside text, which would answer 500) or the log lines that quote
the path. One check here covers every route, the API's and the pages' alike: a query
parameter is refused as invalid input naming it (422), a path as a bad request (400).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import BadRequest, InvalidInput, ServiceError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RefuseControlCharacters:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = _refusal(scope)
            if refused is not None:
                answer = JSONResponse(refused.body(), status_code=refused.status_code)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(scope: Scope) -> ServiceError | None:
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if _CONTROL.search(name) or _CONTROL.search(value):
            return InvalidInput(
                f"{name!r} must not contain control characters (NUL, line breaks, tabs)",
                field=name,
            )
    if _CONTROL.search(scope.get("path", "")):
        return BadRequest(
            "the request's path holds a control character (NUL, a line break, …); no id of "
            "this service has one"
        )
    return None
