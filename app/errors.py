"""The service's exception tree, and its one mapping onto HTTP responses.

    ServiceError                 every error a client may see; carries code, message, field
    ├── BadRequest          400  malformed JSON, unreadable body
    ├── Unauthorized        401  missing, unknown or revoked token
    ├── Forbidden           403  the token's role or org does not allow this
    ├── NotFound            404  unknown id, or one that belongs to another org
    ├── Conflict            409  state does not allow it (finished job, stale lease, reused key)
    ├── PayloadTooLarge     413  body over the configured limit
    ├── InvalidInput        422  a field is missing, unknown or has a bad value
    ├── TooManyRequests     429  too many failed authentications from this client
    └── Unavailable         503  the database cannot be reached right now (retry)

A lost or refused database connection (PostgreSQL restarting, failing over) is answered
503 with `Retry-After`, logged as one line: clients and workers retry, nothing is half-done
because every write is one transaction.

Every 4xx/5xx body is `{"error": {"code", "message", "field"?}}`.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from qgjob.logs import LOGGED_MARK

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


class BadRequest(ServiceError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class InvalidInput(ServiceError):
    status_code = 422
    code = "invalid_input"


class TooManyRequests(ServiceError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(ServiceError):
    status_code = 503
    code = "unavailable"


def error_response(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


async def handle_service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


# What a lost database looks like from asyncpg: refused or cut connections, a server that is
# shutting down, crashed or starting (SQLSTATE class 57, operator intervention), a protocol
# state the client lost with its connection. OSError covers a socket that is gone
# (connection refused, no such Unix socket).
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InternalClientError,
)
RETRY_AFTER_S = 1


def lost_connection(exc: BaseException) -> bool:
    """Whether `exc` comes from a database connection that went away. asyncpg reports a
    connection cut inside a transaction as an InterfaceError ("the underlying connection is
    closed") raised while handling the original error, so the chain is searched too."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, DATABASE_DOWN) or "connection is closed" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def handle_interface_error(request: Request, exc: Exception) -> Response:
    if lost_connection(exc):
        return await handle_database_down(request, exc)
    return await handle_unexpected(request, exc)


async def handle_database_down(request: Request, exc: Exception) -> Response:
    logger.warning(
        "database unavailable method=%s path=%s error=%s",
        request.method,
        request.url.path,
        exc or type(exc).__name__,
    )
    return _retry_shortly("the database is unavailable right now; retry shortly")


def _retry_shortly(message: str) -> Response:
    """503 with `Retry-After`: nothing was changed, and the same request will do soon."""
    return JSONResponse(
        Unavailable(message).body(),
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, code, message)


async def handle_contention(request: Request, exc: Exception) -> Response:
    """PostgreSQL aborted the request's transaction for a deadlock or a serialization
    failure, again after `app.database.in_transaction`'s retries: nothing was changed, and
    trying again shortly will do."""
    logger.warning(
        "transaction aborted by contention method=%s path=%s error=%s",
        request.method,
        request.url.path,
        type(exc).__name__,
    )
    return _retry_shortly("conflicting updates to the same jobs; nothing changed, retry")


async def handle_client_disconnect(request: Request, exc: Exception) -> Response:
    """The client went away mid-request (an interrupted upload): nobody reads the answer,
    and it is not an error of ours; one line, no traceback."""
    logger.info("client disconnected method=%s path=%s", request.method, request.url.path)
    return error_response(400, "client_disconnected", "the client disconnected mid-request")


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error method=%s path=%s", request.method, request.url.path)
    setattr(exc, LOGGED_MARK, True)  # uvicorn's second report of it is dropped (qgjob.logs)
    return error_response(500, "internal_error", "internal server error; see the server log")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ServiceError: handle_service_error,
    HTTPException: handle_http_exception,
    **dict.fromkeys(DATABASE_DOWN, handle_database_down),
    asyncpg.InterfaceError: handle_interface_error,
    asyncpg.DeadlockDetectedError: handle_contention,
    asyncpg.SerializationError: handle_contention,
    ClientDisconnect: handle_client_disconnect,
    Exception: handle_unexpected,
}
