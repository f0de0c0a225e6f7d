"""Requests refused before routing: a path or query holding a control character.

No id, filter or page address of the service holds one, and a NUL in particular cannot reach
PostgreSQL (it refuses it inside text, which would answer 500) or the log lines that quote
the path. One check here covers every route, the API's and the pages' alike.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import error_response

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RefuseControlCharacters:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = unquote_plus(scope.get("query_string", b"").decode("latin-1"))
            if _CONTROL.search(scope.get("path", "")) or _CONTROL.search(query):
                refused = error_response(
                    400,
                    "bad_request",
                    "the request's path or query holds a control character (NUL, a line "
                    "break, …); no id or filter of this service has one",
                )
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)
